//! The `sql-exec` function as a standalone binary (one Cloud Run service).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match quarry_shared::http::server::run("sql-exec", vec![quarry_sql_exec::service()]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quarry-sql-exec: {err}");
            ExitCode::FAILURE
        }
    }
}
