//! The ingest function's HTTP endpoints: multipart upload, Cloud Storage events, listing,
//! failures and deletion. Handlers are thin: they turn a request into an
//! [`IngestRequest`](crate::pipeline::IngestRequest) and the pipeline's errors into problems.

use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use bytes::{Bytes, BytesMut};
use quarry_shared::docs::acl::{self, Acl};
use quarry_shared::http::operator::Operator;
use quarry_shared::http::{ApiError, Json};
use quarry_shared::state::AppState;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cloudevent::{self, EventError};
use crate::extract::ExtractError;
use crate::gcs::{GcsSource, ObjectError, ObjectSource};
use crate::pipeline::{IngestError, IngestReport, IngestRequest, Ingestor, Trigger};

/// The Cloud Storage event type that ingests an object.
use crate::cloudevent::{DELETED, FINALIZED};

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        let detail = err.to_string();
        match &err {
            IngestError::Document(doc) => {
                let status = match doc {
                    ExtractError::TooLarge { .. } | ExtractError::TooManyPages { .. } => {
                        StatusCode::PAYLOAD_TOO_LARGE
                    }
                    ExtractError::Unsupported { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ExtractError::ToolMissing { .. } | ExtractError::Io(_) => {
                        return ApiError::Internal(anyhow::Error::new(err));
                    }
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError::Rejected {
                    status,
                    kind: "document-rejected",
                    reason: doc.kind().to_owned(),
                    detail,
                }
            }
            IngestError::Acl(_) => ApiError::bad_request("invalid-acl", detail),
            IngestError::Source => ApiError::bad_request("invalid-source", detail),
            IngestError::Store(_) => ApiError::Unavailable {
                kind: "database-unavailable",
                detail: "the document database is unavailable; nothing was stored, retry later"
                    .to_owned(),
                retry_after: Some(std::time::Duration::from_secs(5)),
            },
            IngestError::Embed(_) | IngestError::Chunk(_) | IngestError::Worker => {
                ApiError::Internal(anyhow::Error::new(err))
            }
        }
    }
}

/// Fields of `POST /v1/documents` besides the file.
#[derive(Debug, Default)]
struct UploadFields {
    file: Option<(String, Option<String>, Bytes)>,
    /// The file's name when it passed the size limit (its bytes were not kept).
    oversized: Option<String>,
    source: Option<String>,
    roles: Option<String>,
    regions: Option<String>,
}

/// A multipart upload: field `file` (required), and optional `source` (the URI to store it under;
/// default `upload://<file name>`), `roles` and `regions` (comma-separated ACL; default: the
/// path-prefix rules, else admin only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the multipart body for the OpenAPI document only.
struct UploadForm {
    /// The document.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
    /// Source URI to store it under.
    source: Option<String>,
    /// Roles that may see it, comma-separated.
    roles: Option<String>,
    /// Regions that may see it, comma-separated; `*` for any.
    regions: Option<String>,
}

