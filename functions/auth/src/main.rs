//! The `auth` function as a standalone binary (one Cloud Run service).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match quarry_shared::http::server::run("auth", vec![quarry_auth::service()]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quarry-auth: {err}");
            ExitCode::FAILURE
        }
    }
}
