//! Rewrites `LIKE` on a date as the date range it means.
//!
//! `WHERE invoice_date LIKE '2010%'` is how a small model (trained on SQLite, where dates are
//! text) asks for a year; PostgreSQL refuses it (`operator does not exist: timestamp without
//! time zone ~~ unknown`), and a greedy repair turn writes the same again. The meaning is not in
//! doubt, so [`date_like`] writes `invoice_date >= '2010-01-01' AND invoice_date < '2011-01-01'`
//! (a range keeps an index on the column usable, where a cast to text would not).
//!
//! Only called on a query PostgreSQL refused for `LIKE` on a date or timestamp, and only
//! patterns that are a year (`'2010%'`) or a year and month (`'2010-03%'`) are rewritten; the
//! result goes through the guard like any other query.

use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions_mut, BinaryOperator, Expr};

use super::{string_expr, string_literal};

/// Whether PostgreSQL's `detail` is the refusal of `LIKE` on a date or timestamp.
pub fn is_like_on_date(detail: &str) -> bool {
    detail.contains("operator does not exist")
        && detail.contains("~~")
        && (detail.contains("timestamp") || detail.contains("date"))
}

/// `sql` with each `x LIKE 'YYYY%'` or `x LIKE 'YYYY-MM%'` written as a half-open date range
/// (`NOT LIKE` as its negation); `None` when there is none (or `sql` is not one statement).
pub fn date_like(sql: &str) -> Option<String> {
    let mut statement = super::parse_for_mending(sql)?;
    let mut changed = 0;
    let _ = visit_expressions_mut(&mut statement, |e: &mut Expr| {
        if let Expr::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        } = e
        {
            if let Some((from, to)) = string_literal(pattern).and_then(|p| range(&p)) {
                let range = Expr::BinaryOp {
                    left: Box::new(Expr::BinaryOp {
                        left: expr.clone(),
                        op: BinaryOperator::GtEq,
                        right: Box::new(string_expr(&from)),
                    }),
                    op: BinaryOperator::And,
                    right: Box::new(Expr::BinaryOp {
                        left: expr.clone(),
                        op: BinaryOperator::Lt,
                        right: Box::new(string_expr(&to)),
                    }),
                };
                let range = Expr::Nested(Box::new(range));
                *e = if *negated {
                    Expr::UnaryOp {
                        op: sqlparser::ast::UnaryOperator::Not,
                        expr: Box::new(range),
                    }
                } else {
                    range
                };
                changed += 1;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    (changed > 0).then(|| statement.to_string())
}

/// The first day of the period `pattern` names and the first day after it.
fn range(pattern: &str) -> Option<(String, String)> {
    let period = pattern.strip_suffix('%')?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match period.split('-').collect::<Vec<_>>().as_slice() {
        [year] if digits(year, 4) => {
            let y: u32 = year.parse().ok()?;
            Some((format!("{y:04}-01-01"), format!("{:04}-01-01", y + 1)))
        }
        [year, month] if digits(year, 4) && digits(month, 2) => {
            let (y, m): (u32, u32) = (year.parse().ok()?, month.parse().ok()?);
            if !(1..=12).contains(&m) {
                return None;
            }
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            Some((format!("{y:04}-{m:02}-01"), format!("{ny:04}-{nm:02}-01")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_or_month_pattern_becomes_a_range() {
        assert_eq!(
            date_like("SELECT count(*) FROM invoice WHERE invoice_date LIKE '2010%'").unwrap(),
            "SELECT count(*) FROM invoice WHERE (invoice_date >= '2010-01-01' AND invoice_date < '2011-01-01')"
        );
        assert_eq!(
            date_like("SELECT 1 FROM invoice i WHERE i.invoice_date NOT LIKE '2009-12%'").unwrap(),
            "SELECT 1 FROM invoice i WHERE NOT (i.invoice_date >= '2009-12-01' AND i.invoice_date < '2010-01-01')"
        );
    }

    #[test]
    fn other_patterns_are_left_alone() {
        for sql in [
            "SELECT 1 FROM customer WHERE name LIKE 'A%'",
            "SELECT 1 FROM invoice WHERE invoice_date LIKE '%2010%'",
            "SELECT 1 FROM invoice WHERE invoice_date LIKE '2010-13%'",
            "SELECT 1 FROM invoice WHERE invoice_date LIKE '201%'",
            "not sql",
        ] {
            assert_eq!(date_like(sql), None, "{sql}");
        }
        assert!(is_like_on_date(
            "operator does not exist: timestamp without time zone ~~ unknown"
        ));
        assert!(!is_like_on_date("column \"x\" does not exist"));
    }
}
