//! Reads a one-row CTE that a query names without putting it in its `FROM`.
//!
//! A model computing a share often writes `WITH total_revenue AS (SELECT sum(total) AS total
//! FROM invoice) SELECT region, round(sum(total) * 100 / total_revenue.total, 2) FROM invoice
//! GROUP BY region` (c49 of the eval, 2026-12-07): the CTE is named but never put in `FROM`.
//! PostgreSQL refuses it ("missing FROM-clause entry for table total_revenue") and measured with
//! the 1.5B model the repair turn gives the same query back.
//!
//! A CTE whose query aggregates without grouping (and has no `HAVING`, `LIMIT` or `OFFSET` that
//! could drop its row) returns exactly one row, so [`read_one_row_cte`] reads each such
//! reference as a scalar subquery, `(SELECT total_revenue.total FROM total_revenue)`: the value
//! every row would get from it. Joining the CTE instead would bring its column names into the
//! query, where `total` would then be ambiguous. A CTE of any other shape is left to the model,
//! since which of its rows belongs to which row is not written anywhere. Like the other mends
//! this runs only on a query PostgreSQL refused, and the result goes through the guard like any
//! other query.

use std::ops::ControlFlow;

use sqlparser::ast::{Cte, Expr, SelectItem, SetExpr, Statement};

use super::bindings::{visit_scoped_mut, Bindings};
use super::having::{aggregates_to_one, groups};
use super::relations::ident;
use super::schema::SchemaView;
use super::{name_ident, parse_for_mending};

/// `sql` with each reference to a one-row CTE from a query that does not read it written as a
/// scalar subquery of that CTE; `None` when there is none (or `sql` is not one statement).
pub fn read_one_row_cte(sql: &str, schema: &SchemaView) -> Option<String> {
    let mut statement = parse_for_mending(sql)?;
    let Statement::Query(query) = &statement else {
        return None;
    };
    let one_row: Vec<String> = query
        .with
        .iter()
        .flat_map(|with| &with.cte_tables)
        .filter(|cte| is_one_row(cte))
        .map(|cte| ident(&cte.alias.name))
        .collect();
    if one_row.is_empty() {
        return None;
    }
    let bindings = Bindings::of(&statement, schema);
    let mut read = 0;
    visit_scoped_mut(&mut statement, |scope, expr| {
        let Expr::CompoundIdentifier(parts) = expr else {
            return ControlFlow::Continue(());
        };
        let [qualifier, column] = parts.as_slice() else {
            return ControlFlow::Continue(());
        };
        let (cte, column) = (ident(qualifier), ident(column));
        if scope.is_none() || !one_row.contains(&cte) || bindings.resolve(&cte, scope).is_some() {
            return ControlFlow::Continue(());
        }
        let (cte, column) = (name_ident(&cte), name_ident(&column));
        if let Some(Statement::Query(scalar)) =
            parse_for_mending(&format!("SELECT {cte}.{column} FROM {cte}"))
        {
            *expr = Expr::Subquery(scalar);
            read += 1;
        }
        ControlFlow::Continue(())
    });
    (read > 0).then(|| statement.to_string())
}

/// Whether `cte` returns exactly one row: a plain `SELECT` that aggregates in every output
/// column, groups nothing, and has no `HAVING`, `LIMIT`, `OFFSET` or `FETCH`.
fn is_one_row(cte: &Cte) -> bool {
    let query = &cte.query;
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    query.limit_clause.is_none()
        && query.fetch.is_none()
        && select.having.is_none()
        && !groups(select)
        && !select.projection.is_empty()
        && select.projection.iter().all(|item| match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                aggregates_to_one(expr)
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> SchemaView {
        SchemaView {
            tables: vec![crate::sql::schema::TableView::fixture(
                "invoice",
                &[
                    ("invoice_id", "integer"),
                    ("region", "text"),
                    ("total", "numeric"),
                ],
            )],
        }
    }

    #[test]
    fn a_total_named_but_not_read_is_read_as_a_scalar() {
        // c49 of the eval, 2026-12-07, as the 1.5B model wrote it on two turns.
        let sql = "WITH total_revenue AS (SELECT sum(total) AS total FROM invoice) \
                   SELECT region, round(sum(total) * 100 / total_revenue.total, 2) AS percentage \
                   FROM invoice GROUP BY region";
        assert_eq!(
            read_one_row_cte(sql, &schema()).unwrap(),
            "WITH total_revenue AS (SELECT sum(total) AS total FROM invoice) \
             SELECT region, round(sum(total) * 100 / (SELECT total_revenue.total FROM \
             total_revenue), 2) AS percentage FROM invoice GROUP BY region"
        );
    }

    #[test]
    fn a_query_without_from_reads_each_column_once() {
        let sql = "WITH t AS (SELECT count(*) AS n, max(total) AS top FROM invoice) \
                   SELECT t.n, t.top";
        assert_eq!(
            read_one_row_cte(sql, &schema()).unwrap(),
            "WITH t AS (SELECT count(*) AS n, max(total) AS top FROM invoice) \
             SELECT (SELECT t.n FROM t), (SELECT t.top FROM t)"
        );
    }

    #[test]
    fn a_cte_that_may_hold_other_than_one_row_is_left_to_the_model() {
        for sql in [
            // Grouped: one row per region.
            "WITH t AS (SELECT region, sum(total) AS s FROM invoice GROUP BY region) \
             SELECT invoice_id, t.s FROM invoice",
            // A window keeps a row per input row.
            "WITH t AS (SELECT sum(total) OVER () AS s FROM invoice) SELECT t.s FROM invoice",
            // HAVING or OFFSET can drop the one row.
            "WITH t AS (SELECT sum(total) AS s FROM invoice HAVING sum(total) > 5) \
             SELECT t.s FROM invoice",
            "WITH t AS (SELECT sum(total) AS s FROM invoice OFFSET 1) SELECT t.s FROM invoice",
            // A plain column.
            "WITH t AS (SELECT total AS s FROM invoice) SELECT t.s FROM invoice",
            // Already read.
            "WITH t AS (SELECT sum(total) AS s FROM invoice) SELECT t.s FROM invoice, t",
        ] {
            assert_eq!(read_one_row_cte(sql, &schema()), None, "{sql}");
        }
        assert_eq!(read_one_row_cte("SELEC nonsense", &schema()), None);
    }

    #[test]
    fn a_subquery_naming_the_cte_reads_it_too() {
        let sql = "WITH t AS (SELECT avg(total) AS a FROM invoice) SELECT count(*) FROM \
                   (SELECT invoice_id FROM invoice WHERE total > t.a) AS big";
        assert_eq!(
            read_one_row_cte(sql, &schema()).unwrap(),
            "WITH t AS (SELECT avg(total) AS a FROM invoice) SELECT count(*) FROM \
             (SELECT invoice_id FROM invoice WHERE total > (SELECT t.a FROM t)) AS big"
        );
    }
}
