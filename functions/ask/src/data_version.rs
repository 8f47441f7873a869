//! The data version: a string that changes whenever rows of the data tables or the documents
//! change, so the answer cache's scope moves on and no cached answer outlives a data change.
//!
//! It is read from PostgreSQL's own per-table change counters (`pg_stat_user_tables`) and the
//! document versions. Those counters already reach readers up to about a second late (backends
//! flush their statistics at most once a second), so the value is kept for [`TTL`] in the
//! process: a cache hit then costs no database round trip, and a change is seen within about
//! two seconds instead of one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use quarry_shared::state::AppState;

/// How long a read version is reused.
pub const TTL: Duration = Duration::from_secs(1);

/// The last version read, shared by every request of the process.
#[derive(Debug, Default)]
pub struct DataVersion {
    last: Mutex<Option<(Instant, String)>>,
}

impl DataVersion {
    /// The current version: the one read less than [`TTL`] ago, or a fresh read.
    ///
    /// # Errors
    /// PostgreSQL's error, as text (the caller then skips the cache).
    pub async fn current(&self, state: &AppState) -> Result<String, String> {
        if let Some((at, version)) = self.lock().as_ref() {
            if at.elapsed() < TTL {
                return Ok(version.clone());
            }
        }
        // Concurrent requests may both read; the later write wins, and both values are current.
        let version = read(state).await?;
        *self.lock() = Some((Instant::now(), version.clone()));
        Ok(version)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, String)>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn read(state: &AppState) -> Result<String, String> {
    let client = state.db.get().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::text
                     FROM pg_stat_user_tables WHERE schemaname <> 'quarry_meta')
                 || '.' ||
                    (SELECT coalesce(sum(version), 0)::text || '.' || count(*)::text
                     FROM quarry_meta.documents)",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}
