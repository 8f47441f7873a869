//! Rate limiting: a token bucket per key (a token's `sub`, or a client IP before authentication).
//!
//! With Redis up, buckets live in Redis and are shared by every instance (one Lua script does the
//! read-refill-take atomically, on Redis's clock). When Redis is down or slow, each instance falls
//! back to its own in-memory buckets: limits get looser by the number of instances, but requests
//! are neither refused wholesale nor let through unlimited.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lazy_redis::{LazyRedis, RedisUnavailable};

/// A limit: sustained rate and burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Tokens added per minute.
    pub per_minute: u32,
    /// Bucket capacity.
    pub burst: u32,
}

/// The pure bucket arithmetic, shared by the local limiter and (as Lua) the Redis one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(limit: Limit, now: Instant) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            updated: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    ///
    /// # Errors
    /// The wait until the next token.
    pub fn take(&mut self, limit: Limit, now: Instant) -> Result<(), Duration> {
        self.spend(limit, now, 1.0)
    }

    /// Whether a token is available, without taking it.
    ///
    /// # Errors
    /// The wait until the next token.
    pub fn peek(&mut self, limit: Limit, now: Instant) -> Result<(), Duration> {
        self.spend(limit, now, 0.0)
    }

    fn spend(&mut self, limit: Limit, now: Instant, cost: f64) -> Result<(), Duration> {
        let per_sec = f64::from(limit.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(f64::from(limit.burst));
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
        }
    }
}

/// At most this many local buckets; past it the idle ones are dropped (a flood of distinct keys
/// must not grow memory without bound).
const MAX_LOCAL_BUCKETS: usize = 100_000;

const SCRIPT: &str = r"
local key = KEYS[1]
local per_sec = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * per_sec)
local wait = 0
if tokens >= 1 then tokens = tokens - cost else wait = (1 - tokens) / per_sec end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', key, math.ceil(burst / per_sec) + 60)
return tostring(wait)
";

/// A rate limiter, shared through Redis when it can be.
pub struct RateLimiter {
    redis: LazyRedis,
    prefix: String,
    script: redis::Script,
    local: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter using `redis` when given (keys under `prefix`), each Redis call bounded by `deadline`.
    pub fn new(redis: Option<redis::Client>, prefix: &str, deadline: Duration) -> Self {
        Self {
            redis: LazyRedis::new(redis, deadline),
            prefix: prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` under `limit`.
    ///
    /// # Errors
    /// How long the caller should wait before retrying.
    pub async fn check(&self, key: &str, limit: Limit) -> Result<(), Duration> {
        self.spend(key, limit, 1).await
    }

    /// Whether `key` has a token left under `limit`, without taking it.
    ///
    /// # Errors
    /// How long the caller should wait before retrying.
    pub async fn peek(&self, key: &str, limit: Limit) -> Result<(), Duration> {
        self.spend(key, limit, 0).await
    }

    async fn spend(&self, key: &str, limit: Limit, cost: u8) -> Result<(), Duration> {
        if self.redis.is_configured() {
            match self.check_redis(key, limit, cost).await {
                Ok(wait) if wait <= 0.0 => return Ok(()),
                Ok(wait) => return Err(Duration::from_secs_f64(wait)),
                Err(err) => {
                    tracing::debug!(error = %err, "rate limiter falling back to local buckets");
                }
            }
        }
        self.check_local(key, limit, cost)
    }

    async fn check_redis(
        &self,
        key: &str,
        limit: Limit,
        cost: u8,
    ) -> Result<f64, RedisUnavailable> {
        let key = format!("{}:rl:{key}", self.prefix);
        let wait: String = self
            .redis
            .run(|mut conn| async move {
                self.script
                    .key(key)
                    .arg(f64::from(limit.per_minute) / 60.0)
                    .arg(limit.burst)
                    .arg(cost)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(wait.parse().unwrap_or(0.0))
    }

    fn check_local(&self, key: &str, limit: Limit, cost: u8) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_LOCAL_BUCKETS && !buckets.contains_key(key) {
            // Buckets idle for a minute are full again anyway; forgetting them changes nothing.
            buckets
                .retain(|_, b| now.saturating_duration_since(b.updated) < Duration::from_secs(60));
            if buckets.len() >= MAX_LOCAL_BUCKETS {
                buckets.clear();
            }
        }
        let bucket = buckets
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::full(limit, now));
        if cost == 0 {
            bucket.peek(limit, now)
        } else {
            bucket.take(limit, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limit = Limit {
            per_minute: 60,
            burst: 3,
        };
        let t0 = Instant::now();
        let mut b = Bucket::full(limit, t0);
        for _ in 0..3 {
            assert!(b.take(limit, t0).is_ok());
        }
        let wait = b.take(limit, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert!(b.take(limit, t0 + Duration::from_millis(500)).is_err());
        assert!(b.take(limit, t0 + Duration::from_millis(1600)).is_ok());
        // Never more than the burst, however long it idles.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take(limit, later).is_ok());
        }
        assert!(b.take(limit, later).is_err());
    }

    #[tokio::test]
    async fn without_redis_buckets_are_local_and_per_key() {
        let limiter = RateLimiter::new(None, "test", Duration::from_millis(100));
        let limit = Limit {
            per_minute: 1,
            burst: 2,
        };
        assert!(limiter.check("a", limit).await.is_ok());
        assert!(limiter.check("a", limit).await.is_ok());
        let wait = limiter.check("a", limit).await.unwrap_err();
        assert!(wait > Duration::from_secs(50));
        assert!(
            limiter.check("b", limit).await.is_ok(),
            "keys do not share buckets"
        );
        // Peeking never spends.
        for _ in 0..5 {
            assert!(limiter.peek("b", limit).await.is_ok());
        }
        assert!(limiter.check("b", limit).await.is_ok());
        assert!(limiter.peek("b", limit).await.is_err());
    }
}
