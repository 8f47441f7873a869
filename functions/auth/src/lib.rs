//! # quarry-auth
//!
//! Verifies JWTs and answers allow/deny for (role, region, resource), so gateways and other
//! services can ask the same question every Quarry function asks itself:
//!
//! - `POST /v1/authorize` `{"action":"read","resource":"table:public.invoice"}` →
//!   `{"allow":false,"reason":"table:public.invoice","role":"catalog","region":"emea"}`;
//! - `GET /v1/whoami`: the verified claims and what the caller's role may read.
//!
//! The decisions are pure functions ([`decision`]) of `quarry_shared::policy`, shared by two
//! fronts:
//!
//! - feature `server` (default): the axum routes of [`service`], with the policy loaded from
//!   PostgreSQL and every decision audited. Run alone with `cargo run -p quarry-auth`, or with every
//!   other function under `quarry dev`; feature `lambda` also runs it on AWS Lambda.
//! - feature `wasm`: a `wasi:http/incoming-handler` component, a stateless decision point with the
//!   policy and keys given as configuration ([`edge`]; no audit log, no rate limits). Build it with
//!   `cargo build -p quarry-auth --target wasm32-wasip2 --release --no-default-features --features
//!   wasm` → `target/wasm32-wasip2/release/quarry_auth.wasm`; see `docs/deploy.md`.
#![warn(missing_docs)]

#[cfg(feature = "server")]
mod authorize;
pub mod decision;
pub mod edge;
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
mod wasm;
#[cfg(feature = "server")]
mod whoami;

#[cfg(feature = "server")]
use quarry_shared::service::{Dependency, RequestLimits, Service};
#[cfg(feature = "server")]
use quarry_shared::state::AppState;
#[cfg(feature = "server")]
use utoipa_axum::router::OpenApiRouter;
#[cfg(feature = "server")]
use utoipa_axum::routes;

/// This function, for the server.
#[cfg(feature = "server")]
pub fn service() -> Service {
    Service {
        name: "auth",
        dependencies: &[Dependency::Postgres],
        routes,
        request_limits: RequestLimits::standard,
    }
}

#[cfg(feature = "server")]
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorize::authorize))
        .routes(routes!(whoami::whoami))
}
