//! The semantic answer cache in Redis: per scope (see [`crate::cache_key::scope`]) an index of
//! the questions answered — normalised text, [`Signature`], quantised embedding — and each
//! answer under its own key. A lookup reads the scope's index, finds the most similar question
//! with the same signature, and returns its answer if the similarity clears the threshold.
//!
//! Entries expire (`ASK_CACHE_TTL_SECS`); the scope includes the data version, so after an
//! ingest or a data change lookups go to a new, empty scope and the old one ages out.

use std::time::Duration;

use base64::Engine as _;
use quarry_shared::lazy_redis::{LazyRedis, RedisUnavailable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache_key::{is_hit, quantise, similarity, Signature};

/// Questions indexed per scope before the index starts over (a lookup reads the whole index).
const MAX_ENTRIES: i64 = 1000;

#[derive(Serialize, Deserialize)]
struct Entry {
    sig: Signature,
    /// Base64 of the quantised embedding.
    emb: String,
}

/// The cache.
pub struct SemanticCache {
    redis: LazyRedis,
    prefix: String,
    threshold: f32,
    ttl: Duration,
}

/// A cached answer and how close its question was.
pub struct Hit {
    /// The answer as it was returned (JSON of the response).
    pub answer: String,
    /// Cosine similarity of the two questions.
    pub similarity: f32,
}

impl SemanticCache {
    /// A cache in `redis` under `prefix`, hitting at `threshold`, keeping answers for `ttl`.
    pub fn new(
        redis: Option<redis::Client>,
        prefix: &str,
        threshold: f32,
        ttl: Duration,
        deadline: Duration,
    ) -> Self {
        Self {
            redis: LazyRedis::new(redis, deadline),
            prefix: prefix.to_owned(),
            threshold,
            ttl,
        }
    }

    fn index_key(&self, scope: &str) -> String {
        format!("{}:cache:{scope}:idx", self.prefix)
    }

    fn answer_key(&self, scope: &str, id: &str) -> String {
        format!("{}:cache:{scope}:a:{id}", self.prefix)
    }

    /// The answer stored for exactly the question `normalised` ([`crate::cache_key::normalise`])
    /// in `scope`. Equal texts have equal signatures, so this needs no comparison and no
    /// embedding: a repeated question is answered with two Redis reads.
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn lookup_exact(
        &self,
        scope: &str,
        normalised: &str,
    ) -> Result<Option<String>, RedisUnavailable> {
        let answer_key = self.answer_key(scope, &entry_id(normalised));
        self.redis
            .run(|mut conn| async move {
                redis::cmd("GET")
                    .arg(&answer_key)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }

    /// The cached answer for a question with `embedding` and `signature` in `scope`, if any.
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn lookup(
        &self,
        scope: &str,
        embedding: &[f32],
        signature: &Signature,
    ) -> Result<Option<Hit>, RedisUnavailable> {
        let index_key = self.index_key(scope);
        let index: Vec<(String, String)> = self
            .redis
            .run(|mut conn| async move {
                redis::cmd("HGETALL")
                    .arg(&index_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let best = index
            .iter()
            .filter_map(|(id, raw)| {
                let entry: Entry = serde_json::from_str(raw).ok()?;
                let stored = base64::engine::general_purpose::STANDARD
                    .decode(&entry.emb)
                    .ok()?;
                let stored: Vec<i8> = stored.into_iter().map(|b| b as i8).collect();
                let sim = similarity(embedding, &stored);
                is_hit(sim, self.threshold, &entry.sig, signature).then_some((id, sim))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((id, sim)) = best else {
            return Ok(None);
        };
        let answer_key = self.answer_key(scope, id);
        let answer: Option<String> = self
            .redis
            .run(|mut conn| async move {
                redis::cmd("GET")
                    .arg(&answer_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(answer.map(|answer| Hit {
            answer,
            similarity: sim,
        }))
    }

    /// Stores `answer` (the response JSON) for the question `normalised` in `scope`.
    ///
    /// # Errors
    /// [`RedisUnavailable`].
    pub async fn store(
        &self,
        scope: &str,
        normalised: &str,
        embedding: &[f32],
        signature: &Signature,
        answer: &str,
    ) -> Result<(), RedisUnavailable> {
        let id = entry_id(normalised);
        let bytes: Vec<u8> = quantise(embedding).into_iter().map(|v| v as u8).collect();
        let entry = Entry {
            sig: signature.clone(),
            emb: base64::engine::general_purpose::STANDARD.encode(bytes),
        };
        let entry = serde_json::to_string(&entry).unwrap_or_default();
        let index_key = self.index_key(scope);
        let answer_key = self.answer_key(scope, &id);
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let answer = answer.to_owned();
        self.redis
            .run(|mut conn| async move {
                let len: i64 = redis::cmd("HLEN")
                    .arg(&index_key)
                    .query_async(&mut conn)
                    .await?;
                let mut pipe = redis::pipe();
                if len >= MAX_ENTRIES {
                    pipe.del(&index_key);
                }
                pipe.set_ex(&answer_key, answer, u64::try_from(ttl).unwrap_or(u64::MAX))
                    .hset(&index_key, &id, entry)
                    .expire(&index_key, ttl);
                pipe.query_async::<()>(&mut conn).await
            })
            .await
    }
}

/// The key of a question's entry: its normalised text, hashed.
fn entry_id(normalised: &str) -> String {
    Sha256::digest(normalised.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
