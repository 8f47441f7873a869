//! Verification tests: one table of tokens and the exact error each must produce, plus the JWKS
//! cache's refresh rules, with a counting fake [`KeySource`] (no network).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
const RSA_PRIVATE: &[u8] = include_bytes!("testdata/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("testdata/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("testdata/ec_private.pem");
const JWKS: &[u8] = include_bytes!("testdata/jwks.json");
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "quarry";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({
        "sub": "user-1", "role": "analyst", "region": "eu",
        "exp": now() + 600, "iat": now(), "iss": ISSUER, "aud": AUDIENCE,
    })
}

/// The standard claims with `edit` applied (`null` removes a claim).
fn claims_with(edit: Value) -> Value {
    let mut c = claims();
    for (k, v) in edit.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
}

fn rs(kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    sign(Algorithm::RS256, Some(kid), claims, &key)
}

fn es(kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    sign(Algorithm::ES256, Some(kid), claims, &key)
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A token from raw header and payload text, HS256-signed with the test secret (whatever `alg`
/// the header claims), so only the part under test is wrong.
fn hs_raw(header: &str, payload: &str) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

/// Serves a settable JWKS (or an HTTP status as failure) and counts fetches.
struct FakeKeys {
    set: Mutex<Result<JwkSet, u16>>,
    calls: AtomicUsize,
    delay: Duration,
}

impl FakeKeys {
    fn new(set: Result<JwkSet, u16>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            set: Mutex::new(set),
            calls: AtomicUsize::new(0),
            delay,
        })
    }

    fn test_set() -> JwkSet {
        parse_jwk_set(JWKS).unwrap()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl KeySource for FakeKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, KeySourceError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            match &*self.set.lock().unwrap() {
                Ok(set) => Ok(set.clone()),
                Err(status) => Err(KeySourceError::Status(*status)),
            }
        })
    }
}

fn config() -> VerifierConfig {
    VerifierConfig {
        hs256_secret: Some(SECRET.into()),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..VerifierConfig::default()
    }
}

/// HS256 and the JWKS (RS256 `rsa-1`, ES256 `ec-1`) both configured.
fn both(keys: &Arc<FakeKeys>) -> Verifier {
    Verifier::new(config(), Some(keys.clone() as Arc<dyn KeySource>)).unwrap()
}

/// Only the JWKS: no HS256 secret.
fn jwks_only(keys: &Arc<FakeKeys>, interval: Duration) -> Verifier {
    let config = VerifierConfig {
        hs256_secret: None,
        jwks_refresh_min_interval: interval,
        ..config()
    };
    Verifier::new(config, Some(keys.clone() as Arc<dyn KeySource>)).unwrap()
}

type Check = fn(&Result<Principal, AuthError>) -> bool;
/// What a table row expects of its result.
type Expect = Box<dyn Fn(&Result<Principal, AuthError>) -> bool>;

fn is(expected: AuthError) -> impl Fn(&Result<Principal, AuthError>) -> bool {
    move |r| r.as_ref().err() == Some(&expected)
}

