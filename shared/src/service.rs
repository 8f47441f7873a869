//! What a function is, to the server that runs it: a name, the dependencies its `/health` probes,
//! and its routes (with their OpenAPI description).

use utoipa_axum::router::OpenApiRouter;

use crate::config::Settings;
use crate::state::AppState;

/// A backing service a function talks to, and so probes in `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// PostgreSQL (with pgvector, hypopg and pg_stat_statements).
    Postgres,
    /// Redis (cache, memory, rate limits).
    Redis,
    /// The Chroma vector store.
    Chroma,
}

impl Dependency {
    /// The name used in `/health` checks and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Chroma => "chroma",
        }
    }
}

/// One Quarry function, ready to be served alone or mounted beside the others by `quarry dev`.
pub struct Service {
    /// Short name, e.g. `sql-exec`.
    pub name: &'static str,
    /// What `/health` probes for this function.
    pub dependencies: &'static [Dependency],
    /// The function's own routes (without `/health`, `/metrics` and `/openapi.json`, which the
    /// server adds once).
    pub routes: fn() -> OpenApiRouter<AppState>,
    /// The body size and time its requests may take; most functions take
    /// [`RequestLimits::standard`], `ingest` takes uploads and OCR time.
    pub request_limits: fn(&Settings) -> RequestLimits,
}

/// How large a request body may be and how long a request may run, per function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Larger bodies get 413 before a handler runs.
    pub max_body_bytes: usize,
    /// Slower requests get 408.
    pub timeout: std::time::Duration,
}

impl RequestLimits {
    /// `MAX_BODY_BYTES` and `REQUEST_TIMEOUT_SECS`.
    pub fn standard(settings: &Settings) -> Self {
        Self {
            max_body_bytes: settings.max_body_bytes,
            timeout: settings.request_timeout,
        }
    }
}
