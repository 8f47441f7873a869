//! `POST /v1/advice/run`: run the advisor now, optionally applying its advice.

use std::time::Duration;

use axum::extract::State;
use quarry_shared::http::caller::record;
use quarry_shared::http::{ApiError, Json, Problem};
use quarry_shared::state::AppState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::advisor::{self, Options, Report};
use quarry_shared::http::operator::Operator;

/// Options of a run; every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunRequest {
    /// Create the proposed indexes (`CONCURRENTLY`, one at a time). Default false.
    pub apply: bool,
    /// Statements to consider, by total time (1-200, default 20).
    pub top: Option<i64>,
    /// Ignore statements called fewer times (default 2).
    pub min_calls: Option<i64>,
    /// Time budget in seconds (1-600, default 60).
    pub budget_secs: Option<u64>,
}

/// The run's report, and what was created.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    /// What the advisor found.
    #[serde(flatten)]
    pub report: Report,
    /// The `CREATE INDEX` statements executed (with `apply`).
    pub applied: Vec<String>,
}

/// Runs the advisor on the application's database: for an `admin`, or for Cloud Scheduler with an
/// OIDC token of an allowed service account (which may not `apply`).
#[utoipa::path(
    post,
    path = "/v1/advice/run",
    tag = "advice",
    request_body = RunRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The run's report", body = RunResponse),
        (status = 400, description = "Options out of range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_advisor(
    State(state): State<AppState>,
    operator: Operator,
    Json(request): Json<RunRequest>,
) -> Result<Json<RunResponse>, ApiError> {
    if request.apply && matches!(operator, Operator::Scheduler(..)) {
        let denied = operator.audit_record(
            "create-index",
            "advice".to_owned(),
            false,
            "admin-only".to_owned(),
        );
        record(&state.governance, denied).await?;
        return Err(ApiError::Forbidden {
            kind: "admin-only",
            detail: "only an admin may apply index advice".to_owned(),
        });
    }
    let defaults = Options::default();
    let options = Options {
        top: request.top.unwrap_or(defaults.top),
        min_calls: request.min_calls.unwrap_or(defaults.min_calls),
        budget: request
            .budget_secs
            .map_or(defaults.budget, Duration::from_secs),
        ..defaults
    };
    if !(1..=200).contains(&options.top)
        || options.min_calls < 1
        || !(1..=600).contains(&options.budget.as_secs())
    {
        return Err(ApiError::bad_request(
            "invalid-options",
            "top must be 1-200, min_calls at least 1, budget_secs 1-600",
        ));
    }
    let url = state.settings.database_url().unwrap_or_default().to_owned();
    let mut client = quarry_shared::db::connect_once(&url)
        .await
        .map_err(ApiError::from)?;
    let report = advisor::run(&mut client, &options)
        .await
        .map_err(ApiError::internal)?;
    record(
        &state.governance,
        operator.audit_record("advise", "advice".to_owned(), true, "granted".to_owned()),
    )
    .await?;

    let mut applied = Vec::new();
    if request.apply {
        for advice in &report.advice {
            let resource = format!(
                "index:{}.{}({})",
                advice.table_schema,
                advice.table_name,
                advice.columns.join(",")
            );
            let outcome = advisor::apply(&client, advice).await;
            let reason = match &outcome {
                Ok(()) => "created".to_owned(),
                Err(e) => e
                    .as_db_error()
                    .map_or_else(|| "failed".to_owned(), |d| d.message().to_owned()),
            };
            record(
                &state.governance,
                operator.audit_record("create-index", resource, outcome.is_ok(), reason),
            )
            .await?;
            outcome.map_err(ApiError::internal)?;
            applied.push(advice.create_statement.clone());
        }
    }
    Ok(Json(RunResponse { report, applied }))
}
