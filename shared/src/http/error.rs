//! [`ApiError`]: the one error type at the HTTP boundary, and the only place that writes
//! `application/problem+json` (RFC 9457).
//!
//! Each variant has a stable `type` URI (`urn:quarry:problem:<slug>`) that clients can match on.
//! Client errors (4xx) carry a human `detail`; server errors (5xx) log their cause chain and tell the
//! client only a generic sentence, so no internal message, stack trace or secret leaves the process.

use std::time::Duration;

#[cfg(feature = "server")]
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The members every problem body may hold; an extension member cannot replace them.
const STANDARD_MEMBERS: [&str; 6] = ["type", "title", "status", "detail", "request_id", "reason"];

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, wrong field types, invalid values (400).
    #[error("{detail}")]
    BadRequest {
        /// Stable slug for the `type` URI, e.g. `invalid-json`.
        kind: &'static str,
        /// What is wrong, for a human.
        detail: String,
    },
    /// The request is well-formed but cannot be processed as asked (422).
    #[error("{detail}")]
    Unprocessable {
        /// Stable slug for the `type` URI.
        kind: &'static str,
        /// What is wrong, for a human.
        detail: String,
    },
    /// No credentials, or credentials that do not verify (401).
    #[error("{detail}")]
    Unauthorized {
        /// Stable slug, e.g. `token-expired`.
        kind: &'static str,
        /// What is wrong, for a human.
        detail: String,
    },
    /// Authenticated, but not allowed (403).
    #[error("{detail}")]
    Forbidden {
        /// Stable slug, e.g. `table-not-granted`.
        kind: &'static str,
        /// What is not allowed, for a human.
        detail: String,
    },
    /// A request refused for a stated, machine-readable reason (a SQL statement the guard refused,
    /// a query over the cost limit): 400, 403 or 422 with a `reason` member in the body.
    #[error("{detail}")]
    Rejected {
        /// The HTTP status (a 4xx).
        status: StatusCode,
        /// Stable slug for the `type` URI, e.g. `sql-not-allowed`.
        kind: &'static str,
        /// Stable reason code, e.g. `table:public.employee`, `function:pg_sleep`.
        reason: String,
        /// What happened, for a human.
        detail: String,
    },
    /// No route or resource here (404).
    #[error("{detail}")]
    NotFound {
        /// What was not found.
        detail: String,
    },
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the configured limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body's media type is not one this route accepts (415).
    #[error("{detail}")]
    UnsupportedMediaType {
        /// What was expected.
        detail: String,
    },
    /// The request took longer than the configured deadline (504 from our side).
    #[error("request timed out")]
    Timeout,
    /// Too many requests; retry after the given delay (429).
    #[error("rate limit exceeded")]
    TooManyRequests {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// A dependency is down or a queue is full; retry later (503).
    #[error("{detail}")]
    Unavailable {
        /// Stable slug, e.g. `llm-unavailable`.
        kind: &'static str,
        /// What is unavailable (never an internal error message).
        detail: String,
        /// When the client may try again, if known.
        retry_after: Option<Duration>,
    },
    /// Anything else: logged with its cause chain, answered with a generic 500.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// Another client error with extension members added to its body (RFC 9457 §3.2), such as
    /// the queries `ask` tried before it gave up. Built by [`ApiError::with_members`].
    #[error("{error}")]
    Extended {
        /// The error itself: it decides the status, `type` and `detail`.
        error: Box<ApiError>,
        /// The members added beside `type`, `title`, `status` and `detail`.
        members: serde_json::Map<String, serde_json::Value>,
    },
}

