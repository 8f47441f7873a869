//! The names a query's `FROM` items bind (aliases, or table names without one) and the tables
//! of the schema they stand for: what the mending helpers ([`super::requalify`]) and the join
//! check ([`super::join_check`]) need to know which table `c.` means.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{Statement, TableFactor, Visit, Visitor};

use super::relations::ident;
use super::schema::{SchemaView, TableView};

/// What a name in `FROM` stands for: a table of the schema, or something whose columns are not
/// known here (a derived table, a CTE, a function, or a name bound twice to different tables).
pub(super) type Binding<'s> = Option<&'s TableView>;

/// Collects the names the query's `FROM` items bind: aliases, or table names where there is no
/// alias. One flat map for the whole statement — scopes are ignored, so a name bound to two
/// different things anywhere is treated as unknown.
pub(super) struct Bindings<'s> {
    schema: &'s SchemaView,
    /// What each name stands for.
    pub(super) names: BTreeMap<String, Binding<'s>>,
}

impl<'s> Bindings<'s> {
    /// The names `statement` binds, resolved against `schema`.
    pub(super) fn of(statement: &Statement, schema: &'s SchemaView) -> Self {
        let mut bindings = Self {
            schema,
            names: BTreeMap::new(),
        };
        let _ = statement.visit(&mut bindings);
        bindings
    }

    fn bind(&mut self, name: String, table: Binding<'s>) {
        self.names
            .entry(name)
            .and_modify(|existing| {
                let same = matches!((*existing, table), (Some(a), Some(b)) if std::ptr::eq(a, b));
                if !same {
                    *existing = None;
                }
            })
            .or_insert(table);
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
