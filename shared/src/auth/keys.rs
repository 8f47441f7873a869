//! Where RS256/ES256 keys come from: the [`KeySource`] seam, its HTTP implementation [`HttpJwks`],
//! and the cache the verifier reads them from.
//!
//! Fetching sits behind a trait with one method so that verification is unit-tested with a fake and
//! so that a WASM build can supply its own fetcher (`reqwest` is used only in [`HttpJwks`]).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::error::{AuthError, KeySourceError};

/// Largest JWKS document read; real sets are a few KiB, so this only stops a runaway response.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Something that can fetch the current JSON Web Key Set.
///
/// Implementations do one fetch per call and no caching or retrying: the verifier owns the cache,
/// the rate limit and the deadline.
pub trait KeySource: Send + Sync {
    /// Fetches the key set.
    ///
    /// # Errors
    /// Whatever kept the set from arriving; the verifier answers
    /// [`AuthError::KeysUnavailable`] and logs it.
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, KeySourceError>>;
}

/// A key set given as configuration (inline JSON), served as it is on every fetch.
#[derive(Debug, Clone)]
pub struct StaticJwks(JwkSet);

impl StaticJwks {
    /// A source that always answers `set`.
    pub fn new(set: JwkSet) -> Self {
        Self(set)
    }
}

impl KeySource for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, KeySourceError>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// Fetches a JWKS over HTTP(S) with the `reqwest::Client` it is given (so connection pools and TLS
/// settings are shared with the rest of the service).
#[cfg(feature = "server")]
#[derive(Debug, Clone)]
pub struct HttpJwks {
    client: reqwest::Client,
    url: url::Url,
}

#[cfg(feature = "server")]
impl HttpJwks {
    /// A source that GETs `url` with `client`. The verifier bounds each fetch with its own deadline.
    pub fn new(client: reqwest::Client, url: url::Url) -> Self {
        Self { client, url }
    }
}

#[cfg(feature = "server")]
impl KeySource for HttpJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, KeySourceError>> {
        Box::pin(async move {
            let transport = |e: reqwest::Error| KeySourceError::Transport(Box::new(e));
            let mut response = self
                .client
                .get(self.url.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(transport)?;
            if !response.status().is_success() {
                return Err(KeySourceError::Status(response.status().as_u16()));
            }
            let body = crate::http::outbound::read_limited(&mut response, MAX_JWKS_BYTES)
                .await
                .map_err(|e| match e {
                    crate::http::outbound::ReadError::TooLarge { limit } => {
                        KeySourceError::TooLarge { limit }
                    }
                    crate::http::outbound::ReadError::Transport(e) => transport(e),
                })?;
            parse_jwk_set(&body)
        })
    }
}

/// Parses a JWKS document, skipping keys that do not parse.
///
/// One odd key (an encryption key, a new key type) must not take down every other key of the set,
/// which parsing the whole document as a `JwkSet` would do.
///
/// # Errors
/// [`KeySourceError::Invalid`] when the document is not a JSON object with a `keys` array.
pub fn parse_jwk_set(body: &[u8]) -> Result<JwkSet, KeySourceError> {
    #[derive(serde::Deserialize)]
    struct Raw {
        keys: Vec<serde_json::Value>,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(KeySourceError::Invalid)?;
    let keys = raw
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .collect();
    Ok(JwkSet { keys })
}

/// A verification key with the one algorithm it may be used with.
pub(crate) struct PinnedKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The algorithm a JWK may verify, from its own `alg`, `kty` and `crv`; `None` when it is not a
/// signing key we accept.
///
/// Symmetric (`oct`) keys from a JWKS are never used: a published HMAC key would let anyone mint
/// tokens, and HS256 is accepted only with the configured secret.
fn pinned_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256) | None, AlgorithmParameters::RSA(_)) => Some(Algorithm::RS256),
        (Some(KeyAlgorithm::ES256) | None, AlgorithmParameters::EllipticCurve(p))
            if p.curve == EllipticCurve::P256 =>
        {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

/// The usable keys of a set, by `kid`. Keys without a `kid` are skipped: tokens must name their key.
fn usable_keys(set: &JwkSet) -> HashMap<String, Arc<PinnedKey>> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let alg = pinned_algorithm(jwk)?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(PinnedKey { alg, key })))
        })
        .collect()
}

