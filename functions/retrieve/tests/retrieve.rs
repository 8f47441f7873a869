//! `POST /v1/retrieve` against the real stack (PostgreSQL with pgvector, Chroma, the real
//! embedding model): ACLs inside every retriever (no starvation, no leaks, regions), Chroma down,
//! near-duplicate merging, and bad input.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quarry_ingest::pipeline::{IngestRequest, Ingestor, Trigger};
use quarry_shared::config::Settings;
use quarry_shared::docs::acl::Acl;
use quarry_shared::docs::chroma::{ChromaIndex, VectorIndex};
use quarry_shared::testing::{self, spawn_app, token, TestApp, TestDb};
use serde_json::{json, Value};

const SECRET_DOC: &str =
    "The executive bonus pool for 2026 is 4.2 million dollars, paid to the board in March.";
const CATALOG_DOC: &str =
    "Catalog note: bonus tracks on jazz albums are listed after the main tracks of each album.";
const EMEA_DOC: &str =
    "EMEA price list: every album in the European catalog costs 9.99 euros, bonus tracks included.";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn ingestor(settings: &Settings, db: &TestDb) -> Ingestor {
    let pool = quarry_shared::db::pool(&db.url, 4).unwrap();
    let index: Option<Arc<dyn VectorIndex>> = match &settings.chroma_url {
        Some(url) => ChromaIndex::connect(
            reqwest::Client::new(),
            url,
            &settings.docs.chroma_collection,
            settings.docs.chroma_timeout,
        )
        .await
        .ok()
        .map(|i| Arc::new(i) as Arc<dyn VectorIndex>),
        None => None,
    };
    Ingestor::new(pool, index, &settings.docs)
}

async fn put(ingestor: &Ingestor, source: &str, text: &str, roles: &str, regions: &str) {
    let report = ingestor
        .ingest(IngestRequest {
            source: source.to_owned(),
            bytes: Bytes::from(text.to_owned()),
            file_name: Some("doc.txt".to_owned()),
            declared_type: Some("text/plain".to_owned()),
            acl: Some(Acl::parse(roles, regions).unwrap()),
            trigger: Trigger::Cli,
        })
        .await
        .unwrap_or_else(|e| panic!("ingest {source}: {e}"));
    assert!(report.chunks >= 1);
}

