//! Configuration: one typed struct, read once from the environment at start-up.
//!
//! Nothing else in Quarry reads environment variables. [`Settings::from_env`] loads `.env` (when
//! present) and then the process environment; [`Settings::from_lookup`] takes any lookup function so
//! validation is unit-tested without touching the real environment. Every failure names the variable
//! and says what a valid value looks like; secrets are held in [`SecretString`] and never printed.
//! [`edge::EdgeSettings`] adds what the WASM `auth` component is given instead of a database and a
//! network (the policy document, an inline JWKS).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

#[cfg(feature = "server")]
use crate::service::Dependency;

pub mod ask;
pub mod edge;
pub mod llm;

/// A configuration value that could not be used; names the variable so the operator can fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error in {var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong and what a valid value looks like (never the secret value itself).
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production, Cloud Logging).
    Json,
    /// Human-readable lines (local development).
    Pretty,
}

/// CORS policy: which browser origins may call Quarry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all: browsers on other origins are refused (the default).
    None,
    /// Any origin (`*`); only allowed without credentials.
    Any,
    /// An explicit list of origins such as `https://app.example.com`.
    List(Vec<String>),
}

/// Every setting Quarry reads, validated.
#[derive(Clone)]
pub struct Settings {
    /// Address to bind (`HOST`, default `127.0.0.1`; containers use `0.0.0.0`).
    pub host: IpAddr,
    /// Port to bind (`PORT`, default 8080; Cloud Run sets it).
    pub port: u16,
    /// PostgreSQL connection URL of the owner role (`DATABASE_URL`).
    pub database_url: Option<SecretString>,
    /// Redis URL (`REDIS_URL`).
    pub redis_url: Option<SecretString>,
    /// Chroma server base URL (`CHROMA_URL`).
    pub chroma_url: Option<url::Url>,
    /// Maximum connections in the PostgreSQL pool (`PG_POOL_SIZE`, default 16).
    pub pg_pool_size: usize,
    /// Allowed CORS origins (`CORS_ALLOWED_ORIGINS`: empty, `*`, or a comma-separated list).
    pub cors_origins: CorsOrigins,
    /// Whether CORS responses allow credentials (`CORS_ALLOW_CREDENTIALS`, default false).
    pub cors_allow_credentials: bool,
    /// Largest request body accepted, in bytes (`MAX_BODY_BYTES`, default 1 MiB).
    pub max_body_bytes: usize,
    /// Deadline for a whole request (`REQUEST_TIMEOUT_SECS`, default 30).
    pub request_timeout: Duration,
    /// Deadline for each dependency probe of `/health` (`HEALTH_TIMEOUT_MS`, default 1500).
    pub health_timeout: Duration,
    /// Log format (`LOG_FORMAT`: `json` or `pretty`, default `json`).
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax (`RUST_LOG`, default `info,tokio_postgres=warn,llama-cpp-2=warn`: llama.cpp reports every tensor it loads at info).
    pub log_filter: String,
    /// Folder holding the downloaded demo data (`QUARRY_DATA_DIR`, default `.quarry/data`).
    pub data_dir: PathBuf,
    /// PostgreSQL URL of the restricted application role `quarry_app` (`APP_DATABASE_URL`): SELECT
    /// on the data, INSERT on the audit log, row-level security applies to it.
    pub app_database_url: Option<SecretString>,
    /// HS256 secret for development tokens (`JWT_SECRET`, at least 32 bytes).
    pub jwt_secret: Option<SecretString>,
    /// JWKS URL for RS256/ES256 tokens (`JWT_JWKS_URL`).
    pub jwt_jwks_url: Option<url::Url>,
    /// Required `iss`, when set (`JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// Required `aud`, when set (`JWT_AUDIENCE`).
    pub jwt_audience: Option<String>,
    /// Clock leeway for `exp`/`nbf`/`iat` (`JWT_LEEWAY_SECS`, default 30).
    pub jwt_leeway: Duration,
    /// How long a loaded policy is used before it is re-read (`POLICY_TTL_SECS`, default 5).
    pub policy_ttl: Duration,
    /// Requests per minute allowed per client IP before authentication (`RATE_LIMIT_ANON_PER_MINUTE`, default 300).
    pub anon_rate_per_minute: u32,
    /// Most rows `/v1/sql` returns (`SQL_MAX_ROWS`, default 1000); a request may ask for fewer.
    pub sql_max_rows: u32,
    /// Statement timeout of `/v1/sql` (`SQL_STATEMENT_TIMEOUT_MS`, default 4000).
    pub sql_statement_timeout: Duration,
    /// Highest planner cost `/v1/sql` runs (`SQL_MAX_COST`, default 1,000,000: a full scan of
    /// `flights.flights` costs about 10,000; runaway joins and huge generated series cost far more).
    pub sql_max_cost: f64,
    /// Allow-list mode of the SQL guard: only these functions may be called
    /// (`SQL_FUNCTION_ALLOW_LIST`, comma-separated; unset = deny-list mode).
    pub sql_function_allow_list: Option<std::collections::BTreeSet<String>>,
    /// Audience of Cloud Scheduler's OIDC tokens for the index advisor (`SCHEDULER_OIDC_AUDIENCE`,
    /// usually the service URL); with `SCHEDULER_OIDC_SERVICE_ACCOUNTS`, turns scheduler tokens on.
    pub scheduler_audience: Option<String>,
    /// Service-account emails whose OIDC tokens may run the advisor (`SCHEDULER_OIDC_SERVICE_ACCOUNTS`).
    pub scheduler_accounts: std::collections::BTreeSet<String>,
    /// JWKS of the OIDC issuer (`SCHEDULER_JWKS_URL`, default Google's).
    pub scheduler_jwks_url: url::Url,
    /// Issuer of scheduler tokens (`SCHEDULER_OIDC_ISSUER`, default `https://accounts.google.com`).
    pub scheduler_issuer: String,
    /// Prefix of every Redis key Quarry writes (`REDIS_KEY_PREFIX`, default `quarry`), so several
    /// deployments (or test runs) can share one Redis.
    pub redis_key_prefix: String,
    /// Whether the first `X-Forwarded-For` entry is the client IP (`TRUST_FORWARDED_FOR`, default
    /// false; true behind Cloud Run's front end, never when clients connect directly).
    pub trust_forwarded_for: bool,
    /// Document ingest and retrieval.
    pub docs: DocsSettings,
    /// Language models.
    pub llm: llm::LlmSettings,
    /// The `ask` orchestrator.
    pub ask: ask::AskSettings,
}

