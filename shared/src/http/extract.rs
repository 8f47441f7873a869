//! Extractors whose rejections are [`ApiError`]s, so a malformed body gets problem+json like every
//! other error instead of axum's plain-text rejection; and [`json_body`], the same rules without
//! axum, for the WASM component.

#[cfg(feature = "server")]
use axum::extract::rejection::JsonRejection;
#[cfg(feature = "server")]
use axum::extract::{FromRequest, Request};
#[cfg(feature = "server")]
use axum::http::StatusCode;
#[cfg(feature = "server")]
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap};
use serde::de::DeserializeOwned;
#[cfg(feature = "server")]
use serde::Serialize;

use super::ApiError;

/// `axum::Json` with problem+json rejections. Also a response type (plain `application/json`).
#[cfg(feature = "server")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// A JSON request body from its headers and bytes, with the same rules and the same errors as the
/// [`Json`] extractor (which follows axum's): a `Content-Type` of `application/json` or
/// `application/*+json` (else 415), then one JSON document (syntax error: 400 `invalid-json`;
/// wrong shape or missing field: 422 `invalid-body`), with the same detail texts. The body must
/// already be read within the size limit.
///
/// # Errors
/// The [`ApiError`] the extractor would have answered.
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|name| name == "json"))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType {
            detail: "expected a body with Content-Type: application/json".to_owned(),
        });
    }
    let syntax = |err: &dyn std::fmt::Display| {
        ApiError::bad_request(
            "invalid-json",
            format!("Failed to parse the request body as JSON: {err}"),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        match err.inner().classify() {
            serde_json::error::Category::Data => ApiError::Unprocessable {
                kind: "invalid-body",
                detail: format!("Failed to deserialize the JSON body into the target type: {err}"),
            },
            _ => syntax(&err),
        }
    })?;
    deserializer.end().map_err(|err| syntax(&err))?;
    Ok(value)
}

#[cfg(feature = "server")]
impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_to_error(&rejection)),
        }
    }
}

#[cfg(feature = "server")]
impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(feature = "server")]
fn rejection_to_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType {
            detail: "expected a body with Content-Type: application/json".to_owned(),
        },
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("invalid-json", rejection.body_text())
        }
        JsonRejection::JsonDataError(_) => ApiError::Unprocessable {
            kind: "invalid-body",
            detail: rejection.body_text(),
        },
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        other => ApiError::bad_request("invalid-body", other.body_text()),
    }
}