/// When the last fetch finished and whether it failed.
#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// The JWKS cache: a map swapped whole on refresh, and a rate-limited, shared refresh.
pub(crate) struct KeyCache {
    source: Arc<dyn KeySource>,
    // A std lock: held only to clone an `Arc`, never across an `.await`.
    keys: RwLock<Arc<HashMap<String, Arc<PinnedKey>>>>,
    // An async mutex on purpose: it is held across the fetch so that concurrent requests with unknown
    // kids wait for one fetch instead of each starting their own.
    refresh: tokio::sync::Mutex<RefreshState>,
    min_interval: Duration,
    // Only the `server` build has a timer to enforce it with.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    timeout: Duration,
}

impl KeyCache {
    pub(crate) fn new(
        source: Arc<dyn KeySource>,
        min_interval: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            source,
            keys: RwLock::new(Arc::new(HashMap::new())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            min_interval,
            timeout,
        }
    }

    /// Installs the usable keys of `set` now, without a fetch (keys given as configuration);
    /// returns how many there are. An empty result leaves the cache as it was.
    pub(crate) fn install(&self, set: &JwkSet) -> usize {
        let keys = usable_keys(set);
        let count = keys.len();
        if count > 0 {
            *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        }
        count
    }

    /// The cached key for `kid`, without fetching.
    pub(crate) fn get(&self, kid: &str) -> Option<Arc<PinnedKey>> {
        // A poisoned lock still holds a consistent map (it is only ever replaced whole).
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(kid).cloned()
    }

    /// Fetches the set unless a fetch finished less than `min_interval` ago.
    ///
    /// A caller that waited for another's fetch finds it recent and returns at once, so concurrent
    /// callers share one fetch. Cancelling the caller during the fetch records nothing, so the next
    /// caller fetches.
    ///
    /// # Errors
    /// [`AuthError::KeysUnavailable`] when this fetch failed, or when it was skipped and the last one
    /// failed.
    pub(crate) async fn refresh(&self) -> Result<(), AuthError> {
        let mut state = self.refresh.lock().await;
        if let Some(last) = state.last_attempt {
            if last.elapsed() < self.min_interval {
                return if state.last_failed {
                    Err(AuthError::KeysUnavailable)
                } else {
                    Ok(())
                };
            }
        }
        #[cfg(feature = "server")]
        let fetched = match tokio::time::timeout(self.timeout, self.source.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(KeySourceError::Timeout(self.timeout)),
        };
        // Without `server` there is no tokio timer (nor runtime: WASM); the source must bound
        // itself. The one such source here, `StaticJwks`, answers at once.
        #[cfg(not(feature = "server"))]
        let fetched = self.source.fetch().await;
        let result = fetched.and_then(|set| {
            let keys = usable_keys(&set);
            if keys.is_empty() {
                // Keep serving the previous keys rather than an empty set from a glitching IdP.
                Err(KeySourceError::NoUsableKeys)
            } else {
                Ok(keys)
            }
        });
        state.last_attempt = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS refreshed");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                state.last_failed = false;
                Ok(())
            }
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "JWKS refresh failed");
                state.last_failed = true;
                Err(AuthError::KeysUnavailable)
            }
        }
    }
}

/// `err: cause: cause…`, so a log line carries the whole chain.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_jwk_pins_its_own_algorithm() {
        let set = parse_jwk_set(
            br#"{"keys":[
                {"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"},
                {"kty":"EC","kid":"e","crv":"P-256","x":"AQAB","y":"AQAB"},
                {"kty":"EC","kid":"p384","crv":"P-384","x":"AQAB","y":"AQAB"},
                {"kty":"RSA","kid":"rs512","alg":"RS512","n":"AQAB","e":"AQAB"},
                {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
                {"kty":"oct","kid":"hmac","alg":"HS256","k":"c2VjcmV0"},
                {"kty":"RSA","n":"AQAB","e":"AQAB"},
                {"kty":"weird","kid":"w"},
                "not a key"
            ]}"#,
        )
        .unwrap();
        let keys = usable_keys(&set);
        let mut kids: Vec<_> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["e", "r"]);
        assert_eq!(keys["r"].alg, Algorithm::RS256);
        assert_eq!(keys["e"].alg, Algorithm::ES256);
    }

    #[test]
    fn a_document_without_keys_is_invalid() {
        assert!(matches!(
            parse_jwk_set(b"{}"),
            Err(KeySourceError::Invalid(_))
        ));
        assert!(matches!(
            parse_jwk_set(b"<html>"),
            Err(KeySourceError::Invalid(_))
        ));
    }
}
