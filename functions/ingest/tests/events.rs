//! `POST /v1/events` end to end: a Cloud Storage CloudEvent as Eventarc delivers it (binary
//! mode) → the object read from the scripted Cloud Storage server → extracted, chunked, embedded
//! and stored in pgvector and Chroma under the ACL of the object's metadata. Redelivery changes
//! nothing, a `deleted` event removes the document, a bad object is acknowledged as rejected with
//! a failure row (redelivering it cannot help), and a store that cannot be read is a 5xx so
//! Eventarc tries again.
//!
//! The Cloud Storage client is built once per process, so each test here talks to one scripted
//! server (nextest runs every test in its own process).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use quarry_shared::testing::{self, spawn_app, token, TestApp, TestDb};
use serde_json::{json, Value};
use support::gcs_server::{serve_fake, spawn, FakeGcs, Stored};

mod support;

const BUCKET: &str = "quarry-docs";

const POLICY: &[u8] = b"# Data retention\n\nInvoices are kept for ten years.\n\n## Logs\n\nWeb server logs are deleted after ninety days.\n";

async fn stack(gcs: FakeGcs) -> (TestApp, TestDb, Arc<FakeGcs>) {
    let gcs = Arc::new(gcs);
    let url = spawn(Router::new().fallback(serve_fake).with_state(gcs.clone())).await;
    let db = TestDb::from_template().await;
    let app = spawn_app(
        testing::settings_for(
            &db,
            &[("GCS_ENDPOINT", url.as_str()), ("GCS_ANONYMOUS", "true")],
        ),
        vec![quarry_ingest::service()],
    )
    .await;
    (app, db, gcs)
}

fn markdown(
    name: &'static str,
    generation: i64,
    metadata: Vec<(&'static str, &'static str)>,
) -> Stored {
    let mut object = Stored::new(BUCKET, name, generation, POLICY);
    object.content_type = "text/markdown";
    object.metadata = metadata;
    object
}

