//! The bad-token matrix of the Governance tests: each case is a set of `Authorization` header
//! values and the status and problem slug every Quarry function must answer with. Shared so that
//! the native `auth` tests and the WASM component's tests check the very same cases.
//!
//! The cases assume a verifier with the test secret ([`super::TEST_JWT_SECRET`]), [`ISSUER`] and
//! [`AUDIENCE`] required, and the demo policy (roles admin, analyst, finance, catalog).

use serde_json::{json, Value};

use super::{now, TEST_JWT_SECRET};
use crate::auth::{mint_hs256, TokenClaims};

/// The `iss` the matrix's verifier requires (`JWT_ISSUER`).
pub const ISSUER: &str = "https://issuer.quarry.test";
/// The `aud` the matrix's verifier requires (`JWT_AUDIENCE`).
pub const AUDIENCE: &str = "quarry";

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct TokenCase {
    /// What the case is, for assertion messages.
    pub name: &'static str,
    /// The `Authorization` header values sent (none, one, or two).
    pub authorization: Vec<String>,
    /// The expected status.
    pub status: u16,
    /// The expected problem slug (`urn:quarry:problem:<slug>`), also the audit row's reason.
    pub slug: &'static str,
}

/// Claims for `sub`/`role`/`region`, issued now, expiring in ten minutes, without `iss`/`aud`.
pub fn claims(sub: &str, role: &str, region: &str) -> TokenClaims {
    let t = now();
    TokenClaims {
        sub: sub.into(),
        role: role.into(),
        region: region.into(),
        iat: t,
        exp: t + 600,
        nbf: None,
        iss: None,
        aud: None,
    }
}

/// `c` signed with the test secret.
pub fn sign(c: &TokenClaims) -> String {
    mint_hs256(TEST_JWT_SECRET.as_bytes(), c).unwrap_or_else(|e| panic!("mint: {e}"))
}

/// A token accepted by the matrix's verifier (issuer and audience set).
pub fn valid(sub: &str, role: &str, region: &str) -> String {
    let mut c = claims(sub, role, region);
    c.iss = Some(ISSUER.into());
    c.aud = Some(AUDIENCE.into());
    sign(&c)
}

/// Unpadded base64url, written out so the tests do not trust the encoder under test.
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A token with this header and these claims and a given signature segment.
pub fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        signature
    )
}

/// The matrix, and the valid token (bob, analyst, emea) its forgeries start from.
pub fn bad_token_cases() -> (String, Vec<TokenCase>) {
    let with = |f: &dyn Fn(&mut TokenClaims)| {
        let mut c = claims("bob", "analyst", "emea");
        c.iss = Some(ISSUER.into());
        c.aud = Some(AUDIENCE.into());
        f(&mut c);
        sign(&c)
    };
    let valid = with(&|_| {});
    let mut parts = valid.split('.');
    let (h, p) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let t = now();
    let unsigned = raw_token(
        &json!({"alg": "none", "typ": "JWT"}),
        &json!({"sub": "bob", "role": "admin", "region": "emea", "exp": t + 600, "iss": ISSUER, "aud": AUDIENCE}),
        "",
    );
    let rs256 = raw_token(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &json!({"sub": "bob", "role": "admin", "region": "emea", "exp": t + 600}),
        "c2lnbmF0dXJl",
    );
    let case = |name, authorization: Vec<String>, status, slug| TokenCase {
        name,
        authorization,
        status,
        slug,
    };
    let bearer = |token: String| vec![format!("Bearer {token}")];
    let cases = vec![
        case("no header", vec![], 401, "token-missing"),
        case(
            "Bearer with nothing",
            vec!["Bearer ".into()],
            401,
            "token-malformed",
        ),
        case(
            "two tokens",
            vec![format!("Bearer {valid} {valid}")],
            401,
            "token-malformed",
        ),
        case(
            "two headers",
            vec![format!("Bearer {valid}"), format!("Bearer {valid}")],
            401,
            "token-malformed",
        ),
        case(
            "basic scheme",
            vec!["Basic dXNlcjpwYXNz".into()],
            401,
            "token-unsupported-scheme",
        ),
        case(
            "garbage base64",
            vec!["Bearer !!!.@@@.###".into()],
            401,
            "token-malformed",
        ),
        case(
            "base64 of non-JSON",
            bearer(format!(
                "{}.{}.{}",
                b64(b"not json"),
                b64(b"nor this"),
                b64(b"sig")
            )),
            401,
            "token-malformed",
        ),
        case(
            "expired",
            bearer(with(&|c| c.exp = now() - 3600)),
            401,
            "token-expired",
        ),
        case(
            "nbf in the future",
            bearer(with(&|c| c.nbf = Some(now() + 3600))),
            401,
            "token-not-yet-valid",
        ),
        case(
            "wrong signature",
            bearer(format!("{h}.{p}.{}", b64(&[7u8; 32]))),
            401,
            "token-bad-signature",
        ),
        case(
            "alg none",
            bearer(unsigned),
            401,
            "token-algorithm-not-allowed",
        ),
        case(
            "RS256 where only HS256 is configured",
            bearer(rs256),
            401,
            "token-algorithm-not-allowed",
        ),
        case(
            "missing role",
            bearer(with(&|c| c.role = String::new())),
            401,
            "token-missing-claim",
        ),
        case(
            "missing region",
            bearer(with(&|c| c.region = String::new())),
            401,
            "token-missing-claim",
        ),
        case(
            "missing sub",
            bearer(with(&|c| c.sub = String::new())),
            401,
            "token-missing-claim",
        ),
        case(
            "wrong iss",
            bearer(with(&|c| c.iss = Some("https://evil.test".into()))),
            401,
            "token-invalid-issuer",
        ),
        case(
            "wrong aud",
            bearer(with(&|c| c.aud = Some("other".into()))),
            401,
            "token-invalid-audience",
        ),
        case(
            "token of 100 KiB",
            bearer("a".repeat(100 * 1024)),
            401,
            "token-too-large",
        ),
        case(
            "unknown role",
            bearer(with(&|c| c.role = "intern".into())),
            403,
            "role-unknown",
        ),
        case(
            "region not allowed",
            bearer(with(&|c| c.region = "mars".into())),
            403,
            "region-not-allowed",
        ),
    ];
    (valid, cases)
}
