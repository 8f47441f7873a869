//! The Chroma copy of the chunk vectors, behind the [`VectorIndex`] trait.
//!
//! PostgreSQL is the source of truth for documents and chunks; Chroma holds a copy of the vectors
//! (one record per chunk, id = `chunk_id`) that retrieval searches. [`VectorIndex`] is what ingest,
//! retrieve and reconciliation call; [`ChromaIndex`] is the real implementation, one collection
//! in Chroma's default tenant and database, created with cosine distance.
//!
//! # Record layout
//!
//! Each record stores the chunk text as its Chroma document, and this metadata:
//!
//! | key | value |
//! |---|---|
//! | `document_id` | the document's UUID, hyphenated lowercase (string) |
//! | `version` | the document version the chunk belongs to (int) |
//! | `source` | the document's source URI (string) |
//! | `page` | the page number (int); absent when the chunk has none |
//! | `acl_role_<role>` | `true` for each role that may see the chunk |
//! | `acl_region_<region>` | `true` for each region that may see the chunk |
//! | `acl_region_any` | `true` when the ACL's regions contain `*` |
//!
//! The ACL is flattened into one boolean per name, rather than stored as string arrays, because
//! `$eq` on scalar metadata is the one filter every Chroma version evaluates inside the index
//! scan; array metadata and `$contains` on it only exist in recent servers. [`VectorIndex::query`]
//! puts the caller's role and region into the query's `where` filter, so a chunk the caller may
//! not see is never a candidate for the `n` nearest (a filter applied afterwards would both leak
//! work and return fewer than `n` hits).
//!
//! Metadata keys are limited to `[a-z0-9_]`. Role and region names are policy names
//! (`[a-z][a-z0-9_-]{0,62}`, see [`acl::is_policy_name`]) and are encoded injectively, so two
//! different names can never share a key (mapping `-` to `_` would let `eu-west` see `eu_west`):
//! letters and digits stay, `_` becomes `__` and `-` becomes `_d`. So role `sales_rep` is key
//! `acl_role_sales__rep`, region `eu-west` is key `acl_region_eu_dwest`. Any other name (upper
//! case, `*` as a role, empty) is refused with [`ChromaError::InvalidInput`], as is the region
//! `any`, whose key would be the wildcard's `acl_region_any`.
//!
//! # Why the REST API and not the `chroma` crate
//!
//! The house rule prefers the official `chroma` crate. Its current release, 0.15.0 (chroma-core),
//! speaks the same `/api/v2` API as our chromadb 1.5.9 server and has metadata `where` filters,
//! but it does not fit here:
//! - it is built on reqwest 0.13 while the workspace uses reqwest 0.12, so it cannot take the
//!   `reqwest::Client` the services share, and it links a second HTTP/TLS stack (its `rustls`
//!   feature brings `aws-lc-rs`, a C build) next to ours;
//! - its client is built internally with no request timeout and no option to set one, and it
//!   retries internally, while our rule is a configured deadline on every outbound call;
//! - it adds 68 crates to `quarry-shared`'s build (tonic, prost, ndarray, sprs, rayon, bon,
//!   failsafe, rust-stemmers, thiserror 1, …) for five HTTP calls;
//! - it does not expose `/api/v2/pre-flight-checks`, which sizes our upsert batches.
//!
//! So this module calls the v2 REST API directly with the shared `reqwest` client: every request
//! carries the configured timeout, every response body is read with a size limit, and errors
//! never carry the URL (which may hold credentials).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};

use crate::http::outbound::{self, ReadError};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;
use uuid::Uuid;

use crate::docs::acl::{self, Acl};

/// Length of the vectors the collection holds: all-MiniLM-L6-v2 embeddings.
pub const EMBEDDING_DIMENSIONS: usize = 384;

/// Chroma's default tenant and database: Quarry uses one collection in them.
const TENANT: &str = "default_tenant";
const DATABASE: &str = "default_database";

