//! The `auth` WASM component against the native `auth` function: the same requests (the
//! Governance bad-token matrix, valid tokens of every role from several regions, every kind of
//! resource, malformed bodies, unknown routes and methods) must get the same status, headers that
//! matter and body from both. The native side runs in-process on port 0 against a copy of the
//! template database; the component runs under wasmtime with the policy that database holds,
//! exported as `quarry policy export` does.
//!
//! Needs the stack (`make test` sets `DATABASE_URL` etc.) and the component, which
//! `scripts/test.sh` builds before the tests (or `build_component` builds here).

use std::time::Duration;

use bytes::Bytes;
use quarry_auth_wasm_test::{build_component, Allocation, Answer, Host};
use quarry_shared::policy::document;
use quarry_shared::testing::tokens::{self, TokenCase};
use quarry_shared::testing::{self, spawn_app, TestApp, TestDb, TEST_JWT_SECRET};
use serde_json::{json, Value};

/// One request of the matrix, sent to both sides.
#[derive(Debug, Clone)]
struct Ask {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
}

fn get(path: &'static str) -> Ask {
    Ask {
        method: "GET",
        path,
        content_type: None,
        body: String::new(),
    }
}

fn authorize(body: Value) -> Ask {
    raw("application/json", body.to_string())
}

fn raw(content_type: &'static str, body: String) -> Ask {
    Ask {
        method: "POST",
        path: "/v1/authorize",
        content_type: Some(content_type),
        body,
    }
}

fn read(resource: &str) -> Ask {
    authorize(json!({"action": "read", "resource": resource}))
}

/// The requests every token is tried with.
fn asks() -> Vec<Ask> {
    let mut asks = vec![get("/v1/whoami")];
    for resource in [
        "table:public.invoice",
        "table:public.track",
        "table:public.employee",
        "table:flights.flights",
        "column:public.customer.email",
        "column:public.customer.country",
        "column:public.track.name",
        "doc:42",
        "endpoint:/v1/whoami",
        "endpoint:/v1/sql",
    ] {
        asks.push(read(resource));
    }
    asks.extend([
        authorize(json!({"action": "write", "resource": "table:public.invoice"})),
        read("table:invoice"),
        authorize(json!({"action": "read"})),
        authorize(json!({"action": "read", "resource": "table:public.track", "extra": 1})),
        raw("application/json", "{\"action\": \"read\",".to_owned()),
        raw("text/plain", read("table:public.track").body),
    ]);
    asks
}

/// The Authorization header sets: the bad-token matrix plus valid tokens of every demo role (and
/// an unknown one) from each region, one of them outside every role's list.
fn tokens() -> Vec<TokenCase> {
    let (_, mut cases) = tokens::bad_token_cases();
    for role in ["admin", "analyst", "finance", "catalog", "intern"] {
        for region in ["emea", "apac", "americas", "mars"] {
            cases.push(TokenCase {
                name: "valid token",
                authorization: vec![format!("Bearer {}", tokens::valid("u", role, region))],
                status: 0,
                slug: "",
            });
        }
    }
    cases
}

/// What must agree between the two answers: status, content type, the headers clients act on,
/// and the body (as JSON when it is JSON).
fn comparable(status: u16, header: impl Fn(&str) -> Option<String>, body: &[u8]) -> Value {
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    json!({
        "status": status,
        "content-type": header("content-type"),
        "www-authenticate": header("www-authenticate"),
        "retry-after": header("retry-after"),
        "allow": header("allow"),
        "x-request-id": header("x-request-id"),
        "body": body,
    })
}

async fn native(app: &TestApp, ask: &Ask, authorization: &[String], id: &str) -> Value {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(ask.method.as_bytes()).unwrap();
    let mut request = client
        .request(method, app.url(ask.path))
        .header("x-request-id", id);
    for value in authorization {
        request = request.header("authorization", value);
    }
    if let Some(content_type) = ask.content_type {
        request = request
            .header("content-type", content_type)
            .body(ask.body.clone());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    comparable(
        status,
        |name| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        },
        &body,
    )
}

