//! The audit log: one append-only row per authorization decision of every function.
//!
//! Writing is synchronous with the request and bounded by a deadline: when the row cannot be
//! written the request fails closed (503) rather than going unrecorded. The writer uses the
//! restricted `quarry_app` role, which may INSERT into `quarry_meta.audit_log` and nothing more;
//! a trigger refuses UPDATE, DELETE and TRUNCATE for everyone.

use std::time::Duration;

use futures::future::BoxFuture;

/// One decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditRecord {
    /// The request id (`x-request-id`).
    pub request_id: Option<String>,
    /// The token's subject, when a token verified.
    pub sub: Option<String>,
    /// The token's role, when a token verified.
    pub role: Option<String>,
    /// The token's region, when a token verified.
    pub region: Option<String>,
    /// Which function decided (`auth`, `sql-exec`, ...).
    pub function: String,
    /// What was attempted (`request`, `read`, `sql`, ...).
    pub action: String,
    /// What it was attempted on (`endpoint:/v1/sql`, `table:public.invoice`, ...).
    pub resource: String,
    /// The decision.
    pub allowed: bool,
    /// Stable reason code (`granted`, `token-expired`, `table:public.employee`, ...).
    pub reason: String,
    /// SHA-256 of a SQL statement, for SQL decisions.
    pub statement_hash: Option<String>,
    /// Rows returned, for SQL decisions.
    pub row_count: Option<i64>,
    /// Execution time, for SQL decisions.
    pub duration_ms: Option<f64>,
}

/// The audit row could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit log unavailable")]
pub struct AuditError(#[source] pub anyhow::Error);

/// Where audit rows go.
pub trait AuditSink: Send + Sync {
    /// Writes one row, or fails.
    fn write(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), AuditError>>;
}

/// Writes audit rows to PostgreSQL through the restricted role's pool.
pub struct PgAudit {
    pool: deadpool_postgres::Pool,
    deadline: Duration,
}

impl PgAudit {
    /// A writer using `pool`, giving up after `deadline`.
    pub fn new(pool: deadpool_postgres::Pool, deadline: Duration) -> Self {
        Self { pool, deadline }
    }
}

impl AuditSink for PgAudit {
    fn write(&self, r: AuditRecord) -> BoxFuture<'_, Result<(), AuditError>> {
        Box::pin(async move {
            let insert = async {
                let client = self.pool.get().await.map_err(|e| AuditError(e.into()))?;
                client
                    .execute(
                        "INSERT INTO quarry_meta.audit_log (request_id, sub, role, region, function, action, resource,
                                                           allowed, reason, statement_hash, row_count, duration_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        &[
                            &r.request_id, &r.sub, &r.role, &r.region, &r.function, &r.action, &r.resource,
                            &r.allowed, &r.reason, &r.statement_hash, &r.row_count, &r.duration_ms,
                        ],
                    )
                    .await
                    .map_err(|e| AuditError(e.into()))?;
                Ok(())
            };
            match tokio::time::timeout(self.deadline, insert).await {
                Ok(result) => result,
                Err(_) => Err(AuditError(anyhow::anyhow!("audit write timed out"))),
            }
        })
    }
}
