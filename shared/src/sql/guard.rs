//! The guard's API and statement-level rules.
//!
//! Rules, in the order they apply:
//!
//! 1. Empty input (or only comments and `;`) is `empty`; more than `max_len` bytes is `too-long`.
//! 2. The text must parse as PostgreSQL (`parse-error` with line and column) within the parser's
//!    recursion limit (`too-deep`), and hold exactly one statement (`multiple-statements`).
//! 3. The statement must be a query: `SELECT`, `WITH … SELECT`, `VALUES`, set operations of
//!    these, and `TABLE t` should the parser ever accept it (sqlparser 0.64 does not).
//!    `EXPLAIN` and `SHOW` are `not-a-query`; every other statement (DML, DDL, `COPY`, `CALL`,
//!    `DO`, `SET`, `LOCK`, transaction control, `LISTEN`/`NOTIFY`, `PREPARE`/`EXECUTE`, …) is
//!    `write`. Inside the query, a data-modifying CTE, `SELECT INTO`
//!    and `FOR UPDATE`/`FOR SHARE` are `write` at any depth.
//! 4. Every table read must be granted (`table:schema.table`); system catalogs are
//!    `system-catalog`; columns of column-limited grants are checked (`column:table.column`).
//!    See `relations` for resolution and scoping.
//! 5. Every function called must pass the function policy (`function:name`), see `functions`.
//!    This runs as a second pass over the whole tree with `sqlparser`'s visitor, which also
//!    re-checks every table factor, so a node the scoped walk missed cannot carry a table in.
//! 6. Nesting of queries, table factors and expressions is capped at `max_depth` (`too-deep`),
//!    counted explicitly while walking, so hostile input cannot overflow the stack.
//!
//! The accepted query is re-rendered from the syntax tree and wrapped in the row cap (`cap`).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

use super::relations::{self, Walker};
use super::{cap, functions};
use crate::policy::RolePolicy;

/// Limits and modes of the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardOptions {
    /// Rows the caller may receive; the rendered query fetches one more so the executor can say
    /// the result was truncated.
    pub max_rows: u32,
    /// `Some`: only these functions (lower-case, schema-stripped) and a few aggregates and
    /// conditionals pass. The deny list applies either way, and wins.
    pub function_allow_list: Option<BTreeSet<String>>,
    /// Deepest nesting of queries, table factors and expressions accepted.
    pub max_depth: usize,
    /// Longest input accepted, in bytes.
    pub max_len: usize,
}

impl Default for GuardOptions {
    fn default() -> Self {
        Self {
            max_rows: 1000,
            function_allow_list: None,
            max_depth: 64,
            max_len: 100_000,
        }
    }
}

/// An accepted query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// The query as checked, rendered from the syntax tree and wrapped as
    /// `SELECT * FROM (<query>) AS quarry_capped LIMIT <max_rows + 1>`.
    pub sql: String,
    /// Tables the query reads, `(schema, table)`, in order of first appearance.
    pub tables: Vec<(String, String)>,
    /// The cap the caller asked for (the SQL fetches one row more).
    pub max_rows: u32,
}

/// Why a query is refused. [`Rejection::reason`] is stable: it goes to clients and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Nothing to run.
    #[error("the query is empty")]
    Empty,
    /// Longer than `max_len`.
    #[error("the query is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nested deeper than `max_depth`.
    #[error("the query is nested too deeply")]
    TooDeep,
    /// Not PostgreSQL the parser understands.
    #[error("the query does not parse: {message}")]
    Parse {
        /// The parser's message.
        message: String,
        /// 1-based line of the error, when the parser gave one.
        line: Option<u64>,
        /// 1-based column of the error, when the parser gave one.
        column: Option<u64>,
    },
    /// More than one statement.
    #[error("only one statement is allowed")]
    MultipleStatements,
    /// A statement or clause that reads nothing the guard can judge (`EXPLAIN`, `SHOW`, syntax of
    /// other dialects).
    #[error("only queries are allowed, not {0}")]
    NotAQuery(String),
    /// Something that writes or changes state.
    #[error("the query would write or change state: {0}")]
    Write(String),
    /// A function refused by the function policy (lower-case, schema-stripped).
    #[error("function {0} is not allowed")]
    Function(String),
    /// A table not granted to the role.
    #[error("table {schema}.{table} is not granted to this role")]
    Table {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
    },
    /// A column (or `*`) outside a column-limited grant.
    #[error("column {table}.{column} is not granted to this role")]
    Column {
        /// Table (not its alias).
        table: String,
        /// Column, or `*`.
        column: String,
    },
    /// `pg_catalog`, `information_schema` or another `pg_*` schema or table.
    #[error("system catalog {0} is not readable")]
    SystemCatalog(String),
}