async fn retrieve(app: &TestApp, bearer: &str, body: Value) -> (u16, Value) {
    let response = http()
        .post(app.url("/v1/retrieve"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn sources(body: &Value) -> Vec<String> {
    body["passages"]
        .as_array()
        .unwrap_or_else(|| panic!("no passages in {body}"))
        .iter()
        .map(|p| p["source"].as_str().unwrap().to_owned())
        .collect()
}

/// Sixty admin-only documents about the bonus pool outrank everything a catalog caller may see; a
/// filter applied after a top-k would leave the catalog caller with nothing.
#[tokio::test]
async fn acl_is_inside_every_retriever_so_results_neither_leak_nor_starve() {
    let db = TestDb::from_template().await;
    let settings = testing::settings_for(&db, &[]);
    let ingestor = ingestor(&settings, &db).await;
    assert!(ingestor.has_index(), "Chroma must be up for this test");
    put(&ingestor, "test://secret", SECRET_DOC, "admin", "*").await;
    for i in 0..60 {
        let text = format!(
            "Board memo {i}: the executive bonus pool payment schedule, part {i}, is confidential."
        );
        put(&ingestor, &format!("test://memo-{i}"), &text, "admin", "*").await;
    }
    put(
        &ingestor,
        "test://catalog",
        CATALOG_DOC,
        "admin,catalog",
        "*",
    )
    .await;
    put(&ingestor, "test://emea", EMEA_DOC, "catalog", "emea").await;
    let app = spawn_app(settings, vec![quarry_retrieve::service()]).await;

    let query = json!({"query": "executive bonus pool payment", "top_k": 10});
    let (status, admin) = retrieve(&app, &token("a", "admin", "emea"), query.clone()).await;
    assert_eq!(status, 200, "{admin}");
    // The admin-only memos fill the whole top 10: exactly the situation where filtering an
    // unfiltered top-k would leave a catalog caller with nothing.
    let top = sources(&admin);
    assert_eq!(top.len(), 10, "{admin}");
    assert!(
        top.iter()
            .all(|s| s.starts_with("test://memo-") || s == "test://secret"),
        "{admin}"
    );
    assert_eq!(admin["degraded"], json!([]), "{admin}");

    let (status, catalog) = retrieve(&app, &token("c", "catalog", "apac"), query).await;
    assert_eq!(status, 200, "{catalog}");
    let seen = sources(&catalog);
    assert!(
        seen.iter().all(|s| s == "test://catalog"),
        "catalog in apac may only see the catalog note: {seen:?}"
    );
    assert_eq!(
        seen,
        ["test://catalog"],
        "no starvation: the visible match is found"
    );

    // Regions: the EMEA price list is for catalog callers in emea only.
    let prices = json!({"query": "album price in euros", "top_k": 5});
    let (_, apac) = retrieve(&app, &token("c", "catalog", "apac"), prices.clone()).await;
    assert!(
        !sources(&apac).contains(&"test://emea".to_owned()),
        "{apac}"
    );
    let (_, emea) = retrieve(&app, &token("c", "catalog", "emea"), prices.clone()).await;
    assert_eq!(sources(&emea)[0], "test://emea", "{emea}");
    // Admin is not listed on it: roles are explicit, not a hierarchy.
    let (_, admin) = retrieve(&app, &token("a", "admin", "emea"), prices).await;
    assert!(
        !sources(&admin).contains(&"test://emea".to_owned()),
        "{admin}"
    );

    // Each single retriever obeys the ACL too.
    for mode in ["vector", "text"] {
        let (status, body) = retrieve(
            &app,
            &token("c", "catalog", "apac"),
            json!({"query": "executive bonus pool", "mode": mode}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            sources(&body).iter().all(|s| s == "test://catalog"),
            "{mode}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn passages_carry_their_source_and_near_duplicates_merge() {
    let db = TestDb::from_template().await;
    let settings = testing::settings_for(&db, &[]);
    let ingestor = ingestor(&settings, &db).await;
    let text = "To reclaim disk space after deleting many rows, run VACUUM FULL, which rewrites the table into a new file.";
    put(&ingestor, "file:///docs/vacuum.txt", text, "admin", "*").await;
    put(
        &ingestor,
        "gs://bucket/copy-of-vacuum.txt",
        text,
        "admin",
        "*",
    )
    .await;
    put(
        &ingestor,
        "file:///docs/other.txt",
        "Checkpoints write dirty buffers to disk at intervals.",
        "admin",
        "*",
    )
    .await;
    let app = spawn_app(settings, vec![quarry_retrieve::service()]).await;

    let (status, body) = retrieve(
        &app,
        &token("a", "admin", "emea"),
        json!({"query": "how do I get disk space back after deleting rows?", "top_k": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let passages = body["passages"].as_array().unwrap();
    let first = &passages[0];
    assert!(
        ["file:///docs/vacuum.txt", "gs://bucket/copy-of-vacuum.txt"]
            .contains(&first["source"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(first["text"], text);
    assert_eq!(first["merged"].as_array().map(Vec::len), Some(1), "{body}");
    for key in [
        "chunk_id",
        "document_id",
        "source",
        "heading",
        "text",
        "score",
    ] {
        assert!(first.get(key).is_some(), "missing {key}: {first}");
    }
    // The duplicate is not returned a second time.
    let vacuum = passages.iter().filter(|p| p["text"] == text).count();
    assert_eq!(vacuum, 1, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn chroma_down_serves_from_postgres_and_says_degraded() {
    let db = TestDb::from_template().await;
    let up = testing::settings_for(&db, &[]);
    let ingestor = ingestor(&up, &db).await;
    put(
        &ingestor,
        "test://wal",
        "The write-ahead log records every change before it reaches the data files.",
        "admin",
        "*",
    )
    .await;
    // Nothing listens on port 9.
    let down = testing::settings_for(
        &db,
        &[
            ("CHROMA_URL", "http://127.0.0.1:9"),
            ("CHROMA_TIMEOUT_MS", "300"),
        ],
    );
    let app = spawn_app(down, vec![quarry_retrieve::service()]).await;
    let (status, body) = retrieve(
        &app,
        &token("a", "admin", "emea"),
        json!({"query": "write-ahead log"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degraded"], json!(["chroma"]), "{body}");
    assert_eq!(sources(&body), ["test://wal"]);
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_problems() {
    let db = TestDb::from_template().await;
    let app = spawn_app(
        testing::settings_for(&db, &[("RETRIEVE_MAX_TOP_K", "20")]),
        vec![quarry_retrieve::service()],
    )
    .await;
    let admin = token("a", "admin", "emea");
    let long = "x ".repeat(1500);
    for (body, status, kind) in [
        (json!({"query": "   "}), 400, "invalid-query"),
        (json!({"query": long}), 400, "invalid-query"),
        (json!({"query": "vacuum", "top_k": 0}), 400, "invalid-top-k"),
        (
            json!({"query": "vacuum", "top_k": 21}),
            400,
            "invalid-top-k",
        ),
        (
            json!({"query": "vacuum", "mode": "psychic"}),
            422,
            "invalid-body",
        ),
        (
            json!({"query": "vacuum", "filter": "x"}),
            422,
            "invalid-body",
        ),
        (json!({"top_k": 3}), 422, "invalid-body"),
    ] {
        let response = http()
            .post(app.url("/v1/retrieve"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("urn:quarry:problem:{kind}"),
            "{body}: {problem}"
        );
    }
    let response = http()
        .post(app.url("/v1/retrieve"))
        .json(&json!({"query": "vacuum"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // An empty corpus is not an error.
    let (status, body) = retrieve(&app, &admin, json!({"query": "vacuum"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["passages"], json!([]));
    app.stop().await;
}
