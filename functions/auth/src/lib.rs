//! # quarry-auth
//!
//! Verifies JWTs and answers allow/deny for (role, region, resource), so gateways and other
//! services can ask the same question every Quarry function asks itself:
//!
//! - `POST /v1/authorize` `{"action":"read","resource":"table:public.invoice"}` →
//!   `{"allow":false,"reason":"table:public.invoice","role":"catalog","region":"emea"}`;
//! - `GET /v1/whoami`: the verified claims and what the caller's role may read.
//!
//! The decisions are the pure ones of `quarry_shared::policy`; the only I/O is loading the policy
//! and writing the audit row, so the core can later build to WASM with another policy source.
//! Run alone with `cargo run -p quarry-auth`, or with every other function under `quarry dev`.
#![warn(missing_docs)]

mod authorize;
mod whoami;

use quarry_shared::service::{Dependency, RequestLimits, Service};
use quarry_shared::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This function, for the server.
pub fn service() -> Service {
    Service {
        name: "auth",
        dependencies: &[Dependency::Postgres],
        routes,
        request_limits: RequestLimits::standard,
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorize::authorize))
        .routes(routes!(whoami::whoami))
}
