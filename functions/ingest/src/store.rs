//! The PostgreSQL side of ingest: documents, chunks, ACL rules and failures.
//!
//! PostgreSQL is the source of truth. A new version of a document replaces its chunks in one
//! transaction, under a transaction-scoped advisory lock on the source URI, so two deliveries of the
//! same object serialise, and a crash at any point leaves either the old version or the new one.
//! Chroma is written after the commit and reconciled from here ([`DocumentStore::chroma_lagging`]).

use deadpool_postgres::GenericClient;
use deadpool_postgres::Pool;
use pgvector::Vector;
use quarry_shared::docs::acl::{Acl, AclError, AclRule};
use quarry_shared::rag::chunk::Chunk;
use uuid::Uuid;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection from the pool.
    #[error("the database is unavailable")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("a database statement failed")]
    Query(#[from] tokio_postgres::Error),
    /// A stored ACL no longer passes validation (edited by hand).
    #[error("a stored ACL is invalid: {0}")]
    Acl(#[from] AclError),
    /// Chunks and embeddings disagree in number (a caller bug).
    #[error("{chunks} chunks but {embeddings} embeddings")]
    Mismatch {
        /// Chunks given.
        chunks: usize,
        /// Embeddings given.
        embeddings: usize,
    },
}

/// What PostgreSQL holds about a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// Its id.
    pub document_id: Uuid,
    /// sha256 of its bytes, hex.
    pub content_hash: String,
    /// Who may see it.
    pub acl: Acl,
    /// Its current version.
    pub version: i32,
    /// The version Chroma holds, if any.
    pub chroma_version: Option<i32>,
    /// Chunks of the current version.
    pub chunk_count: i32,
}

/// A new version of a document, extracted, chunked and embedded.
#[derive(Debug)]
pub struct NewVersion<'a> {
    /// Source URI.
    pub source: &'a str,
    /// Title, when the format has one.
    pub title: Option<&'a str>,
    /// MIME type of the original.
    pub media_type: &'a str,
    /// sha256 of the bytes, hex.
    pub content_hash: &'a str,
    /// Size of the original.
    pub byte_size: usize,
    /// Pages, for paged formats.
    pub page_count: Option<u32>,
    /// Pages that needed OCR.
    pub ocr_pages: u32,
    /// Who may see it.
    pub acl: &'a Acl,
    /// Its chunks, in order.
    pub chunks: &'a [Chunk],
    /// One L2-normalised embedding per chunk.
    pub embeddings: &'a [Vec<f32>],
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The source was new.
    Created,
    /// The source had other content; its chunks were replaced.
    Replaced,
    /// Same content, another ACL: the ACL was replaced on the document and its chunks.
    AclChanged,
    /// Same content and ACL (a duplicate delivery): nothing was written.
    Unchanged,
}

impl WriteOutcome {
    /// Stable name, for responses and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Replaced => "replaced",
            Self::AclChanged => "acl-changed",
            Self::Unchanged => "unchanged",
        }
    }
}

/// A chunk as Chroma needs it.
#[derive(Debug, Clone)]
pub struct ChromaChunk {
    /// Id, shared with PostgreSQL.
    pub chunk_id: Uuid,
    /// Text.
    pub text: String,
    /// Page, for paged formats.
    pub page: Option<i32>,
    /// Embedding.
    pub embedding: Vec<f32>,
}

/// A document's current version as Chroma needs it.
#[derive(Debug, Clone)]
pub struct ChromaDocument {
    /// Id.
    pub document_id: Uuid,
    /// Source URI.
    pub source: String,
    /// Version these chunks belong to.
    pub version: i32,
    /// ACL.
    pub acl: Acl,
    /// Chunks.
    pub chunks: Vec<ChromaChunk>,
}

/// One failed ingest, for `quarry_meta.ingest_failures`.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// Source URI.
    pub source: &'a str,
    /// sha256 of the bytes, when they were read.
    pub content_hash: Option<&'a str>,
    /// MIME type, when known.
    pub media_type: Option<&'a str>,
    /// Stable slug, e.g. `encrypted`.
    pub kind: &'a str,
    /// What the user was told.
    pub detail: &'a str,
    /// `upload`, `event` or `cli`.
    pub trigger: &'a str,
}

