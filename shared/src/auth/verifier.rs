//! [`Verifier`]: checks a token's size, header, signature, times, issuer, audience and Quarry's
//! required claims, and yields a [`Principal`].
//!
//! The algorithm is pinned by the key, never taken from the token: HS256 only with the configured
//! secret, RS256/ES256 only with a JWKS key whose own `alg`/`kty` says so. The header is decoded here
//! first, so `alg: none`, unconfigured algorithms and HS256-with-a-public-key (the classic confusion
//! attack) are refused before any signature check, and jsonwebtoken is then handed exactly one
//! allowed algorithm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::claims::{Principal, RawClaims};
use super::error::{AuthConfigError, AuthError};
#[cfg(feature = "server")]
use super::keys::HttpJwks;
use super::keys::{KeyCache, KeySource, PinnedKey, StaticJwks};

/// Verified RS256/ES256 tokens remembered at most this long, so a key removed from the JWKS stops
/// being honoured within this time even for tokens already seen.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// At most this many remembered tokens (about 200 bytes each).
const VERIFIED_CAPACITY: usize = 10_000;

/// The shortest HS256 secret accepted: 256 bits, the size of the HMAC-SHA256 output (RFC 7518 §3.2).
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Shared HS256 secret (development); at least 32 bytes. `None` refuses every HS256 token.
    pub hs256_secret: Option<SecretString>,
    /// Where to fetch the JWKS for RS256/ES256. `None` (and no [`KeySource`] given) refuses them.
    pub jwks_url: Option<url::Url>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences), when set. When unset, `aud` is not checked.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s; whole seconds are used).
    pub leeway: Duration,
    /// At most one JWKS fetch per this interval, however many unknown `kid`s arrive (default 30 s).
    pub jwks_refresh_min_interval: Duration,
    /// Deadline for one JWKS fetch (default 5 s).
    pub jwks_fetch_timeout: Duration,
    /// Longest token accepted, checked before any parsing (default 8192 bytes).
    pub max_token_bytes: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            jwks_refresh_min_interval: Duration::from_secs(30),
            jwks_fetch_timeout: Duration::from_secs(5),
            max_token_bytes: 8192,
        }
    }
}

/// Verifies bearer tokens. Cheap to share: wrap it in an `Arc` and hand it to every handler.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<KeyCache>,
    // One prepared `Validation` per algorithm, so the hot path allocates none.
    hs256_validation: Validation,
    rs256_validation: Validation,
    es256_validation: Validation,
    leeway_secs: i64,
    max_token_bytes: usize,
    // An RSA or ECDSA signature check costs 200-300 µs with the pure-Rust crypto the WASM build
    // needs, against 3 µs for HS256; clients send the same token on every request, so the
    // outcome of a successful check is remembered by the token's SHA-256. Expiry is re-checked on
    // every hit; HS256 tokens are cheaper to verify than to look up and are not remembered.
    verified: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl std::fmt::Debug for Verifier {
    // Hand-written: says which key kinds are configured and nothing about the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs256.is_some())
            .field("jwks", &self.jwks.is_some())
            .field("max_token_bytes", &self.max_token_bytes)
            .finish_non_exhaustive()
    }
}

/// A token whose signature and registered claims checked out.
enum Decoded {
    /// Seen and verified before (RS256/ES256 only).
    Remembered(Principal),
    /// Freshly verified, with its digest when it may be remembered.
    Claims(RawClaims, Option<[u8; 32]>),
}

