//! Evaluation metrics, pure: ranked retrieval (recall, MRR and nDCG at k, over distinct relevant
//! items), OCR word accuracy, and execution accuracy of text-to-SQL (result sets compared).

use std::collections::HashSet;

/// Scores of one ranked list against the relevant set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RankScores {
    /// Share of the relevant items found in the first k.
    pub recall: f64,
    /// 1 / rank of the first relevant item in the first k (0 when none).
    pub mrr: f64,
    /// Normalised discounted cumulative gain with binary gains.
    pub ndcg: f64,
}

/// Scores `ranked` (best first; an item repeated later counts once, at its first rank) against
/// `relevant`, cut at `k`. Several passages of one page are one item: callers pass page names.
pub fn rank_scores(ranked: &[&str], relevant: &[&str], k: usize) -> RankScores {
    let relevant: HashSet<&str> = relevant.iter().copied().collect();
    if relevant.is_empty() || k == 0 {
        return RankScores::default();
    }
    let mut seen = HashSet::new();
    let mut found = 0usize;
    let mut mrr = 0.0;
    let mut dcg = 0.0;
    for (i, item) in ranked.iter().take(k).enumerate() {
        if !seen.insert(*item) || !relevant.contains(item) {
            continue;
        }
        found += 1;
        if mrr == 0.0 {
            mrr = 1.0 / (i as f64 + 1.0);
        }
        dcg += 1.0 / (i as f64 + 2.0).log2();
    }
    let ideal: f64 = (0..relevant.len().min(k))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    RankScores {
        recall: found as f64 / relevant.len() as f64,
        mrr,
        ndcg: dcg / ideal,
    }
}

/// Word accuracy of an OCR `hypothesis` against a `reference`: 1 − (word-level edit distance /
/// reference words), floored at 0. Words are compared lowercase with punctuation stripped, so
/// quote styles and dashes do not count as errors.
pub fn word_accuracy(hypothesis: &str, reference: &str) -> (f64, usize, usize) {
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect::<String>()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (hyp, reference) = (words(hypothesis), words(reference));
    if reference.is_empty() {
        return (if hyp.is_empty() { 1.0 } else { 0.0 }, hyp.len(), 0);
    }
    // Levenshtein over words, two rows.
    let mut prev: Vec<usize> = (0..=hyp.len()).collect();
    let mut cur = vec![0; hyp.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hyp.iter().enumerate() {
            let substitution = prev[j] + usize::from(r != h);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let errors = prev[hyp.len()];
    let accuracy = (1.0 - errors as f64 / reference.len() as f64).max(0.0);
    (accuracy, errors, reference.len())
}

/// Whether two query results are the same answer, as execution accuracy judges it: the same
/// number of columns and rows, each row equal as a multiset of values (so column order does not
/// matter), and the rows equal as a multiset — or as a sequence when `ordered` (the question
/// asked for an order). Numbers compare at 2 decimals, whether they came as JSON numbers or as
/// the exact decimal strings sql-exec writes for `numeric`.
pub fn same_result(
    gold: &[Vec<serde_json::Value>],
    predicted: &[Vec<serde_json::Value>],
    ordered: bool,
) -> bool {
    if gold.len() != predicted.len() {
        return false;
    }
    if gold.first().map(Vec::len) != predicted.first().map(Vec::len) {
        return false;
    }
    let canon = |rows: &[Vec<serde_json::Value>]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|row| {
                let mut cells: Vec<String> = row.iter().map(cell).collect();
                cells.sort();
                cells
            })
            .collect()
    };
    let (mut g, mut p) = (canon(gold), canon(predicted));
    if !ordered {
        g.sort();
        p.sort();
    }
    g == p
}

fn cell(value: &serde_json::Value) -> String {
    let number = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        _ => None,
    };
    match (number, value) {
        (Some(v), _) => format!("{:.2}", v),
        (None, serde_json::Value::String(s)) => s.trim().to_owned(),
        (None, other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_ranking_scores_one() {
        let s = rank_scores(&["a", "b", "x"], &["a", "b"], 10);
        assert_eq!(s.recall, 1.0);
        assert_eq!(s.mrr, 1.0);
        assert!((s.ndcg - 1.0).abs() < 1e-12);
    }

    #[test]
    fn late_and_missing_items_lower_every_score() {
        let s = rank_scores(&["x", "y", "a", "a"], &["a", "b"], 10);
        assert_eq!(s.recall, 0.5);
        assert!((s.mrr - 1.0 / 3.0).abs() < 1e-12);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((s.ndcg - (1.0 / 4f64.log2()) / ideal).abs() < 1e-12);
        // The repeated "a" counts once.
        assert_eq!(rank_scores(&["a", "a"], &["a", "b"], 10).recall, 0.5);
    }

    #[test]
    fn items_past_k_do_not_count() {
        let s = rank_scores(&["x", "y", "a"], &["a"], 2);
        assert_eq!(s, RankScores::default());
    }

    #[test]
    fn word_accuracy_ignores_case_and_punctuation_and_counts_edits() {
        assert_eq!(
            word_accuracy("The quick, brown fox.", "the Quick brown fox").0,
            1.0
        );
        let (acc, errors, words) = word_accuracy("the quack brown", "the quick brown fox");
        assert_eq!((errors, words), (2, 4));
        assert!((acc - 0.5).abs() < 1e-12);
        assert_eq!(word_accuracy("", "some words").0, 0.0);
    }

    #[test]
    fn results_match_regardless_of_column_and_row_order() {
        use serde_json::json;
        let gold = vec![
            vec![json!("USA"), json!(13)],
            vec![json!("Canada"), json!(8)],
        ];
        let swapped = vec![
            vec![json!(8), json!("Canada")],
            vec![json!(13), json!("USA")],
        ];
        assert!(same_result(&gold, &swapped, false));
        assert!(!same_result(&gold, &swapped, true));
        let reordered = vec![
            vec![json!(13), json!("USA")],
            vec![json!("Canada"), json!("8.00")],
        ];
        assert!(same_result(&gold, &reordered, true));
        assert!(!same_result(&gold, &gold[..1], false));
        let extra = vec![
            vec![json!("USA"), json!(13), json!(1)],
            vec![json!("Canada"), json!(8), json!(2)],
        ];
        assert!(!same_result(&gold, &extra, false));
        let money = vec![vec![json!("37.62")]];
        assert!(same_result(&money, &[vec![json!(37.620_000_1)]], false));
        assert!(!same_result(&money, &[vec![json!("37.63")]], false));
        assert!(same_result(&[], &[], true));
    }
}