#[tokio::test]
async fn token_table() {
    let ok: Check = |r| r.is_ok();
    let malformed: Check = |r| matches!(r, Err(AuthError::Malformed(_)));
    let long = format!(
        "{}.{}.sig",
        b64("{\"alg\":\"HS256\"}"),
        "a".repeat(100 * 1024)
    );
    let rsa_public_as_secret = EncodingKey::from_secret(RSA_PUBLIC);
    let confusion = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &claims(),
        &rsa_public_as_secret,
    );
    let mut tampered: Vec<String> = rs("rsa-1", &claims())
        .split('.')
        .map(String::from)
        .collect();
    tampered[1] = b64(&claims_with(json!({"role": "admin"})).to_string());
    let tampered = tampered.join(".");

    let cases: Vec<(&str, String, Expect)> = vec![
        ("valid HS256", hs(&claims()), Box::new(ok)),
        ("valid RS256 via JWKS", rs("rsa-1", &claims()), Box::new(ok)),
        ("valid ES256 via JWKS", es("ec-1", &claims()), Box::new(ok)),
        ("empty token", String::new(), Box::new(malformed)),
        ("two parts", "abc.def".into(), Box::new(malformed)),
        (
            "four parts",
            format!("{}.x", hs(&claims())),
            Box::new(malformed),
        ),
        ("garbage base64", "!!!.@@@.###".into(), Box::new(malformed)),
        (
            "valid base64 of non-JSON",
            format!("{}.{}.{}", b64("hello"), b64("world"), b64("sig")),
            Box::new(malformed),
        ),
        (
            "signed payload that is not JSON",
            hs_raw(r#"{"alg":"HS256"}"#, "not json"),
            Box::new(malformed),
        ),
        (
            "exp as a string",
            hs(&claims_with(json!({"exp": "tomorrow"}))),
            Box::new(malformed),
        ),
        (
            "critical header extension",
            hs_raw(r#"{"alg":"HS256","crit":["b64"]}"#, &claims().to_string()),
            Box::new(malformed),
        ),
        (
            "100 KiB token",
            long,
            Box::new(is(AuthError::TooLarge { limit: 8192 })),
        ),
        (
            "expired",
            hs(&claims_with(json!({"exp": now() - 120}))),
            Box::new(is(AuthError::Expired)),
        ),
        (
            "expired within leeway",
            hs(&claims_with(json!({"exp": now() - 10}))),
            Box::new(ok),
        ),
        (
            "nbf in the future",
            hs(&claims_with(json!({"nbf": now() + 120}))),
            Box::new(is(AuthError::NotYetValid)),
        ),
        (
            "nbf within leeway",
            hs(&claims_with(json!({"nbf": now() + 10}))),
            Box::new(ok),
        ),
        (
            "iat in the future",
            hs(&claims_with(json!({"iat": now() + 120}))),
            Box::new(is(AuthError::IssuedInFuture)),
        ),
        (
            "iat within leeway",
            hs(&claims_with(json!({"iat": now() + 10}))),
            Box::new(ok),
        ),
        (
            "wrong HS256 secret",
            sign(
                Algorithm::HS256,
                None,
                &claims(),
                &EncodingKey::from_secret(b"another-secret-0123456789abcdef-0123"),
            ),
            Box::new(is(AuthError::BadSignature)),
        ),
        (
            "tampered RS256 payload",
            tampered,
            Box::new(is(AuthError::BadSignature)),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&claims().to_string())
            ),
            Box::new(is(AuthError::AlgorithmNotAllowed)),
        ),
        (
            "alg None (case variant)",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"None"}"#),
                b64(&claims().to_string())
            ),
            Box::new(is(AuthError::AlgorithmNotAllowed)),
        ),
        (
            "alg HS512 not configured",
            hs_raw(r#"{"alg":"HS512"}"#, &claims().to_string()),
            Box::new(is(AuthError::AlgorithmNotAllowed)),
        ),
        (
            "HS256 with the RSA public key while a secret is configured",
            confusion.clone(),
            Box::new(is(AuthError::BadSignature)),
        ),
        (
            "RS256 token naming the ES256 key",
            sign(
                Algorithm::RS256,
                Some("ec-1"),
                &claims(),
                &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            ),
            Box::new(is(AuthError::AlgorithmNotAllowed)),
        ),
        (
            "RS256 without kid",
            sign(
                Algorithm::RS256,
                None,
                &claims(),
                &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            ),
            Box::new(is(AuthError::UnknownKey)),
        ),
        (
            "missing sub",
            hs(&claims_with(json!({"sub": null}))),
            Box::new(is(AuthError::MissingClaim("sub"))),
        ),
        (
            "missing role",
            hs(&claims_with(json!({"role": null}))),
            Box::new(is(AuthError::MissingClaim("role"))),
        ),
        (
            "missing region",
            hs(&claims_with(json!({"region": null}))),
            Box::new(is(AuthError::MissingClaim("region"))),
        ),
        (
            "empty role",
            hs(&claims_with(json!({"role": ""}))),
            Box::new(is(AuthError::MissingClaim("role"))),
        ),
        (
            "blank region",
            rs("rsa-1", &claims_with(json!({"region": "  "}))),
            Box::new(is(AuthError::MissingClaim("region"))),
        ),
        (
            "missing exp",
            hs(&claims_with(json!({"exp": null}))),
            Box::new(is(AuthError::MissingClaim("exp"))),
        ),
        (
            "wrong iss",
            hs(&claims_with(json!({"iss": "https://evil.test"}))),
            Box::new(is(AuthError::InvalidIssuer)),
        ),
        (
            "missing iss",
            hs(&claims_with(json!({"iss": null}))),
            Box::new(is(AuthError::MissingClaim("iss"))),
        ),
        (
            "wrong aud",
            es("ec-1", &claims_with(json!({"aud": "someone-else"}))),
            Box::new(is(AuthError::InvalidAudience)),
        ),
        (
            "aud list naming us",
            hs(&claims_with(json!({"aud": ["other", AUDIENCE]}))),
            Box::new(ok),
        ),
        (
            "missing aud",
            hs(&claims_with(json!({"aud": null}))),
            Box::new(is(AuthError::MissingClaim("aud"))),
        ),
    ];

    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::ZERO);
    let verifier = both(&keys);
    for (name, token, check) in &cases {
        let result = verifier.verify(token).await;
        assert!(check(&result), "{name}: got {result:?}");
        if let Err(e) = &result {
            // Messages may reach logs and clients: never the token or the secret.
            let message = e.to_string();
            assert!(
                token.is_empty() || !message.contains(token.as_str()),
                "{name}"
            );
            assert!(!message.contains(SECRET), "{name}");
        }
    }
    assert_eq!(
        keys.calls(),
        1,
        "the JWKS is fetched once for the whole table"
    );

    // The happy paths yield the claims.
    let principal = verifier.verify(&es("ec-1", &claims())).await.unwrap();
    assert_eq!(
        (
            principal.sub.as_str(),
            principal.role.as_str(),
            principal.region.as_str()
        ),
        ("user-1", "analyst", "eu")
    );
    assert_eq!(principal.iss.as_deref(), Some(ISSUER));
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused_when_only_jwks_is_configured() {
    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::ZERO);
    let verifier = jwks_only(&keys, Duration::from_secs(30));
    let public_as_secret = EncodingKey::from_secret(RSA_PUBLIC);
    for kid in [Some("rsa-1"), None] {
        let token = sign(Algorithm::HS256, kid, &claims(), &public_as_secret);
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::AlgorithmNotAllowed),
            "kid {kid:?}"
        );
    }
    // Refused on the header alone: no key was needed, so none was fetched.
    assert_eq!(keys.calls(), 0);
    assert!(verifier.verify(&rs("rsa-1", &claims())).await.is_ok());
    assert!(verifier.verify(&es("ec-1", &claims())).await.is_ok());
}

