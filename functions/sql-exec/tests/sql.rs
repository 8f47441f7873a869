//! `/v1/sql` and `/v1/schema` against the real database: region fencing, grants, the guard's
//! refusals before the database, typed values, row caps, the cost limit, the timeout, the audit
//! trail, bad input, and sqlmap's PostgreSQL payloads leaving every table unchanged.

use std::time::{Duration, Instant};

use quarry_shared::testing::{self, spawn_app, token, TestApp, TestDb};
use serde_json::{json, Value};

async fn app(db: &TestDb, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app(
        testing::settings_for(db, overrides),
        vec![quarry_sql_exec::service()],
    )
    .await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn sql(app: &TestApp, bearer: &str, body: Value) -> (u16, Value) {
    let response = http()
        .post(app.url("/v1/sql"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn column(body: &Value, name: &str) -> Vec<Value> {
    let index = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == name)
        .unwrap();
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[index].clone())
        .collect()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.connect().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn analysts_see_only_their_region_without_filtering() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let (status, body) = sql(
        &app,
        &token("ana", "analyst", "emea"),
        json!({"sql": "SELECT * FROM customer"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let regions = column(&body, "region");
    assert_eq!(
        regions.len() as i64,
        count(&db, "SELECT count(*) FROM customer WHERE region = 'emea'").await
    );
    assert!(regions.iter().all(|r| r == "emea"));
    assert_eq!(body["row_count"], regions.len());
    assert_eq!(body["truncated"], false);
    assert!(body["plan_cost"].as_f64().unwrap() > 0.0);

    // Through joins and aggregates too: the totals are the region's.
    let (_, body) = sql(
        &app,
        &token("ana", "analyst", "apac"),
        json!({"sql": "SELECT sum(l.unit_price * l.quantity)::numeric(10,2) AS spent FROM invoice_line l JOIN invoice i USING (invoice_id)"}),
    )
    .await;
    let expected: String = db
        .connect()
        .await
        .query_one("SELECT sum(l.unit_price * l.quantity)::numeric(10,2)::text FROM invoice_line l JOIN invoice i USING (invoice_id) WHERE i.region = 'apac'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(body["rows"][0][0], expected);
}

#[tokio::test]
async fn grants_and_the_guard_refuse_before_the_database() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let (status, body) = sql(
        &app,
        &token("c", "catalog", "emea"),
        json!({"sql": "SELECT * FROM invoice"}),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("table:public.invoice")),
        "{body}"
    );
    assert_eq!(body["type"], "urn:quarry:problem:table-not-granted");

    let (status, body) = sql(
        &app,
        &token("f", "finance", "emea"),
        json!({"sql": "SELECT email FROM customer"}),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("column:customer.email")),
        "{body}"
    );

    let started = Instant::now();
    let (status, body) = sql(
        &app,
        &token("a", "admin", "emea"),
        json!({"sql": "SELECT pg_sleep(10)"}),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("function:pg_sleep")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // It never reached PostgreSQL: no statement mentioning pg_sleep ran in this database.
    let ran = count(
        &db,
        "SELECT count(*) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() AND s.query ILIKE '%pg_sleep%'",
    )
    .await;
    assert_eq!(ran, 0);

    for (statement, reason) in [
        (
            "WITH gone AS (DELETE FROM invoice_line RETURNING *) SELECT * FROM gone",
            "write",
        ),
        (
            "SELECT * FROM track; DELETE FROM track",
            "multiple-statements",
        ),
        ("SELECT * FROM pg_catalog.pg_authid", "system-catalog"),
        ("SELEC 1", "parse-error"),
        ("SELECT * FROM track FOR UPDATE", "write"),
    ] {
        let (status, body) = sql(
            &app,
            &token("a", "admin", "emea"),
            json!({"sql": statement}),
        )
        .await;
        assert!(
            status == 400 || status == 403,
            "{statement}: {status} {body}"
        );
        assert_eq!(body["reason"], reason, "{statement}: {body}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM invoice_line").await, 2240);

    // Each decision is in the audit log with the statement's hash.
    let rows = db
        .connect()
        .await
        .query("SELECT allowed, reason, statement_hash FROM quarry_meta.audit_log WHERE function = 'sql-exec' AND action = 'sql' ORDER BY audit_id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows
        .iter()
        .all(|r| !r.get::<_, bool>(0)
            && r.get::<_, Option<String>>(2).is_some_and(|h| h.len() == 64)));
}

#[tokio::test]
async fn values_come_back_typed_and_exact_with_bound_parameters() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let admin = token("a", "admin", "emea");
    let (status, body) = sql(
        &app,
        &admin,
        json!({
            "sql": "SELECT invoice_id, total, invoice_date, billing_state, '\\x00ff'::bytea AS raw, true AS flag,
                           $2::timestamptz AS at, 0.1::float8 AS f
                    FROM invoice WHERE invoice_id = $1",
            "params": [1, "2013-01-01 10:00:00+00"]
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let types: Vec<&str> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "int4",
            "numeric",
            "timestamp",
            "text",
            "bytea",
            "bool",
            "timestamptz",
            "float8"
        ]
    );
    assert_eq!(
        body["rows"][0],
        json!([
            1,
            "1.98",
            "2007-01-01T00:00:00",
            null,
            "AP8=",
            true,
            "2013-01-01T10:00:00Z",
            0.1
        ])
    );

    // A string parameter is text, bound not spliced: a quote in it is just a character.
    let (status, body) = sql(&app, &admin, json!({"sql": "SELECT count(*) AS n FROM artist WHERE name = $1", "params": ["x' OR '1'='1"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], 0);
    let (status, body) = sql(
        &app,
        &admin,
        json!({"sql": "SELECT name FROM artist WHERE artist_id = $1", "params": [1]}),
    )
    .await;
    assert_eq!((status, &body["rows"]), (200, &json!([["AC/DC"]])));
    let (status, body) = sql(
        &app,
        &admin,
        json!({"sql": "SELECT $1::int IS NULL AS missing", "params": [null]}),
    )
    .await;
    assert_eq!((status, &body["rows"]), (200, &json!([[true]])), "{body}");
}

#[tokio::test]
async fn rows_are_capped_and_truncation_is_reported() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[("SQL_MAX_ROWS", "50")]).await;
    let catalog = token("c", "catalog", "emea");
    let (_, body) = sql(
        &app,
        &catalog,
        json!({"sql": "SELECT track_id FROM track ORDER BY track_id", "max_rows": 5}),
    )
    .await;
    assert_eq!(body["row_count"], 5);
    assert_eq!(body["truncated"], true);
    assert_eq!(body["rows"], json!([[1], [2], [3], [4], [5]]));
    // A request cannot raise the server's limit.
    let (_, body) = sql(
        &app,
        &catalog,
        json!({"sql": "SELECT track_id FROM track", "max_rows": 100000}),
    )
    .await;
    assert_eq!(body["row_count"], 50);
    assert_eq!(body["truncated"], true);
    let (_, body) = sql(
        &app,
        &catalog,
        json!({"sql": "SELECT genre_id FROM genre", "max_rows": 25}),
    )
    .await;
    assert_eq!(
        (body["row_count"].as_u64(), body["truncated"].as_bool()),
        (Some(25), Some(false))
    );
}

#[tokio::test]
async fn costly_queries_are_refused_and_slow_ones_time_out() {
    let db = TestDb::from_template().await;
    // Room for a loaded CI machine to plan and to scan flights in time; the recursive count below
    // needs minutes, so it still hits the timeout.
    let app = app(&db, &[("SQL_STATEMENT_TIMEOUT_MS", "1500")]).await;
    let admin = token("a", "admin", "emea");
    // A full scan of the biggest table is allowed...
    let (status, body) = sql(
        &app,
        &admin,
        json!({"sql": "SELECT count(*) FROM flights.flights"}),
    )
    .await;
    assert_eq!(
        (status, &body["rows"]),
        (200, &json!([[336_776]])),
        "{body}"
    );
    // ...a runaway join is not, and the problem names the cost and the limit.
    let (status, body) = sql(
        &app,
        &admin,
        json!({"sql": "SELECT count(*) FROM flights.flights a, flights.flights b"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:quarry:problem:sql-too-costly");
    assert!(
        body["detail"].as_str().unwrap().contains("1000000"),
        "{body}"
    );
    let (status, body) = sql(
        &app,
        &admin,
        json!({"sql": "SELECT count(*) FROM generate_series(1, 1000000000)"}),
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:quarry:problem:sql-too-costly")),
        "{body}"
    );

    // Cheap to plan, slow to run: the statement timeout stops it.
    let started = Instant::now();
    let (status, body) = sql(
        &app,
        &admin,
        json!({"sql": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100000000) SELECT count(*) FROM r"}),
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:quarry:problem:sql-timeout")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn bad_requests_get_clear_problems() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let bearer = token("a", "admin", "emea");
    let post = |body: String| {
        http()
            .post(app.url("/v1/sql"))
            .bearer_auth(&bearer)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("{not json", 400, "invalid-json"),
        ("{}", 422, "invalid-body"),
        ("{\"sql\": 42}", 422, "invalid-body"),
        (
            "{\"sql\": \"SELECT 1\", \"params\": [{\"a\": 1}]}",
            400,
            "invalid-params",
        ),
        (
            "{\"sql\": \"SELECT 1\", \"max_rows\": 0}",
            400,
            "invalid-max-rows",
        ),
        (
            "{\"sql\": \"SELECT 1\", \"extra\": true}",
            422,
            "invalid-body",
        ),
        (
            "{\"sql\": \"SELECT no_such_column FROM track\"}",
            400,
            "sql-invalid",
        ),
        ("{\"sql\": \"SELECT 1/0\"}", 422, "sql-data-error"),
        ("{\"sql\": \"\"}", 400, "sql-invalid"),
    ];
    for (body, status, kind) in cases {
        let response = post(body.to_owned()).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("urn:quarry:problem:{kind}"),
            "{body}: {problem}"
        );
    }
    let unauthenticated = http()
        .post(app.url("/v1/sql"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn schema_shows_only_what_the_role_may_read() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let get = |bearer: String| http().get(app.url("/v1/schema")).bearer_auth(bearer).send();
    let finance: Value = get(token("f", "finance", "emea"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = finance["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["customer", "invoice", "invoice_line"]);
    let customer = &finance["tables"][0];
    let columns: Vec<&str> = customer["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"country") && !columns.contains(&"email") && !columns.contains(&"phone")
    );
    assert_eq!(customer["primary_key"], json!(["customer_id"]));
    // invoice → customer is shown; invoice_line → track is not (track is not readable).
    let invoice_line = &finance["tables"][2];
    let refs: Vec<&str> = invoice_line["foreign_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["references"].as_str().unwrap())
        .collect();
    assert_eq!(refs, vec!["public.invoice"]);

    let catalog: Value = get(token("c", "catalog", "emea"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tables = catalog["tables"].as_array().unwrap();
    assert!(tables
        .iter()
        .all(|t| t["name"] != "invoice" && t["name"] != "customer"));
    let genre = tables.iter().find(|t| t["name"] == "genre").unwrap();
    assert_eq!(
        genre["comment"],
        "Music genres such as Rock, Jazz or Metal."
    );
    let name = genre["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "name")
        .unwrap();
    assert!(!name["samples"].as_array().unwrap().is_empty(), "{name}");
    assert!(name["comment"].as_str().is_some());

    // `public.*` covers the views extensions put in `public`; they are not shown.
    let admin: Value = get(token("a", "admin", "emea"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = admin["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"track") && names.contains(&"flights"),
        "{names:?}"
    );
    for hidden in [
        "pg_stat_statements",
        "pg_stat_statements_info",
        "hypopg_list_indexes",
    ] {
        assert!(!names.contains(&hidden), "{hidden} in {names:?}");
    }
}

/// A checksum of every demo table, as the owner sees it.
async fn checksums(db: &TestDb) -> Vec<(String, String)> {
    let client = db.connect().await;
    let mut out = Vec::new();
    for table in quarry_shared::demo::TABLES
        .iter()
        .chain(&["quarry_meta.roles", "quarry_meta.role_tables"])
    {
        let row = client.query_one(&format!("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"), &[]).await.unwrap();
        out.push(((*table).to_owned(), row.get(0)));
    }
    out
}

#[tokio::test]
async fn sqlmap_payloads_are_refused_or_harmless() {
    let db = TestDb::from_template().await;
    // An attacker sends many requests; the rate limit is not what this test is about.
    db.connect()
        .await
        .batch_execute("UPDATE quarry_meta.roles SET rate_per_minute = 100000, burst = 10000")
        .await
        .unwrap();
    let before = checksums(&db).await;
    let app = app(
        &db,
        &[
            ("SQL_STATEMENT_TIMEOUT_MS", "1000"),
            ("RATE_LIMIT_ANON_PER_MINUTE", "1000000"),
        ],
    )
    .await;
    let payloads = include_str!("../../../shared/tests/fixtures/sql/sqlmap_postgres.txt");
    let bearer = token("attacker", "analyst", "emea");
    let (mut refused, mut ran) = (0, 0);
    for payload in payloads.lines().filter(|l| !l.trim().is_empty()) {
        let started = Instant::now();
        let (status, body) = sql(&app, &bearer, json!({"sql": payload})).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{payload}: took {:?}",
            started.elapsed()
        );
        match status {
            200 => ran += 1,
            400 | 403 | 422 => refused += 1,
            other => panic!("{payload}: unexpected {other} {body}"),
        }
    }
    assert!(
        refused > 0 && refused + ran == payloads.lines().filter(|l| !l.trim().is_empty()).count()
    );
    assert_eq!(checksums(&db).await, before, "a payload changed data");
    eprintln!("sqlmap payloads: {refused} refused, {ran} ran harmlessly");
}

#[tokio::test]
async fn long_and_deep_queries_are_handled_without_harm() {
    let db = TestDb::from_template().await;
    let app = app(&db, &[]).await;
    let bearer = token("c", "catalog", "emea");
    // Over the inline limit: guarded on the blocking pool, then run.
    let ids: Vec<String> = (1..=1500).map(|i| i.to_string()).collect();
    let long = format!(
        "SELECT count(*) FROM track WHERE track_id IN ({})",
        ids.join(", ")
    );
    assert!(long.len() > 4096);
    let (status, body) = sql(&app, &bearer, json!({"sql": long})).await;
    assert_eq!((status, &body["rows"]), (200, &json!([[1500]])), "{body}");
    // Pathological nesting: refused, and the server is still there.
    let deep = format!("SELECT {}1{}", "(".repeat(20_000), ")".repeat(20_000));
    let (status, body) = sql(&app, &bearer, json!({"sql": deep})).await;
    assert!(status == 400, "{status} {body}");
    assert!(
        body["reason"] == "too-deep" || body["reason"] == "parse-error",
        "{body}"
    );
    let huge = format!("SELECT 1 {}", " ".repeat(200_000));
    let (status, body) = sql(&app, &bearer, json!({"sql": huge})).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("too-long")),
        "{body}"
    );
    let (status, _) = sql(&app, &bearer, json!({"sql": "SELECT 1 AS alive"})).await;
    assert_eq!(status, 200);
}
