//! The readable schema as `GET /v1/schema` answers it: the wire type sql-exec writes and `ask`
//! reads to build the model's schema context.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The readable schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SchemaView {
    /// Tables the role may read, by schema then name.
    pub tables: Vec<TableView>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TableView {
    /// Schema, e.g. `public`.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// The table's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Readable columns, in table order.
    pub columns: Vec<ColumnView>,
    /// Primary key columns (only those readable).
    pub primary_key: Vec<String>,
    /// Foreign keys whose both ends the role may read.
    pub foreign_keys: Vec<ForeignKey>,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ColumnView {
    /// Name.
    pub name: String,
    /// SQL type, e.g. `numeric(10,2)`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The column's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// A few common values, for short text columns of tables without row-level security.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ForeignKey {
    /// Columns of this table.
    pub columns: Vec<String>,
    /// Referenced `schema.table`.
    pub references: String,
    /// Referenced columns.
    pub referenced_columns: Vec<String>,
}

impl SchemaView {
    /// The table a `schema.name` reference names, as [`ForeignKey::references`] does.
    pub fn table(&self, reference: &str) -> Option<&TableView> {
        self.tables.iter().find(|t| t.is(reference))
    }
}

impl TableView {
    /// `schema.name`, the form [`ForeignKey::references`] uses.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Whether `reference` (`schema.name`) names this table.
    pub fn is(&self, reference: &str) -> bool {
        reference
            .strip_prefix(self.schema.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            == Some(self.name.as_str())
    }

    /// Whether the table has a (readable) column `column`.
    pub fn has_column(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c.name == column)
    }
}

#[cfg(any(test, feature = "test-support"))]
impl TableView {
    /// A `public` table with `columns` as (name, type), nullable, without keys or comments: the
    /// fixture of the SQL helpers' unit tests (and, with `test-support`, of other crates').
    pub fn fixture(name: &str, columns: &[(&str, &str)]) -> Self {
        Self {
            schema: "public".into(),
            name: name.into(),
            comment: None,
            columns: columns
                .iter()
                .map(|(name, ty)| ColumnView {
                    name: (*name).into(),
                    ty: (*ty).into(),
                    nullable: true,
                    comment: None,
                    samples: Vec::new(),
                })
                .collect(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_a_table_only_by_its_whole_schema_and_name() {
        let invoice = TableView::fixture("invoice", &[]);
        let line = TableView::fixture("invoice_line", &[]);
        assert!(invoice.is("public.invoice"));
        assert!(!invoice.is("public.invoice_line"));
        assert!(!line.is("public.invoice"));
        assert!(!invoice.is("publi.cinvoice"));
        assert!(!invoice.is("invoice"));
        assert!(!invoice.is("flights.invoice"));
        assert_eq!(line.qualified_name(), "public.invoice_line");
        let schema = SchemaView {
            tables: vec![invoice, line],
        };
        assert_eq!(
            schema.table("public.invoice_line").map(|t| t.name.as_str()),
            Some("invoice_line")
        );
        assert!(schema.table("public.track").is_none());
    }
}
