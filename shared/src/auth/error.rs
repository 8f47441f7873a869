//! The errors of token verification, of building a [`Verifier`](super::Verifier), of fetching keys
//! and of minting tokens.
//!
//! No message here ever contains the token, a claim value taken from it or a secret: a `Display`
//! string may reach a log line or, for the 401-class errors, a client.

use std::time::Duration;

/// Why a request is not authenticated.
///
/// Every variant but [`AuthError::KeysUnavailable`] is the client's fault (401);
/// [`AuthError::KeysUnavailable`] is ours (503): the signing keys could not be fetched, so a valid
/// token cannot be told from a forged one. [`AuthError::slug`] gives the stable `type` slug for
/// `ApiError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header at all.
    #[error("no bearer token")]
    Missing,
    /// An `Authorization` header with a scheme other than `Bearer` (e.g. `Basic`).
    #[error("the Authorization scheme must be Bearer")]
    UnsupportedScheme,
    /// The header or the token is not well-formed; the reason is a fixed sentence, never input.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token is longer than the configured limit; rejected before any parsing.
    #[error("token larger than {limit} bytes")]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway): a clock far off or a forged token.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// The signature does not verify with the key the token names.
    #[error("token signature does not verify")]
    BadSignature,
    /// The header's `alg` is not one this verifier accepts for the key (including `none`).
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The token's `kid` is not in the key set, even after a refresh (or it names no `kid`).
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// A required claim is absent or empty; holds the claim's name.
    #[error("token lacks the required claim '{0}'")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("token issuer not accepted")]
    InvalidIssuer,
    /// `aud` does not name the configured audience.
    #[error("token audience not accepted")]
    InvalidAudience,
    /// The JWKS could not be fetched (or held no usable key); retry later (503).
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// The stable kebab-case slug clients match on (`urn:quarry:problem:<slug>`).
    pub fn slug(&self) -> &'static str {
        match self {
            Self::Missing => "token-missing",
            Self::UnsupportedScheme => "token-unsupported-scheme",
            Self::Malformed(_) => "token-malformed",
            Self::TooLarge { .. } => "token-too-large",
            Self::Expired => "token-expired",
            Self::NotYetValid => "token-not-yet-valid",
            Self::IssuedInFuture => "token-issued-in-future",
            Self::BadSignature => "token-bad-signature",
            Self::AlgorithmNotAllowed => "token-algorithm-not-allowed",
            Self::UnknownKey => "token-unknown-key",
            Self::MissingClaim(_) => "token-missing-claim",
            Self::InvalidIssuer => "token-invalid-issuer",
            Self::InvalidAudience => "token-invalid-audience",
            Self::KeysUnavailable => "jwks-unavailable",
        }
    }

    /// Whether this is our failure (503, retry later) rather than the client's (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable)
    }
}

/// A [`VerifierConfig`](super::VerifierConfig) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// Neither an HS256 secret nor a JWKS source is configured, so no token could ever verify.
    #[error("no token keys configured: set an HS256 secret (development) or a JWKS URL")]
    NoKeys,
    /// The HS256 secret is too short to resist brute force.
    #[error(
        "the HS256 secret must be at least {min} bytes, got {actual}; \
         generate one with `openssl rand -base64 48`"
    )]
    SecretTooShort {
        /// The minimum length in bytes.
        min: usize,
        /// The configured secret's length in bytes (not its value).
        actual: usize,
    },
    /// The HTTP client for the JWKS could not be built (TLS backend initialisation).
    #[cfg(feature = "server")]
    #[error("cannot build the JWKS HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A JWKS URL is configured but this build has no HTTP client to fetch it (the `server`
    /// feature is off, as in the WASM component): supply a [`KeySource`](super::KeySource), or the
    /// key set itself with [`Verifier::with_jwks`](super::Verifier::with_jwks).
    #[error("a JWKS URL needs the `server` feature's HTTP client; supply the key set instead")]
    NoFetcher,
    /// A key set given inline has no key this verifier can use (RS256 or ES256 with a `kid`).
    #[error("the JWKS holds no usable signing key (RS256 or ES256 with a kid)")]
    NoUsableKeys,
}

/// Why a [`KeySource`](super::KeySource) could not deliver the key set.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// The request did not complete (connection, TLS, reading the body).
    #[error("JWKS request failed")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The endpoint answered with a non-success status.
    #[error("JWKS endpoint answered HTTP {0}")]
    Status(u16),
    /// The document is larger than the size limit.
    #[error("JWKS document larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The document is not a JSON object with a `keys` array.
    #[error("JWKS document is not a JWK set")]
    Invalid(#[source] serde_json::Error),
    /// The fetch took longer than the configured deadline.
    #[error("JWKS fetch timed out after {0:?}")]
    Timeout(Duration),
    /// The set holds no key this verifier can use (RS256 or ES256 with a `kid`).
    #[error("JWKS holds no usable signing key")]
    NoUsableKeys,
}

/// A token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The secret is shorter than a verifier would accept.
    #[error("the HS256 secret must be at least {min} bytes, got {actual}")]
    SecretTooShort {
        /// The minimum length in bytes.
        min: usize,
        /// The given secret's length in bytes.
        actual: usize,
    },
    /// Encoding or signing failed.
    #[error("cannot encode the token")]
    Encode(#[source] jsonwebtoken::errors::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_unavailable_is_a_server_error() {
        assert!(AuthError::KeysUnavailable.is_unavailable());
        assert_eq!(AuthError::KeysUnavailable.slug(), "jwks-unavailable");
        for e in [
            AuthError::Missing,
            AuthError::Expired,
            AuthError::BadSignature,
            AuthError::MissingClaim("role"),
            AuthError::TooLarge { limit: 8192 },
        ] {
            assert!(!e.is_unavailable(), "{e:?}");
            assert!(e.slug().starts_with("token-"), "{e:?}");
        }
    }
}
