//! Loading the policy from PostgreSQL, cached for a short TTL.
//!
//! Every request needs the policy, so it is read from memory; a reload happens when the copy is
//! older than the TTL, by one request while the others keep using the previous copy. If the
//! database cannot be reached, a copy up to `max_stale` old keeps serving (a short outage should
//! not lock everyone out); past that, callers get an error and the request fails closed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use super::{Policy, RolePolicy, RowScope, TableGrant};
use crate::db::DbError;

/// A cached view of the policy tables.
pub struct PolicyStore {
    pool: Pool,
    ttl: Duration,
    max_stale: Duration,
    cached: RwLock<Option<(Instant, Arc<Policy>)>>,
    reloading: tokio::sync::Mutex<()>,
}

impl PolicyStore {
    /// A store reading through `pool`, refreshing after `ttl`, tolerating a failed refresh for up
    /// to `max_stale`.
    pub fn new(pool: Pool, ttl: Duration, max_stale: Duration) -> Self {
        Self {
            pool,
            ttl,
            max_stale,
            cached: RwLock::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<(Instant, Arc<Policy>)> {
        // A poisoned lock only means a panic elsewhere while holding it; the data is a plain Arc swap.
        let guard = self
            .cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone()
    }

    /// The current policy.
    ///
    /// # Errors
    /// When the policy cannot be loaded and no copy younger than `max_stale` exists.
    pub async fn current(&self) -> Result<Arc<Policy>, DbError> {
        if let Some((at, policy)) = self.cached() {
            if at.elapsed() < self.ttl {
                return Ok(policy);
            }
        }
        let _turn = self.reloading.lock().await;
        // Another request may have reloaded while this one waited.
        let stale = self.cached();
        if let Some((at, policy)) = &stale {
            if at.elapsed() < self.ttl {
                return Ok(Arc::clone(policy));
            }
        }
        match load(&self.pool).await {
            Ok(policy) => {
                let policy = Arc::new(policy);
                *self
                    .cached
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((Instant::now(), Arc::clone(&policy)));
                Ok(policy)
            }
            Err(err) => match stale {
                Some((at, policy)) if at.elapsed() < self.max_stale => {
                    tracing::warn!(error = %err, "policy reload failed; serving the previous copy");
                    Ok(policy)
                }
                _ => Err(err),
            },
        }
    }

    /// Forgets the cached copy, so the next call reloads (after a policy change in tests or admin tools).
    pub fn invalidate(&self) {
        *self
            .cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// Reads the whole policy.
///
/// # Errors
/// When the database cannot be reached or the tables are missing.
pub async fn load(pool: &Pool) -> Result<Policy, DbError> {
    let client = pool.get().await?;
    let roles = client
        .query(
            "SELECT name, row_scope, rate_per_minute, burst FROM quarry_meta.roles",
            &[],
        )
        .await?;
    let mut policy = Policy::default();
    for row in roles {
        let name: String = row.get(0);
        let row_scope = if row.get::<_, String>(1) == "all" {
            RowScope::All
        } else {
            RowScope::OwnRegion
        };
        let rate: i32 = row.get(2);
        let burst: i32 = row.get(3);
        policy.roles.insert(
            name.clone(),
            RolePolicy {
                name,
                row_scope,
                regions: Some(BTreeSet::new()),
                tables: Vec::new(),
                rate_per_minute: u32::try_from(rate).unwrap_or(1),
                burst: u32::try_from(burst).unwrap_or(1),
            },
        );
    }
    for row in client
        .query("SELECT role, region FROM quarry_meta.role_regions", &[])
        .await?
    {
        let role: String = row.get(0);
        let region: String = row.get(1);
        if let Some(p) = policy.roles.get_mut(&role) {
            if region == "*" {
                p.regions = None;
            } else if let Some(regions) = &mut p.regions {
                regions.insert(region);
            }
        }
    }
    for row in client
        .query(
            "SELECT role, schema_name, table_name, columns FROM quarry_meta.role_tables",
            &[],
        )
        .await?
    {
        let role: String = row.get(0);
        if let Some(p) = policy.roles.get_mut(&role) {
            let columns: Option<Vec<String>> = row.get(3);
            p.tables.push(TableGrant {
                schema: row.get(1),
                table: row.get(2),
                columns: columns.map(|c| c.into_iter().collect()),
            });
        }
    }
    let mut fences: HashMap<String, BTreeSet<String>> = HashMap::new();
    for row in client
        .query(
            "SELECT endpoint, region FROM quarry_meta.endpoint_regions",
            &[],
        )
        .await?
    {
        fences.entry(row.get(0)).or_default().insert(row.get(1));
    }
    policy.endpoint_regions = fences;
    Ok(policy)
}
