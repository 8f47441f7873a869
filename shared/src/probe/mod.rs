//! Probes of the real dependencies, run by `/health`.
//!
//! Each probe does the cheapest thing that proves the dependency answers (PostgreSQL `SELECT 1`,
//! Redis `PING`, Chroma's heartbeat). [`run_all`] runs them concurrently, each under the same
//! deadline, so one hung dependency cannot make `/health` itself hang.

mod chroma;
mod postgres;
mod redis;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::{join_all, BoxFuture};
use serde::Serialize;

pub use self::chroma::ChromaProbe;
pub use self::postgres::PostgresProbe;
pub use self::redis::RedisProbe;

/// Why a probe failed. Deliberately coarse: the detail goes to the logs, not to `/health`.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The dependency did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The dependency refused or dropped the connection, or answered wrongly.
    #[error("unreachable")]
    Unreachable(#[source] anyhow::Error),
}

/// A dependency that can be asked whether it is up.
pub trait Probe: Send + Sync {
    /// The name shown in `/health` (`postgres`, `redis`, `chroma`).
    fn name(&self) -> &'static str;
    /// Ok when the dependency answered correctly.
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>>;
}

/// The outcome of one probe.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// `ok` or `error`.
    pub status: &'static str,
    /// How long the probe took, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed (`timed out`, `unreachable`), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CheckResult {
    /// Whether the dependency answered.
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Runs every probe concurrently, each bounded by `deadline`.
pub async fn run_all(
    probes: &[std::sync::Arc<dyn Probe>],
    deadline: Duration,
) -> BTreeMap<&'static str, CheckResult> {
    let runs = probes.iter().map(|probe| async move {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(deadline, probe.check()).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::Timeout),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let result = match outcome {
            Ok(()) => CheckResult {
                status: "ok",
                latency_ms,
                error: None,
            },
            Err(err) => {
                let cause = match &err {
                    ProbeError::Timeout => "timed out".to_owned(),
                    ProbeError::Unreachable(source) => format!("{source:#}"),
                };
                tracing::warn!(dependency = probe.name(), error = %cause, "health probe failed");
                CheckResult {
                    status: "error",
                    latency_ms,
                    error: Some(err.to_string()),
                }
            }
        };
        (probe.name(), result)
    });
    join_all(runs).await.into_iter().collect()
}