/// Upper bound on records per upsert, below the server's own `max_batch_size` (5461 on 1.5.9):
/// 1000 chunks of 384 floats are a few MB of JSON, which keeps each request well inside the timeout.
const MAX_UPSERT_BATCH: usize = 1000;
/// Records per page when listing the collection (a page of metadata is a few hundred KB).
const GET_PAGE_SIZE: usize = 1000;
/// Largest successful response body read; pages and query results are far smaller.
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Largest error body read; only a message is wanted from it.
const MAX_ERROR_BYTES: usize = 16 << 10;
/// Server messages are cut to this many characters in [`ChromaError::Server`].
const MAX_MESSAGE_CHARS: usize = 500;

const ROLE_KEY_PREFIX: &str = "acl_role_";
const REGION_KEY_PREFIX: &str = "acl_region_";
/// The key that marks a chunk visible from any region (ACL region `*`).
const ANY_REGION_KEY: &str = "acl_region_any";
/// The region name whose encoded key would be [`ANY_REGION_KEY`]: refused.
const RESERVED_REGION: &str = "any";

/// One chunk to store: its vector, text, provenance and ACL.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRecord<'a> {
    /// The chunk's id (PostgreSQL `chunks.chunk_id`); also the Chroma record id.
    pub chunk_id: Uuid,
    /// The document the chunk belongs to.
    pub document_id: Uuid,
    /// The document version the chunk was cut from.
    pub version: i32,
    /// The chunk's embedding ([`EMBEDDING_DIMENSIONS`] floats).
    pub embedding: &'a [f32],
    /// The chunk's text, stored as the Chroma document.
    pub text: &'a str,
    /// The document's source URI.
    pub source: &'a str,
    /// The page the chunk starts on, when the format has pages.
    pub page: Option<i32>,
    /// Who may see the chunk.
    pub acl: &'a Acl,
}

/// One search result: a chunk and its cosine distance to the query (0 = same direction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChromaHit {
    /// The chunk's id.
    pub chunk_id: Uuid,
    /// The document it belongs to.
    pub document_id: Uuid,
    /// Cosine distance, `1 - cos(query, chunk)`.
    pub distance: f32,
}

/// Why a call to Chroma failed. None of the variants carries the server URL.
#[derive(Debug, thiserror::Error)]
pub enum ChromaError {
    /// The connection could not be made or broke off.
    #[error("Chroma is unreachable")]
    Unreachable(#[source] reqwest::Error),
    /// The server did not answer within the configured timeout.
    #[error("Chroma did not answer in time")]
    Timeout,
    /// The server refused the request (a 4xx, e.g. a vector of the wrong dimension) or failed (5xx).
    #[error("Chroma answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's `error: message`, cut to a few hundred characters.
        message: String,
    },
    /// The server answered something this adapter does not understand (or a collection that does
    /// not fit: another distance, another dimension).
    #[error("unexpected answer from Chroma: {0}")]
    Protocol(String),
    /// The request was refused before anything was sent: a name that cannot be a metadata key,
    /// a record of another document, a duplicate chunk id, a non-finite embedding.
    #[error("cannot send to Chroma: {0}")]
    InvalidInput(String),
}

