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
//! - [`auth`]: bearer tokens to a verified [`auth::Principal`] (an HS256 secret, or RS256/ES256
//!   keys from a JWKS).
//! - [`db`]: the PostgreSQL pool and the migrator.
//! - [`demo`]: loaders for the Chinook and nycflights13 demo data.
//! - [`policy`]: governance as data (roles, table and column grants, regions, endpoint fencing),
//!   loaded from PostgreSQL and cached; pure decisions.
//! - [`governance`], [`audit`], [`ratelimit`]: what a request passes through before its handler
//!   ([`http::Caller`]): token verification, admission, the append-only audit log, rate limits.
//! - [`sql`]: the SQL guard: one read-only query, checked against the role's table, column and
//!   function policy, re-rendered with a row cap; pure, no I/O.
//! - [`docs`]: document ACLs and the Chroma copy of chunk vectors, shared by ingest and retrieve.
//! - [`llm`]: language models behind one trait (Gemini, OpenAI-compatible servers), with
//!   timeouts, retries, circuit breakers and fallback.
//! - [`rag`]: retrieval building blocks, pure compute: structure-aware chunking, and (feature
//!   `embed`) all-MiniLM-L6-v2 embeddings in-process with candle.
//! - [`state`]: the [`state::AppState`] handed to every handler.
//!
//! A function crate builds a [`service::Service`] (its name, the dependencies its `/health` checks
//! and its routes) and hands it to [`http::server`]; `quarry dev` hands all of them at once.
//!
//! Cargo features: `server` (default) is everything that does I/O: the axum server, PostgreSQL,
//! Redis, the outbound HTTP client, metrics, telemetry, and the modules built on them (`audit`,
//! `db`, `demo`, `governance`, `probe`, `ratelimit`, `service`, `state`, `telemetry`,
//! `policy::store`, most of `http`). Without it (`--no-default-features`) the pure core remains
//! (`auth` verification, `policy` decisions and the policy document, `sql`, `rag::chunk`,
//! `http::ApiError` as data, `config`'s edge settings) and builds for `wasm32-wasip2`, which is how
//! the `auth` function runs as a WASM component. `lambda` serves the same routers under AWS
//! Lambda; `embed` adds in-process embeddings; `test-support` the integration-test helpers.
#![warn(missing_docs)]

#[cfg(feature = "server")]
pub mod audit;
pub mod auth;
pub mod config;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod demo;
#[cfg(feature = "server")]
pub mod docs;
#[cfg(feature = "server")]
pub mod governance;
pub mod http;
#[cfg(feature = "server")]
pub mod lazy_redis;
pub mod llm;
pub mod policy;
#[cfg(feature = "server")]
pub mod probe;
pub mod rag;
#[cfg(feature = "server")]
pub mod ratelimit;
#[cfg(feature = "server")]
pub mod service;
pub mod sql;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod telemetry;

#[cfg(feature = "test-support")]
pub mod testing;