/// Settings of document ingest and retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct DocsSettings {
    /// Folder of the downloaded models (`QUARRY_MODELS_DIR`, default `.quarry/models`); the
    /// embedder loads `all-minilm-l6-v2/` from it.
    pub models_dir: PathBuf,
    /// Chroma collection of the chunk vectors (`CHROMA_COLLECTION`, default `quarry_chunks`).
    pub chroma_collection: String,
    /// Time a Chroma request may take before retrieval answers without it (`CHROMA_TIMEOUT_MS`,
    /// default 2000).
    pub chroma_timeout: Duration,
    /// Largest document accepted, in bytes (`INGEST_MAX_BYTES`, default 50 MiB).
    pub max_bytes: usize,
    /// Most pages of a PDF (`INGEST_MAX_PAGES`, default 500).
    pub max_pages: u32,
    /// OCR time per document (`INGEST_OCR_TIMEOUT_SECS`, default 300).
    pub ocr_timeout: Duration,
    /// Time an ingest request (upload or event) may take (`INGEST_TIMEOUT_SECS`, default 900).
    pub ingest_timeout: Duration,
    /// Chunk size in the embedding model's tokens (`INGEST_CHUNK_TOKENS`, default 240: what
    /// all-MiniLM-L6-v2 reads of a text is 256 word pieces, so larger chunks would go partly unseen by
    /// the vector search).
    pub chunk_tokens: usize,
    /// Overlap between consecutive chunks of a section (`INGEST_CHUNK_OVERLAP`, default 40).
    pub chunk_overlap: usize,
    /// Most passages one retrieval returns (`RETRIEVE_MAX_TOP_K`, default 50).
    pub max_top_k: usize,
    /// Cloud Storage endpoint override (`GCS_ENDPOINT`; emulators and tests), default Google's.
    pub gcs_endpoint: Option<url::Url>,
    /// Read Cloud Storage without credentials (`GCS_ANONYMOUS`, default false).
    pub gcs_anonymous: bool,
}

