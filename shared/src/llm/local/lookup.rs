//! Prompt-lookup drafting: guesses the next few tokens from what followed the text's last few
//! tokens where they occurred before, in the prompt or in what was generated.
//!
//! A query copies much of its text from its prompt: table and column names from the schema,
//! join clauses from the retrieved examples; an answer copies names and figures from the rows it
//! is given. The worker evaluates such a guess together with the token it has just chosen, in
//! one batch, and keeps the guessed tokens for as long as each is what greedy decoding picks, so
//! one decode step can yield several tokens of the same text.
//!
//! A wrong guess is not free: on two cores each extra token in a decode step costs about half a
//! step (measured: a step of width 1 ~100 ms, 2 ~150 ms, 4 ~190–220 ms, 8 ~400 ms). Copying
//! whatever followed the latest occurrence of the last two tokens was right about a third of the
//! time, which gained nothing (docs/benchmarks.md). So a token is only guessed when every earlier occurrence of its context
//! (or [`Lookup::min_share`] of them) was followed by the same token, and the longest context is
//! asked first: `c.` followed by thirty different columns is no guess, `customer_id = c.` always
//! followed by `customer_id` is.

/// Drafted tokens a job checks before its drafts must have been right half the time to go on.
pub const PROBATION: usize = 4;

/// Whether a job that has drafted `drafted` tokens and kept `kept` should go on drafting: yes
/// during its first [`PROBATION`] tokens, then while at least half were kept. An extra token in
/// a step costs about half a step, so below that drafting loses time; prose after a table
/// repeats its values less than a query repeats its prompt.
pub fn worth_drafting(drafted: usize, kept: usize) -> bool {
    drafted < PROBATION || 2 * kept >= drafted
}

/// How drafts are looked up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookup {
    /// Longest context (trailing tokens) looked up; longer ones are asked first.
    pub max_ngram: usize,
    /// Shortest context looked up.
    pub min_ngram: usize,
    /// Most tokens drafted per step.
    pub max_draft: usize,
    /// Share of a context's occurrences that must agree on the token after it (0 to 1).
    pub min_share: f32,
}

impl Lookup {
    /// The worker's lookup, drafting up to `max_draft` tokens: contexts of 5 down to 3 tokens
    /// whose every earlier occurrence agrees. Measured on 20 eval questions: two-token contexts
    /// were right 44 % of the time and gained nothing; three-token ones were right 69 % of the
    /// time in queries, which then generated 9 % faster.
    pub const fn agreed(max_draft: usize) -> Self {
        Self {
            max_ngram: 5,
            min_ngram: 3,
            max_draft,
            min_share: 1.0,
        }
    }

    /// The draft after `text`: at most [`Lookup::max_draft`] (and `limit`) tokens, each the
    /// token that followed its context in `text` often enough; it stops at the first position
    /// with no such token. Empty when there is none at all.
    pub fn draft<T: PartialEq + Copy>(&self, text: &[T], limit: usize) -> Vec<T> {
        let want = self.max_draft.min(limit);
        let mut drafted = Vec::with_capacity(want);
        while drafted.len() < want {
            match self.predict(text, &drafted) {
                Some(token) => drafted.push(token),
                None => break,
            }
        }
        drafted
    }

