//! # quarry-ingest
//!
//! Extracts text from uploaded documents (PDF, OCR, HTML, Markdown, DOCX), chunks, embeds and upserts them idempotently.
//!
//! Status: foundation only. It serves `/health` (probing PostgreSQL and Chroma) and `/metrics`; its API
//! arrives with its own issue. Run it alone with `cargo run -p quarry-ingest`, or with every other
//! function under `quarry dev`.
#![warn(missing_docs)]

use quarry_shared::service::{Dependency, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "ingest",
        dependencies: &[Dependency::Postgres, Dependency::Chroma],
        routes,
    }
}

/// The function's own routes (none yet beyond the shared `/health` and `/metrics`).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
