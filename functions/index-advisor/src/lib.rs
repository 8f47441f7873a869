//! # quarry-index-advisor
//!
//! Index advice from the real workload: the statements Quarry's users' questions turned into
//! (`pg_stat_statements`), candidate indexes from each statement's syntax tree, proven with
//! hypothetical indexes (hypopg) before anyone creates them.
//!
//! - `POST /v1/advice/run` `{"apply": false, "top": 20, "min_calls": 2}`: run now (Cloud Scheduler
//!   calls it nightly); with `"apply": true` the proposed indexes are created `CONCURRENTLY`, one at
//!   a time, each recorded in the audit log;
//! - `GET /v1/advice`: the stored advice, best first.
//!
//! Both are for the `admin` role, and for Cloud Scheduler presenting an OIDC token of an allowed
//! service account (`SCHEDULER_OIDC_AUDIENCE`, `SCHEDULER_OIDC_SERVICE_ACCOUNTS`), which may run
//! but not apply. `quarry advise` runs the same advisor from the command line.
#![warn(missing_docs)]

pub mod advisor;
pub mod candidates;
mod list;
mod run;

use quarry_shared::service::{Dependency, RequestLimits, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The role allowed to read and act on advice.
pub const ADMIN_ROLE: &str = quarry_shared::http::operator::ADMIN_ROLE;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "index-advisor",
        dependencies: &[Dependency::Postgres],
        routes,
        request_limits: RequestLimits::standard,
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run::run_advisor))
        .routes(routes!(list::list_advice))
}
