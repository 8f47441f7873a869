//! Cloud Scheduler's nightly call: an OIDC identity token of a service account, verified against
//! the issuer's JWKS (a scripted stand-in for Google's `oauth2/v3/certs`, serving the wire format
//! Google does). Allowed accounts may run the advisor but never apply it; everything else is refused.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use quarry_shared::testing::{self, now, spawn_app, token, TestApp, TestDb};
use serde_json::{json, Value};

const JWKS: &str = include_str!("../../../shared/src/auth/testdata/jwks.json");
const RSA_PRIVATE: &[u8] = include_bytes!("../../../shared/src/auth/testdata/rsa_private.pem");
const AUDIENCE: &str = "https://index-advisor-abc123-ew.a.run.app";
const ACCOUNT: &str = "scheduler@quarry-prod.iam.gserviceaccount.com";

async fn google_certs() -> String {
    let router = Router::new().route(
        "/oauth2/v3/certs",
        get(|| async { ([("content-type", "application/json")], JWKS) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/oauth2/v3/certs")
}

/// An ID token shaped like the ones Google mints for Cloud Scheduler's OIDC target.
fn id_token(email: &str, audience: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".to_owned());
    let t = now();
    let claims = json!({
        "iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890",
        "sub": "1234567890", "email": email, "email_verified": true, "iat": t, "exp": t + 3600,
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap()
}

async fn post(app: &TestApp, bearer: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(app.url("/v1/advice/run"))
        .bearer_auth(bearer)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_scheduler_runs_the_advisor_with_its_oidc_token_but_cannot_apply() {
    let db = TestDb::from_template().await;
    let certs = google_certs().await;
    let settings = testing::settings_for(
        &db,
        &[
            ("SCHEDULER_OIDC_AUDIENCE", AUDIENCE),
            ("SCHEDULER_OIDC_SERVICE_ACCOUNTS", ACCOUNT),
            ("SCHEDULER_JWKS_URL", &certs),
        ],
    );
    let app = spawn_app(settings, vec![quarry_index_advisor::service()]).await;

    let (status, body) = post(&app, &id_token(ACCOUNT, AUDIENCE), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["statements"].is_number());

    let (status, body) = post(&app, &id_token(ACCOUNT, AUDIENCE), json!({"apply": true})).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (403, Some("urn:quarry:problem:admin-only")),
        "{body}"
    );

    let (status, body) = post(
        &app,
        &id_token("intruder@evil.iam.gserviceaccount.com", AUDIENCE),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (403, Some("urn:quarry:problem:service-account-not-allowed"))
    );

    let (status, body) = post(
        &app,
        &id_token(ACCOUNT, "https://some-other-service.run.app"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (401, Some("urn:quarry:problem:token-invalid-audience")),
        "{body}"
    );

    // User tokens still work as before: admin yes, others no.
    assert_eq!(
        post(&app, &token("ops", "admin", "emea"), json!({}))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&app, &token("ana", "analyst", "emea"), json!({}))
            .await
            .0,
        403
    );

    let owner = db.connect().await;
    let audited: Vec<(Option<String>, bool, String)> = owner
        .query("SELECT sub, allowed, reason FROM quarry_meta.audit_log WHERE role = 'service-account' ORDER BY audit_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        audited.contains(&(Some(ACCOUNT.to_owned()), true, "granted".to_owned())),
        "{audited:?}"
    );
    assert!(
        audited.contains(&(Some(ACCOUNT.to_owned()), false, "admin-only".to_owned())),
        "{audited:?}"
    );
}

#[tokio::test]
async fn without_scheduler_settings_oidc_tokens_are_just_bad_tokens() {
    let db = TestDb::from_template().await;
    let app = spawn_app(
        testing::settings_for(&db, &[]),
        vec![quarry_index_advisor::service()],
    )
    .await;
    let (status, _) = post(&app, &id_token(ACCOUNT, AUDIENCE), json!({})).await;
    assert_eq!(status, 401);
}
