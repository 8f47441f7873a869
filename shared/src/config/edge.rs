//! Settings of a stateless decision point: the WASM `auth` component, which has no database to
//! load the policy from and no outbound network to fetch a JWKS with, so both come as
//! configuration.
//!
//! Every variable the native functions read keeps its meaning and validation (the common ones go
//! through [`Settings::from_lookup`]); three are specific:
//!
//! - `QUARRY_POLICY_JSON` (required): the policy document (`policy::document`), as printed by
//!   `quarry policy export`;
//! - `JWT_JWKS_JSON`: the RS256/ES256 key set itself (`{"keys": [...]}`), instead of a URL;
//! - `JWT_JWKS_URL` is refused: the component makes no outbound requests.
//!
//! At least one of `JWT_SECRET` and `JWT_JWKS_JSON` must be set.

use jsonwebtoken::jwk::JwkSet;

use super::{ConfigError, Settings};
use crate::auth::{parse_jwk_set, VerifierConfig};
use crate::policy::{document, Policy};

/// What the `auth` component needs, validated.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// The common settings (`JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_LEEWAY_SECS`,
    /// `MAX_BODY_BYTES`, ...), read and validated as for the native functions.
    pub settings: Settings,
    /// RS256/ES256 keys from `JWT_JWKS_JSON`.
    pub jwks: Option<JwkSet>,
    /// The policy from `QUARRY_POLICY_JSON`.
    pub policy: Policy,
}

impl EdgeSettings {
    /// Reads the process environment (in a component: `wasi:cli/environment`, which Spin fills from
    /// `[component.x] environment` and `wasmtime serve` from `--env`). No `.env` file: a component
    /// has no working directory to find one in.
    ///
    /// # Errors
    /// The first invalid or missing variable, named.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup`.
    ///
    /// # Errors
    /// The first invalid or missing variable, named; never a secret's value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings::from_lookup(&lookup)?;
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if settings.jwt_jwks_url.is_some() {
            return Err(ConfigError::new(
                "JWT_JWKS_URL",
                "is not supported here (no outbound requests); give the key set itself in JWT_JWKS_JSON",
            ));
        }
        let jwks = get("JWT_JWKS_JSON")
            .map(|v| {
                parse_jwk_set(v.as_bytes()).map_err(|_| {
                    ConfigError::new(
                        "JWT_JWKS_JSON",
                        "must be a JWK set: a JSON object with a \"keys\" array",
                    )
                })
            })
            .transpose()?;
        if settings.jwt_secret.is_none() && jwks.is_none() {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "or JWT_JWKS_JSON is required to verify tokens",
            ));
        }
        let policy = get("QUARRY_POLICY_JSON").ok_or_else(|| {
            ConfigError::new(
                "QUARRY_POLICY_JSON",
                "is required: the policy document, e.g. from `quarry policy export`",
            )
        })?;
        let policy = document::parse(&policy)
            .map_err(|e| ConfigError::new("QUARRY_POLICY_JSON", e.to_string()))?;
        Ok(Self {
            settings,
            jwks,
            policy,
        })
    }

    /// How tokens are verified: the secret, issuer, audience and leeway of the settings.
    pub fn verifier_config(&self) -> VerifierConfig {
        VerifierConfig {
            hs256_secret: self.settings.jwt_secret.clone(),
            jwks_url: None,
            issuer: self.settings.jwt_issuer.clone(),
            audience: self.settings.jwt_audience.clone(),
            leeway: self.settings.jwt_leeway,
            ..VerifierConfig::default()
        }
    }

    /// Largest request body accepted (`MAX_BODY_BYTES`).
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const POLICY: &str =
        r#"{"version": 1, "roles": {"admin": {"row_scope": "all", "regions": ["*"]}}}"#;
    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn load(vars: &[(&str, &str)]) -> Result<EdgeSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EdgeSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn a_secret_and_a_policy_are_enough() {
        let s = load(&[("JWT_SECRET", SECRET), ("QUARRY_POLICY_JSON", POLICY)]).unwrap();
        assert!(s.policy.roles.contains_key("admin"));
        assert!(s.jwks.is_none());
        assert_eq!(s.max_body_bytes(), 1 << 20);
    }

    #[test]
    fn missing_and_invalid_settings_name_their_variable() {
        let jwks = include_str!("../auth/testdata/jwks.json");
        for (vars, var) in [
            (vec![("QUARRY_POLICY_JSON", POLICY)], "JWT_SECRET"),
            (vec![("JWT_SECRET", SECRET)], "QUARRY_POLICY_JSON"),
            (
                vec![("JWT_SECRET", SECRET), ("QUARRY_POLICY_JSON", "{}")],
                "QUARRY_POLICY_JSON",
            ),
            (
                vec![("JWT_SECRET", "short"), ("QUARRY_POLICY_JSON", POLICY)],
                "JWT_SECRET",
            ),
            (
                vec![
                    ("JWT_JWKS_URL", "https://issuer.example/jwks.json"),
                    ("JWT_JWKS_JSON", jwks),
                    ("QUARRY_POLICY_JSON", POLICY),
                ],
                "JWT_JWKS_URL",
            ),
            (
                vec![("JWT_JWKS_JSON", "[1, 2]"), ("QUARRY_POLICY_JSON", POLICY)],
                "JWT_JWKS_JSON",
            ),
        ] {
            let err = load(&vars).unwrap_err();
            assert_eq!(err.var, var, "{vars:?}: {err}");
            assert!(!err.to_string().contains(SECRET), "{err}");
        }
        let s = load(&[("JWT_JWKS_JSON", jwks), ("QUARRY_POLICY_JSON", POLICY)]).unwrap();
        assert!(s.jwks.is_some_and(|set| !set.keys.is_empty()));
    }
}
