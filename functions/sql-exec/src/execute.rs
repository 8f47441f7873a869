//! Running a guarded query: as the restricted role, read-only, with the caller's role and region
//! set for row-level security, a statement timeout, and a cost check before anything runs.
//!
//! One transaction per request:
//! `BEGIN READ ONLY` → `SET LOCAL` (statement_timeout, quarry.role, quarry.region, search_path,
//! output formats) → `EXPLAIN (FORMAT JSON)` (refused above the cost limit) → the query, each
//! column cast to text so [`crate::values`] can render every type exactly → `ROLLBACK` (nothing
//! to keep). Parameters are bound, never spliced; their types come from the JSON values
//! (integer → `int8`, other numbers → `float8`, string → `text`, boolean → `bool`, `null` →
//! inferred), so a query compares a date with `$1::date`.

use std::time::Instant;

use axum::http::StatusCode;
use bytes::BytesMut;
use quarry_shared::http::ApiError;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, Kind, ToSql, Type};

use crate::values;

/// What the caller asked to run, already guarded.
pub struct Job<'a> {
    /// The row-capped SQL from the guard (asks for `max_rows + 1`).
    pub sql: &'a str,
    /// The caller's parameters, in `$n` order.
    pub params: &'a [Value],
    /// Rows to return at most.
    pub max_rows: usize,
    /// The caller's role (validated: it is in the policy).
    pub role: &'a str,
    /// The caller's region.
    pub region: &'a str,
    /// Statement timeout in milliseconds.
    pub timeout_ms: u64,
    /// Highest planner cost allowed.
    pub max_cost: f64,
}

/// One result column.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Column {
    /// Column name as PostgreSQL reports it.
    pub name: String,
    /// PostgreSQL type name, e.g. `int4`, `numeric`, `timestamptz`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// What a query returned.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Columns, in order.
    pub columns: Vec<Column>,
    /// Rows, each a JSON array in column order.
    pub rows: Vec<Vec<Value>>,
    /// Whether more than `max_rows` rows existed.
    pub truncated: bool,
    /// The planner's total cost estimate.
    pub plan_cost: f64,
    /// Time spent in PostgreSQL (plan + run), milliseconds.
    pub elapsed_ms: f64,
}

