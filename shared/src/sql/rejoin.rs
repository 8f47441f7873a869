//! Joins a table again in the query that names it outside the CTE or subquery that joined it.
//!
//! A small model writing a CTE often joins a table inside it and then names that table's
//! columns in the outer query: `WITH s AS (SELECT employee_id, count(*) … FROM customer JOIN
//! employee …) SELECT employee.first_name … FROM s` (c19 of the eval). PostgreSQL refuses it
//! ("missing FROM-clause entry for table employee"), and measured with the 1.5B model the repair
//! turn gives the same query back three times over. [`requalify`](super::requalify) and
//! [`bridge`](super::bridge) cannot help: the outer query reads no table that has the column or
//! a key leading to it, only the CTE.
//!
//! When the query naming the table reads exactly one CTE or subquery column that holds the
//! table's key — its one-column primary key, or a foreign-key column that references it — the
//! table is joined there on that key, under the name the query used: one row of it for each row
//! read, so no count or sum is multiplied. Like the other mends this runs only on a query
//! PostgreSQL refused, and the result goes through the guard like any other query.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Join, Query, SetExpr, TableFactor, Visit, VisitMut, Visitor, VisitorMut,
};

use super::bindings::{
    bound_name, cte_columns, named_or, output_columns, visit_scoped, Bindings, QueryNumbers,
};
use super::relations::ident;
use super::schema::{SchemaView, TableView};
use super::{name_ident, parse_for_mending, parse_from, table_sql};

/// `sql` with the first table named outside the CTE or subquery that joined it joined again on
/// the key that CTE or subquery exposes; `None` when there is no such reference, the key is not
/// exposed exactly once, or `sql` is not one statement.
pub fn rejoin(sql: &str, schema: &SchemaView) -> Option<String> {
    let mut statement = parse_for_mending(sql)?;
    let bindings = Bindings::of(&statement, schema);
    let ctes = cte_columns(&statement);
    let mut found = None;
    visit_scoped(&statement, |scope, expr| {
        let Expr::CompoundIdentifier(parts) = expr else {
            return ControlFlow::Continue(());
        };
        let [q, c] = parts.as_slice() else {
            return ControlFlow::Continue(());
        };
        let (qualifier, column) = (ident(q), ident(c));
        if bindings.resolve(&qualifier, scope).is_some() || ctes.contains_key(&qualifier) {
            return ControlFlow::Continue(());
        }
        match (scope, bindings.names.get(&qualifier)) {
            (Some(scope), Some(Some(table))) if table.has_column(&column) => {
                found = Some((scope, qualifier, *table));
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    });
    let (scope, qualifier, table) = found?;
    let [key] = table.primary_key.as_slice() else {
        return None;
    };
    let mut at = AtQuery {
        wanted: scope,
        queries: QueryNumbers::default(),
        ctes: &ctes,
        found: None,
    };
    let _ = Visit::visit(&statement, &mut at);
    let exposed = at.found?;
    let holds_key = |column: &str| {
        column == key
            || schema
                .tables
                .iter()
                .flat_map(|t| &t.foreign_keys)
                .any(|fk| {
                    fk.columns == [column]
                        && table.is(&fk.references)
                        && fk.referenced_columns == [key.as_str()]
                })
    };
    let mut ways = Vec::new();
    for (item, columns) in &exposed {
        for column in columns.iter().filter(|c| holds_key(c)) {
            ways.push((item.clone(), column.clone()));
        }
    }
    let [(item, column)] = ways.as_slice() else {
        return None;
    };
    let join = join(table, &qualifier, key, item, column)?;
    let mut add = AddJoin {
        wanted: scope,
        queries: QueryNumbers::default(),
        item,
        join: Some(join),
    };
    let _ = VisitMut::visit(&mut statement, &mut add);
    add.join.is_none().then(|| statement.to_string())
}

/// The name a CTE or subquery `FROM` item binds and the columns it exposes; `None` for tables
/// of the schema and anything else.
fn read_item(
    factor: &TableFactor,
    ctes: &BTreeMap<String, Vec<String>>,
) -> Option<(String, Vec<String>)> {
    match factor {
        TableFactor::Table { name, alias, .. } => {
            let [part] = name.0.as_slice() else {
                return None;
            };
            let columns = ctes.get(&ident(part.as_ident()?))?;
            let aliased = alias.as_ref().map_or(&[][..], |a| a.columns.as_slice());
            Some((bound_name(factor)?, named_or(aliased, || columns.clone())))
        }
        TableFactor::Derived {
            subquery,
            alias: Some(alias),
            ..
        } => Some((
            ident(&alias.name),
            named_or(&alias.columns, || output_columns(subquery)),
        )),
        _ => None,
    }
}

/// The CTEs and subqueries the select of query number `wanted` reads, with their columns.
struct AtQuery<'a> {
    wanted: usize,
    queries: QueryNumbers,
    ctes: &'a BTreeMap<String, Vec<String>>,
    found: Option<Vec<(String, Vec<String>)>>,
}

impl Visitor for AtQuery<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.queries.enter() != self.wanted {
            return ControlFlow::Continue(());
        }
        if let SetExpr::Select(select) = &*query.body {
            let items = select
                .from
                .iter()
                .flat_map(|from| {
                    std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
                })
                .filter_map(|factor| read_item(factor, self.ctes))
                .collect();
            self.found = Some(items);
        }
        ControlFlow::Break(())
    }
}

