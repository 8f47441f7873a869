//! Candidate indexes from a statement's syntax tree (pure: the catalog is passed in).
//!
//! The walk finds, for each base table a query reads, the columns used in equality predicates
//! (`=`, `IN`), range predicates (`<`, `>`, `BETWEEN`), join keys, and `ORDER BY`/`GROUP BY`, through
//! aliases, CTEs, derived tables and subqueries. Each such column is a single-column candidate; the
//! multi-column candidate puts the equality columns first, most selective first (highest
//! `n_distinct`), then one range column, or else the ordering columns, which is the order a B-tree
//! can use. A candidate an existing index already covers (its columns are a prefix of the index's)
//! is dropped.

use std::collections::{BTreeSet, HashMap};

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, InTarget, JoinConstraint, ObjectName, OrderByKind,
    Query, Select, SetExpr, Statement, TableFactor, TableWithJoins,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// `(schema, table)`.
pub type TableKey = (String, String);

/// What the advisor knows about the database's user tables.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Columns of each table.
    pub columns: HashMap<TableKey, BTreeSet<String>>,
    /// Estimated distinct values per column (from `pg_stats`, fractions already scaled).
    pub n_distinct: HashMap<(String, String, String), f64>,
    /// Existing indexes: table and key columns in order.
    pub indexes: Vec<(TableKey, Vec<String>)>,
}

/// How one statement uses one table's columns.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Columns compared for equality (`=`, `IN`).
    pub equality: BTreeSet<String>,
    /// Columns compared by range.
    pub range: BTreeSet<String>,
    /// Columns used as join keys.
    pub join: BTreeSet<String>,
    /// Columns in `ORDER BY` / `GROUP BY`, in order of appearance.
    pub order: Vec<String>,
}

/// A proposed index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Candidate {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Key columns in order.
    pub columns: Vec<String>,
}

impl Candidate {
    /// A stable index name (at most 63 bytes, PostgreSQL's limit).
    pub fn index_name(&self) -> String {
        let mut name = format!("qa_{}_{}", self.table, self.columns.join("_"));
        name.truncate(63);
        name
    }

    /// `CREATE INDEX ON schema.table (cols)` for hypopg (which takes no name).
    pub fn hypothetical_sql(&self) -> String {
        format!(
            "CREATE INDEX ON {}.{} ({})",
            quote(&self.schema),
            quote(&self.table),
            self.quoted_columns()
        )
    }

    /// The exact statement an operator runs to create it.
    pub fn create_sql(&self) -> String {
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {}.{} ({})",
            quote(&self.index_name()),
            quote(&self.schema),
            quote(&self.table),
            self.quoted_columns()
        )
    }

    fn quoted_columns(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A double-quoted identifier.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn ident(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| p.as_ident().map(ident))
        .collect()
}

/// Per-table column usage of one statement. Tables outside `catalog` (system catalogs, CTE names)
/// are ignored.
///
/// # Errors
/// When the statement does not parse as one query.
pub fn usages(sql: &str, catalog: &Catalog) -> Result<HashMap<TableKey, Usage>, String> {
    let statements = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(64)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| e.to_string())?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return Err("not a single query".to_owned());
    };
    let mut walker = Walker {
        catalog,
        out: HashMap::new(),
    };
    walker.query(query);
    Ok(walker.out)
}

struct Walker<'a> {
    catalog: &'a Catalog,
    out: HashMap<TableKey, Usage>,
}

/// The base tables visible in one `SELECT`, by the name the query uses for them.
type Scope = Vec<(String, TableKey)>;

