//! The prompt-prefix cache: the model's state (its KV cache) after a prompt prefix, kept so the
//! next prompt that starts the same way only pays for its own tokens.
//!
//! A prefix is a system turn: instructions plus the schema context of one (role, schema version),
//! typically 500–1,500 tokens, while a question is 20–50. Entries are whole token sequences, so a
//! stale entry (the schema changed) simply stops matching and ages out.

use std::collections::VecDeque;

/// A least-recently-used cache of states keyed by the token sequence that produced them, bounded
/// by a number of entries and by the bytes the states take together.
#[derive(Debug)]
pub struct PrefixCache<S> {
    /// Prefix, state and the state's size in bytes; least recently used first.
    entries: VecDeque<(Vec<i32>, S, usize)>,
    capacity: usize,
    budget: usize,
    bytes: usize,
}

impl<S> PrefixCache<S> {
    /// An empty cache holding at most `capacity` states of at most `budget` bytes in all
    /// (either 0 disables it).
    pub fn new(capacity: usize, budget: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            budget,
            bytes: 0,
        }
    }

    /// The longest cached prefix of `tokens`: its length and state. A hit becomes the most
    /// recently used entry.
    pub fn longest(&mut self, tokens: &[i32]) -> Option<(usize, &S)> {
        let (index, len) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (prefix, _, _))| tokens.starts_with(prefix))
            .map(|(i, (prefix, _, _))| (i, prefix.len()))
            .max_by_key(|&(_, len)| len)?;
        let entry = self.entries.remove(index)?;
        self.entries.push_back(entry);
        self.entries.back().map(|(_, state, _)| (len, state))
    }

    /// Whether `prefix` is cached (without touching recency).
    pub fn contains(&self, prefix: &[i32]) -> bool {
        self.entries.iter().any(|(p, _, _)| p == prefix)
    }

    /// Caches `state` (`size` bytes) for `prefix`, dropping least recently used entries until
    /// both bounds hold. A state larger than the whole budget is not kept.
    pub fn insert(&mut self, prefix: Vec<i32>, state: S, size: usize) {
        if self.capacity == 0 || size > self.budget {
            return;
        }
        if let Some(index) = self.entries.iter().position(|(p, _, _)| *p == prefix) {
            self.remove(index);
        }
        while self.entries.len() >= self.capacity || self.bytes + size > self.budget {
            if self.remove(0).is_none() {
                break;
            }
        }
        self.bytes += size;
        self.entries.push_back((prefix, state, size));
    }

    fn remove(&mut self, index: usize) -> Option<S> {
        let (_, state, size) = self.entries.remove(index)?;
        self.bytes -= size;
        Some(state)
    }

    /// Number of cached states.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the cached states take.
    pub fn bytes(&self) -> usize {
        self.bytes
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
        let mut cache = PrefixCache::new(4, 100);
        cache.insert(vec![1, 2], "short", 1);
        cache.insert(vec![1, 2, 3], "long", 1);
        cache.insert(vec![9], "other", 1);
        assert_eq!(cache.longest(&[1, 2, 3, 4]), Some((3, &"long")));
        assert_eq!(cache.longest(&[1, 2, 4]), Some((2, &"short")));
        assert_eq!(cache.longest(&[2]), None);
        // A prefix longer than the prompt does not match.
        assert_eq!(cache.longest(&[1]), None);
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut cache = PrefixCache::new(2, 100);
        cache.insert(vec![1], 'a', 1);
        cache.insert(vec![2], 'b', 1);
        assert!(cache.longest(&[1, 5]).is_some()); // `a` is now the most recent
        cache.insert(vec![3], 'c', 1);
        assert!(cache.contains(&[1]));
        assert!(!cache.contains(&[2]));
        assert!(cache.contains(&[3]));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn reinserting_replaces_and_zero_capacity_keeps_nothing() {
        let mut cache = PrefixCache::new(2, 100);
        cache.insert(vec![1], 'a', 1);
        cache.insert(vec![1], 'b', 1);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.longest(&[1]), Some((1, &'b')));
        let mut off = PrefixCache::new(0, 100);
        off.insert(vec![1], 'a', 1);
        assert!(off.is_empty());
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_and_refuses_what_cannot_fit() {
        let mut cache = PrefixCache::new(8, 100);
        cache.insert(vec![1], 'a', 40);
        cache.insert(vec![2], 'b', 40);
        assert_eq!(cache.bytes(), 80);
        cache.insert(vec![3], 'c', 40);
        assert!(!cache.contains(&[1]), "the oldest made room");
        assert_eq!((cache.len(), cache.bytes()), (2, 80));
        cache.insert(vec![4], 'd', 101);
        assert!(!cache.contains(&[4]), "larger than the whole budget");
        assert_eq!((cache.len(), cache.bytes()), (2, 80));
        cache.insert(vec![2], 'B', 10);
        assert_eq!(
            (cache.len(), cache.bytes()),
            (2, 50),
            "a replaced entry's bytes are freed"
        );
    }

    #[test]
    fn common_prefix_counts_shared_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }
}
