//! The claims Quarry reads from a token, the [`Principal`] it yields, and HS256 minting for
//! development and tests.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::error::MintError;
use super::verifier::MIN_SECRET_BYTES;

/// Who is calling: the verified claims that governance decisions are made on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The subject (user or service id).
    pub sub: String,
    /// The role policies are granted to.
    pub role: String,
    /// The data region the caller may act in.
    pub region: String,
    /// Expiry, seconds since the Unix epoch (lets a cache drop the principal in time).
    pub exp: i64,
    /// The issuer, when the token names one.
    pub iss: Option<String>,
}

/// The claims of a token minted by [`mint_hs256`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Subject.
    pub sub: String,
    /// Role.
    pub role: String,
    /// Region.
    pub region: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The claims as read from a token whose signature verified: everything optional, so that an absent
/// claim is reported by name ([`AuthError::MissingClaim`](super::AuthError::MissingClaim)) instead
/// of as an opaque JSON error.
#[derive(Deserialize)]
pub(crate) struct RawClaims {
    pub(crate) sub: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) exp: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) iss: Option<String>,
    // OIDC identity tokens of service accounts (Cloud Scheduler) name the caller by email.
    pub(crate) email: Option<String>,
    pub(crate) email_verified: Option<bool>,
}

/// Signs `claims` with HS256 under `secret`, for development logins and tests.
///
/// # Errors
/// [`MintError::SecretTooShort`] below 32 bytes (a verifier would refuse that secret anyway);
/// [`MintError::Encode`] if signing fails.
pub fn mint_hs256(secret: &[u8], claims: &TokenClaims) -> Result<String, MintError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(MintError::SecretTooShort {
            min: MIN_SECRET_BYTES,
            actual: secret.len(),
        });
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(MintError::Encode)
}

/// The `iss` claim of a token, read WITHOUT verifying anything: only for choosing which verifier
/// (user tokens or service-account OIDC tokens) gets to verify it. Never trust its answer.
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&json).ok()?.iss
}
