//! The `auth` function as a stateless decision point: the same routes, decisions and errors as the
//! axum server, on plain `http` types, with the policy and the keys given as configuration
//! ([`EdgeSettings`]) instead of loaded from PostgreSQL and fetched over the network.
//!
//! The WASM component (`wasm.rs`) turns each wasi:http request into an [`http::Request`], calls
//! [`Edge::handle`] and writes the response back; nothing here knows about WASI, so it is also
//! unit-tested natively.
//!
//! What the server does and this does not: no audit rows, no rate limits (both need PostgreSQL or
//! Redis), no `/metrics`, `/openapi.json` or CORS, no request deadline. `/health` answers 200 as
//! soon as the configuration is valid: there is no dependency to probe. Request-handling order
//! matches the server's middleware and extractors: body size (by `Content-Length`), route,
//! method, token, admission, then the body.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use quarry_shared::auth::{bearer_token_from_headers, AuthConfigError, Principal, Verifier};
use quarry_shared::config::edge::EdgeSettings;
use quarry_shared::config::ConfigError;
use quarry_shared::http::caller::{denial_error, token_error};
use quarry_shared::http::extract::json_body;
use quarry_shared::http::request_id::{accept_or_mint, X_REQUEST_ID};
use quarry_shared::http::ApiError;
use quarry_shared::policy::Policy;
use serde::Serialize;

use crate::decision;

/// A request body as the host delivered it: read whole, or abandoned past the size limit.
#[derive(Debug)]
pub enum Body {
    /// Every byte (at most the limit).
    Read(Vec<u8>),
    /// More than the limit arrived; the rest was not read.
    TooLarge,
}

/// Why the decision point could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A setting is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The verifier refused the key material.
    #[error("token verification cannot be configured: {0}")]
    Verifier(#[from] AuthConfigError),
}

/// A path, the methods it accepts, and its `Allow` header on a 405 (as axum writes it).
type Route = (&'static str, &'static [Method], &'static str);

/// The routes the component serves.
const ROUTES: &[Route] = &[
    ("/v1/authorize", &[Method::POST], "POST"),
    ("/v1/whoami", &[Method::GET, Method::HEAD], "GET,HEAD"),
    ("/health", &[Method::GET, Method::HEAD], "GET,HEAD"),
];

/// A configured decision point. Cheap to build (the component builds one per request, since every
/// request gets a fresh instance).
pub struct Edge {
    verifier: Verifier,
    policy: Policy,
    max_body_bytes: usize,
}

impl Edge {
    /// From validated settings.
    ///
    /// # Errors
    /// [`EdgeError::Verifier`] when the secret or the key set cannot be used.
    pub fn new(settings: EdgeSettings) -> Result<Self, EdgeError> {
        let config = settings.verifier_config();
        let max_body_bytes = settings.max_body_bytes();
        let verifier = match settings.jwks {
            Some(set) => Verifier::with_jwks(config, set)?,
            None => Verifier::new(config, None)?,
        };
        Ok(Self {
            max_body_bytes,
            verifier,
            policy: settings.policy,
        })
    }

    /// From the environment (see [`EdgeSettings::from_env`]).
    ///
    /// # Errors
    /// The first missing or invalid setting.
    pub fn from_env() -> Result<Self, EdgeError> {
        Self::new(EdgeSettings::from_env()?)
    }

    /// Largest body accepted; the host stops reading past it and hands [`Body::TooLarge`].
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Answers one request. Every response carries `x-request-id` (the caller's when sane, else a
    /// new one), and every error is the server's problem+json.
    pub fn handle(&self, request: Request<Body>) -> Response<Vec<u8>> {
        let request_id = accept_or_mint(request.headers().get(&X_REQUEST_ID));
        let head = request.method() == Method::HEAD;
        let route = ROUTES
            .iter()
            .find(|(path, _, _)| *path == request.uri().path());
        let mut response = match self.route(request, route) {
            Ok(response) => response,
            Err(err) => {
                let mut response = err.to_http(Some(request_id.clone()));
                if let (ApiError::MethodNotAllowed, Some((_, _, allow))) = (&err, route) {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static(allow));
                }
                response
            }
        };
        if head {
            response.body_mut().clear();
        }
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(X_REQUEST_ID.clone(), value);
        }
        response
    }

    fn route(
        &self,
        request: Request<Body>,
        route: Option<&Route>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        // The server's body limit layer refuses a declared oversize body before routing.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let Some((endpoint, methods, _)) = route else {
            return Err(ApiError::NotFound {
                detail: format!("no route for {} {}", request.method(), request.uri().path()),
            });
        };
        if !methods.contains(request.method()) {
            return Err(ApiError::MethodNotAllowed);
        }
        if *endpoint == "/health" {
            return Ok(json(
                StatusCode::OK,
                &serde_json::json!({"status": "ok", "checks": {}}),
            ));
        }
        let principal = self.admit(&request, endpoint)?;
        if *endpoint == "/v1/whoami" {
            return Ok(json(
                StatusCode::OK,
                &decision::whoami(&self.policy, principal),
            ));
        }
        let body = match request.body() {
            Body::Read(bytes) => bytes.as_slice(),
            Body::TooLarge => return Err(ApiError::PayloadTooLarge),
        };
        let asked: decision::AuthorizeRequest = json_body(request.headers(), body)?;
        let decision = decision::authorize(&self.policy, &principal, &asked)?;
        Ok(json(StatusCode::OK, &decision.response))
    }

    /// What the server's `Caller` extractor checks, minus the rate limits and the audit rows:
    /// the bearer token, then the role, its regions and the endpoint's region fence.
    fn admit(&self, request: &Request<Body>, endpoint: &str) -> Result<Principal, ApiError> {
        let principal = bearer_token_from_headers(request.headers())
            .and_then(|token| self.verifier.verify_cached(token))
            .map_err(|err| token_error(&err))?;
        self.policy
            .admit(&principal.role, &principal.region, endpoint)
            .map_err(|denial| denial_error(&denial))?;
        Ok(principal)
    }
}

