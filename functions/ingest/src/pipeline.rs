//! One document from bytes to stored chunks: hash → ACL → skip if unchanged → sniff → extract
//! (OCR where needed) → chunk → embed → one PostgreSQL transaction → Chroma.
//!
//! Every trigger (multipart upload, Cloud Storage event, `quarry ingest`) runs [`Ingestor::ingest`].
//! A document that cannot be ingested gets an `ingest_failures` row and a typed [`IngestError`];
//! nothing of it is stored anywhere else. Chroma is written after the commit; when that fails the
//! document is still served from PostgreSQL, the report says `degraded: ["chroma"]`, and
//! [`Ingestor::reconcile`] (run after every ingest and on a timer) catches Chroma up.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use deadpool_postgres::Pool;
use quarry_shared::config::DocsSettings;
use quarry_shared::docs::acl::{self, Acl};
use quarry_shared::docs::chroma::{ChunkRecord, VectorIndex};
use quarry_shared::rag::chunk::{chunk_document, ChunkConfig, ChunkError};
use quarry_shared::rag::embed::{self, EmbedError, Embedder};
use quarry_shared::state::AppState;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::extract::{self, ExtractError, Extracted, Limits, MediaType};
use crate::store::{DocumentStore, Failure, NewVersion, StoreError};

/// What delivered a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `POST /v1/documents`.
    Upload,
    /// A Cloud Storage `object.finalized` CloudEvent.
    Event,
    /// `quarry ingest`.
    Cli,
}

impl Trigger {
    /// Stable name, as stored in `ingest_failures.trigger`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Event => "event",
            Self::Cli => "cli",
        }
    }
}

/// One document to ingest.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// Source URI: `gs://bucket/key`, `file:///abs/path`, `upload://name`.
    pub source: String,
    /// The document's bytes.
    pub bytes: Bytes,
    /// File name, for formats recognised by extension (Markdown, plain text).
    pub file_name: Option<String>,
    /// Content type the sender declared, if any.
    pub declared_type: Option<String>,
    /// ACL from the upload; `None` takes the path-prefix rules.
    pub acl: Option<Acl>,
    /// What delivered it.
    pub trigger: Trigger,
}

/// What happened to a document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// The document's id (stable across versions).
    pub document_id: Uuid,
    /// Its source URI.
    pub source: String,
    /// `created`, `replaced`, `acl-changed` or `unchanged`.
    pub status: &'static str,
    /// Version now stored.
    pub version: i32,
    /// MIME type, when the bytes were examined.
    pub media_type: Option<&'static str>,
    /// Title, for formats that have one.
    pub title: Option<String>,
    /// Pages, for paged formats.
    pub pages: Option<u32>,
    /// Pages that were OCR'd.
    pub ocr_pages: u32,
    /// Chunks of the stored version.
    pub chunks: usize,
    /// Who may see it.
    pub allowed_roles: Vec<String>,
    /// From which regions (`*` any).
    pub allowed_regions: Vec<String>,
    /// Parts that did not take the document: `chroma` (PostgreSQL serves it; reconciled later).
    pub degraded: Vec<&'static str>,
    /// Where the time went.
    pub timings_ms: Timings,
}

/// Milliseconds per stage.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Timings {
    /// Text extraction, OCR included.
    pub extract: u64,
    /// Chunking.
    pub chunk: u64,
    /// Embedding.
    pub embed: u64,
    /// The PostgreSQL transaction.
    pub store: u64,
    /// Writing to Chroma.
    pub chroma: u64,
}

/// Why a document was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The document itself is the problem (format, size, encryption, corruption, emptiness).
    #[error(transparent)]
    Document(#[from] ExtractError),
    /// The ACL given with the upload is invalid.
    #[error(transparent)]
    Acl(#[from] acl::AclError),
    /// The source URI is empty or too long.
    #[error("the source URI must be 1-2048 characters")]
    Source,
    /// PostgreSQL failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedding model could not be loaded or failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The extractor produced blocks that do not match its text (a bug).
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A worker thread panicked or was cancelled.
    #[error("an ingest worker stopped unexpectedly")]
    Worker,
}

impl IngestError {
    /// Stable slug, as stored in `ingest_failures.kind` and used in the problem `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Document(e) => e.kind(),
            Self::Acl(_) => "invalid-acl",
            Self::Source => "invalid-source",
            Self::Store(_) => "database-unavailable",
            Self::Embed(_) => "embedding-failed",
            Self::Chunk(_) => "chunking-failed",
            Self::Worker => "worker-failed",
        }
    }

    /// Whether the document itself is at fault (a retry of the same bytes fails the same way), as
    /// opposed to this service or a dependency (a retry may succeed).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Document(e) => {
                !matches!(e, ExtractError::ToolMissing { .. } | ExtractError::Io(_))
            }
            Self::Acl(_) | Self::Source | Self::Chunk(_) => true,
            Self::Store(_) | Self::Embed(_) | Self::Worker => false,
        }
    }
}

