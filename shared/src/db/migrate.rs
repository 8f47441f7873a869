//! The migrator: versioned SQL files, each applied once, in its own transaction, recorded in
//! `quarry_meta.schema_migrations` with a checksum.
//!
//! The files under `migrations/` are compiled into the binary, so a deployed function or the Cloud
//! Run migration job carries exactly the migrations it was built with. A session-level advisory
//! lock makes concurrent migrators (two instances starting at once) take turns. A migration that
//! fails rolls back whole, so the database is left as it was before that migration; the ones before
//! it stay applied. An applied migration whose file has since changed stops the run: editing history
//! is a bug, not something to paper over.

use std::time::Instant;

use include_dir::{include_dir, Dir};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

static EMBEDDED: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../migrations");

/// Arbitrary but fixed key of the advisory lock that serialises migrators.
const LOCK_KEY: i64 = 0x5155_4152_5259; // "QUARRY"

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The number the file name starts with; migrations apply in this order.
    pub version: i64,
    /// The rest of the file name, without `.sql`.
    pub name: String,
    /// The SQL text.
    pub sql: String,
}

impl Migration {
    /// SHA-256 of the SQL text, hex.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.sql.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why migrating stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A file name does not look like `0001_name.sql`, or two files share a version.
    #[error("bad migration file {file}: {reason}")]
    BadFile {
        /// The file at fault.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An applied migration's file has changed since.
    #[error("migration {version} ({name}) was changed after it was applied (checksum differs)")]
    Changed {
        /// Its version.
        version: i64,
        /// Its name.
        name: String,
    },
    /// The database has a migration this binary does not know (a newer build applied it).
    #[error("the database has migration {0}, which this build does not know; use a newer build")]
    Unknown(i64),
    /// A migration's SQL failed; it was rolled back.
    #[error("migration {version} ({name}) failed and was rolled back: {message}")]
    Failed {
        /// Its version.
        version: i64,
        /// Its name.
        name: String,
        /// PostgreSQL's message, with the position when it gave one.
        message: String,
    },
    /// Talking to the database failed outside a migration.
    #[error("database error while migrating")]
    Db(#[from] tokio_postgres::Error),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Versions applied by this run, in order.
    pub applied: Vec<i64>,
    /// Versions that were already applied.
    pub already_applied: Vec<i64>,
}

/// The migrations compiled into this build, in version order.
///
/// # Errors
/// A malformed file name or a duplicate version.
pub fn embedded() -> Result<Vec<Migration>, MigrateError> {
    let files = EMBEDDED.files().filter_map(|file| {
        let name = file.path().file_name()?.to_str()?.to_owned();
        Some((name, file.contents_utf8().map(str::to_owned)))
    });
    parse(files)
}

/// Turns `(file name, contents)` pairs into sorted migrations; non-`.sql` files are ignored.
///
/// # Errors
/// A malformed file name, a file that is not UTF-8, or a duplicate version.
pub fn parse(
    files: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<Vec<Migration>, MigrateError> {
    let mut out: Vec<Migration> = Vec::new();
    for (file, contents) in files {
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let bad = |reason: &str| MigrateError::BadFile {
            file: file.clone(),
            reason: reason.to_owned(),
        };
        let (number, name) = stem
            .split_once('_')
            .ok_or_else(|| bad("expected NNNN_name.sql"))?;
        let version: i64 = number
            .parse()
            .map_err(|_| bad("the part before '_' must be a number"))?;
        if version <= 0 || name.is_empty() {
            return Err(bad("expected a positive version and a name"));
        }
        let sql = contents.ok_or_else(|| bad("not UTF-8"))?;
        if out.iter().any(|m| m.version == version) {
            return Err(bad("another file has the same version"));
        }
        out.push(Migration {
            version,
            name: name.to_owned(),
            sql,
        });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

/// Applies every pending migration of `migrations` to the database behind `client`.
///
/// # Errors
/// See [`MigrateError`]; on [`MigrateError::Failed`] the failing migration left no trace.
pub async fn run(client: &mut Client, migrations: &[Migration]) -> Result<Report, MigrateError> {
    // Lock before creating the bookkeeping table: two first-time migrators racing on
    // `CREATE ... IF NOT EXISTS` can still collide in the catalog.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = bootstrap_and_apply(client, migrations).await;
    // Unlock even after a failure; if the connection itself is gone the lock went with it.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let report = result?;
    unlock?;
    Ok(report)
}

async fn bootstrap_and_apply(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Report, MigrateError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS quarry_meta;
             CREATE TABLE IF NOT EXISTS quarry_meta.schema_migrations (
                 version bigint PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now(),
                 duration_ms double precision NOT NULL
             );",
        )
        .await?;
    apply_pending(client, migrations).await
}

async fn apply_pending(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Report, MigrateError> {
    let rows = client
        .query(
            "SELECT version, name, checksum FROM quarry_meta.schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut report = Report::default();
    for row in &rows {
        let version: i64 = row.get(0);
        let checksum: String = row.get(2);
        match migrations.iter().find(|m| m.version == version) {
            None => return Err(MigrateError::Unknown(version)),
            Some(m) if m.checksum() != checksum => {
                return Err(MigrateError::Changed {
                    version,
                    name: m.name.clone(),
                });
            }
            Some(_) => report.already_applied.push(version),
        }
    }
    for migration in migrations
        .iter()
        .filter(|m| !report.already_applied.contains(&m.version))
    {
        let started = Instant::now();
        let tx = client.transaction().await?;
        if let Err(err) = tx.batch_execute(&migration.sql).await {
            // Dropping `tx` rolls it back; say what PostgreSQL said, including where.
            drop(tx);
            return Err(MigrateError::Failed {
                version: migration.version,
                name: migration.name.clone(),
                message: describe(&err),
            });
        }
        tx.execute(
            "INSERT INTO quarry_meta.schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
            &[&migration.version, &migration.name, &migration.checksum(), &(started.elapsed().as_secs_f64() * 1000.0)],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = migration.version, name = %migration.name, "migration applied");
        report.applied.push(migration.version);
    }
    Ok(report)
}

/// PostgreSQL's own message (and position) for a failed statement, for the operator.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
                message.push_str(&format!(" (at character {pos})"));
            }
            message
        }
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_and_validated() {
        let files = vec![
            ("0002_b.sql".to_owned(), Some("select 2".to_owned())),
            ("README.md".to_owned(), Some(String::new())),
            ("0001_a.sql".to_owned(), Some("select 1".to_owned())),
        ];
        let parsed = parse(files).unwrap();
        assert_eq!(
            parsed.iter().map(|m| m.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(parsed[0].name, "a");

        for bad in ["x_a.sql", "0001.sql", "0000_zero.sql", "0003_.sql"] {
            assert!(
                parse(vec![(bad.to_owned(), Some(String::new()))]).is_err(),
                "{bad}"
            );
        }
        let dup = vec![
            ("0001_a.sql".to_owned(), Some(String::new())),
            ("1_b.sql".to_owned(), Some(String::new())),
        ];
        assert!(matches!(parse(dup), Err(MigrateError::BadFile { .. })));
    }

    #[test]
    fn the_embedded_migrations_parse() {
        let all = embedded().unwrap();
        assert!(all.len() >= 3);
        assert_eq!(all[0].version, 1);
    }
}
