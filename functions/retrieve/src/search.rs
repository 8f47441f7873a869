//! Hybrid search: pgvector kNN, PostgreSQL full text and Chroma, run concurrently, fused by RRF,
//! hydrated from PostgreSQL, near-duplicates merged.
//!
//! The caller's ACL is a predicate inside every query (the SQL `WHERE` and Chroma's `where`), so
//! each retriever returns its best chunks *among those the caller may see*; filtering someone
//! else's top-k afterwards would starve results when the best matches belong to other roles. The
//! PostgreSQL queries also run as `quarry_app` with `quarry.role`/`quarry.region` set, so
//! row-level security applies the same ACL a second time. Passages always come from PostgreSQL:
//! a Chroma hit for a chunk that PostgreSQL no longer has (a replaced version) is dropped, so a
//! document is never served half old, half new.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use pgvector::Vector;
use quarry_shared::docs::chroma::VectorIndex;
use quarry_shared::rag::embed::Embedder;
use quarry_shared::sql::quote_literal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fuse;

/// Candidates each retriever contributes before fusion.
pub const CANDIDATES: usize = 50;

/// Which retrievers to use (hybrid by default; the single ones exist for evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// pgvector + full text + Chroma, fused.
    #[default]
    Hybrid,
    /// pgvector only.
    Vector,
    /// PostgreSQL full text only.
    Text,
}

/// Who is asking: their ACL applies inside every query.
#[derive(Debug, Clone)]
pub struct Viewer<'a> {
    /// The caller's role.
    pub role: &'a str,
    /// The caller's region.
    pub region: &'a str,
}

/// One passage returned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Passage {
    /// The chunk.
    pub chunk_id: Uuid,
    /// Its document.
    pub document_id: Uuid,
    /// The document's URI as ingested.
    pub source: String,
    /// Page, for paged formats.
    pub page: Option<i32>,
    /// Enclosing headings, `A > B`.
    pub heading: String,
    /// The chunk text.
    pub text: String,
    /// Fused score (reciprocal rank fusion; higher is better).
    pub score: f64,
    /// Near-duplicate chunks merged into this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<Uuid>,
    #[serde(skip)]
    char_start: usize,
    #[serde(skip)]
    char_end: usize,
}

impl fuse::Passage for Passage {
    fn text(&self) -> &str {
        &self.text
    }
    fn document_id(&self) -> Uuid {
        self.document_id
    }
    fn char_range(&self) -> std::ops::Range<usize> {
        self.char_start..self.char_end
    }
}

/// The result of a search.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// Best first.
    pub passages: Vec<Passage>,
    /// Retrievers that failed and were left out (`chroma`).
    pub degraded: Vec<&'static str>,
    /// Milliseconds per stage.
    pub timings_ms: Timings,
}

