//! A scripted Cloud Storage server for the tests (Cloud Storage is a paid external API, so, as the
//! house rules allow, tests talk to this axum server that speaks the JSON API wire format the
//! `google-cloud-storage` crate uses: media downloads with metadata in `x-goog-*` headers, the
//! object resource, and errors in the API's shape).

// Each test binary uses part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;

/// One stored object version.
#[derive(Clone)]
pub struct Stored {
    pub bucket: &'static str,
    pub name: &'static str,
    pub generation: i64,
    pub content_type: &'static str,
    pub metadata: Vec<(&'static str, &'static str)>,
    pub bytes: Bytes,
}

impl Stored {
    pub fn new(
        bucket: &'static str,
        name: &'static str,
        generation: i64,
        body: &'static [u8],
    ) -> Self {
        Self {
            bucket,
            name,
            generation,
            content_type: "application/pdf",
            metadata: Vec::new(),
            bytes: Bytes::from_static(body),
        }
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub raw_path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The scripted server's state: objects, queued failures, and a log of requests.
#[derive(Default)]
pub struct FakeGcs {
    pub objects: Vec<Stored>,
    /// Statuses returned, in order, before any request is served normally.
    pub faults: Mutex<VecDeque<StatusCode>>,
    /// Send a wrong `x-goog-hash` (a body corrupted in transit).
    pub corrupt_hash: bool,
    pub seen: Mutex<Vec<Seen>>,
}

impl FakeGcs {
    pub fn with(objects: Vec<Stored>) -> Self {
        Self {
            objects,
            ..Self::default()
        }
    }

    pub fn fail_with(self, statuses: &[u16]) -> Self {
        *self.faults.lock().unwrap() = statuses
            .iter()
            .map(|s| StatusCode::from_u16(*s).unwrap())
            .collect();
        self
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub async fn serve_fake(State(gcs): State<Arc<FakeGcs>>, request: Request) -> Response {
    let uri = request.uri().clone();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let seen = Seen {
        method: request.method().to_string(),
        raw_path: uri.path().to_owned(),
        query,
        headers: request.headers().clone(),
    };
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!("fake GCS <- {} {}", seen.method, uri);
    }
    gcs.seen.lock().unwrap().push(seen.clone());

    if let Some(status) = gcs.faults.lock().unwrap().pop_front() {
        return gcs_error(status, "scripted failure");
    }

    // /storage/v1/b/{bucket}/o/{object}, the object name percent-encoded as one segment.
    let Some((bucket, object)) = seen
        .raw_path
        .strip_prefix("/storage/v1/b/")
        .and_then(|rest| rest.split_once("/o/"))
    else {
        return gcs_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Ok(name) = percent_encoding::percent_decode_str(object).decode_utf8() else {
        return gcs_error(StatusCode::BAD_REQUEST, "Invalid object name");
    };
    let generation = seen.query("generation").map(|g| g.parse::<i64>().unwrap());
    let found = gcs
        .objects
        .iter()
        .filter(|o| o.bucket == bucket && o.name == name)
        .filter(|o| generation.is_none_or(|g| g == o.generation))
        .max_by_key(|o| o.generation);
    let Some(object) = found else {
        return gcs_error(
            StatusCode::NOT_FOUND,
            &format!("No such object: {bucket}/{name}"),
        );
    };

    if seen.query("alt") == Some("media") {
        media_response(object, gcs.corrupt_hash)
    } else {
        resource_response(object)
    }
}

/// A media download as GCS sends it: body plus the object's metadata in `x-goog-*` headers.
pub fn media_response(object: &Stored, corrupt_hash: bool) -> Response {
    let crc = crc32c::crc32c(&object.bytes) ^ u32::from(corrupt_hash);
    let crc = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    let mut response = Response::new(Body::from(object.bytes.clone()));
    let h = response.headers_mut();
    let mut set = |k: &'static str, v: String| {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    };
    set("content-type", object.content_type.to_owned());
    set("x-goog-generation", object.generation.to_string());
    set("x-goog-metageneration", "1".into());
    set("x-goog-stored-content-encoding", "identity".into());
    set(
        "x-goog-stored-content-length",
        object.bytes.len().to_string(),
    );
    set("x-goog-storage-class", "STANDARD".into());
    set("x-goog-hash", format!("crc32c={crc}"));
    set("etag", format!("\"{}\"", object.generation));
    for (key, value) in &object.metadata {
        h.insert(
            axum::http::HeaderName::try_from(format!("x-goog-meta-{key}")).unwrap(),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// The JSON API object resource (`GET` without `alt=media`).
pub fn resource_response(object: &Stored) -> Response {
    let metadata: serde_json::Map<String, serde_json::Value> = object
        .metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    axum::Json(serde_json::json!({
        "kind": "storage#object",
        "bucket": object.bucket,
        "name": object.name,
        "generation": object.generation.to_string(),
        "metageneration": "1",
        "contentType": object.content_type,
        "size": object.bytes.len().to_string(),
        "metadata": metadata,
    }))
    .into_response()
}

/// An error in the JSON API's shape.
pub fn gcs_error(status: StatusCode, message: &str) -> Response {
    let reason = match status.as_u16() {
        403 => "forbidden",
        404 => "notFound",
        429 => "rateLimitExceeded",
        _ => "backendError",
    };
    let body = serde_json::json!({
        "error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{ "message": message, "domain": "global", "reason": reason }],
        }
    });
    (status, axum::Json(body)).into_response()
}

/// Serves `router` on a fresh loopback port; the server lives as long as the test's runtime.
pub async fn spawn(router: Router) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url::Url::parse(&format!("http://{addr}")).unwrap()
}