/// Documents and chunks in PostgreSQL, over the owner pool.
#[derive(Clone)]
pub struct DocumentStore {
    pool: Pool,
}

impl DocumentStore {
    /// A store over `pool` (the owner's: ingest writes tables the application role only reads).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// What is stored for `source`, if anything.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn find(&self, source: &str) -> Result<Option<StoredDocument>, StoreError> {
        let client = self.pool.get().await?;
        find(&client, source, false).await
    }

    /// The path-prefix ACL rules.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a stored rule is invalid.
    pub async fn acl_rules(&self) -> Result<Vec<AclRule>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT prefix, allowed_roles, allowed_regions FROM quarry_meta.document_acl_rules",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AclRule {
                    prefix: row.get(0),
                    acl: Acl::new(row.get::<_, Vec<String>>(1), row.get::<_, Vec<String>>(2))?,
                })
            })
            .collect()
    }

    /// Writes a new version of a document (or its new ACL), atomically. Under the lock the stored
    /// hash and ACL are compared again, so of two concurrent deliveries of the same bytes one
    /// writes and the other finds [`WriteOutcome::Unchanged`].
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; nothing is then written.
    pub async fn write(
        &self,
        new: &NewVersion<'_>,
    ) -> Result<(Uuid, i32, WriteOutcome), StoreError> {
        if new.chunks.len() != new.embeddings.len() {
            return Err(StoreError::Mismatch {
                chunks: new.chunks.len(),
                embeddings: new.embeddings.len(),
            });
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_source(&tx, new.source).await?;
        let existing = find(&tx, new.source, true).await?;
        let (document_id, version, outcome) = match &existing {
            Some(doc) if doc.content_hash == new.content_hash && &doc.acl == new.acl => {
                return Ok((doc.document_id, doc.version, WriteOutcome::Unchanged));
            }
            Some(doc) if doc.content_hash == new.content_hash => {
                let version = doc.version + 1;
                set_acl(&tx, doc.document_id, version, new.acl).await?;
                tx.commit().await?;
                return Ok((doc.document_id, version, WriteOutcome::AclChanged));
            }
            Some(doc) => (doc.document_id, doc.version + 1, WriteOutcome::Replaced),
            None => (Uuid::new_v4(), 1, WriteOutcome::Created),
        };
        let chunk_count = i32::try_from(new.chunks.len()).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO quarry_meta.documents AS d
                 (document_id, source, title, media_type, content_hash, byte_size, page_count,
                  ocr_pages, allowed_roles, allowed_regions, version, chunk_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (source) DO UPDATE SET
                 title = EXCLUDED.title, media_type = EXCLUDED.media_type,
                 content_hash = EXCLUDED.content_hash, byte_size = EXCLUDED.byte_size,
                 page_count = EXCLUDED.page_count, ocr_pages = EXCLUDED.ocr_pages,
                 allowed_roles = EXCLUDED.allowed_roles, allowed_regions = EXCLUDED.allowed_regions,
                 version = EXCLUDED.version, chunk_count = EXCLUDED.chunk_count, updated_at = now()",
            &[
                &document_id,
                &new.source,
                &new.title,
                &new.media_type,
                &new.content_hash,
                &i64::try_from(new.byte_size).unwrap_or(i64::MAX),
                &new.page_count.map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
                &i32::try_from(new.ocr_pages).unwrap_or(i32::MAX),
                &new.acl.roles(),
                &new.acl.regions(),
                &version,
                &chunk_count,
            ],
        )
        .await?;
        tx.execute(
            "DELETE FROM quarry_meta.chunks WHERE document_id = $1",
            &[&document_id],
        )
        .await?;
        insert_chunks(&tx, document_id, new).await?;
        tx.commit().await?;
        Ok((document_id, version, outcome))
    }

    /// When `source` is stored with exactly these bytes (`content_hash`), makes `acl` its ACL
    /// (bumping the version if it changes) and returns what was done; `None` when the stored
    /// bytes differ or nothing is stored, so the document must be ingested in full.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; nothing is then written.
    pub async fn update_acl_if_same(
        &self,
        source: &str,
        content_hash: &str,
        acl: &Acl,
    ) -> Result<Option<(StoredDocument, i32, WriteOutcome)>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_source(&tx, source).await?;
        let Some(doc) = find(&tx, source, true).await? else {
            return Ok(None);
        };
        if doc.content_hash != content_hash {
            return Ok(None);
        }
        if &doc.acl == acl {
            let version = doc.version;
            return Ok(Some((doc, version, WriteOutcome::Unchanged)));
        }
        let version = doc.version + 1;
        set_acl(&tx, doc.document_id, version, acl).await?;
        tx.commit().await?;
        Ok(Some((doc, version, WriteOutcome::AclChanged)))
    }

    /// Records a failed ingest. Best effort by design of the caller: the failure is also returned
    /// to whoever sent the document.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn record_failure(&self, failure: &Failure<'_>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO quarry_meta.ingest_failures (source, content_hash, media_type, kind, detail, trigger)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &failure.source,
                    &failure.content_hash,
                    &failure.media_type,
                    &failure.kind,
                    &failure.detail,
                    &failure.trigger,
                ],
            )
            .await?;
        Ok(())
    }

    /// Documents whose current version Chroma does not hold yet, oldest change first.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn chroma_lagging(&self, limit: i64) -> Result<Vec<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT document_id FROM quarry_meta.documents
                 WHERE chroma_version IS DISTINCT FROM version
                 ORDER BY updated_at LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every document id with its current version.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn versions(&self) -> Result<std::collections::HashMap<Uuid, i32>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT document_id, version FROM quarry_meta.documents",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The current version of a document with its chunks, for writing to Chroma; `None` when the
    /// document is gone.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn for_chroma(
        &self,
        document_id: Uuid,
    ) -> Result<Option<ChromaDocument>, StoreError> {
        let mut client = self.pool.get().await?;
        // One snapshot, so the chunks belong to the version read.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some(doc) = tx
            .query_opt(
                "SELECT source, version, allowed_roles, allowed_regions
                 FROM quarry_meta.documents WHERE document_id = $1",
                &[&document_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let rows = tx
            .query(
                "SELECT chunk_id, text, page, embedding FROM quarry_meta.chunks
                 WHERE document_id = $1 ORDER BY ordinal",
                &[&document_id],
            )
            .await?;
        tx.commit().await?;
        let chunks = rows
            .iter()
            .map(|r| ChromaChunk {
                chunk_id: r.get(0),
                text: r.get(1),
                page: r.get(2),
                embedding: r.get::<_, Vector>(3).to_vec(),
            })
            .collect();
        Ok(Some(ChromaDocument {
            document_id,
            source: doc.get(0),
            version: doc.get(1),
            acl: Acl::new(doc.get::<_, Vec<String>>(2), doc.get::<_, Vec<String>>(3))?,
            chunks,
        }))
    }

    /// Notes that Chroma holds `version` of the document (unless a newer version arrived since).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn mark_chroma_synced(
        &self,
        document_id: Uuid,
        version: i32,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE quarry_meta.documents SET chroma_version = $2
                 WHERE document_id = $1 AND version = $2",
                &[&document_id, &version],
            )
            .await?;
        Ok(())
    }

    /// Deletes a document and its chunks; true when it existed.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn delete(&self, source: &str) -> Result<Option<Uuid>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_source(&tx, source).await?;
        let row = tx
            .query_opt(
                "DELETE FROM quarry_meta.documents WHERE source = $1 RETURNING document_id",
                &[&source],
            )
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// Serialises writers of one source until the transaction ends.
async fn lock_source(client: &impl GenericClient, source: &str) -> Result<(), StoreError> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7142))",
            &[&source],
        )
        .await?;
    Ok(())
}

