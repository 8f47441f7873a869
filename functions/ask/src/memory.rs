//! Conversation memory in Redis, scoped by the caller's `sub`:
//!
//! - the last turns of a session (question, the SQL that answered it, the answer), so that a
//!   follow-up such as "and in 2010?" is read against what came before; kept 30 minutes,
//!   refreshed each time the session is used;
//! - long-term facts a user asked `ask` to remember, kept 30 days (refreshed on each write),
//!   which the user can list and delete.
//!
//! Keys hold a hash of `sub`, never the subject itself, and every key includes it, so one user
//! can never read another's memory. Redis being down is not an error here: the caller answers
//! without memory and says so.

use std::time::Duration;

use quarry_shared::lazy_redis::{LazyRedis, RedisUnavailable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a session's turns live after their last use.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// How long facts live after the last one was written.
pub const FACTS_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Turns kept per session.
pub const WINDOW: isize = 6;
/// Facts kept per user.
pub const MAX_FACTS: usize = 50;
/// Longest fact, in characters.
pub const MAX_FACT_CHARS: usize = 500;

/// One question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// The question.
    pub question: String,
    /// The SQL that answered it, if any.
    pub sql: Option<String>,
    /// The answer (shortened).
    pub answer: String,
}

/// A remembered fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fact {
    /// Its id, for deletion.
    pub id: Uuid,
    /// The fact.
    pub text: String,
    /// When it was remembered (Unix seconds).
    pub created_at: i64,
}

/// The memory store.
pub struct Memory {
    redis: LazyRedis,
    prefix: String,
}

impl Memory {
    /// Memory in `redis` under keys starting with `prefix`.
    pub fn new(redis: Option<redis::Client>, prefix: &str, deadline: Duration) -> Self {
        Self {
            redis: LazyRedis::new(redis, deadline),
            prefix: prefix.to_owned(),
        }
    }

    fn scope(sub: &str) -> String {
        let digest = Sha256::digest(sub.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn session_key(&self, sub: &str, session: &str) -> String {
        format!("{}:mem:{}:s:{session}", self.prefix, Self::scope(sub))
    }

    fn facts_key(&self, sub: &str) -> String {
        format!("{}:mem:{}:facts", self.prefix, Self::scope(sub))
    }

    /// The session's turns, oldest first; refreshes the session's lifetime.
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn turns(&self, sub: &str, session: &str) -> Result<Vec<Turn>, RedisUnavailable> {
        let key = self.session_key(sub, session);
        let raw: Vec<String> = self
            .redis
            .run(|mut conn| async move {
                let (raw, _): (Vec<String>, i64) = redis::pipe()
                    .lrange(&key, 0, -1)
                    .expire(&key, ttl(SESSION_TTL))
                    .query_async(&mut conn)
                    .await?;
                Ok(raw)
            })
            .await?;
        // A turn that does not parse (written by another version) is skipped, not fatal.
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect())
    }

    /// Appends a turn, keeping the last [`WINDOW`].
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn push_turn(
        &self,
        sub: &str,
        session: &str,
        turn: &Turn,
    ) -> Result<(), RedisUnavailable> {
        let key = self.session_key(sub, session);
        let value = serde_json::to_string(turn).unwrap_or_default();
        self.redis
            .run(|mut conn| async move {
                redis::pipe()
                    .rpush(&key, value)
                    .ltrim(&key, -WINDOW, -1)
                    .expire(&key, ttl(SESSION_TTL))
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
    }

    /// The user's facts, oldest first.
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn facts(&self, sub: &str) -> Result<Vec<Fact>, RedisUnavailable> {
        let key = self.facts_key(sub);
        let raw: Vec<String> =
            self.redis
                .run(|mut conn| async move {
                    redis::cmd("HVALS").arg(&key).query_async(&mut conn).await
                })
                .await?;
        let mut facts: Vec<Fact> = raw
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect();
        facts.sort_by_key(|f| (f.created_at, f.id));
        Ok(facts)
    }

    /// Remembers `text` for the user; the oldest fact goes when there are [`MAX_FACTS`].
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn add_fact(
        &self,
        sub: &str,
        text: &str,
        now: i64,
    ) -> Result<Fact, RedisUnavailable> {
        let fact = Fact {
            id: Uuid::new_v4(),
            text: text.chars().take(MAX_FACT_CHARS).collect(),
            created_at: now,
        };
        let existing = self.facts(sub).await?;
        let key = self.facts_key(sub);
        let value = serde_json::to_string(&fact).unwrap_or_default();
        let id = fact.id.to_string();
        let evict: Vec<String> = existing
            .iter()
            .take((existing.len() + 1).saturating_sub(MAX_FACTS))
            .map(|f| f.id.to_string())
            .collect();
        self.redis
            .run(|mut conn| async move {
                let mut pipe = redis::pipe();
                pipe.hset(&key, id, value);
                if !evict.is_empty() {
                    pipe.hdel(&key, evict);
                }
                pipe.expire(&key, ttl(FACTS_TTL));
                pipe.query_async::<()>(&mut conn).await
            })
            .await?;
        Ok(fact)
    }

    /// Forgets one fact; `false` when the user had no such fact.
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn delete_fact(&self, sub: &str, id: Uuid) -> Result<bool, RedisUnavailable> {
        let key = self.facts_key(sub);
        let removed: i64 = self
            .redis
            .run(|mut conn| async move {
                redis::cmd("HDEL")
                    .arg(&key)
                    .arg(id.to_string())
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(removed > 0)
    }

    /// Forgets every fact of the user; how many there were.
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn delete_facts(&self, sub: &str) -> Result<usize, RedisUnavailable> {
        let count = self.facts(sub).await?.len();
        let key = self.facts_key(sub);
        self.redis
            .run(|mut conn| async move {
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await?;
        Ok(count)
    }
}

fn ttl(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Whether `session_id` is acceptable: 1–64 characters of letters, digits, `-` and `_` (it
/// becomes part of a Redis key).
pub fn valid_session_id(session_id: &str) -> bool {
    (1..=64).contains(&session_id.len())
        && session_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_hash_the_subject() {
        let a = Memory::scope("alice@example.com");
        assert_eq!(a.len(), 32);
        assert!(!a.contains("alice"));
        assert_ne!(a, Memory::scope("bob@example.com"));
        assert_eq!(a, Memory::scope("alice@example.com"));
    }

    #[test]
    fn session_ids_are_checked() {
        assert!(valid_session_id("chat-42_a"));
        for bad in ["", "a:b", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_session_id(bad), "{bad:?}");
        }
    }
}
