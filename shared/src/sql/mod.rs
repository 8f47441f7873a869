//! SQL: the guard every caller-supplied or model-generated query passes before it reaches PostgreSQL.
//!
//! [`guard::check`] is a pure function (no I/O): it parses one statement with `sqlparser`'s
//! PostgreSQL dialect, refuses anything that is not a read-only query, checks every function,
//! table and column the query touches against the caller's [`crate::policy::RolePolicy`], and
//! returns the query re-rendered from the checked syntax tree with a row cap around it.
//!
//! The guard is the first wall, not the only one: the executor runs the result in a read-only
//! transaction, as a role with only `SELECT` grants, with row-level security, a statement timeout,
//! `search_path = public` and `standard_conforming_strings = on` (the guard's rendering assumes
//! both).
//!
//! Layout: [`guard`] holds the API and the statement-level rules; `relations` resolves tables and
//! columns through scopes; `functions` is the function deny list and allow-list mode; `cap` wraps
//! the query in the row cap. Helpers mend a model's query before it is judged: [`respell`]
//! writes `FirstName` as the schema's `first_name`; [`requalify`] moves a misplaced
//! `alias.column` to the table that has it; [`bridge`] reads a column its table lacks through the
//! foreign key that reaches it; [`rejoin`] joins a table again in the query that names it outside
//! the CTE that joined it; [`one_row_cte`] reads a one-row CTE a query names but does not
//! put in `FROM` as a scalar subquery; [`having::having_to_where`] makes a `HAVING` that groups
//! nothing a `WHERE`, and [`having::where_to_having`] an aggregate condition in `WHERE` a
//! `HAVING`; [`nested_aggregate`] writes `avg(count(*))` as an aggregate over a grouped subquery;
//! [`unalias`] writes out an output alias used in `HAVING` or `WHERE`; [`date_like`]
//! writes `invoice_date LIKE '2010%'` as a date range; [`top_per_group`] keeps the top rows of
//! each group when the question asks for them and the query only sorts. [`join_check`] names joins that pair a
//! foreign key with the key of a table it does not reference, so such a query goes back to the
//! model instead of running.

mod bindings;
pub mod bridge;
mod cap;
pub mod date_like;
mod functions;
pub mod guard;
pub mod having;
pub mod join_check;
pub mod nested_aggregate;
pub mod one_row_cte;
pub mod refilter;
pub mod rejoin;
mod relations;
pub mod requalify;
pub mod respell;
pub mod schema;
pub mod top_per_group;
pub mod unalias;
pub mod value_link;

#[cfg(test)]
mod tests;

pub use guard::{check, GuardOptions, Guarded, Rejection};

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, Query, SetExpr, Statement, TableWithJoins, Value,
    Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Longest query the mending helpers ([`requalify`], [`unalias`]) rewrite: they walk the syntax
/// tree recursively, and a query a model wrote is far shorter than this.
const MAX_MENDED_BYTES: usize = 16 * 1024;

/// The parser's nesting limit for the mending helpers, for the same reason.
const MAX_MENDED_DEPTH: usize = 64;

/// Calls `f` on each expression of `node` outside its subqueries, outermost first: a
/// subquery's expressions belong to its own scope (its aggregates, its columns), which is what
/// the helpers asking "does this expression aggregate?" or "what does it read?" must skip.
pub(crate) fn exprs_outside_subqueries<N: Visit + ?Sized>(node: &N, f: impl FnMut(&Expr)) {
    struct Walker<F> {
        depth: usize,
        f: F,
    }
    impl<F: FnMut(&Expr)> Visitor for Walker<F> {
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
            if self.depth == 0 {
                (self.f)(expr);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Walker { depth: 0, f });
}

/// `sql` parsed as exactly one PostgreSQL statement, for a helper that rewrites it; `None` when
/// it is too long, too deep, does not parse, or holds several statements.
pub(crate) fn parse_for_mending(sql: &str) -> Option<Statement> {
    if sql.len() > MAX_MENDED_BYTES {
        return None;
    }
    let mut statements = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(MAX_MENDED_DEPTH)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .ok()?;
    match statements.len() {
        1 => statements.pop(),
        _ => None,
    }
}

/// The text of a single-quoted string literal, for the mending helpers.
pub(crate) fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A single-quoted string literal holding `s` (rendered with its quotes doubled).
pub(crate) fn string_expr(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_owned()))
}

/// `s` as PostgreSQL string literal text, `'O''Hara'`: for prompts and for queries built as text
/// (with `standard_conforming_strings` on, as the executor sets it, only `'` needs doubling).
pub fn quote_literal(s: &str) -> String {
    string_expr(s).to_string()
}

/// How a mend names `table` in the SQL it writes: bare in `public` (the executor's
/// `search_path`), `schema.table` elsewhere, each part quoted when it must be.
pub(crate) fn table_sql(table: &schema::TableView) -> String {
    if table.schema == "public" {
        name_ident(&table.name).to_string()
    } else {
        format!("{}.{}", name_ident(&table.schema), name_ident(&table.name))
    }
}

/// The first `FROM` entry of `SELECT 1 FROM {from}`, parsed: how a mend builds a join it
/// writes as text.
pub(crate) fn parse_from(from: &str) -> Option<TableWithJoins> {
    let Statement::Query(query) = parse_for_mending(&format!("SELECT 1 FROM {from}"))? else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    select.from.into_iter().next()
}

/// An identifier that folds back to `name`: bare when PostgreSQL would fold it unchanged.
pub(crate) fn name_ident(name: &str) -> Ident {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare {
        Ident::new(name)
    } else {
        Ident::with_quote('"', name)
    }
}

/// The constraint of a join PostgreSQL has (`[INNER|LEFT|RIGHT|FULL] JOIN`, `CROSS JOIN`);
/// `None` for the joins of other SQL dialects that sqlparser also parses.
pub fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c) => Some(c),
        _ => None,
    }
}