/// The vector index of document chunks, as ingest, retrieve and reconciliation see it.
pub trait VectorIndex: Send + Sync {
    /// Replaces every record of `document_id` with `records`: deletes the records whose metadata
    /// `document_id` matches, then upserts `records` in batches no larger than the server's
    /// `max_batch_size` (from `/api/v2/pre-flight-checks`).
    ///
    /// Every record is validated before anything is deleted. The replacement is not atomic: after
    /// an error the document may have none or some of `records` in the index. It is idempotent,
    /// so the caller records success (e.g. `documents.chroma_version`) only after `Ok` and
    /// retries otherwise.
    ///
    /// # Errors
    /// [`ChromaError::InvalidInput`] for a record of another document, a duplicate chunk id, an
    /// empty or non-finite embedding, or an ACL name that cannot be a key; otherwise as the
    /// server or the connection fails (a wrong dimension is a [`ChromaError::Server`] 4xx).
    fn replace_document<'a>(
        &'a self,
        document_id: Uuid,
        records: &'a [ChunkRecord<'a>],
    ) -> BoxFuture<'a, Result<(), ChromaError>>;

    /// Deletes every record of `document_id` (none is fine).
    ///
    /// # Errors
    /// As the server or the connection fails.
    fn delete_document(&self, document_id: Uuid) -> BoxFuture<'_, Result<(), ChromaError>>;

    /// The `n` chunks nearest to `embedding` that `role` acting from `region` may see, nearest
    /// first. The ACL is a `where` filter inside the Chroma query, never a filter applied
    /// afterwards: a chunk the caller may not see is never among the candidates.
    ///
    /// # Errors
    /// [`ChromaError::InvalidInput`] when `role` or `region` is not a policy name (or the region
    /// is `any`) or the embedding is empty or non-finite; otherwise as the server or the
    /// connection fails.
    fn query<'a>(
        &'a self,
        embedding: &'a [f32],
        role: &'a str,
        region: &'a str,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<ChromaHit>, ChromaError>>;

    /// The versions the index holds per document, for reconciliation with PostgreSQL: a document
    /// whose set is not exactly `{documents.version}` needs re-indexing. Pages through the whole
    /// collection; records written meanwhile may be missed or seen twice, which the next
    /// reconciliation run corrects.
    ///
    /// # Errors
    /// [`ChromaError::Protocol`] for a record without a valid `document_id` or `version`;
    /// otherwise as the server or the connection fails.
    fn document_versions(&self)
        -> BoxFuture<'_, Result<HashMap<Uuid, BTreeSet<i32>>, ChromaError>>;

    /// How many records the index holds.
    ///
    /// # Errors
    /// As the server or the connection fails.
    fn count(&self) -> BoxFuture<'_, Result<usize, ChromaError>>;
}

/// The endpoints of one collection, resolved once at [`ChromaIndex::connect`].
struct Endpoints {
    /// `DELETE` drops the collection (by name, which is how Chroma addresses it there).
    collection_by_name: Url,
    upsert: Url,
    delete: Url,
    query: Url,
    get: Url,
    count: Url,
}

/// [`VectorIndex`] on a Chroma server over its v2 HTTP API.
pub struct ChromaIndex {
    http: reqwest::Client,
    timeout: Duration,
    name: String,
    id: Uuid,
    batch_size: usize,
    endpoints: Endpoints,
}