/// Why the cached path could not finish: the token names a key we do not hold (yet).
enum Failure {
    Auth(AuthError),
    UnknownKid,
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

/// The header fields we decide on; other fields are left to jsonwebtoken.
#[derive(serde::Deserialize)]
struct PeekedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    // RFC 7515 §4.1.11: a token marking extensions as critical must be refused if we do not
    // understand them, and we understand none.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl Verifier {
    /// Builds a verifier. With a JWKS URL and no `key_source`, keys are fetched with [`HttpJwks`]
    /// and a client of its own; pass a [`KeySource`] to share a client or to supply keys otherwise
    /// (tests, WASM). Keys are fetched lazily, on the first token that needs one, or by
    /// [`Verifier::refresh_keys`].
    ///
    /// # Errors
    /// [`AuthConfigError::NoKeys`] when neither a secret nor a JWKS is configured,
    /// [`AuthConfigError::SecretTooShort`] for a secret under 32 bytes,
    /// [`AuthConfigError::HttpClient`] when the default HTTP client cannot be built.
    pub fn new(
        config: VerifierConfig,
        key_source: Option<Arc<dyn KeySource>>,
    ) -> Result<Self, AuthConfigError> {
        let hs256 = match &config.hs256_secret {
            Some(secret) => {
                let bytes = secret.expose_secret().as_bytes();
                if bytes.len() < MIN_SECRET_BYTES {
                    return Err(AuthConfigError::SecretTooShort {
                        min: MIN_SECRET_BYTES,
                        actual: bytes.len(),
                    });
                }
                Some(DecodingKey::from_secret(bytes))
            }
            None => None,
        };
        let key_source = match (key_source, &config.jwks_url) {
            (Some(source), _) => Some(source),
            #[cfg(feature = "server")]
            (None, Some(url)) => {
                let client = reqwest::Client::builder()
                    .timeout(config.jwks_fetch_timeout)
                    .build()
                    .map_err(AuthConfigError::HttpClient)?;
                Some(Arc::new(HttpJwks::new(client, url.clone())) as Arc<dyn KeySource>)
            }
            #[cfg(not(feature = "server"))]
            (None, Some(_)) => return Err(AuthConfigError::NoFetcher),
            (None, None) => None,
        };
        if hs256.is_none() && key_source.is_none() {
            return Err(AuthConfigError::NoKeys);
        }
        let jwks = key_source.map(|source| {
            KeyCache::new(
                source,
                config.jwks_refresh_min_interval,
                config.jwks_fetch_timeout,
            )
        });
        Ok(Self {
            hs256,
            jwks,
            hs256_validation: validation(Algorithm::HS256, &config),
            rs256_validation: validation(Algorithm::RS256, &config),
            es256_validation: validation(Algorithm::ES256, &config),
            leeway_secs: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            max_token_bytes: config.max_token_bytes,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Builds a verifier whose RS256/ES256 keys are `set`, given as configuration rather than
    /// fetched (the WASM component reads it from `JWT_JWKS_JSON`). The keys are installed at once,
    /// so [`Verifier::verify_cached`] needs no `.await`; a later refresh serves the same set.
    /// `config.jwks_url` is ignored.
    ///
    /// # Errors
    /// As [`Verifier::new`], and [`AuthConfigError::NoUsableKeys`] when `set` holds no RS256 or
    /// ES256 key with a `kid`.
    pub fn with_jwks(config: VerifierConfig, set: JwkSet) -> Result<Self, AuthConfigError> {
        let config = VerifierConfig {
            jwks_url: None,
            ..config
        };
        let source = Arc::new(StaticJwks::new(set.clone())) as Arc<dyn KeySource>;
        let verifier = Self::new(config, Some(source))?;
        let installed = verifier
            .jwks
            .as_ref()
            .map_or(0, |cache| cache.install(&set));
        if installed == 0 {
            return Err(AuthConfigError::NoUsableKeys);
        }
        Ok(verifier)
    }

    /// Verifies `token`, fetching the JWKS when it names a key not yet cached (rate-limited).
    ///
    /// # Errors
    /// The specific [`AuthError`]; [`AuthError::KeysUnavailable`] (503) when the keys could not be
    /// fetched.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        match self.check(token) {
            Ok(principal) => Ok(principal),
            Err(Failure::Auth(e)) => Err(e),
            Err(Failure::UnknownKid) => {
                if let Some(cache) = &self.jwks {
                    cache.refresh().await?;
                }
                self.verify_cached(token)
            }
        }
    }

    /// Verifies `token` with the secret or the keys already cached, never fetching: the synchronous
    /// fast path (no `.await`, no I/O).
    ///
    /// # Errors
    /// As [`Verifier::verify`], with [`AuthError::UnknownKey`] for any key not cached yet.
    pub fn verify_cached(&self, token: &str) -> Result<Principal, AuthError> {
        self.check(token).map_err(|failure| match failure {
            Failure::Auth(e) => e,
            Failure::UnknownKid => AuthError::UnknownKey,
        })
    }

    /// Fetches the JWKS now unless a fetch finished within the refresh interval; a no-op without a
    /// JWKS. Call it at start-up to fail fast and to keep the first request off the fetch.
    ///
    /// # Errors
    /// [`AuthError::KeysUnavailable`] when the fetch failed.
    pub async fn refresh_keys(&self) -> Result<(), AuthError> {
        match &self.jwks {
            Some(cache) => cache.refresh().await,
            None => Ok(()),
        }
    }

    fn check(&self, token: &str) -> Result<Principal, Failure> {
        match self.decode(token, true)? {
            Decoded::Remembered(principal) => Ok(principal),
            Decoded::Claims(claims, digest) => {
                let principal = self.principal(claims)?;
                if let Some(digest) = digest {
                    self.remember(digest, &principal);
                }
                Ok(principal)
            }
        }
    }

    /// Verifies an OIDC identity token of a service account (Cloud Scheduler, Pub/Sub push) with
    /// the same rules as [`Verifier::verify`] (algorithm pinned by the key, `exp`, `iss`, `aud`),
    /// but instead of Quarry's `role`/`region` it requires a verified `email`, which it returns.
    /// Such tokens come rarely, so they are never remembered.
    ///
    /// # Errors
    /// As [`Verifier::verify`]; [`AuthError::MissingClaim`] without a verified `email`.
    pub async fn verify_service_account(&self, token: &str) -> Result<String, AuthError> {
        let first = self.check_service(token);
        match first {
            Err(Failure::UnknownKid) => {
                if let Some(cache) = &self.jwks {
                    cache.refresh().await?;
                }
                self.check_service(token).map_err(|f| match f {
                    Failure::Auth(e) => e,
                    Failure::UnknownKid => AuthError::UnknownKey,
                })
            }
            Err(Failure::Auth(e)) => Err(e),
            Ok(email) => Ok(email),
        }
    }

    fn check_service(&self, token: &str) -> Result<String, Failure> {
        let Decoded::Claims(claims, _) = self.decode(token, false)? else {
            return Err(AuthError::Malformed("unexpected cached token").into());
        };
        if claims
            .iat
            .is_some_and(|iat| iat > now_secs().saturating_add(self.leeway_secs))
        {
            return Err(AuthError::IssuedInFuture.into());
        }
        if claims.email_verified == Some(false) {
            return Err(AuthError::MissingClaim("email_verified").into());
        }
        claims
            .email
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| AuthError::MissingClaim("email").into())
    }

