//! The row cap around an accepted query.

use sqlparser::ast::Query;

/// Alias of the wrapping subquery; `quarry_` so it cannot collide with a demo table or CTE.
const ALIAS: &str = "quarry_capped";

/// Wraps `query` as `SELECT * FROM (<query>) AS quarry_capped LIMIT <max_rows + 1>`.
///
/// The query is rendered from the syntax tree the guard checked, never copied from the caller's
/// text: a comment, dollar quote or escape that `sqlparser` and PostgreSQL lex differently cannot
/// smuggle anything past the guard, because PostgreSQL receives exactly what was checked. The
/// extra row lets the executor tell "exactly `max_rows`" from "truncated" without a second query.
/// A subquery keeps the inner `ORDER BY` in practice (PostgreSQL scans the sorted subquery), and
/// an inner `LIMIT` smaller than the cap still wins.
pub(crate) fn wrap(query: &Query, max_rows: u32) -> String {
    format!(
        "SELECT * FROM ({query}) AS {ALIAS} LIMIT {}",
        u64::from(max_rows) + 1
    )
}
