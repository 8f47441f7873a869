//! Reads from a question whether it asks for the top rows of each group: "For each year, which
//! customer spent the most?", "In each sales region, which genre brought in the most revenue?",
//! "Which genre has the fewest tracks for each media type?". The SQL side is
//! [`quarry_shared::sql::top_per_group`].
//!
//! Three things must be in one sentence: "for each" or "in each" and the words after it (up to a
//! comma, "which", or a word such as "from" that starts a qualifier: "each year from 2008 to
//! 2011" is about years), the word "which", and "the" before a superlative. "What were the
//! largest totals for each year?" asks for a value per group, not for a row of it, and "at
//! least one" is no superlative; neither is read as a top. "per" is not read either: "revenue
//! per customer" is a ratio far more often than a group. Nor is a count after "which" or the
//! superlative ("which 3 genres", "the top 5"): that asks for the first few of each group.

use quarry_shared::sql::top_per_group::PerGroup;

/// Superlatives of the largest value.
const LARGEST: &[&str] = &[
    "most", "highest", "largest", "biggest", "greatest", "top", "best", "longest", "dearest",
    "latest",
];

/// Superlatives of the smallest value.
const SMALLEST: &[&str] = &[
    "least", "fewest", "lowest", "smallest", "shortest", "cheapest", "earliest", "worst",
];

/// Words that end the name of the group and start a qualifier of it.
const QUALIFIERS: &[&str] = &[
    "from", "in", "of", "between", "during", "to", "since", "with", "by", "and", "that", "who",
    "where", "for", "on", "at",
];

/// The longest group name read, in words ("support agent", "sales region", "media type").
const MAX_GROUP_WORDS: usize = 3;

/// What `question` asks for, when it asks for the top rows of each group.
pub fn read(question: &str) -> Option<PerGroup> {
    sentences(question).find_map(|sentence| read_sentence(&sentence))
}

fn read_sentence(words: &[String]) -> Option<PerGroup> {
    let each = words
        .windows(2)
        .position(|pair| matches!(pair[0].as_str(), "for" | "in") && pair[1] == "each")?
        + 2;
    let group: Vec<String> = words[each..]
        .iter()
        .take_while(|w| {
            w.as_str() != "," && w.as_str() != "which" && !QUALIFIERS.contains(&w.as_str())
        })
        .take(MAX_GROUP_WORDS)
        .cloned()
        .collect();
    let which = words.iter().position(|w| w == "which")?;
    // "Which 3 genres …", "the top 5 …": the first N of each group, not the first.
    if group.is_empty() || words.get(which + 1).is_some_and(|w| is_number(w)) {
        return None;
    }
    let (at, largest) = words.windows(2).enumerate().find_map(|(i, pair)| {
        if pair[0] != "the" {
            return None;
        }
        if LARGEST.contains(&pair[1].as_str()) {
            Some((i + 2, true))
        } else if SMALLEST.contains(&pair[1].as_str()) {
            Some((i + 2, false))
        } else {
            None
        }
    })?;
    if words.get(at).is_some_and(|w| is_number(w)) {
        return None;
    }
    Some(PerGroup {
        each: group,
        largest,
    })
}

/// Whether `word` is a count: digits, or a number word up to twenty.
fn is_number(word: &str) -> bool {
    const WORDS: &[&str] = &[
        "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "fifteen", "twenty",
    ];
    word.chars().all(|c| c.is_ascii_digit()) || WORDS.contains(&word)
}

/// `question` in lower-case words, one list per sentence (a sentence ends at `?`, `!`, `;` or
/// a full stop that is not inside a number); commas are kept as words of their own.
fn sentences(question: &str) -> impl Iterator<Item = Vec<String>> {
    let mut all = Vec::new();
    let mut sentence = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = question.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let in_number = c == '.'
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            && i > 0
            && chars[i - 1].is_ascii_digit();
        if c.is_alphanumeric() || c == '\'' || c == '-' || in_number {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            sentence.push(std::mem::take(&mut word));
        }
        match c {
            ',' => sentence.push(",".to_owned()),
            '?' | '!' | ';' | '.' => all.push(std::mem::take(&mut sentence)),
            _ => {}
        }
    }
    if !word.is_empty() {
        sentence.push(word);
    }
    all.push(sentence);
    all.into_iter().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(question: &str) -> Option<(String, bool)> {
        read(question).map(|p| (p.each.join(" "), p.largest))
    }

    #[test]
    fn the_top_of_each_group_is_read() {
        for (question, each, largest) in [
            (
                "For each year, which customer spent the most (sum of invoice totals that \
                 year)? Return the year, the customer's first and last name.",
                "year",
                true,
            ),
            (
                "In each sales region, which genre brought in the most revenue?",
                "sales region",
                true,
            ),
            (
                "For each year from 2008 to 2011, which month had the highest revenue?",
                "year",
                true,
            ),
            (
                "For each media type, which genre has the most tracks?",
                "media type",
                true,
            ),
            (
                "Which genre has the fewest tracks in each playlist?",
                "playlist",
                false,
            ),
            (
                "which artist's album is the cheapest for each genre",
                "genre",
                false,
            ),
        ] {
            assert_eq!(
                group(question),
                Some((each.to_owned(), largest)),
                "{question}"
            );
        }
    }

    #[test]
    fn other_questions_are_not_read_as_a_top() {
        for question in [
            // A value per group, not a row of it (c43).
            "For each year, what were the smallest, largest and average invoice totals?",
            // "at least" is no superlative (h09).
            "For each genre, how many different customers have bought at least one of its \
             tracks?",
            // A top over everything.
            "Which customer spent the most?",
            // A ratio.
            "Which country has the highest revenue per customer?",
            // The parts in different sentences.
            "List the totals for each year. Which one is the highest?",
            // The first N of each group.
            "For each region, which 3 genres brought in the most revenue?",
            "In each country, which customers are the top 5 spenders?",
            "For each genre, which are the top three albums?",
            "",
            "?,.",
        ] {
            assert_eq!(group(question), None, "{question}");
        }
    }

    #[test]
    fn decimals_do_not_end_a_sentence() {
        assert_eq!(
            group("For each genre priced over 0.99, which album has the most tracks?"),
            Some(("genre priced over".to_owned(), true))
        );
    }
}
