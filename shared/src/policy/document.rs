//! The policy as one JSON document: what `quarry policy export` prints from the policy tables, and
//! what the WASM `auth` component is given as configuration (`QUARRY_POLICY_JSON`) instead of a
//! database.
//!
//! The shape mirrors the tables of migration 0004, so nothing is lost either way:
//!
//! ```json
//! {
//!   "version": 1,
//!   "roles": {
//!     "finance": {
//!       "row_scope": "own_region",
//!       "regions": ["americas", "apac", "emea"],
//!       "tables": [
//!         {"schema": "public", "table": "invoice"},
//!         {"schema": "public", "table": "customer", "columns": ["customer_id", "country"]}
//!       ],
//!       "rate_per_minute": 120,
//!       "burst": 30
//!     },
//!     "admin": {"row_scope": "all", "regions": ["*"], "tables": [{"schema": "public", "table": "*"}]}
//!   },
//!   "endpoint_regions": {"/v1/ask": ["emea"]}
//! }
//! ```
//!
//! `regions` is required and `["*"]` means any region, as in `quarry_meta.role_regions`: a role
//! whose regions were forgotten must admit nobody rather than everybody. `columns` absent (or
//! `null`) grants every column, `"table": "*"` every table of the schema. Unknown fields are
//! refused, so a misspelt key cannot silently widen or narrow a grant.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Policy, RolePolicy, RowScope, TableGrant};

/// The document version this build reads and writes.
pub const VERSION: u32 = 1;

/// The region entry that accepts any region.
const ANY_REGION: &str = "*";

/// The policy as serialised. Maps are ordered, so the same policy always renders the same text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Always [`VERSION`].
    pub version: u32,
    /// Roles by the name tokens carry.
    pub roles: BTreeMap<String, RoleDocument>,
    /// Endpoint → the regions it serves; endpoints not listed serve every region.
    #[serde(default)]
    pub endpoint_regions: BTreeMap<String, BTreeSet<String>>,
}

/// One role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDocument {
    /// Which rows of region-bearing tables the role sees (`all` or `own_region`).
    pub row_scope: RowScope,
    /// Token regions the role may act from; `["*"]` for any.
    pub regions: BTreeSet<String>,
    /// Tables (and columns) the role may read.
    #[serde(default)]
    pub tables: Vec<TableDocument>,
    /// Sustained requests per minute per `sub` (default 120, as in the table).
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// Burst per `sub` (default 30).
    #[serde(default = "default_burst")]
    pub burst: u32,
}

/// One table grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDocument {
    /// Schema.
    pub schema: String,
    /// Table, or `*` for every table of the schema.
    pub table: String,
    /// Only these columns; absent for every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<BTreeSet<String>>,
}

fn default_rate() -> u32 {
    120
}

fn default_burst() -> u32 {
    30
}

/// Why a policy document was refused. Messages name the place, never echo a whole document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON, or not of the documented shape.
    #[error("the policy document is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// A version this build does not read.
    #[error("policy document version {found} is not supported (expected {VERSION})")]
    Version {
        /// The version found.
        found: u32,
    },
    /// A value that the policy tables would refuse.
    #[error("policy document: {0}")]
    Invalid(String),
}

impl From<&Policy> for PolicyDocument {
    fn from(policy: &Policy) -> Self {
        let roles = policy
            .roles
            .iter()
            .map(|(name, role)| {
                let mut tables: Vec<TableDocument> = role
                    .tables
                    .iter()
                    .map(|g| TableDocument {
                        schema: g.schema.clone(),
                        table: g.table.clone(),
                        columns: g.columns.clone(),
                    })
                    .collect();
                tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
                let regions = role
                    .regions
                    .clone()
                    .unwrap_or_else(|| BTreeSet::from([ANY_REGION.to_owned()]));
                (
                    name.clone(),
                    RoleDocument {
                        row_scope: role.row_scope,
                        regions,
                        tables,
                        rate_per_minute: role.rate_per_minute,
                        burst: role.burst,
                    },
                )
            })
            .collect();
        let endpoint_regions = policy
            .endpoint_regions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self {
            version: VERSION,
            roles,
            endpoint_regions,
        }
    }
}

impl TryFrom<PolicyDocument> for Policy {
    type Error = DocumentError;