/// Runs ingests; cheap to build per request (the model, the Chroma connection and the CPU permit
/// are process-wide).
pub struct Ingestor {
    store: DocumentStore,
    index: Option<Arc<dyn VectorIndex>>,
    models_dir: std::path::PathBuf,
    limits: Limits,
    chunking: ChunkConfig,
}

/// Extraction and embedding use every core; one document at a time per process keeps a burst of
/// uploads from thrashing, and the rest wait in line (bounded by the request timeout).
fn cpu() -> &'static Semaphore {
    static CPU: Semaphore = Semaphore::const_new(1);
    &CPU
}

impl Ingestor {
    /// An ingestor over the state's database and Chroma. Chroma being unreachable is not an error:
    /// documents then go to PostgreSQL only, and reconciliation writes Chroma later.
    pub async fn for_state(state: &AppState) -> Self {
        let index = match quarry_shared::docs::index::vector_index(state).await {
            Ok(index) => index,
            Err(err) => {
                tracing::warn!(error = %err, "chroma unavailable; ingesting into PostgreSQL only");
                None
            }
        };
        Self::new(state.db.clone(), index, &state.settings.docs)
    }

    /// An ingestor over `pool` (the owner's) and `index`, configured by `docs`.
    pub fn new(pool: Pool, index: Option<Arc<dyn VectorIndex>>, docs: &DocsSettings) -> Self {
        Self {
            store: DocumentStore::new(pool),
            index,
            models_dir: docs.models_dir.clone(),
            limits: Limits {
                max_bytes: docs.max_bytes,
                max_pages: docs.max_pages,
                ocr_timeout: docs.ocr_timeout,
                ..Limits::default()
            },
            chunking: ChunkConfig {
                target_tokens: docs.chunk_tokens,
                overlap_tokens: docs.chunk_overlap,
            },
        }
    }

    /// Whether Chroma is connected.
    pub fn has_index(&self) -> bool {
        self.index.is_some()
    }

    /// The PostgreSQL store.
    pub fn store(&self) -> &DocumentStore {
        &self.store
    }

    /// Ingests one document; see the [module documentation](self).
    ///
    /// # Errors
    /// [`IngestError`]; it has been recorded in `ingest_failures` (when the database is up).
    pub async fn ingest(&self, request: IngestRequest) -> Result<IngestReport, IngestError> {
        let hash = hex_sha256(&request.bytes);
        let result = self.run(&request, &hash).await;
        if matches!(&result, Ok(report) if report.degraded.is_empty()) {
            // Chroma took this document, so it is up: catch up on any that it missed.
            if let Err(err) = self.sync_lagging(20).await {
                tracing::warn!(error = %err, "chroma catch-up failed; will retry");
            }
        }
        if let Err(err) = &result {
            record_failure(
                &self.store,
                &request.source,
                Some(&hash),
                err,
                request.trigger,
            )
            .await;
        }
        result
    }