    /// The token after `text` followed by `drafted`, from the longest context that occurs in
    /// `text` with a token after it; `None` when no context occurs or the longest one's
    /// followers disagree (a shorter context would only be less sure).
    fn predict<T: PartialEq + Copy>(&self, text: &[T], drafted: &[T]) -> Option<T> {
        let len = text.len() + drafted.len();
        let at = |i: usize| {
            if i < text.len() {
                text[i]
            } else {
                drafted[i - text.len()]
            }
        };
        let longest = self.max_ngram.min(len.saturating_sub(1));
        for n in (self.min_ngram.max(1)..=longest).rev() {
            let context: Vec<T> = (len - n..len).map(at).collect();
            // (follower, count, latest start): few distinct followers in practice.
            let mut followers: Vec<(T, usize, usize)> = Vec::new();
            // Occurrences that end before text's last token, so each has a follower in text.
            for start in 0..text.len().saturating_sub(n) {
                if text[start..start + n] == context[..] {
                    let follower = text[start + n];
                    match followers.iter_mut().find(|(t, _, _)| *t == follower) {
                        Some((_, count, latest)) => {
                            *count += 1;
                            *latest = start;
                        }
                        None => followers.push((follower, 1, start)),
                    }
                }
            }
            let total: usize = followers.iter().map(|&(_, count, _)| count).sum();
            if total == 0 {
                continue;
            }
            // Ties go to the most recent: the example or clause being copied is the nearest.
            let (best, count, _) = followers
                .iter()
                .copied()
                .max_by_key(|&(_, count, latest)| (count, latest))?;
            return (count as f32 >= self.min_share * total as f32).then_some(best);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOKUP: Lookup = Lookup {
        max_ngram: 3,
        min_ngram: 2,
        max_draft: 4,
        min_share: 1.0,
    };

    #[test]
    fn a_repeated_run_drafts_what_followed_it() {
        // "JOIN invoice i ON i.customer_id = c.customer_id" seen once, then "JOIN invoice" again.
        let text = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2];
        assert_eq!(LOOKUP.draft(&text, 16), [3, 4, 5, 6]);
    }

    #[test]
    fn the_draft_continues_from_its_own_tokens() {
        // After [1, 2] comes 3; after [2, 3] comes 4 in the only occurrence, and so on: the
        // context of each drafted token includes the drafted tokens before it.
        let text = [1, 2, 3, 4, 0, 1, 2];
        assert_eq!(LOOKUP.draft(&text, 16), [3, 4, 0, 1]);
    }

    #[test]
    fn a_context_followed_by_different_tokens_is_no_guess() {
        // [5, 6] was followed by 7 once and 9 once: nothing is drafted, and the shorter context
        // is not asked instead.
        let text = [5, 6, 7, 0, 5, 6, 9, 5, 6];
        assert!(LOOKUP.draft(&text, 16).is_empty());
        // With half of the occurrences enough, the more recent of the tied followers is taken.
        let half = Lookup {
            min_share: 0.5,
            ..LOOKUP
        };
        assert_eq!(half.draft(&text, 1), [9]);
    }

    #[test]
    fn the_longest_context_is_asked_first() {
        // [5, 6] disagrees (1 then 3), but [4, 5, 6] was always followed by 1.
        let text = [4, 5, 6, 1, 2, 5, 6, 3, 4, 5, 6];
        assert_eq!(LOOKUP.draft(&text, 1), [1]);
        // The drafted 1 makes [5, 6, 1] the context, which occurred once, followed by 2.
        assert_eq!(LOOKUP.draft(&text, 2), [1, 2]);
    }

    #[test]
    fn nothing_is_drafted_without_a_match_or_room() {
        assert!(LOOKUP.draft(&[1, 2, 3, 4], 16).is_empty());
        assert!(LOOKUP.draft::<i32>(&[], 16).is_empty());
        assert!(LOOKUP.draft(&[7], 16).is_empty());
        // A single repeated token is below the shortest context.
        assert!(LOOKUP.draft(&[1, 2, 3, 1], 16).is_empty());
        assert!(LOOKUP.draft(&[1, 2, 3, 1, 2], 0).is_empty());
    }

    #[test]
    fn a_job_stops_drafting_once_most_drafts_were_wrong() {
        assert!(worth_drafting(0, 0));
        assert!(worth_drafting(PROBATION - 1, 0));
        assert!(!worth_drafting(PROBATION, 1));
        assert!(worth_drafting(PROBATION, 2));
        assert!(worth_drafting(30, 15));
        assert!(!worth_drafting(30, 14));
    }

    #[test]
    fn the_draft_is_capped_by_the_limit() {
        let text = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2];
        assert_eq!(LOOKUP.draft(&text, 2), [3, 4]);
        // A run of one token keeps predicting itself, up to the cap.
        assert_eq!(LOOKUP.draft(&[8, 8, 8], 16), [8, 8, 8, 8]);
    }
}