/// Uploads a document (admin only). 201 when stored as new or replaced, 200 when nothing changed
/// (same bytes and ACL) or only the ACL did.
#[utoipa::path(
    post,
    path = "/v1/documents",
    tag = "ingest",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = IngestReport),
        (status = 200, description = "Unchanged, or only the ACL changed", body = IngestReport),
        (status = 400, description = "Malformed upload or ACL", body = quarry_shared::http::Problem),
        (status = 413, description = "Too large or too many pages", body = quarry_shared::http::Problem),
        (status = 415, description = "Unsupported format", body = quarry_shared::http::Problem),
        (status = 422, description = "Encrypted, corrupt or empty document", body = quarry_shared::http::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    operator: Operator,
    multipart: Multipart,
) -> Result<impl IntoResponse, ApiError> {
    let max_bytes = state.settings.docs.max_bytes;
    let fields = read_upload(multipart, max_bytes).await?;
    if let Some(file_name) = fields.oversized {
        let source = fields
            .source
            .unwrap_or_else(|| format!("upload://{}", sanitise_name(&file_name)));
        let err = IngestError::Document(ExtractError::TooLarge {
            what: "the file",
            limit: u64::try_from(max_bytes).unwrap_or(u64::MAX),
        });
        record_failure(&state, &source, &err, Trigger::Upload).await;
        audit_plain(&state, &operator, "ingest", &source, false, err.kind()).await?;
        return Err(err.into());
    }
    let Some((file_name, content_type, bytes)) = fields.file else {
        return Err(ApiError::bad_request(
            "missing-file",
            "the multipart body needs a 'file' field with the document",
        ));
    };
    let acl = explicit_acl(fields.roles.as_deref(), fields.regions.as_deref())?;
    let source = fields
        .source
        .unwrap_or_else(|| format!("upload://{}", sanitise_name(&file_name)));
    let ingestor = Ingestor::for_state(&state).await;
    let result = ingestor
        .ingest(IngestRequest {
            source: source.clone(),
            bytes,
            file_name: Some(file_name),
            declared_type: content_type,
            acl,
            trigger: Trigger::Upload,
        })
        .await;
    audit(&state, &operator, "ingest", &source, &result).await?;
    let report = result?;
    let status = match report.status {
        "created" | "replaced" => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(report)))
}

/// Reads the multipart body, refusing a file over `max_bytes` as soon as it passes the limit.
async fn read_upload(mut multipart: Multipart, max_bytes: usize) -> Result<UploadFields, ApiError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(
            "invalid-multipart",
            format!("the multipart body is malformed: {}", e.body_text()),
        )
    };
    let mut fields = UploadFields::default();
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or("document").to_owned();
                let content_type = field.content_type().map(str::to_owned);
                let mut buf = BytesMut::new();
                while let Some(piece) = field.chunk().await.map_err(malformed)? {
                    if buf.len() + piece.len() > max_bytes {
                        fields.oversized = Some(file_name);
                        return Ok(fields);
                    }
                    buf.extend_from_slice(&piece);
                }
                fields.file = Some((file_name, content_type, buf.freeze()));
            }
            "source" | "roles" | "regions" => {
                let value = field.text().await.map_err(malformed)?;
                if value.len() > 2048 {
                    return Err(ApiError::bad_request(
                        "invalid-multipart",
                        format!("field '{name}' is longer than 2048 characters"),
                    ));
                }
                let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
                match name.as_str() {
                    "source" => fields.source = value,
                    "roles" => fields.roles = value,
                    _ => fields.regions = value,
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid-multipart",
                    format!(
                        "unknown field '{}'; expected file, source, roles, regions",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
    }
    Ok(fields)
}

/// The ACL given with an upload: both lists, one (the other defaults: regions `*`, roles refused),
/// or neither (`None`: rules decide).
fn explicit_acl(roles: Option<&str>, regions: Option<&str>) -> Result<Option<Acl>, ApiError> {
    match (roles, regions) {
        (None, None) => Ok(None),
        (Some(roles), regions) => Acl::parse(roles, regions.unwrap_or("*"))
            .map(Some)
            .map_err(|e| IngestError::Acl(e).into()),
        (None, Some(_)) => Err(ApiError::bad_request(
            "invalid-acl",
            "'regions' needs 'roles' too: say which roles may see the document",
        )),
    }
}

/// A file name as part of a URI: path separators and control characters removed.
fn sanitise_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        "document".to_owned()
    } else {
        clean
    }
}

/// Answer to a Cloud Storage event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventOutcome {
    /// The CloudEvent id.
    pub event_id: String,
    /// `ingested`, `deleted`, `rejected` (the document is at fault; recorded in
    /// `ingest_failures`) or `ignored` (an event type this function does not handle).
    pub outcome: &'static str,
    /// The ingest report, when ingested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<IngestReport>,
    /// Why the document was rejected or the event ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Detail, for a human.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Receives a Cloud Storage CloudEvent from Eventarc (binary or structured content mode).
