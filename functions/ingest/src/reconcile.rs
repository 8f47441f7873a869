//! `POST /v1/documents/reconcile`: brings Chroma in line with PostgreSQL (documents whose Chroma
//! copy lags are rewritten, documents PostgreSQL no longer has are removed). Ingest heals lagging
//! documents as it goes; this also removes orphans, and suits a nightly Cloud Scheduler job.

use axum::extract::State;
use quarry_shared::http::operator::Operator;
use quarry_shared::http::{ApiError, Json};
use quarry_shared::state::AppState;
use serde::Serialize;

use crate::pipeline::Ingestor;

/// What reconciliation did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReconcileReport {
    /// Documents written to Chroma.
    pub written: usize,
    /// Documents removed from (or rewritten in) Chroma because PostgreSQL disagreed.
    pub removed: usize,
}

/// Reconciles Chroma with PostgreSQL (admin or service account).
#[utoipa::path(
    post,
    path = "/v1/documents/reconcile",
    tag = "ingest",
    responses(
        (status = 200, description = "Done", body = ReconcileReport),
        (status = 503, description = "Chroma or PostgreSQL unavailable", body = quarry_shared::http::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn reconcile(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<ReconcileReport>, ApiError> {
    let ingestor = Ingestor::for_state(&state).await;
    let result = ingestor.reconcile().await;
    let record = operator.audit_record(
        "reconcile",
        "documents".to_owned(),
        result.is_ok(),
        if result.is_ok() { "granted" } else { "failed" }.to_owned(),
    );
    quarry_shared::http::caller::record(&state.governance, record).await?;
    match result {
        Ok((written, removed)) => Ok(Json(ReconcileReport { written, removed })),
        Err(err) => {
            tracing::warn!(error = %err, "reconciliation failed");
            Err(ApiError::Unavailable {
                kind: "reconcile-failed",
                detail: "Chroma or the database is unavailable; reconciliation stopped part way and can be rerun"
                    .to_owned(),
                retry_after: Some(std::time::Duration::from_secs(30)),
            })
        }
    }
}