/// The JSON body of a problem response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:quarry:problem:invalid-json`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for a human.
    pub detail: String,
    /// The request id (also in the `x-request-id` header), to find the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For refusals with a machine-readable cause: the stable reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Extension members of this kind of problem (e.g. `attempts` of `sql-generation-failed`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub members: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// Shorthand for a 400 with a slug and a detail.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            kind,
            detail: detail.into(),
        }
    }

    /// Shorthand for a 500 from any error; the cause is logged, not shown.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// This error with extension members in its body. Server errors (5xx) stay generic, so
    /// members are dropped from them; a member named like a standard one is ignored.
    pub fn with_members(self, members: serde_json::Map<String, serde_json::Value>) -> Self {
        if self.status().is_server_error() || members.is_empty() {
            return self;
        }
        match self {
            Self::Extended {
                error,
                members: mut own,
            } => {
                own.extend(members);
                Self::Extended {
                    error,
                    members: own,
                }
            }
            error => Self::Extended {
                error: Box::new(error),
                members,
            },
        }
    }

    /// The error under any extension members.
    fn base(&self) -> &Self {
        match self {
            Self::Extended { error, .. } => error.base(),
            other => other,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self.base() {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Rejected { status, .. } => *status,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Extended { error, .. } => error.status(),
        }
    }

    /// The stable slug of this error's `type`.
    pub fn slug(&self) -> &'static str {
        match self.base() {
            Self::BadRequest { kind, .. }
            | Self::Unprocessable { kind, .. }
            | Self::Unauthorized { kind, .. }
            | Self::Forbidden { kind, .. }
            | Self::Rejected { kind, .. }
            | Self::Unavailable { kind, .. } => kind,
            Self::NotFound { .. } => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType { .. } => "unsupported-media-type",
            Self::Timeout => "timeout",
            Self::TooManyRequests { .. } => "rate-limited",
            Self::Internal(_) => "internal",
            Self::Extended { error, .. } => error.slug(),
        }
    }

    /// The problem body for this error; 5xx details are generic on purpose.
    pub fn problem(&self, request_id: Option<String>) -> Problem {
        let status = self.status();
        let detail = match self.base() {
            Self::Internal(_) => {
                "An internal error occurred; the request id identifies it in the logs.".to_owned()
            }
            Self::MethodNotAllowed => "This route does not accept that HTTP method.".to_owned(),
            Self::PayloadTooLarge => {
                "The request body is larger than this endpoint accepts.".to_owned()
            }
            Self::Timeout => "The request took longer than the server's deadline.".to_owned(),
            Self::TooManyRequests { retry_after } => {
                format!(
                    "Too many requests; retry after {} s.",
                    retry_after.as_secs().max(1)
                )
            }
            other => other.to_string(),
        };
        Problem {
            kind: format!("urn:quarry:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            request_id,
            reason: match self.base() {
                Self::Rejected { reason, .. } => Some(reason.clone()),
                _ => None,
            },
            members: match self {
                Self::Extended { members, .. } => members
                    .iter()
                    .filter(|(name, _)| !STANDARD_MEMBERS.contains(&name.as_str()))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
                _ => serde_json::Map::new(),
            },
        }
    }
}

impl ApiError {
    /// The whole problem+json response: status, `Content-Type`, `Retry-After` and
    /// `WWW-Authenticate` where they apply, and the body. The axum server and the WASM component
    /// both answer through this, so an error looks the same whichever runs the function. Logging
    /// an internal error's cause is the caller's job.
    pub fn to_http(&self, request_id: Option<String>) -> http::Response<Vec<u8>> {
        let retry_after = match self.base() {
            Self::TooManyRequests { retry_after } => Some(*retry_after),
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        };
        let body = match serde_json::to_vec(&self.problem(request_id)) {
            Ok(body) => body,
            Err(_) => b"{\"type\":\"urn:quarry:problem:internal\",\"status\":500}".to_vec(),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        if matches!(self.base(), Self::Unauthorized { .. }) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

#[cfg(feature = "server")]
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = self.base() {
            // The chain goes to the log (with the request id from the span), never to the client.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        self.to_http(crate::http::request_id::current())
            .map(axum::body::Body::from)
            .into_response()
    }
}

#[cfg(feature = "server")]
impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        match err {
            crate::db::DbError::Unavailable(_) => Self::Unavailable {
                kind: "database-unavailable",
                detail: "The database is not reachable right now.".to_owned(),
                retry_after: Some(Duration::from_secs(2)),
            },
            other => Self::Internal(other.into()),
        }
    }
}

