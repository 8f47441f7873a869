//! # quarry-sql-exec
//!
//! Runs read-only SQL for a governed caller:
//!
//! - `POST /v1/sql` `{"sql": "...", "params": [..], "max_rows": 100}` → columns, typed rows,
//!   `row_count`, `truncated`, `plan_cost`, `elapsed_ms`;
//! - `GET /v1/schema`: the tables and columns the caller's role may read, with types, keys,
//!   comments and sample values: the same view the LLM gets.
//!
//! Defence in depth: the parsing guard (`quarry_shared::sql::guard`) refuses writes, dangerous
//! functions and ungranted tables or columns before anything reaches PostgreSQL; the query then
//! runs as the restricted `quarry_app` role in a read-only transaction with a statement timeout,
//! after an `EXPLAIN` cost check, with row-level security fencing rows to the caller's region.
//! Run alone with `cargo run -p quarry-sql-exec`, or with every function under `quarry dev`.
#![warn(missing_docs)]

pub mod execute;
mod run;
mod schema;
pub mod values;

use quarry_shared::service::{Dependency, RequestLimits, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "sql-exec",
        dependencies: &[Dependency::Postgres],
        routes,
        request_limits: RequestLimits::standard,
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run::run_sql))
        .routes(routes!(schema::schema))
}
