//! Turns a `HAVING` that filters rows, in a query that groups nothing, into a `WHERE`.
//!
//! A model filtering a CTE's totals often writes `SELECT first_name, total_spent FROM totals
//! HAVING total_spent > (SELECT avg(total_spent) FROM totals)` (c54 of the eval): with no
//! `GROUP BY` and no aggregate, PostgreSQL treats the whole input as one group and refuses
//! `column "totals.first_name" must appear in the GROUP BY clause`. The condition is a row
//! filter, and measured with the 1.5B model the repair turn gives the query back unchanged, so
//! [`having_to_where`] moves it to `WHERE` (joined to an existing one with `AND`).
//!
//! Only a `SELECT` without `GROUP BY` whose projection and `HAVING` hold no aggregate (outside
//! their subqueries) is changed: there the one group is only PostgreSQL's reading of the slip,
//! never the query's meaning. Like the other mends this runs only on a query PostgreSQL refused,
//! and the result goes through the guard like any other query.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, Visit, VisitMut, Visitor,
    VisitorMut,
};

use super::parse_for_mending;
use super::relations::ident;

/// Aggregate functions of PostgreSQL that a model writes: one of them in a `SELECT` makes its
/// `HAVING` a real group filter.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "json_agg",
    "jsonb_agg",
    "percentile_cont",
    "percentile_disc",
    "mode",
];

/// `sql` with the `HAVING` of each `SELECT` that groups nothing and aggregates nothing written
/// as `WHERE`; `None` when there is none (or `sql` is not one statement).
pub fn having_to_where(sql: &str) -> Option<String> {
    let mut statement = parse_for_mending(sql)?;
    let mut mover = Mover { moved: 0 };
    let _ = VisitMut::visit(&mut statement, &mut mover);
    (mover.moved > 0).then(|| statement.to_string())
}

struct Mover {
    moved: usize,
}

impl VisitorMut for Mover {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let groups = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                !exprs.is_empty() || !modifiers.is_empty()
            }
            GroupByExpr::All(_) => true,
        };
        let Some(having) = select.having.as_ref() else {
            return ControlFlow::Continue(());
        };
        let aggregates = aggregates_in(having)
            || select.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                    aggregates_in(expr)
                }
                _ => false,
            });
        if groups || aggregates {
            return ControlFlow::Continue(());
        }
        let Some(having) = select.having.take() else {
            return ControlFlow::Continue(());
        };
        select.selection = Some(match select.selection.take() {
            Some(filter) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(filter))),
                op: BinaryOperator::And,
                right: Box::new(Expr::Nested(Box::new(having))),
            },
            None => having,
        });
        self.moved += 1;
        ControlFlow::Continue(())
    }
}

/// Whether `expr` calls an aggregate (or any function with `OVER`, which needs the rows too)
/// outside its subqueries.
fn aggregates_in(expr: &Expr) -> bool {
    struct Finder {
        depth: usize,
        found: bool,
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if self.depth > 0 {
                return ControlFlow::Continue(());
            }
            if let Expr::Function(function) = expr {
                let name = function
                    .name
                    .0
                    .last()
                    .and_then(|part| part.as_ident())
                    .map(ident)
                    .unwrap_or_default();
                if function.over.is_some() || AGGREGATES.contains(&name.as_str()) {
                    self.found = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder {
        depth: 0,
        found: false,
    };
    let _ = expr.visit(&mut finder);
    finder.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_filter_written_as_having_becomes_where() {
        // c54 of the eval, as the 1.5B model wrote it on two repair turns.
        let sql = "WITH t AS (SELECT c.first_name, sum(i.total) AS total_spent FROM customer c \
                   JOIN invoice i ON i.customer_id = c.customer_id GROUP BY c.customer_id) \
                   SELECT first_name, total_spent FROM t \
                   HAVING total_spent > (SELECT avg(total_spent) FROM t) ORDER BY total_spent DESC";
        let fixed = having_to_where(sql).unwrap();
        assert!(
            fixed.ends_with(
                "SELECT first_name, total_spent FROM t \
                 WHERE total_spent > (SELECT avg(total_spent) FROM t) ORDER BY total_spent DESC"
            ),
            "{fixed}"
        );
        // The CTE's own GROUP BY is untouched.
        assert!(fixed.contains("GROUP BY c.customer_id)"), "{fixed}");
    }

    #[test]
    fn an_existing_where_is_kept_and_joined_with_and() {
        let fixed = having_to_where("SELECT a FROM t WHERE b = 1 OR c = 2 HAVING a > 3").unwrap();
        assert_eq!(fixed, "SELECT a FROM t WHERE (b = 1 OR c = 2) AND (a > 3)");
    }

    #[test]
    fn a_real_group_filter_is_left_alone() {
        for sql in [
            // Grouped.
            "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1",
            // One group over the whole table, on purpose.
            "SELECT count(*) FROM t HAVING count(*) > 1",
            "SELECT a FROM t HAVING max(b) > 1",
            // A window function needs the rows.
            "SELECT a FROM t HAVING rank() OVER (ORDER BY a) = 1",
            // No HAVING at all.
            "SELECT a FROM t WHERE a > 1",
        ] {
            assert_eq!(having_to_where(sql), None, "{sql}");
        }
        assert_eq!(having_to_where("SELEC nonsense"), None);
    }
}