    async fn run(&self, request: &IngestRequest, hash: &str) -> Result<IngestReport, IngestError> {
        if request.source.is_empty() || request.source.len() > 2048 {
            return Err(IngestError::Source);
        }
        if request.bytes.len() > self.limits.max_bytes {
            return Err(ExtractError::TooLarge {
                what: "the file",
                limit: u64::try_from(self.limits.max_bytes).unwrap_or(u64::MAX),
            }
            .into());
        }
        let rules = self.store.acl_rules().await?;
        let acl = acl::resolve(&request.source, request.acl.clone(), &rules);
        let mut timings = Timings::default();

        // The common duplicate (an event delivered twice) costs one short transaction and no
        // extraction; so does a re-upload that only changes the ACL.
        let started = Instant::now();
        if let Some((stored, version, outcome)) = self
            .store
            .update_acl_if_same(&request.source, hash, &acl)
            .await?
        {
            timings.store = millis(started);
            let degraded = if stored.chroma_version == Some(version) {
                Vec::new()
            } else {
                self.sync_chroma(stored.document_id, &mut timings).await
            };
            return Ok(IngestReport {
                document_id: stored.document_id,
                source: request.source.clone(),
                status: outcome.as_str(),
                version,
                media_type: None,
                title: None,
                pages: None,
                ocr_pages: 0,
                chunks: usize::try_from(stored.chunk_count).unwrap_or(0),
                allowed_roles: acl.roles().to_vec(),
                allowed_regions: acl.regions().to_vec(),
                degraded,
                timings_ms: timings,
            });
        }

        let media = extract::sniff(
            &request.bytes,
            request.file_name.as_deref(),
            request.declared_type.as_deref(),
        )?;
        let (extracted, chunks, embeddings) = self.compute(request, media, &mut timings).await?;

        let started = Instant::now();
        let (document_id, version, outcome) = self
            .store
            .write(&NewVersion {
                source: &request.source,
                title: extracted.title.as_deref(),
                media_type: media.as_mime(),
                content_hash: hash,
                byte_size: request.bytes.len(),
                page_count: extracted.pages,
                ocr_pages: extracted.ocr_pages,
                acl: &acl,
                chunks: &chunks,
                embeddings: &embeddings,
            })
            .await?;
        timings.store = millis(started);
        let degraded = self.sync_chroma(document_id, &mut timings).await;
        Ok(IngestReport {
            document_id,
            source: request.source.clone(),
            status: outcome.as_str(),
            version,
            media_type: Some(media.as_mime()),
            title: extracted.title,
            pages: extracted.pages,
            ocr_pages: extracted.ocr_pages,
            chunks: chunks.len(),
            allowed_roles: acl.roles().to_vec(),
            allowed_regions: acl.regions().to_vec(),
            degraded,
            timings_ms: timings,
        })
    }

    /// Extraction, chunking and embedding: the CPU-bound part, on the blocking pool, one document
    /// at a time.
    async fn compute(
        &self,
        request: &IngestRequest,
        media: MediaType,
        timings: &mut Timings,
    ) -> Result<
        (
            Extracted,
            Vec<quarry_shared::rag::chunk::Chunk>,
            Vec<Vec<f32>>,
        ),
        IngestError,
    > {
        let _permit = cpu().acquire().await.map_err(|_| IngestError::Worker)?;
        let bytes = request.bytes.clone();
        let limits = self.limits.clone();
        let models_dir = self.models_dir.clone();
        let chunking = self.chunking;
        let (extracted, chunks, embeddings, t) = tokio::task::spawn_blocking(move || {
            let mut t = Timings::default();
            let started = Instant::now();
            let mut extracted = extract::extract(&bytes, media, &limits)?;
            t.extract = millis(started);
            // PostgreSQL text cannot hold NUL; a space keeps every offset valid.
            if extracted.text.contains('\0') {
                extracted.text = extracted.text.replace('\0', " ");
                for block in &mut extracted.blocks {
                    block.text = block.text.replace('\0', " ");
                }
            }
            let embedder: Arc<Embedder> = embed::shared(&models_dir)?;
            let started = Instant::now();
            let chunks = chunk_document(&extracted.text, &extracted.blocks, &*embedder, &chunking)?;
            if chunks.is_empty() {
                return Err(IngestError::Document(ExtractError::Empty));
            }
            t.chunk = millis(started);
            let started = Instant::now();
            let texts: Vec<String> = chunks.iter().map(|c| c.embedding_text()).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embeddings = embedder.embed(&refs)?;
            t.embed = millis(started);
            Ok::<_, IngestError>((extracted, chunks, embeddings, t))
        })
        .await
        .map_err(|_| IngestError::Worker)??;
        timings.extract = t.extract;
        timings.chunk = t.chunk;
        timings.embed = t.embed;
        Ok((extracted, chunks, embeddings))
    }