/// A SQL `NULL` of whatever type the server infers for its parameter.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The declared type and bound value of one JSON parameter.
fn bind(index: usize, value: &Value) -> Result<(Type, Box<dyn ToSql + Sync + Send>), ApiError> {
    Ok(match value {
        Value::Null => (inferred(), Box::new(Null)),
        Value::Bool(b) => (Type::BOOL, Box::new(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => (Type::INT8, Box::new(i)),
            None => (Type::FLOAT8, Box::new(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => (Type::TEXT, Box::new(s.clone())),
        Value::Array(_) | Value::Object(_) => {
            return Err(ApiError::bad_request(
                "invalid-params",
                format!(
                    "parameter ${} must be a string, number, boolean or null",
                    index + 1
                ),
            ));
        }
    })
}

/// Type OID 0: "let the server infer it".
fn inferred() -> Type {
    Type::new(
        "unknown".to_owned(),
        0,
        Kind::Simple,
        "pg_catalog".to_owned(),
    )
}

/// Only names the policy already accepted reach here, but the value is spliced into `SET LOCAL`
/// (which takes no parameters), so it is checked once more rather than trusted.
fn setting_literal(value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(format!("'{value}'"))
    } else {
        Err(ApiError::Forbidden {
            kind: "region-not-allowed",
            detail: "role and region must be lower-case letters, digits, '-' or '_'".to_owned(),
        })
    }
}

/// Runs `job` on a connection of the restricted role's pool.
///
/// # Errors
/// 403/400/422 problems for what the database refused, 503 when it cannot be reached.
pub async fn run(pool: &deadpool_postgres::Pool, job: &Job<'_>) -> Result<Outcome, ApiError> {
    let mut bound = Vec::with_capacity(job.params.len());
    let mut types = Vec::with_capacity(job.params.len());
    for (i, value) in job.params.iter().enumerate() {
        let (ty, v) = bind(i, value)?;
        types.push(ty);
        bound.push(v);
    }
    let params: Vec<&(dyn ToSql + Sync)> = bound
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();

    let mut client = pool.get().await?;
    let started = Instant::now();
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(db_error)?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}; SET LOCAL quarry.role = {}; SET LOCAL quarry.region = {};
         SET LOCAL search_path = public; SET LOCAL standard_conforming_strings = on;
         SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL TimeZone = 'UTC'; SET LOCAL IntervalStyle = 'iso_8601';
         SET LOCAL bytea_output = 'hex'; SET LOCAL extra_float_digits = 3",
        job.timeout_ms,
        setting_literal(job.role)?,
        setting_literal(job.region)?,
    ))
    .await
    .map_err(db_error)?;

    let explain = tx
        .prepare_typed(&format!("EXPLAIN (FORMAT JSON) {}", job.sql), &types)
        .await
        .map_err(db_error)?;
    let plan: Value = tx
        .query_one(&explain, &params)
        .await
        .map_err(db_error)?
        .get(0);
    let plan_cost = plan
        .pointer("/0/Plan/Total Cost")
        .and_then(Value::as_f64)
        .unwrap_or(f64::INFINITY);
    if plan_cost > job.max_cost {
        return Err(ApiError::Rejected {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "sql-too-costly",
            reason: "cost".to_owned(),
            detail: format!(
                "the planner estimates a cost of {plan_cost:.0}, above the limit of {:.0}",
                job.max_cost
            ),
        });
    }

    let statement = tx.prepare_typed(job.sql, &types).await.map_err(db_error)?;
    let columns: Vec<Column> = statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            ty: c.type_().name().to_owned(),
        })
        .collect();
    let column_types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    // Every column as text, by position: names may repeat or be `?column?`.
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let texts: Vec<String> = aliases
        .iter()
        .map(|a| format!("quarry_q.{a}::text"))
        .collect();
    let outer = if columns.is_empty() {
        format!("SELECT FROM ({}) AS quarry_q", job.sql)
    } else {
        format!(
            "SELECT {} FROM ({}) AS quarry_q({})",
            texts.join(", "),
            job.sql,
            aliases.join(", ")
        )
    };
    let outer = tx.prepare_typed(&outer, &types).await.map_err(db_error)?;
    let fetched = tx.query(&outer, &params).await.map_err(db_error)?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Read-only: there is nothing to commit; ending it explicitly returns the connection clean.
    tx.rollback().await.map_err(db_error)?;

    let truncated = fetched.len() > job.max_rows;
    let rows = fetched
        .iter()
        .take(job.max_rows)
        .map(|row| {
            column_types
                .iter()
                .enumerate()
                .map(|(i, ty)| values::to_json(ty, row.get::<_, Option<String>>(i)))
                .collect()
        })
        .collect();
    Ok(Outcome {
        columns,
        rows,
        truncated,
        plan_cost,
        elapsed_ms,
    })
}

/// Maps what PostgreSQL said to a problem the caller can act on.
fn db_error(err: tokio_postgres::Error) -> ApiError {
    let Some(db) = err.as_db_error() else {
        return ApiError::Unavailable {
            kind: "database-unavailable",
            detail: "The database connection failed.".to_owned(),
            retry_after: Some(std::time::Duration::from_secs(2)),
        };
    };
    let code = db.code();
    let message = db.message().to_owned();
    let rejected = |status, kind, reason: &str| ApiError::Rejected {
        status,
        kind,
        reason: reason.to_owned(),
        detail: message.clone(),
    };
    if *code == SqlState::QUERY_CANCELED {
        rejected(StatusCode::UNPROCESSABLE_ENTITY, "sql-timeout", "timeout")
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        // The guard should have refused this; the database, the last wall, did.
        tracing::warn!(
            sqlstate = code.code(),
            "the database refused a statement the guard let through"
        );
        rejected(
            StatusCode::FORBIDDEN,
            "sql-not-allowed",
            "permission-denied",
        )
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        tracing::warn!("a write reached the read-only transaction");
        rejected(StatusCode::FORBIDDEN, "sql-not-allowed", "write")
    } else if code.code().starts_with("42") {
        rejected(StatusCode::BAD_REQUEST, "sql-invalid", "invalid")
    } else if code.code().starts_with("22") || code.code().starts_with("21") {
        rejected(StatusCode::UNPROCESSABLE_ENTITY, "sql-data-error", "data")
    } else if code.code().starts_with("53")
        || code.code().starts_with("08")
        || code.code().starts_with("57")
    {
        ApiError::Unavailable {
            kind: "database-unavailable",
            detail: "The database cannot run the query right now.".to_owned(),
            retry_after: Some(std::time::Duration::from_secs(2)),
        }
    } else {
        ApiError::internal(err)
    }
}