// By hand: the endpoint URLs may carry credentials and must not reach logs.
impl fmt::Debug for ChromaIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChromaIndex")
            .field("collection", &self.name)
            .field("id", &self.id)
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ChromaIndex {
    /// Gets or creates the collection `collection` (default tenant and database) with cosine
    /// distance, and caches its id and the server's batch size. Every request this index makes
    /// is bounded by `timeout`.
    ///
    /// Chroma fixes a collection's dimension with its first record, so it cannot be declared
    /// here; an existing collection that already holds vectors of another length than
    /// [`EMBEDDING_DIMENSIONS`], or uses another distance, is refused.
    ///
    /// # Errors
    /// [`ChromaError::InvalidInput`] when `base` is not an http(s) URL;
    /// [`ChromaError::Protocol`] for a collection of another distance or dimension, or an
    /// unexpected answer; otherwise as the server or the connection fails.
    pub async fn connect(
        http: reqwest::Client,
        base: &Url,
        collection: &str,
        timeout: Duration,
    ) -> Result<Self, ChromaError> {
        let api = api_root(base)?;
        let database = child(&api, &["tenants", TENANT, "databases", DATABASE])?;
        let collections = child(&database, &["collections"])?;

        let preflight: PreflightChecks = send(
            http.get(child(&api, &["pre-flight-checks"])?)
                .timeout(timeout),
            "pre-flight checks",
        )
        .await?;
        if preflight.max_batch_size == 0 {
            return Err(ChromaError::Protocol(
                "pre-flight checks report a max_batch_size of 0".to_owned(),
            ));
        }
        let batch_size = usize::try_from(preflight.max_batch_size)
            .unwrap_or(usize::MAX)
            .min(MAX_UPSERT_BATCH);

        let created: CollectionModel = send(
            http.post(collections.clone())
                .timeout(timeout)
                .json(&json!({
                    "name": collection,
                    "configuration": { "hnsw": { "space": "cosine" } },
                    "get_or_create": true,
                })),
            "get or create collection",
        )
        .await?;
        created.check_fits(collection)?;
        let id = Uuid::parse_str(&created.id).map_err(|_| {
            ChromaError::Protocol(format!("collection id '{}' is not a UUID", created.id))
        })?;

        let by_id = child(&collections, &[&id.to_string()])?;
        let endpoints = Endpoints {
            collection_by_name: child(&collections, &[collection])?,
            upsert: child(&by_id, &["upsert"])?,
            delete: child(&by_id, &["delete"])?,
            query: child(&by_id, &["query"])?,
            get: child(&by_id, &["get"])?,
            count: child(&by_id, &["count"])?,
        };
        tracing::debug!(collection, %id, batch_size, "connected to Chroma");
        Ok(Self {
            http,
            timeout,
            name: collection.to_owned(),
            id,
            batch_size,
            endpoints,
        })
    }

    /// The collection's name.
    pub fn collection_name(&self) -> &str {
        &self.name
    }

    /// The collection's id on the server.
    pub fn collection_id(&self) -> Uuid {
        self.id
    }

    /// Records per upsert request: the server's `max_batch_size`, at most 1000.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Drops the whole collection (tests; a full re-index). Dropping one that is already gone is
    /// not an error. This index is useless afterwards.
    ///
    /// # Errors
    /// As the server or the connection fails.
    pub async fn delete_collection(&self) -> Result<(), ChromaError> {
        let request = self.request(Method::DELETE, &self.endpoints.collection_by_name);
        match send::<IgnoredAny>(request, "delete collection").await {
            Ok(_) | Err(ChromaError::Server { status: 404, .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        self.http.request(method, url.clone()).timeout(self.timeout)
    }

    async fn delete_where(&self, document_id: Uuid) -> Result<(), ChromaError> {
        let body = json!({ "where": { "document_id": { "$eq": document_id.to_string() } } });
        let request = self
            .request(Method::POST, &self.endpoints.delete)
            .json(&body);
        send::<IgnoredAny>(request, "delete records").await?;
        Ok(())
    }
}

impl VectorIndex for ChromaIndex {
    fn replace_document<'a>(
        &'a self,
        document_id: Uuid,
        records: &'a [ChunkRecord<'a>],
    ) -> BoxFuture<'a, Result<(), ChromaError>> {
        Box::pin(async move {
            // Validate and build everything first: a bad record must not cost the document
            // the records it already has.
            let mut seen = HashSet::with_capacity(records.len());
            let mut ids = Vec::with_capacity(records.len());
            let mut metadatas = Vec::with_capacity(records.len());
            for record in records {
                if record.document_id != document_id {
                    return Err(ChromaError::InvalidInput(format!(
                        "chunk {} belongs to document {}, not {document_id}",
                        record.chunk_id, record.document_id
                    )));
                }
                if !seen.insert(record.chunk_id) {
                    return Err(ChromaError::InvalidInput(format!(
                        "chunk {} appears twice",
                        record.chunk_id
                    )));
                }
                check_embedding(record.embedding)?;
                ids.push(record.chunk_id.to_string());
                metadatas.push(record_metadata(record)?);
            }

            tracing::debug!(
                collection = %self.name,
                %document_id,
                records = records.len(),
                "replacing document in Chroma"
            );
            self.delete_where(document_id).await?;
            let mut start = 0;
            while start < records.len() {
                let end = (start + self.batch_size).min(records.len());
                let batch = &records[start..end];
                let payload = Upsert {
                    ids: &ids[start..end],
                    embeddings: batch.iter().map(|r| r.embedding).collect(),
                    documents: batch.iter().map(|r| r.text).collect(),
                    metadatas: &metadatas[start..end],
                };
                let request = self
                    .request(Method::POST, &self.endpoints.upsert)
                    .json(&payload);
                send::<IgnoredAny>(request, "upsert records").await?;
                start = end;
            }
            Ok(())
        })
    }

    fn delete_document(&self, document_id: Uuid) -> BoxFuture<'_, Result<(), ChromaError>> {
        Box::pin(self.delete_where(document_id))
    }

    fn query<'a>(
        &'a self,
        embedding: &'a [f32],
        role: &'a str,
        region: &'a str,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<ChromaHit>, ChromaError>> {
        Box::pin(async move {
            let role_key = role_key(role)?;
            let region_key = region_key(region)?;
            check_embedding(embedding)?;
            // Nothing asked, nothing sent: Chroma 1.5.9 drops the connection on `n_results: 0`.
            if n == 0 {
                return Ok(Vec::new());
            }
            let filter = json!({ "$and": [
                { role_key.as_str(): { "$eq": true } },
                { "$or": [
                    { region_key.as_str(): { "$eq": true } },
                    { ANY_REGION_KEY: { "$eq": true } },
                ] },
            ] });
            let payload = QueryRequest {
                query_embeddings: [embedding],
                // More than i32::MAX is "all of them", which the server's int32 cannot say.
                n_results: i32::try_from(n).unwrap_or(i32::MAX),
                filter,
                include: ["metadatas", "distances"],
            };
            let request = self
                .request(Method::POST, &self.endpoints.query)
                .json(&payload);
            let response: QueryResponse = send(request, "query").await?;
            let mut hits = response.into_hits(&role_key, &region_key)?;
            hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
            hits.truncate(n);
            Ok(hits)
        })
    }

    fn document_versions(
        &self,
    ) -> BoxFuture<'_, Result<HashMap<Uuid, BTreeSet<i32>>, ChromaError>> {
        Box::pin(async move {
            let mut versions: HashMap<Uuid, BTreeSet<i32>> = HashMap::new();
            let mut offset = 0usize;
            loop {
                let body = json!({
                    "include": ["metadatas"],
                    "limit": GET_PAGE_SIZE,
                    "offset": offset,
                });
                let request = self.request(Method::POST, &self.endpoints.get).json(&body);
                let page: GetResponse = send(request, "get records").await?;
                let metadatas = page.metadatas.unwrap_or_default();
                if metadatas.len() != page.ids.len() {
                    return Err(ChromaError::Protocol(format!(
                        "get returned {} ids but {} metadatas",
                        page.ids.len(),
                        metadatas.len()
                    )));
                }
                for (id, metadata) in page.ids.iter().zip(&metadatas) {
                    let metadata = metadata.as_ref().ok_or_else(|| {
                        ChromaError::Protocol(format!("record {id} has no metadata"))
                    })?;
                    let document_id = metadata_document_id(id, metadata)?;
                    let version = metadata
                        .get("version")
                        .and_then(Value::as_i64)
                        .and_then(|v| i32::try_from(v).ok())
                        .ok_or_else(|| {
                            ChromaError::Protocol(format!("record {id} has no valid version"))
                        })?;
                    versions.entry(document_id).or_default().insert(version);
                }
                if page.ids.len() < GET_PAGE_SIZE {
                    return Ok(versions);
                }
                offset += page.ids.len();
            }
        })
    }

    fn count(&self) -> BoxFuture<'_, Result<usize, ChromaError>> {
        Box::pin(async move {
            let request = self.request(Method::GET, &self.endpoints.count);
            send(request, "count").await
        })
    }
}

