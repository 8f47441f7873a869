//! Tables and columns: which relations a query reads, resolved through its scopes.
//!
//! Rules as implemented:
//!
//! - **Names.** Unquoted identifiers fold to lower case (ASCII, as PostgreSQL does in UTF-8);
//!   quoted ones are taken as written. An unqualified table resolves to `public` (the executor
//!   pins `search_path`), except `pg_*`, which PostgreSQL finds in `pg_catalog` first and is
//!   `system-catalog`; so are the `pg_catalog` and `information_schema` schemas and every other
//!   `pg_*` schema. A three-part `db.schema.table` is judged as `schema.table` (PostgreSQL only
//!   accepts the current database there).
//! - **CTEs.** A one-part name that matches a CTE in scope is that CTE, not a table; CTE bodies
//!   are checked where they are defined. A plain `WITH` CTE sees only the CTEs before it (so
//!   `WITH employee AS (SELECT * FROM employee)` reads the real table); `WITH RECURSIVE` CTEs see
//!   all of the list.
//! - **Scopes.** Each `SELECT` opens a scope of its `FROM` items, named by alias or table name.
//!   A subquery in an expression sees its enclosing scopes; a `LATERAL` subquery and a function in
//!   `FROM` also see the `FROM` items before them; a plain subquery in `FROM` sees only the
//!   enclosing scopes. An aliased parenthesised join exposes only its alias.
//! - **Columns** are checked only against column-limited grants; everything else is table-level.
//!   Derived tables and CTEs are not limited: their own bodies were checked.
//!   - `t.col` (and `schema.t.col`) resolves `t` in the innermost scope that has it; `col` must be
//!     granted on that table. For three-part names both readings (`schema.table.column` and
//!     `table.column.field`) are checked.
//!   - An unqualified `col` could belong to any column-limited table in any enclosing scope, so it
//!     must be granted on every one of them (without the catalog the guard cannot know which table
//!     has it; qualify columns to avoid false refusals). This also refuses whole-row references
//!     (`SELECT c FROM customer c`, `to_json(c)`, `email(c)`), whose name is not a column.
//!   - `*`, `t.*` and `f(t.*)` over a column-limited table are refused as `column:table.*`, as
//!     are `NATURAL` joins touching one (they compare every same-named column) and column alias
//!     lists on one (`customer AS c(a, b, …)` could rename a hidden column to a granted name).
//!   - `USING (col)` columns are unqualified references.
//!   - In `ORDER BY`, a bare name that is an output alias of the same `SELECT` is that output
//!     (PostgreSQL's rule there); in `GROUP BY`, PostgreSQL prefers input columns, so no such
//!     exemption.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    ArrayElemTypeDef, DataType, Expr, Fetch, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, JoinConstraint, LimitClause, ObjectName, OrderBy, OrderByKind, Query,
    Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, TableAlias, TableFactor,
    TableWithJoins, Visit, Visitor,
};

use super::guard::{to_flow, GuardOptions, Rejection};
use crate::policy::RolePolicy;

/// Folds an identifier the way PostgreSQL does.
pub(crate) fn ident(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

/// The folded parts of a name; `None` if a part is computed (not PostgreSQL syntax).
fn parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| part.as_ident().map(ident))
        .collect()
}

/// Refuses array types nested deeper than `max_depth` before a visitor recurses into them: the
/// parser builds `int[][][]…` iteratively, so its recursion limit does not bound it.
pub(crate) fn check_type_depth(data_type: &DataType, max_depth: usize) -> Result<(), Rejection> {
    let mut current = data_type;
    for _ in 0..=max_depth {
        match current {
            DataType::Array(
                ArrayElemTypeDef::AngleBracket(inner)
                | ArrayElemTypeDef::SquareBracket(inner, _)
                | ArrayElemTypeDef::Parenthesis(inner)
                | ArrayElemTypeDef::ParenthesisNotNull(inner)
                | ArrayElemTypeDef::Qualified(inner, _),
            ) => current = inner,
            _ => return Ok(()),
        }
    }
    Err(Rejection::TooDeep)
}

/// A column-limited table behind a binding.
#[derive(Debug, Clone)]
struct Limited<'a> {
    table: String,
    columns: &'a BTreeSet<String>,
}

