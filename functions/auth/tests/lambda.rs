//! The `auth` router under AWS Lambda (feature `lambda`): API Gateway HTTP API events (payload
//! 2.0) from a JSON fixture go through `lambda_http`'s own adapter, the one `lambda_http::run`
//! serves with, into the same axum router the server runs, and its answers come back as API
//! Gateway responses. The stack's database backs the router, as in the other integration tests.

use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent};
use quarry_shared::http::server;
use quarry_shared::state::AppState;
use quarry_shared::testing::{self, token, TestDb};
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("fixtures/apigw_v2_request.json");

/// The fixture as `method path`, with these extra headers and body.
fn event(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> LambdaRequest {
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    for (name, value) in headers {
        event["headers"][*name] = json!(value);
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    serde_json::from_value(event).unwrap()
}

/// Sends one event through lambda_http's adapter and returns the API Gateway response as JSON.
async fn invoke(router: axum::Router, request: LambdaRequest) -> Value {
    let response = Adapter::from(router)
        .oneshot(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn lambda_api_gateway_events_reach_the_same_router() {
    let db = TestDb::from_template().await;
    let settings = testing::settings_for(&db, &[("TRUST_FORWARDED_FOR", "true")]);
    let services = vec![quarry_auth::service()];
    let state = AppState::build(settings, "auth", &[]).unwrap();
    let (router, _) = server::app(state, &services);

    // Without a token: the problem+json 401, headers and all.
    let response = invoke(router.clone(), event("GET", "/v1/whoami", &[], None)).await;
    assert_eq!(response["statusCode"], 401, "{response}");
    assert_eq!(
        response["headers"]["content-type"], "application/problem+json",
        "{response}"
    );
    assert_eq!(
        response["headers"]["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(response["headers"]["x-request-id"], "lambda-fixture");
    let problem = body(&response);
    assert_eq!(problem["type"], "urn:quarry:problem:token-missing");
    assert_eq!(problem["request_id"], "lambda-fixture");

    // With one: the caller as the policy sees them.
    let bearer = format!("Bearer {}", token("alice", "finance", "emea"));
    let response = invoke(
        router.clone(),
        event("GET", "/v1/whoami", &[("authorization", &bearer)], None),
    )
    .await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["headers"]["content-type"], "application/json");
    let me = body(&response);
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["role"], "finance");
    assert_eq!(me["row_scope"], "own_region");

    // A POST with a JSON body, as API Gateway delivers it.
    let response = invoke(
        router.clone(),
        event(
            "POST",
            "/v1/authorize",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            Some(r#"{"action": "read", "resource": "column:public.customer.email"}"#),
        ),
    )
    .await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(
        body(&response),
        json!({"allow": false, "reason": "column:public.customer.email", "role": "finance", "region": "emea"})
    );

    // Every decision was audited, as under the server.
    let owner = db.connect().await;
    let rows = owner
        .query(
            "SELECT count(*) FROM quarry_meta.audit_log WHERE sub = 'alice' AND function = 'auth'",
            &[],
        )
        .await
        .unwrap();
    assert!(rows[0].get::<_, i64>(0) >= 2);
}
