//! Grounds a query's text filters in the data: which column really holds `'Paris'`?
//!
//! A small model often filters the right value on the wrong column — `e.city = 'Paris'` for
//! "customers who live in Paris", `composer = 'Iron Maiden'` for a band — or spells a value in
//! the wrong case. The query runs and comes back empty, and "it returned no rows" alone rarely
//! makes the model see why. Asking the data settles it: [`filters`] lists a query's
//! `column = 'text'` and `column IN ('text', …)` comparisons, [`probe`] builds one read-only
//! query that looks each value up (case-insensitively) in every text column of the tables
//! given, and [`respell_value`] writes a value its column holds in another case as stored.
//! Moving a filter to another column is left to the model, which knows the question
//! ([`super::refilter`] writes a candidate for it).
//!
//! Everything here is pure; the probe runs as the caller like any other query (through the
//! guard, under row-level security), so it finds only values the caller could read anyway.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions, visit_expressions_mut, BinaryOperator, Expr, InTarget};

use super::bindings::{Binding, Bindings};
use super::relations::ident;
use super::schema::{SchemaView, TableView};
use super::{name_ident, string_expr, string_literal};

/// One comparison of a table's column with a text literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The `FROM` name the column is read through (an alias, or the table's name).
    pub binding: String,
    /// The table, `schema.name`.
    pub table: String,
    /// The column.
    pub column: String,
    /// The literal it is compared with.
    pub value: String,
}

/// Where a value was found: a text column and the value as stored there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The table, `schema.name`.
    pub table: String,
    /// The column.
    pub column: String,
    /// The stored value (it may differ from the one looked up in case).
    pub value: String,
}

/// A query's text filters and the tables its `FROM` binds, read from one parse.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters {
    /// The `column = 'text'` and `column IN ('text', …)` comparisons whose column is a text
    /// column of a table of the schema, in the order they appear.
    pub list: Vec<Filter>,
    /// The names the `FROM` items bind to tables of the schema, with the table (`schema.name`)
    /// each stands for.
    pub bound: Vec<(String, String)>,
}