#[tokio::test]
async fn unknown_kids_trigger_one_refresh_per_interval() {
    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::ZERO);
    let verifier = jwks_only(&keys, Duration::from_secs(30));
    assert_eq!(
        verifier.verify(&rs("nope-1", &claims())).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(keys.calls(), 1);
    assert_eq!(
        verifier.verify(&rs("nope-2", &claims())).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(
        keys.calls(),
        1,
        "a second unknown kid within the interval does not refetch"
    );
    // Keys fetched by that refresh serve later tokens without another fetch.
    assert!(verifier.verify(&rs("rsa-1", &claims())).await.is_ok());
    assert_eq!(keys.calls(), 1);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_once_the_interval_has_passed() {
    let only_ec = JwkSet {
        keys: FakeKeys::test_set()
            .keys
            .into_iter()
            .filter(|k| k.common.key_id.as_deref() == Some("ec-1"))
            .collect(),
    };
    let keys = FakeKeys::new(Ok(only_ec), Duration::ZERO);
    // A zero interval stands in for "the interval has passed" without sleeping.
    let verifier = jwks_only(&keys, Duration::ZERO);
    let token = rs("rsa-1", &claims());
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
    *keys.set.lock().unwrap() = Ok(FakeKeys::test_set());
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(keys.calls(), 2);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refresh() {
    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::from_millis(50));
    let verifier = jwks_only(&keys, Duration::from_secs(30));
    let tokens = [
        rs("nope-a", &claims()),
        rs("nope-b", &claims()),
        rs("rsa-1", &claims()),
    ];
    let (a, b, c) = tokio::join!(
        verifier.verify(&tokens[0]),
        verifier.verify(&tokens[1]),
        verifier.verify(&tokens[2]),
    );
    assert_eq!(a, Err(AuthError::UnknownKey));
    assert_eq!(b, Err(AuthError::UnknownKey));
    assert!(c.is_ok(), "{c:?}");
    assert_eq!(keys.calls(), 1);
}

#[tokio::test]
async fn a_failed_fetch_makes_keys_unavailable_and_is_rate_limited_too() {
    let keys = FakeKeys::new(Err(500), Duration::ZERO);
    let verifier = jwks_only(&keys, Duration::from_secs(30));
    let token = rs("rsa-1", &claims());
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err, AuthError::KeysUnavailable);
    assert!(err.is_unavailable());
    assert_eq!(err.slug(), "jwks-unavailable");
    // Within the interval the IdP is not hammered, and the answer stays 503, not 401.
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(keys.calls(), 1);
}

#[tokio::test]
async fn a_slow_key_source_times_out() {
    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::from_secs(5));
    let config = VerifierConfig {
        hs256_secret: None,
        jwks_fetch_timeout: Duration::from_millis(50),
        ..config()
    };
    let verifier = Verifier::new(config, Some(keys.clone() as Arc<dyn KeySource>)).unwrap();
    assert_eq!(
        verifier.verify(&rs("rsa-1", &claims())).await,
        Err(AuthError::KeysUnavailable)
    );
}

