//! Reciprocal rank fusion and near-duplicate merging. Pure, no I/O.
//!
//! RRF (Cormack, Clarke & Büttcher, 2009) scores a chunk by `Σ w / (k + rank)` over the ranked
//! lists it appears in (`w` a per-retriever weight, 1 in the original). It needs no score calibration between retrievers whose scores are not
//! comparable (cosine distance, `ts_rank`, Chroma's distance), and a chunk that two retrievers
//! agree on rises above one that only one ranks first.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

/// The RRF constant. The paper's 60 flattens the lists so much that the weaker full-text list
/// drags good vector hits down; on the PostgreSQL-manual evaluation (176 questions, top 10
/// passages) k = 5 with the full-text list at half the weight of the vector evidence is where
/// hybrid beats both single retrievers on recall, MRR and nDCG (docs/benchmarks.md).
pub const RRF_K: f64 = 5.0;

/// The full-text list's weight as a share of the vector lists' total weight (each vector list
/// weighs 1): see [`RRF_K`].
pub const TEXT_SHARE: f64 = 0.5;

/// A fused candidate: the chunk and its RRF score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    /// The chunk.
    pub chunk_id: Uuid,
    /// Σ w / (k + rank), rank 1-based.
    pub score: f64,
}

/// Fuses weighted ranked lists (best first; a chunk repeated within a list counts at its best
/// rank) into one list, best first; ties keep the order of first appearance.
pub fn rrf(lists: &[(&[Uuid], f64)], k: f64) -> Vec<Fused> {
    let mut scores: HashMap<Uuid, (f64, usize)> = HashMap::new();
    let mut seen_order = 0usize;
    for &(list, weight) in lists {
        let mut seen = HashSet::new();
        for (rank, id) in list.iter().enumerate() {
            if !seen.insert(*id) {
                continue;
            }
            let contribution = weight / (k + (rank as f64) + 1.0);
            let entry = scores.entry(*id).or_insert_with(|| {
                seen_order += 1;
                (0.0, seen_order)
            });
            entry.0 += contribution;
        }
    }
    let mut fused: Vec<(Uuid, f64, usize)> =
        scores.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused
        .into_iter()
        .map(|(chunk_id, score, _)| Fused { chunk_id, score })
        .collect()
}

/// What [`merge_near_duplicates`] needs of a passage.
pub trait Passage {
    /// The passage text.
    fn text(&self) -> &str;
    /// Its document.
    fn document_id(&self) -> Uuid;
    /// Its character range in the document.
    fn char_range(&self) -> std::ops::Range<usize>;
}

/// Passages at or above this word-trigram Jaccard similarity are near-duplicates (the same
/// boilerplate paragraph in two documents, one page ingested under two URIs, overlapping chunks).
pub const DUPLICATE_JACCARD: f64 = 0.8;

/// Keeps the best of each group of near-duplicates, in order: a passage is dropped when an earlier
/// (better) one is of the same document with more than half of the shorter one's characters in
/// common, or has word-trigram Jaccard similarity ≥ [`DUPLICATE_JACCARD`]. Returns the kept
/// passages with the ids of what each absorbed.
pub fn merge_near_duplicates<P: Passage>(
    passages: Vec<P>,
    id: impl Fn(&P) -> Uuid,
) -> Vec<(P, Vec<Uuid>)> {
    let mut kept: Vec<(P, Vec<Uuid>, HashSet<u64>)> = Vec::new();
    for passage in passages {
        let shingles = shingles(passage.text());
        let duplicate_of = kept.iter().position(|(other, _, other_shingles)| {
            same_span(&passage, other) || jaccard(&shingles, other_shingles) >= DUPLICATE_JACCARD
        });
        match duplicate_of {
            Some(i) => {
                let absorbed = id(&passage);
                kept[i].1.push(absorbed);
            }
            None => kept.push((passage, Vec::new(), shingles)),
        }
    }
    kept.into_iter()
        .map(|(p, absorbed, _)| (p, absorbed))
        .collect()
}

fn same_span<P: Passage>(a: &P, b: &P) -> bool {
    if a.document_id() != b.document_id() {
        return false;
    }
    let (ra, rb) = (a.char_range(), b.char_range());
    let overlap = ra.end.min(rb.end).saturating_sub(ra.start.max(rb.start));
    let shorter = ra.len().min(rb.len());
    shorter > 0 && overlap * 2 > shorter
}