/// `JOIN table AS qualifier ON qualifier.key = item.column`, parsed.
fn join(table: &TableView, qualifier: &str, key: &str, item: &str, column: &str) -> Option<Join> {
    let name = table_sql(table);
    let (qualifier, key, item, column) = (
        name_ident(qualifier),
        name_ident(key),
        name_ident(item),
        name_ident(column),
    );
    parse_from(&format!(
        "placeholder JOIN {name} AS {qualifier} ON {qualifier}.{key} = {item}.{column}"
    ))?
    .joins
    .into_iter()
    .next()
}

/// Appends `join` to the `FROM` entry of query number `wanted` that holds `item`.
struct AddJoin<'a> {
    wanted: usize,
    queries: QueryNumbers,
    item: &'a str,
    join: Option<Join>,
}

impl VisitorMut for AddJoin<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if self.queries.enter() != self.wanted {
            return ControlFlow::Continue(());
        }
        if let SetExpr::Select(select) = &mut *query.body {
            let item = self.item;
            let holds = |factor: &TableFactor| match factor {
                TableFactor::Derived {
                    alias: Some(alias), ..
                } => ident(&alias.name) == item,
                _ => bound_name(factor).as_deref() == Some(item),
            };
            let entry = select.from.iter_mut().find(|from| {
                holds(&from.relation) || from.joins.iter().any(|j| holds(&j.relation))
            });
            if let (Some(entry), Some(join)) = (entry, self.join.take()) {
                entry.joins.push(join);
            }
        }
        ControlFlow::Break(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::schema::ForeignKey;

    fn chinook() -> SchemaView {
        let mut customer = TableView::fixture(
            "customer",
            &[
                ("customer_id", "integer"),
                ("first_name", "text"),
                ("support_rep_id", "integer"),
            ],
        );
        customer.primary_key = vec!["customer_id".into()];
        customer.foreign_keys.push(ForeignKey {
            columns: vec!["support_rep_id".into()],
            references: "public.employee".into(),
            referenced_columns: vec!["employee_id".into()],
        });
        let mut employee = TableView::fixture(
            "employee",
            &[
                ("employee_id", "integer"),
                ("first_name", "text"),
                ("last_name", "text"),
            ],
        );
        employee.primary_key = vec!["employee_id".into()];
        SchemaView {
            tables: vec![customer, employee],
        }
    }

    #[test]
    fn a_table_read_only_inside_a_cte_is_joined_on_the_key_the_cte_returns() {
        // c19 of the eval, as the 1.5B model wrote it three times.
        let sql = "WITH customer_support AS (SELECT employee_id, COUNT(*) AS customer_count \
                   FROM customer JOIN employee ON customer.support_rep_id = employee.employee_id \
                   GROUP BY employee_id) SELECT employee.first_name, employee.last_name, \
                   customer_count FROM customer_support ORDER BY customer_count DESC LIMIT 1";
        let fixed = rejoin(sql, &chinook()).unwrap();
        assert!(
            fixed.contains(
                "FROM customer_support JOIN employee AS employee \
                 ON employee.employee_id = customer_support.employee_id ORDER BY"
            ),
            "{fixed}"
        );
        assert!(fixed.starts_with("WITH customer_support AS (SELECT employee_id"));
    }

    #[test]
    fn a_foreign_key_column_the_cte_returns_serves_under_the_alias_used() {
        let sql = "WITH s AS (SELECT c.support_rep_id, count(*) AS n FROM customer c \
                   JOIN employee e ON e.employee_id = c.support_rep_id GROUP BY 1) \
                   SELECT e.last_name, s.n FROM s";
        let fixed = rejoin(sql, &chinook()).unwrap();
        assert!(
            fixed.ends_with("FROM s JOIN employee AS e ON e.employee_id = s.support_rep_id"),
            "{fixed}"
        );
    }

    #[test]
    fn a_subquery_in_from_serves_like_a_cte() {
        let sql = "SELECT employee.last_name, x.n FROM (SELECT employee_id, count(*) AS n \
                   FROM customer JOIN employee ON employee.employee_id = customer.support_rep_id \
                   GROUP BY employee_id) AS x WHERE x.n > 1";
        let fixed = rejoin(sql, &chinook()).unwrap();
        assert!(
            fixed.contains(
                "AS x JOIN employee AS employee ON employee.employee_id = x.employee_id WHERE"
            ),
            "{fixed}"
        );
    }

    #[test]
    fn nothing_changes_without_exactly_one_way_to_the_key() {
        let schema = chinook();
        // The CTE does not return the key.
        let hidden = "WITH s AS (SELECT count(*) AS n FROM customer JOIN employee \
                      ON employee.employee_id = customer.support_rep_id) \
                      SELECT employee.last_name, n FROM s";
        assert_eq!(rejoin(hidden, &schema), None);
        // Two CTEs return it: which one was meant is not known.
        let twice = "WITH a AS (SELECT employee_id FROM employee), \
                     b AS (SELECT support_rep_id FROM customer JOIN employee \
                     ON employee.employee_id = customer.support_rep_id) \
                     SELECT employee.last_name FROM a, b";
        assert_eq!(rejoin(twice, &schema), None);
        // The name is bound where it is used: nothing is missing.
        let fine = "WITH s AS (SELECT employee_id FROM employee) \
                    SELECT employee.last_name FROM s JOIN employee USING (employee_id)";
        assert_eq!(rejoin(fine, &schema), None);
        // A name bound nowhere is the bridge's, not this mend's.
        let unbound = "SELECT t.last_name FROM customer";
        assert_eq!(rejoin(unbound, &schema), None);
    }
}
