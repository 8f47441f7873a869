//! Reading the uploaded object from Cloud Storage, behind the [`ObjectSource`] seam.
//!
//! [`GcsSource`] uses googleapis' official `google-cloud-storage` client (the 1.x line that now
//! owns the crate name). It reads with one JSON API media download (`GET
//! /storage/v1/b/{bucket}/o/{object}?alt=media[&generation=N]`); the response headers carry the
//! object's size, generation, content type and `x-goog-meta-*` metadata, so no separate metadata
//! request (and no gRPC, which the crate's `StorageControl` would use) is needed.
//!
//! Limits, in the order they apply:
//! - the client's retry policy retries 408/429/5xx and I/O errors, a few attempts within a time
//!   budget, with jittered exponential backoff — the crate's own loop, configured here rather
//!   than wrapped in a second one;
//! - the stored size (`x-goog-stored-content-length`) is checked before any of the body is read,
//!   so an oversized object costs one response header, not its bytes;
//! - the body is counted while it streams, which also bounds objects GCS decompresses on the
//!   way out (their stored size is the compressed size);
//! - the whole read, retries included, runs under one deadline, because the crate has no
//!   per-attempt timeout for media downloads: a stalled connection ends as `Unavailable` and
//!   Eventarc redelivers the event.
//!
//! Errors never carry the crate's error text for HTTP or credential failures (a response body or
//! a token endpoint's answer has no business in our logs); they say what class of failure it was
//! and, where there is one, the HTTP status.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use google_cloud_gax::error::CredentialsError;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::RetryPolicyExt as _;
use google_cloud_storage::client::Storage;
use google_cloud_storage::read_resume_policy::{ReadResumePolicyExt as _, Recommended};
use google_cloud_storage::retry_policy::RetryableErrors;
use url::Url;

/// Attempts per request (the first one included) before a transient failure is final.
const RETRY_ATTEMPTS: u32 = 4;
/// Time budget for the retry loop of one request.
const RETRY_TIME_LIMIT: Duration = Duration::from_secs(30);
/// First backoff delay; doubles per retry, jittered by the crate.
const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest backoff delay.
const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// Times a download that breaks mid-body is resumed from where it stopped.
const RESUME_ATTEMPTS: u32 = 3;
/// Default deadline for a whole read; see [`GcsSource::with_deadline`].
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// An object's content and the metadata the pipeline uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object's bytes (decompressed if it was stored with `Content-Encoding: gzip`).
    pub bytes: Bytes,
    /// The object's `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// Custom metadata (`x-goog-meta-*`, keys lower-cased by GCS).
    pub metadata: BTreeMap<String, String>,
    /// The generation that was read, as a decimal string.
    pub generation: Option<String>,
}

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// No such bucket, object or generation (a later upload may have replaced it).
    #[error("object not found")]
    NotFound,
    /// The object is larger than the caller's limit; its body was not downloaded.
    #[error("object is larger than the {limit}-byte limit")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The service account may not read it (HTTP 401/403, or credentials were refused).
    #[error("permission denied reading the object")]
    Forbidden,
    /// Cloud Storage or the network failed and retries did not help; worth redelivering later.
    #[error("cloud storage unavailable: {0}")]
    Unavailable(String),
    /// A request or response this client cannot handle (bad arguments, unexpected status or
    /// headers, checksum mismatch); retrying the same read will not help.
    #[error("cloud storage protocol error: {0}")]
    Protocol(String),
}

impl ObjectError {
    /// A stable slug for logs, metrics and problem types.
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectError::NotFound => "not-found",
            ObjectError::TooLarge { .. } => "too-large",
            ObjectError::Forbidden => "forbidden",
            ObjectError::Unavailable(_) => "unavailable",
            ObjectError::Protocol(_) => "protocol",
        }
    }
}

/// Where ingested objects are read from: Cloud Storage in production.
pub trait ObjectSource: Send + Sync {
    /// Reads `bucket`/`name` — exactly `generation` when given — refusing more than `max_bytes`.
    ///
    /// # Errors
    ///
    /// See [`ObjectError`]; `TooLarge` is returned without downloading the object when its size
    /// is known up front.
    fn read<'a>(
        &'a self,
        bucket: &'a str,
        name: &'a str,
        generation: Option<&'a str>,
        max_bytes: usize,
    ) -> BoxFuture<'a, Result<Object, ObjectError>>;
}

/// [`ObjectSource`] over the Cloud Storage JSON API.
#[derive(Clone)]
pub struct GcsSource {
    client: Storage,
    deadline: Duration,
}