/// Hashes of the lowercase word trigrams of `text` (single words for texts under three words).
fn shingles(text: &str) -> HashSet<u64> {
    use std::hash::{Hash, Hasher};
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let hash = |parts: &[String]| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        parts.hash(&mut h);
        h.finish()
    };
    if words.len() < 3 {
        return words.chunks(1).map(hash).collect();
    }
    words.windows(3).map(hash).collect()
}

fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    inter as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn agreement_beats_a_single_first_place() {
        let vector = [id(1), id(2), id(3)];
        let text = [id(2), id(4), id(1)];
        let fused = rrf(&[(&vector, 1.0), (&text, 1.0)], 60.0);
        let order: Vec<Uuid> = fused.iter().map(|f| f.chunk_id).collect();
        // 2: 1/62 + 1/61; 1: 1/61 + 1/63; both beat 4 (1/62) and 3 (1/63).
        assert_eq!(order, [id(2), id(1), id(4), id(3)]);
        let expected = 1.0 / 62.0 + 1.0 / 61.0;
        assert!((fused[0].score - expected).abs() < 1e-12);
    }

    #[test]
    fn a_lighter_list_yields_to_a_heavier_one() {
        let vector = [id(1), id(2)];
        let text = [id(3), id(1)];
        // Equal weights: 1 (both lists) wins, then 3 (text's first) beats 2 (vector's second).
        let even: Vec<Uuid> = rrf(&[(&vector, 1.0), (&text, 1.0)], RRF_K)
            .iter()
            .map(|f| f.chunk_id)
            .collect();
        assert_eq!(even, [id(1), id(3), id(2)]);
        // Text at a third: vector's second place outranks text's first.
        let light: Vec<Uuid> = rrf(&[(&vector, 1.0), (&text, 0.3)], RRF_K)
            .iter()
            .map(|f| f.chunk_id)
            .collect();
        assert_eq!(light, [id(1), id(2), id(3)]);
    }

    #[test]
    fn single_list_keeps_its_order_and_repeats_count_once() {
        let list = [id(5), id(6), id(5), id(7)];
        let fused = rrf(&[(&list, 1.0)], RRF_K);
        let order: Vec<Uuid> = fused.iter().map(|f| f.chunk_id).collect();
        assert_eq!(order, [id(5), id(6), id(7)]);
        assert!((fused[0].score - 1.0 / (RRF_K + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn empty_lists_fuse_to_nothing() {
        assert!(rrf(&[(&[], 1.0), (&[], TEXT_SHARE)], RRF_K).is_empty());
    }

    struct P {
        id: u128,
        doc: u128,
        range: std::ops::Range<usize>,
        text: &'static str,
    }
    impl Passage for P {
        fn text(&self) -> &str {
            self.text
        }
        fn document_id(&self) -> Uuid {
            id(self.doc)
        }
        fn char_range(&self) -> std::ops::Range<usize> {
            self.range.clone()
        }
    }

    #[test]
    fn near_duplicates_merge_into_the_better_one() {
        let text = "VACUUM reclaims storage occupied by dead tuples in the table and its indexes";
        let passages = vec![
            P {
                id: 1,
                doc: 1,
                range: 0..80,
                text,
            },
            // Same words in another document (e.g. the same page under two URIs).
            P {
                id: 2,
                doc: 2,
                range: 0..80,
                text,
            },
            // Overlapping span of the first document, different wording.
            P {
                id: 3,
                doc: 1,
                range: 30..100,
                text: "something else entirely about the planner and statistics",
            },
            // Unrelated.
            P {
                id: 4,
                doc: 3,
                range: 0..50,
                text: "pg_dump writes a consistent snapshot of one database to a file",
            },
        ];
        let merged = merge_near_duplicates(passages, |p| id(p.id));
        let kept: Vec<u128> = merged.iter().map(|(p, _)| p.id).collect();
        assert_eq!(kept, [1, 4]);
        assert_eq!(merged[0].1, [id(2), id(3)]);
        assert!(merged[1].1.is_empty());
    }

    #[test]
    fn small_overlap_of_the_same_document_is_not_a_duplicate() {
        let passages = vec![
            P {
                id: 1,
                doc: 1,
                range: 0..100,
                text: "first chunk of a long section on write ahead logging",
            },
            // 10 characters of overlap (the chunker's carried sentence), different text.
            P {
                id: 2,
                doc: 1,
                range: 90..200,
                text: "checkpoints flush dirty buffers and bound recovery time",
            },
        ];
        let merged = merge_near_duplicates(passages, |p| id(p.id));
        assert_eq!(merged.len(), 2);
    }
}
