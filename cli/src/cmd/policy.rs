//! `quarry policy export`: the policy tables of DATABASE_URL as one JSON document, the form the
//! WASM `auth` component takes as `QUARRY_POLICY_JSON`.

use anyhow::Context;
use clap::Subcommand;
use quarry_shared::db;
use quarry_shared::policy::{document, store};

/// Policy subcommands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the policy (roles, table grants, regions, endpoint fencing) as JSON on stdout.
    Export,
}

/// Runs a policy subcommand.
pub async fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Export => {
            let (_, url) = super::settings_with_db()?;
            // The same loader the functions use, so the export is exactly what they enforce.
            let pool = db::pool(&url, 1)?;
            let policy = store::load(&pool)
                .await
                .context("cannot read the policy tables (has `quarry migrate` run?)")?;
            println!("{}", document::render(&policy));
            Ok(())
        }
    }
}