async fn find(
    client: &impl GenericClient,
    source: &str,
    for_update: bool,
) -> Result<Option<StoredDocument>, StoreError> {
    let sql = if for_update {
        "SELECT document_id, content_hash, allowed_roles, allowed_regions, version, chroma_version, chunk_count
         FROM quarry_meta.documents WHERE source = $1 FOR UPDATE"
    } else {
        "SELECT document_id, content_hash, allowed_roles, allowed_regions, version, chroma_version, chunk_count
         FROM quarry_meta.documents WHERE source = $1"
    };
    let Some(row) = client.query_opt(sql, &[&source]).await? else {
        return Ok(None);
    };
    Ok(Some(StoredDocument {
        document_id: row.get(0),
        content_hash: row.get(1),
        acl: Acl::new(row.get::<_, Vec<String>>(2), row.get::<_, Vec<String>>(3))?,
        version: row.get(4),
        chroma_version: row.get(5),
        chunk_count: row.get(6),
    }))
}

async fn set_acl(
    client: &impl GenericClient,
    document_id: Uuid,
    version: i32,
    acl: &Acl,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE quarry_meta.documents
             SET allowed_roles = $2, allowed_regions = $3, version = $4, updated_at = now()
             WHERE document_id = $1",
            &[&document_id, &acl.roles(), &acl.regions(), &version],
        )
        .await?;
    client
        .execute(
            "UPDATE quarry_meta.chunks SET allowed_roles = $2, allowed_regions = $3
             WHERE document_id = $1",
            &[&document_id, &acl.roles(), &acl.regions()],
        )
        .await?;
    Ok(())
}

