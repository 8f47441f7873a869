//! Moves conditions between `HAVING` and `WHERE` when a model put one where PostgreSQL
//! refuses it.
//!
//! - [`having_to_where`]: a `HAVING` that filters rows, in a query that groups nothing. A model
//!   filtering a CTE's totals often writes `SELECT first_name, total_spent FROM totals HAVING
//!   total_spent > (SELECT avg(total_spent) FROM totals)` (c54 of the eval): with no `GROUP BY`
//!   and no aggregate, PostgreSQL treats the whole input as one group and refuses `column
//!   "totals.first_name" must appear in the GROUP BY clause`. The condition is a row filter, and
//!   measured with the 1.5B model the repair turn gives the query back unchanged, so it moves to
//!   `WHERE` (joined to an existing one with `AND`). Only a `SELECT` without `GROUP BY` whose
//!   projection and `HAVING` hold no aggregate (outside their subqueries) is changed: there the
//!   one group is only PostgreSQL's reading of the slip, never the query's meaning.
//! - [`where_to_having`]: an aggregate condition in `WHERE` ("aggregate functions are not allowed
//!   in WHERE"), which the model kept on every repair turn even when told why (c65). In a query
//!   that groups, it moves to `HAVING`. In one that only counts a key, `SELECT count(DISTINCT
//!   a.album_id) … WHERE sum(t.milliseconds) > 3600000`, the count is of the keys whose rows pass
//!   the condition: the rows are grouped by that key, filtered with `HAVING`, and the groups
//!   counted. Anything else (which groups a bare `count(*)` means, say) is left to the model.
//!
//! Like the other mends these run only on a query PostgreSQL refused, and the result goes
//! through the guard like any other query.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Query, Select, SelectItem, SetExpr, Statement, VisitMut,
    VisitorMut,
};

use super::relations::ident;
use super::{exprs_outside_subqueries, parse_for_mending};

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
        let groups = groups(select);
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

/// `sql` with the aggregate conditions of each `WHERE` moved to a `HAVING`: the query's own when
/// it groups, or a grouped subquery's when it only counts one key (see the module doc); `None`
/// when there is none that can be moved (or `sql` is not one statement).
pub fn where_to_having(sql: &str) -> Option<String> {
    let mut statement = parse_for_mending(sql)?;
    let mut mover = ToHaving { moved: 0 };
    let _ = VisitMut::visit(&mut statement, &mut mover);
    (mover.moved > 0).then(|| statement.to_string())
}

struct ToHaving {
    moved: usize,
}

impl VisitorMut for ToHaving {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let Some(filter) = select.selection.clone() else {
            return ControlFlow::Continue(());
        };
        let (aggregate, rows): (Vec<Expr>, Vec<Expr>) =
            conjuncts(filter).into_iter().partition(aggregates_in);
        if aggregate.is_empty() {
            return ControlFlow::Continue(());
        }
        if groups(select) {
            select.selection = all_of(rows);
            select.having = all_of(select.having.take().into_iter().chain(aggregate));
            self.moved += 1;
        } else if let Some((key, alias)) = counted_key(select) {
            let mut grouped = select.as_ref().clone();
            grouped.projection = vec![SelectItem::UnnamedExpr(key.clone())];
            grouped.group_by = GroupByExpr::Expressions(vec![key], Vec::new());
            grouped.selection = all_of(rows);
            grouped.having = all_of(aggregate);
            let alias = alias.map(|a| format!(" AS {a}")).unwrap_or_default();
            let counted = format!("SELECT count(*){alias} FROM ({grouped}) AS counted");
            let Some(Statement::Query(counted)) = parse_for_mending(&counted) else {
                return ControlFlow::Continue(());
            };
            query.body = counted.body;
            self.moved += 1;
        }
        ControlFlow::Continue(())
    }
}

/// Whether `select` has a `GROUP BY`.
pub(crate) fn groups(select: &Select) -> bool {
    match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => !exprs.is_empty() || !modifiers.is_empty(),
        GroupByExpr::All(_) => true,
    }
}

/// The key and output alias of a `select` whose whole projection is `count(key)` or
/// `count(DISTINCT key)` (a plain column or expression, no aggregate in it), and that has no
/// `HAVING` or `DISTINCT` of its own.
fn counted_key(select: &Select) -> Option<(Expr, Option<String>)> {
    if select.having.is_some() || select.distinct.is_some() {
        return None;
    }
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let (expr, alias) = match item {
        SelectItem::UnnamedExpr(expr) => (expr, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.to_string())),
        _ => return None,
    };
    let Expr::Function(function) = expr else {
        return None;
    };
    if function_name(function) != "count" || function.over.is_some() || function.filter.is_some() {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    if matches!(list.duplicate_treatment, Some(DuplicateTreatment::All)) || !list.clauses.is_empty()
    {
        return None;
    }
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(key))] if !aggregates_in(key) => {
            Some((key.clone(), alias))
        }
        _ => None,
    }
}

