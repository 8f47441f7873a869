//! PostgreSQL: the connection pool and the migrator.

pub mod migrate;
mod pool;

pub use pool::{connect_once, pool};

/// A database failure, split by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` could not be used.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// The database could not be reached or a connection could not be had in time.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A statement failed.
    #[error("database query failed")]
    Query(#[from] tokio_postgres::Error),
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(err.into())
    }
}