impl DocsSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let models_dir =
            get("QUARRY_MODELS_DIR").map_or_else(|| PathBuf::from(".quarry/models"), PathBuf::from);
        let chroma_collection =
            get("CHROMA_COLLECTION").unwrap_or_else(|| "quarry_chunks".to_owned());
        let valid_collection = (3..=63).contains(&chroma_collection.len())
            && chroma_collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_collection {
            return Err(ConfigError::new(
                "CHROMA_COLLECTION",
                "must be 3-63 characters of letters, digits, '_', '-' and '.'",
            ));
        }
        let ms = |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
            ranged_millis(get(var), var, default, range)
        };
        let count = |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
            ranged(get(var), var, default, range)
        };
        let chunk_tokens = count("INGEST_CHUNK_TOKENS", 240, 16..=4096)?;
        let chunk_overlap = count("INGEST_CHUNK_OVERLAP", 40, 0..=1024)?;
        if chunk_overlap >= chunk_tokens {
            return Err(ConfigError::new(
                "INGEST_CHUNK_OVERLAP",
                "must be smaller than INGEST_CHUNK_TOKENS",
            ));
        }
        let gcs_endpoint = get("GCS_ENDPOINT")
            .map(|v| {
                validate_url("GCS_ENDPOINT", v.clone(), &["http", "https"])?;
                url::Url::parse(&v)
                    .map_err(|_| ConfigError::new("GCS_ENDPOINT", "is not a valid URL"))
            })
            .transpose()?;
        let gcs_anonymous = parse_bool(get("GCS_ANONYMOUS"), "GCS_ANONYMOUS", false)?;
        Ok(Self {
            gcs_endpoint,
            gcs_anonymous,
            models_dir,
            chroma_collection,
            chroma_timeout: ms("CHROMA_TIMEOUT_MS", 2000, 50..=60_000)?,
            max_bytes: usize::try_from(count("INGEST_MAX_BYTES", 50 << 20, 1..=(2 << 30))?)
                .unwrap_or(usize::MAX),
            max_pages: u32::try_from(count("INGEST_MAX_PAGES", 500, 1..=100_000)?)
                .unwrap_or(u32::MAX),
            ocr_timeout: Duration::from_secs(count("INGEST_OCR_TIMEOUT_SECS", 300, 1..=86_400)?),
            ingest_timeout: Duration::from_secs(count("INGEST_TIMEOUT_SECS", 900, 1..=86_400)?),
            chunk_tokens: usize::try_from(chunk_tokens).unwrap_or(usize::MAX),
            chunk_overlap: usize::try_from(chunk_overlap).unwrap_or(usize::MAX),
            max_top_k: usize::try_from(count("RETRIEVE_MAX_TOP_K", 50, 1..=1000)?)
                .unwrap_or(usize::MAX),
        })
    }
}

