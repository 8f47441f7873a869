//! Redis probe: `PING` on a fresh connection.

use futures::future::BoxFuture;

use super::{Probe, ProbeError};

/// Probes Redis with `PING`. A fresh connection each time: the probe must notice a restarted
/// server, and `/health` is called rarely enough for that to cost nothing.
pub struct RedisProbe(pub redis::Client);

impl Probe for RedisProbe {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin(async move {
            let mut conn = self
                .0
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| ProbeError::Unreachable(e.into()))?;
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| ProbeError::Unreachable(e.into()))?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(ProbeError::Unreachable(anyhow::anyhow!(
                    "unexpected PING reply"
                )))
            }
        })
    }
}
