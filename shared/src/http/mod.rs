//! HTTP plumbing shared by every function: errors, extractors, request ids, metrics, health, and
//! the server that runs one or many functions' routers behind the same middleware.

pub mod caller;
mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod operator;
mod problem;
pub mod request_id;
pub mod server;

pub use caller::Caller;
pub use error::{ApiError, Problem, PROBLEM_JSON};
pub use extract::Json;
