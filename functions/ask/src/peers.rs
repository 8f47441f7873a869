//! The functions `ask` calls over HTTP — sql-exec (`GET /v1/schema`, `POST /v1/sql`) and
//! retrieve (`POST /v1/retrieve`) — with the caller's own bearer token, so each of them verifies
//! it again and applies the caller's policy: `ask` never holds more rights than its caller.
//!
//! Under `quarry dev` the peers are the same process (`http://127.0.0.1:$PORT`); in production
//! `SQL_EXEC_URL` and `RETRIEVE_URL` point at their services.

use std::time::Duration;

use quarry_shared::http::outbound::{below, read_limited, read_prefix};
use quarry_shared::sql::schema::SchemaView;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Largest answer read from a peer (1,000 rows of wide text stay well below).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Why a peer call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The peer refused the request with a problem the model can act on (a guard rejection, an
    /// unknown column, a query over the cost limit): `kind` is the problem slug, `detail` what
    /// PostgreSQL or the guard said.
    #[error("{detail}")]
    Rejected {
        /// The problem slug, e.g. `sql-invalid`, `column-not-granted`.
        kind: String,
        /// The peer's `reason`, when it gave one.
        reason: Option<String>,
        /// What went wrong.
        detail: String,
    },
    /// The caller may not do this (401/403 that no rewrite of the query changes: region not
    /// admitted, role unknown, token refused).
    #[error("{detail}")]
    Denied {
        /// HTTP status.
        status: u16,
        /// The problem slug.
        kind: String,
        /// What the peer said.
        detail: String,
    },
    /// The peer is unreachable, overloaded or failing.
    #[error("{peer} is unavailable: {detail}")]
    Unavailable {
        /// `sql-exec` or `retrieve`.
        peer: &'static str,
        /// What happened (no URL).
        detail: String,
        /// The peer's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// A query's result as sql-exec returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SqlResult {
    /// Result columns.
    pub columns: Vec<ResultColumn>,
    /// Rows in column order.
    pub rows: Vec<Vec<Value>>,
    /// Whether more rows existed than were returned.
    pub truncated: bool,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct ResultColumn {
    /// Its name.
    pub name: String,
    /// Its PostgreSQL type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// A retrieved passage.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Passage {
    /// The chunk.
    pub chunk_id: Uuid,
    /// Its document.
    pub document_id: Uuid,
    /// The document's URI.
    pub source: String,
    /// Page, for paged formats.
    pub page: Option<i32>,
    /// Enclosing headings.
    #[serde(default)]
    pub heading: String,
    /// The text.
    pub text: String,
}

/// What retrieve returned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Retrieved {
    /// Best first.
    pub passages: Vec<Passage>,
    /// Retrievers left out (`chroma`).
    #[serde(default)]
    pub degraded: Vec<String>,
}

/// The peers' addresses and the client that reaches them.
#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
    sql_exec: url::Url,
    retrieve: url::Url,
}

/// The caller's credentials and request id, forwarded on every peer call.
#[derive(Clone)]
pub struct Forward {
    /// The `Authorization` header value as received.
    pub authorization: String,
    /// The request id, so the peers' logs join ours.
    pub request_id: Option<String>,
}

impl Peers {
    /// Peers at `sql_exec` and `retrieve` (base URLs).
    pub fn new(http: reqwest::Client, sql_exec: url::Url, retrieve: url::Url) -> Self {
        Self {
            http,
            sql_exec,
            retrieve,
        }
    }

    /// The caller's readable schema.
    ///
    /// # Errors
    /// As the peer fails.
    pub async fn schema(&self, forward: &Forward) -> Result<SchemaView, PeerError> {
        let url = join(&self.sql_exec, "v1/schema", "sql-exec")?;
        let request = self.http.get(url);
        self.send("sql-exec", request, forward).await
    }

    /// Runs `sql` as the caller, returning at most `max_rows` rows.
    ///
    /// # Errors
    /// As the peer fails; [`PeerError::Rejected`] carries what to tell the model.
    pub async fn sql(
        &self,
        forward: &Forward,
        sql: &str,
        max_rows: u32,
    ) -> Result<SqlResult, PeerError> {
        let url = join(&self.sql_exec, "v1/sql", "sql-exec")?;
        let request = self
            .http
            .post(url)
            .json(&json!({"sql": sql, "max_rows": max_rows}));
        self.send("sql-exec", request, forward).await
    }

    /// The passages for `query` the caller may see.
    ///
    /// # Errors
    /// As the peer fails.
    pub async fn retrieve(
        &self,
        forward: &Forward,
        query: &str,
        top_k: usize,
    ) -> Result<Retrieved, PeerError> {
        let url = join(&self.retrieve, "v1/retrieve", "retrieve")?;
        let request = self
            .http
            .post(url)
            .json(&json!({"query": query, "top_k": top_k}));
        self.send("retrieve", request, forward).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        peer: &'static str,
        request: reqwest::RequestBuilder,
        forward: &Forward,
    ) -> Result<T, PeerError> {
        let mut request = request.header(reqwest::header::AUTHORIZATION, &forward.authorization);
        if let Some(id) = &forward.request_id {
            request = request.header("x-request-id", id);
        }
        let unavailable = |detail: String, retry_after: Option<Duration>| PeerError::Unavailable {
            peer,
            detail,
            retry_after,
        };
        let mut response = request
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string(), None))?;
        let status = response.status();
        if status.is_success() {
            let body = read_limited(&mut response, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| unavailable(e.to_string(), None))?;
            return serde_json::from_slice(&body)
                .map_err(|e| unavailable(format!("unexpected answer: {e}"), None));
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_prefix(&mut response, 16 << 10).await;
        let problem: ProblemBody = serde_json::from_slice(&body).unwrap_or_default();
        let kind = problem
            .kind
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let detail = if problem.detail.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            problem.detail
        };
        Err(match status.as_u16() {
            401 => PeerError::Denied {
                status: 401,
                kind,
                detail,
            },
            403 if matches!(
                kind.as_str(),
                "region-not-allowed" | "role-unknown" | "forbidden" | "endpoint-not-allowed"
            ) =>
            {
                PeerError::Denied {
                    status: 403,
                    kind,
                    detail,
                }
            }
            400 | 403 | 422 => PeerError::Rejected {
                kind,
                reason: problem.reason,
                detail,
            },
            _ => unavailable(detail, retry_after),
        })
    }
}

#[derive(Deserialize, Default)]
struct ProblemBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    detail: String,
    reason: Option<String>,
}

fn join(base: &url::Url, path: &str, peer: &'static str) -> Result<url::Url, PeerError> {
    below(base, path).map_err(|e| PeerError::Unavailable {
        peer,
        detail: format!("bad peer URL: {e}"),
        retry_after: None,
    })
}
