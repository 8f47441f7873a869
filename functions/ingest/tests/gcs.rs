//! `GcsSource` against a scripted Cloud Storage server.
//!
//! Cloud Storage is a paid external API, so (as the house rules allow) these tests talk to a small
//! axum server that speaks the JSON API wire format the `google-cloud-storage` crate uses. The
//! crate reads with a media download only — `GET /storage/v1/b/{bucket}/o/{object}?alt=media`
//! with the object's metadata in the response headers — which the request log asserts; the
//! server answers the metadata form (no `alt`) too, so a client change that starts using it still
//! gets realistic answers rather than a confusing 404.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use quarry_ingest::gcs::{GcsSource, ObjectError, ObjectSource};
use support::gcs_server::{serve_fake, spawn, FakeGcs, Stored};

mod support;

async fn source_for(gcs: &Arc<FakeGcs>) -> GcsSource {
    let router = Router::new().fallback(serve_fake).with_state(gcs.clone());
    GcsSource::new(Some(spawn(router).await), true)
        .await
        .unwrap()
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn reads_bytes_and_metadata_with_one_media_download() {
    let mut doc = Stored::new(
        "quarry-docs",
        "reports/q1.pdf",
        1712345678901234,
        b"%PDF-1.7 hello",
    );
    doc.metadata = vec![("region", "emea"), ("uploaded-by", "alice")];
    let gcs = Arc::new(FakeGcs::with(vec![doc]));
    let source = source_for(&gcs).await;

    let object = source
        .read("quarry-docs", "reports/q1.pdf", None, MIB)
        .await
        .unwrap();
    assert_eq!(object.bytes, Bytes::from_static(b"%PDF-1.7 hello"));
    assert_eq!(object.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(object.generation.as_deref(), Some("1712345678901234"));
    assert_eq!(
        object.metadata.into_iter().collect::<Vec<_>>(),
        [
            ("region".into(), "emea".into()),
            ("uploaded-by".into(), "alice".into())
        ]
    );

    let seen = gcs.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].raw_path,
        "/storage/v1/b/quarry-docs/o/reports%2Fq1.pdf"
    );
    assert_eq!(seen[0].query("alt"), Some("media"));
    assert_eq!(seen[0].query("generation"), None);
    // Anonymous: no bearer token on the wire.
    assert!(seen[0].headers.get("authorization").is_none());
    // Asked for content, not gzip, so GCS would decompress gzip-stored documents.
    assert!(!seen[0]
        .headers
        .get_all("accept-encoding")
        .iter()
        .any(|v| v.to_str().unwrap_or("").contains("gzip")));
}

#[tokio::test]
async fn reads_the_requested_generation() {
    let gcs = Arc::new(FakeGcs::with(vec![
        Stored::new("b", "doc.txt", 100, b"first version"),
        Stored::new("b", "doc.txt", 200, b"second version"),
    ]));
    let source = source_for(&gcs).await;

    let old = source.read("b", "doc.txt", Some("100"), MIB).await.unwrap();
    assert_eq!(old.bytes, Bytes::from_static(b"first version"));
    assert_eq!(old.generation.as_deref(), Some("100"));

    let latest = source.read("b", "doc.txt", None, MIB).await.unwrap();
    assert_eq!(latest.bytes, Bytes::from_static(b"second version"));
    assert_eq!(latest.generation.as_deref(), Some("200"));

    let seen = gcs.seen();
    assert_eq!(seen[0].query("generation"), Some("100"));
    assert_eq!(seen[1].query("generation"), None);

    // A generation that no longer exists (overwritten and not kept) is not found, and is not
    // silently replaced by the latest version.
    let err = source
        .read("b", "doc.txt", Some("150"), MIB)
        .await
        .unwrap_err();
    assert!(matches!(err, ObjectError::NotFound), "{err:?}");
}

#[tokio::test]
async fn missing_object_is_not_found_without_retries() {
    let gcs = Arc::new(FakeGcs::with(vec![]));
    let source = source_for(&gcs).await;
    let err = source.read("b", "nope.pdf", None, MIB).await.unwrap_err();
    assert!(matches!(err, ObjectError::NotFound), "{err:?}");
    assert_eq!(err.kind(), "not-found");
    assert_eq!(gcs.seen().len(), 1);
}

