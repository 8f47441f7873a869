//! The advisor on a real workload: statements run through `/v1/sql` on `flights.flights` with
//! predicates on unindexed columns; the advisor proposes those indexes with their improvement,
//! refreshes rather than duplicates its rows, creates the indexes only for an admin asking with
//! `apply`, and afterwards proposes nothing for those statements. Applying them turns sequential
//! scans into index scans, and the measured speed-up is printed.

use std::time::{Duration, Instant};

use quarry_shared::testing::{self, spawn_app, token, TestApp, TestDb};
use serde_json::{json, Value};

const BY_TAILNUM: &str = "SELECT flight_id, dep_delay FROM flights.flights WHERE tailnum = $1";
const BY_DAY: &str =
    "SELECT count(*) FROM flights.flights WHERE origin = $1 AND month = $2 AND day = $3";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn post(app: &TestApp, path: &str, bearer: &str, body: Value) -> (u16, Value) {
    let response = http()
        .post(app.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn workload(app: &TestApp, admin: &str) {
    for tailnum in ["N14228", "N24211", "N619AA", "N804JB", "N668DN"] {
        let (status, body) = post(
            app,
            "/v1/sql",
            admin,
            json!({"sql": BY_TAILNUM, "params": [tailnum]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    for (origin, month, day) in [
        ("JFK", 1, 1),
        ("LGA", 2, 14),
        ("EWR", 7, 4),
        ("JFK", 12, 24),
    ] {
        let (status, body) = post(
            app,
            "/v1/sql",
            admin,
            json!({"sql": BY_DAY, "params": [origin, month, day]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn indexes(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM pg_indexes WHERE schemaname = 'flights' AND indexname LIKE 'qa\\_%'", &[])
        .await
        .unwrap()
        .get(0)
}

fn proposes(report: &Value, columns: &[&str]) -> bool {
    report["advice"].as_array().unwrap().iter().any(|a| {
        a["table_name"] == "flights"
            && a["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect::<Vec<_>>()
                == columns
    })
}

/// Whether any advice touches `column` of flights.flights.
fn touches(report: &Value, column: &str) -> bool {
    report["advice"].as_array().unwrap().iter().any(|a| {
        a["table_name"] == "flights" && a["columns"].as_array().unwrap().iter().any(|c| c == column)
    })
}

/// Median wall time of `sql` over runs, and its plan, measured as the owner (no sql-exec wrapper).
async fn measure(
    db: &TestDb,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> (Duration, String) {
    let client = db.connect().await;
    let statement = client.prepare(sql).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        client.query(&statement, params).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let explain = format!("EXPLAIN {sql}");
    let plan: Vec<String> = client
        .query(&explain, params)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (times[times.len() / 2], plan.join("\n"))
}

#[tokio::test]
async fn the_advisor_proposes_proves_and_applies_indexes_for_the_workload() {
    let db = TestDb::from_template().await;
    let app = spawn_app(
        testing::settings_for(&db, &[]),
        vec![quarry_sql_exec::service(), quarry_index_advisor::service()],
    )
    .await;
    let admin = token("ops", "admin", "emea");
    workload(&app, &admin).await;

    // Not for other roles.
    let (status, _) = post(
        &app,
        "/v1/advice/run",
        &token("ana", "analyst", "emea"),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);

    let (status, first) = post(&app, "/v1/advice/run", &admin, json!({})).await;
    assert_eq!(status, 200, "{first}");
    assert!(first["statements"].as_u64().unwrap() >= 2, "{first}");
    assert!(
        proposes(&first, &["tailnum"]),
        "tailnum index missing: {first}"
    );
    assert!(
        touches(&first, "origin") && touches(&first, "month") && touches(&first, "day"),
        "origin/month/day index missing: {first}"
    );
    for advice in first["advice"].as_array().unwrap() {
        assert!(
            advice["improvement_pct"].as_f64().unwrap() > 50.0,
            "{advice}"
        );
        assert!(advice["estimated_size_bytes"].as_i64().unwrap() > 0);
        assert!(advice["create_statement"]
            .as_str()
            .unwrap()
            .starts_with("CREATE INDEX CONCURRENTLY"));
        assert!(!advice["queryids"].as_array().unwrap().is_empty());
    }
    eprintln!(
        "advice: {}",
        serde_json::to_string_pretty(&first["advice"]).unwrap()
    );
    // Nothing was created.
    let owner = db.connect().await;
    assert_eq!(indexes(&owner).await, 0);
    let rows_after_first: i64 = owner
        .query_one("SELECT count(*) FROM quarry_meta.index_advice", &[])
        .await
        .unwrap()
        .get(0);

    // The same workload again: the rows are refreshed, not duplicated.
    workload(&app, &admin).await;
    let (status, second) = post(&app, "/v1/advice/run", &admin, json!({})).await;
    assert_eq!(status, 200, "{second}");
    let rows_after_second: i64 = owner
        .query_one("SELECT count(*) FROM quarry_meta.index_advice", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows_after_first, rows_after_second);
    let refreshed: i64 = owner
        .query_one(
            "SELECT count(*) FROM quarry_meta.index_advice WHERE last_seen > first_seen",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(refreshed > 0);

    // Before: sequential scans.
    let (tail_before, tail_plan) = measure(&db, BY_TAILNUM, &[&"N14228"]).await;
    let (day_before, day_plan) = measure(&db, BY_DAY, &[&"JFK", &1i32, &1i32]).await;
    assert!(tail_plan.contains("Seq Scan"), "{tail_plan}");
    assert!(day_plan.contains("Seq Scan"), "{day_plan}");

    // Apply, as admin.
    let (status, applied) = post(&app, "/v1/advice/run", &admin, json!({"apply": true})).await;
    assert_eq!(status, 200, "{applied}");
    assert!(!applied["applied"].as_array().unwrap().is_empty());
    assert!(indexes(&owner).await >= 2);
    let audited: i64 = owner
        .query_one(
            "SELECT count(*) FROM quarry_meta.audit_log WHERE action = 'create-index' AND allowed",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        audited as usize,
        applied["applied"].as_array().unwrap().len()
    );
    owner
        .batch_execute("ANALYZE flights.flights")
        .await
        .unwrap();

    // After: index scans, and faster.
    let (tail_after, tail_plan) = measure(&db, BY_TAILNUM, &[&"N14228"]).await;
    let (day_after, day_plan) = measure(&db, BY_DAY, &[&"JFK", &1i32, &1i32]).await;
    assert!(!tail_plan.contains("Seq Scan"), "{tail_plan}");
    assert!(!day_plan.contains("Seq Scan"), "{day_plan}");
    eprintln!(
        "speed-up: by tailnum {tail_before:?} -> {tail_after:?} ({:.0}x); by origin/month/day {day_before:?} -> {day_after:?} ({:.0}x)",
        tail_before.as_secs_f64() / tail_after.as_secs_f64(),
        day_before.as_secs_f64() / day_after.as_secs_f64()
    );
    assert!(tail_after < tail_before && day_after < day_before);

    // With the indexes in place, nothing more for those statements.
    workload(&app, &admin).await;
    let (status, last) = post(&app, "/v1/advice/run", &admin, json!({})).await;
    assert_eq!(status, 200, "{last}");
    assert!(
        !proposes(&last, &["tailnum"]) && !touches(&last, "origin"),
        "{last}"
    );
    let applied_rows: i64 = owner
        .query_one(
            "SELECT count(*) FROM quarry_meta.index_advice WHERE status = 'applied'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(applied_rows >= 2);

    // The stored advice is readable by the admin only.
    let list: Value = http()
        .get(app.url("/v1/advice"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["status"] == "applied"));
    let denied = http()
        .get(app.url("/v1/advice"))
        .bearer_auth(token("c", "catalog", "emea"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
}

#[tokio::test]
async fn bad_options_are_refused() {
    let db = TestDb::from_template().await;
    let app = spawn_app(
        testing::settings_for(&db, &[]),
        vec![quarry_index_advisor::service()],
    )
    .await;
    let admin = token("ops", "admin", "emea");
    for body in [
        json!({"top": 0}),
        json!({"min_calls": 0}),
        json!({"budget_secs": 100000}),
    ] {
        let (status, problem) = post(&app, "/v1/advice/run", &admin, body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["type"], "urn:quarry:problem:invalid-options");
    }
    let (status, _) = post(&app, "/v1/advice/run", &admin, json!({"apply": "yes"})).await;
    assert_eq!(status, 422);
}