impl std::fmt::Debug for Settings {
    // Hand-written so that no secret can reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "[redacted]"),
            )
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .field(
                "chroma_url",
                &self.chroma_url.as_ref().map(url::Url::as_str),
            )
            .field("pg_pool_size", &self.pg_pool_size)
            .field("cors_origins", &self.cors_origins)
            .field("cors_allow_credentials", &self.cors_allow_credentials)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("health_timeout", &self.health_timeout)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("data_dir", &self.data_dir)
            .field(
                "app_database_url",
                &self.app_database_url.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "jwt_jwks_url",
                &self.jwt_jwks_url.as_ref().map(url::Url::as_str),
            )
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_leeway", &self.jwt_leeway)
            .field("policy_ttl", &self.policy_ttl)
            .field("anon_rate_per_minute", &self.anon_rate_per_minute)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("scheduler_audience", &self.scheduler_audience)
            .field("scheduler_accounts", &self.scheduler_accounts)
            .field("scheduler_jwks_url", &self.scheduler_jwks_url.as_str())
            .field("scheduler_issuer", &self.scheduler_issuer)
            .field("sql_max_rows", &self.sql_max_rows)
            .field("sql_statement_timeout", &self.sql_statement_timeout)
            .field("sql_max_cost", &self.sql_max_cost)
            .field("sql_function_allow_list", &self.sql_function_allow_list)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("docs", &self.docs)
            .field("llm", &self.llm)
            .field("ask", &self.ask)
            .finish()
    }
}