    /// Size, header, key and signature: everything but Quarry's own claims.
    fn decode(&self, token: &str, use_memory: bool) -> Result<Decoded, Failure> {
        if token.len() > self.max_token_bytes {
            return Err(AuthError::TooLarge {
                limit: self.max_token_bytes,
            }
            .into());
        }
        let header = peek_header(token)?;
        let alg = match header.alg.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            // Includes "none" and every algorithm Quarry does not configure.
            _ => return Err(AuthError::AlgorithmNotAllowed.into()),
        };
        let pinned: Arc<PinnedKey>;
        let (key, validation) = match alg {
            Algorithm::HS256 => {
                let key = self.hs256.as_ref().ok_or(AuthError::AlgorithmNotAllowed)?;
                (key, &self.hs256_validation)
            }
            _ => {
                let cache = self.jwks.as_ref().ok_or(AuthError::AlgorithmNotAllowed)?;
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                pinned = cache.get(kid).ok_or(Failure::UnknownKid)?;
                if pinned.alg != alg {
                    return Err(AuthError::AlgorithmNotAllowed.into());
                }
                let validation = if alg == Algorithm::RS256 {
                    &self.rs256_validation
                } else {
                    &self.es256_validation
                };
                (&pinned.key, validation)
            }
        };
        let digest: Option<[u8; 32]> = (use_memory && alg != Algorithm::HS256)
            .then(|| Sha256::digest(token.as_bytes()).into());
        if let Some(principal) = digest.as_ref().and_then(|d| self.remembered(d)) {
            return Ok(Decoded::Remembered(principal));
        }
        let claims = jsonwebtoken::decode::<RawClaims>(token, key, validation)
            .map_err(map_jwt_error)?
            .claims;
        Ok(Decoded::Claims(claims, digest))
    }

    /// A token verified before, still unexpired and remembered for less than [`VERIFIED_TTL`].
    fn remembered(&self, digest: &[u8; 32]) -> Option<Principal> {
        let cache = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (principal, at) = cache.get(digest)?;
        let fresh = at.elapsed() < VERIFIED_TTL
            && principal.exp.saturating_add(self.leeway_secs) >= now_secs();
        fresh.then(|| principal.clone())
    }

    pub(super) fn remember(&self, digest: [u8; 32], principal: &Principal) {
        let mut cache = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= VERIFIED_CAPACITY {
            let now = now_secs();
            cache.retain(|_, (p, at)| at.elapsed() < VERIFIED_TTL && p.exp >= now);
            if cache.len() >= VERIFIED_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(digest, (principal.clone(), Instant::now()));
    }

    fn principal(&self, claims: RawClaims) -> Result<Principal, AuthError> {
        if let Some(iat) = claims.iat {
            // jsonwebtoken does not check `iat`; a token from the future is forged or from a
            // badly wrong clock, either way not to be trusted.
            if iat > now_secs().saturating_add(self.leeway_secs) {
                return Err(AuthError::IssuedInFuture);
            }
        }
        let exp = claims.exp.ok_or(AuthError::MissingClaim("exp"))?;
        let required = |value: Option<String>, name: &'static str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or(AuthError::MissingClaim(name))
        };
        Ok(Principal {
            sub: required(claims.sub, "sub")?,
            role: required(claims.role, "role")?,
            region: required(claims.region, "region")?,
            exp,
            iss: claims.iss,
        })
    }
}

