//! `quarry migrate`: apply the migrations compiled into this build.

use quarry_shared::db::{self, migrate};

/// Applies pending migrations and says what it did.
pub async fn run() -> anyhow::Result<()> {
    let (_, url) = super::settings_with_db()?;
    let mut client = db::connect_once(&url).await?;
    let migrations = migrate::embedded()?;
    let report = migrate::run(&mut client, &migrations).await?;
    if report.applied.is_empty() {
        println!(
            "migrations: up to date ({} applied before)",
            report.already_applied.len()
        );
    } else {
        println!("migrations: applied {:?}", report.applied);
    }
    Ok(())
}