#[tokio::test]
async fn a_set_without_usable_keys_keeps_the_previous_keys() {
    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::ZERO);
    let verifier = jwks_only(&keys, Duration::ZERO);
    verifier.refresh_keys().await.unwrap();
    *keys.set.lock().unwrap() = Ok(JwkSet { keys: vec![] });
    assert_eq!(
        verifier.refresh_keys().await,
        Err(AuthError::KeysUnavailable)
    );
    assert!(verifier.verify_cached(&rs("rsa-1", &claims())).is_ok());
}

#[test]
fn verify_cached_never_fetches() {
    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::ZERO);
    let verifier = both(&keys);
    assert!(verifier.verify_cached(&hs(&claims())).is_ok());
    assert_eq!(
        verifier.verify_cached(&rs("rsa-1", &claims())),
        Err(AuthError::UnknownKey)
    );
    assert_eq!(keys.calls(), 0);
}

#[test]
fn aud_is_not_checked_when_no_audience_is_configured() {
    let config = VerifierConfig {
        audience: None,
        issuer: None,
        ..config()
    };
    let verifier = Verifier::new(config, None).unwrap();
    let token = hs(&claims_with(
        json!({"aud": "anyone", "iss": "https://anyone.test"}),
    ));
    assert!(verifier.verify_cached(&token).is_ok());
}

