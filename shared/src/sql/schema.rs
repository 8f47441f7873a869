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

impl TableView {
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
