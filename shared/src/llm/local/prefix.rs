//! The prompt-prefix cache: the model's state (its KV cache) after a prompt prefix, kept so the
//! next prompt that starts the same way only pays for its own tokens.
//!
//! A prefix is a system turn: instructions plus the schema context of one (role, schema version),
//! typically 500–1,500 tokens, while a question is 20–50. Entries are whole token sequences, so a
//! stale entry (the schema changed) simply stops matching and ages out.

use std::collections::VecDeque;

/// A least-recently-used cache of states keyed by the token sequence that produced them.
#[derive(Debug)]
pub struct PrefixCache<S> {
    entries: VecDeque<(Vec<i32>, S)>,
    capacity: usize,
}

impl<S> PrefixCache<S> {
    /// An empty cache holding at most `capacity` states (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// The longest cached prefix of `tokens`: its length and state. A hit becomes the most
    /// recently used entry.
    pub fn longest(&mut self, tokens: &[i32]) -> Option<(usize, &S)> {
        let (index, len) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (prefix, _))| tokens.starts_with(prefix))
            .map(|(i, (prefix, _))| (i, prefix.len()))
            .max_by_key(|&(_, len)| len)?;
        let entry = self.entries.remove(index)?;
        self.entries.push_back(entry);
        self.entries.back().map(|(_, state)| (len, state))
    }

    /// Whether `prefix` is cached (without touching recency).
    pub fn contains(&self, prefix: &[i32]) -> bool {
        self.entries.iter().any(|(p, _)| p == prefix)
    }

    /// Caches `state` for `prefix`, dropping the least recently used entry when full.
    pub fn insert(&mut self, prefix: Vec<i32>, state: S) {
        if self.capacity == 0 {
            return;
        }
        self.entries.retain(|(p, _)| *p != prefix);
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((prefix, state));
    }

    /// Number of cached states.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How many leading tokens `a` and `b` share.
pub fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_prefix_wins() {
        let mut cache = PrefixCache::new(4);
        cache.insert(vec![1, 2], "short");
        cache.insert(vec![1, 2, 3], "long");
        cache.insert(vec![9], "other");
        assert_eq!(cache.longest(&[1, 2, 3, 4]), Some((3, &"long")));
        assert_eq!(cache.longest(&[1, 2, 4]), Some((2, &"short")));
        assert_eq!(cache.longest(&[2]), None);
        // A prefix longer than the prompt does not match.
        assert_eq!(cache.longest(&[1]), None);
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut cache = PrefixCache::new(2);
        cache.insert(vec![1], 'a');
        cache.insert(vec![2], 'b');
        assert!(cache.longest(&[1, 5]).is_some()); // `a` is now the most recent
        cache.insert(vec![3], 'c');
        assert!(cache.contains(&[1]));
        assert!(!cache.contains(&[2]));
        assert!(cache.contains(&[3]));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn reinserting_replaces_and_zero_capacity_keeps_nothing() {
        let mut cache = PrefixCache::new(2);
        cache.insert(vec![1], 'a');
        cache.insert(vec![1], 'b');
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.longest(&[1]), Some((1, &'b')));
        let mut off = PrefixCache::new(0);
        off.insert(vec![1], 'a');
        assert!(off.is_empty());
    }

    #[test]
    fn common_prefix_counts_shared_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }
}