/// A JSON response (`application/json`, as axum's `Json` writes it).
fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Vec<u8>> {
    // Serialising these plain structs (strings, numbers, vectors) cannot fail; an empty body
    // would be the only consequence if it somehow did.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_shared::auth::{mint_hs256, TokenClaims};
    use serde_json::Value;

    const SECRET: &str = "edge-test-secret-0123456789abcdef-0123";
    const POLICY: &str = r#"{"version": 1, "roles": {"catalog": {"row_scope": "all",
        "regions": ["emea"], "tables": [{"schema": "public", "table": "track"}]}},
        "endpoint_regions": {"/v1/whoami": ["emea"]}}"#;

    fn edge(extra: &[(&str, &str)]) -> Edge {
        let mut vars: Vec<(&str, &str)> =
            vec![("JWT_SECRET", SECRET), ("QUARRY_POLICY_JSON", POLICY)];
        vars.extend_from_slice(extra);
        let settings = EdgeSettings::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap();
        Edge::new(settings).unwrap()
    }

    fn token(region: &str) -> String {
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let claims = TokenClaims {
            sub: "t".into(),
            role: "catalog".into(),
            region: region.into(),
            exp: now + 60,
            iat: now,
            nbf: None,
            iss: None,
            aud: None,
        };
        format!("Bearer {}", mint_hs256(SECRET.as_bytes(), &claims).unwrap())
    }

    fn call(
        edge: &Edge,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = edge.handle(request.body(Body::Read(body.as_bytes().to_vec())).unwrap());
        assert!(response.headers().contains_key(&X_REQUEST_ID));
        let value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (response.status().as_u16(), value)
    }

    #[test]
    fn routes_methods_and_errors_match_the_server() {
        let edge = edge(&[]);
        let (status, body) = call(&edge, "GET", "/v1/nope", &[], "");
        assert_eq!(
            (status, body["detail"].as_str()),
            (404, Some("no route for GET /v1/nope"))
        );
        let response = edge.handle(
            Request::builder()
                .method("GET")
                .uri("/v1/authorize")
                .body(Body::Read(Vec::new()))
                .unwrap(),
        );
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()[header::ALLOW], "POST");
        let (status, body) = call(&edge, "GET", "/v1/whoami", &[], "");
        assert_eq!(
            (status, body["type"].as_str()),
            (401, Some("urn:quarry:problem:token-missing"))
        );
        let (status, body) = call(
            &edge,
            "GET",
            "/v1/whoami",
            &[("authorization", &token("apac"))],
            "",
        );
        assert_eq!(status, 403, "{body}");
        let (status, body) = call(
            &edge,
            "GET",
            "/v1/whoami",
            &[("authorization", &token("emea"))],
            "",
        );
        assert_eq!(
            (status, body["tables"][0]["table"].as_str()),
            (200, Some("public.track"))
        );
        let (status, _) = call(&edge, "GET", "/health", &[], "");
        assert_eq!(status, 200);
    }

    #[test]
    fn bodies_are_parsed_after_admission_and_within_the_limit() {
        let edge = edge(&[("MAX_BODY_BYTES", "1024")]);
        let bearer = token("emea");
        let json = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ];
        let (status, body) = call(
            &edge,
            "POST",
            "/v1/authorize",
            &json,
            r#"{"action": "read", "resource": "table:public.track"}"#,
        );
        assert_eq!((status, body["allow"].as_bool()), (200, Some(true)));
        let (status, body) = call(&edge, "POST", "/v1/authorize", &json, "{");
        assert_eq!(
            (status, body["type"].as_str()),
            (400, Some("urn:quarry:problem:invalid-json"))
        );
        let (status, body) = call(
            &edge,
            "POST",
            "/v1/authorize",
            &json,
            r#"{"action": "read"}"#,
        );
        assert_eq!(
            (status, body["type"].as_str()),
            (422, Some("urn:quarry:problem:invalid-body"))
        );
        let (status, _) = call(
            &edge,
            "POST",
            "/v1/authorize",
            &[("authorization", &bearer)],
            "{}",
        );
        assert_eq!(status, 415);
        // No token: 401 before the body is even looked at.
        let (status, _) = call(
            &edge,
            "POST",
            "/v1/authorize",
            &[("content-type", "application/json")],
            "{",
        );
        assert_eq!(status, 401);
        let too_big = edge.handle(
            Request::builder()
                .method("POST")
                .uri("/v1/authorize")
                .header("authorization", &bearer)
                .body(Body::TooLarge)
                .unwrap(),
        );
        assert_eq!(too_big.status(), 413);
        let declared = edge.handle(
            Request::builder()
                .method("POST")
                .uri("/v1/nope")
                .header("content-length", "5000")
                .body(Body::Read(Vec::new()))
                .unwrap(),
        );
        assert_eq!(
            declared.status(),
            413,
            "before routing, as the server's limit layer"
        );
    }
}
