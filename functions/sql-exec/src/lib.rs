//! # quarry-sql-exec
//!
//! Guards a SQL statement by parsing it, applies role and region policy, and runs it read-only with a cost check and a timeout.
//!
//! Status: foundation only. It serves `/health` (probing PostgreSQL) and `/metrics`; its API
//! arrives with its own issue. Run it alone with `cargo run -p quarry-sql-exec`, or with every other
//! function under `quarry dev`.
#![warn(missing_docs)]

use quarry_shared::service::{Dependency, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "sql-exec",
        dependencies: &[Dependency::Postgres],
        routes,
    }
}

/// The function's own routes (none yet beyond the shared `/health` and `/metrics`).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
