//! Making every error problem+json, including the ones axum and tower-http produce themselves
//! (unknown route, wrong method, body over the limit, timeout): a middleware catches error
//! responses that carry no body of their own and answers the matching [`ApiError`] instead.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Fallback for paths no function serves.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound {
        detail: format!("no route for {} {}", request.method(), request.uri().path()),
    }
}

/// Middleware: rewrites a non-problem error response into problem+json, keeping its status and
/// the headers that matter to clients (`Allow`, `Retry-After`, `WWW-Authenticate`).
pub async fn ensure_problem_json(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Only bodies that no handler shaped on purpose are replaced: axum's and tower-http's own
    // rejections come without a content type or as text/plain. A handler's JSON (a 503 health
    // report, say) is left alone.
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type.is_some_and(|v| !v.starts_with("text/plain")) {
        return response;
    }
    let mut replacement = from_status(status).into_response();
    *replacement.status_mut() = status;
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = response.headers().get(&name) {
            replacement.headers_mut().insert(name, value.clone());
        }
    }
    replacement
}

/// The [`ApiError`] that best describes a bare status code.
fn from_status(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::NotFound {
            detail: "not found".to_owned(),
        },
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType {
            detail: "unsupported media type".to_owned(),
        },
        s if s.is_client_error() => {
            ApiError::bad_request("bad-request", "the request could not be processed")
        }
        _ => ApiError::internal(anyhow::anyhow!(
            "handler answered {status} without a problem body"
        )),
    }
}