/// Milliseconds per stage.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Timings {
    /// Embedding the query.
    pub embed: u64,
    /// The concurrent retrievers (the slowest of them).
    pub retrieve: u64,
    /// Hydration and merging.
    pub hydrate: u64,
    /// All of it.
    pub total: u64,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// No database connection.
    #[error("the document database is unavailable")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A query failed.
    #[error("a document query failed")]
    Query(#[from] tokio_postgres::Error),
    /// The embedding model failed or could not be loaded.
    #[error("the embedding model failed")]
    Embed(#[from] quarry_shared::rag::embed::EmbedError),
    /// A worker thread stopped.
    #[error("a search worker stopped unexpectedly")]
    Worker,
}

/// What a search needs.
pub struct Searcher {
    /// Pool of the restricted `quarry_app` role.
    pub pool: Pool,
    /// The embedder (shared by the process).
    pub embedder: Arc<Embedder>,
    /// Chroma, when configured and reachable at start.
    pub index: Option<Arc<dyn VectorIndex>>,
    /// How long Chroma may take.
    pub chroma_timeout: Duration,
}

impl Searcher {
    /// The best `top_k` passages for `query` that `viewer` may see.
    ///
    /// # Errors
    /// [`SearchError`] when PostgreSQL or the embedder fails (Chroma failing only degrades).
    pub async fn search(
        &self,
        viewer: &Viewer<'_>,
        query: &str,
        top_k: usize,
        mode: Mode,
    ) -> Result<Outcome, SearchError> {
        let started = Instant::now();
        let mut timings = Timings::default();
        let mut degraded = Vec::new();

        let embedding = if mode == Mode::Text {
            None
        } else {
            let embedder = Arc::clone(&self.embedder);
            let text = query.to_owned();
            let vectors = tokio::task::spawn_blocking(move || embedder.embed(&[text.as_str()]))
                .await
                .map_err(|_| SearchError::Worker)??;
            vectors.into_iter().next()
        };
        timings.embed = millis(started);

        let retrieve_started = Instant::now();
        let vector = async {
            match &embedding {
                Some(e) => vector_search(&self.pool, viewer, e, CANDIDATES).await,
                None => Ok(Vec::new()),
            }
        };
        let text = async {
            if mode == Mode::Vector {
                Ok(Vec::new())
            } else {
                text_search(&self.pool, viewer, query, CANDIDATES).await
            }
        };
        let chroma = async {
            match (&self.index, &embedding, mode) {
                (Some(index), Some(e), Mode::Hybrid) => {
                    let hits = tokio::time::timeout(
                        self.chroma_timeout,
                        index.query(e, viewer.role, viewer.region, CANDIDATES),
                    )
                    .await;
                    match hits {
                        Ok(Ok(hits)) => Some(hits.into_iter().map(|h| h.chunk_id).collect()),
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "chroma query failed; serving from PostgreSQL");
                            None
                        }
                        Err(_) => {
                            tracing::warn!("chroma query timed out; serving from PostgreSQL");
                            None
                        }
                    }
                }
                (None, _, Mode::Hybrid) => None,
                _ => Some(Vec::new()),
            }
        };
        let (vector, text, chroma) = tokio::join!(vector, text, chroma);
        let (vector, text) = (vector?, text?);
        let chroma: Vec<Uuid> = chroma.unwrap_or_else(|| {
            degraded.push("chroma");
            Vec::new()
        });
        timings.retrieve = millis(retrieve_started);

        let hydrate_started = Instant::now();
        // pgvector and Chroma are two views of the same vectors: the full-text list weighs half
        // of whatever vector evidence there is, so losing Chroma does not double its say.
        let vector_lists = if degraded.contains(&"chroma") {
            1.0
        } else {
            2.0
        };
        let fused = fuse::rrf(
            &[
                (&vector, 1.0),
                (&text, fuse::TEXT_SHARE * vector_lists),
                (&chroma, 1.0),
            ],
            fuse::RRF_K,
        );
        // Room for merged duplicates and for Chroma hits PostgreSQL no longer has.
        let wanted: Vec<Uuid> = fused
            .iter()
            .take(top_k.saturating_mul(3).max(top_k + 10))
            .map(|f| f.chunk_id)
            .collect();
        let mut rows = hydrate(&self.pool, viewer, &wanted).await?;
        let ordered: Vec<Passage> = fused
            .iter()
            .filter_map(|f| {
                rows.remove(&f.chunk_id).map(|mut p| {
                    p.score = f.score;
                    p
                })
            })
            .collect();
        let passages: Vec<Passage> = fuse::merge_near_duplicates(ordered, |p| p.chunk_id)
            .into_iter()
            .take(top_k)
            .map(|(mut p, merged)| {
                p.merged = merged;
                p
            })
            .collect();
        timings.hydrate = millis(hydrate_started);
        timings.total = millis(started);
        Ok(Outcome {
            passages,
            degraded,
            timings_ms: timings,
        })
    }
}

/// A read-only transaction as `quarry_app` with the viewer's settings, so RLS applies.
async fn viewer_tx<'c>(
    client: &'c mut deadpool_postgres::Object,
    viewer: &Viewer<'_>,
    extra: &str,
) -> Result<deadpool_postgres::Transaction<'c>, SearchError> {
    let tx = client.build_transaction().read_only(true).start().await?;
    tx.batch_execute(&format!(
        "SET LOCAL quarry.role = {}; SET LOCAL quarry.region = {}; SET LOCAL statement_timeout = 5000; {extra}",
        quote_literal(viewer.role),
        quote_literal(viewer.region),
    ))
    .await?;
    Ok(tx)
}

/// The ACL predicate on `quarry_meta.chunks` (alias `c`); `$2` role, `$3` region.
const ACL: &str = "$2 = ANY (c.allowed_roles) AND ($3 = ANY (c.allowed_regions) OR '*' = ANY (c.allowed_regions))";