///
/// Status codes drive Eventarc's redelivery: a 2xx acknowledges the event. A document that is
/// itself at fault (corrupt, encrypted, unsupported…) is acknowledged with `outcome: rejected` and
/// an `ingest_failures` row, because redelivering the same bytes cannot succeed; a failure of
/// ours or of a dependency is a 5xx problem, so the event comes again. Redeliveries are harmless:
/// the same object generation changes nothing.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "ingest",
    request_body(content = serde_json::Value, description = "A CloudEvent (binary or structured mode)"),
    responses(
        (status = 200, description = "Handled (see outcome)", body = EventOutcome),
        (status = 400, description = "Not a valid Cloud Storage CloudEvent", body = quarry_shared::http::Problem),
        (status = 502, description = "The object could not be read; retried", body = quarry_shared::http::Problem),
        (status = 503, description = "A dependency is down; retried", body = quarry_shared::http::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn event(
    State(state): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<EventOutcome>, ApiError> {
    let event = match cloudevent::parse(&headers, &body) {
        Ok(event) => event,
        Err(err @ EventError::UnsupportedEventType(_)) => {
            return Ok(Json(EventOutcome {
                event_id: header_str(&headers, "ce-id"),
                outcome: "ignored",
                report: None,
                reason: Some(err.kind().to_owned()),
                detail: Some(err.to_string()),
            }));
        }
        Err(err) => return Err(ApiError::bad_request(err.kind(), err.to_string())),
    };
    let source = event.source_uri();
    let ingestor = Ingestor::for_state(&state).await;
    if event.event_type == DELETED {
        let removed = ingestor
            .delete(&source)
            .await
            .map_err(|e| ApiError::from(IngestError::Store(e)))?;
        audit_plain(&state, &operator, "delete", &source, true, "granted").await?;
        return Ok(Json(EventOutcome {
            event_id: event.id,
            outcome: "deleted",
            report: None,
            reason: None,
            detail: Some(
                if removed {
                    "document removed"
                } else {
                    "no such document"
                }
                .to_owned(),
            ),
        }));
    }
    debug_assert_eq!(event.event_type, FINALIZED);
    let max_bytes = state.settings.docs.max_bytes;
    let object = match object_source(&state)
        .await?
        .read(
            &event.bucket,
            &event.name,
            event.generation.as_deref(),
            max_bytes,
        )
        .await
    {
        Ok(object) => object,
        Err(ObjectError::TooLarge { .. }) => {
            let err = IngestError::Document(ExtractError::TooLarge {
                what: "the object",
                limit: u64::try_from(max_bytes).unwrap_or(u64::MAX),
            });
            return rejected(&state, &operator, &source, event.id, err).await;
        }
        Err(ObjectError::NotFound) => {
            // Deleted or overwritten since the event: a later event describes what is there now.
            return Ok(Json(EventOutcome {
                event_id: event.id,
                outcome: "ignored",
                report: None,
                reason: Some("object-not-found".to_owned()),
                detail: Some("the object (or this generation of it) no longer exists".to_owned()),
            }));
        }
        Err(err) => {
            return Err(ApiError::Rejected {
                status: StatusCode::BAD_GATEWAY,
                kind: "object-unreadable",
                reason: err.kind().to_owned(),
                detail: format!("cannot read {source}: {err}"),
            });
        }
    };
    let metadata = if object.metadata.is_empty() {
        &event.metadata
    } else {
        &object.metadata
    };
    let acl = match explicit_acl(
        metadata.get(acl::ROLES_METADATA_KEY).map(String::as_str),
        metadata.get(acl::REGIONS_METADATA_KEY).map(String::as_str),
    ) {
        Ok(acl) => acl,
        Err(_) => {
            let err = match Acl::parse(
                metadata
                    .get(acl::ROLES_METADATA_KEY)
                    .map_or("", String::as_str),
                metadata
                    .get(acl::REGIONS_METADATA_KEY)
                    .map_or("*", String::as_str),
            ) {
                Err(e) => IngestError::Acl(e),
                Ok(_) => IngestError::Acl(acl::AclError::Empty { what: "role" }),
            };
            return rejected(&state, &operator, &source, event.id, err).await;
        }
    };
    let result = ingestor
        .ingest(IngestRequest {
            source: source.clone(),
            bytes: object.bytes,
            file_name: Some(event.name.clone()),
            declared_type: object.content_type.or(event.content_type),
            acl,
            trigger: Trigger::Event,
        })
        .await;
    audit(&state, &operator, "ingest", &source, &result).await?;
    match result {
        Ok(report) => Ok(Json(EventOutcome {
            event_id: event.id,
            outcome: "ingested",
            report: Some(report),
            reason: None,
            detail: None,
        })),
        Err(err) if err.is_permanent() => Ok(Json(EventOutcome {
            event_id: event.id,
            outcome: "rejected",
            report: None,
            reason: Some(err.kind().to_owned()),
            detail: Some(err.to_string()),
        })),
        Err(err) => Err(err.into()),
    }
}

/// A permanent failure found before the pipeline ran: recorded, then acknowledged.
async fn rejected(
    state: &AppState,
    operator: &Operator,
    source: &str,
    event_id: String,
    err: IngestError,
) -> Result<Json<EventOutcome>, ApiError> {
    let detail = err.to_string();
    record_failure(state, source, &err, Trigger::Event).await;
    audit_plain(state, operator, "ingest", source, false, err.kind()).await?;
    Ok(Json(EventOutcome {
        event_id,
        outcome: "rejected",
        report: None,
        reason: Some(err.kind().to_owned()),
        detail: Some(detail),
    }))
}

/// Records a failure found before the pipeline ran (the pipeline records its own).
async fn record_failure(state: &AppState, source: &str, err: &IngestError, trigger: Trigger) {
    let store = crate::store::DocumentStore::new(state.db.clone());
    crate::pipeline::record_failure(&store, source, None, err, trigger).await;
}

/// The Cloud Storage client, built once per process (`GCS_ENDPOINT` overrides the endpoint, for
/// emulators and tests; `GCS_ANONYMOUS=true` skips credentials).
async fn object_source(state: &AppState) -> Result<std::sync::Arc<dyn ObjectSource>, ApiError> {
    static SOURCE: tokio::sync::OnceCell<std::sync::Arc<dyn ObjectSource>> =
        tokio::sync::OnceCell::const_new();
    let endpoint = state.settings.docs.gcs_endpoint.clone();
    let anonymous = state.settings.docs.gcs_anonymous;
    SOURCE
        .get_or_try_init(|| async {
            let source =
                GcsSource::new(endpoint, anonymous)
                    .await
                    .map_err(|e| ApiError::Unavailable {
                        kind: "object-store-unavailable",
                        detail: format!("cannot set up the Cloud Storage client: {}", e.kind()),
                        retry_after: Some(std::time::Duration::from_secs(10)),
                    })?;
            Ok::<_, ApiError>(std::sync::Arc::new(source) as std::sync::Arc<dyn ObjectSource>)
        })
        .await
        .cloned()
}

fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect()
}

/// Query of `GET /v1/documents` and `DELETE /v1/documents`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct SourceQuery {
    /// Exact source URI (DELETE: required; GET: a prefix filter).
    source: Option<String>,
    /// Most rows (GET; default 100, at most 1000).
    limit: Option<i64>,
}

/// One stored document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentSummary {
    document_id: Uuid,
    source: String,
    title: Option<String>,
    media_type: String,
    version: i32,
    chunks: i32,
    pages: Option<i32>,
    ocr_pages: i32,
    allowed_roles: Vec<String>,
    allowed_regions: Vec<String>,
    /// Whether Chroma holds the current version.
    chroma_synced: bool,
    updated_at: String,
}

