//! # quarry-retrieve
//!
//! `POST /v1/retrieve`: hybrid search over ingested documents — pgvector kNN, PostgreSQL full text
//! (`websearch_to_tsquery`) and Chroma, fused by reciprocal rank fusion, near-duplicates merged —
//! with the caller's ACL inside every query. If Chroma is down, PostgreSQL alone serves and the
//! response says `degraded: ["chroma"]`.
#![warn(missing_docs)]

pub mod fuse;
pub mod handler;
pub mod search;

use quarry_shared::service::{Dependency, RequestLimits, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "retrieve",
        dependencies: &[Dependency::Postgres, Dependency::Chroma],
        routes,
        request_limits: RequestLimits::standard,
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(handler::retrieve))
}
