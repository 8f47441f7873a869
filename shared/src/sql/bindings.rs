//! The names a query's `FROM` items bind (aliases, or table names without one) and the tables
//! of the schema they stand for: what the mending helpers ([`super::requalify`]) and the join
//! check ([`super::join_check`]) need to know which table `c.` means.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Query, SelectItem, SetExpr, Statement, TableAliasColumnDef, TableFactor, Visit, VisitMut,
    Visitor, VisitorMut,
};

use super::relations::ident;
use super::schema::{SchemaView, TableView};

/// What a name in `FROM` stands for: a table of the schema, or something whose columns are not
/// known here (a derived table, a CTE, a function, or a name bound twice to different tables).
pub(super) type Binding<'s> = Option<&'s TableView>;

/// Collects the names the query's `FROM` items bind: aliases, or table names where there is no
/// alias. `names` is one flat map for the whole statement, so a name bound to two different
/// things anywhere is unknown there; `scopes` keeps each query's own names apart, for a mend
/// that must not move a reference into another query's tables.
pub(super) struct Bindings<'s> {
    schema: &'s SchemaView,
    /// What each name stands for.
    pub(super) names: BTreeMap<String, Binding<'s>>,
    /// The names each query (a [`Query`]: the statement, a CTE, a subquery) binds in its own
    /// `FROM`, numbered as [`QueryNumbers`] numbers them.
    pub(super) scopes: Vec<Scope<'s>>,
    queries: QueryNumbers,
}

/// The names one query binds in its own `FROM`, and the query it is nested in.
pub(super) struct Scope<'s> {
    /// What each name stands for in this query.
    pub(super) names: BTreeMap<String, Binding<'s>>,
    /// The enclosing query, whose names this one also sees.
    pub(super) parent: Option<usize>,
}

impl<'s> Bindings<'s> {
    /// What `name` stands for where query `scope` uses it: the binding of the innermost query,
    /// from `scope` outwards, that binds it, with that query's number; `None` when no query
    /// that `scope` sees binds it.
    pub(super) fn resolve(&self, name: &str, scope: Option<usize>) -> Option<(usize, Binding<'s>)> {
        let mut at = scope;
        while let Some(i) = at {
            let s = self.scopes.get(i)?;
            if let Some(binding) = s.names.get(name) {
                return Some((i, *binding));
            }
            at = s.parent;
        }
        None
    }

    /// The names query `scope` binds in its own `FROM` (none for `None` or an unknown number).
    pub(super) fn local(
        &self,
        scope: Option<usize>,
    ) -> impl Iterator<Item = (&String, &Binding<'s>)> {
        scope
            .and_then(|i| self.scopes.get(i))
            .into_iter()
            .flat_map(|s| s.names.iter())
    }
}

impl<'s> Bindings<'s> {
    /// The names `statement` binds, resolved against `schema`.
    pub(super) fn of(statement: &Statement, schema: &'s SchemaView) -> Self {
        let mut bindings = Self {
            schema,
            names: BTreeMap::new(),
            scopes: Vec::new(),
            queries: QueryNumbers::default(),
        };
        let _ = statement.visit(&mut bindings);
        bindings
    }

    fn bind(&mut self, name: String, table: Binding<'s>) {
        if let Some(scope) = self.queries.current().and_then(|i| self.scopes.get_mut(i)) {
            bind_in(&mut scope.names, name.clone(), table);
        }
        bind_in(&mut self.names, name, table);
    }

    fn table(&self, parts: &[String]) -> Binding<'s> {
        let (schema, name) = match parts {
            [name] => ("public", name.as_str()),
            [schema, name] => (schema.as_str(), name.as_str()),
            _ => return None,
        };
        self.schema
            .tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }
}

/// Binds `name` in `names`; a name bound again to something else becomes unknown.
fn bind_in<'s>(names: &mut BTreeMap<String, Binding<'s>>, name: String, table: Binding<'s>) {
    names
        .entry(name)
        .and_modify(|existing| {
            let same = matches!((*existing, table), (Some(a), Some(b)) if std::ptr::eq(a, b));
            if !same {
                *existing = None;
            }
        })
        .or_insert(table);
}

/// The name a plain-table `FROM` item binds: its alias, or the table's own name without schema;
/// `None` for other items. One rule for [`Bindings`] and for the helpers that find the item a
/// name stands for again ([`super::bridge`]).
pub(super) fn bound_name(factor: &TableFactor) -> Option<String> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return None;
    };
    match alias {
        Some(alias) => Some(ident(&alias.name)),
        None => name.0.last()?.as_ident().map(ident),
    }
}