/// Lists stored documents (admin only), newest change first.
#[utoipa::path(
    get,
    path = "/v1/documents",
    tag = "ingest",
    params(SourceQuery),
    responses((status = 200, description = "Documents", body = [DocumentSummary])),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _operator: Operator,
    Query(query): Query<SourceQuery>,
) -> Result<Json<Vec<DocumentSummary>>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let prefix = query.source.unwrap_or_default();
    let client = state.db.get().await?;
    let rows = client
        .query(
            "SELECT document_id, source, title, media_type, version, chunk_count, page_count, ocr_pages,
                    allowed_roles, allowed_regions, chroma_version IS NOT DISTINCT FROM version,
                    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM quarry_meta.documents WHERE starts_with(source, $1)
             ORDER BY updated_at DESC LIMIT $2",
            &[&prefix, &limit],
        )
        .await?;
    Ok(Json(
        rows.iter()
            .map(|r| DocumentSummary {
                document_id: r.get(0),
                source: r.get(1),
                title: r.get(2),
                media_type: r.get(3),
                version: r.get(4),
                chunks: r.get(5),
                pages: r.get(6),
                ocr_pages: r.get(7),
                allowed_roles: r.get(8),
                allowed_regions: r.get(9),
                chroma_synced: r.get(10),
                updated_at: r.get(11),
            })
            .collect(),
    ))
}

