//! Request ids: accept the caller's `x-request-id` when it is sane, otherwise mint a UUID; put it in
//! the tracing span of the request, in a task-local for error bodies, and echo it in the response.

#[cfg(feature = "server")]
use axum::extract::Request;
#[cfg(feature = "server")]
use axum::middleware::Next;
#[cfg(feature = "server")]
use axum::response::Response;
use http::{HeaderName, HeaderValue};
#[cfg(feature = "server")]
use tracing::Instrument;

/// The header carrying the request id, in both directions.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[cfg(feature = "server")]
tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
#[cfg(feature = "server")]
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request's id: its `x-request-id` when that is acceptable, otherwise a new UUID.
pub fn accept_or_mint(header: Option<&HeaderValue>) -> String {
    header
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// A caller-supplied id is kept only when it is short and printable: it lands in every log line, so
/// it must not be a vehicle for log injection or for megabytes of junk.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        })
}

/// Middleware: assigns the request id and runs the rest of the stack inside its span.
#[cfg(feature = "server")]
pub async fn assign(request: Request, next: Next) -> Response {
    let id = accept_or_mint(request.headers().get(&X_REQUEST_ID));
    // The path without its query: query strings can carry things that must not be logged.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(acceptable("3f2c9a1e-0b7d-4c55-9f0a-1d2e3f4a5b6c"));
        assert!(acceptable("projects/x/traces/abc:1"));
        assert!(!acceptable(""));
        assert!(!acceptable("a\nfake log line"));
        assert!(!acceptable(&"x".repeat(129)));
        assert!(!acceptable("id with spaces"));
    }
}
