//! Test support shared by the ingest test binaries.

pub mod gcs_server;
