//! One module per subcommand.

pub mod advise;
pub mod ask;
pub mod demo;
pub mod dev;
pub mod eval;
pub mod eval_sql;
pub mod ingest;
pub mod migrate;
pub mod policy;
pub mod token;

use anyhow::Context;
use quarry_shared::config::Settings;

/// Settings plus the database URL, which every database command needs.
fn settings_with_db() -> anyhow::Result<(Settings, String)> {
    let settings = Settings::from_env()?;
    quarry_shared::telemetry::init(&settings);
    let url = settings.database_url().map(str::to_owned).context(
        "DATABASE_URL is not set (run `eval \"$(scripts/stack.sh env)\"` or use `make up`)",
    )?;
    Ok((settings, url))
}
