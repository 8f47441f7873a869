//! One Redis connection per user of Redis (rate limits, conversation memory, the answer cache),
//! opened on first use, bounded by a deadline on every call, and dropped after a failure so the
//! next call reconnects: Redis going away and coming back needs no restart, and a slow Redis
//! costs a caller at most the deadline.

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// Why a Redis call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    /// No `REDIS_URL` is configured.
    #[error("no Redis is configured")]
    NotConfigured,
    /// The call took longer than the deadline.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or the command failed.
    #[error("Redis failed: {0}")]
    Failed(#[from] redis::RedisError),
}

/// A lazily opened, self-healing Redis connection.
pub struct LazyRedis {
    client: Option<redis::Client>,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    deadline: Duration,
}

impl LazyRedis {
    /// A connection to `client` (none: every call fails with [`RedisUnavailable::NotConfigured`]),
    /// each call bounded by `deadline`.
    pub fn new(client: Option<redis::Client>, deadline: Duration) -> Self {
        Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            deadline,
        }
    }

    /// Whether a Redis is configured at all.
    pub fn is_configured(&self) -> bool {
        self.client.is_some()
    }

    /// Runs `call` on the connection (opening it if needed) within the deadline.
    ///
    /// # Errors
    /// [`RedisUnavailable`]; after a failure or timeout the connection is dropped.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let Some(client) = &self.client else {
            return Err(RedisUnavailable::NotConfigured);
        };
        let attempt = async {
            let conn = {
                let mut guard = self.conn.lock().await;
                match guard.as_ref() {
                    Some(conn) => conn.clone(),
                    None => {
                        let conn = client.get_multiplexed_async_connection().await?;
                        *guard = Some(conn.clone());
                        conn
                    }
                }
            };
            call(conn).await
        };
        let outcome = match tokio::time::timeout(self.deadline, attempt).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => RedisUnavailable::Failed(err),
            Err(_) => RedisUnavailable::Timeout(self.deadline),
        };
        *self.conn.lock().await = None;
        Err(outcome)
    }
}
