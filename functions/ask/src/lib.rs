//! # quarry-ask
//!
//! The orchestrator: cache, memory, routing, text-to-SQL, retrieval and the LLM answer.
//!
//! Status: foundation only. It serves `/health` (probing PostgreSQL, Redis and Chroma) and `/metrics`; its API
//! arrives with its own issue. Run it alone with `cargo run -p quarry-ask`, or with every other
//! function under `quarry dev`.
#![warn(missing_docs)]

use quarry_shared::service::{Dependency, RequestLimits, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "ask",
        dependencies: &[Dependency::Postgres, Dependency::Redis, Dependency::Chroma],
        routes,
        request_limits: RequestLimits::standard,
    }
}

/// The function's own routes (none yet beyond the shared `/health` and `/metrics`).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
