//! Moves a misplaced column reference to the table that has it.
//!
//! The commonest mistake of a small model writing joins is a real column on the wrong table:
//! `e.support_rep_id` where `e` is `employee` and the column belongs to `customer`, joined as `c`.
//! The grammar cannot catch it (it does not know which alias stands for which table) and the model
//! often repeats it after seeing PostgreSQL's error. When exactly one other table of the query has
//! the column, the intent is unambiguous, and [`requalify`] rewrites the qualifier. A second,
//! equally mechanical slip is `i.year` for a table with one date column: that becomes
//! `EXTRACT(YEAR FROM i.invoice_date)`.
//!
//! Only called on a query PostgreSQL refused for a missing column (so a rewrite cannot change a
//! query that worked), and the result goes through the guard like any other query. Nothing here
//! decides what a caller may read.

use std::ops::ControlFlow;

use sqlparser::ast::{DateTimeField, Expr, ExtractSyntax, Statement};

use super::bindings::{visit_scoped_mut, Bindings};
use super::name_ident;
use super::relations::ident;
use super::schema::SchemaView;

/// `sql` with every misplaced `alias.column` moved to the one table of the query that has the
/// column; `None` when nothing could be moved (or `sql` does not parse as one statement).
pub fn requalify(sql: &str, schema: &SchemaView) -> Option<String> {
    let statement = super::parse_for_mending(sql)?;
    let bindings = Bindings::of(&statement, schema);
    let tautologies = self_comparisons(&statement);
    // A rewrite that leaves `c.x = c.x` turned a join condition into `true`: a worse query than
    // the refused one. The foreign-key reading is tried first, then the plain move.
    for keys in [true, false] {
        let mut candidate = statement.clone();
        let changed = rewrite(&mut candidate, &bindings, keys);
        if changed > 0 && self_comparisons(&candidate) == tautologies {
            return Some(candidate.to_string());
        }
    }
    None
}