impl Rejection {
    /// Stable reason code, e.g. `write`, `function:pg_sleep`, `table:public.employee`,
    /// `column:customer.email`, `parse-error`.
    pub fn reason(&self) -> String {
        match self {
            Self::Empty => "empty".to_owned(),
            Self::TooLong { .. } => "too-long".to_owned(),
            Self::TooDeep => "too-deep".to_owned(),
            Self::Parse { .. } => "parse-error".to_owned(),
            Self::MultipleStatements => "multiple-statements".to_owned(),
            Self::NotAQuery(_) => "not-a-query".to_owned(),
            Self::Write(_) => "write".to_owned(),
            Self::Function(name) => format!("function:{name}"),
            Self::Table { schema, table } => format!("table:{schema}.{table}"),
            Self::Column { table, column } => format!("column:{table}.{column}"),
            Self::SystemCatalog(_) => "system-catalog".to_owned(),
        }
    }
}

/// Inputs up to this size are checked on the caller's thread. A longer one may hide a chain tens of
/// thousands of nodes deep (the parser builds `1+1+1…` iteratively, without its recursion limit),
/// and dropping such a tree, in the parser on an error or here after a refusal, recurses once per
/// node: it gets a thread with a stack sized for `max_len` input. Real queries are far shorter,
/// so only hostile or odd input pays the thread's start-up (tens of microseconds).
const INLINE_LEN: usize = 4 * 1024;

/// Stack for long inputs. 100 KB of input nests at most 50,000 levels; dropping a 45,000-node
/// `1+1+…` chain was measured to need 2–4 MiB in a dev build, so this leaves a wide margin. It is
/// reserved address space, committed only as touched.
const LONG_INPUT_STACK: usize = 64 * 1024 * 1024;

/// Checks one query for `role` and returns it row-capped.
///
/// # Errors
/// The first rule the query breaks, see the module docs. Long input that cannot get its own
/// thread (the process is out of threads or memory) is refused as [`Rejection::TooLong`].
pub fn check(sql: &str, role: &RolePolicy, options: &GuardOptions) -> Result<Guarded, Rejection> {
    if sql.len() > options.max_len {
        return Err(Rejection::TooLong {
            len: sql.len(),
            max: options.max_len,
        });
    }
    if sql.len() <= INLINE_LEN {
        return check_inline(sql, role, options);
    }
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("sql-guard".into())
            .stack_size(LONG_INPUT_STACK)
            .spawn_scoped(scope, || check_inline(sql, role, options));
        match spawned.map(|handle| handle.join()) {
            Ok(Ok(outcome)) => outcome,
            // The guard does not panic; if it ever did, refusing is the safe answer.
            Ok(Err(_)) => Err(Rejection::TooDeep),
            Err(_) => Err(Rejection::TooLong {
                len: sql.len(),
                max: INLINE_LEN,
            }),
        }
    })
}

fn check_inline(
    sql: &str,
    role: &RolePolicy,
    options: &GuardOptions,
) -> Result<Guarded, Rejection> {
    if sql.trim().is_empty() {
        return Err(Rejection::Empty);
    }
    // The parser's own limit guards its recursion; the walker counts depth again because some
    // chains (`a + b + c …`, `UNION` after `UNION`) are built iteratively by the parser and reach
    // any depth without touching its counter.
    let parsed = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(options.max_depth.saturating_mul(2))
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements());
    let statements = parsed.map_err(parse_rejection)?;
    check_statements(&statements, role, options)
}

