//! `quarry dev`: every function in one process, on one port.

/// Serves every function until Ctrl-C or SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    quarry_shared::http::server::run("quarry dev", quarry_cli::services()).await?;
    Ok(())
}
