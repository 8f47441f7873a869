//! # quarry-auth
//!
//! Verifies JWTs and answers allow/deny for (role, region, resource), for gateways and peers.
//!
//! Status: foundation only. It serves `/health` (probing PostgreSQL, where the policy lives) and `/metrics`; its API
//! arrives with its own issue. Run it alone with `cargo run -p quarry-auth`, or with every other
//! function under `quarry dev`.
#![warn(missing_docs)]

use quarry_shared::service::{Dependency, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "auth",
        dependencies: &[Dependency::Postgres],
        routes,
    }
}

/// The function's own routes (none yet beyond the shared `/health` and `/metrics`).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