/// Whether `function` is one of PostgreSQL's aggregates (with or without `OVER`).
pub(crate) fn is_aggregate(function: &Function) -> bool {
    AGGREGATES.contains(&function_name(function).as_str())
}

/// The unqualified name a call is made by, as PostgreSQL folds it (`COUNT` → `count`); empty
/// when it is not a plain name.
pub(crate) fn function_name(function: &Function) -> String {
    function
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(ident)
        .unwrap_or_default()
}

/// The conditions `expr` joins with `AND` (parenthesised groups kept whole).
fn conjuncts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(*left);
            all.extend(conjuncts(*right));
            all
        }
        other => vec![other],
    }
}

/// `conditions` joined with `AND`; `None` for none.
fn all_of(conditions: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    conditions.into_iter().reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::And,
        right: Box::new(right),
    })
}

/// Whether `expr` calls an aggregate (or any function with `OVER`, which needs the rows too)
/// outside its subqueries.
fn aggregates_in(expr: &Expr) -> bool {
    let calls = calls_in(expr);
    calls.aggregate || calls.window
}

/// Whether `expr` aggregates its rows into one value: it calls an aggregate without `OVER`, and
/// no function with `OVER` (which keeps a value per row), outside its subqueries.
pub(crate) fn aggregates_to_one(expr: &Expr) -> bool {
    let calls = calls_in(expr);
    calls.aggregate && !calls.window
}

/// What kinds of calls an expression makes outside its subqueries.
#[derive(Default)]
struct Calls {
    /// An aggregate without `OVER`.
    aggregate: bool,
    /// Any function with `OVER`.
    window: bool,
}

fn calls_in(expr: &Expr) -> Calls {
    let mut calls = Calls::default();
    exprs_outside_subqueries(expr, |e| {
        if let Expr::Function(function) = e {
            if function.over.is_some() {
                calls.window = true;
            } else if is_aggregate(function) {
                calls.aggregate = true;
            }
        }
    });
    calls
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
    fn an_aggregate_condition_in_a_grouped_where_moves_to_having() {
        let sql = "SELECT a.title FROM album a JOIN track t ON t.album_id = a.album_id \
                   WHERE t.genre_id = 1 AND sum(t.milliseconds) > 3600000 AND a.artist_id = 2 \
                   GROUP BY a.title HAVING count(*) > 1 ORDER BY a.title";
        assert_eq!(
            where_to_having(sql).unwrap(),
            "SELECT a.title FROM album a JOIN track t ON t.album_id = a.album_id \
             WHERE t.genre_id = 1 AND a.artist_id = 2 GROUP BY a.title \
             HAVING count(*) > 1 AND sum(t.milliseconds) > 3600000 ORDER BY a.title"
        );
    }

    #[test]
    fn a_count_of_keys_with_an_aggregate_condition_counts_the_passing_groups() {
        // c65 of the eval, as the 1.5B model wrote it on every repair turn.
        let sql = "SELECT COUNT(DISTINCT a.album_id) AS albums FROM album a \
                   JOIN track t ON t.album_id = a.album_id WHERE SUM(t.milliseconds) > 3600000";
        assert_eq!(
            where_to_having(sql).unwrap(),
            "SELECT count(*) AS albums FROM (SELECT a.album_id FROM album a \
             JOIN track t ON t.album_id = a.album_id GROUP BY a.album_id \
             HAVING SUM(t.milliseconds) > 3600000) AS counted"
        );
        // Row filters stay row filters; a CTE's query is mended where it stands.
        let sql = "WITH x AS (SELECT count(album_id) FROM track \
                   WHERE genre_id = 1 AND avg(milliseconds) > 1000) SELECT * FROM x";
        assert_eq!(
            where_to_having(sql).unwrap(),
            "WITH x AS (SELECT count(*) FROM (SELECT album_id FROM track WHERE genre_id = 1 \
             GROUP BY album_id HAVING avg(milliseconds) > 1000) AS counted) SELECT * FROM x"
        );
    }

    #[test]
    fn an_aggregate_condition_without_a_key_is_left_to_the_model() {
        for sql in [
            // Which groups? Not said.
            "SELECT count(*) FROM track WHERE sum(milliseconds) > 1000",
            "SELECT album_id, count(album_id) FROM track WHERE sum(milliseconds) > 1000",
            "SELECT count(album_id) FROM track WHERE sum(milliseconds) > 1000 HAVING count(*) > 1",
            // No aggregate in WHERE (one in a subquery is fine there).
            "SELECT count(DISTINCT album_id) FROM track \
             WHERE milliseconds > (SELECT avg(milliseconds) FROM track)",
            "SELECT a FROM t GROUP BY a",
        ] {
            assert_eq!(where_to_having(sql), None, "{sql}");
        }
        assert_eq!(where_to_having("SELEC nonsense"), None);
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