impl Walker<'_> {
    fn query(&mut self, query: &Query) {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.query(&cte.query);
            }
        }
        let order: Vec<&Expr> = match query.order_by.as_ref().map(|o| &o.kind) {
            Some(OrderByKind::Expressions(items)) => items.iter().map(|i| &i.expr).collect(),
            _ => Vec::new(),
        };
        self.set_expr(&query.body, &order);
    }

    fn set_expr(&mut self, body: &SetExpr, order: &[&Expr]) {
        match body {
            SetExpr::Select(select) => self.select(select, order),
            SetExpr::Query(query) => self.query(query),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, &[]);
                self.set_expr(right, &[]);
            }
            _ => {}
        }
    }

    fn select(&mut self, select: &Select, order: &[&Expr]) {
        let mut scope: Scope = Vec::new();
        let mut join_conditions: Vec<&Expr> = Vec::new();
        for TableWithJoins { relation, joins } in &select.from {
            self.factor(relation, &mut scope);
            for join in joins {
                self.factor(&join.relation, &mut scope);
                let constraint = quarry_shared::sql::join_constraint(&join.join_operator);
                if let Some(JoinConstraint::On(expr)) = constraint {
                    join_conditions.push(expr);
                }
            }
        }
        for expr in join_conditions {
            self.predicate(expr, &scope);
        }
        if let Some(selection) = &select.selection {
            self.predicate(selection, &scope);
        }
        if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
            for expr in exprs {
                if let Some((key, column)) = self.column(expr, &scope) {
                    self.usage(key).order.push(column);
                }
            }
        }
        for expr in order {
            if let Some((key, column)) = self.column(expr, &scope) {
                self.usage(key).order.push(column);
            }
        }
    }

    fn factor(&mut self, factor: &TableFactor, scope: &mut Scope) {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let parts = name_parts(name);
                let key = match parts.as_slice() {
                    [table] => ("public".to_owned(), table.clone()),
                    [schema, table] => (schema.clone(), table.clone()),
                    _ => return,
                };
                if self.catalog.columns.contains_key(&key) {
                    let visible = alias
                        .as_ref()
                        .map_or_else(|| key.1.clone(), |a| ident(&a.name));
                    scope.push((visible, key));
                }
            }
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.factor(&table_with_joins.relation, scope);
                for join in &table_with_joins.joins {
                    self.factor(&join.relation, scope);
                }
            }
            _ => {}
        }
    }

    fn usage(&mut self, key: TableKey) -> &mut Usage {
        self.out.entry(key).or_default()
    }

    /// The table and column an expression names, if it is a plain column of a scope table.
    fn column(&self, expr: &Expr, scope: &Scope) -> Option<(TableKey, String)> {
        match expr {
            Expr::Identifier(id) => {
                let column = ident(id);
                let mut owners = scope.iter().filter(|(_, key)| {
                    self.catalog
                        .columns
                        .get(key)
                        .is_some_and(|c| c.contains(&column))
                });
                let (_, key) = owners.next()?;
                // Ambiguous names are PostgreSQL's error to report, not a candidate.
                owners.next().is_none().then(|| (key.clone(), column))
            }
            Expr::CompoundIdentifier(parts) => {
                let [qualifier, column] = parts.as_slice() else {
                    return None;
                };
                let (qualifier, column) = (ident(qualifier), ident(column));
                let (_, key) = scope.iter().find(|(name, _)| *name == qualifier)?;
                self.catalog
                    .columns
                    .get(key)?
                    .contains(&column)
                    .then(|| (key.clone(), column))
            }
            Expr::Nested(inner) => self.column(inner, scope),
            _ => None,
        }
    }

    fn predicate(&mut self, expr: &Expr, scope: &Scope) {
        match expr {
            Expr::Nested(inner) => self.predicate(inner, scope),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                self.predicate(left, scope);
                self.predicate(right, scope);
            }
            Expr::BinaryOp { left, op, right } => {
                let l = self.column(left, scope);
                let r = self.column(right, scope);
                let range = matches!(
                    op,
                    BinaryOperator::Lt
                        | BinaryOperator::LtEq
                        | BinaryOperator::Gt
                        | BinaryOperator::GtEq
                );
                match (l, r, op) {
                    (Some((lk, lc)), Some((rk, rc)), BinaryOperator::Eq) if lk != rk => {
                        self.usage(lk).join.insert(lc);
                        self.usage(rk).join.insert(rc);
                    }
                    (Some((key, column)), None, BinaryOperator::Eq)
                    | (None, Some((key, column)), BinaryOperator::Eq) => {
                        self.usage(key).equality.insert(column);
                    }
                    (Some((key, column)), None, _) | (None, Some((key, column)), _) if range => {
                        self.usage(key).range.insert(column);
                    }
                    _ => {}
                }
                self.subqueries(left);
                self.subqueries(right);
            }
            Expr::Between {
                expr,
                negated: false,
                ..
            } => {
                if let Some((key, column)) = self.column(expr, scope) {
                    self.usage(key).range.insert(column);
                }
            }
            Expr::In {
                expr,
                target,
                negated: false,
                ..
            } => {
                if let Some((key, column)) = self.column(expr, scope) {
                    self.usage(key).equality.insert(column);
                }
                if let InTarget::Subquery(subquery) = target {
                    self.query(subquery);
                }
            }
            other => self.subqueries(other),
        }
    }

    fn subqueries(&mut self, expr: &Expr) {
        match expr {
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => self.query(q),
            Expr::In {
                target: InTarget::Subquery(subquery),
                ..
            } => self.query(subquery),
            Expr::Nested(inner) => self.subqueries(inner),
            _ => {}
        }
    }
}