/// How many `a = a` comparisons of a column with itself `statement` holds, names compared as
/// PostgreSQL folds them: a move writes `t1` where the model wrote `T1`.
fn self_comparisons(statement: &Statement) -> usize {
    let mut count = 0;
    let _ = sqlparser::ast::visit_expressions(statement, |expr: &Expr| {
        if let Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::Eq,
            right,
        } = expr
        {
            let left = column_name(left);
            if left.is_some() && left == column_name(right) {
                count += 1;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    count
}

/// The folded parts of a column reference (`T1.Customer_Id` → `t1`, `customer_id`).
fn column_name(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Identifier(name) => Some(vec![ident(name)]),
        Expr::CompoundIdentifier(parts) => Some(parts.iter().map(ident).collect()),
        _ => None,
    }
}

/// Rewrites the references in `statement`; returns how many changed.
fn rewrite(statement: &mut Statement, bindings: &Bindings<'_>, keys: bool) -> usize {
    let mut changed = 0;
    visit_scoped_mut(statement, |scope, expr| {
        if let Some(new) = replacement(expr, bindings, scope, keys) {
            *expr = new;
            changed += 1;
        }
        ControlFlow::Continue(())
    });
    changed
}

/// What `expr`, in query number `scope`, should be if it is a misplaced `qualifier.column`;
/// with `keys`, a foreign-key column on the table it references becomes that table's key.
fn replacement(
    expr: &Expr,
    bindings: &Bindings<'_>,
    scope: Option<usize>,
    keys: bool,
) -> Option<Expr> {
    let Expr::CompoundIdentifier(parts) = expr else {
        return None;
    };
    let [qualifier, column] = parts.as_slice() else {
        return None;
    };
    let (q, col) = (ident(qualifier), ident(column));
    let table = bindings.resolve(&q, scope)?.1?;
    if table.has_column(&col) {
        return None;
    }
    // `e.support_rep_id = c.support_rep_id` with `customer.support_rep_id REFERENCES
    // employee(employee_id)`: the join meant is `e.employee_id = c.support_rep_id`. Moving the
    // qualifier instead would compare `c.support_rep_id` with itself.
    let mut referenced: Vec<&str> = bindings
        .names
        .values()
        .flatten()
        .flat_map(|t| &t.foreign_keys)
        .filter(|fk| fk.columns == [col.as_str()] && table.is(&fk.references))
        .filter_map(|fk| fk.referenced_columns.first().map(String::as_str))
        .collect();
    referenced.dedup();
    if let (true, [target]) = (keys, referenced.as_slice()) {
        return Some(Expr::CompoundIdentifier(vec![
            qualifier.clone(),
            name_ident(target),
        ]));
    }
    // A column moves only to a table of the reference's own query: one of an enclosing query
    // would make it a correlated reference, which means something else (`NOT IN (SELECT
    // il.customer_id …)` read as the outer customer's own id).
    let mut owners = bindings
        .local(scope)
        .filter(|(name, binding)| **name != q && binding.is_some_and(|t| t.has_column(&col)));
    if let (Some((owner, _)), None) = (owners.next(), owners.next()) {
        return Some(Expr::CompoundIdentifier(vec![
            name_ident(owner),
            column.clone(),
        ]));
    }
    let field = match col.as_str() {
        "year" => DateTimeField::Year,
        "month" => DateTimeField::Month,
        "day" => DateTimeField::Day,
        _ => return None,
    };
    let mut dates = table
        .columns
        .iter()
        .filter(|c| c.ty.starts_with("date") || c.ty.starts_with("timestamp"));
    let (Some(date), None) = (dates.next(), dates.next()) else {
        return None;
    };
    Some(Expr::Extract {
        field,
        syntax: ExtractSyntax::From,
        expr: Box::new(Expr::CompoundIdentifier(vec![
            qualifier.clone(),
            name_ident(&date.name),
        ])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::schema::TableView;

    fn chinook() -> SchemaView {
        SchemaView {
            tables: vec![
                TableView::fixture(
                    "customer",
                    &[
                        ("customer_id", "integer"),
                        ("first_name", "text"),
                        ("support_rep_id", "integer"),
                    ],
                ),
                TableView::fixture(
                    "employee",
                    &[
                        ("employee_id", "integer"),
                        ("last_name", "text"),
                        ("hire_date", "timestamp without time zone"),
                        ("birth_date", "timestamp without time zone"),
                    ],
                ),
                TableView::fixture(
                    "invoice",
                    &[
                        ("invoice_id", "integer"),
                        ("customer_id", "integer"),
                        ("invoice_date", "timestamp without time zone"),
                        ("total", "numeric(10,2)"),
                    ],
                ),
                TableView::fixture("Odd", &[("Mixed Case", "text")]),
            ],
        }
    }

    #[test]
    fn a_move_that_compares_a_column_with_itself_is_not_made_whatever_the_case() {
        // c61 of the eval: moving `T2.customer_id` to the one table with the column gives
        // `T1.customer_id = t1.customer_id`, a join condition that is always true.
        let sql = "SELECT T1.first_name FROM customer AS T1 JOIN employee AS T2 \
                   ON T1.customer_id = T2.customer_id";
        assert_eq!(requalify(sql, &chinook()), None);
    }

    #[test]
    fn a_column_moves_only_to_a_table_of_its_own_query() {
        // The outer `c` has the column, but moving there would correlate the subquery.
        let sql = "SELECT c.first_name FROM customer c WHERE c.customer_id NOT IN \
                   (SELECT e.customer_id FROM employee e)";
        assert_eq!(requalify(sql, &chinook()), None);
        // Within the subquery's own FROM it moves, though the outer query has the column too.
        let sql = "SELECT c.first_name FROM customer c WHERE c.customer_id IN \
                   (SELECT e.customer_id FROM employee e JOIN invoice i ON i.total > 0)";
        let fixed = requalify(sql, &chinook()).unwrap();
        assert!(fixed.contains("(SELECT i.customer_id FROM"), "{fixed}");
        assert!(fixed.contains("WHERE c.customer_id IN"), "{fixed}");
    }

    #[test]
    fn a_column_moves_to_the_one_table_that_has_it() {
        let sql = "SELECT e.last_name, COUNT(*) FROM employee e JOIN customer c \
                   ON e.employee_id = e.support_rep_id GROUP BY e.last_name";
        let fixed = requalify(sql, &chinook()).unwrap();
        assert!(
            fixed.contains("e.employee_id = c.support_rep_id"),
            "{fixed}"
        );
        assert!(fixed.contains("SELECT e.last_name"), "{fixed}");
    }

    #[test]
    fn a_foreign_key_column_on_the_referenced_table_becomes_its_key() {
        let mut schema = chinook();
        schema.tables[0]
            .foreign_keys
            .push(crate::sql::schema::ForeignKey {
                columns: vec!["support_rep_id".into()],
                references: "public.employee".into(),
                referenced_columns: vec!["employee_id".into()],
            });
        let sql = "SELECT e.last_name, sum(i.total) FROM employee e \
                   JOIN customer c ON e.support_rep_id = c.support_rep_id \
                   JOIN invoice i ON c.customer_id = i.customer_id GROUP BY e.last_name";
        let fixed = requalify(sql, &schema).unwrap();
        assert!(
            fixed.contains("ON e.employee_id = c.support_rep_id"),
            "{fixed}"
        );
        // Read as a key, `e.support_rep_id = e.employee_id` would compare a column with itself:
        // the plain move is made instead.
        let sql = "SELECT e.last_name FROM employee e JOIN customer c ON e.support_rep_id = e.employee_id";
        let fixed = requalify(sql, &schema).unwrap();
        assert!(
            fixed.ends_with("ON c.support_rep_id = e.employee_id"),
            "{fixed}"
        );
    }

    #[test]
    fn a_move_that_would_compare_a_column_with_itself_is_not_made() {
        // No foreign key in this schema: moving `e.` to `c.` would leave `c.x = c.x`.
        let sql = "SELECT e.last_name FROM employee e JOIN customer c ON e.support_rep_id = c.support_rep_id";
        assert_eq!(requalify(sql, &chinook()), None);
        // A self-comparison the model wrote itself does not stop another mend.
        let sql = "SELECT c.total FROM customer c JOIN invoice i ON i.total = i.total";
        let fixed = requalify(sql, &chinook()).unwrap();
        assert!(fixed.starts_with("SELECT i.total"), "{fixed}");
    }

    #[test]
    fn table_names_without_aliases_are_qualifiers_too() {
        let sql = "SELECT customer.total FROM customer JOIN invoice USING (customer_id)";
        let fixed = requalify(sql, &chinook()).unwrap();
        assert!(fixed.contains("SELECT invoice.total"), "{fixed}");
    }

    #[test]
    fn a_year_of_a_table_with_one_date_is_extracted_from_it() {
        let sql = "SELECT SUM(i.total) FROM invoice i WHERE i.year = 2010";
        let fixed = requalify(sql, &chinook()).unwrap();
        assert!(
            fixed.contains("EXTRACT(YEAR FROM i.invoice_date) = 2010"),
            "{fixed}"
        );
    }

    #[test]
    fn nothing_changes_when_the_intent_is_ambiguous_or_the_query_is_right() {
        let schema = chinook();
        // Two dates on employee: which year is meant is not known.
        assert_eq!(requalify("SELECT e.year FROM employee e", &schema), None);
        // A column no table of the query has.
        assert_eq!(
            requalify(
                "SELECT c.total FROM customer c JOIN employee e ON true",
                &schema
            ),
            None
        );
        // Correct queries, and what is not one query.
        assert_eq!(
            requalify("SELECT c.first_name FROM customer c", &schema),
            None
        );
        assert_eq!(requalify("SELECT 1; SELECT 2", &schema), None);
        assert_eq!(requalify("SELEC nonsense", &schema), None);
        // A derived table's columns are unknown: nothing is moved into or out of it.
        assert_eq!(
            requalify(
                "SELECT c.total FROM customer c JOIN (SELECT 1 AS total) t ON true",
                &schema
            ),
            None
        );
    }

    #[test]
    fn a_name_bound_to_two_tables_is_left_alone() {
        let sql = "SELECT x.total FROM customer x WHERE EXISTS \
                   (SELECT 1 FROM employee x) AND x.customer_id IN (SELECT customer_id FROM invoice i)";
        assert_eq!(requalify(sql, &chinook()), None);
    }

    #[test]
    fn quoted_names_stay_quoted() {
        let sql = r#"SELECT c."Mixed Case" FROM customer c JOIN "Odd" o ON true"#;
        let fixed = requalify(sql, &chinook()).unwrap();
        assert!(fixed.contains(r#"SELECT o."Mixed Case""#), "{fixed}");
        let sql = r#"SELECT o.first_name FROM "Odd" o JOIN customer "C" ON true"#;
        let fixed = requalify(sql, &chinook()).unwrap();
        assert!(fixed.contains(r#"SELECT "C".first_name"#), "{fixed}");
    }

    #[test]
    fn long_queries_are_not_parsed() {
        let sql = format!(
            "SELECT e.support_rep_id FROM employee e JOIN customer c ON true WHERE 1 = 1{}",
            " AND 1 = 1".repeat(crate::sql::MAX_MENDED_BYTES / 10)
        );
        assert_eq!(requalify(&sql, &chinook()), None);
    }
}
