//! `GET /health`: probes every dependency of the function(s) served, 200 when all answer, 503 naming
//! the ones that did not.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::Json;
use crate::probe::{self, CheckResult};
use crate::state::AppState;

/// The body of `/health`, for both 200 and 503.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// `ok` when every check passed, else `unavailable`.
    pub status: &'static str,
    /// One entry per dependency.
    pub checks: BTreeMap<&'static str, CheckResult>,
}

/// Checks the real dependencies, each under `HEALTH_TIMEOUT_MS`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency answered", body = HealthReport),
        (status = 503, description = "At least one dependency did not answer", body = HealthReport),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let checks = probe::run_all(&state.probes, state.settings.health_timeout).await;
    let healthy = checks.values().all(CheckResult::is_ok);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(HealthReport {
            status: if healthy { "ok" } else { "unavailable" },
            checks,
        }),
    )
}
