//! The server: mounts one or more functions' routes behind the same middleware, adds `/health`,
//! `/metrics` and `/openapi.json` once, binds, and serves until SIGTERM or Ctrl-C.
//!
//! Start-up order follows the style guide: telemetry, config, pools, readiness, bind, serve. With
//! the `lambda` feature and `AWS_LAMBDA_RUNTIME_API` set, the last two are `lambda_http::run`.
//! [`Server::bind`] binds first (port 0 in tests) and exposes the port; [`Server::run_until_stopped`]
//! serves and drains in-flight requests on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::FunctionName;
use super::{health, metrics, problem, request_id, Json};
use crate::config::{ConfigError, CorsOrigins, Settings};
use crate::probe;
use crate::service::{Dependency, RequestLimits, Service};
use crate::state::AppState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state could not be built.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The address is taken or not ours to bind.
    #[error("cannot listen on {addr}: {reason}; set PORT (or HOST) to a free address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS's reason.
        reason: String,
    },
    /// Serving failed.
    #[error("server error")]
    Io(#[from] std::io::Error),
    /// The Lambda runtime loop failed (feature `lambda`).
    #[cfg(feature = "lambda")]
    #[error("AWS Lambda runtime error: {0}")]
    Lambda(lambda_http::Error),
}

/// Builds the complete router for `services`: their routes, the shared endpoints and middleware.
/// Returns it with the merged OpenAPI document (also served at `/openapi.json`).
pub fn app(state: AppState, services: &[Service]) -> (Router, Arc<OpenApi>) {
    // Install the recorder before the first request, or the first requests' metrics are lost.
    metrics::handle();
    let mut api: OpenApiRouter<AppState> = OpenApiRouter::new();
    // Each function's routes get its own body and time limits; the shared endpoints the standard ones.
    for service in services {
        let limits = (service.request_limits)(&state.settings);
        api = api.merge(with_limits(
            (service.routes)().layer(Extension(FunctionName(service.name))),
            limits,
        ));
    }
    let api = api.merge(with_limits(
        OpenApiRouter::new()
            .routes(routes!(health::health))
            .routes(routes!(metrics::render)),
        RequestLimits::standard(&state.settings),
    ));
    let (router, mut doc) = api.split_for_parts();
    doc.info.title = match services {
        [one] => format!("Quarry {}", one.name),
        _ => "Quarry".to_owned(),
    };
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(
        "Governed question answering over PostgreSQL and documents. Errors are application/problem+json \
         with a stable `type` (urn:quarry:problem:<slug>)."
            .to_owned(),
    );
    // Routes that take a `Caller` declare `security(("bearer" = []))`; the scheme is defined once here.
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    let doc = Arc::new(doc);
    let served = Arc::clone(&doc);

    let settings = Arc::clone(&state.settings);
    // Each `layer` call wraps the ones before it, so the last is outermost: the request id is
    // assigned first, then the request is timed, then errors are normalised to problem+json.
    let mut router = router
        .route(
            "/openapi.json",
            get(move || async move { Json(served.as_ref().clone()) }),
        )
        .fallback(problem::not_found)
        .with_state(state);
    if let Some(cors) = cors(&settings) {
        router = router.layer(cors);
    }
    let router = router
        .layer(axum::middleware::from_fn(problem::ensure_problem_json))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(request_id::assign));
    (router, doc)
}

/// `router` with a body limit (for extractors and, as a backstop, for the raw body) and a timeout.
fn with_limits(router: OpenApiRouter<AppState>, limits: RequestLimits) -> OpenApiRouter<AppState> {
    router
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.timeout,
        ))
}

/// The CORS layer for the configured origins; none at all when no origin is configured.
fn cors(settings: &Settings) -> Option<CorsLayer> {
    let origins = match &settings.cors_origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    // Config validation already refused `*` with credentials; tower-http would panic on it.
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .allow_credentials(settings.cors_allow_credentials)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
}

impl Server {
    /// Binds `HOST:PORT` from the settings (port 0 picks a free one).
    ///
    /// # Errors
    /// [`ServeError::Bind`] naming the address and the variable to change.
    pub async fn bind(settings: &Settings, router: Router) -> Result<Self, ServeError> {
        let addr = SocketAddr::new(settings.host, settings.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind {
                addr,
                reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                    "the port is already in use".to_owned()
                } else {
                    e.to_string()
                },
            })?;
        Ok(Self { listener, router })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the OS cannot tell (practically never).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits for in-flight requests.
    ///
    /// # Errors
    /// An I/O error of the listener.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM (what Cloud Run sends before stopping an instance).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

/// Runs `services` in one process: the whole life of a function binary (and of `quarry dev`).
///
/// # Errors
/// Bad configuration, a port that cannot be bound, or a server I/O error.
pub async fn run(label: &str, services: Vec<Service>) -> Result<(), ServeError> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(&settings);
    let deps: Vec<Dependency> = services
        .iter()
        .flat_map(|s| s.dependencies.iter().copied())
        .collect();
    let state = AppState::build(settings, label, &deps)?;

    // Readiness: report each dependency once; a dependency that is down does not stop start-up.
    for (name, check) in probe::run_all(&state.probes, state.settings.health_timeout).await {
        if check.is_ok() {
            tracing::info!(dependency = name, "dependency ready");
        } else {
            tracing::warn!(
                dependency = name,
                "dependency not reachable at start-up; /health will say 503 until it is"
            );
        }
    }
    // With a JWKS configured, fetch the keys now: the first request should not pay for it, and a
    // wrong URL should show in the start-up log rather than as the first caller's 503.
    if let Err(err) = state.governance.verifier.refresh_keys().await {
        tracing::warn!(error = %err, "token keys not available at start-up; will retry on demand");
    }
    let settings = Arc::clone(&state.settings);
    let (router, _) = app(state, &services);
    // Under AWS Lambda the same router answers the runtime's events instead of a socket: API
    // Gateway (HTTP or REST API), ALB and function URLs hand requests to `lambda_http`, which
    // turns them into `http::Request`s for the router and its answers back into their responses.
    #[cfg(feature = "lambda")]
    if crate::config::lambda_runtime_api().is_some() {
        tracing::info!(functions = ?services.iter().map(|s| s.name).collect::<Vec<_>>(), "serving AWS Lambda events");
        return lambda_http::run(router).await.map_err(ServeError::Lambda);
    }
    let server = Server::bind(&settings, router).await?;
    let addr = server.local_addr()?;
    let names: Vec<&str> = services.iter().map(|s| s.name).collect();
    tracing::info!(%addr, functions = ?names, "listening");
    server.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