/// By hand: the client's own `Debug` walks into its credentials, which have no place in logs.
impl std::fmt::Debug for GcsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsSource")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl GcsSource {
    /// A client for `endpoint` (default `https://storage.googleapis.com`; tests and emulators
    /// pass their own, which the service's config reads from `GCS_ENDPOINT`).
    ///
    /// With `anonymous` no credentials are sent (emulators, public buckets); otherwise
    /// Application Default Credentials are used — on Cloud Run, the service account from the
    /// metadata server.
    ///
    /// # Errors
    ///
    /// `Unavailable` when Application Default Credentials cannot be found or the HTTP client
    /// cannot be built; `Protocol` for an unusable endpoint.
    pub async fn new(endpoint: Option<Url>, anonymous: bool) -> Result<Self, ObjectError> {
        // The crate is built without its default aws-lc-rs provider (the workspace already links
        // ring through reqwest), so rustls needs a process-wide provider. An `Err` means one is
        // already installed, which is all that is needed.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(BACKOFF_INITIAL)
            .with_maximum_delay(BACKOFF_MAX)
            .with_scaling(2.0)
            // `clamp` rather than `build`: these constants are valid, and clamping cannot fail.
            .clamp();
        let mut builder = Storage::builder()
            .with_retry_policy(
                RetryableErrors
                    .with_attempt_limit(RETRY_ATTEMPTS)
                    .with_time_limit(RETRY_TIME_LIMIT),
            )
            .with_backoff_policy(backoff)
            .with_read_resume_policy(Recommended.with_attempt_limit(RESUME_ATTEMPTS));
        if let Some(endpoint) = endpoint {
            // The client joins `/storage/v1/...` onto the endpoint; a trailing slash would
            // produce `//storage` on endpoints with a path.
            builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
        }
        if anonymous {
            builder = builder.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        let client = builder.build().await.map_err(|e| {
            if e.is_default_credentials() {
                ObjectError::Unavailable("Application Default Credentials are not available".into())
            } else if e.is_transport() {
                ObjectError::Unavailable("could not build the HTTP client".into())
            } else {
                ObjectError::Protocol("could not configure the Cloud Storage client".into())
            }
        })?;
        Ok(Self {
            client,
            deadline: DEFAULT_DEADLINE,
        })
    }

    /// Sets the deadline for one whole read, retries and body included (default 60 s).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    async fn read_object(
        &self,
        bucket: &str,
        name: &str,
        generation: Option<&str>,
        max_bytes: usize,
    ) -> Result<Object, ObjectError> {
        // The bucket goes into the URL path unescaped by the crate; GCS bucket names are
        // `[a-z0-9._-]`, so anything else is refused before it can reshape the request.
        let valid_bucket = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !valid_bucket {
            return Err(ObjectError::Protocol("invalid bucket name".into()));
        }
        if name.is_empty() {
            return Err(ObjectError::Protocol("empty object name".into()));
        }

        let mut request = self
            .client
            .read_object(format!("projects/_/buckets/{bucket}"), name)
            // Documents uploaded with `Content-Encoding: gzip` are wanted as their content, not
            // as gzip; GCS decompresses them on the way out when the client does not ask for gzip.
            .with_automatic_decompression(true);
        if let Some(generation) = generation {
            let generation: i64 = generation.parse().ok().filter(|g| *g > 0).ok_or_else(|| {
                ObjectError::Protocol("generation is not a positive integer".into())
            })?;
            request = request.set_generation(generation);
        }
        let mut response = request.send().await.map_err(map_error)?;

        let highlights = response.object();
        let stored_size = usize::try_from(highlights.size).unwrap_or(usize::MAX);
        if stored_size > max_bytes {
            // Dropping `response` closes the connection with the body unread.
            return Err(ObjectError::TooLarge { limit: max_bytes });
        }
        // Reserve what GCS announced (already bounded by max_bytes), not what the caller allows.
        let mut buffer = BytesMut::with_capacity(stored_size);
        while let Some(chunk) = response.next().await {
            let chunk = chunk.map_err(map_error)?;
            if chunk.len() > max_bytes - buffer.len() {
                return Err(ObjectError::TooLarge { limit: max_bytes });
            }
            buffer.extend_from_slice(&chunk);
        }

        Ok(Object {
            bytes: buffer.freeze(),
            content_type: Some(highlights.content_type).filter(|c| !c.is_empty()),
            metadata: highlights.metadata.into_iter().collect(),
            generation: (highlights.generation > 0).then(|| highlights.generation.to_string()),
        })
    }
}

