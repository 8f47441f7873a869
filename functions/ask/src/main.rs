//! The `ask` function as a standalone binary (one Cloud Run service).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match quarry_shared::http::server::run("ask", vec![quarry_ask::service()]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quarry-ask: {err}");
            ExitCode::FAILURE
        }
    }
}