/// A name a `FROM` item is known by, and the column-limited tables behind it (empty: unlimited).
#[derive(Debug, Clone)]
struct Binding<'a> {
    name: String,
    limited: Vec<Limited<'a>>,
}

/// One level of name resolution: the CTEs a `WITH` defines, or the `FROM` items of a `SELECT`.
#[derive(Debug)]
struct Scope<'s, 'a> {
    parent: Option<&'s Scope<'s, 'a>>,
    ctes: Vec<String>,
    bindings: Vec<Binding<'a>>,
}

impl<'s, 'a> Scope<'s, 'a> {
    fn child(parent: Option<&'s Scope<'s, 'a>>) -> Self {
        Self {
            parent,
            ctes: Vec::new(),
            bindings: Vec::new(),
        }
    }

    fn chain(&self) -> impl Iterator<Item = &Scope<'s, 'a>> {
        std::iter::successors(Some(self), |scope| scope.parent)
    }

    fn has_cte(&self, name: &str) -> bool {
        self.chain()
            .any(|scope| scope.ctes.iter().any(|cte| cte == name))
    }

    /// The innermost binding called `name`.
    fn binding(&self, name: &str) -> Option<&Binding<'a>> {
        self.chain()
            .find_map(|scope| scope.bindings.iter().find(|b| b.name == name))
    }

    /// An unqualified column must be granted on every column-limited table it could belong to.
    fn check_unqualified(&self, column: &str) -> Result<(), Rejection> {
        for scope in self.chain() {
            for binding in &scope.bindings {
                for limited in &binding.limited {
                    if !limited.columns.contains(column) {
                        return Err(Rejection::Column {
                            table: limited.table.clone(),
                            column: column.to_owned(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// `qualifier.column` (or `qualifier.*` with `column == "*"`).
    fn check_qualified(&self, qualifier: &str, column: &str) -> Result<(), Rejection> {
        // Not found: PostgreSQL refuses the reference itself ("missing FROM-clause entry").
        let Some(binding) = self.binding(qualifier) else {
            return Ok(());
        };
        check_limited(&binding.limited, column)
    }

    /// `*`: every column of every `FROM` item of this scope only.
    fn check_star(&self) -> Result<(), Rejection> {
        self.bindings
            .iter()
            .try_for_each(|binding| check_limited(&binding.limited, "*"))
    }
}

fn check_limited(limited: &[Limited<'_>], column: &str) -> Result<(), Rejection> {
    match limited
        .iter()
        .find(|l| column == "*" || !l.columns.contains(column))
    {
        Some(l) => Err(Rejection::Column {
            table: l.table.clone(),
            column: column.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Bare names that stand for output columns where they appear (`ORDER BY` items).
#[derive(Debug, Clone, Copy)]
enum Outputs<'q> {
    /// No exemption.
    None,
    /// These aliases of the `SELECT` list.
    Aliases(&'q [String]),
    /// Any bare name: `ORDER BY` of a set operation may only name result columns.
    Any,
}

/// The scoped walk: statement structure by hand (every field of the node kinds it accepts is
/// named, so a `sqlparser` upgrade that adds one fails to compile here), expressions through
/// `sqlparser`'s visitor (so no expression kind is forgotten).
pub(crate) struct Walker<'a> {
    role: &'a RolePolicy,
    max_depth: usize,
    depth: usize,
    tables: Vec<(String, String)>,
    /// Every CTE name defined anywhere, for the second pass's cross-check.
    cte_names: BTreeSet<String>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(role: &'a RolePolicy, options: &GuardOptions) -> Self {
        Self {
            role,
            max_depth: options.max_depth,
            depth: 0,
            tables: Vec::new(),
            cte_names: BTreeSet::new(),
        }
    }

    pub(crate) fn into_tables(self) -> Vec<(String, String)> {
        self.tables
    }

    /// Walks the top-level query.
    pub(crate) fn top(&mut self, query: &Query) -> Result<(), Rejection> {
        self.query(query, None)
    }

    /// The second pass's check of a table factor it found: a CTE name defined somewhere, or a
    /// granted table. (The walker already decided it precisely; this only catches a table the
    /// walker never reached.)
    pub(crate) fn recheck_relation(&self, name: &ObjectName) -> Result<(), Rejection> {
        let parts =
            parts(name).ok_or_else(|| Rejection::NotAQuery("computed table name".into()))?;
        if let [only] = parts.as_slice() {
            if self.cte_names.contains(only) {
                return Ok(());
            }
        }
        self.resolve_table(&parts).map(|_| ())
    }

    fn enter(&mut self) -> Result<(), Rejection> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(Rejection::TooDeep);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Resolves a table name, checks the grant, records the read, and returns its column limit.
    fn resolve_table(
        &self,
        parts: &[String],
    ) -> Result<(String, String, Option<&'a BTreeSet<String>>), Rejection> {
        let (schema, table) = match parts {
            [table] if table.starts_with("pg_") => {
                return Err(Rejection::SystemCatalog(format!("pg_catalog.{table}")))
            }
            [table] => ("public".to_owned(), table.clone()),
            [.., schema, table] => (schema.clone(), table.clone()),
            [] => return Err(Rejection::NotAQuery("table without a name".into())),
        };
        if schema == "information_schema" || schema.starts_with("pg_") {
            return Err(Rejection::SystemCatalog(format!("{schema}.{table}")));
        }
        let role = self.role;
        let grant = role
            .grant_for(&schema, &table)
            .ok_or_else(|| Rejection::Table {
                schema: schema.clone(),
                table: table.clone(),
            })?;
        Ok((schema, table, grant.columns.as_ref()))
    }

    fn record(&mut self, schema: String, table: String) {
        if !self.tables.iter().any(|(s, t)| *s == schema && *t == table) {
            self.tables.push((schema, table));
        }
    }

    fn query(&mut self, query: &Query, outer: Option<&Scope<'_, 'a>>) -> Result<(), Rejection> {
        self.query_with(query, outer, &[])
    }

    /// `outer_tails`: the `ORDER BY`/`LIMIT` of enclosing `(…) ORDER BY …` wrappers, which
    /// PostgreSQL folds into this query, so they resolve names in its scope.
    fn query_with(
        &mut self,
        query: &Query,
        outer: Option<&Scope<'_, 'a>>,
        outer_tails: &[&Tail<'_>],
    ) -> Result<(), Rejection> {
        self.enter()?;
        let result = self.query_inner(query, outer, outer_tails);
        self.leave();
        result
    }

    fn query_inner(
        &mut self,
        query: &Query,
        outer: Option<&Scope<'_, 'a>>,
        outer_tails: &[&Tail<'_>],
    ) -> Result<(), Rejection> {
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        if !locks.is_empty() {
            return Err(Rejection::Write("FOR UPDATE/SHARE".into()));
        }
        if for_clause.is_some()
            || settings.is_some()
            || format_clause.is_some()
            || !pipe_operators.is_empty()
        {
            return Err(Rejection::NotAQuery(
                "a clause of another SQL dialect".into(),
            ));
        }
        let mut scope = Scope::child(outer);
        if let Some(with) = with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|cte| ident(&cte.alias.name))
                .collect();
            self.cte_names.extend(names.iter().cloned());
            if with.recursive {
                scope.ctes.clone_from(&names);
            }
            for (cte, name) in with.cte_tables.iter().zip(names) {
                if cte.from.is_some() {
                    return Err(Rejection::NotAQuery("CTE FROM clause".into()));
                }
                self.query(&cte.query, Some(&scope))?;
                if !with.recursive {
                    scope.ctes.push(name);
                }
            }
        }
        let tail = Tail {
            order_by: order_by.as_ref(),
            limit_clause: limit_clause.as_ref(),
            fetch: fetch.as_ref(),
        };
        let mut tails: Vec<&Tail<'_>> = outer_tails.to_vec();
        tails.push(&tail);
        match body.as_ref() {
            SetExpr::Select(select) => self.select(select, &scope, &tails),
            // `(SELECT …) ORDER BY x`: PostgreSQL strips the parentheses and sorts by the inner
            // query's input columns, so the tail must be checked in the inner scope.
            SetExpr::Query(inner) => self.query_with(inner, Some(&scope), &tails),
            other => {
                self.set_expr(other, &scope)?;
                // ORDER BY over a set operation or VALUES may only name result columns.
                tails
                    .iter()
                    .try_for_each(|tail| self.tail(tail, &scope, Outputs::Any))
            }
        }
    }

    fn set_expr(&mut self, body: &SetExpr, scope: &Scope<'_, 'a>) -> Result<(), Rejection> {
        self.enter()?;
        let result = self.set_expr_inner(body, scope);
        self.leave();
        result
    }

    fn set_expr_inner(&mut self, body: &SetExpr, scope: &Scope<'_, 'a>) -> Result<(), Rejection> {
        match body {
            SetExpr::Select(select) => self.select(select, scope, &[]),
            SetExpr::Query(query) => self.query(query, Some(scope)),
            SetExpr::SetOperation {
                left,
                op: _,
                set_quantifier: _,
                right,
            } => {
                self.set_expr(left, scope)?;
                self.set_expr(right, scope)
            }
            SetExpr::Values(values) => self.visit(values, scope, Outputs::None),
            SetExpr::Table(table) => {
                // `TABLE t` is `SELECT * FROM t`.
                let Some(name) = &table.table_name else {
                    return Err(Rejection::NotAQuery("TABLE without a name".into()));
                };
                let parts: Vec<String> = table
                    .schema_name
                    .iter()
                    .chain(std::iter::once(name))
                    .map(ident)
                    .collect();
                if let [only] = parts.as_slice() {
                    if scope.has_cte(only) {
                        return Ok(());
                    }
                }
                let (schema, table, limit) = self.resolve_table(&parts)?;
                if limit.is_some() {
                    return Err(Rejection::Column {
                        table,
                        column: "*".into(),
                    });
                }
                self.record(schema, table);
                Ok(())
            }
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Err(Rejection::Write(
                    "data-modifying statement in a query".into(),
                ))
            }
        }
    }

    fn select(
        &mut self,
        select: &Select,
        outer: &Scope<'_, 'a>,
        tails: &[&Tail<'_>],
    ) -> Result<(), Rejection> {
        let Select {
            select_token: _,
            optimizer_hints,
            distinct,
            select_modifiers,
            top,
            top_before_distinct: _,
            projection,
            exclude,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            connect_by,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            flavor: _,
        } = select;
        if into.is_some() {
            return Err(Rejection::Write("SELECT INTO".into()));
        }
        let foreign = !optimizer_hints.is_empty()
            || select_modifiers.is_some()
            || top.is_some()
            || exclude.is_some()
            || !lateral_views.is_empty()
            || prewhere.is_some()
            || !connect_by.is_empty()
            || !cluster_by.is_empty()
            || !distribute_by.is_empty()
            || !sort_by.is_empty()
            || qualify.is_some()
            || value_table_mode.is_some();
        if foreign {
            return Err(Rejection::NotAQuery(
                "a clause of another SQL dialect".into(),
            ));
        }
        let mut scope = Scope::child(Some(outer));
        for item in from {
            self.table_with_joins(item, &mut scope)?;
        }
        let mut aliases = Vec::new();
        for item in projection {
            match item {
                SelectItem::UnnamedExpr(expr) => self.expr(expr, &scope, Outputs::None)?,
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.expr(expr, &scope, Outputs::None)?;
                    aliases.push(ident(alias));
                }
                SelectItem::ExprWithAliases {
                    expr,
                    aliases: names,
                } => {
                    self.expr(expr, &scope, Outputs::None)?;
                    aliases.extend(names.iter().map(ident));
                }
                SelectItem::Wildcard(_) => scope.check_star()?,
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => {
                    self.qualified_star(name, &scope)?;
                }
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(expr), _) => {
                    self.expr(expr, &scope, Outputs::None)?;
                }
            }
        }
        self.visit(distinct, &scope, Outputs::None)?;
        self.visit(selection, &scope, Outputs::None)?;
        match group_by {
            GroupByExpr::All(_) => {}
            GroupByExpr::Expressions(exprs, _) => self.exprs(exprs, &scope, Outputs::None)?,
        }
        self.visit(having, &scope, Outputs::None)?;
        self.visit(named_window, &scope, Outputs::None)?;
        tails
            .iter()
            .try_for_each(|tail| self.tail(tail, &scope, Outputs::Aliases(&aliases)))
    }

    fn tail(
        &mut self,
        tail: &Tail<'_>,
        scope: &Scope<'_, 'a>,
        outputs: Outputs<'_>,
    ) -> Result<(), Rejection> {
        if let Some(OrderBy { kind, interpolate }) = tail.order_by {
            if interpolate.is_some() {
                return Err(Rejection::NotAQuery("INTERPOLATE".into()));
            }
            if let OrderByKind::Expressions(items) = kind {
                for item in items {
                    // PostgreSQL matches a bare ORDER BY name against output columns first.
                    let is_output = match (&item.expr, outputs) {
                        (Expr::Identifier(id), Outputs::Aliases(aliases)) => {
                            aliases.contains(&ident(id))
                        }
                        (Expr::Identifier(_), Outputs::Any) => true,
                        _ => false,
                    };
                    if !is_output {
                        self.expr(&item.expr, scope, Outputs::None)?;
                    }
                    self.visit(&item.with_fill, scope, Outputs::None)?;
                }
            }
        }
        if let Some(limit_clause) = tail.limit_clause {
            self.visit(limit_clause, scope, Outputs::None)?;
        }
        if let Some(fetch) = tail.fetch {
            self.visit(fetch, scope, Outputs::None)?;
        }
        Ok(())
    }

    fn table_with_joins(
        &mut self,
        item: &TableWithJoins,
        scope: &mut Scope<'_, 'a>,
    ) -> Result<(), Rejection> {
        self.enter()?;
        let result = self.table_with_joins_inner(item, scope);
        self.leave();
        result
    }

    fn table_with_joins_inner(
        &mut self,
        item: &TableWithJoins,
        scope: &mut Scope<'_, 'a>,
    ) -> Result<(), Rejection> {
        let TableWithJoins { relation, joins } = item;
        self.table_factor(relation, scope)?;
        for join in joins {
            self.table_factor(&join.relation, scope)?;
            let constraint = super::join_constraint(&join.join_operator)
                .ok_or_else(|| Rejection::NotAQuery("a join of another SQL dialect".into()))?;
            match constraint {
                JoinConstraint::On(expr) => self.expr(expr, scope, Outputs::None)?,
                JoinConstraint::Using(columns) => self.using(columns, scope)?,
                JoinConstraint::UsingAlias(columns, alias) => {
                    self.using(columns, scope)?;
                    // The alias exposes only the USING columns, which were just checked.
                    scope.bindings.push(Binding {
                        name: ident(alias),
                        limited: Vec::new(),
                    });
                }
                JoinConstraint::Natural => {
                    // Both sides: everything bound so far in this FROM clause and the new relation.
                    if let Some(l) = scope.bindings.iter().flat_map(|b| b.limited.iter()).next() {
                        return Err(Rejection::Column {
                            table: l.table.clone(),
                            column: "*".into(),
                        });
                    }
                }
                JoinConstraint::None => {}
            }
        }
        Ok(())
    }

    fn using(&mut self, columns: &[ObjectName], scope: &Scope<'_, 'a>) -> Result<(), Rejection> {
        for column in columns {
            let parts =
                parts(column).ok_or_else(|| Rejection::NotAQuery("computed column name".into()))?;
            if let Some(last) = parts.last() {
                scope.check_unqualified(last)?;
            }
        }
        Ok(())
    }

    fn table_factor(
        &mut self,
        factor: &TableFactor,
        scope: &mut Scope<'_, 'a>,
    ) -> Result<(), Rejection> {
        self.enter()?;
        let result = self.table_factor_inner(factor, scope);
        self.leave();
        result
    }

    fn table_factor_inner(
        &mut self,
        factor: &TableFactor,
        scope: &mut Scope<'_, 'a>,
    ) -> Result<(), Rejection> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality: _,
                partitions,
                json_path,
                sample,
                index_directives,
                inheritance: _,
            } => {
                if !with_hints.is_empty()
                    || version.is_some()
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || !index_directives.is_empty()
                {
                    return Err(Rejection::NotAQuery(
                        "a table clause of another SQL dialect".into(),
                    ));
                }
                let parts = parts(name)
                    .ok_or_else(|| Rejection::NotAQuery("computed table name".into()))?;
                let default_name = parts.last().cloned().unwrap_or_default();
                if let Some(args) = args {
                    // A set-returning function in FROM (its name is judged by the function pass);
                    // like LATERAL, its arguments see the FROM items before it.
                    self.visit(&args.args, scope, Outputs::None)?;
                    if args.settings.is_some() {
                        return Err(Rejection::NotAQuery("SETTINGS".into()));
                    }
                    scope.bindings.push(Binding {
                        name: alias_or(alias, default_name),
                        limited: Vec::new(),
                    });
                    return Ok(());
                }
                self.visit(sample, scope, Outputs::None)?;
                if let [only] = parts.as_slice() {
                    if scope.has_cte(only) {
                        scope.bindings.push(Binding {
                            name: alias_or(alias, default_name),
                            limited: Vec::new(),
                        });
                        return Ok(());
                    }
                }
                let (schema, table, limit) = self.resolve_table(&parts)?;
                let mut limited = Vec::new();
                if let Some(columns) = limit {
                    if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                        return Err(Rejection::Column {
                            table,
                            column: "*".into(),
                        });
                    }
                    limited.push(Limited {
                        table: table.clone(),
                        columns,
                    });
                }
                scope.bindings.push(Binding {
                    name: alias_or(alias, table.clone()),
                    limited,
                });
                self.record(schema, table);
                Ok(())
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                self.visit(sample, scope, Outputs::None)?;
                if *lateral {
                    self.query(subquery, Some(scope))?;
                } else {
                    // A plain subquery in FROM cannot see its siblings, only enclosing scopes.
                    self.query(subquery, scope.parent)?;
                }
                scope.bindings.push(Binding {
                    name: alias_or(alias, String::new()),
                    limited: Vec::new(),
                });
                Ok(())
            }
            TableFactor::TableFunction { expr, alias } => {
                self.expr(expr, scope, Outputs::None)?;
                scope.bindings.push(Binding {
                    name: alias_or(alias, String::new()),
                    limited: Vec::new(),
                });
                Ok(())
            }
            TableFactor::Function {
                lateral: _,
                name,
                args,
                with_ordinality: _,
                alias,
            } => {
                self.visit(args, scope, Outputs::None)?;
                let default_name = parts(name)
                    .and_then(|p| p.last().cloned())
                    .unwrap_or_default();
                scope.bindings.push(Binding {
                    name: alias_or(alias, default_name),
                    limited: Vec::new(),
                });
                Ok(())
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset,
                with_offset_alias: _,
                with_ordinality: _,
            } => {
                if *with_offset {
                    return Err(Rejection::NotAQuery("UNNEST WITH OFFSET".into()));
                }
                self.exprs(array_exprs, scope, Outputs::None)?;
                scope.bindings.push(Binding {
                    name: alias_or(alias, "unnest".into()),
                    limited: Vec::new(),
                });
                Ok(())
            }
            TableFactor::JsonTable { alias, .. } | TableFactor::XmlTable { alias, .. } => {
                // PostgreSQL 16/17 syntax; every expression inside is visited.
                self.visit(factor, scope, Outputs::None)?;
                scope.bindings.push(Binding {
                    name: alias_or(alias, String::new()),
                    limited: Vec::new(),
                });
                Ok(())
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if let Some(alias) = alias {
                    // The alias hides the inner names; its columns are every inner column.
                    let mut inner = Scope::child(scope.parent);
                    self.table_with_joins(table_with_joins, &mut inner)?;
                    if !alias.columns.is_empty() {
                        if let Some(l) = inner.bindings.iter().flat_map(|b| b.limited.iter()).next()
                        {
                            return Err(Rejection::Column {
                                table: l.table.clone(),
                                column: "*".into(),
                            });
                        }
                    }
                    let limited = inner.bindings.into_iter().flat_map(|b| b.limited).collect();
                    scope.bindings.push(Binding {
                        name: ident(&alias.name),
                        limited,
                    });
                    Ok(())
                } else {
                    self.table_with_joins(table_with_joins, scope)
                }
            }
            _ => Err(Rejection::NotAQuery(
                "a FROM item of another SQL dialect".into(),
            )),
        }
    }

    fn qualified_star(&self, name: &ObjectName, scope: &Scope<'_, 'a>) -> Result<(), Rejection> {
        let parts = parts(name).ok_or_else(|| Rejection::NotAQuery("computed name".into()))?;
        match parts.last() {
            Some(qualifier) => scope.check_qualified(qualifier, "*"),
            None => Ok(()),
        }
    }

    fn exprs(
        &mut self,
        exprs: &[Expr],
        scope: &Scope<'_, 'a>,
        outputs: Outputs<'_>,
    ) -> Result<(), Rejection> {
        exprs
            .iter()
            .try_for_each(|expr| self.expr(expr, scope, outputs))
    }

    fn expr(
        &mut self,
        expr: &Expr,
        scope: &Scope<'_, 'a>,
        outputs: Outputs<'_>,
    ) -> Result<(), Rejection> {
        self.visit(expr, scope, outputs)
    }

    /// Checks every expression inside `node` in `scope`; subqueries met on the way are walked as
    /// queries with `scope` as their enclosing scope.
    fn visit<V: Visit>(
        &mut self,
        node: &V,
        scope: &Scope<'_, 'a>,
        _outputs: Outputs<'_>,
    ) -> Result<(), Rejection> {
        let mut check = ExprCheck {
            walker: self,
            scope,
            nested: 0,
            depth: 0,
        };
        match node.visit(&mut check) {
            ControlFlow::Break(rejection) => Err(rejection),
            ControlFlow::Continue(()) => Ok(()),
        }
    }
}

fn alias_or(alias: &Option<TableAlias>, default: String) -> String {
    alias.as_ref().map_or(default, |a| ident(&a.name))
}

/// The clauses of a query that belong to its body's scope.
struct Tail<'q> {
    order_by: Option<&'q OrderBy>,
    limit_clause: Option<&'q LimitClause>,
    fetch: Option<&'q Fetch>,
}

/// Checks the expressions of one clause: column references against the scope, wildcards, array
/// type depth, and expression depth; hands each subquery to the walker, then skips its inside.
struct ExprCheck<'w, 'a, 's, 'p> {
    walker: &'w mut Walker<'a>,
    scope: &'s Scope<'p, 'a>,
    /// Above zero while inside a subquery the walker has already checked.
    nested: usize,
    depth: usize,
}

impl<'a> ExprCheck<'_, 'a, '_, '_> {
    fn column(&self, expr: &Expr) -> Result<(), Rejection> {
        match expr {
            Expr::Identifier(id) => self.scope.check_unqualified(&ident(id)),
            Expr::CompoundIdentifier(ids) => {
                let parts: Vec<String> = ids.iter().map(ident).collect();
                match parts.as_slice() {
                    [] => Ok(()),
                    [column] => self.scope.check_unqualified(column),
                    [.., qualifier, column] => {
                        self.scope.check_qualified(qualifier, column)?;
                        // `a.b.c` may also be table `a`, column `b`, field `c`.
                        if parts.len() >= 3 {
                            let n = parts.len();
                            self.scope.check_qualified(&parts[n - 3], &parts[n - 2])?;
                        }
                        Ok(())
                    }
                }
            }
            Expr::Wildcard(_) => self.scope.check_star(),
            Expr::QualifiedWildcard(name, _) => self.walker.qualified_star(name, self.scope),
            Expr::Function(function) => {
                if let FunctionArguments::List(list) = &function.args {
                    for arg in &list.args {
                        let (FunctionArg::Named { arg, .. }
                        | FunctionArg::ExprNamed { arg, .. }
                        | FunctionArg::Unnamed(arg)) = arg;
                        match arg {
                            FunctionArgExpr::QualifiedWildcard(name) => {
                                self.walker.qualified_star(name, self.scope)?
                            }
                            // `count(*)` reads no column; other `f(*)` are not PostgreSQL.
                            FunctionArgExpr::Wildcard | FunctionArgExpr::Expr(_) => {}
                            FunctionArgExpr::WildcardWithOptions(_) => {
                                return Err(Rejection::NotAQuery("wildcard options".into()));
                            }
                        }
                    }
                }
                Ok(())
            }
            Expr::Cast { data_type, .. } => check_type_depth(data_type, self.walker.max_depth),
            _ => Ok(()),
        }
    }
}

impl Visitor for ExprCheck<'_, '_, '_, '_> {
    type Break = Rejection;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Rejection> {
        if self.nested == 0 {
            // The subquery's depth counts from where it sits in the expression.
            self.walker.depth += self.depth;
            let verdict = self.walker.query(query, Some(self.scope));
            self.walker.depth -= self.depth;
            to_flow(verdict)?;
        }
        self.nested += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<Rejection> {
        self.nested -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Rejection> {
        if self.nested > 0 {
            return ControlFlow::Continue(());
        }
        self.depth += 1;
        if self.walker.depth + self.depth > self.walker.max_depth {
            return ControlFlow::Break(Rejection::TooDeep);
        }
        to_flow(self.column(expr))
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<Rejection> {
        if self.nested == 0 {
            self.depth -= 1;
        }
        ControlFlow::Continue(())
    }
}
