//! Finds join conditions that pair a foreign key with the key of a table it does not reference.
//!
//! `FROM customer T1 JOIN customer T2 ON T1.customer_id = T2.support_rep_id` runs — both columns
//! are integers — and answers nonsense: `support_rep_id` holds employee ids. A small model writes
//! such joins when it wants a table the schema does not have (it self-joins `customer` for an
//! `address` table it imagined), and the result, often empty, looks like an answer. The schema
//! says the join is wrong: the column `REFERENCES employee (employee_id)`, and `customer_id` is
//! the key of another table. [`mismatched_joins`] names each such condition, so the query can go
//! back to the model as refused instead of being run.
//!
//! Only an equality of two qualified columns is judged, and only when one is a single-column
//! foreign key and the other the single-column primary key of a table other than the one
//! referenced: joins on other columns (`billing_country = country`) are left alone.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions, BinaryOperator, Expr, Ident};

use super::bindings::{Binding, Bindings};
use super::relations::ident;
use super::schema::{SchemaView, TableView};

/// One sentence per join condition of `sql` that pairs a foreign key with the key of a table it
/// does not reference; empty when there is none (or `sql` does not parse as one statement).
pub fn mismatched_joins(sql: &str, schema: &SchemaView) -> Vec<String> {
    let Some(statement) = super::parse_for_mending(sql) else {
        return Vec::new();
    };
    let bindings = Bindings::of(&statement, schema);
    let mut found = Vec::new();
    let _ = visit_expressions(&statement, |expr: &Expr| {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = expr
        {
            if let (Some(l), Some(r)) = (
                column(left, &bindings.names),
                column(right, &bindings.names),
            ) {
                let sentence = mismatch(&l, &r).or_else(|| mismatch(&r, &l));
                if let Some(sentence) = sentence.filter(|s| !found.contains(s)) {
                    found.push(sentence);
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// A qualified column reference resolved to its table.
struct Column<'s> {
    /// As the query writes it (`T2.support_rep_id`).
    written: String,
    table: &'s TableView,
    name: String,
}

fn column<'s>(expr: &Expr, names: &BTreeMap<String, Binding<'s>>) -> Option<Column<'s>> {
    let Expr::CompoundIdentifier(parts) = expr else {
        return None;
    };
    let [qualifier, name] = parts.as_slice() else {
        return None;
    };
    let table = (*names.get(&ident(qualifier))?)?;
    let name = ident(name);
    table
        .columns
        .iter()
        .any(|c| c.name == name)
        .then(|| Column {
            written: written(qualifier, name.as_str()),
            table,
            name,
        })
}

fn written(qualifier: &Ident, name: &str) -> String {
    format!("{}.{name}", qualifier.value)
}

/// The sentence for `fk = key` when `fk` is a single-column foreign key and `key` the
/// single-column primary key of a table `fk` does not reference.
fn mismatch(fk: &Column<'_>, key: &Column<'_>) -> Option<String> {
    let reference = fk
        .table
        .foreign_keys
        .iter()
        .find(|k| k.columns.len() == 1 && k.columns[0] == fk.name)?;
    if key.table.primary_key != [key.name.as_str()] {
        return None;
    }
    if key.table.is(&reference.references) {
        return None;
    }
    let target = reference
        .references
        .strip_prefix("public.")
        .unwrap_or(&reference.references);
    Some(format!(
        "The join {} = {} is wrong: {} holds {} ids (it REFERENCES {}), not {} ids.",
        key.written,
        fk.written,
        fk.written,
        target,
        match reference.referenced_columns.as_slice() {
            [column] => format!("{target}({column})"),
            _ => target.to_owned(),
        },
        key.table.name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::schema::ForeignKey;

    fn schema() -> SchemaView {
        let mut customer = TableView::fixture(
            "customer",
            &[
                ("customer_id", "integer"),
                ("city", "text"),
                ("country", "text"),
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
            &[("employee_id", "integer"), ("reports_to", "integer")],
        );
        employee.primary_key = vec!["employee_id".into()];
        employee.foreign_keys.push(ForeignKey {
            columns: vec!["reports_to".into()],
            references: "public.employee".into(),
            referenced_columns: vec!["employee_id".into()],
        });
        let mut invoice = TableView::fixture(
            "invoice",
            &[
                ("invoice_id", "integer"),
                ("customer_id", "integer"),
                ("billing_country", "text"),
            ],
        );
        invoice.primary_key = vec!["invoice_id".into()];
        invoice.foreign_keys.push(ForeignKey {
            columns: vec!["customer_id".into()],
            references: "public.customer".into(),
            referenced_columns: vec!["customer_id".into()],
        });
        SchemaView {
            tables: vec![customer, employee, invoice],
        }
    }

    #[test]
    fn a_foreign_key_joined_to_another_tables_key_is_named() {
        let sql = "SELECT T1.city FROM customer AS T1 JOIN customer AS T2 \
                   ON T1.customer_id = T2.support_rep_id WHERE T2.city = 'Paris'";
        assert_eq!(
            mismatched_joins(sql, &schema()),
            vec![
                "The join T1.customer_id = T2.support_rep_id is wrong: T2.support_rep_id holds \
                 employee ids (it REFERENCES employee(employee_id)), not customer ids."
                    .to_owned()
            ]
        );
        // Either side, and in WHERE as well as ON.
        let sql = "SELECT 1 FROM customer c, invoice i WHERE i.invoice_id = c.support_rep_id";
        assert_eq!(mismatched_joins(sql, &schema()).len(), 1);
    }

    #[test]
    fn joins_along_the_references_and_other_comparisons_pass() {
        for sql in [
            "SELECT 1 FROM customer c JOIN employee e ON c.support_rep_id = e.employee_id",
            "SELECT 1 FROM employee e JOIN customer c ON e.employee_id = c.support_rep_id",
            "SELECT 1 FROM employee e JOIN employee m ON e.reports_to = m.employee_id",
            "SELECT 1 FROM invoice i JOIN customer c ON i.customer_id = c.customer_id",
            "SELECT 1 FROM invoice i JOIN customer c ON i.billing_country = c.country",
            // Two foreign keys, or a key with a plain column: not judged.
            "SELECT 1 FROM invoice i JOIN customer c ON i.customer_id = c.support_rep_id",
            "SELECT 1 FROM invoice i JOIN customer c ON i.invoice_id = c.city",
            // Unqualified, unknown qualifiers, derived tables: not judged.
            "SELECT 1 FROM customer JOIN employee ON support_rep_id = employee_id",
            "SELECT 1 FROM customer c JOIN (SELECT 1 AS employee_id) e ON c.customer_id = e.employee_id",
            "not sql at all",
        ] {
            assert!(mismatched_joins(sql, &schema()).is_empty(), "{sql}");
        }
    }
}
