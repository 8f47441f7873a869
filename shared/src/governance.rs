//! Everything a function needs to govern a request, built once per process: the token verifier,
//! the cached policy, the audit writer, the rate limiter and the restricted `quarry_app` pool.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditSink, PgAudit};
use crate::auth::{HttpJwks, KeySource, Verifier, VerifierConfig};
use crate::config::{ConfigError, Settings};
use crate::db::{self, DbError};
use crate::policy::store::PolicyStore;
use crate::ratelimit::RateLimiter;

/// How long a failed policy reload may be papered over with the previous copy.
const POLICY_MAX_STALE: Duration = Duration::from_secs(60);
/// Deadline of one audit write; past it the request fails closed.
const AUDIT_DEADLINE: Duration = Duration::from_secs(2);
/// Deadline of one Redis rate-limit call; past it the local buckets decide.
const RATE_LIMIT_DEADLINE: Duration = Duration::from_millis(150);

/// The governance parts of a running server.
pub struct Governance {
    /// Verifies bearer tokens.
    pub verifier: Verifier,
    /// The cached policy.
    pub policy: PolicyStore,
    /// Where decisions are recorded.
    pub audit: Arc<dyn AuditSink>,
    /// Per-`sub` and per-IP rate limits.
    pub limiter: RateLimiter,
    /// Pool of the restricted `quarry_app` role (RLS applies; SELECT and audit INSERT only).
    pub app_db: deadpool_postgres::Pool,
    /// Service accounts (Cloud Scheduler) allowed to call operations endpoints with OIDC tokens.
    pub service_accounts: Option<ServiceAccounts>,
}

/// OIDC identity tokens of service accounts, and which accounts are allowed.
pub struct ServiceAccounts {
    /// Verifies the tokens against the issuer's JWKS (RS256/ES256, pinned `iss` and `aud`).
    pub verifier: Verifier,
    /// The issuer, to route a token to this verifier.
    pub issuer: String,
    /// Allowed service-account emails.
    pub allowed: std::collections::BTreeSet<String>,
}

/// Why governance could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// A setting is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The restricted role's URL is unusable.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The verifier refused its configuration.
    #[error("token verification cannot be configured: {0}")]
    Verifier(String),
}

impl Governance {
    /// Builds governance from the settings; nothing connects yet.
    ///
    /// # Errors
    /// Missing key material or restricted-role URL, or invalid verifier configuration.
    pub fn build(
        settings: &Settings,
        service: &str,
        http: &reqwest::Client,
        redis: Option<redis::Client>,
    ) -> Result<Self, GovernanceError> {
        settings.require_governance(service)?;
        let app_db = db::pool(
            settings.app_database_url().unwrap_or_default(),
            settings.pg_pool_size,
        )?;
        let config = VerifierConfig {
            hs256_secret: settings.jwt_secret.clone(),
            jwks_url: settings.jwt_jwks_url.clone(),
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            leeway: settings.jwt_leeway,
            ..VerifierConfig::default()
        };
        let source: Option<Arc<dyn KeySource>> = settings
            .jwt_jwks_url
            .as_ref()
            .map(|url| Arc::new(HttpJwks::new(http.clone(), url.clone())) as Arc<dyn KeySource>);
        let verifier =
            Verifier::new(config, source).map_err(|e| GovernanceError::Verifier(e.to_string()))?;
        let service_accounts = match &settings.scheduler_audience {
            Some(audience) => {
                let config = VerifierConfig {
                    hs256_secret: None,
                    jwks_url: Some(settings.scheduler_jwks_url.clone()),
                    issuer: Some(settings.scheduler_issuer.clone()),
                    audience: Some(audience.clone()),
                    leeway: settings.jwt_leeway,
                    ..VerifierConfig::default()
                };
                let source = Arc::new(HttpJwks::new(
                    http.clone(),
                    settings.scheduler_jwks_url.clone(),
                )) as Arc<dyn KeySource>;
                Some(ServiceAccounts {
                    verifier: Verifier::new(config, Some(source))
                        .map_err(|e| GovernanceError::Verifier(e.to_string()))?,
                    issuer: settings.scheduler_issuer.clone(),
                    allowed: settings.scheduler_accounts.clone(),
                })
            }
            None => None,
        };
        Ok(Self {
            verifier,
            policy: PolicyStore::new(app_db.clone(), settings.policy_ttl, POLICY_MAX_STALE),
            audit: Arc::new(PgAudit::new(app_db.clone(), AUDIT_DEADLINE)),
            limiter: RateLimiter::new(redis, &settings.redis_key_prefix, RATE_LIMIT_DEADLINE),
            app_db,
            service_accounts,
        })
    }
}