fn component_request(ask: &Ask, authorization: &[String], id: &str) -> http::Request<Bytes> {
    let mut request = http::Request::builder()
        .method(ask.method)
        .uri(format!("http://localhost{}", ask.path))
        .header("x-request-id", id);
    for value in authorization {
        request = request.header("authorization", value);
    }
    if let Some(content_type) = ask.content_type {
        request = request
            .header("content-type", content_type)
            .header("content-length", ask.body.len());
    }
    request.body(Bytes::from(ask.body.clone())).unwrap()
}

fn answer(answer: &Answer) -> Value {
    comparable(
        answer.parts.status.as_u16(),
        |name| {
            answer
                .parts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        },
        &answer.body,
    )
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn host() -> Host {
    let wasm = tokio::task::spawn_blocking(build_component)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e:#}"));
    Host::new(&wasm, Allocation::Pooling).unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test]
async fn the_component_decides_as_the_native_function_does() {
    let host = host().await;
    let db = TestDb::from_template().await;
    let owner = db.connect().await;
    // Rate limits would make the native side answer 429 part-way through the matrix; the
    // component has none. An endpoint fence puts region fencing into the matrix.
    owner
        .batch_execute(
            "UPDATE quarry_meta.roles SET rate_per_minute = 1000000, burst = 1000000;
             INSERT INTO quarry_meta.endpoint_regions (endpoint, region)
               VALUES ('/v1/whoami', 'emea'), ('/v1/whoami', 'americas');",
        )
        .await
        .unwrap();
    let app = spawn_app(
        testing::settings_for(
            &db,
            &[
                ("JWT_ISSUER", tokens::ISSUER),
                ("JWT_AUDIENCE", tokens::AUDIENCE),
                ("RATE_LIMIT_ANON_PER_MINUTE", "1000000"),
            ],
        ),
        vec![quarry_auth::service()],
    )
    .await;
    // What the native function enforces, as the component gets it.
    let policy = app.state.governance.policy.current().await.unwrap();
    let policy_json = document::render(&policy);
    let env = env(&[
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("JWT_ISSUER", tokens::ISSUER),
        ("JWT_AUDIENCE", tokens::AUDIENCE),
        ("QUARRY_POLICY_JSON", &policy_json),
    ]);

    let mut routes = vec![
        get("/v1/nope"),
        get("/v1/authorize"),
        Ask {
            method: "POST",
            path: "/v1/whoami",
            content_type: None,
            body: String::new(),
        },
    ];
    routes.extend(asks());
    let (mut compared, mut statuses) = (0, std::collections::BTreeMap::<u64, u32>::new());
    for (t, case) in tokens().iter().enumerate() {
        for (a, ask) in routes.iter().enumerate() {
            let id = format!("m-{t}-{a}");
            let native = native(&app, ask, &case.authorization, &id).await;
            let wasm = answer(
                &host
                    .call(&env, component_request(ask, &case.authorization, &id))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {ask:?}: {e:#}", case.name)),
            );
            assert_eq!(
                wasm, native,
                "{} ({:?}) on {} {}",
                case.name, case.authorization, ask.method, ask.path
            );
            if case.status != 0 && ask.path == "/v1/whoami" && ask.method == "GET" {
                assert_eq!(native["status"], case.status, "{}", case.name);
                assert_eq!(
                    native["body"]["type"],
                    format!("urn:quarry:problem:{}", case.slug),
                    "{}",
                    case.name
                );
            }
            compared += 1;
            *statuses
                .entry(native["status"].as_u64().unwrap_or_default())
                .or_default() += 1;
        }
    }
    // The matrix must exercise every outcome, or agreement proves little.
    for status in [200, 400, 401, 403, 404, 405, 415, 422] {
        assert!(
            statuses.contains_key(&status),
            "no {status} among {statuses:?}"
        );
    }
    let allowed = statuses.get(&200).copied().unwrap_or_default();
    assert!(allowed > 50, "{statuses:?}");
    eprintln!("{compared} requests answered alike: {statuses:?}");
}

#[tokio::test]
async fn the_component_verifies_rs256_and_es256_tokens_from_an_inline_jwks() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    let host = host().await;
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/src/auth/testdata"
    );
    let jwks = std::fs::read_to_string(format!("{shared}/jwks.json")).unwrap();
    let kids: Value = serde_json::from_str(&jwks).unwrap();
    let kid_of = |kty: &str| {
        kids["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kty"] == kty)
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let policy = r#"{"version": 1, "roles": {"catalog": {"row_scope": "all", "regions": ["*"],
        "tables": [{"schema": "public", "table": "track"}]}}}"#;
    let env = env(&[("JWT_JWKS_JSON", &jwks), ("QUARRY_POLICY_JSON", policy)]);
    let claims = tokens::claims("k", "catalog", "emea");
    let sign = |alg: Algorithm, pem: &str, kid: Option<String>| {
        let pem = std::fs::read(format!("{shared}/{pem}")).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let mut header = Header::new(alg);
        header.kid = kid;
        encode(&header, &claims, &key).unwrap()
    };
    let rs = sign(Algorithm::RS256, "rsa_private.pem", Some(kid_of("RSA")));
    let es = sign(Algorithm::ES256, "ec_private.pem", Some(kid_of("EC")));
    let unknown = sign(Algorithm::RS256, "rsa_private.pem", Some("nope".into()));
    // HS256 is refused: no secret is configured, only the key set.
    let hs = tokens::sign(&claims);
    for (token, status, slug) in [
        (rs, 200, None),
        (es, 200, None),
        (unknown, 401, Some("token-unknown-key")),
        (hs, 401, Some("token-algorithm-not-allowed")),
    ] {
        let ask = read("table:public.track");
        let answer = host
            .call(
                &env,
                component_request(&ask, &[format!("Bearer {token}")], "jwks"),
            )
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(answer.parts.status.as_u16(), status, "{body}");
        match slug {
            Some(slug) => assert_eq!(body["type"], format!("urn:quarry:problem:{slug}")),
            None => assert_eq!(body["allow"], true, "{body}"),
        }
    }
}

