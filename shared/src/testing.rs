//! Test support (feature `test-support`): a fresh database per test and an app on port 0.
//!
//! Tests read the stack's addresses from the environment that `make test` sets (`DATABASE_URL`,
//! `REDIS_URL`, `CHROMA_URL`). A test database is a copy of the template that `make test` prepares
//! (`QUARRY_TEST_TEMPLATE`, default `quarry_template`: migrated, demo data loaded), so each test
//! starts from the same known state and none sees another's writes.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::config::Settings;
use crate::http::server::{self, Server};
use crate::service::{Dependency, Service};
use crate::state::AppState;

pub mod llm_server;
pub mod tokens;

/// Environment variable naming the template database.
pub const TEMPLATE_VAR: &str = "QUARRY_TEST_TEMPLATE";

/// The HS256 secret test apps verify with.
pub const TEST_JWT_SECRET: &str = "quarry-test-secret-0123456789abcdef0123456789";

/// A valid token for the test apps, expiring in an hour.
pub fn token(sub: &str, role: &str, region: &str) -> String {
    let now = now();
    let claims = crate::auth::TokenClaims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        region: region.to_owned(),
        iat: now,
        exp: now + 3600,
        nbf: None,
        iss: None,
        aud: None,
    };
    crate::auth::mint_hs256(TEST_JWT_SECRET.as_bytes(), &claims)
        .unwrap_or_else(|e| panic!("mint: {e}"))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn admin_url() -> String {
    env("DATABASE_URL").unwrap_or_else(|| {
        panic!("DATABASE_URL must be set for integration tests (run them with `make test`)")
    })
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let mut parsed =
        url::Url::parse(url).unwrap_or_else(|e| panic!("DATABASE_URL is not a URL: {e}"));
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
    /// The database's name (`qt_<uuid>`).
    pub name: String,
    /// A URL for the owner role.
    pub url: String,
}

impl TestDb {
    /// A copy of the template database (migrated, demo data loaded).
    pub async fn from_template() -> Self {
        let template = env(TEMPLATE_VAR).unwrap_or_else(|| "quarry_template".to_owned());
        Self::create(Some(&template)).await
    }

    /// An empty database (for migrator tests).
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let admin = admin_url();
        let name = format!("qt_{}", uuid::Uuid::new_v4().simple());
        let client = crate::db::connect_once(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach DATABASE_URL: {e:#}"));
        let sql = match template {
            // FILE_COPY: copying files beats WAL-logging every block of a 100 MB template.
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE \"{t}\" STRATEGY FILE_COPY"),
            None => format!("CREATE DATABASE {name} TEMPLATE template0"),
        };
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database ({sql}): {e:#}"));
        let url = with_database(&admin, &name);
        Self { name, url }
    }

    /// The restricted `quarry_app` role's URL for this database (password from `APP_DATABASE_URL`).
    pub fn app_url(&self) -> String {
        let app = env("APP_DATABASE_URL")
            .unwrap_or_else(|| panic!("APP_DATABASE_URL must be set for integration tests"));
        with_database(&app, &self.name)
    }

    /// A single connection to this database as the restricted `quarry_app` role.
    pub async fn connect_app(&self) -> tokio_postgres::Client {
        crate::db::connect_once(&self.app_url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect as quarry_app to {}: {e:#}", self.name))
    }

    /// A single connection to this database.
    pub async fn connect(&self) -> tokio_postgres::Client {
        crate::db::connect_once(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e:#}", self.name))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which must not be blocked on; a short-lived thread
        // with its own runtime does the async work.
        let name = self.name.clone();
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = crate::db::connect_once(&admin).await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Settings for a test against `db`: the stack from the environment, port 0, the test JWT secret,
/// then `overrides`.
pub fn settings_for(db: &TestDb, overrides: &[(&str, &str)]) -> Settings {
    let app = db.app_url();
    let mut all: Vec<(&str, &str)> = vec![("APP_DATABASE_URL", &app)];
    all.extend_from_slice(overrides);
    settings(&db.url, &all)
}

/// Settings for a test: the stack from the environment, port 0, the test JWT secret, then
/// `overrides` (which must include `APP_DATABASE_URL` unless the environment's will do).
pub fn settings(database_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::new();
    for name in [
        "REDIS_URL",
        "CHROMA_URL",
        "QUARRY_DATA_DIR",
        "QUARRY_MODELS_DIR",
    ] {
        if let Some(v) = env(name) {
            vars.insert(name.to_owned(), v);
        }
    }
    vars.insert("DATABASE_URL".to_owned(), database_url.to_owned());
    vars.insert("PORT".to_owned(), "0".to_owned());
    vars.insert("JWT_SECRET".to_owned(), TEST_JWT_SECRET.to_owned());
    // Tests share one Redis; their rate-limit buckets must not.
    vars.insert(
        "REDIS_KEY_PREFIX".to_owned(),
        format!("qt-{}", uuid::Uuid::new_v4().simple()),
    );
    // Nor their Chroma collections (scripts/test.sh drops `qt_*` collections of earlier runs).
    vars.insert(
        "CHROMA_COLLECTION".to_owned(),
        format!("qt_{}", uuid::Uuid::new_v4().simple()),
    );
    if let Some(app) = env("APP_DATABASE_URL") {
        vars.insert("APP_DATABASE_URL".to_owned(), app);
    }
    vars.insert(
        "RUST_LOG".to_owned(),
        env("TEST_LOG").unwrap_or_else(|| "off".to_owned()),
    );
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::from_lookup(|k| vars.get(k).cloned())
        .unwrap_or_else(|e| panic!("test settings: {e}"));
    crate::telemetry::init(&settings);
    settings
}

/// A running app on a random local port, stopped when dropped.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Its state (pool, settings), for tests that look behind the HTTP surface.
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts `services` with `settings` on port 0.
pub async fn spawn_app(settings: Settings, services: Vec<Service>) -> TestApp {
    let deps: Vec<Dependency> = services
        .iter()
        .flat_map(|s| s.dependencies.iter().copied())
        .collect();
    let state =
        AppState::build(settings, "test", &deps).unwrap_or_else(|e| panic!("test state: {e}"));
    let (router, _) = server::app(state.clone(), &services);
    let server = Server::bind(&state.settings, router)
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = server
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run_until_stopped(async move {
                let _ = rx.await;
            })
            .await;
    });
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        state,
        shutdown: Some(tx),
        task: Some(task),
    }
}
