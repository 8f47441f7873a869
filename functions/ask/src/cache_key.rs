//! When two questions may share an answer: the semantic cache's pure rules.
//!
//! Similar embeddings are not enough. "Customers who did not buy Jazz" sits right next to
//! "customers who bought Jazz" in embedding space, as do "sales in 2009" and "sales in 2010",
//! or "top 5" and "top 10". So besides similarity over a threshold, two questions must have the
//! same [`Signature`]: the same numbers, the same dates and date words, the same negations, the
//! same ordering words and the same kind of answer asked for ("how many genres have more than 100
//! tracks?" is not "which genres have more than 100 tracks?", though the two embed alike). The
//! scope (role, region, data version, mode) is part of the key itself, so no answer crosses a
//! permission boundary or outlives a change of the data.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What must be equal in two questions besides their meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Numbers as written, normalised (`1,000` = `1000`, `5.0` = `5`).
    pub numbers: BTreeSet<String>,
    /// Month and weekday names, relative date words (`today`, `last`, `quarter`, …).
    pub dates: BTreeSet<String>,
    /// Negation words (`not`, `never`, `without`, `except`, …), counted by kind.
    pub negations: BTreeSet<String>,
    /// Words that flip an ordering or a comparison (`top`, `bottom`, `most`, `least`, `before`, …).
    pub polarity: BTreeSet<String>,
    /// The kinds of answer asked for: `count` ("how many", "number of"), `amount` ("how much",
    /// "total", "sum"), `average`, `share` ("percentage", "share") and `list` ("which", "who",
    /// "list", "names"). Entries cached before this field existed have none, so they miss.
    #[serde(default)]
    pub asks: BTreeSet<String>,
}

/// Words (and two-word phrases) naming the kind of answer a question asks for, with the kind.
const ASKS: [(&str, &str); 19] = [
    ("how many", "count"),
    ("number of", "count"),
    ("count", "count"),
    ("how much", "amount"),
    ("total", "amount"),
    ("sum", "amount"),
    ("average", "average"),
    ("avg", "average"),
    ("mean", "average"),
    ("percentage", "share"),
    ("percent", "share"),
    ("share", "share"),
    ("proportion", "share"),
    ("which", "list"),
    ("who", "list"),
    ("list", "list"),
    ("name", "list"),
    ("names", "list"),
    ("whom", "list"),
];

const NEGATIONS: [&str; 12] = [
    "not",
    "no",
    "never",
    "without",
    "except",
    "excluding",
    "exclude",
    "none",
    "nobody",
    "neither",
    "nor",
    "cannot",
];

const DATE_WORDS: [&str; 40] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "today",
    "yesterday",
    "tomorrow",
    "last",
    "next",
    "this",
    "previous",
    "current",
    "ytd",
];

const PERIOD_WORDS: [&str; 9] = [
    "day", "week", "month", "quarter", "year", "weekend", "morning", "evening", "night",
];

const POLARITY: [&str; 22] = [
    "top", "bottom", "most", "least", "highest", "lowest", "max", "min", "maximum", "minimum",
    "more", "less", "fewer", "greater", "before", "after", "above", "below", "first", "oldest",
    "newest", "latest",
];

/// The question as the cache compares it: lower case, words only, single spaces.
pub fn normalise(question: &str) -> String {
    question
        .to_lowercase()
        .replace("n't", " not")
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == ','))
        .map(|w| w.trim_matches(|c| c == '.' || c == ','))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The [`Signature`] of a question.
pub fn signature(question: &str) -> Signature {
    let mut sig = Signature::default();
    let normalised = normalise(question);
    let words: Vec<&str> = normalised.split(' ').collect();
    let pairs = words.windows(2).map(|pair| pair.join(" "));
    for phrase in words.iter().map(|w| (*w).to_owned()).chain(pairs) {
        if let Some((_, kind)) = ASKS.iter().find(|(p, _)| *p == phrase) {
            sig.asks.insert((*kind).to_owned());
        }
    }
    for word in words {
        if word.chars().any(|c| c.is_ascii_digit()) {
            sig.numbers.insert(number(word));
            continue;
        }
        let singular = word.strip_suffix('s').unwrap_or(word);
        if NEGATIONS.contains(&word) {
            sig.negations.insert(word.to_owned());
        } else if DATE_WORDS.contains(&word) || PERIOD_WORDS.contains(&singular) {
            sig.dates.insert(singular.to_owned());
        } else if POLARITY.contains(&word) {
            sig.polarity.insert(word.to_owned());
        }
    }
    sig
}

/// `1,000` → `1000`, `5.0` → `5`, `007` → `7`; anything else with digits (`q3`, `2010s`) as is.
fn number(word: &str) -> String {
    let plain: String = word.chars().filter(|&c| c != ',').collect();
    match plain.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v}")
            }
        }
        _ => plain,
    }
}

