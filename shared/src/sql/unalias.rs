//! Writes out an output alias used where PostgreSQL does not allow one.
//!
//! `SELECT sum(total) AS total_spent … HAVING total_spent > 45` is how models (and people)
//! write a filter on an aggregate, but PostgreSQL resolves `HAVING` and `WHERE` against the
//! input columns only: `column "total_spent" does not exist`. The meaning is not in doubt, so
//! [`unalias`] replaces the alias with the expression it names (`HAVING sum(total) > 45`).
//!
//! Only called on a query PostgreSQL refused for that missing column, and only for a name the
//! same `SELECT` defines exactly once; the result goes through the guard like any other query.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions_mut, Expr, Query, SelectItem, SetExpr, VisitMut, VisitorMut,
};

use super::relations::ident;

/// `sql` with the output alias `missing` written out in the `WHERE` and `HAVING` of the
/// `SELECT` that defines it; `None` when no `SELECT` of `sql` defines it exactly once and uses
/// it there (or `sql` is not one statement).
pub fn unalias(sql: &str, missing: &str) -> Option<String> {
    let mut statement = super::parse_for_mending(sql)?;
    let mut writer = Writer {
        missing,
        changed: 0,
    };
    let _ = statement.visit(&mut writer);
    (writer.changed > 0).then(|| statement.to_string())
}

struct Writer<'a> {
    missing: &'a str,
    changed: usize,
}

impl VisitorMut for Writer<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let mut defined = select.projection.iter().filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } if ident(alias) == self.missing => {
                Some(expr.clone())
            }
            _ => None,
        });
        let (Some(expr), None) = (defined.next(), defined.next()) else {
            return ControlFlow::Continue(());
        };
        for clause in [select.selection.as_mut(), select.having.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = visit_expressions_mut(clause, |e: &mut Expr| {
                if matches!(e, Expr::Identifier(name) if ident(name) == self.missing) {
                    *e = Expr::Nested(Box::new(expr.clone()));
                    self.changed += 1;
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_in_having_becomes_its_expression() {
        let sql = "SELECT c.first_name, sum(i.total) AS total_spent FROM customer c \
                   JOIN invoice i ON i.customer_id = c.customer_id \
                   GROUP BY c.customer_id HAVING total_spent > 45 ORDER BY total_spent DESC";
        let fixed = unalias(sql, "total_spent").unwrap();
        assert!(
            fixed.contains("HAVING (sum(i.total)) > 45 ORDER BY total_spent DESC"),
            "{fixed}"
        );
    }

    #[test]
    fn where_is_mended_and_subqueries_keep_their_own_aliases() {
        let sql = "SELECT t.milliseconds / 60000.0 AS minutes FROM track t WHERE minutes > 10";
        let fixed = unalias(sql, "minutes").unwrap();
        assert!(
            fixed.ends_with("WHERE (t.milliseconds / 60000.0) > 10"),
            "{fixed}"
        );
        let sql = "SELECT x FROM (SELECT count(*) AS n FROM track) s WHERE n > 1";
        assert_eq!(
            unalias(sql, "n"),
            None,
            "n is the subquery's output, a real column here"
        );
    }

    #[test]
    fn nothing_changes_without_one_definition_or_a_use() {
        assert_eq!(
            unalias("SELECT 1 AS a, 2 AS a FROM t WHERE a > 0", "a"),
            None
        );
        assert_eq!(
            unalias("SELECT total FROM invoice WHERE spent > 1", "spent"),
            None
        );
        assert_eq!(unalias("SELECT 1 AS a FROM t ORDER BY a", "a"), None);
        assert_eq!(unalias("SELECT 1 AS a; SELECT 2", "a"), None);
        assert_eq!(unalias("SELEC nonsense", "a"), None);
    }
}