/// The text filters of `sql` and the tables it binds; empty when `sql` does not parse.
pub fn filters(sql: &str, schema: &SchemaView) -> Filters {
    let Some(statement) = super::parse_for_mending(sql) else {
        return Filters::default();
    };
    let bindings = Bindings::of(&statement, schema);
    let mut list = Vec::new();
    let _ = visit_expressions(&statement, |expr: &Expr| {
        for (column, value) in comparisons(expr) {
            if let Some((binding, table, column)) = resolve(column, &bindings.names) {
                if is_text(table, &column) {
                    let filter = Filter {
                        binding,
                        table: table.qualified_name(),
                        column,
                        value,
                    };
                    if !list.contains(&filter) {
                        list.push(filter);
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    let bound = bindings
        .names
        .into_iter()
        .filter_map(|(name, table)| table.map(|t| (name, t.qualified_name())))
        .collect();
    Filters { list, bound }
}

/// How many columns one probe searches at most: each is one arm of a `UNION ALL`, and the
/// guard caps how deep a query nests.
pub const MAX_PROBED_COLUMNS: usize = 48;

/// One query that answers, for each of `values`, which text columns of `tables` hold it,
/// compared case-insensitively: rows of (table, column, stored value). At most
/// [`MAX_PROBED_COLUMNS`] columns are searched, in table order; `None` when there is no value or
/// no text column.
pub fn probe(values: &[&str], tables: &[&TableView]) -> Option<String> {
    let mut values: Vec<String> = values.iter().map(|v| v.to_lowercase()).collect();
    values.sort();
    values.dedup();
    if values.is_empty() {
        return None;
    }
    let list = values
        .iter()
        .map(|v| string_expr(v).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let arms: Vec<String> = tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| is_text_type(&c.ty))
                .map(move |c| (t, c))
        })
        .take(MAX_PROBED_COLUMNS)
        .map(|(t, c)| {
            let qualified = t.qualified_name();
            // One row per distinct stored value that matches: `'paris'` may be stored as
            // `Paris` in one row and `PARIS` in another.
            format!(
                "SELECT DISTINCT {} AS found_table, {} AS found_column, {col}::text AS found_value \
                 FROM {}.{} WHERE lower({col}::text) IN ({list})",
                string_expr(&qualified),
                string_expr(&c.name),
                name_ident(&t.schema),
                name_ident(&t.name),
                col = name_ident(&c.name),
            )
        })
        .collect();
    (!arms.is_empty()).then(|| format!("{} LIMIT 100", arms.join(" UNION ALL ")))
}

/// `sql` with the literal of the comparison `filter` describes written as `stored` (the value
/// as the column holds it, in another case); `None` when the comparison is not in `sql`.
pub fn respell_value(
    sql: &str,
    schema: &SchemaView,
    filter: &Filter,
    stored: &str,
) -> Option<String> {
    edit_filter(sql, schema, filter, |parts, expr| match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            if parts.is_column(left) && parts.is_value(right) {
                **right = string_expr(stored);
                1
            } else if parts.is_value(left) && parts.is_column(right) {
                **left = string_expr(stored);
                1
            } else {
                0
            }
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } if parts.is_column(expr) => {
            let mut changed = 0;
            for item in list.iter_mut().filter(|item| parts.is_value(item)) {
                *item = string_expr(stored);
                changed += 1;
            }
            changed
        }
        _ => 0,
    })
}

/// Tells apart, in one parsed statement, the two sides of the comparison a [`Filter`]
/// describes: its column (read through the same binding) and its literal.
pub(super) struct FilterParts<'f, 's> {
    names: BTreeMap<String, Binding<'s>>,
    filter: &'f Filter,
}

impl FilterParts<'_, '_> {
    /// Whether `expr` reads the filter's column through the filter's binding.
    pub(super) fn is_column(&self, expr: &Expr) -> bool {
        resolve(expr, &self.names)
            .is_some_and(|(b, _, c)| b == self.filter.binding && c == self.filter.column)
    }

    /// Whether `expr` is the filter's literal.
    pub(super) fn is_value(&self, expr: &Expr) -> bool {
        string_literal(expr).is_some_and(|v| v == self.filter.value)
    }
}

/// `sql` with `edit` applied to each of its expressions (innermost first), told how to recognise
/// the comparison `filter` describes; `edit` returns how many changes it made. `None` when it
/// made none or `sql` does not parse.
pub(super) fn edit_filter(
    sql: &str,
    schema: &SchemaView,
    filter: &Filter,
    mut edit: impl FnMut(&FilterParts<'_, '_>, &mut Expr) -> usize,
) -> Option<String> {
    let mut statement = super::parse_for_mending(sql)?;
    let parts = FilterParts {
        names: Bindings::of(&statement, schema).names,
        filter,
    };
    let mut changed = 0;
    let _ = visit_expressions_mut(&mut statement, |expr: &mut Expr| {
        changed += edit(&parts, expr);
        ControlFlow::<()>::Continue(())
    });
    (changed > 0).then(|| statement.to_string())
}

/// The (column reference, literal) pairs `expr` compares, if it is such a comparison.
fn comparisons(expr: &Expr) -> Vec<(&Expr, String)> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => match (string_literal(left), string_literal(right)) {
            (None, Some(value)) if is_column(left) => vec![(&**left, value)],
            (Some(value), None) if is_column(right) => vec![(&**right, value)],
            _ => Vec::new(),
        },
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } if is_column(expr) => list
            .iter()
            .filter_map(string_literal)
            .map(|value| (&**expr, value))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// The binding, table and column a column reference reads: `c.city` through `c`'s table, a bare
/// `city` through the one bound table that has it.
fn resolve<'s>(
    expr: &Expr,
    names: &BTreeMap<String, Binding<'s>>,
) -> Option<(String, &'s TableView, String)> {
    match expr {
        Expr::CompoundIdentifier(parts) => {
            let [qualifier, column] = parts.as_slice() else {
                return None;
            };
            let (q, column) = (ident(qualifier), ident(column));
            let table = (*names.get(&q)?)?;
            table.has_column(&column).then_some((q, table, column))
        }
        Expr::Identifier(column) => {
            let column = ident(column);
            let mut owners = names
                .iter()
                .filter_map(|(name, t)| t.map(|t| (name, t)))
                .filter(|(_, t)| t.has_column(&column));
            match (owners.next(), owners.next()) {
                (Some((name, table)), None) => Some((name.clone(), table, column)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_text(table: &TableView, column: &str) -> bool {
    table
        .columns
        .iter()
        .any(|c| c.name == column && is_text_type(&c.ty))
}

/// Whether a column of type `ty` holds text a question could name.
pub fn is_text_type(ty: &str) -> bool {
    ty == "text"
        || ty == "citext"
        || ty.starts_with("character")
        || ty.starts_with("varchar")
        || ty.starts_with("char(")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chinook() -> SchemaView {
        SchemaView {
            tables: vec![
                TableView::fixture(
                    "customer",
                    &[
                        ("customer_id", "integer"),
                        ("first_name", "text"),
                        ("city", "character varying(40)"),
                        ("support_rep_id", "integer"),
                    ],
                ),
                TableView::fixture(
                    "employee",
                    &[
                        ("employee_id", "integer"),
                        ("city", "text"),
                        ("title", "text"),
                    ],
                ),
            ],
        }
    }

    fn filter(binding: &str, table: &str, column: &str, value: &str) -> Filter {
        Filter {
            binding: binding.into(),
            table: format!("public.{table}"),
            column: column.into(),
            value: value.into(),
        }
    }

    #[test]
    fn text_comparisons_are_listed_with_their_table() {
        let sql = "SELECT c.first_name FROM customer c JOIN employee e \
                   ON c.support_rep_id = e.employee_id \
                   WHERE e.city = 'Paris' AND 'Sales' = title AND c.first_name IN ('Ann', 'Bo') \
                   AND c.customer_id = 3 AND c.city <> 'Oslo'";
        let found = filters(sql, &chinook());
        assert_eq!(
            found.bound,
            vec![
                ("c".to_owned(), "public.customer".to_owned()),
                ("e".to_owned(), "public.employee".to_owned())
            ]
        );
        assert_eq!(
            found.list,
            vec![
                filter("e", "employee", "city", "Paris"),
                filter("e", "employee", "title", "Sales"),
                filter("c", "customer", "first_name", "Ann"),
                filter("c", "customer", "first_name", "Bo"),
            ]
        );
    }

    #[test]
    fn an_ambiguous_or_unknown_column_is_not_a_filter() {
        let schema = chinook();
        // `city` is on both tables; `nope` on neither; NOT IN asks for absence.
        for sql in [
            "SELECT 1 FROM customer c JOIN employee e ON true WHERE city = 'Paris'",
            "SELECT 1 FROM customer WHERE nope = 'x'",
            "SELECT 1 FROM customer WHERE city NOT IN ('Paris')",
            "not sql",
        ] {
            assert_eq!(filters(sql, &schema).list, Vec::new(), "{sql}");
        }
    }

    #[test]
    fn the_probe_searches_every_text_column_case_insensitively() {
        let schema = chinook();
        let tables: Vec<&TableView> = schema.tables.iter().collect();
        let sql = probe(&["Paris", "O'Hara", "paris"], &tables).unwrap();
        assert_eq!(sql.matches("UNION ALL").count(), 3, "{sql}");
        assert!(sql.contains("IN ('o''hara', 'paris')"), "{sql}");
        assert!(
            sql.contains("FROM public.employee WHERE lower(title::text)"),
            "{sql}"
        );
        assert!(!sql.contains("customer_id"), "{sql}");
        // The cap bounds the work on a wide schema.
        let columns: Vec<(String, &str)> = (0..50).map(|i| (format!("c{i}"), "text")).collect();
        let columns: Vec<(&str, &str)> = columns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let wide = TableView::fixture("wide", &columns);
        let capped = probe(&["Paris"], &[&wide]).unwrap();
        assert_eq!(
            capped.matches("UNION ALL").count(),
            MAX_PROBED_COLUMNS - 1,
            "{capped}"
        );
        assert_eq!(probe(&[], &tables), None);
        // What the probe builds is itself a query the guard's parser reads as one statement.
        assert!(crate::sql::parse_for_mending(&sql).is_some());
    }

    #[test]
    fn a_value_is_respelled_as_stored_where_it_is_compared() {
        let schema = chinook();
        let sql = "SELECT c.first_name FROM customer c JOIN employee e \
                   ON c.support_rep_id = e.employee_id WHERE e.city = 'paris' AND c.city = 'paris'";
        let f = filter("e", "employee", "city", "paris");
        assert_eq!(
            respell_value(sql, &schema, &f, "Paris").unwrap(),
            "SELECT c.first_name FROM customer c JOIN employee e \
             ON c.support_rep_id = e.employee_id WHERE e.city = 'Paris' AND c.city = 'paris'"
        );
        let listed = "SELECT 1 FROM employee WHERE 'paris' = city OR city IN ('paris', 'Oslo')";
        let f = filter("employee", "employee", "city", "paris");
        assert_eq!(
            respell_value(listed, &schema, &f, "Paris").unwrap(),
            "SELECT 1 FROM employee WHERE 'Paris' = city OR city IN ('Paris', 'Oslo')"
        );
        // A comparison that is not there is not invented.
        let f = filter("e", "employee", "city", "Rome");
        assert_eq!(respell_value(sql, &schema, &f, "ROME"), None);
    }
}