/// One failed ingest.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailureSummary {
    source: String,
    kind: String,
    detail: String,
    trigger: String,
    occurred_at: String,
}

/// Lists recent ingest failures (admin only), newest first.
#[utoipa::path(
    get,
    path = "/v1/documents/failures",
    tag = "ingest",
    params(SourceQuery),
    responses((status = 200, description = "Failures", body = [FailureSummary])),
    security(("bearer" = []))
)]
pub(crate) async fn failures(
    State(state): State<AppState>,
    _operator: Operator,
    Query(query): Query<SourceQuery>,
) -> Result<Json<Vec<FailureSummary>>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let prefix = query.source.unwrap_or_default();
    let client = state.db.get().await?;
    let rows = client
        .query(
            "SELECT source, kind, detail, trigger,
                    to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM quarry_meta.ingest_failures WHERE starts_with(source, $1)
             ORDER BY occurred_at DESC, failure_id DESC LIMIT $2",
            &[&prefix, &limit],
        )
        .await?;
    Ok(Json(
        rows.iter()
            .map(|r| FailureSummary {
                source: r.get(0),
                kind: r.get(1),
                detail: r.get(2),
                trigger: r.get(3),
                occurred_at: r.get(4),
            })
            .collect(),
    ))
}

/// Deletes a document by its source URI (admin only): PostgreSQL first, then Chroma.
#[utoipa::path(
    delete,
    path = "/v1/documents",
    tag = "ingest",
    params(SourceQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such document", body = quarry_shared::http::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    operator: Operator,
    Query(query): Query<SourceQuery>,
) -> Result<StatusCode, ApiError> {
    let Some(source) = query.source.filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request(
            "missing-source",
            "say which document: ?source=<its URI>",
        ));
    };
    let removed = Ingestor::for_state(&state)
        .await
        .delete(&source)
        .await
        .map_err(|e| ApiError::from(IngestError::Store(e)))?;
    audit_plain(
        &state,
        &operator,
        "delete",
        &source,
        removed,
        if removed { "granted" } else { "not-found" },
    )
    .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            detail: "no document has this source".to_owned(),
        })
    }
}

async fn audit(
    state: &AppState,
    operator: &Operator,
    action: &str,
    source: &str,
    result: &Result<IngestReport, IngestError>,
) -> Result<(), ApiError> {
    let (allowed, reason) = match result {
        Ok(report) => (true, report.status),
        Err(err) => (false, err.kind()),
    };
    audit_plain(state, operator, action, source, allowed, reason).await
}

async fn audit_plain(
    state: &AppState,
    operator: &Operator,
    action: &str,
    source: &str,
    allowed: bool,
    reason: &str,
) -> Result<(), ApiError> {
    let record = operator.audit_record(
        action,
        format!("document:{source}"),
        allowed,
        reason.to_owned(),
    );
    quarry_shared::http::caller::record(&state.governance, record).await
}
