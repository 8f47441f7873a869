//! PostgreSQL probe: a pooled `SELECT 1`.

use futures::future::BoxFuture;

use super::{Probe, ProbeError};

/// Probes PostgreSQL through the application's own pool, so a broken pool shows up too.
pub struct PostgresProbe(pub deadpool_postgres::Pool);

impl Probe for PostgresProbe {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin(async move {
            let client = self
                .0
                .get()
                .await
                .map_err(|e| ProbeError::Unreachable(e.into()))?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| ProbeError::Unreachable(e.into()))?;
            Ok(())
        })
    }
}
