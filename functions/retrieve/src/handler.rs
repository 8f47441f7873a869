//! `POST /v1/retrieve`: the caller's best passages for a query, with their sources.

use std::sync::Arc;

use axum::extract::State;
use quarry_shared::http::{ApiError, Caller, Json, Problem};
use quarry_shared::state::AppState;
use serde::{Deserialize, Serialize};

use crate::search::{Mode, Outcome, SearchError, Searcher, Viewer};

/// Longest query accepted, in characters.
const MAX_QUERY_CHARS: usize = 2000;

/// A retrieval request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    /// What to search for, in plain language or keywords (websearch syntax: `"phrase"`, `-word`).
    pub query: String,
    /// Passages wanted (default 8, at most `RETRIEVE_MAX_TOP_K`).
    pub top_k: Option<usize>,
    /// `hybrid` (default), or a single retriever: `vector`, `text`.
    #[serde(default)]
    pub mode: Mode,
}

/// The passages found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetrieveResponse {
    /// Best first; only chunks the caller's role and region may see.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl From<SearchError> for ApiError {
    fn from(err: SearchError) -> Self {
        match err {
            SearchError::Pool(_) | SearchError::Query(_) => ApiError::Unavailable {
                kind: "database-unavailable",
                detail: "the document database is unavailable; retry later".to_owned(),
                retry_after: Some(std::time::Duration::from_secs(5)),
            },
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// Hybrid retrieval (pgvector + full text + Chroma, fused by RRF) within the caller's ACL. When
/// Chroma is down PostgreSQL alone answers, and `degraded` says `["chroma"]`.
#[utoipa::path(
    post,
    path = "/v1/retrieve",
    tag = "retrieve",
    request_body = RetrieveRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The passages", body = RetrieveResponse),
        (status = 400, description = "Empty or oversized query, bad top_k", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<RetrieveRequest>,
) -> Result<Json<RetrieveResponse>, ApiError> {
    let max_top_k = state.settings.docs.max_top_k;
    let query = request.query.trim();
    if query.is_empty() {
        return Err(ApiError::bad_request("invalid-query", "the query is empty"));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "invalid-query",
            format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    let top_k = request.top_k.unwrap_or(8);
    if !(1..=max_top_k).contains(&top_k) {
        return Err(ApiError::bad_request(
            "invalid-top-k",
            format!("top_k must be between 1 and {max_top_k}"),
        ));
    }
    let searcher = searcher(&state).await?;
    let viewer = Viewer {
        role: &caller.principal.role,
        region: &caller.principal.region,
    };
    let outcome = searcher.search(&viewer, query, top_k, request.mode).await?;
    Ok(Json(RetrieveResponse { outcome }))
}

/// The searcher for this state: the process's embedder and Chroma connection, the app pool.
///
/// # Errors
/// [`ApiError`] when the embedding model cannot be loaded.
pub async fn searcher(state: &AppState) -> Result<Searcher, ApiError> {
    let models_dir = state.settings.docs.models_dir.clone();
    let embedder =
        tokio::task::spawn_blocking(move || quarry_shared::rag::embed::shared(&models_dir))
            .await
            .map_err(ApiError::internal)?
            .map_err(|err| {
                tracing::error!(error = %err, "cannot load the embedding model");
                ApiError::Unavailable {
                    kind: "embedding-model-unavailable",
                    detail: "the embedding model is not available on this server".to_owned(),
                    retry_after: None,
                }
            })?;
    let index = match quarry_shared::docs::index::vector_index(state).await {
        Ok(index) => index,
        Err(err) => {
            tracing::warn!(error = %err, "chroma unavailable");
            None
        }
    };
    Ok(Searcher {
        pool: state.governance.app_db.clone(),
        embedder: Arc::clone(&embedder),
        index,
        chroma_timeout: state.settings.docs.chroma_timeout,
    })
}
