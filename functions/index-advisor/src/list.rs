//! `GET /v1/advice`: the stored advice.

use axum::extract::State;
use quarry_shared::http::caller::record;
use quarry_shared::http::{ApiError, Json, Problem};
use quarry_shared::state::AppState;
use serde::Serialize;
use utoipa::ToSchema;

use crate::advisor::Advice;
use quarry_shared::http::operator::Operator;

/// One stored advice row: the advice as the last run saw it, and its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredAdvice {
    /// The advice.
    #[serde(flatten)]
    pub advice: Advice,
    /// `proposed` or `applied`.
    pub status: String,
    /// First proposed (RFC 3339).
    pub first_seen: String,
    /// Last confirmed by a run (RFC 3339).
    pub last_seen: String,
}

/// Stored advice, proposed first, then by improvement.
#[utoipa::path(
    get,
    path = "/v1/advice",
    tag = "advice",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored advice", body = Vec<StoredAdvice>),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the admin role", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_advice(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<Vec<StoredAdvice>>, ApiError> {
    let client = state.db.get().await?;
    let rows = client
        .query(
            "SELECT table_schema, table_name, columns, create_statement, cost_before, cost_after, improvement_pct,
                    queryids, estimated_size_bytes, status,
                    to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM quarry_meta.index_advice ORDER BY status DESC, improvement_pct DESC",
            &[],
        )
        .await
        ?;
    record(
        &state.governance,
        operator.audit_record("read", "advice".to_owned(), true, "granted".to_owned()),
    )
    .await?;
    Ok(Json(
        rows.iter()
            .map(|r| StoredAdvice {
                advice: Advice {
                    table_schema: r.get(0),
                    table_name: r.get(1),
                    columns: r.get(2),
                    create_statement: r.get(3),
                    cost_before: r.get(4),
                    cost_after: r.get(5),
                    improvement_pct: r.get(6),
                    queryids: r.get(7),
                    estimated_size_bytes: r.get(8),
                },
                status: r.get(9),
                first_seen: r.get(10),
                last_seen: r.get(11),
            })
            .collect(),
    ))
}
