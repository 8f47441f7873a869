//! `/v1/memory/facts`: what `ask` remembers about the caller — list, add, delete one, delete
//! all. Always the caller's own facts (scoped by the token's `sub`); there is no way to name
//! another user.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use quarry_shared::http::{ApiError, Caller, Json, Problem};
use quarry_shared::lazy_redis::RedisUnavailable;
use quarry_shared::state::AppState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::engine::engine;
use crate::memory::{Fact, MAX_FACT_CHARS};

/// The caller's facts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Facts {
    /// Oldest first.
    pub facts: Vec<Fact>,
}

/// A fact to remember.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFact {
    /// The fact, e.g. "I work on the EMEA accounts".
    pub text: String,
}

/// How many facts were forgotten.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// The count.
    pub deleted: usize,
}

fn unavailable(err: &RedisUnavailable) -> ApiError {
    tracing::warn!(error = %err, "memory unavailable");
    ApiError::Unavailable {
        kind: "memory-unavailable",
        detail: "Memory is not available right now.".to_owned(),
        retry_after: Some(std::time::Duration::from_secs(5)),
    }
}

/// Lists what `ask` remembers about the caller.
#[utoipa::path(
    get,
    path = "/v1/memory/facts",
    tag = "ask",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's facts", body = Facts),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Memory unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Facts>, ApiError> {
    let engine = engine(&state).await?;
    let facts = engine
        .memory
        .facts(&caller.principal.sub)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(Facts { facts }))
}

/// Remembers a fact about the caller (kept 30 days).
#[utoipa::path(
    post,
    path = "/v1/memory/facts",
    tag = "ask",
    request_body = NewFact,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Remembered", body = Fact),
        (status = 400, description = "Empty or oversized fact", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Memory unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewFact>,
) -> Result<(StatusCode, Json<Fact>), ApiError> {
    let text = new.text.trim();
    if text.is_empty() || text.chars().count() > MAX_FACT_CHARS {
        return Err(ApiError::bad_request(
            "invalid-fact",
            format!("a fact is 1 to {MAX_FACT_CHARS} characters"),
        ));
    }
    let engine = engine(&state).await?;
    let now = crate::unix_now();
    let fact = engine
        .memory
        .add_fact(&caller.principal.sub, text, now)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok((StatusCode::CREATED, Json(fact)))
}

/// Forgets one fact.
#[utoipa::path(
    delete,
    path = "/v1/memory/facts/{id}",
    tag = "ask",
    params(("id" = Uuid, Path, description = "The fact's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such fact of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Memory unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A String path segment always extracts, so a malformed id gets our problem, not axum's text.
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request("invalid-fact-id", "a fact id is a UUID"))?;
    let engine = engine(&state).await?;
    let removed = engine
        .memory
        .delete_fact(&caller.principal.sub, id)
        .await
        .map_err(|e| unavailable(&e))?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            detail: "no such fact".to_owned(),
        })
    }
}

/// Forgets every fact about the caller.
#[utoipa::path(
    delete,
    path = "/v1/memory/facts",
    tag = "ask",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Forgotten", body = Deleted),
        (status = 503, description = "Memory unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Deleted>, ApiError> {
    let engine = engine(&state).await?;
    let deleted = engine
        .memory
        .delete_facts(&caller.principal.sub)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(Deleted { deleted }))
}
