//! The `retrieve` function as a standalone binary (one Cloud Run service).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match quarry_shared::http::server::run("retrieve", vec![quarry_retrieve::service()]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quarry-retrieve: {err}");
            ExitCode::FAILURE
        }
    }
}