/// Sends a storage event for `name` in binary mode, as Eventarc does.
async fn event(
    app: &TestApp,
    bearer: &str,
    event_type: &str,
    name: &str,
    generation: i64,
) -> (u16, Value) {
    let body = json!({
        "kind": "storage#object",
        "name": name,
        "bucket": BUCKET,
        "generation": generation.to_string(),
        "metageneration": "1",
        "contentType": "text/markdown",
        "size": POLICY.len().to_string(),
    });
    let response = reqwest::Client::new()
        .post(app.url("/v1/events"))
        .bearer_auth(bearer)
        .header("content-type", "application/json; charset=utf-8")
        .header("ce-specversion", "1.0")
        .header("ce-type", event_type)
        .header(
            "ce-source",
            format!("//storage.googleapis.com/projects/_/buckets/{BUCKET}"),
        )
        .header("ce-subject", format!("objects/{name}"))
        .header("ce-id", format!("evt-{name}-{generation}"))
        .header("ce-time", "2026-11-27T10:00:00Z")
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const FINALIZED: &str = "google.cloud.storage.object.v1.finalized";
const DELETED: &str = "google.cloud.storage.object.v1.deleted";

#[tokio::test]
async fn a_finalized_object_is_ingested_under_its_metadata_acl_once() {
    let (app, db, gcs) = stack(FakeGcs::with(vec![markdown(
        "policies/retention.md",
        7,
        vec![("quarry-roles", "finance"), ("quarry-regions", "emea")],
    )]))
    .await;
    let admin = token("ops", "admin", "emea");
    let (status, body) = event(&app, &admin, FINALIZED, "policies/retention.md", 7).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "ingested", "{body}");
    let report = &body["report"];
    assert_eq!(report["source"], "gs://quarry-docs/policies/retention.md");
    assert_eq!(report["status"], "created");
    assert_eq!(report["allowed_roles"], json!(["finance"]));
    assert_eq!(report["allowed_regions"], json!(["emea"]));
    assert!(report["chunks"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(report["degraded"], json!([]));
    // The object was read with one media download of the event's generation.
    let seen = gcs.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].query("alt"), Some("media"));
    assert_eq!(seen[0].query("generation"), Some("7"));

    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT d.allowed_roles, d.version, d.chroma_version, count(c.chunk_id)
             FROM quarry_meta.documents d JOIN quarry_meta.chunks c USING (document_id)
             WHERE d.source = 'gs://quarry-docs/policies/retention.md'
             GROUP BY d.allowed_roles, d.version, d.chroma_version",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<String>>(0), ["finance"]);
    let version: i32 = row.get(1);
    assert_eq!(
        row.get::<_, Option<i32>>(2),
        Some(version),
        "Chroma holds the same version"
    );
    assert_eq!(row.get::<_, i64>(3), report["chunks"].as_i64().unwrap());

    // Eventarc redelivers: nothing changes.
    let (status, again) = event(&app, &admin, FINALIZED, "policies/retention.md", 7).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["report"]["status"], "unchanged", "{again}");
    assert_eq!(again["report"]["version"], version);

    // The object is deleted: so is the document, with its chunks.
    let (status, deleted) = event(&app, &admin, DELETED, "policies/retention.md", 7).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["outcome"], "deleted");
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM quarry_meta.chunks c JOIN quarry_meta.documents d USING (document_id)
             WHERE d.source = 'gs://quarry-docs/policies/retention.md'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn bad_objects_are_acknowledged_and_recorded_and_strangers_are_refused() {
    let mut corrupt = Stored::new(BUCKET, "scans/broken.pdf", 3, b"%PDF-1.7 this is not a PDF");
    corrupt.content_type = "application/pdf";
    let bad_acl = markdown(
        "policies/odd.md",
        1,
        vec![("quarry-roles", "no such role!")],
    );
    let (app, db, _gcs) = stack(FakeGcs::with(vec![corrupt, bad_acl])).await;
    let admin = token("ops", "admin", "emea");

    let (status, body) = event(&app, &admin, FINALIZED, "scans/broken.pdf", 3).await;
    assert_eq!(
        status, 200,
        "acknowledged, so Eventarc does not redeliver: {body}"
    );
    assert_eq!(body["outcome"], "rejected", "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );

    let (status, body) = event(&app, &admin, FINALIZED, "policies/odd.md", 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "rejected", "{body}");

    let (status, body) = event(&app, &admin, FINALIZED, "gone.md", 9).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "ignored");
    assert_eq!(body["reason"], "object-not-found");

    let client = db.connect().await;
    let failures: Vec<(String, String)> = client
        .query(
            "SELECT source, trigger FROM quarry_meta.ingest_failures ORDER BY failure_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        failures,
        [
            (
                "gs://quarry-docs/scans/broken.pdf".to_owned(),
                "event".to_owned()
            ),
            (
                "gs://quarry-docs/policies/odd.md".to_owned(),
                "event".to_owned()
            ),
        ]
    );
    let documents: i64 = client
        .query_one("SELECT count(*) FROM quarry_meta.documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(documents, 0, "nothing of a rejected object is stored");

    // Only operators may deliver events.
    let (status, body) = event(
        &app,
        &token("ana", "analyst", "emea"),
        FINALIZED,
        "policies/odd.md",
        1,
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn an_unreadable_store_is_a_retryable_error_and_nothing_is_stored() {
    let gcs =
        FakeGcs::with(vec![markdown("policies/retention.md", 2, Vec::new())]).fail_with(&[503; 32]);
    let (app, db, _gcs) = stack(gcs).await;
    let (status, body) = event(
        &app,
        &token("ops", "admin", "emea"),
        FINALIZED,
        "policies/retention.md",
        2,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["type"], "urn:quarry:problem:object-unreadable",
        "{body}"
    );
    let documents: i64 = db
        .connect()
        .await
        .query_one("SELECT count(*) FROM quarry_meta.documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(documents, 0);
}