fn check_statements(
    statements: &[Statement],
    role: &RolePolicy,
    options: &GuardOptions,
) -> Result<Guarded, Rejection> {
    let statement = match statements {
        [] => return Err(Rejection::Empty),
        [one] => one,
        _ => return Err(Rejection::MultipleStatements),
    };
    let query = match statement {
        Statement::Query(query) => query,
        Statement::Explain { .. } | Statement::ExplainTable { .. } => {
            return Err(Rejection::NotAQuery("EXPLAIN".into()))
        }
        other => return Err(classify(other)),
    };
    let mut walker = Walker::new(role, options);
    walker.top(query)?;
    check_functions_and_relations(query, &walker, options)?;
    Ok(Guarded {
        sql: cap::wrap(query, options.max_rows),
        tables: walker.into_tables(),
        max_rows: options.max_rows,
    })
}

/// Every statement but a query: `SHOW x` reads but is not a query; the rest writes or changes
/// state (and a statement kind added to `sqlparser` later lands here too, refused). No `Debug` or
/// `Display` of the statement: both recurse, and a refused statement may be arbitrarily deep.
fn classify(statement: &Statement) -> Rejection {
    match statement {
        Statement::ShowVariable { .. } | Statement::ShowVariables { .. } => {
            Rejection::NotAQuery("SHOW".into())
        }
        _ => Rejection::Write("a statement other than a query".into()),
    }
}

/// Second, independent pass over the whole tree: every function call anywhere, and every table
/// factor, whichever scope the walker gave it. The walker decides tables precisely (CTE
/// shadowing, columns); this pass only makes sure nothing escaped it.
fn check_functions_and_relations(
    query: &Query,
    walker: &Walker<'_>,
    options: &GuardOptions,
) -> Result<(), Rejection> {
    struct Net<'w, 'a> {
        walker: &'w Walker<'a>,
        allow: Option<&'w BTreeSet<String>>,
        depth: usize,
        max_depth: usize,
    }
    impl Net<'_, '_> {
        fn enter(&mut self) -> ControlFlow<Rejection> {
            self.depth += 1;
            if self.depth > self.max_depth.saturating_mul(2) {
                return ControlFlow::Break(Rejection::TooDeep);
            }
            ControlFlow::Continue(())
        }
        fn leave(&mut self) -> ControlFlow<Rejection> {
            self.depth = self.depth.saturating_sub(1);
            ControlFlow::Continue(())
        }
    }
    impl Visitor for Net<'_, '_> {
        type Break = Rejection;
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<Rejection> {
            self.enter()
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<Rejection> {
            self.leave()
        }
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Rejection> {
            self.enter()?;
            let verdict = match factor {
                TableFactor::Table {
                    name,
                    args: Some(_),
                    ..
                }
                | TableFactor::Function { name, .. } => functions::check(name, self.allow),
                TableFactor::Table {
                    name, args: None, ..
                } => self.walker.recheck_relation(name),
                _ => Ok(()),
            };
            to_flow(verdict)
        }
        fn post_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<Rejection> {
            self.leave()
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Rejection> {
            self.enter()?;
            match expr {
                Expr::Function(function) => to_flow(functions::check(&function.name, self.allow)),
                Expr::Cast { data_type, .. } => {
                    to_flow(relations::check_type_depth(data_type, self.max_depth))
                }
                _ => ControlFlow::Continue(()),
            }
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<Rejection> {
            self.leave()
        }
    }
    let mut net = Net {
        walker,
        allow: options.function_allow_list.as_ref(),
        depth: 0,
        max_depth: options.max_depth,
    };
    match query.visit(&mut net) {
        ControlFlow::Break(rejection) => Err(rejection),
        ControlFlow::Continue(()) => Ok(()),
    }
}

pub(crate) fn to_flow(verdict: Result<(), Rejection>) -> ControlFlow<Rejection> {
    match verdict {
        Ok(()) => ControlFlow::Continue(()),
        Err(rejection) => ControlFlow::Break(rejection),
    }
}

fn parse_rejection(error: ParserError) -> Rejection {
    match error {
        ParserError::RecursionLimitExceeded => Rejection::TooDeep,
        ParserError::TokenizerError(message) | ParserError::ParserError(message) => {
            let (line, column) = location(&message);
            Rejection::Parse {
                message,
                line,
                column,
            }
        }
    }
}

/// `sqlparser` puts the position at the end of its messages: `… at Line: 3, Column: 14`.
fn location(message: &str) -> (Option<u64>, Option<u64>) {
    let Some((_, at)) = message.rsplit_once("Line: ") else {
        return (None, None);
    };
    let Some((line, column)) = at.split_once(", Column: ") else {
        return (None, None);
    };
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    (digits(line), digits(column))
}