#[tokio::test]
async fn a_misconfigured_component_says_so_without_leaking_its_settings() {
    let host = host().await;
    let secret = "a-secret-that-must-not-appear-anywhere-000";
    for env in [
        env(&[("JWT_SECRET", secret)]),
        env(&[
            ("JWT_SECRET", secret),
            ("QUARRY_POLICY_JSON", "{\"roles\": 1}"),
        ]),
        env(&[("QUARRY_POLICY_JSON", r#"{"version": 1, "roles": {}}"#)]),
    ] {
        let answer = host
            .call(&env, component_request(&get("/health"), &[], "cfg"))
            .await
            .unwrap();
        assert_eq!(answer.parts.status.as_u16(), 503);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["type"], "urn:quarry:problem:misconfigured");
        assert!(!body.to_string().contains(secret));
    }
    let ok = env(&[
        ("JWT_SECRET", secret),
        ("QUARRY_POLICY_JSON", r#"{"version": 1, "roles": {}}"#),
    ]);
    let answer = host
        .call(&ok, component_request(&get("/health"), &[], "cfg"))
        .await
        .unwrap();
    assert_eq!(answer.parts.status.as_u16(), 200);
    // Bodies over MAX_BODY_BYTES are refused before they are read, as the server does.
    let mut ask = read("table:public.track");
    ask.body = " ".repeat(2 << 20);
    let answer = host
        .call(&ok, component_request(&ask, &[], "big"))
        .await
        .unwrap();
    assert_eq!(answer.parts.status.as_u16(), 413);
}
