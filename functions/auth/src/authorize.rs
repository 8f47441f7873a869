//! `POST /v1/authorize`: may the caller do `action` on `resource`?

use axum::extract::State;
use quarry_shared::http::caller::record;
use quarry_shared::http::{ApiError, Caller, Json, Problem};
use quarry_shared::state::AppState;

use crate::decision::{self, AuthorizeRequest, AuthorizeResponse};

/// Answers allow/deny for the caller's own token; every decision is audited.
#[utoipa::path(
    post,
    path = "/v1/authorize",
    tag = "auth",
    request_body = AuthorizeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The decision", body = AuthorizeResponse),
        (status = 400, description = "Malformed request or resource", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role or region not admitted", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Policy or audit log unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<AuthorizeRequest>,
) -> Result<Json<AuthorizeResponse>, ApiError> {
    let decision = decision::authorize(&caller.policy, &caller.principal, &request)?;
    record(
        &state.governance,
        caller.audit_record(
            &decision.action,
            decision.resource.to_string(),
            decision.response.allow,
            decision.response.reason.clone(),
        ),
    )
    .await?;
    Ok(Json(decision.response))
}
