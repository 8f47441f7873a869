//! HTTP plumbing shared by every function: errors, extractors, request ids, metrics, health, and
//! the server that runs one or many functions' routers behind the same middleware.
//!
//! Without the `server` feature only the parts that are data remain: [`ApiError`] and its
//! problem+json rendering ([`ApiError::to_http`]), the pure JSON body parser
//! ([`extract::json_body`]), request-id acceptance, and the token/denial → error mapping of
//! [`caller`]; a WASM component serves them over wasi:http.

pub mod caller;
mod error;
pub mod extract;
#[cfg(feature = "server")]
pub mod health;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod operator;
#[cfg(feature = "server")]
pub mod outbound;
#[cfg(feature = "server")]
mod problem;
pub mod request_id;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
pub use caller::Caller;
pub use error::{ApiError, Problem, PROBLEM_JSON};
#[cfg(feature = "server")]
pub use extract::Json;
