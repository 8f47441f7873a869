//! The `ingest` function as a standalone binary (one Cloud Run service).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match quarry_shared::http::server::run("ingest", vec![quarry_ingest::service()]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quarry-ingest: {err}");
            ExitCode::FAILURE
        }
    }
}