/// A record's metadata as Chroma returns it: `null` for a record stored without any.
type RecordMetadata = Option<Map<String, Value>>;

#[derive(Deserialize)]
struct PreflightChecks {
    max_batch_size: u64,
}

#[derive(Deserialize)]
struct CollectionModel {
    // A string, parsed by `connect`: uuid's serde feature is not worth enabling for one field.
    id: String,
    #[serde(default)]
    dimension: Option<i64>,
    #[serde(default)]
    configuration_json: Option<Value>,
}

impl CollectionModel {
    /// Refuses a collection whose distance or dimension would make every query wrong.
    fn check_fits(&self, name: &str) -> Result<(), ChromaError> {
        let space = self.configuration_json.as_ref().and_then(|config| {
            ["/hnsw/space", "/spann/space"]
                .iter()
                .find_map(|path| config.pointer(path).and_then(Value::as_str))
        });
        if let Some(space) = space.filter(|space| *space != "cosine") {
            return Err(ChromaError::Protocol(format!(
                "collection '{name}' uses distance '{space}', not cosine; drop it and re-index"
            )));
        }
        if let Some(dimension) = self
            .dimension
            .filter(|d| usize::try_from(*d).ok() != Some(EMBEDDING_DIMENSIONS))
        {
            return Err(ChromaError::Protocol(format!(
                "collection '{name}' holds {dimension}-dimensional vectors, not \
                 {EMBEDDING_DIMENSIONS}; drop it and re-index"
            )));
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Upsert<'a> {
    ids: &'a [String],
    embeddings: Vec<&'a [f32]>,
    documents: Vec<&'a str>,
    metadatas: &'a [Map<String, Value>],
}

#[derive(Serialize)]
struct QueryRequest<'a> {
    query_embeddings: [&'a [f32]; 1],
    n_results: i32,
    #[serde(rename = "where")]
    filter: Value,
    include: [&'static str; 2],
}

/// A query's answer: one row per query embedding (we send one).
#[derive(Deserialize)]
struct QueryResponse {
    ids: Vec<Vec<String>>,
    #[serde(default)]
    metadatas: Option<Vec<Vec<RecordMetadata>>>,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f32>>>>,
}

impl QueryResponse {
    /// The hits of the single query row. Each hit's metadata is checked against the filter that
    /// was sent: not as the ACL (that is the `where` filter's job) but as a fail-closed guard
    /// against a server that ignored it.
    fn into_hits(self, role_key: &str, region_key: &str) -> Result<Vec<ChromaHit>, ChromaError> {
        let ids = self.ids.into_iter().next().unwrap_or_default();
        let metadatas = self
            .metadatas
            .and_then(|rows| rows.into_iter().next())
            .unwrap_or_default();
        let distances = self
            .distances
            .and_then(|rows| rows.into_iter().next())
            .unwrap_or_default();
        if metadatas.len() != ids.len() || distances.len() != ids.len() {
            return Err(ChromaError::Protocol(format!(
                "query returned {} ids, {} metadatas and {} distances",
                ids.len(),
                metadatas.len(),
                distances.len()
            )));
        }
        ids.iter()
            .zip(metadatas)
            .zip(distances)
            .map(|((id, metadata), distance)| {
                let metadata = metadata
                    .ok_or_else(|| ChromaError::Protocol(format!("record {id} has no metadata")))?;
                let flag = |key: &str| metadata.get(key) == Some(&Value::Bool(true));
                if !(flag(role_key) && (flag(region_key) || flag(ANY_REGION_KEY))) {
                    return Err(ChromaError::Protocol(format!(
                        "query returned record {id}, which its where filter excludes"
                    )));
                }
                Ok(ChromaHit {
                    chunk_id: parse_chunk_id(id)?,
                    document_id: metadata_document_id(id, &metadata)?,
                    distance: distance.ok_or_else(|| {
                        ChromaError::Protocol(format!("record {id} has no distance"))
                    })?,
                })
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct GetResponse {
    ids: Vec<String>,
    #[serde(default)]
    metadatas: Option<Vec<RecordMetadata>>,
}

#[derive(Deserialize)]
struct ServerErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

/// `base` + `api/v2`, keeping any path prefix of `base` (a proxy may mount Chroma under one).
fn api_root(base: &Url) -> Result<Url, ChromaError> {
    if !matches!(base.scheme(), "http" | "https") {
        return Err(ChromaError::InvalidInput(format!(
            "Chroma URL scheme '{}' is not http or https",
            base.scheme()
        )));
    }
    let mut api = base.clone();
    api.set_query(None);
    api.set_fragment(None);
    child(&api, &["api", "v2"])
}

/// `url` with `segments` appended as path segments (each percent-encoded, so a collection name
/// cannot reach another path).
fn child(url: &Url, segments: &[&str]) -> Result<Url, ChromaError> {
    let mut url = url.clone();
    url.path_segments_mut()
        .map_err(|()| ChromaError::InvalidInput("the Chroma URL cannot have a path".to_owned()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Sends `request` and decodes a successful JSON answer; a non-2xx status becomes
/// [`ChromaError::Server`]. `what` names the operation in errors.
async fn send<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, ChromaError> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(server_error(status, response).await);
    }
    let body = read_limited(response, MAX_RESPONSE_BYTES).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ChromaError::Protocol(format!("{what}: undecodable answer: {e}")))
}

/// A transport failure, without the URL (it may carry credentials).
fn transport(err: reqwest::Error) -> ChromaError {
    if err.is_timeout() {
        ChromaError::Timeout
    } else {
        ChromaError::Unreachable(err.without_url())
    }
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ChromaError> {
    outbound::read_limited(&mut response, limit)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { limit } => {
                ChromaError::Protocol(format!("answer larger than {limit} bytes"))
            }
            ReadError::Transport(e) => transport(e),
        })
}

/// [`ChromaError::Server`] from an error answer: Chroma's `{"error", "message"}` when it sent
/// one, else the start of the body. Reading the body is best effort: the status is what counts.
async fn server_error(status: StatusCode, mut response: reqwest::Response) -> ChromaError {
    let body = outbound::read_prefix(&mut response, MAX_ERROR_BYTES).await;
    let message = match serde_json::from_slice::<ServerErrorBody>(&body) {
        Ok(parsed) if !parsed.message.is_empty() => {
            format!("{}: {}", parsed.error, parsed.message)
        }
        _ => String::from_utf8_lossy(&body).trim().to_owned(),
    };
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        message.chars().take(MAX_MESSAGE_CHARS).collect()
    };
    ChromaError::Server {
        status: status.as_u16(),
        message,
    }
}

fn check_embedding(embedding: &[f32]) -> Result<(), ChromaError> {
    // serde_json writes NaN and infinities as `null`, which Chroma would refuse with a
    // confusing message, or worse, store.
    if embedding.is_empty() || !embedding.iter().all(|x| x.is_finite()) {
        return Err(ChromaError::InvalidInput(
            "an embedding is empty or not finite".to_owned(),
        ));
    }
    Ok(())
}

/// The metadata of one record (see the module docs for the layout).
fn record_metadata(record: &ChunkRecord<'_>) -> Result<Map<String, Value>, ChromaError> {
    let mut metadata = Map::new();
    metadata.insert(
        "document_id".to_owned(),
        Value::String(record.document_id.to_string()),
    );
    metadata.insert("version".to_owned(), Value::from(record.version));
    metadata.insert("source".to_owned(), Value::from(record.source));
    if let Some(page) = record.page {
        metadata.insert("page".to_owned(), Value::from(page));
    }
    for role in record.acl.roles() {
        metadata.insert(role_key(role)?, Value::Bool(true));
    }
    for region in record.acl.regions() {
        let key = if region == "*" {
            ANY_REGION_KEY.to_owned()
        } else {
            region_key(region)?
        };
        metadata.insert(key, Value::Bool(true));
    }
    Ok(metadata)
}

/// The metadata key of `role`.
fn role_key(role: &str) -> Result<String, ChromaError> {
    acl_key(ROLE_KEY_PREFIX, "role", role)
}

/// The metadata key of `region` (a named region, not `*`).
fn region_key(region: &str) -> Result<String, ChromaError> {
    if region == RESERVED_REGION {
        return Err(ChromaError::InvalidInput(format!(
            "region name '{RESERVED_REGION}' is reserved in the Chroma index"
        )));
    }
    acl_key(REGION_KEY_PREFIX, "region", region)
}

/// `prefix` + the injective `[a-z0-9_]` encoding of a policy name: letters and digits stay,
/// `_` becomes `__`, `-` becomes `_d`. Decoding reads `_` plus one character, so no two names
/// share a key.
fn acl_key(prefix: &str, what: &str, name: &str) -> Result<String, ChromaError> {
    if !acl::is_policy_name(name) {
        let shown: String = name.chars().take(64).collect();
        return Err(ChromaError::InvalidInput(format!(
            "'{shown}' is not a valid {what} name"
        )));
    }
    let mut key = String::with_capacity(prefix.len() + 2 * name.len());
    key.push_str(prefix);
    for c in name.chars() {
        match c {
            '_' => key.push_str("__"),
            '-' => key.push_str("_d"),
            c => key.push(c),
        }
    }
    Ok(key)
}

fn parse_chunk_id(id: &str) -> Result<Uuid, ChromaError> {
    Uuid::parse_str(id)
        .map_err(|_| ChromaError::Protocol(format!("record id '{id}' is not a UUID")))
}

fn metadata_document_id(id: &str, metadata: &Map<String, Value>) -> Result<Uuid, ChromaError> {
    metadata
        .get("document_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ChromaError::Protocol(format!("record {id} has no valid document_id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_alphanumeric_and_underscore() {
        assert_eq!(role_key("admin").unwrap(), "acl_role_admin");
        assert_eq!(role_key("sales_rep").unwrap(), "acl_role_sales__rep");
        assert_eq!(region_key("eu-west").unwrap(), "acl_region_eu_dwest");
        for key in [role_key("a-b_c9").unwrap(), region_key("x_-y").unwrap()] {
            assert!(key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }

    #[test]
    fn different_names_never_share_a_key() {
        let names = [
            "eu-west", "eu_west", "eu_dwest", "eu__west", "eu-_west", "eu_-west",
        ];
        let keys: HashSet<String> = names.iter().map(|n| region_key(n).unwrap()).collect();
        assert_eq!(keys.len(), names.len());
    }

    #[test]
    fn names_outside_the_policy_pattern_and_the_reserved_region_are_refused() {
        for bad in ["", "Admin", "*", "a b", "ädmin", "_x", "1x", "a.b"] {
            assert!(
                matches!(role_key(bad), Err(ChromaError::InvalidInput(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            region_key("any"),
            Err(ChromaError::InvalidInput(_))
        ));
        assert!(matches!(region_key("*"), Err(ChromaError::InvalidInput(_))));
    }

    #[test]
    fn metadata_flattens_the_acl_and_omits_a_missing_page() {
        let acl = Acl::parse("admin,catalog", "*").unwrap();
        let embedding = [1.0_f32];
        let record = ChunkRecord {
            chunk_id: Uuid::new_v4(),
            document_id: Uuid::new_v4(),
            version: 3,
            embedding: &embedding,
            text: "t",
            source: "file:///a.md",
            page: None,
            acl: &acl,
        };
        let metadata = record_metadata(&record).unwrap();
        assert_eq!(metadata["version"], json!(3));
        assert_eq!(metadata["acl_role_admin"], json!(true));
        assert_eq!(metadata["acl_role_catalog"], json!(true));
        assert_eq!(metadata["acl_region_any"], json!(true));
        assert!(!metadata.contains_key("page"));
        let paged = record_metadata(&ChunkRecord {
            page: Some(7),
            ..record
        })
        .unwrap();
        assert_eq!(paged["page"], json!(7));
    }

    #[test]
    fn urls_keep_a_path_prefix_and_encode_segments() {
        let base = Url::parse("http://user:pw@h:1/chroma?x=1").unwrap();
        let api = api_root(&base).unwrap();
        assert_eq!(api.path(), "/chroma/api/v2");
        assert_eq!(api.query(), None);
        let root = api_root(&Url::parse("http://h:1/").unwrap()).unwrap();
        assert_eq!(
            child(&root, &["collections", "a/b"]).unwrap().path(),
            "/api/v2/collections/a%2Fb"
        );
        assert!(api_root(&Url::parse("mailto:a@b").unwrap()).is_err());
    }
}