/// Candidate indexes for one table's usage, most specific first, without those an existing index
/// covers.
pub fn candidates(key: &TableKey, usage: &Usage, catalog: &Catalog) -> Vec<Candidate> {
    let distinct = |column: &String| {
        catalog
            .n_distinct
            .get(&(key.0.clone(), key.1.clone(), column.clone()))
            .copied()
            .unwrap_or(0.0)
    };
    let mut equality: Vec<String> = usage
        .equality
        .iter()
        .chain(&usage.join)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    equality.sort_by(|a, b| distinct(b).total_cmp(&distinct(a)).then_with(|| a.cmp(b)));
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut composite = equality.clone();
    if let Some(range) = usage.range.iter().find(|c| !composite.contains(c)) {
        composite.push(range.clone());
    } else {
        for column in &usage.order {
            if !composite.contains(column) {
                composite.push(column.clone());
            }
        }
    }
    composite.truncate(4);
    if composite.len() > 1 {
        out.push(composite);
    }
    for column in equality
        .iter()
        .chain(&usage.range)
        .chain(usage.order.iter().take(1))
    {
        let single = vec![column.clone()];
        if !out.contains(&single) {
            out.push(single);
        }
    }
    out.into_iter()
        .filter(|columns| !covered(key, columns, catalog))
        .map(|columns| Candidate {
            schema: key.0.clone(),
            table: key.1.clone(),
            columns,
        })
        .collect()
}