/// Whether a cached question answers a new one: similar enough, and nothing that changes the
/// answer differs.
pub fn is_hit(similarity: f32, threshold: f32, cached: &Signature, asked: &Signature) -> bool {
    similarity >= threshold && cached == asked
}

/// The cache scope: a hash of everything an answer depends on besides the question.
pub fn scope(role: &str, region: &str, data_version: &str, mode: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [role, region, data_version, mode] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An L2-normalised embedding stored as signed bytes (384 bytes instead of 1,536 of f32): the
/// cosine of two quantised unit vectors is within ~0.01 of the exact one, far below the gap a
/// threshold has to judge.
pub fn quantise(embedding: &[f32]) -> Vec<i8> {
    embedding
        .iter()
        .map(|v| (v.clamp(-1.0, 1.0) * 127.0).round() as i8)
        .collect()
}

/// Cosine similarity of a unit `query` and a quantised unit vector.
pub fn similarity(query: &[f32], stored: &[i8]) -> f32 {
    if query.len() != stored.len() {
        return f32::MIN;
    }
    let (mut dot, mut norm) = (0.0f32, 0.0f32);
    for (q, &s) in query.iter().zip(stored) {
        let s = f32::from(s) / 127.0;
        dot += q * s;
        norm += s * s;
    }
    if norm <= 0.0 {
        return f32::MIN;
    }
    dot / norm.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negations_numbers_and_dates_must_match() {
        let a = signature("Which customers bought Jazz in 2010?");
        let b = signature("Which customers did not buy Jazz in 2010?");
        let c = signature("Which customers bought jazz in 2009?");
        let d = signature("which customers bought Jazz, in 2010");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, d);
        assert!(!is_hit(0.99, 0.9, &a, &b));
        assert!(is_hit(0.95, 0.9, &a, &d));
        assert!(!is_hit(0.85, 0.9, &a, &d));
    }

    #[test]
    fn contractions_orderings_and_periods_count() {
        assert_eq!(
            signature("customers who didn't buy").negations,
            signature("customers who did not buy").negations
        );
        assert_ne!(signature("top 5 artists"), signature("bottom 5 artists"));
        assert_ne!(signature("top 5 artists"), signature("top 10 artists"));
        assert_ne!(signature("sales last month"), signature("sales last year"));
        assert_eq!(
            signature("sales last months"),
            signature("sales last month")
        );
        assert_eq!(
            signature("revenue above 1,000").numbers,
            signature("revenue above 1000.0").numbers
        );
    }

    #[test]
    fn the_kind_of_answer_asked_for_must_match() {
        // c28 of the eval and h06 of its hold-out set embed alike, yet one answer is a list and
        // the other a number (a cache hit answered h06 with c28's table).
        assert_ne!(
            signature(
                "Which genres have more than 100 tracks? Return the genre name and the number \
                 of tracks."
            ),
            signature("How many genres have more than 100 tracks?")
        );
        assert_ne!(
            signature("What is the total revenue per country?"),
            signature("What is the average revenue per country?")
        );
        assert_eq!(
            signature("How many customers are in each country?"),
            signature("how many customers are there in each country")
        );
        assert_eq!(
            signature("How many customers do we have?").asks,
            BTreeSet::from(["count".to_owned()])
        );
    }

    #[test]
    fn normalised_questions_ignore_case_and_punctuation() {
        assert_eq!(normalise("  How many CUSTOMERS?! "), "how many customers");
        assert_eq!(normalise("Sales in 2010."), "sales in 2010");
    }

    #[test]
    fn scopes_separate_roles_regions_versions_and_modes() {
        let base = scope("analyst", "emea", "v1", "auto");
        for other in [
            scope("catalog", "emea", "v1", "auto"),
            scope("analyst", "amer", "v1", "auto"),
            scope("analyst", "emea", "v2", "auto"),
            scope("analyst", "emea", "v1", "sql"),
            scope("analyste", "mea", "v1", "auto"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn quantised_similarity_is_close() {
        let a: Vec<f32> = (0..384).map(|i| (i * 7 % 13) as f32 - 6.0).collect();
        let norm = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        let a: Vec<f32> = a.iter().map(|v| v / norm).collect();
        let mut b = a.clone();
        b[0] += 0.05;
        let nb = b.iter().map(|v| v * v).sum::<f32>().sqrt();
        let b: Vec<f32> = b.iter().map(|v| v / nb).collect();
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let approx = similarity(&a, &quantise(&b));
        assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
        assert_eq!(similarity(&a, &quantise(&b[..10])), f32::MIN);
    }
}