/// Inserts the chunks with one multi-row statement per batch: thousands of single-row round trips
/// would dominate the ingest of a large document.
async fn insert_chunks(
    client: &impl GenericClient,
    document_id: Uuid,
    new: &NewVersion<'_>,
) -> Result<(), StoreError> {
    const COLUMNS: usize = 15;
    // PostgreSQL allows 65,535 parameters per statement.
    const BATCH: usize = 1000;
    let roles = new.acl.roles().to_vec();
    let regions = new.acl.regions().to_vec();
    let rows: Vec<ChunkRow> = new
        .chunks
        .iter()
        .zip(new.embeddings)
        .enumerate()
        .map(|(ordinal, (chunk, embedding))| ChunkRow::new(ordinal, chunk, embedding))
        .collect();
    for batch in rows.chunks(BATCH) {
        let mut sql = String::from(
            "INSERT INTO quarry_meta.chunks (chunk_id, document_id, ordinal, heading_path, heading, page,
                 char_start, char_end, byte_start, byte_end, token_count, text, embedding,
                 allowed_roles, allowed_regions) VALUES ",
        );
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            Vec::with_capacity(batch.len() * COLUMNS);
        for (i, row) in batch.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..COLUMNS {
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * COLUMNS + c + 1));
            }
            sql.push(')');
            params.extend_from_slice(&[
                &row.chunk_id,
                &document_id,
                &row.ordinal,
                &row.heading_path,
                &row.heading,
                &row.page,
                &row.char_start,
                &row.char_end,
                &row.byte_start,
                &row.byte_end,
                &row.token_count,
                &row.text,
                &row.embedding,
                &roles,
                &regions,
            ]);
        }
        client.execute(sql.as_str(), &params).await?;
    }
    Ok(())
}

/// A chunk converted to the column types.
struct ChunkRow {
    chunk_id: Uuid,
    ordinal: i32,
    heading_path: Vec<String>,
    heading: String,
    page: Option<i32>,
    char_start: i32,
    char_end: i32,
    byte_start: i32,
    byte_end: i32,
    token_count: i32,
    text: String,
    embedding: Vector,
}

impl ChunkRow {
    fn new(ordinal: usize, chunk: &Chunk, embedding: &[f32]) -> Self {
        let int = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            chunk_id: Uuid::new_v4(),
            ordinal: int(ordinal),
            heading_path: chunk.heading_path.clone(),
            heading: chunk.heading_path.join(" > "),
            page: chunk.page.map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
            char_start: int(chunk.char_range.start),
            char_end: int(chunk.char_range.end),
            byte_start: int(chunk.byte_range.start),
            byte_end: int(chunk.byte_range.end),
            token_count: int(chunk.token_count),
            text: chunk.text.clone(),
            embedding: Vector::from(embedding.to_vec()),
        }
    }
}
