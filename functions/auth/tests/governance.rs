//! Governance against the real database and Redis: row-level fencing under the restricted role,
//! the append-only audit log, `/v1/authorize` and `/v1/whoami`, the bad-token table (status,
//! problem type and an audit row for each), fail-closed auditing, and rate limits.

use std::time::Duration;

use quarry_shared::testing::tokens::{self, TokenCase};
use quarry_shared::testing::{self, now, spawn_app, token, TestApp, TestDb, TEST_JWT_SECRET};
use serde_json::{json, Value};

async fn app(db: &TestDb, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app(
        testing::settings_for(db, overrides),
        vec![quarry_auth::service()],
    )
    .await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn authorize(app: &TestApp, bearer: &str, resource: &str) -> Value {
    let response = http()
        .post(app.url("/v1/authorize"))
        .bearer_auth(bearer)
        .json(&json!({"action": "read", "resource": resource}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Regions of every row `sql` returns under the restricted role with this role and region set.
async fn regions_seen(
    db: &TestDb,
    role: Option<&str>,
    region: Option<&str>,
    sql: &str,
) -> Vec<String> {
    let mut client = db.connect_app().await;
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .unwrap();
    if let Some(role) = role {
        tx.batch_execute(&format!("SET LOCAL quarry.role = '{role}'"))
            .await
            .unwrap();
    }
    if let Some(region) = region {
        tx.batch_execute(&format!("SET LOCAL quarry.region = '{region}'"))
            .await
            .unwrap();
    }
    let rows = tx.query(sql, &[]).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test]
async fn rows_are_fenced_by_region_in_postgres() {
    let db = TestDb::from_template().await;
    // No WHERE clause: the database alone decides which rows come back.
    let customers = regions_seen(
        &db,
        Some("analyst"),
        Some("emea"),
        "SELECT region FROM customer",
    )
    .await;
    assert!(!customers.is_empty());
    assert!(customers.iter().all(|r| r == "emea"), "{customers:?}");
    let invoices = regions_seen(
        &db,
        Some("analyst"),
        Some("emea"),
        "SELECT region FROM invoice",
    )
    .await;
    assert!(!invoices.is_empty() && invoices.iter().all(|r| r == "emea"));
    let lines = regions_seen(
        &db,
        Some("finance"),
        Some("apac"),
        "SELECT i.region FROM invoice_line l JOIN LATERAL (SELECT region FROM invoice WHERE invoice_id = l.invoice_id) i ON true",
    )
    .await;
    assert!(!lines.is_empty() && lines.iter().all(|r| r == "apac"));
    // invoice_line is fenced on its own, not only through the join above.
    let owner = db.connect().await;
    let all_lines: i64 = owner
        .query_one("SELECT count(*) FROM invoice_line", &[])
        .await
        .unwrap()
        .get(0);
    let apac_lines: i64 = owner
        .query_one("SELECT count(*) FROM invoice_line l JOIN invoice i USING (invoice_id) WHERE i.region = 'apac'", &[])
        .await
        .unwrap()
        .get(0);
    let seen = regions_seen(
        &db,
        Some("finance"),
        Some("apac"),
        "SELECT 'x'::text FROM invoice_line",
    )
    .await;
    assert_eq!(seen.len() as i64, apac_lines);
    assert!(apac_lines < all_lines);

    // admin sees every region because its policy says so, not because it is the owner.
    let admin = regions_seen(
        &db,
        Some("admin"),
        Some("emea"),
        "SELECT DISTINCT region FROM customer ORDER BY 1",
    )
    .await;
    assert_eq!(admin, vec!["americas", "apac", "emea"]);
    // No role or region set, or an unknown role: nothing.
    assert!(regions_seen(&db, None, None, "SELECT region FROM customer")
        .await
        .is_empty());
    assert!(regions_seen(
        &db,
        Some("intern"),
        Some("emea"),
        "SELECT region FROM invoice"
    )
    .await
    .is_empty());
}

#[tokio::test]
async fn the_restricted_role_cannot_write_or_rewrite_its_context() {
    let db = TestDb::from_template().await;
    let client = db.connect_app().await;
    for sql in [
        "INSERT INTO artist (artist_id, name) VALUES (9999, 'x')",
        "UPDATE customer SET region = 'emea'",
        "DELETE FROM invoice_line",
        "CREATE TABLE public.sneaky (id int)",
        "SELECT set_config('quarry.role', 'admin', true)",
        "UPDATE quarry_meta.audit_log SET allowed = true",
        "DELETE FROM quarry_meta.audit_log",
        "INSERT INTO quarry_meta.roles (name, row_scope) VALUES ('root', 'all')",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        let code = err.code().map(|c| c.code().to_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
    // Appending to the audit log is the one write it has.
    client
        .batch_execute("INSERT INTO quarry_meta.audit_log (function, action, resource, allowed, reason) VALUES ('t', 't', 't', true, 't')")
        .await
        .unwrap();
    // Even the owner cannot rewrite history: the trigger refuses.
    let owner = db.connect().await;
    for sql in [
        "UPDATE quarry_meta.audit_log SET reason = 'x'",
        "DELETE FROM quarry_meta.audit_log",
        "TRUNCATE quarry_meta.audit_log",
    ] {
        let err = owner.batch_execute(sql).await.expect_err(sql);
        assert!(
            err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
            "{sql}: {err:?}"
        );
    }
}

#[tokio::test]
async fn authorize_answers_from_the_policy() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let catalog = token("cat", "catalog", "emea");
    let answer = authorize(&app, &catalog, "table:public.invoice").await;
    assert_eq!(
        answer,
        json!({"allow": false, "reason": "table:public.invoice", "role": "catalog", "region": "emea"})
    );
    assert_eq!(
        authorize(&app, &catalog, "table:public.track").await["allow"],
        true
    );

    let finance = token("fin", "finance", "emea");
    let answer = authorize(&app, &finance, "column:public.customer.email").await;
    assert_eq!(answer["allow"], false);
    assert_eq!(answer["reason"], "column:public.customer.email");
    assert_eq!(
        authorize(&app, &finance, "column:public.customer.country").await["allow"],
        true
    );
    assert_eq!(
        authorize(&app, &token("a", "analyst", "apac"), "table:public.invoice").await["allow"],
        true
    );
    assert_eq!(
        authorize(&app, &token("a", "admin", "emea"), "table:flights.flights").await["allow"],
        true
    );

    // Bad requests are problems, not decisions.
    let bad = http()
        .post(app.url("/v1/authorize"))
        .bearer_auth(&finance)
        .json(&json!({"action": "read", "resource": "table:invoice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["type"],
        "urn:quarry:problem:invalid-resource"
    );
    let missing = http()
        .post(app.url("/v1/authorize"))
        .bearer_auth(&finance)
        .json(&json!({"action": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 422);
    let write = authorize_raw(
        &app,
        &finance,
        json!({"action": "write", "resource": "table:public.invoice"}),
    )
    .await;
    assert_eq!(write["allow"], false);
    assert_eq!(write["reason"], "action-not-supported");

    // Every decision left an audit row.
    let owner = db.connect().await;
    let rows = owner
        .query(
            "SELECT allowed, reason FROM quarry_meta.audit_log WHERE function = 'auth' AND action = 'read' AND sub = 'cat' ORDER BY audit_id",
            &[],
        )
        .await
        .unwrap();
    let decisions: Vec<(bool, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        decisions,
        vec![
            (false, "table:public.invoice".to_owned()),
            (true, "granted".to_owned())
        ]
    );
}

async fn authorize_raw(app: &TestApp, bearer: &str, body: Value) -> Value {
    http()
        .post(app.url("/v1/authorize"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn whoami_describes_the_caller() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let response = http()
        .get(app.url("/v1/whoami"))
        .bearer_auth(token("alice", "finance", "emea"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["row_scope"], "own_region");
    let customer = me["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.customer")
        .unwrap();
    let columns: Vec<&str> = customer["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"country") && !columns.contains(&"email"),
        "{columns:?}"
    );
}

#[tokio::test]
async fn bad_tokens_get_the_right_status_problem_and_audit_row() {
    let db = TestDb::from_template().await;
    let app = app(
        &db,
        &[
            ("JWT_ISSUER", tokens::ISSUER),
            ("JWT_AUDIENCE", tokens::AUDIENCE),
        ],
    )
    .await;
    // The matrix is shared with the WASM component's test (functions/auth/wasm-test).
    let (valid, cases) = tokens::bad_token_cases();

    let owner = db.connect().await;
    for TokenCase {
        name: case,
        authorization: headers,
        status,
        slug,
    } in &cases
    {
        let before: i64 = owner
            .query_one("SELECT count(*) FROM quarry_meta.audit_log", &[])
            .await
            .unwrap()
            .get(0);
        let mut request = http()
            .get(app.url("/v1/whoami"))
            .header("x-request-id", format!("case-{}", case.replace(' ', "-")));
        for value in headers {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{case}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{case}"
        );
        if *status == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer error=\"invalid_token\"",
                "{case}"
            );
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["type"],
            format!("urn:quarry:problem:{slug}"),
            "{case}: {body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(
            !detail.contains(TEST_JWT_SECRET) && !detail.contains(&valid),
            "{case}: the detail leaks: {detail}"
        );

        let rows = owner
            .query("SELECT allowed, reason, request_id FROM quarry_meta.audit_log ORDER BY audit_id DESC LIMIT 1", &[])
            .await
            .unwrap();
        let after: i64 = owner
            .query_one("SELECT count(*) FROM quarry_meta.audit_log", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(after, before + 1, "{case}: exactly one audit row");
        let (allowed, reason, request_id): (bool, String, Option<String>) =
            (rows[0].get(0), rows[0].get(1), rows[0].get(2));
        assert!(!allowed, "{case}");

        assert_eq!(reason, *slug, "{case}");
        assert_eq!(
            request_id.as_deref(),
            Some(format!("case-{}", case.replace(' ', "-")).as_str())
        );
    }

    // The same app accepts the valid token.
    let ok = http()
        .get(app.url("/v1/whoami"))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn endpoints_can_be_fenced_by_region() {
    let db = TestDb::from_template().await;
    let owner = db.connect().await;
    owner.batch_execute("INSERT INTO quarry_meta.endpoint_regions (endpoint, region) VALUES ('/v1/whoami', 'emea')").await.unwrap();
    let app = app(&db, &[]).await;
    let apac = http()
        .get(app.url("/v1/whoami"))
        .bearer_auth(token("x", "analyst", "apac"))
        .send()
        .await
        .unwrap();
    assert_eq!(apac.status(), 403);
    assert_eq!(
        apac.json::<Value>().await.unwrap()["type"],
        "urn:quarry:problem:endpoint-region-fenced"
    );
    let emea = http()
        .get(app.url("/v1/whoami"))
        .bearer_auth(token("x", "analyst", "emea"))
        .send()
        .await
        .unwrap();
    assert_eq!(emea.status(), 200);
}

#[tokio::test]
async fn requests_fail_closed_when_the_audit_log_cannot_be_written() {
    let db = TestDb::from_template().await;
    let owner = db.connect().await;
    owner
        .batch_execute("REVOKE INSERT ON quarry_meta.audit_log FROM quarry_app")
        .await
        .unwrap();
    let app = app(&db, &[]).await;
    let response = http()
        .get(app.url("/v1/whoami"))
        .bearer_auth(token("x", "admin", "emea"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.json::<Value>().await.unwrap()["type"],
        "urn:quarry:problem:audit-unavailable"
    );
    // Unauthenticated requests fail closed too: their refusal must be recorded before it is sent.
    let anonymous = http().get(app.url("/v1/whoami")).send().await.unwrap();
    assert_eq!(anonymous.status(), 503);
}

#[tokio::test]
async fn rate_limits_per_sub_are_shared_across_instances_through_redis() {
    let db = TestDb::from_template().await;
    let owner = db.connect().await;
    owner
        .batch_execute(
            "UPDATE quarry_meta.roles SET rate_per_minute = 1, burst = 3 WHERE name = 'catalog'",
        )
        .await
        .unwrap();
    let prefix = format!("qt-shared-{}", uuid_like());
    let a = app(&db, &[("REDIS_KEY_PREFIX", &prefix)]).await;
    let b = app(&db, &[("REDIS_KEY_PREFIX", &prefix)]).await;
    let bearer = token("limited", "catalog", "emea");
    let get = |app: &TestApp| {
        http()
            .get(app.url("/v1/whoami"))
            .bearer_auth(&bearer)
            .send()
    };
    assert_eq!(get(&a).await.unwrap().status(), 200);
    assert_eq!(get(&b).await.unwrap().status(), 200);
    assert_eq!(get(&a).await.unwrap().status(), 200);
    let limited = get(&b).await.unwrap();
    assert_eq!(limited.status(), 429, "the two instances share one bucket");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        limited.json::<Value>().await.unwrap()["type"],
        "urn:quarry:problem:rate-limited"
    );
    // Another subject has its own bucket.
    assert_eq!(
        http()
            .get(a.url("/v1/whoami"))
            .bearer_auth(token("other", "catalog", "emea"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let rate_limited: i64 = owner
        .query_one("SELECT count(*) FROM quarry_meta.audit_log WHERE sub = 'limited' AND reason = 'rate-limited'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rate_limited, 1);
}

#[tokio::test]
async fn anonymous_clients_are_limited_per_ip_and_redis_down_falls_back_to_local_buckets() {
    let db = TestDb::from_template().await;
    // Redis on a port where nothing listens: the limiter must still limit, per instance.
    let dead_redis = format!(
        "redis://127.0.0.1:{}/",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let app = app(
        &db,
        &[
            ("RATE_LIMIT_ANON_PER_MINUTE", "3"),
            ("REDIS_URL", &dead_redis),
        ],
    )
    .await;
    // Authenticated requests do not spend the IP's budget (many users can share one address).
    let valid = token("ok", "admin", "emea");
    for _ in 0..6 {
        let status = http()
            .get(app.url("/v1/whoami"))
            .bearer_auth(&valid)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            http()
                .get(app.url("/v1/whoami"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    // Once failures have spent it, the address is refused before any token work.
    let blocked = http()
        .get(app.url("/v1/whoami"))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
}

fn uuid_like() -> String {
    format!("{:x}{:x}", now(), std::process::id())
}
