//! Bearer-token authentication: from the `Authorization` header to a verified [`Principal`].
//!
//! - [`bearer_token`] / [`bearer_token_from_headers`]: the token of a request, or why there is none.
//! - [`Verifier`]: checks a JWT (size, algorithm pinned by the key, signature, `exp`/`nbf`/`iat`,
//!   `iss`/`aud`, the claims `sub`, `role`, `region`) and yields a [`Principal`]. HS256 with a shared
//!   secret for development; RS256/ES256 against a JWKS, cached, refreshed on an unknown `kid` at
//!   most once per interval.
//! - [`KeySource`]: the seam where the JWKS comes from; `HttpJwks` (feature `server`) fetches it
//!   with `reqwest`, [`StaticJwks`] serves a set given as configuration (the WASM component).
//! - [`AuthError`]: one variant per reason, each with a stable [`AuthError::slug`];
//!   [`AuthError::is_unavailable`] separates our 503 from the client's 401.
//! - [`mint_hs256`]: tokens for development logins and tests.
//!
//! The module is pure: no axum extractor and no status codes (those belong to `http::ApiError`).
//! Its benchmark is `cargo bench -p quarry-shared --bench auth`.

mod bearer;
mod claims;
mod error;
mod keys;
mod verifier;

#[cfg(test)]
mod tests;

pub use bearer::{bearer_token, bearer_token_from_headers};
pub use claims::{mint_hs256, unverified_issuer, Principal, TokenClaims};
pub use error::{AuthConfigError, AuthError, KeySourceError, MintError};
// Re-exported so a `KeySource` implementation needs no direct jsonwebtoken dependency.
pub use jsonwebtoken::jwk::JwkSet;
#[cfg(feature = "server")]
pub use keys::HttpJwks;
pub use keys::{parse_jwk_set, KeySource, StaticJwks, MAX_JWKS_BYTES};
pub use verifier::{Verifier, VerifierConfig};
