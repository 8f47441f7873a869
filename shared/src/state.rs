//! [`AppState`]: what every handler can reach. Cheap to clone (everything inside is shared).

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::db::{self, DbError};
use crate::governance::{Governance, GovernanceError};
use crate::probe::{ChromaProbe, PostgresProbe, Probe, RedisProbe};
use crate::service::Dependency;

/// Shared state of a running server (one function, or all of them under `quarry dev`).
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// The PostgreSQL pool (owner role until Governance adds the restricted one).
    pub db: deadpool_postgres::Pool,
    /// The Redis client, when `REDIS_URL` is set.
    pub redis: Option<redis::Client>,
    /// The outbound HTTP client (Chroma, peers, LLM providers), with default deadlines.
    pub http: reqwest::Client,
    /// What `/health` probes.
    pub probes: Arc<[Arc<dyn Probe>]>,
    /// Token verification, policy, audit and rate limits.
    pub governance: Arc<Governance>,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A configured dependency is missing or unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database settings are unusable.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis settings are unusable.
    #[error("REDIS_URL cannot be used: {0}")]
    Redis(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    /// Governance could not be set up.
    #[error(transparent)]
    Governance(#[from] GovernanceError),
}

impl AppState {
    /// Builds the state for a server whose functions depend on `deps` (deduplicated by the caller
    /// or not; each is probed once). Nothing connects yet: a dependency that is down at start-up
    /// shows in `/health` rather than stopping the process.
    ///
    /// # Errors
    /// A missing URL for a declared dependency, or an unusable one.
    pub fn build(
        settings: Settings,
        service: &str,
        deps: &[Dependency],
    ) -> Result<Self, StateError> {
        let mut deps = deps.to_vec();
        deps.sort();
        deps.dedup();
        // Every function reads its policy from PostgreSQL, so the pool is always needed.
        settings.require(service, &[Dependency::Postgres])?;
        settings.require(service, &deps)?;
        let db_url = settings.database_url().unwrap_or_default().to_owned();
        let db = db::pool(&db_url, settings.pg_pool_size)?;
        let redis = settings
            .redis_url
            .as_ref()
            .map(|url| {
                redis::Client::open(url.expose_secret())
                    .map_err(|_| StateError::Redis("not a valid Redis URL".to_owned()))
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("quarry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StateError::Http(e.to_string()))?;

        let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
        for dep in &deps {
            match dep {
                Dependency::Postgres => probes.push(Arc::new(PostgresProbe(db.clone()))),
                Dependency::Redis => {
                    if let Some(client) = &redis {
                        probes.push(Arc::new(RedisProbe(client.clone())));
                    }
                }
                Dependency::Chroma => {
                    if let Some(url) = &settings.chroma_url {
                        let probe = ChromaProbe::new(http.clone(), url).map_err(|_| {
                            crate::config::ConfigError {
                                var: "CHROMA_URL",
                                message: "is not a base URL".to_owned(),
                            }
                        })?;
                        probes.push(Arc::new(probe));
                    }
                }
            }
        }
        let governance = Arc::new(Governance::build(&settings, service, &http, redis.clone())?);
        Ok(Self {
            settings: Arc::new(settings),
            db,
            redis,
            http,
            probes: probes.into(),
            governance,
        })
    }
}