#[tokio::test]
async fn forbidden_is_forbidden_without_retries() {
    let gcs = Arc::new(FakeGcs::with(vec![Stored::new("b", "x", 1, b"x")]).fail_with(&[403]));
    let source = source_for(&gcs).await;
    let err = source.read("b", "x", None, MIB).await.unwrap_err();
    assert!(matches!(err, ObjectError::Forbidden), "{err:?}");
    assert_eq!(err.to_string(), "permission denied reading the object");
    assert_eq!(gcs.seen().len(), 1);
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let gcs =
        Arc::new(FakeGcs::with(vec![Stored::new("b", "x.md", 7, b"# hi")]).fail_with(&[503, 429]));
    let source = source_for(&gcs).await;
    let object = source.read("b", "x.md", Some("7"), MIB).await.unwrap();
    assert_eq!(object.bytes, Bytes::from_static(b"# hi"));
    let seen = gcs.seen();
    assert_eq!(seen.len(), 3, "503, 429, then 200: {seen:?}");
    // Every attempt asks for the same generation.
    assert!(seen.iter().all(|s| s.query("generation") == Some("7")));
}

#[tokio::test]
async fn persistent_503_becomes_unavailable_after_a_few_attempts() {
    let gcs = Arc::new(FakeGcs::with(vec![Stored::new("b", "x", 1, b"x")]).fail_with(&[503; 10]));
    let source = source_for(&gcs).await;
    let err = source.read("b", "x", None, MIB).await.unwrap_err();
    assert!(matches!(err, ObjectError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(gcs.seen().len(), 4);
}

#[tokio::test]
async fn names_are_url_encoded() {
    let name = "folder/a b+ü.pdf";
    let gcs = Arc::new(FakeGcs::with(vec![Stored::new("b", name, 3, b"encoded")]));
    let source = source_for(&gcs).await;
    let object = source.read("b", name, Some("3"), MIB).await.unwrap();
    assert_eq!(object.bytes, Bytes::from_static(b"encoded"));
    let seen = gcs.seen();
    assert_eq!(
        seen[0].raw_path,
        "/storage/v1/b/b/o/folder%2Fa%20b%2B%C3%BC.pdf"
    );
}

#[tokio::test]
async fn checksum_mismatch_is_a_protocol_error() {
    let mut fake = FakeGcs::with(vec![Stored::new("b", "x", 1, b"some bytes")]);
    fake.corrupt_hash = true;
    let gcs = Arc::new(fake);
    let source = source_for(&gcs).await;
    let err = source.read("b", "x", None, MIB).await.unwrap_err();
    assert!(matches!(err, ObjectError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn bad_arguments_are_refused_before_any_request() {
    let gcs = Arc::new(FakeGcs::with(vec![]));
    let source = source_for(&gcs).await;
    for (bucket, name, generation) in [
        ("b", "x", Some("latest")),
        ("b", "x", Some("-5")),
        ("b/../other", "x", None),
        ("B?alt=json", "x", None),
        ("", "x", None),
        ("b", "", None),
    ] {
        let err = source
            .read(bucket, name, generation, MIB)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ObjectError::Protocol(_)),
            "{bucket} {name}: {err:?}"
        );
    }
    assert!(gcs.seen().is_empty());
}

/// A body that counts what the server produced and notices when the client hangs up.
struct Probe {
    produced: AtomicUsize,
    dropped: AtomicBool,
}

struct DropFlag(Arc<Probe>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

/// A `total`-byte body streamed in 64 KiB chunks, recording progress in `probe`.
fn counted_body(total: usize, probe: Arc<Probe>) -> Body {
    const CHUNK: usize = 64 * 1024;
    let flag = DropFlag(probe.clone());
    let stream = futures::stream::unfold((0usize, flag), move |(sent, flag)| async move {
        if sent >= total {
            return None;
        }
        let n = CHUNK.min(total - sent);
        flag.0.produced.fetch_add(n, Ordering::SeqCst);
        Some((
            Ok::<_, Infallible>(Bytes::from(vec![b'x'; n])),
            (sent + n, flag),
        ))
    });
    Body::from_stream(stream)
}

#[tokio::test]
async fn oversized_object_is_refused_from_its_headers_without_reading_the_body() {
    const TOTAL: usize = 64 * MIB;
    let probe = Arc::new(Probe {
        produced: AtomicUsize::new(0),
        dropped: AtomicBool::new(false),
    });
    let p = probe.clone();
    let router = Router::new().fallback(move || {
        let p = p.clone();
        async move {
            let mut response = Response::new(counted_body(TOTAL, p));
            let h = response.headers_mut();
            h.insert("content-length", TOTAL.into());
            h.insert("content-type", HeaderValue::from_static("application/pdf"));
            h.insert("x-goog-generation", HeaderValue::from_static("9"));
            h.insert("x-goog-stored-content-length", TOTAL.into());
            h.insert(
                "x-goog-stored-content-encoding",
                HeaderValue::from_static("identity"),
            );
            response
        }
    });
    let source = GcsSource::new(Some(spawn(router).await), true)
        .await
        .unwrap();

    let err = source
        .read("b", "huge.pdf", None, 10 * MIB)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ObjectError::TooLarge { limit } if limit == 10 * MIB),
        "{err:?}"
    );
    assert_eq!(err.kind(), "too-large");

    // The client hung up: the server stops producing and drops the body.
    for _ in 0..50 {
        if probe.dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        probe.dropped.load(Ordering::SeqCst),
        "the server is still sending"
    );
    let produced = probe.produced.load(Ordering::SeqCst);
    assert!(
        produced < TOTAL / 4,
        "the server produced {produced} of {TOTAL} bytes"
    );
}

#[tokio::test]
async fn body_past_the_limit_is_cut_off_when_the_stored_size_understates_it() {
    // A gzip-stored object served decompressed: the stored size is the compressed one, the
    // body (chunked, no content-length) is much larger.
    let probe = Arc::new(Probe {
        produced: AtomicUsize::new(0),
        dropped: AtomicBool::new(false),
    });
    let p = probe.clone();
    let router = Router::new().fallback(move || {
        let p = p.clone();
        async move {
            let mut response = Response::new(counted_body(32 * MIB, p));
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            h.insert("x-goog-generation", HeaderValue::from_static("5"));
            h.insert(
                "x-goog-stored-content-length",
                HeaderValue::from_static("4096"),
            );
            h.insert(
                "x-goog-stored-content-encoding",
                HeaderValue::from_static("gzip"),
            );
            h.insert(
                "x-guploader-response-body-transformations",
                HeaderValue::from_static("gunzipped"),
            );
            response
        }
    });
    let source = GcsSource::new(Some(spawn(router).await), true)
        .await
        .unwrap();

    let err = source.read("b", "log.txt", None, MIB).await.unwrap_err();
    assert!(
        matches!(err, ObjectError::TooLarge { limit } if limit == MIB),
        "{err:?}"
    );
    for _ in 0..50 {
        if probe.dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        probe.dropped.load(Ordering::SeqCst),
        "the server is still sending"
    );
    assert!(probe.produced.load(Ordering::SeqCst) < 16 * MIB);
}

#[tokio::test]
async fn object_of_exactly_max_bytes_is_read() {
    let gcs = Arc::new(FakeGcs::with(vec![Stored::new("b", "x", 1, b"0123456789")]));
    let source = source_for(&gcs).await;
    assert_eq!(
        source.read("b", "x", None, 10).await.unwrap().bytes.len(),
        10
    );
    let err = source.read("b", "x", None, 9).await.unwrap_err();
    assert!(matches!(err, ObjectError::TooLarge { limit: 9 }), "{err:?}");
}

#[tokio::test]
async fn a_stalled_server_hits_the_deadline() {
    let router = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        StatusCode::OK
    });
    let source = GcsSource::new(Some(spawn(router).await), true)
        .await
        .unwrap()
        .with_deadline(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = source.read("b", "x", None, MIB).await.unwrap_err();
    assert!(matches!(err, ObjectError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable() {
    // Bind then drop a listener: the port is closed, the connection is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let source = GcsSource::new(
        Some(url::Url::parse(&format!("http://{addr}")).unwrap()),
        true,
    )
    .await
    .unwrap();
    let err = source.read("b", "x", None, MIB).await.unwrap_err();
    assert!(matches!(err, ObjectError::Unavailable(_)), "{err:?}");
}
