//! `POST /v1/authorize`: may the caller do `action` on `resource`?

use axum::extract::State;
use quarry_shared::http::caller::record;
use quarry_shared::http::{ApiError, Caller, Json, Problem};
use quarry_shared::policy::Resource;
use quarry_shared::state::AppState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// What the caller wants to do; `read` is the only action Quarry grants.
    #[schema(example = "read")]
    pub action: String,
    /// `table:<schema>.<table>`, `column:<schema>.<table>.<column>`, `doc:<id>` or `endpoint:/<path>`.
    #[schema(example = "table:public.invoice")]
    pub resource: String,
}

/// The decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeResponse {
    /// Whether the caller may.
    pub allow: bool,
    /// Stable reason: `granted`, or what refuses it (`table:public.invoice`, `column:public.customer.email`,
    /// `region-not-allowed`, `action-not-supported`, ...).
    pub reason: String,
    /// The caller's role.
    pub role: String,
    /// The caller's region.
    pub region: String,
}

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
    let resource: Resource =
        request
            .resource
            .parse()
            .map_err(|e: quarry_shared::policy::ResourceParseError| {
                ApiError::bad_request("invalid-resource", e.to_string())
            })?;
    let (allow, reason) = if request.action == "read" {
        match caller
            .policy
            .authorize(&caller.principal.role, &caller.principal.region, &resource)
        {
            Ok(()) => (true, "granted".to_owned()),
            Err(denial) => (false, denial.reason()),
        }
    } else {
        (false, "action-not-supported".to_owned())
    };
    let action: String = request.action.chars().take(32).collect();
    record(
        &state.governance,
        caller.audit_record(&action, resource.to_string(), allow, reason.clone()),
    )
    .await?;
    Ok(Json(AuthorizeResponse {
        allow,
        reason,
        role: caller.principal.role,
        region: caller.principal.region,
    }))
}
