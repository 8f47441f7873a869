//! The ingest function against the real stack (PostgreSQL + pgvector, Chroma, the embedding model,
//! poppler and Tesseract): uploads, idempotency, versions, ACL changes, bad documents, atomicity,
//! concurrency, Chroma down and reconciliation.

use std::path::PathBuf;
use std::time::Duration;

use quarry_ingest::store::{DocumentStore, NewVersion};
use quarry_shared::docs::acl::Acl;
use quarry_shared::rag::chunk::Chunk;
use quarry_shared::testing::{self, spawn_app, token, TestApp, TestDb};
use serde_json::Value;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn app(db: &TestDb, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app(
        testing::settings_for(db, overrides),
        vec![quarry_ingest::service()],
    )
    .await
}

/// Uploads `bytes` as `name`, with optional extra text fields.
async fn upload(
    app: &TestApp,
    bearer: &str,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    let response = http()
        .post(app.url("/v1/documents"))
        .bearer_auth(bearer)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn chunk_ids(db: &TestDb, source: &str) -> Vec<String> {
    let client = db.connect().await;
    client
        .query(
            "SELECT c.chunk_id::text FROM quarry_meta.chunks c
             JOIN quarry_meta.documents d USING (document_id) WHERE d.source = $1 ORDER BY c.ordinal",
            &[&source],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const GUIDE_V1: &str = "# Retention policy\n\nCustomer invoices are kept for seven years.\n\n## Deletion\n\nPersonal data is deleted thirty days after an account closes.\n";
const GUIDE_V2: &str = "# Retention policy\n\nCustomer invoices are kept for ten years.\n\n## Deletion\n\nPersonal data is deleted sixty days after an account closes.\n";

#[tokio::test]
async fn uploads_are_idempotent_versioned_and_acl_changes_rewrite_nothing_else() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let admin = token("ops", "admin", "emea");
    let source = "upload://retention.md";

    let (status, created) = upload(
        &app,
        &admin,
        "retention.md",
        GUIDE_V1.into(),
        &[("roles", "admin,analyst")],
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "created");
    assert_eq!(created["version"], 1);
    assert_eq!(created["source"], source);
    assert_eq!(created["media_type"], "text/markdown");
    assert_eq!(
        created["allowed_roles"],
        serde_json::json!(["admin", "analyst"])
    );
    assert_eq!(created["allowed_regions"], serde_json::json!(["*"]));
    assert_eq!(created["degraded"], serde_json::json!([]), "{created}");
    let first = chunk_ids(&db, source).await;
    assert_eq!(first.len(), created["chunks"].as_u64().unwrap() as usize);
    assert!(!first.is_empty());

    // The same bytes again (a retried upload, a redelivered event): nothing changes.
    let (status, again) = upload(
        &app,
        &admin,
        "retention.md",
        GUIDE_V1.into(),
        &[("roles", "admin,analyst")],
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["version"], 1);
    assert_eq!(chunk_ids(&db, source).await, first);

    // New content replaces every chunk, in one version step.
    let (status, replaced) = upload(
        &app,
        &admin,
        "retention.md",
        GUIDE_V2.into(),
        &[("roles", "admin,analyst")],
    )
    .await;
    assert_eq!(status, 201, "{replaced}");
    assert_eq!(replaced["status"], "replaced");
    assert_eq!(replaced["version"], 2);
    let second = chunk_ids(&db, source).await;
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "old chunks must be gone"
    );
    let client = db.connect().await;
    let text: String = client
        .query_one("SELECT string_agg(c.text, ' ') FROM quarry_meta.chunks c JOIN quarry_meta.documents d USING (document_id) WHERE d.source = $1", &[&source])
        .await
        .unwrap()
        .get(0);
    assert!(
        text.contains("ten years") && !text.contains("seven years"),
        "{text}"
    );

    // Same bytes, narrower ACL: the ACL moves on document and chunks; the chunks stay.
    let (status, narrowed) = upload(
        &app,
        &admin,
        "retention.md",
        GUIDE_V2.into(),
        &[("roles", "admin")],
    )
    .await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["status"], "acl-changed");
    assert_eq!(narrowed["version"], 3);
    assert_eq!(chunk_ids(&db, source).await, second);
    let roles: Vec<Vec<String>> = client
        .query("SELECT DISTINCT allowed_roles FROM quarry_meta.chunks", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(roles, vec![vec!["admin".to_owned()]]);
    let row = client
        .query_one(
            "SELECT count(*), bool_and(chroma_version = version) FROM quarry_meta.documents",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert!(
        row.get::<_, bool>(1),
        "Chroma must hold the current version"
    );

    // Listed, then deleted.
    let list: Value = http()
        .get(app.url("/v1/documents"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["source"], source, "{list}");
    assert_eq!(list[0]["chroma_synced"], true);
    let deleted = http()
        .delete(app.url("/v1/documents"))
        .query(&[("source", source)])
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert!(chunk_ids(&db, source).await.is_empty());
    let again = http()
        .delete(app.url("/v1/documents"))
        .query(&[("source", source)])
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 404);
    app.stop().await;
}

#[tokio::test]
async fn bad_documents_get_problems_and_failure_rows_and_store_nothing() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[("INGEST_MAX_BYTES", "4096")]).await;
    let admin = token("ops", "admin", "emea");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty.txt", Vec::new(), 422, "empty"),
        ("blank.md", b"   \n\n  \n".to_vec(), 422, "empty"),
        (
            "random.bin",
            fixture("random.bin"),
            415,
            "unsupported-format",
        ),
        ("locked.pdf", fixture("encrypted.pdf"), 422, "encrypted"),
        ("broken.pdf", fixture("truncated.pdf"), 422, "corrupt"),
        (
            "big.txt",
            "word ".repeat(2000).into_bytes(),
            413,
            "too-large",
        ),
    ];
    for (name, bytes, status, reason) in &cases {
        let (got, problem) = upload(&app, &admin, name, bytes.clone(), &[]).await;
        assert_eq!(got, *status, "{name}: {problem}");
        assert_eq!(
            problem["type"], "urn:quarry:problem:document-rejected",
            "{name}: {problem}"
        );
        assert_eq!(problem["reason"], *reason, "{name}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| !d.contains("/tmp")),
            "{problem}"
        );
    }
    let client = db.connect().await;
    let documents: i64 = client
        .query_one("SELECT count(*) FROM quarry_meta.documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(documents, 0);
    let chunks: i64 = client
        .query_one("SELECT count(*) FROM quarry_meta.chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 0);
    let failures: Vec<(String, String)> = client
        .query(
            "SELECT source, kind FROM quarry_meta.ingest_failures ORDER BY failure_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = cases
        .iter()
        .map(|(name, _, _, reason)| (format!("upload://{name}"), (*reason).to_owned()))
        .collect();
    assert_eq!(failures, expected);
    let listed: Value = http()
        .get(app.url("/v1/documents/failures"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(cases.len()));
    app.stop().await;
}

#[tokio::test]
async fn uploads_need_admin_a_file_and_a_valid_acl() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let admin = token("ops", "admin", "emea");
    let (status, problem) = upload(
        &app,
        &token("c", "catalog", "emea"),
        "a.txt",
        b"hello".to_vec(),
        &[],
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "urn:quarry:problem:admin-only");
    let response = http()
        .post(app.url("/v1/documents"))
        .multipart(reqwest::multipart::Form::new().text("roles", "admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http()
        .post(app.url("/v1/documents"))
        .bearer_auth(&admin)
        .multipart(reqwest::multipart::Form::new().text("roles", "admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:quarry:problem:missing-file");
    for (fields, kind) in [
        (vec![("roles", "Admin")], "invalid-acl"),
        (vec![("regions", "emea")], "invalid-acl"),
        (
            vec![("roles", "admin"), ("regions", "emea;apac")],
            "invalid-acl",
        ),
        (vec![("colour", "blue")], "invalid-multipart"),
    ] {
        let (status, problem) =
            upload(&app, &admin, "a.txt", b"hello there".to_vec(), &fields).await;
        assert_eq!(status, 400, "{fields:?}: {problem}");
        assert_eq!(
            problem["type"],
            format!("urn:quarry:problem:{kind}"),
            "{problem}"
        );
    }
    // Not multipart at all.
    let response = http()
        .post(app.url("/v1/documents"))
        .bearer_auth(&admin)
        .body("plain")
        .send()
        .await
        .unwrap();
    assert!(
        [400, 415].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    app.stop().await;
}

#[tokio::test]
async fn scanned_pdf_pages_are_ocrd_and_text_pdfs_are_not() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let admin = token("ops", "admin", "emea");
    let (status, scanned) = upload(&app, &admin, "scanned.pdf", fixture("scanned.pdf"), &[]).await;
    assert_eq!(status, 201, "{scanned}");
    assert_eq!(scanned["media_type"], "application/pdf");
    assert!(scanned["ocr_pages"].as_u64().unwrap() >= 1, "{scanned}");
    assert!(scanned["chunks"].as_u64().unwrap() >= 1, "{scanned}");
    let (status, text) = upload(&app, &admin, "text.pdf", fixture("text.pdf"), &[]).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(text["ocr_pages"], 0, "{text}");
    let client = db.connect().await;
    let pages: Vec<Option<i32>> = client
        .query(
            "SELECT DISTINCT page FROM quarry_meta.chunks ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        pages.iter().all(Option::is_some),
        "PDF chunks carry pages: {pages:?}"
    );
    app.stop().await;
}

/// A write that fails inside its transaction (here: a chunk the schema refuses, after the old
/// chunks were deleted) leaves the old version whole.
#[tokio::test]
async fn a_failed_write_leaves_the_old_version_whole() {
    let db = TestDb::from_template().await;
    let store = DocumentStore::new(quarry_shared::db::pool(&db.url, 2).unwrap());
    let acl = Acl::admin_only();
    let chunk = |text: &str, start: usize, end: usize| Chunk {
        text: text.to_owned(),
        page: None,
        heading_path: vec!["Policy".to_owned()],
        char_range: start..end,
        byte_range: start..end,
        token_count: 3,
    };
    let good = vec![chunk("old text one", 0, 12), chunk("old text two", 13, 25)];
    let vectors = vec![unit(0), unit(1)];
    let hash_a = "a".repeat(64);
    store
        .write(&NewVersion {
            source: "test://atomic",
            title: None,
            media_type: "text/plain",
            content_hash: &hash_a,
            byte_size: 25,
            page_count: None,
            ocr_pages: 0,
            acl: &acl,
            chunks: &good,
            embeddings: &vectors,
        })
        .await
        .unwrap();
    // char_start > char_end violates a CHECK constraint on the second chunk.
    let bad = vec![chunk("new text one", 0, 12), chunk("new text two", 30, 20)];
    let hash_b = "b".repeat(64);
    let result = store
        .write(&NewVersion {
            source: "test://atomic",
            title: None,
            media_type: "text/plain",
            content_hash: &hash_b,
            byte_size: 25,
            page_count: None,
            ocr_pages: 0,
            acl: &acl,
            chunks: &bad,
            embeddings: &vectors,
        })
        .await;
    assert!(result.is_err());
    let stored = store.find("test://atomic").await.unwrap().unwrap();
    assert_eq!(stored.content_hash, hash_a);
    assert_eq!(stored.version, 1);
    let texts: Vec<String> = db
        .connect()
        .await
        .query("SELECT text FROM quarry_meta.chunks ORDER BY ordinal", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(texts, ["old text one", "old text two"]);
}

fn unit(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0; 384];
    v[axis] = 1.0;
    v
}

#[tokio::test]
async fn concurrent_deliveries_serialise_into_one_consistent_version() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let admin = token("ops", "admin", "emea");
    // Four deliveries of the same bytes at once: one creates, the rest find it unchanged.
    let same = (0..4).map(|_| upload(&app, &admin, "same.md", GUIDE_V1.into(), &[]));
    let results = futures::future::join_all(same).await;
    let mut statuses: Vec<String> = results
        .iter()
        .map(|(code, body)| {
            assert!([200, 201].contains(code), "{body}");
            body["status"].as_str().unwrap().to_owned()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["created", "unchanged", "unchanged", "unchanged"]);

    // Different bytes for one source at once: versions serialise; chunks belong to the last.
    let versions = [
        GUIDE_V1,
        GUIDE_V2,
        "# Other\n\nA third version of the text.\n",
    ];
    let racing = versions
        .iter()
        .map(|text| upload(&app, &admin, "race.md", (*text).into(), &[]));
    for (code, body) in futures::future::join_all(racing).await {
        assert!([200, 201].contains(&code), "{body}");
    }
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT d.version, d.chunk_count, (SELECT count(*) FROM quarry_meta.chunks c WHERE c.document_id = d.document_id)
             FROM quarry_meta.documents d WHERE d.source = 'upload://race.md'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(i64::from(row.get::<_, i32>(1)), row.get::<_, i64>(2));
    app.stop().await;
}

#[tokio::test]
async fn chroma_down_ingests_into_postgres_and_reconcile_catches_up() {
    let db = TestDb::from_template().await;
    let collection = format!("qt_{}", uuid::Uuid::new_v4().simple());
    let down = app(
        &db,
        &[
            ("CHROMA_URL", "http://127.0.0.1:9"),
            ("CHROMA_COLLECTION", &collection),
        ],
    )
    .await;
    let admin = token("ops", "admin", "emea");
    let (status, report) = upload(&down, &admin, "policy.md", GUIDE_V1.into(), &[]).await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["degraded"], serde_json::json!(["chroma"]));
    let client = db.connect().await;
    let lagging: i64 = client
        .query_one(
            "SELECT count(*) FROM quarry_meta.documents WHERE chroma_version IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lagging, 1);
    down.stop().await;

    let up = app(&db, &[("CHROMA_COLLECTION", &collection)]).await;
    let response = http()
        .post(up.url("/v1/documents/reconcile"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["written"], 1, "{body}");
    let synced: bool = client
        .query_one(
            "SELECT bool_and(chroma_version = version) FROM quarry_meta.documents",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(synced);
    // Run again: nothing left to do.
    let body: Value = http()
        .post(up.url("/v1/documents/reconcile"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"written": 0, "removed": 0}));
    up.stop().await;
}
