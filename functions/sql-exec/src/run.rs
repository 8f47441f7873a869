//! `POST /v1/sql`: guard, then run, then audit.

use axum::extract::State;
use axum::http::StatusCode;
use quarry_shared::http::caller::record;
use quarry_shared::http::{ApiError, Caller, Json, Problem};
use quarry_shared::policy::RolePolicy;
use quarry_shared::sql::{self, GuardOptions, Guarded, Rejection};
use quarry_shared::state::AppState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::execute::{self, Column, Job};

/// Most parameters one statement may bind.
const MAX_PARAMS: usize = 100;

/// A statement to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One read-only query (`SELECT`, `WITH … SELECT`, `VALUES`, set operations).
    #[schema(example = "SELECT name, unit_price FROM track WHERE genre_id = $1 ORDER BY name")]
    pub sql: String,
    /// Values for `$1`, `$2`, …: integers bind as `int8`, other numbers as `float8`, strings as
    /// `text`, booleans as `bool`; cast in SQL for other types (`$1::date`, `$1::numeric`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<Value>,
    /// Rows to return at most; only lower than the server's limit (`SQL_MAX_ROWS`, default 1000).
    pub max_rows: Option<u32>,
}

/// The result.
#[derive(Debug, Serialize, ToSchema)]
pub struct SqlResponse {
    /// Result columns with their PostgreSQL type names.
    pub columns: Vec<Column>,
    /// Rows as arrays in column order. Numerics are exact decimal strings; timestamps ISO 8601
    /// (`timestamptz` in UTC with `Z`); `bytea` base64; NULL `null`.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<Value>>,
    /// Number of rows returned.
    pub row_count: usize,
    /// Whether more rows existed than were returned.
    pub truncated: bool,
    /// The planner's total cost estimate.
    pub plan_cost: f64,
    /// Time spent in the database, milliseconds.
    pub elapsed_ms: f64,
}

fn rejection_error(rejection: &Rejection) -> ApiError {
    let (status, kind) = match rejection {
        Rejection::Empty
        | Rejection::TooLong { .. }
        | Rejection::TooDeep
        | Rejection::Parse { .. }
        | Rejection::MultipleStatements => (StatusCode::BAD_REQUEST, "sql-invalid"),
        Rejection::NotAQuery(_)
        | Rejection::Write(_)
        | Rejection::Function(_)
        | Rejection::SystemCatalog(_) => (StatusCode::FORBIDDEN, "sql-not-allowed"),
        Rejection::Table { .. } => (StatusCode::FORBIDDEN, "table-not-granted"),
        Rejection::Column { .. } => (StatusCode::FORBIDDEN, "column-not-granted"),
    };
    let detail = match rejection {
        Rejection::Parse {
            line: Some(line),
            column: Some(column),
            ..
        } => format!("{rejection} (line {line}, column {column})"),
        _ => rejection.to_string(),
    };
    ApiError::Rejected {
        status,
        kind,
        reason: rejection.reason(),
        detail,
    }
}

/// Inputs up to this size are guarded on the runtime thread (typical queries take ~15 µs); longer
/// ones can take milliseconds (the guard checks them on a thread of their own with a big stack),
/// so they go to the blocking pool rather than stall other requests.
const INLINE_GUARD_BYTES: usize = 4 * 1024;

async fn guard(
    sql: &str,
    role: &RolePolicy,
    options: &GuardOptions,
) -> Result<Result<Guarded, Rejection>, ApiError> {
    if sql.len() <= INLINE_GUARD_BYTES {
        return Ok(sql::check(sql, role, options));
    }
    let (sql, role, options) = (sql.to_owned(), role.clone(), options.clone());
    tokio::task::spawn_blocking(move || sql::check(&sql, &role, &options))
        .await
        .map_err(ApiError::internal)
}

/// Runs one read-only query for the caller; every outcome is audited with the statement's hash.
#[utoipa::path(
    post,
    path = "/v1/sql",
    tag = "sql",
    request_body = SqlRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rows", body = SqlResponse),
        (status = 400, description = "Not one parseable query, or invalid for the database", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A write, a denied function, or a table or column not granted (see `reason`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Over the cost limit (`sql-too-costly`), timed out, or a data error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or audit log unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_sql(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<SqlRequest>,
) -> Result<Json<SqlResponse>, ApiError> {
    let settings = &state.settings;
    let max_rows = match request.max_rows {
        Some(0) => {
            return Err(ApiError::bad_request(
                "invalid-max-rows",
                "max_rows must be at least 1",
            ))
        }
        Some(n) => n.min(settings.sql_max_rows),
        None => settings.sql_max_rows,
    };
    if request.params.len() > MAX_PARAMS {
        return Err(ApiError::bad_request(
            "invalid-params",
            format!("at most {MAX_PARAMS} parameters"),
        ));
    }
    let hash: String = Sha256::digest(request.sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Some(role) = caller.role() else {
        return Err(ApiError::Forbidden {
            kind: "role-unknown",
            detail: "the caller's role is not in the policy".to_owned(),
        });
    };
    let options = GuardOptions {
        max_rows,
        function_allow_list: settings.sql_function_allow_list.clone(),
        ..GuardOptions::default()
    };
    let audit = |allowed: bool, reason: String, resource: String| {
        let mut r = caller.audit_record("sql", resource, allowed, reason);
        r.statement_hash = Some(hash.clone());
        r
    };

    let guarded = match guard(&request.sql, role, &options).await? {
        Ok(guarded) => guarded,
        Err(rejection) => {
            record(
                &state.governance,
                audit(false, rejection.reason(), "sql".to_owned()),
            )
            .await?;
            return Err(rejection_error(&rejection));
        }
    };
    let resource = format!(
        "sql:{}",
        guarded
            .tables
            .iter()
            .map(|(s, t)| format!("{s}.{t}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let job = Job {
        sql: &guarded.sql,
        params: &request.params,
        max_rows: max_rows as usize,
        role: &caller.principal.role,
        region: &caller.principal.region,
        timeout_ms: u64::try_from(settings.sql_statement_timeout.as_millis()).unwrap_or(u64::MAX),
        max_cost: settings.sql_max_cost,
    };
    match execute::run(&state.governance.app_db, &job).await {
        Ok(outcome) => {
            let mut row = audit(true, "granted".to_owned(), resource);
            row.row_count = i64::try_from(outcome.rows.len()).ok();
            row.duration_ms = Some(outcome.elapsed_ms);
            record(&state.governance, row).await?;
            Ok(Json(SqlResponse {
                row_count: outcome.rows.len(),
                columns: outcome.columns,
                rows: outcome.rows,
                truncated: outcome.truncated,
                plan_cost: outcome.plan_cost,
                elapsed_ms: outcome.elapsed_ms,
            }))
        }
        Err(err) => {
            let reason = match &err {
                ApiError::Rejected { reason, .. } => reason.clone(),
                other => other.slug().to_owned(),
            };
            record(&state.governance, audit(false, reason, resource)).await?;
            Err(err)
        }
    }
}