#[cfg(feature = "server")]
impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        crate::db::DbError::from(err).into()
    }
}

#[cfg(feature = "server")]
impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        crate::db::DbError::from(err).into()
    }
}

impl From<crate::llm::LlmError> for ApiError {
    /// A language model that cannot answer is a 503 (`llm-unavailable`, with the delay the
    /// providers or breakers gave); one that refused this request or answered nonsense is
    /// `llm-failed` (503 without a delay: the same request elsewhere later may still work, but
    /// not by waiting). The provider's own message is logged, never answered.
    fn from(err: crate::llm::LlmError) -> Self {
        use crate::llm::LlmError;
        tracing::warn!(error = %err, "language model call failed");
        match err {
            LlmError::Refused { .. } | LlmError::InvalidAnswer { .. } => Self::Unavailable {
                kind: "llm-failed",
                detail: "The language model could not answer this request.".to_owned(),
                retry_after: None,
            },
            other => Self::Unavailable {
                kind: "llm-unavailable",
                detail: "No language model is available right now.".to_owned(),
                retry_after: Some(other.retry_after().unwrap_or(Duration::from_secs(5))),
            },
        }
    }
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn client_errors_keep_their_detail_and_type() {
        let response =
            ApiError::bad_request("invalid-json", "expected a string at line 1").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = body_json(response).await;
        assert_eq!(body["type"], "urn:quarry:problem:invalid-json");
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "expected a string at line 1");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let cause =
            anyhow::anyhow!("password authentication failed for user quarry: secret=hunter2");
        let response = ApiError::internal(cause).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response).await;
        assert_eq!(body["type"], "urn:quarry:problem:internal");
        assert!(!body.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn retry_after_and_www_authenticate_headers() {
        let response = ApiError::TooManyRequests {
            retry_after: Duration::from_millis(2500),
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = ApiError::Unauthorized {
            kind: "token-missing",
            detail: "no bearer token".into(),
        }
        .into_response();
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }

    fn body(error: &ApiError) -> Value {
        let response = error.to_http(Some("req-1".to_owned()));
        serde_json::from_slice(response.body()).unwrap_or(Value::Null)
    }

    fn members(value: Value) -> serde_json::Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    #[test]
    fn extension_members_sit_beside_the_standard_ones() {
        let error = ApiError::Unprocessable {
            kind: "sql-generation-failed",
            detail: "No working query".to_owned(),
        }
        .with_members(members(json!({"attempts": [{"sql": "SELECT 1"}]})));
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.slug(), "sql-generation-failed");
        assert_eq!(
            body(&error),
            json!({
                "type": "urn:quarry:problem:sql-generation-failed",
                "title": "Unprocessable Entity",
                "status": 422,
                "detail": "No working query",
                "request_id": "req-1",
                "attempts": [{"sql": "SELECT 1"}],
            })
        );
    }

    #[test]
    fn members_cannot_replace_standard_ones_and_accumulate() {
        let error = ApiError::bad_request("invalid-json", "bad")
            .with_members(members(json!({"status": 200, "detail": "fine", "a": 1})))
            .with_members(members(json!({"b": 2})));
        let body = body(&error);
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "bad");
        assert_eq!((body["a"].clone(), body["b"].clone()), (json!(1), json!(2)));
    }

    #[test]
    fn server_errors_take_no_members_and_keep_their_headers() {
        let error = ApiError::internal(anyhow::anyhow!("secret dsn"))
            .with_members(members(json!({"cause": "secret dsn"})));
        assert!(matches!(error, ApiError::Internal(_)));
        assert!(body(&error).get("cause").is_none());

        let error = ApiError::Unauthorized {
            kind: "token-expired",
            detail: "expired".to_owned(),
        }
        .with_members(members(json!({"hint": "mint a new token"})));
        let response = error.to_http(None);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
