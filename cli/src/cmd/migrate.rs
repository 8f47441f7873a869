//! `quarry migrate`: apply the migrations compiled into this build, then give the restricted
//! application role its login password (from `APP_DATABASE_URL`), so the role and its credentials
//! are managed in one place.

use anyhow::{bail, Context};
use quarry_shared::db::{self, migrate};

/// The restricted role the migrations create.
const APP_ROLE: &str = "quarry_app";

/// Applies pending migrations and says what it did.
pub async fn run() -> anyhow::Result<()> {
    let (settings, url) = super::settings_with_db()?;
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
    if let Some(app_url) = settings.app_database_url() {
        let parsed = url::Url::parse(app_url).context("APP_DATABASE_URL is not a URL")?;
        if parsed.username() != APP_ROLE {
            bail!(
                "APP_DATABASE_URL must log in as the role {APP_ROLE}, which the migrations create"
            );
        }
        let password = percent_encoding::percent_decode_str(parsed.password().unwrap_or_default())
            .decode_utf8()
            .context("the password in APP_DATABASE_URL is not UTF-8")?;
        if password.is_empty() {
            bail!("APP_DATABASE_URL has no password for {APP_ROLE}");
        }
        // ALTER ROLE takes no bind parameters; the literal is quoted the way PostgreSQL's
        // quote_literal does (double every quote, E'' when there are backslashes).
        let literal = if password.contains('\\') {
            format!("E'{}'", password.replace('\\', "\\\\").replace('\'', "''"))
        } else {
            format!("'{}'", password.replace('\'', "''"))
        };
        client
            .batch_execute(&format!(
                "ALTER ROLE {APP_ROLE} WITH LOGIN PASSWORD {literal}"
            ))
            .await
            .context("cannot set the application role's password")?;
        println!("role {APP_ROLE}: login enabled");
    }
    Ok(())
}