/// Whether an existing index starts with exactly these columns.
fn covered(key: &TableKey, columns: &[String], catalog: &Catalog) -> bool {
    catalog.indexes.iter().any(|(table, index)| {
        table == key && index.len() >= columns.len() && index[..columns.len()] == *columns
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        let flights: BTreeSet<String> = [
            "flight_id",
            "year",
            "month",
            "day",
            "dep_delay",
            "carrier",
            "tailnum",
            "origin",
            "dest",
            "time_hour",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        c.columns
            .insert(("flights".into(), "flights".into()), flights);
        c.columns.insert(
            ("flights".into(), "planes".into()),
            ["tailnum", "year", "manufacturer"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        );
        c.columns.insert(
            ("public".into(), "track".into()),
            ["track_id", "name", "genre_id"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        );
        for (col, n) in [
            ("origin", 3.0),
            ("month", 12.0),
            ("day", 31.0),
            ("tailnum", 4000.0),
        ] {
            c.n_distinct
                .insert(("flights".into(), "flights".into(), col.into()), n);
        }
        c.indexes.push((
            ("flights".into(), "flights".into()),
            vec!["flight_id".into()],
        ));
        c
    }

    fn key(s: &str, t: &str) -> TableKey {
        (s.to_owned(), t.to_owned())
    }

    #[test]
    fn equality_range_join_and_order_columns_are_found_through_wrappers() {
        let c = catalog();
        // The shape sql-exec runs: the caller's query inside two wrappers.
        let sql = "SELECT quarry_q.c0::text FROM (SELECT * FROM (SELECT f.* FROM flights.flights AS f JOIN flights.planes p ON p.tailnum = f.tailnum
                   WHERE f.origin = $1 AND f.month = $2 AND day = $3 AND f.dep_delay > $4 ORDER BY f.time_hour) AS quarry_capped LIMIT $5) AS quarry_q(c0)";
        let u = usages(sql, &c).unwrap();
        let flights = &u[&key("flights", "flights")];
        assert_eq!(
            flights.equality,
            ["day", "month", "origin"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        );
        assert_eq!(
            flights.range,
            ["dep_delay".to_owned()].into_iter().collect()
        );
        assert_eq!(flights.join, ["tailnum".to_owned()].into_iter().collect());
        assert_eq!(flights.order, vec!["time_hour".to_owned()]);
        assert_eq!(
            u[&key("flights", "planes")].join,
            ["tailnum".to_owned()].into_iter().collect()
        );
    }

    #[test]
    fn composite_candidates_put_selective_equalities_first_then_a_range() {
        let c = catalog();
        let u = usages(
            "SELECT count(*) FROM flights.flights WHERE origin = $1 AND month = $2 AND day = $3",
            &c,
        )
        .unwrap();
        let cands = candidates(
            &key("flights", "flights"),
            &u[&key("flights", "flights")],
            &c,
        );
        assert_eq!(cands[0].columns, vec!["day", "month", "origin"]);
        assert!(cands.iter().any(|c| c.columns == vec!["origin"]));
        let u = usages(
            "SELECT * FROM flights.flights WHERE tailnum = $1 AND time_hour BETWEEN $2 AND $3",
            &c,
        )
        .unwrap();
        let cands = candidates(
            &key("flights", "flights"),
            &u[&key("flights", "flights")],
            &c,
        );
        assert_eq!(cands[0].columns, vec!["tailnum", "time_hour"]);
        assert_eq!(cands[0].create_sql(), "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"qa_flights_tailnum_time_hour\" ON \"flights\".\"flights\" (\"tailnum\", \"time_hour\")");
        assert_eq!(
            cands[0].hypothetical_sql(),
            "CREATE INDEX ON \"flights\".\"flights\" (\"tailnum\", \"time_hour\")"
        );
    }

    #[test]
    fn covered_candidates_and_unknown_tables_are_skipped() {
        let mut c = catalog();
        c.indexes.push((
            key("flights", "flights"),
            vec!["tailnum".into(), "year".into()],
        ));
        let u = usages(
            "SELECT * FROM flights.flights WHERE tailnum = $1 AND flight_id = $2",
            &c,
        )
        .unwrap();
        let cands = candidates(
            &key("flights", "flights"),
            &u[&key("flights", "flights")],
            &c,
        );
        assert!(
            cands
                .iter()
                .all(|c| c.columns != vec!["tailnum"] && c.columns != vec!["flight_id"]),
            "{cands:?}"
        );
        let u = usages("SELECT * FROM pg_class WHERE relname = $1", &c).unwrap();
        assert!(u.is_empty());
        assert!(usages("DELETE FROM flights.flights", &c).is_err());
        assert!(usages("not sql", &c).is_err());
    }

    #[test]
    fn ctes_subqueries_and_ambiguity() {
        let c = catalog();
        let sql = "WITH recent AS (SELECT * FROM flights.flights WHERE month = 12)
                   SELECT * FROM recent WHERE tailnum IN (SELECT tailnum FROM flights.planes WHERE manufacturer = 'BOEING')";
        let u = usages(sql, &c).unwrap();
        assert!(u[&key("flights", "flights")].equality.contains("month"));
        assert!(u[&key("flights", "planes")]
            .equality
            .contains("manufacturer"));
        // `year` is in both tables: unqualified, it is not attributed to either.
        let u = usages("SELECT * FROM flights.flights f JOIN flights.planes p USING (tailnum) WHERE year = 2013", &c).unwrap();
        assert!(u.values().all(|usage| !usage.equality.contains("year")));
    }
}