    /// Writes the document's current version to Chroma if Chroma lags; the names of what could not
    /// be written (for `degraded`).
    async fn sync_chroma(&self, document_id: Uuid, timings: &mut Timings) -> Vec<&'static str> {
        let Some(index) = &self.index else {
            return vec!["chroma"];
        };
        let started = Instant::now();
        let result = sync_document(&self.store, index.as_ref(), document_id).await;
        timings.chroma = millis(started);
        match result {
            Ok(()) => Vec::new(),
            Err(err) => {
                tracing::warn!(%document_id, error = %err, "chroma sync failed; reconciliation will retry");
                vec!["chroma"]
            }
        }
    }

    /// Deletes the document stored under `source`: PostgreSQL first (retrieval stops returning it
    /// at once), then Chroma (best effort; reconciliation removes what is left). False when there
    /// was no such document.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; nothing is then deleted.
    pub async fn delete(&self, source: &str) -> Result<bool, StoreError> {
        let Some(document_id) = self.store.delete(source).await? else {
            return Ok(false);
        };
        if let Some(index) = &self.index {
            if let Err(err) = index.delete_document(document_id).await {
                tracing::warn!(%document_id, error = %err, "chroma delete failed; reconciliation will retry");
            }
        }
        Ok(true)
    }

    /// Writes to Chroma up to `limit` documents whose Chroma copy lags (say, written while Chroma
    /// was down); the number written. Cheap when nothing lags: one indexed query.
    ///
    /// # Errors
    /// The first failure.
    pub async fn sync_lagging(&self, limit: i64) -> Result<usize, anyhow::Error> {
        let Some(index) = &self.index else {
            return Ok(0);
        };
        let lagging = self.store.chroma_lagging(limit).await?;
        for document_id in &lagging {
            sync_document(&self.store, index.as_ref(), *document_id).await?;
        }
        Ok(lagging.len())
    }

    /// Brings Chroma in line with PostgreSQL: writes every document whose Chroma copy lags, and
    /// removes from Chroma documents PostgreSQL no longer has (or versions it replaced). Returns
    /// how many documents were written and removed.
    ///
    /// # Errors
    /// The first failure; what was done before it stays done.
    pub async fn reconcile(&self) -> Result<(usize, usize), anyhow::Error> {
        let Some(index) = &self.index else {
            anyhow::bail!("Chroma is not reachable");
        };
        let mut written = 0;
        loop {
            let lagging = self.store.chroma_lagging(100).await?;
            if lagging.is_empty() {
                break;
            }
            let before = written;
            for document_id in lagging {
                sync_document(&self.store, index.as_ref(), document_id).await?;
                written += 1;
            }
            if written == before {
                break;
            }
        }
        let versions = self.store.versions().await?;
        let mut removed = 0;
        for (document_id, held) in index.document_versions().await? {
            let current = versions.get(&document_id);
            if current.is_none() || held.iter().any(|v| Some(v) != current) {
                if current.is_none() {
                    index.delete_document(document_id).await?;
                } else {
                    sync_document(&self.store, index.as_ref(), document_id).await?;
                }
                removed += 1;
            }
        }
        Ok((written, removed))
    }
}

/// Replaces the document's records in Chroma with its current version from PostgreSQL, then
/// notes that version as synced.
async fn sync_document(
    store: &DocumentStore,
    index: &dyn VectorIndex,
    document_id: Uuid,
) -> Result<(), anyhow::Error> {
    let Some(doc) = store.for_chroma(document_id).await? else {
        index.delete_document(document_id).await?;
        return Ok(());
    };
    let records: Vec<ChunkRecord<'_>> = doc
        .chunks
        .iter()
        .map(|c| ChunkRecord {
            chunk_id: c.chunk_id,
            document_id,
            version: doc.version,
            embedding: &c.embedding,
            text: &c.text,
            source: &doc.source,
            page: c.page,
            acl: &doc.acl,
        })
        .collect();
    index.replace_document(document_id, &records).await?;
    store.mark_chroma_synced(document_id, doc.version).await?;
    Ok(())
}

/// Records a failed ingest in `ingest_failures` and logs it. Best effort: whoever sent the document
/// is told either way, so a database that is down costs only the record.
pub async fn record_failure(
    store: &DocumentStore,
    source: &str,
    content_hash: Option<&str>,
    err: &IngestError,
    trigger: Trigger,
) {
    let detail = err.to_string();
    let failure = Failure {
        source,
        content_hash,
        media_type: None,
        kind: err.kind(),
        detail: &detail,
        trigger: trigger.as_str(),
    };
    if let Err(store_err) = store.record_failure(&failure).await {
        tracing::error!(error = %store_err, %source, "cannot record an ingest failure");
    }
    tracing::warn!(%source, kind = err.kind(), error = %err, "ingest failed");
}

/// sha256 of `bytes`, lowercase hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