impl Settings {
    /// Loads `.env` if there is one (variables already set win), then reads the environment.
    ///
    /// # Errors
    /// The first invalid variable, named.
    #[cfg(feature = "server")]
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is an error worth reporting.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(ConfigError::new(".env", format!("cannot be read: {e}")));
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup` (a variable name to its value, if set).
    ///
    /// # Errors
    /// The first invalid variable, named.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let host = parse_or(
            get("HOST"),
            "HOST",
            "an IP address such as 127.0.0.1 or 0.0.0.0",
            || IpAddr::from([127, 0, 0, 1]),
        )?;
        let port = parse_or(get("PORT"), "PORT", "a port number 0-65535", || 8080u16)?;
        let database_url = get("DATABASE_URL")
            .map(|v| validate_url("DATABASE_URL", v, &["postgres", "postgresql"]))
            .transpose()?;
        let redis_url = get("REDIS_URL")
            .map(|v| validate_url("REDIS_URL", v, &["redis", "rediss"]))
            .transpose()?;
        let chroma_url = get("CHROMA_URL")
            .map(|v| {
                validate_url("CHROMA_URL", v.clone(), &["http", "https"])?;
                url::Url::parse(&v)
                    .map_err(|_| ConfigError::new("CHROMA_URL", "is not a valid URL"))
            })
            .transpose()?;
        let pg_pool_size = parse_or(
            get("PG_POOL_SIZE"),
            "PG_POOL_SIZE",
            "a number 1-1000",
            || 16usize,
        )?;
        if !(1..=1000).contains(&pg_pool_size) {
            return Err(ConfigError::new(
                "PG_POOL_SIZE",
                "must be between 1 and 1000",
            ));
        }
        let cors_origins = parse_cors(get("CORS_ALLOWED_ORIGINS"))?;
        let cors_allow_credentials = parse_bool(
            get("CORS_ALLOW_CREDENTIALS"),
            "CORS_ALLOW_CREDENTIALS",
            false,
        )?;
        if cors_allow_credentials && cors_origins == CorsOrigins::Any {
            return Err(ConfigError::new(
                "CORS_ALLOW_CREDENTIALS",
                "cannot be true while CORS_ALLOWED_ORIGINS is '*': list the origins explicitly",
            ));
        }
        let max_body_bytes = parse_or(
            get("MAX_BODY_BYTES"),
            "MAX_BODY_BYTES",
            "a size in bytes",
            || 1usize << 20,
        )?;
        if max_body_bytes < 1024 {
            return Err(ConfigError::new("MAX_BODY_BYTES", "must be at least 1024"));
        }
        let request_timeout = Duration::from_secs(parse_or(
            get("REQUEST_TIMEOUT_SECS"),
            "REQUEST_TIMEOUT_SECS",
            "whole seconds",
            || 30u64,
        )?);
        if request_timeout.is_zero() {
            return Err(ConfigError::new(
                "REQUEST_TIMEOUT_SECS",
                "must be at least 1",
            ));
        }
        let health_timeout = Duration::from_millis(parse_or(
            get("HEALTH_TIMEOUT_MS"),
            "HEALTH_TIMEOUT_MS",
            "milliseconds",
            || 1500u64,
        )?);
        if health_timeout < Duration::from_millis(50) {
            return Err(ConfigError::new("HEALTH_TIMEOUT_MS", "must be at least 50"));
        }
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("must be 'json' or 'pretty', got '{other}'"),
                ));
            }
        };
        let log_filter = get("RUST_LOG")
            .unwrap_or_else(|| "info,tokio_postgres=warn,llama-cpp-2=warn".to_owned());
        let data_dir =
            get("QUARRY_DATA_DIR").map_or_else(|| PathBuf::from(".quarry/data"), PathBuf::from);
        let app_database_url = get("APP_DATABASE_URL")
            .map(|v| validate_url("APP_DATABASE_URL", v, &["postgres", "postgresql"]))
            .transpose()?;
        let jwt_secret = get("JWT_SECRET").map(SecretString::from);
        if jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 32)
        {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "must be at least 32 bytes long",
            ));
        }
        let jwt_jwks_url = get("JWT_JWKS_URL")
            .map(|v| {
                validate_url("JWT_JWKS_URL", v.clone(), &["http", "https"])?;
                url::Url::parse(&v)
                    .map_err(|_| ConfigError::new("JWT_JWKS_URL", "is not a valid URL"))
            })
            .transpose()?;
        let jwt_issuer = get("JWT_ISSUER");
        let jwt_audience = get("JWT_AUDIENCE");
        let jwt_leeway = Duration::from_secs(parse_or(
            get("JWT_LEEWAY_SECS"),
            "JWT_LEEWAY_SECS",
            "whole seconds",
            || 30u64,
        )?);
        if jwt_leeway > Duration::from_secs(600) {
            return Err(ConfigError::new("JWT_LEEWAY_SECS", "must be at most 600"));
        }
        let policy_ttl = Duration::from_secs(parse_or(
            get("POLICY_TTL_SECS"),
            "POLICY_TTL_SECS",
            "whole seconds",
            || 5u64,
        )?);
        let anon_rate_per_minute = parse_or(
            get("RATE_LIMIT_ANON_PER_MINUTE"),
            "RATE_LIMIT_ANON_PER_MINUTE",
            "a number of requests",
            || 300u32,
        )?;
        if anon_rate_per_minute == 0 {
            return Err(ConfigError::new(
                "RATE_LIMIT_ANON_PER_MINUTE",
                "must be at least 1",
            ));
        }
        let sql_max_rows = parse_or(
            get("SQL_MAX_ROWS"),
            "SQL_MAX_ROWS",
            "a number of rows",
            || 1000u32,
        )?;
        if !(1..=100_000).contains(&sql_max_rows) {
            return Err(ConfigError::new(
                "SQL_MAX_ROWS",
                "must be between 1 and 100000",
            ));
        }
        let sql_statement_timeout = Duration::from_millis(parse_or(
            get("SQL_STATEMENT_TIMEOUT_MS"),
            "SQL_STATEMENT_TIMEOUT_MS",
            "milliseconds",
            || 4000u64,
        )?);
        if !(Duration::from_millis(10)..=Duration::from_secs(600)).contains(&sql_statement_timeout)
        {
            return Err(ConfigError::new(
                "SQL_STATEMENT_TIMEOUT_MS",
                "must be between 10 and 600000",
            ));
        }
        let sql_max_cost = parse_or(
            get("SQL_MAX_COST"),
            "SQL_MAX_COST",
            "a planner cost",
            || 1_000_000f64,
        )?;
        if !(sql_max_cost.is_finite() && sql_max_cost > 0.0) {
            return Err(ConfigError::new(
                "SQL_MAX_COST",
                "must be a positive number",
            ));
        }
        let sql_function_allow_list = get("SQL_FUNCTION_ALLOW_LIST").map(|v| {
            v.split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .filter(|f| !f.is_empty())
                .collect()
        });
        let scheduler_audience = get("SCHEDULER_OIDC_AUDIENCE");
        let scheduler_accounts: std::collections::BTreeSet<String> =
            get("SCHEDULER_OIDC_SERVICE_ACCOUNTS")
                .map(|v| {
                    v.split(',')
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect()
                })
                .unwrap_or_default();
        if scheduler_audience.is_some() == scheduler_accounts.is_empty() {
            return Err(ConfigError::new(
                "SCHEDULER_OIDC_SERVICE_ACCOUNTS",
                "and SCHEDULER_OIDC_AUDIENCE must be set together (or neither)",
            ));
        }
        let scheduler_jwks_url = get("SCHEDULER_JWKS_URL")
            .unwrap_or_else(|| "https://www.googleapis.com/oauth2/v3/certs".to_owned());
        validate_url(
            "SCHEDULER_JWKS_URL",
            scheduler_jwks_url.clone(),
            &["http", "https"],
        )?;
        let scheduler_jwks_url = url::Url::parse(&scheduler_jwks_url)
            .map_err(|_| ConfigError::new("SCHEDULER_JWKS_URL", "is not a valid URL"))?;
        let scheduler_issuer = get("SCHEDULER_OIDC_ISSUER")
            .unwrap_or_else(|| "https://accounts.google.com".to_owned());
        let redis_key_prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| "quarry".to_owned());
        if redis_key_prefix.len() > 64 || redis_key_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "REDIS_KEY_PREFIX",
                "must be at most 64 characters without spaces",
            ));
        }
        let trust_forwarded_for =
            parse_bool(get("TRUST_FORWARDED_FOR"), "TRUST_FORWARDED_FOR", false)?;
        let docs = DocsSettings::from_lookup(&get)?;

        Ok(Self {
            host,
            port,
            database_url,
            redis_url,
            chroma_url,
            pg_pool_size,
            cors_origins,
            cors_allow_credentials,
            max_body_bytes,
            request_timeout,
            health_timeout,
            log_format,
            log_filter,
            data_dir,
            app_database_url,
            jwt_secret,
            jwt_jwks_url,
            jwt_issuer,
            jwt_audience,
            jwt_leeway,
            policy_ttl,
            anon_rate_per_minute,
            redis_key_prefix,
            scheduler_audience,
            scheduler_accounts,
            scheduler_jwks_url,
            scheduler_issuer,
            sql_max_rows,
            sql_statement_timeout,
            sql_max_cost,
            sql_function_allow_list,
            trust_forwarded_for,
            llm: llm::LlmSettings::from_lookup(&get, &docs.models_dir)?,
            ask: ask::AskSettings::from_lookup(&get)?,
            docs,
        })
    }

    /// Checks that every dependency a service declares has its URL configured.
    ///
    /// # Errors
    /// Names the first missing variable and the service that needs it.
    #[cfg(feature = "server")]
    pub fn require(&self, service: &str, deps: &[Dependency]) -> Result<(), ConfigError> {
        for dep in deps {
            let (var, present) = match dep {
                Dependency::Postgres => ("DATABASE_URL", self.database_url.is_some()),
                Dependency::Redis => ("REDIS_URL", self.redis_url.is_some()),
                Dependency::Chroma => ("CHROMA_URL", self.chroma_url.is_some()),
            };
            if !present {
                return Err(ConfigError::new(
                    var,
                    format!("is required by {service} but not set"),
                ));
            }
        }
        Ok(())
    }

    /// Checks what every authenticating function needs: a key to verify tokens with, and the
    /// restricted database role.
    ///
    /// # Errors
    /// Names the missing variable.
    pub fn require_governance(&self, service: &str) -> Result<(), ConfigError> {
        if self.jwt_secret.is_none() && self.jwt_jwks_url.is_none() {
            return Err(ConfigError::new(
                "JWT_SECRET",
                format!("or JWT_JWKS_URL is required by {service} to verify tokens"),
            ));
        }
        if self.app_database_url.is_none() {
            return Err(ConfigError::new(
                "APP_DATABASE_URL",
                format!("is required by {service} (the restricted quarry_app role)"),
            ));
        }
        Ok(())
    }

    /// The application role's database URL.
    pub fn app_database_url(&self) -> Option<&str> {
        self.app_database_url
            .as_ref()
            .map(ExposeSecret::expose_secret)
    }

    /// The database URL, for the few places that must hand it to a driver.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_ref().map(ExposeSecret::expose_secret)
    }
}

/// The address of the AWS Lambda runtime API (`AWS_LAMBDA_RUNTIME_API`), set by Lambda itself: when
/// present, the server answers Lambda events instead of binding `PORT` (feature `lambda`). Read
/// apart from [`Settings`] because Lambda, not the operator, sets it, and `lambda_http` reads the
/// rest of the runtime's variables itself.
#[cfg(feature = "lambda")]
pub fn lambda_runtime_api() -> Option<String> {
    std::env::var("AWS_LAMBDA_RUNTIME_API")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn parse_or<T: std::str::FromStr>(
    value: Option<String>,
    var: &'static str,
    expected: &str,
    default: impl FnOnce() -> T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default()),
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError::new(var, format!("must be {expected}, got '{v}'"))),
    }
}

/// A whole number from `value` (or `default`) that must lie in `range`.
fn ranged(
    value: Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let v = parse_or(value, var, "a whole number", || default)?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::new(
            var,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// [`ranged`] milliseconds as a duration.
fn ranged_millis(
    value: Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    ranged(value, var, default, range).map(Duration::from_millis)
}

fn parse_bool(
    value: Option<String>,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(_) => Err(ConfigError::new(var, "must be true or false")),
    }
}

/// Validates a URL's scheme without ever echoing the URL (it may carry a password).
fn validate_url(
    var: &'static str,
    value: String,
    schemes: &[&str],
) -> Result<SecretString, ConfigError> {
    let parsed = url::Url::parse(&value)
        .map_err(|e| ConfigError::new(var, format!("is not a valid URL ({e})")))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ConfigError::new(
            var,
            format!(
                "must use the scheme {}, got '{}'",
                schemes.join(" or "),
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(var, "has no host"));
    }
    Ok(SecretString::from(value))
}

fn parse_cors(value: Option<String>) -> Result<CorsOrigins, ConfigError> {
    let Some(value) = value else {
        return Ok(CorsOrigins::None);
    };
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if entries == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    let mut origins = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry == "*" {
            return Err(ConfigError::new(
                "CORS_ALLOWED_ORIGINS",
                "'*' cannot be combined with other origins",
            ));
        }
        let url = url::Url::parse(entry).map_err(|_| {
            ConfigError::new(
                "CORS_ALLOWED_ORIGINS",
                format!("'{entry}' is not an origin such as https://app.example.com"),
            )
        })?;
        let is_origin = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.path() == "/"
            && url.query().is_none();
        if !is_origin || entry.ends_with('/') {
            return Err(ConfigError::new(
                "CORS_ALLOWED_ORIGINS",
                format!("'{entry}' is not an origin (scheme://host[:port], no path)"),
            ));
        }
        origins.push(entry.to_owned());
    }
    Ok(if origins.is_empty() {
        CorsOrigins::None
    } else {
        CorsOrigins::List(origins)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_local_and_safe() {
        let s = load(&[]).unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.host.to_string(), "127.0.0.1");
        assert_eq!(s.cors_origins, CorsOrigins::None);
        assert!(!s.cors_allow_credentials);
        assert_eq!(s.max_body_bytes, 1 << 20);
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(load(&[("PORT", "eighty")]).unwrap_err().var, "PORT");
        assert_eq!(load(&[("PORT", "70000")]).unwrap_err().var, "PORT");
        assert_eq!(
            load(&[("DATABASE_URL", "mysql://x@h/db")]).unwrap_err().var,
            "DATABASE_URL"
        );
        assert_eq!(
            load(&[("REDIS_URL", "not a url")]).unwrap_err().var,
            "REDIS_URL"
        );
        assert_eq!(
            load(&[("PG_POOL_SIZE", "0")]).unwrap_err().var,
            "PG_POOL_SIZE"
        );
        assert_eq!(
            load(&[("LOG_FORMAT", "xml")]).unwrap_err().var,
            "LOG_FORMAT"
        );
        assert_eq!(
            load(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")])
                .unwrap_err()
                .var,
            "CORS_ALLOWED_ORIGINS"
        );
        assert_eq!(
            load(&[("CORS_ALLOWED_ORIGINS", "*,https://a.example")])
                .unwrap_err()
                .var,
            "CORS_ALLOWED_ORIGINS"
        );
    }

    #[test]
    fn wildcard_origin_with_credentials_is_refused() {
        let err = load(&[
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("CORS_ALLOW_CREDENTIALS", "true"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "CORS_ALLOW_CREDENTIALS");
        let ok = load(&[
            (
                "CORS_ALLOWED_ORIGINS",
                "https://a.example, http://localhost:3000",
            ),
            ("CORS_ALLOW_CREDENTIALS", "true"),
        ])
        .unwrap();
        assert_eq!(
            ok.cors_origins,
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:3000".into()
            ])
        );
    }

    #[test]
    fn secrets_never_reach_debug_or_errors() {
        let s = load(&[
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("REDIS_URL", "redis://:hunter2@r/"),
        ])
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let err = load(&[("DATABASE_URL", "mysql://u:hunter2@db/x")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn governance_settings_are_validated() {
        assert_eq!(
            load(&[("JWT_SECRET", "short")]).unwrap_err().var,
            "JWT_SECRET"
        );
        assert_eq!(
            load(&[("JWT_JWKS_URL", "ftp://keys")]).unwrap_err().var,
            "JWT_JWKS_URL"
        );
        assert_eq!(
            load(&[("JWT_LEEWAY_SECS", "-1")]).unwrap_err().var,
            "JWT_LEEWAY_SECS"
        );
        assert_eq!(
            load(&[("APP_DATABASE_URL", "http://x")]).unwrap_err().var,
            "APP_DATABASE_URL"
        );
        let s = load(&[]).unwrap();
        assert_eq!(s.jwt_leeway, Duration::from_secs(30));
        assert_eq!(s.require_governance("auth").unwrap_err().var, "JWT_SECRET");
        let s = load(&[("JWT_SECRET", "0123456789abcdef0123456789abcdef")]).unwrap();
        assert_eq!(
            s.require_governance("auth").unwrap_err().var,
            "APP_DATABASE_URL"
        );
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn scheduler_settings_come_in_pairs() {
        let half = load(&[("SCHEDULER_OIDC_AUDIENCE", "https://svc.run.app")]).unwrap_err();
        assert_eq!(half.var, "SCHEDULER_OIDC_SERVICE_ACCOUNTS");
        let other_half = load(&[(
            "SCHEDULER_OIDC_SERVICE_ACCOUNTS",
            "a@p.iam.gserviceaccount.com",
        )])
        .unwrap_err();
        assert_eq!(other_half.var, "SCHEDULER_OIDC_SERVICE_ACCOUNTS");
        let both = load(&[
            ("SCHEDULER_OIDC_AUDIENCE", "https://svc.run.app"),
            (
                "SCHEDULER_OIDC_SERVICE_ACCOUNTS",
                "a@p.iam.gserviceaccount.com, b@p.iam.gserviceaccount.com",
            ),
        ])
        .unwrap();
        assert_eq!(both.scheduler_accounts.len(), 2);
        assert_eq!(both.scheduler_issuer, "https://accounts.google.com");
    }

    #[test]
    #[cfg(feature = "server")]
    fn services_name_their_missing_dependency() {
        let s = load(&[("DATABASE_URL", "postgres://u@db/x")]).unwrap();
        assert!(s.require("sql-exec", &[Dependency::Postgres]).is_ok());
        let err = s
            .require("ask", &[Dependency::Postgres, Dependency::Redis])
            .unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
        assert!(err.message.contains("ask"));
    }
}