/// Nearest chunks by cosine distance over the HNSW index. Iterative scans (pgvector ≥ 0.8) keep
/// reading the index until enough chunks pass the ACL, instead of returning fewer.
async fn vector_search(
    pool: &Pool,
    viewer: &Viewer<'_>,
    embedding: &[f32],
    n: usize,
) -> Result<Vec<Uuid>, SearchError> {
    let mut client = pool.get().await?;
    let tx = viewer_tx(
        &mut client,
        viewer,
        "SET LOCAL hnsw.ef_search = 100; SET LOCAL hnsw.iterative_scan = relaxed_order;",
    )
    .await?;
    let sql = format!(
        "SELECT c.chunk_id, c.embedding <=> $1 AS distance FROM quarry_meta.chunks c
         WHERE {ACL} ORDER BY c.embedding <=> $1 LIMIT $4"
    );
    let rows = tx
        .query(
            sql.as_str(),
            &[
                &Vector::from(embedding.to_vec()),
                &viewer.role,
                &viewer.region,
                &i64::try_from(n).unwrap_or(i64::MAX),
            ],
        )
        .await?;
    tx.commit().await?;
    // relaxed_order may return slightly out of order; restore it.
    let mut hits: Vec<(Uuid, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    hits.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(hits.into_iter().map(|(id, _)| id).collect())
}

/// Full-text matches of *any* of the question's terms, ranked by `ts_rank` (term frequency,
/// normalised by length). The question is parsed by `websearch_to_tsquery` and its `&`s turned
/// into `|`s: an all-terms query finds nothing for most natural-language questions, and on the
/// manual evaluation ranking all-terms matches first, or by cover density, did worse (recall@10
/// 0.64 and 0.60 against 0.72). Queries with negation or phrases keep their exact meaning.
async fn text_search(
    pool: &Pool,
    viewer: &Viewer<'_>,
    query: &str,
    n: usize,
) -> Result<Vec<Uuid>, SearchError> {
    let mut client = pool.get().await?;
    let tx = viewer_tx(&mut client, viewer, "").await?;
    let sql = format!(
        "WITH q AS (SELECT websearch_to_tsquery('english', $1) AS q_all),
              qs AS (SELECT CASE WHEN q_all::text ~ '[!<]' THEN q_all
                                 ELSE replace(q_all::text, ' & ', ' | ')::tsquery END AS q_any
                     FROM q)
         SELECT c.chunk_id
         FROM quarry_meta.chunks c, qs
         WHERE c.tsv @@ qs.q_any AND {ACL}
         ORDER BY ts_rank(c.tsv, qs.q_any, 1) DESC
         LIMIT $4"
    );
    let rows = tx
        .query(
            sql.as_str(),
            &[
                &query,
                &viewer.role,
                &viewer.region,
                &i64::try_from(n).unwrap_or(i64::MAX),
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The passages for `ids` that the viewer may see (the ACL again: Chroma may be stale).
async fn hydrate(
    pool: &Pool,
    viewer: &Viewer<'_>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Passage>, SearchError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut client = pool.get().await?;
    let tx = viewer_tx(&mut client, viewer, "").await?;
    let sql = format!(
        "SELECT c.chunk_id, c.document_id, d.source, c.page, c.heading, c.text, c.char_start, c.char_end
         FROM quarry_meta.chunks c JOIN quarry_meta.documents d ON d.document_id = c.document_id
         WHERE c.chunk_id = ANY ($1) AND {ACL}"
    );
    let rows = tx
        .query(sql.as_str(), &[&ids, &viewer.role, &viewer.region])
        .await?;
    tx.commit().await?;
    Ok(rows
        .iter()
        .map(|r| {
            let chunk_id: Uuid = r.get(0);
            let usize_of = |v: i32| usize::try_from(v).unwrap_or(0);
            (
                chunk_id,
                Passage {
                    chunk_id,
                    document_id: r.get(1),
                    source: r.get(2),
                    page: r.get(3),
                    heading: r.get(4),
                    text: r.get(5),
                    score: 0.0,
                    merged: Vec::new(),
                    char_start: usize_of(r.get(6)),
                    char_end: usize_of(r.get(7)),
                },
            )
        })
        .collect())
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
