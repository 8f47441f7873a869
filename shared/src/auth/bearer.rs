//! Extracting the bearer token from a request's `Authorization` header(s) (RFC 6750 §2.1).
//!
//! The function takes every `Authorization` value, not just the first: a request with two of them
//! is ambiguous (a proxy may have added one), and picking either could authenticate the wrong
//! party, so it is refused.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use super::AuthError;

/// The bearer token of a request, from its headers.
///
/// # Errors
/// See [`bearer_token`].
pub fn bearer_token_from_headers(headers: &HeaderMap) -> Result<&str, AuthError> {
    bearer_token(headers.get_all(AUTHORIZATION))
}

/// The bearer token from all of a request's `Authorization` header values.
///
/// The scheme is matched case-insensitively (`Bearer`, `bearer`, `BEARER`); the token must be one
/// RFC 6750 `b64token` (letters, digits, `-._~+/`, trailing `=`).
///
/// # Errors
/// - [`AuthError::Missing`]: no `Authorization` header.
/// - [`AuthError::UnsupportedScheme`]: a scheme other than `Bearer`.
/// - [`AuthError::Malformed`]: two headers, `Bearer` with no token or with two, a value that is not
///   visible ASCII, or characters outside `b64token`.
pub fn bearer_token<'a, I>(values: I) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = &'a HeaderValue>,
{
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization header is not visible ASCII"))?
        .trim_matches(' ');
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::UnsupportedScheme);
    }
    // RFC 7235 allows one or more spaces after the scheme.
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::Malformed("Bearer with no token"));
    }
    if token.contains([' ', '\t']) {
        return Err(AuthError::Malformed("more than one token after Bearer"));
    }
    if !is_b64token(token) {
        return Err(AuthError::Malformed(
            "token has characters outside base64url",
        ));
    }
    Ok(token)
}

/// RFC 6750 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_table() {
        type Check = fn(&Result<&str, AuthError>) -> bool;
        let cases: &[(&str, &[&[u8]], Check)] = &[
            ("no header", &[], |r| *r == Err(AuthError::Missing)),
            ("bearer alone", &[b"Bearer"], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
            ("bearer and spaces", &[b"Bearer   "], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
            ("two tokens", &[b"Bearer a.b.c d.e.f"], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
            ("two headers", &[b"Bearer a.b.c", b"Bearer a.b.c"], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
            ("basic scheme", &[b"Basic dXNlcjpwdw=="], |r| {
                *r == Err(AuthError::UnsupportedScheme)
            }),
            ("bare token, no scheme", &[b"a.b.c"], |r| {
                *r == Err(AuthError::UnsupportedScheme)
            }),
            ("lower-case bearer", &[b"bearer a.b.c"], |r| {
                *r == Ok("a.b.c")
            }),
            ("upper-case bearer", &[b"BEARER a.b.c"], |r| {
                *r == Ok("a.b.c")
            }),
            ("extra spaces", &[b"Bearer   a.b.c "], |r| *r == Ok("a.b.c")),
            ("garbage characters", &[b"Bearer {\"alg\":1}"], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
            ("only padding", &[b"Bearer =="], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
            ("non-ASCII bytes", &[b"Bearer \xff\xfe"], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
            ("tab between tokens", &[b"Bearer a.b.c\td.e.f"], |r| {
                matches!(r, Err(AuthError::Malformed(_)))
            }),
        ];
        for (name, raw, check) in cases {
            let mut headers = HeaderMap::new();
            for value in *raw {
                headers.append(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
            }
            let result = bearer_token_from_headers(&headers);
            assert!(check(&result), "{name}: got {result:?}");
        }
    }
}