    fn try_from(doc: PolicyDocument) -> Result<Self, Self::Error> {
        if doc.version != VERSION {
            return Err(DocumentError::Version { found: doc.version });
        }
        let invalid = |m: String| Err(DocumentError::Invalid(m));
        let mut policy = Policy::default();
        for (name, role) in doc.roles {
            if name.trim().is_empty() {
                return invalid("a role has an empty name".to_owned());
            }
            if role.rate_per_minute == 0 || role.burst == 0 {
                return invalid(format!(
                    "role '{name}': rate_per_minute and burst must be at least 1"
                ));
            }
            if role.regions.iter().any(|r| r.trim().is_empty()) {
                return invalid(format!("role '{name}': a region is empty"));
            }
            let mut tables = Vec::with_capacity(role.tables.len());
            for t in role.tables {
                if t.schema.trim().is_empty() || t.table.trim().is_empty() {
                    return invalid(format!("role '{name}': a table grant has an empty name"));
                }
                if t.columns.as_ref().is_some_and(BTreeSet::is_empty) {
                    return invalid(format!(
                        "role '{name}': {}.{} grants an empty column list (omit `columns` for all)",
                        t.schema, t.table
                    ));
                }
                tables.push(TableGrant {
                    schema: t.schema,
                    table: t.table,
                    columns: t.columns,
                });
            }
            // '*' anywhere in the list accepts every region, as the table loader reads it.
            let regions = if role.regions.contains(ANY_REGION) {
                None
            } else {
                Some(role.regions)
            };
            policy.roles.insert(
                name.clone(),
                RolePolicy {
                    name,
                    row_scope: role.row_scope,
                    regions,
                    tables,
                    rate_per_minute: role.rate_per_minute,
                    burst: role.burst,
                },
            );
        }
        for (endpoint, regions) in doc.endpoint_regions {
            if !endpoint.starts_with('/') {
                return invalid(format!("endpoint '{endpoint}' must start with '/'"));
            }
            policy.endpoint_regions.insert(endpoint, regions);
        }
        Ok(policy)
    }
}

/// Parses and validates a policy document.
///
/// # Errors
/// [`DocumentError`] naming what is wrong.
pub fn parse(json: &str) -> Result<Policy, DocumentError> {
    let doc: PolicyDocument = serde_json::from_str(json)?;
    Policy::try_from(doc)
}

/// Renders `policy` as a pretty-printed document (stable order, so diffs of exports are meaningful).
pub fn render(policy: &Policy) -> String {
    // Serialising maps with string keys, strings and numbers cannot fail.
    serde_json::to_string_pretty(&PolicyDocument::from(policy)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::demo;
    use crate::policy::Resource;

    #[test]
    fn the_demo_policy_round_trips() {
        let mut policy = demo();
        policy
            .endpoint_regions
            .insert("/v1/ask".into(), BTreeSet::from(["emea".to_owned()]));
        let text = render(&policy);
        let back = parse(&text).unwrap();
        assert_eq!(back, sorted(policy));
        assert_eq!(render(&back), text, "rendering is stable");
        assert!(
            text.contains("\"regions\": [\n        \"*\"\n      ]"),
            "{text}"
        );
    }

    /// The demo policy with table grants in document order.
    fn sorted(mut policy: Policy) -> Policy {
        for role in policy.roles.values_mut() {
            role.tables
                .sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
        }
        policy
    }

    #[test]
    fn decisions_survive_the_round_trip() {
        let policy = parse(&render(&demo())).unwrap();
        let res = |s: &str| s.parse::<Resource>().unwrap();
        assert!(policy
            .authorize("finance", "emea", &res("column:public.customer.country"))
            .is_ok());
        assert_eq!(
            policy
                .authorize("finance", "emea", &res("column:public.customer.email"))
                .unwrap_err()
                .reason(),
            "column:public.customer.email"
        );
        assert!(policy.admit("admin", "mars", "/v1/sql").is_ok());
        assert!(policy.admit("analyst", "mars", "/v1/sql").is_err());
    }

    #[test]
    fn bad_documents_are_refused() {
        for (json, needle) in [
            (r#"{"version": 2, "roles": {}}"#, "version 2"),
            (
                r#"{"version": 1, "roles": {"a": {"row_scope": "all", "tables": []}}}"#,
                "regions",
            ),
            (
                r#"{"version": 1, "roles": {"a": {"row_scope": "all", "regions": ["*"], "region": "x"}}}"#,
                "unknown field",
            ),
            (
                r#"{"version": 1, "roles": {"a": {"row_scope": "some", "regions": ["*"]}}}"#,
                "unknown variant",
            ),
            (
                r#"{"version": 1, "roles": {"a": {"row_scope": "all", "regions": ["*"], "burst": 0}}}"#,
                "at least 1",
            ),
            (
                r#"{"version": 1, "roles": {"a": {"row_scope": "all", "regions": ["*"], "tables": [{"schema": "public", "table": "t", "columns": []}]}}}"#,
                "empty column list",
            ),
            (
                r#"{"version": 1, "roles": {}, "endpoint_regions": {"v1/ask": ["emea"]}}"#,
                "must start with '/'",
            ),
            ("not json", "not valid"),
        ] {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn an_empty_region_list_admits_nobody() {
        let policy = parse(
            r#"{"version": 1, "roles": {"locked": {"row_scope": "all", "regions": [], "tables": [{"schema": "public", "table": "*"}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            policy
                .admit("locked", "emea", "/v1/whoami")
                .unwrap_err()
                .reason(),
            "region-not-allowed"
        );
    }
}