#[test]
fn configuration_is_checked() {
    let none = VerifierConfig::default();
    assert!(matches!(
        Verifier::new(none, None),
        Err(AuthConfigError::NoKeys)
    ));
    let short = VerifierConfig {
        hs256_secret: Some("too-short-secret".into()),
        ..VerifierConfig::default()
    };
    let err = Verifier::new(short, None).unwrap_err();
    assert!(matches!(
        err,
        AuthConfigError::SecretTooShort {
            min: 32,
            actual: 16
        }
    ));
    assert!(!err.to_string().contains("too-short-secret"));
    // Neither the config's nor the verifier's Debug shows the secret.
    assert!(!format!("{:?}", config()).contains(SECRET));
    let verifier = Verifier::new(config(), None).unwrap();
    assert!(!format!("{verifier:?}").contains(SECRET));
    // A JWKS URL alone is enough: the verifier builds its own HTTP source.
    let url_only = VerifierConfig {
        jwks_url: Some("https://issuer.test/.well-known/jwks.json".parse().unwrap()),
        ..VerifierConfig::default()
    };
    assert!(Verifier::new(url_only, None).is_ok());
}

#[test]
fn minted_tokens_verify() {
    let claims = TokenClaims {
        sub: "dev".into(),
        role: "admin".into(),
        region: "us".into(),
        exp: now() + 60,
        iat: now(),
        nbf: Some(now()),
        iss: Some(ISSUER.into()),
        aud: Some(AUDIENCE.into()),
    };
    let token = mint_hs256(SECRET.as_bytes(), &claims).unwrap();
    let principal = Verifier::new(config(), None)
        .unwrap()
        .verify_cached(&token)
        .unwrap();
    assert_eq!(
        principal,
        Principal {
            sub: "dev".into(),
            role: "admin".into(),
            region: "us".into(),
            exp: claims.exp,
            iss: Some(ISSUER.into()),
        }
    );
    assert!(matches!(
        mint_hs256(b"short", &claims),
        Err(MintError::SecretTooShort { .. })
    ));
}

#[tokio::test]
async fn verified_asymmetric_tokens_are_remembered_but_expiry_and_tampering_still_count() {
    let keys = FakeKeys::new(Ok(FakeKeys::test_set()), Duration::ZERO);
    let verifier = jwks_only(&keys, Duration::from_secs(30));
    let token = rs("rsa-1", &claims());
    let first = verifier.verify(&token).await.unwrap();
    assert_eq!(
        verifier.verify_cached(&token).unwrap(),
        first,
        "a remembered token verifies again"
    );

    // A different signature is a different token: it is checked, not looked up.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(verifier.verify_cached(&tampered).is_err());

    // A token already past its expiry (beyond the leeway) is refused even if it was remembered:
    // remember one by hand with an exp in the past, as if it had expired since.
    let expired = rs("rsa-1", &claims_with(json!({"exp": now() - 3600})));
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(expired.as_bytes()).into();
    let principal = Principal {
        sub: "u".into(),
        role: "admin".into(),
        region: "emea".into(),
        exp: now() - 3600,
        iss: None,
    };
    verifier.remember(digest, &principal);
    assert_eq!(verifier.verify_cached(&expired), Err(AuthError::Expired));
}

#[test]
fn a_key_set_given_as_configuration_verifies_without_any_fetch() {
    let set = parse_jwk_set(JWKS).unwrap();
    let config = VerifierConfig {
        hs256_secret: None,
        ..config()
    };
    let verifier = Verifier::with_jwks(config.clone(), set).unwrap();
    // The synchronous path: the keys are installed already, nothing to fetch.
    assert_eq!(
        verifier.verify_cached(&rs("rsa-1", &claims())).unwrap().sub,
        "user-1"
    );
    assert_eq!(
        verifier.verify_cached(&es("ec-1", &claims())).unwrap().sub,
        "user-1"
    );
    assert_eq!(
        verifier.verify_cached(&rs("rsa-2", &claims())),
        Err(AuthError::UnknownKey)
    );
    assert_eq!(
        verifier.verify_cached(&hs(&claims())),
        Err(AuthError::AlgorithmNotAllowed)
    );
    // A set with no usable key is a configuration error, not a verifier that refuses everything.
    let empty =
        parse_jwk_set(br#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#).unwrap();
    assert!(matches!(
        Verifier::with_jwks(config, empty),
        Err(AuthConfigError::NoUsableKeys)
    ));
}
