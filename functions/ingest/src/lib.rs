//! # quarry-ingest
//!
//! Turns documents into retrievable, access-controlled chunks: extracts text (PDF text layer, OCR
//! with Tesseract for scanned pages and images, HTML, Markdown, DOCX, plain text), chunks it by
//! structure, embeds each chunk with all-MiniLM-L6-v2 in-process, and stores document and chunks in
//! PostgreSQL (pgvector + full text) in one transaction, then in Chroma.
//!
//! Triggers:
//! - `POST /v1/events`: a Cloud Storage `object.finalized` (or `object.deleted`) CloudEvent from
//!   Eventarc, binary or structured mode; the object is read with the `google-cloud-storage` crate;
//! - `POST /v1/documents`: a multipart upload, for development and tools;
//! - `quarry ingest PATH…`: files or folders, from the command line.
//!
//! Also `GET /v1/documents`, `GET /v1/documents/failures`, `DELETE /v1/documents?source=…` and
//! `POST /v1/documents/reconcile` (Chroma caught up with PostgreSQL). Every endpoint is for the
//! `admin` role or an allowed service account (see `quarry_shared::http::operator`).
#![warn(missing_docs)]

pub mod cloudevent;
pub mod extract;
pub mod gcs;
pub mod pipeline;
mod reconcile;
mod routes;
pub mod store;

use quarry_shared::service::{Dependency, RequestLimits, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "ingest",
        dependencies: &[Dependency::Postgres, Dependency::Chroma],
        routes,
        request_limits,
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::upload, routes::list, routes::delete))
        .routes(routes!(routes::failures))
        .routes(routes!(routes::event))
        .routes(routes!(reconcile::reconcile))
}

/// Uploads carry whole documents and OCR takes time: the body limit is the document limit plus room
/// for the multipart framing, and the timeout is `INGEST_TIMEOUT_SECS`.
fn request_limits(settings: &quarry_shared::config::Settings) -> RequestLimits {
    RequestLimits {
        max_body_bytes: settings.docs.max_bytes.saturating_add(1 << 20),
        timeout: settings.docs.ingest_timeout,
    }
}
