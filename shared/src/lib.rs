//! # quarry-shared
//!
//! The common crate every Quarry function links. It holds what the functions share and nothing that
//! belongs to one of them:
//!
//! - [`config`]: one typed [`config::Settings`] struct loaded from the environment (and `.env`),
//!   validated at start-up.
//! - [`telemetry`]: JSON `tracing` logs.
//! - [`http`]: the one error type ([`http::ApiError`], the only writer of `application/problem+json`),
//!   request ids, metrics, health, CORS and body limits, and the server that runs a function's router.
//! - [`probe`]: probes of the real dependencies (PostgreSQL, Redis, Chroma).
//! - [`db`]: the PostgreSQL pool and the migrator.
//! - [`demo`]: loaders for the Chinook and nycflights13 demo data.
//! - [`state`]: the [`state::AppState`] handed to every handler.
//!
//! A function crate builds a [`service::Service`] (its name, the dependencies its `/health` checks
//! and its routes) and hands it to [`http::server`]; `quarry dev` hands all of them at once.
#![warn(missing_docs)]

pub mod config;
pub mod db;
pub mod demo;
pub mod http;
pub mod probe;
pub mod service;
pub mod state;
pub mod telemetry;

#[cfg(feature = "test-support")]
pub mod testing;
