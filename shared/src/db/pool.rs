//! The deadpool-postgres pool every function uses.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use super::DbError;

/// Builds a pool for `url` with at most `size` connections. Connections are made lazily, so a
/// database that is down at start-up does not stop the function from starting (its `/health` says 503).
///
/// # Errors
/// When the URL is not a valid PostgreSQL connection string.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| DbError::Config("DATABASE_URL is not a valid PostgreSQL URL".to_owned()))?;
    let mut config = config;
    config
        .application_name("quarry")
        .connect_timeout(Duration::from_secs(5));
    // `Fast` recycling checks that the socket is open; a server restart closes every socket, so
    // the pool replaces dead connections instead of handing them out.
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(Duration::from_secs(5)),
            create: Some(Duration::from_secs(5)),
            recycle: Some(Duration::from_secs(5)),
        })
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// Opens one connection outside any pool (for the CLI's migrate and load commands), driving it on
/// a task that ends when the returned client is dropped.
///
/// # Errors
/// When the URL is invalid or the server cannot be reached.
pub async fn connect_once(url: &str) -> Result<tokio_postgres::Client, DbError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| DbError::Config("DATABASE_URL is not a valid PostgreSQL URL".to_owned()))?;
    config
        .application_name("quarry-cli")
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| DbError::Unavailable(e.into()))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "database connection closed with an error");
        }
    });
    Ok(client)
}
