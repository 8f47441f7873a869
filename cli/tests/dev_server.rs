//! `quarry dev`'s router over real HTTP, with every function mounted, against the real stack:
//! health, metrics, request ids, problem+json for every error, body limits, CORS, OpenAPI, and a
//! dependency that dies and comes back.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quarry_shared::testing::{self, spawn_app, TestApp, TestDb};
use serde_json::Value;

async fn app_with(overrides: &[(&str, &str)]) -> (TestApp, TestDb) {
    let db = TestDb::from_template().await;
    let app = spawn_app(
        testing::settings_for(&db, overrides),
        quarry_cli::services(),
    )
    .await;
    (app, db)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn problem(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("urn:quarry:problem:{kind}"), "{body}");
    assert_eq!(body["status"], status);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test]
async fn health_checks_every_real_dependency() {
    let (app, _db) = app_with(&[]).await;
    let response = client().get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    for dep in ["postgres", "redis", "chroma"] {
        assert_eq!(body["checks"][dep]["status"], "ok", "{dep}: {body}");
        assert!(body["checks"][dep]["latency_ms"].as_f64().is_some());
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let (app, _db) = app_with(&[]).await;
    let http = client();
    for _ in 0..3 {
        http.get(app.url("/health")).send().await.unwrap();
    }
    http.get(app.url("/no/such/route")).send().await.unwrap();
    let response = http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let health_line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/health\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no counter for /health in:\n{text}"));
    let n: f64 = health_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3.0, "{health_line}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "latency histogram missing"
    );
    assert!(text
        .lines()
        .any(|l| l.starts_with("http_requests_total{") && l.contains("status=\"404\"")));
}

#[tokio::test]
async fn request_ids_are_echoed_or_minted() {
    let (app, _db) = app_with(&[]).await;
    let http = client();
    let response = http
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");

    let minted = http.get(app.url("/health")).send().await.unwrap();
    let id = minted.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    // An id that could forge log lines is replaced, not echoed.
    let hostile = http
        .get(app.url("/health"))
        .header("x-request-id", "x y")
        .send()
        .await
        .unwrap();
    assert_ne!(hostile.headers()["x-request-id"], "x y");
    let long = "a".repeat(500);
    let replaced = http
        .get(app.url("/health"))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"].to_str().unwrap(), long);

    // Error bodies carry the same id as the header.
    let missing = http
        .get(app.url("/nope"))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    let body = problem(missing, 404, "not-found").await;
    assert_eq!(body["request_id"], "trace-me");
}

#[tokio::test]
async fn every_error_is_problem_json() {
    let (app, _db) = app_with(&[("MAX_BODY_BYTES", "4096")]).await;
    let http = client();
    problem(
        http.get(app.url("/v1/nothing-here")).send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let wrong_method = http.delete(app.url("/health")).send().await.unwrap();
    assert!(wrong_method.headers().contains_key("allow"));
    problem(wrong_method, 405, "method-not-allowed").await;
    let big = http
        .post(app.url("/health"))
        .body(vec![b'x'; 10_000])
        .send()
        .await
        .unwrap();
    problem(big, 413, "payload-too-large").await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins_and_never_wildcards_credentials() {
    let (app, _db) = app_with(&[
        ("CORS_ALLOWED_ORIGINS", "https://app.example"),
        ("CORS_ALLOW_CREDENTIALS", "true"),
    ])
    .await;
    let http = client();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, app.url("/health"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));

    // Without configuration there are no CORS headers at all.
    let (plain, _db2) = app_with(&[]).await;
    let response = http
        .get(plain.url("/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn openapi_describes_the_served_endpoints() {
    let (app, _db) = app_with(&[]).await;
    let doc: Value = client()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in ["/health", "/metrics", "/v1/whoami"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/v1/authorize"]["post"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["HealthReport"].is_object());
}

/// A Redis server of this test's own, on a port of its own, that the test can kill.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn health_of(app: &TestApp) -> (u16, Value) {
    let response = client().get(app.url("/health")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn health_turns_503_when_a_dependency_dies_and_recovers_when_it_is_back() {
    let mut redis = OwnRedis::start(free_port());
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let (app, _db) = app_with(&[("REDIS_URL", &url), ("HEALTH_TIMEOUT_MS", "500")]).await;
    assert_eq!(health_of(&app).await.0, 200);

    redis.kill();
    let started = Instant::now();
    let (status, body) = health_of(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["redis"]["status"], "error");
    assert_eq!(
        body["checks"]["postgres"]["status"], "ok",
        "only the dead dependency is named"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "health must answer quickly when a dependency is down"
    );
    // The rest of the app keeps serving.
    assert_eq!(
        client()
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let port = redis.port;
    drop(redis);
    let _back = OwnRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = health_of(&app).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "health did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn health_notices_an_unreachable_database_quickly() {
    // A port where nothing listens stands in for a database that is down.
    let url = format!("postgres://quarry:quarry@127.0.0.1:{}/quarry", free_port());
    let app = spawn_app(
        testing::settings(&url, &[("HEALTH_TIMEOUT_MS", "500")]),
        quarry_cli::services(),
    )
    .await;
    let started = Instant::now();
    let (status, body) = health_of(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["postgres"]["status"], "error");
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = body.to_string();
    assert!(
        !text.contains("quarry:quarry"),
        "no credentials in health output: {text}"
    );
}

#[tokio::test]
async fn sql_through_quarry_dev_is_governed() {
    let (app, _db) = app_with(&[]).await;
    let http = client();
    let run = |bearer: String, sql: &'static str| {
        http.post(app.url("/v1/sql"))
            .bearer_auth(bearer)
            .json(&serde_json::json!({"sql": sql}))
            .send()
    };
    let emea = run(
        testing::token("ana", "analyst", "emea"),
        "SELECT region FROM customer",
    )
    .await
    .unwrap();
    assert_eq!(emea.status(), 200);
    let body: Value = emea.json().await.unwrap();
    let rows = body["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r[0] == "emea"),
        "{body}"
    );

    let catalog = run(
        testing::token("cat", "catalog", "emea"),
        "SELECT * FROM invoice",
    )
    .await
    .unwrap();
    assert_eq!(catalog.status(), 403);
    let finance = run(
        testing::token("fin", "finance", "emea"),
        "SELECT email FROM customer",
    )
    .await
    .unwrap();
    assert_eq!(finance.status(), 403);
    let started = Instant::now();
    let sleep = run(
        testing::token("adm", "admin", "emea"),
        "SELECT pg_sleep(10)",
    )
    .await
    .unwrap();
    assert_eq!(sleep.status(), 403);
    assert_eq!(
        sleep.json::<Value>().await.unwrap()["reason"],
        "function:pg_sleep"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
