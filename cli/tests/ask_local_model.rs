//! `quarry dev` answering questions about Chinook with the real in-process model (the 0.5B
//! Qwen2.5-Coder from `scripts/assets.sh --llm small`), no key and no network: the route, the
//! generated SQL's result compared with gold SQL run as the same caller, and the SSE stream.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quarry_cli::metrics::same_result;
use quarry_shared::testing::{self, TestDb};
use serde_json::Value;

struct Dev {
    child: Child,
    port: u16,
}

impl Dev {
    fn start(db: &TestDb) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let models = std::env::var_os("QUARRY_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.quarry/models"))
            });
        let child = Command::new(env!("CARGO_BIN_EXE_quarry"))
            .arg("dev")
            .env("DATABASE_URL", &db.url)
            .env("APP_DATABASE_URL", db.app_url())
            .env("JWT_SECRET", testing::TEST_JWT_SECRET)
            .env(
                "REDIS_KEY_PREFIX",
                format!("qt-{}-{port}", std::process::id()),
            )
            .env(
                "CHROMA_COLLECTION",
                format!("qt_{}_{port}", std::process::id()),
            )
            .env("PORT", port.to_string())
            .env("LLM_PROVIDERS", "local")
            .env(
                "LOCAL_LLM_MODEL",
                models.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
            )
            .env_remove("GEMINI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let dev = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "quarry dev did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dev
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(400))
        .build()
        .unwrap()
}

async fn gold(http: &reqwest::Client, dev: &Dev, bearer: &str, sql: &str) -> Vec<Vec<Value>> {
    let body: Value = http
        .post(dev.url("/v1/sql"))
        .bearer_auth(bearer)
        .json(&serde_json::json!({"sql": sql}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::from_value(body["rows"].clone()).unwrap()
}

#[tokio::test]
async fn local_model_answers_chinook_questions_through_quarry_dev() {
    let db = TestDb::from_template().await;
    let dev = Dev::start(&db);
    let http = client();
    let admin = testing::token("ada", "admin", "emea");
    let cases = [
        (
            "How many customers do we have in each country?",
            "SELECT country, count(*) FROM customer GROUP BY country",
        ),
        ("How many tracks are there?", "SELECT count(*) FROM track"),
        (
            "How many employees are there?",
            "SELECT count(*) FROM employee",
        ),
    ];
    for (question, gold_sql) in cases {
        let response = http
            .post(dev.url("/v1/ask"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"question": question, "mode": "sql"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{question}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["route"], "sql", "{body}");
        assert!(
            body["answer"]
                .as_str()
                .is_some_and(|a| !a.trim().is_empty()),
            "{body}"
        );
        let rows: Vec<Vec<Value>> = serde_json::from_value(body["rows"].clone()).unwrap();
        let expected = gold(&http, &dev, &admin, gold_sql).await;
        assert!(
            same_result(&expected, &rows, false),
            "{question}\nsql: {}\nrows: {rows:?}\nexpected: {expected:?}",
            body["sql"]
        );
        assert!(
            body["attempts"].as_array().is_some_and(|a| !a.is_empty()),
            "{body}"
        );
        assert_eq!(body["cached"], false);
    }

    // The same question streamed: route, sql, rows, tokens, done.
    let response = http
        .post(dev.url("/v1/ask"))
        .bearer_auth(testing::token("bob", "analyst", "emea"))
        .header("accept", "text/event-stream")
        .json(&serde_json::json!({"question": "How many tracks are there?", "mode": "sql"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    for wanted in ["route", "sql", "rows", "token", "done"] {
        assert!(events.contains(&wanted), "no {wanted} event in {events:?}");
    }
    assert!(!events.contains(&"error"), "{text}");
}
