//! RS256/ES256 tokens against a JWKS served over real HTTP by a scripted identity provider (the
//! one external service this test stands in for): keys fetched and cached, an unknown `kid`
//! answered 401 after one rate-limited refresh, and an unreachable JWKS answered 503, not 401.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use quarry_shared::testing::{self, now, spawn_app, TestApp, TestDb};
use serde_json::{json, Value};

const JWKS: &str = include_str!("../../../shared/src/auth/testdata/jwks.json");
const RSA_PRIVATE: &[u8] = include_bytes!("../../../shared/src/auth/testdata/rsa_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../../shared/src/auth/testdata/ec_private.pem");

/// A scripted identity provider serving the test JWKS and counting fetches.
async fn identity_provider() -> (SocketAddr, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let router = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { ([("content-type", "application/json")], JWKS) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, fetches)
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, role: &str) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let t = now();
    let claims = json!({"sub": "idp-user", "role": role, "region": "emea", "iat": t, "exp": t + 600,
                        "iss": "https://idp.quarry.test", "aud": "quarry"});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

async fn app_with_jwks(db: &TestDb, jwks_url: &str) -> TestApp {
    let settings = testing::settings_for(
        db,
        &[
            ("JWT_JWKS_URL", jwks_url),
            ("JWT_ISSUER", "https://idp.quarry.test"),
            ("JWT_AUDIENCE", "quarry"),
        ],
    );
    spawn_app(settings, vec![quarry_auth::service()]).await
}

async fn whoami(app: &TestApp, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(app.url("/v1/whoami"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_a_fetched_jwks() {
    let db = TestDb::from_template().await;
    let (idp, fetches) = identity_provider().await;
    let app = app_with_jwks(&db, &format!("http://{idp}/.well-known/jwks.json")).await;

    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    let (status, me) = whoami(&app, &sign(Algorithm::RS256, "rsa-1", &rsa, "analyst")).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["sub"], "idp-user");
    let (status, _) = whoami(&app, &sign(Algorithm::ES256, "ec-1", &ec, "catalog")).await;
    assert_eq!(status, 200);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "the key set is fetched once and cached"
    );

    // A kid the provider does not have: one refresh (rate-limited), then 401.
    let (status, body) = whoami(
        &app,
        &sign(Algorithm::RS256, "rotated-away", &rsa, "analyst"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "urn:quarry:problem:token-unknown-key");
    let (status, _) = whoami(
        &app,
        &sign(Algorithm::RS256, "another-unknown", &rsa, "analyst"),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        fetches.load(Ordering::SeqCst) <= 2,
        "unknown kids must not trigger a fetch each"
    );

    // HS256 is refused outright when only a JWKS is configured (no secret to confuse it with).
    let hs = quarry_shared::auth::mint_hs256(
        testing::TEST_JWT_SECRET.as_bytes(),
        &quarry_shared::auth::TokenClaims {
            sub: "x".into(),
            role: "admin".into(),
            region: "emea".into(),
            iat: now(),
            exp: now() + 600,
            nbf: None,
            iss: Some("https://idp.quarry.test".into()),
            aud: Some("quarry".into()),
        },
    )
    .unwrap();
    let settings = testing::settings_for(
        &db,
        &[(
            "JWT_JWKS_URL",
            &format!("http://{idp}/.well-known/jwks.json"),
        )],
    );
    // The test settings carry a secret; this app must have none.
    let mut settings = settings;
    settings.jwt_secret = None;
    let jwks_only = spawn_app(settings, vec![quarry_auth::service()]).await;
    let (status, body) = whoami(&jwks_only, &hs).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["type"],
        "urn:quarry:problem:token-algorithm-not-allowed"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_503_not_a_401() {
    let db = TestDb::from_template().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = app_with_jwks(&db, &format!("http://{dead}/jwks.json")).await;
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let response = reqwest::Client::new()
        .get(app.url("/v1/whoami"))
        .bearer_auth(sign(Algorithm::RS256, "rsa-1", &rsa, "analyst"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.json::<Value>().await.unwrap()["type"],
        "urn:quarry:problem:jwks-unavailable"
    );
}
