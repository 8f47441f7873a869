//! The `index-advisor` function as a standalone binary (one Cloud Run service).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match quarry_shared::http::server::run("index-advisor", vec![quarry_index_advisor::service()])
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quarry-index-advisor: {err}");
            ExitCode::FAILURE
        }
    }
}