/// The `Validation` for one algorithm: `exp` required, `nbf` checked, `iss`/`aud` required and
/// checked when configured.
fn validation(alg: Algorithm, config: &VerifierConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = &config.issuer {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &config.audience {
        Some(audience) => {
            v.set_audience(&[audience]);
            required.push("aud");
        }
        // jsonwebtoken would otherwise refuse every token that carries an `aud`.
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

/// Decodes the header segment only; the signature is checked later, by jsonwebtoken.
fn peek_header(token: &str) -> Result<PeekedHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three dot-separated parts"));
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let header: PeekedHeader = serde_json::from_slice(&json)
        .map_err(|_| AuthError::Malformed("header is not a JSON object with 'alg'"))?;
    if header.crit.is_some() {
        return Err(AuthError::Malformed(
            "critical header extensions not supported",
        ));
    }
    Ok(header)
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        // A key that cannot verify (e.g. a JWK with a bad modulus) leaves the token unverified.
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            AuthError::BadSignature
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed,
        ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
        ErrorKind::InvalidAudience => AuthError::InvalidAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(match claim.as_str() {
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            "nbf" => "nbf",
            _ => "exp",
        }),
        ErrorKind::InvalidClaimFormat(_) => AuthError::Malformed("a time claim is not a number"),
        ErrorKind::Base64(_) => AuthError::Malformed("not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("claims are not a JSON object of the expected shape")
        }
        _ => AuthError::Malformed("not a valid JWT"),
    }
}

fn now_secs() -> i64 {
    // A clock before 1970 is a broken host; treating it as the epoch makes every token look
    // issued in the future, which fails closed.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