impl Visitor for Bindings<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        let parent = self.queries.current();
        self.queries.enter();
        self.scopes.push(Scope {
            names: BTreeMap::new(),
            parent,
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.queries.leave();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let parts: Option<Vec<String>> = name
                    .0
                    .iter()
                    .map(|part| part.as_ident().map(ident))
                    .collect();
                let Some(parts) = parts else {
                    return ControlFlow::Continue(());
                };
                let table = if args.is_some() {
                    None
                } else {
                    self.table(&parts)
                };
                let Some(bound) = bound_name(factor) else {
                    return ControlFlow::Continue(());
                };
                // A column alias list renames columns: their names are then not the table's.
                let table = table.filter(|_| alias.as_ref().is_none_or(|a| a.columns.is_empty()));
                self.bind(bound, table);
            }
            TableFactor::Derived {
                alias: Some(alias), ..
            }
            | TableFactor::Function {
                alias: Some(alias), ..
            }
            | TableFactor::UNNEST {
                alias: Some(alias), ..
            }
            | TableFactor::NestedJoin {
                alias: Some(alias), ..
            } => self.bind(ident(&alias.name), None),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The number of the query a walk is in: queries are numbered in the order a walk enters them
/// (the statement 0, then its CTEs and subqueries as they come), the numbering of
/// [`Bindings::scopes`], so a walk can find a query's names again.
#[derive(Default)]
pub(super) struct QueryNumbers {
    count: usize,
    open: Vec<usize>,
}

impl QueryNumbers {
    /// Entering a query (from `pre_visit_query`): its number.
    pub(super) fn enter(&mut self) -> usize {
        let number = self.count;
        self.open.push(number);
        self.count += 1;
        number
    }

    /// Leaving the query last entered (from `post_visit_query`).
    pub(super) fn leave(&mut self) {
        self.open.pop();
    }

    /// The innermost query being walked.
    pub(super) fn current(&self) -> Option<usize> {
        self.open.last().copied()
    }
}

/// Walks a statement's expressions with the number of the innermost query holding each.
struct Scoped<F> {
    queries: QueryNumbers,
    visit: F,
}

impl<F: FnMut(Option<usize>, &Expr) -> ControlFlow<()>> Visitor for Scoped<F> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.queries.enter();
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.queries.leave();
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        (self.visit)(self.queries.current(), expr)
    }
}

impl<F: FnMut(Option<usize>, &mut Expr) -> ControlFlow<()>> VisitorMut for Scoped<F> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.queries.enter();
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.queries.leave();
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        (self.visit)(self.queries.current(), expr)
    }
}

/// Calls `visit` with each expression of `statement` and the number of its innermost query.
pub(super) fn visit_scoped(
    statement: &Statement,
    visit: impl FnMut(Option<usize>, &Expr) -> ControlFlow<()>,
) {
    let mut walk = Scoped {
        queries: QueryNumbers::default(),
        visit,
    };
    let _ = Visit::visit(statement, &mut walk);
}

/// Calls `visit` with each expression of `statement`, mutably, and the number of its innermost
/// query.
pub(super) fn visit_scoped_mut(
    statement: &mut Statement,
    visit: impl FnMut(Option<usize>, &mut Expr) -> ControlFlow<()>,
) {
    let mut walk = Scoped {
        queries: QueryNumbers::default(),
        visit,
    };
    let _ = VisitMut::visit(statement, &mut walk);
}

/// The output columns of each CTE of `statement`, by name.
pub(super) fn cte_columns(statement: &Statement) -> BTreeMap<String, Vec<String>> {
    struct Ctes(BTreeMap<String, Vec<String>>);
    impl Visitor for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
                let columns = named_or(&cte.alias.columns, || output_columns(&cte.query));
                self.0.insert(ident(&cte.alias.name), columns);
            }
            ControlFlow::Continue(())
        }
    }
    let mut ctes = Ctes(BTreeMap::new());
    let _ = Visit::visit(statement, &mut ctes);
    ctes.0
}

/// The columns an alias list (`AS s(a, b)`) names, or else `otherwise`.
pub(super) fn named_or(
    columns: &[TableAliasColumnDef],
    otherwise: impl FnOnce() -> Vec<String>,
) -> Vec<String> {
    if columns.is_empty() {
        otherwise()
    } else {
        columns.iter().map(|c| ident(&c.name)).collect()
    }
}

/// The names of the columns `query` returns that are plain names: a column (`employee_id`,
/// `e.employee_id`) or an alias. Others (expressions without alias, `*`) are left out.
pub(super) fn output_columns(query: &Query) -> Vec<String> {
    let mut body = &*query.body;
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(inner) => body = &inner.body,
            _ => break,
        }
    }
    let SetExpr::Select(select) = body else {
        return Vec::new();
    };
    select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(name)) => Some(ident(name)),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(ident),
            SelectItem::ExprWithAlias { alias, .. } => Some(ident(alias)),
            _ => None,
        })
        .collect()
}
