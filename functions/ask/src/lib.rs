//! # quarry-ask
//!
//! The orchestrator. `POST /v1/ask` takes a question in plain language and answers it within
//! the caller's permissions:
//!
//! 1. [`memory`]: the session's last turns and the user's facts (Redis; without Redis the
//!    answer still comes, marked `degraded: ["memory"]`);
//! 2. [`cache`]: a semantic answer cache scoped by role, region and data version
//!    ([`data_version`]), that only
//!    hits when the numbers, dates and negations of both questions agree ([`cache_key`]);
//! 3. [`route`]: `sql`, `docs`, `both` or `none`, by a keyword heuristic or the model;
//! 4. [`text_to_sql`]: the schema the caller may read ([`schema_context`], from sql-exec's
//!    `GET /v1/schema`), a prompt ([`sql_prompt`]), the query run through sql-exec as the
//!    caller ([`peers`]), repaired with the exact error at most `ASK_MAX_ATTEMPTS` times; an
//!    empty result has its text filters looked up in the data ([`ground`]) and is re-checked once;
//!    a question asking for the top of each group ([`per_group`]) keeps only those rows;
//! 5. passages from retrieve, as the caller;
//! 6. [`answer`]: the model's answer from the rows and passages, with citations checked
//!    against what was retrieved.
//!
//! The language models ([`quarry_shared::llm`]) sit behind one trait with retries, circuit
//! breakers and fallback; [`engine`] holds them, the peers, memory and cache for the process.
//! `/v1/memory/facts` ([`facts`]) lets users see and delete what is remembered about them.
#![warn(missing_docs)]

pub mod answer;
pub mod cache;
pub mod cache_key;
pub mod data_version;
pub mod engine;
pub mod facts;
pub mod golden;
pub mod ground;
pub mod handler;
pub mod local;
pub mod memory;
pub mod peers;
pub mod per_group;
pub mod repair_hint;
pub mod route;
pub mod schema_context;
pub mod sql_prompt;
pub mod text_to_sql;

use quarry_shared::config::llm::ProviderKind;
use quarry_shared::service::{Dependency, RequestLimits, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Milliseconds since `since`, for `timings_ms` and attempts.
pub(crate) fn millis(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Now, in Unix seconds (when a fact was remembered).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "ask",
        dependencies: &[Dependency::Postgres, Dependency::Redis, Dependency::Chroma],
        routes,
        request_limits: limits,
    }
}

/// A question may need several model calls (route, queries, answer), each up to
/// `LLM_TIMEOUT_MS` (`LOCAL_LLM_TIMEOUT_MS` for the local model): the deadline is three of the
/// longest, or `REQUEST_TIMEOUT_SECS` if longer.
fn limits(settings: &quarry_shared::config::Settings) -> RequestLimits {
    let standard = RequestLimits::standard(settings);
    let mut per_call = settings.llm.attempt_timeout;
    if settings.llm.providers.contains(&ProviderKind::Local) {
        per_call = per_call.max(settings.llm.local.timeout);
    }
    RequestLimits {
        timeout: standard.timeout.max(per_call * 3),
        ..standard
    }
}

/// The function's routes.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handler::ask))
        .routes(routes!(facts::list, facts::add, facts::delete_all))
        .routes(routes!(facts::delete_one))
}