impl ObjectSource for GcsSource {
    fn read<'a>(
        &'a self,
        bucket: &'a str,
        name: &'a str,
        generation: Option<&'a str>,
        max_bytes: usize,
    ) -> BoxFuture<'a, Result<Object, ObjectError>> {
        Box::pin(async move {
            tokio::time::timeout(
                self.deadline,
                self.read_object(bucket, name, generation, max_bytes),
            )
            .await
            .unwrap_or_else(|_| {
                Err(ObjectError::Unavailable(format!(
                    "read did not finish within {} s",
                    self.deadline.as_secs_f32()
                )))
            })
        })
    }
}

/// Classifies a client error. A retry-exhausted error wraps the last attempt's error, so the
/// whole source chain is searched for the HTTP status and credential failures.
fn map_error(error: google_cloud_storage::Error) -> ObjectError {
    type Dyn = dyn std::error::Error + 'static;
    // `(*e)`: take the source of the error itself, not of the short-lived `&&dyn Error`.
    let chain = || std::iter::successors(Some(&error as &Dyn), |e: &&Dyn| (*e).source());
    let gax_errors = || chain().filter_map(|e| e.downcast_ref::<google_cloud_storage::Error>());

    if let Some(status) = gax_errors().find_map(|e| e.http_status_code()) {
        return match status {
            404 => ObjectError::NotFound,
            401 | 403 => ObjectError::Forbidden,
            408 | 429 | 500..=599 => {
                ObjectError::Unavailable(format!("HTTP {status}, retries exhausted"))
            }
            other => ObjectError::Protocol(format!("unexpected HTTP {other}")),
        };
    }
    if let Some(credentials) = chain().find_map(|e| e.downcast_ref::<CredentialsError>()) {
        return if credentials.is_transient() {
            ObjectError::Unavailable("could not obtain credentials".into())
        } else {
            ObjectError::Forbidden
        };
    }
    if gax_errors().any(|e| e.is_timeout()) {
        return ObjectError::Unavailable("request timed out".into());
    }
    if gax_errors().any(|e| e.is_connect()) {
        return ObjectError::Unavailable("could not connect".into());
    }
    if gax_errors().any(|e| e.is_io() || e.is_transport()) {
        return ObjectError::Unavailable("connection failed".into());
    }
    if gax_errors().any(|e| e.is_deserialization() || e.is_binding()) {
        // Client-side checks (missing or malformed headers, checksum mismatch): the crate's own
        // message names the header or check and carries nothing secret.
        return ObjectError::Protocol(error.to_string());
    }
    ObjectError::Protocol("unclassified client error".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable() {
        assert_eq!(ObjectError::NotFound.kind(), "not-found");
        assert_eq!(ObjectError::TooLarge { limit: 1 }.kind(), "too-large");
        assert_eq!(ObjectError::Forbidden.kind(), "forbidden");
        assert_eq!(
            ObjectError::Unavailable(String::new()).kind(),
            "unavailable"
        );
        assert_eq!(ObjectError::Protocol(String::new()).kind(), "protocol");
    }

    #[test]
    fn http_statuses_are_classified() {
        let http = |code| {
            google_cloud_storage::Error::http(
                code,
                http::HeaderMap::new(),
                Bytes::from_static(b"{}"),
            )
        };
        assert!(matches!(map_error(http(404)), ObjectError::NotFound));
        assert!(matches!(map_error(http(403)), ObjectError::Forbidden));
        assert!(matches!(map_error(http(401)), ObjectError::Forbidden));
        assert!(matches!(map_error(http(503)), ObjectError::Unavailable(_)));
        assert!(matches!(map_error(http(429)), ObjectError::Unavailable(_)));
        assert!(matches!(map_error(http(400)), ObjectError::Protocol(_)));
        // Retry exhaustion wraps the last error; the status is still found.
        let wrapped = google_cloud_storage::Error::exhausted(http(503));
        assert!(matches!(map_error(wrapped), ObjectError::Unavailable(_)));
    }

    #[test]
    fn error_text_from_the_server_is_not_echoed() {
        let body =
            Bytes::from_static(b"{\"error\":{\"code\":403,\"message\":\"ya29.secret-token\"}}");
        let err = map_error(google_cloud_storage::Error::http(
            403,
            http::HeaderMap::new(),
            body,
        ));
        assert!(!err.to_string().contains("ya29"), "{err}");
        let err = map_error(google_cloud_storage::Error::http(
            502,
            http::HeaderMap::new(),
            Bytes::from_static(b"ya29.secret-token"),
        ));
        assert!(!err.to_string().contains("ya29"), "{err}");
    }
}
