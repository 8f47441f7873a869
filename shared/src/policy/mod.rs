//! Governance policy: who may read what, from which region, through which endpoint.
//!
//! The policy is data (tables in `quarry_meta`, see migration 0004) loaded by `store::PolicyStore`
//! (feature `server`) and cached briefly, or given as a JSON [`document`] (the WASM component);
//! the decisions here are pure functions of that data and the caller, so they are unit-tested
//! without a database and cost well under a microsecond.
//!
//! Two layers use it: every function admits a caller with [`Policy::admit`] (known role, region
//! allowed for the role, endpoint not fenced off for the region), and [`Policy::authorize`] answers
//! "may this caller read this table / column / document / endpoint" for `/v1/authorize` and for the
//! SQL guard. Row-level region fencing is not decided here: PostgreSQL enforces it (row-level
//! security keyed on the caller's role and region), so a query that forgets to filter still sees
//! only the caller's rows.

pub mod document;
#[cfg(feature = "server")]
pub mod store;

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Which rows of region-bearing tables a role sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowScope {
    /// Every region's rows.
    All,
    /// Only rows of the caller's own region.
    OwnRegion,
}

/// A table (or every table of a schema) a role may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableGrant {
    /// Schema, e.g. `public`.
    pub schema: String,
    /// Table, or `*` for every table of the schema.
    pub table: String,
    /// `None`: every column; otherwise only these.
    pub columns: Option<BTreeSet<String>>,
}

/// Everything the policy says about one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicy {
    /// The role's name as it appears in tokens.
    pub name: String,
    /// Rows it sees.
    pub row_scope: RowScope,
    /// Token regions it may act from; `None` means any.
    pub regions: Option<BTreeSet<String>>,
    /// Tables it may read.
    pub tables: Vec<TableGrant>,
    /// Sustained requests per minute per `sub`.
    pub rate_per_minute: u32,
    /// Burst size per `sub`.
    pub burst: u32,
}

/// The whole policy, as loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Roles by name.
    pub roles: HashMap<String, RolePolicy>,
    /// Endpoint → regions it serves; endpoints not listed serve every region.
    pub endpoint_regions: HashMap<String, BTreeSet<String>>,
}

/// What a caller asks for access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `table:schema.table`
    Table {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
    },
    /// `column:schema.table.column`
    Column {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// `doc:<id>`
    Document(String),
    /// `endpoint:/v1/...`
    Endpoint(String),
}

/// Why a resource string could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource must be table:<schema>.<table>, column:<schema>.<table>.<column>, doc:<id> or endpoint:/<path>")]
pub struct ResourceParseError;

impl std::str::FromStr for Resource {
    type Err = ResourceParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').ok_or(ResourceParseError)?;
        let ident = |p: &str| {
            !p.is_empty()
                && p.len() <= 63
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        match kind {
            "table" => match rest.split('.').collect::<Vec<_>>()[..] {
                [schema, table] if ident(schema) && ident(table) => Ok(Self::Table {
                    schema: schema.to_ascii_lowercase(),
                    table: table.to_ascii_lowercase(),
                }),
                _ => Err(ResourceParseError),
            },
            "column" => match rest.split('.').collect::<Vec<_>>()[..] {
                [schema, table, column] if ident(schema) && ident(table) && ident(column) => {
                    Ok(Self::Column {
                        schema: schema.to_ascii_lowercase(),
                        table: table.to_ascii_lowercase(),
                        column: column.to_ascii_lowercase(),
                    })
                }
                _ => Err(ResourceParseError),
            },
            "doc"
                if !rest.is_empty() && rest.len() <= 256 && !rest.chars().any(char::is_control) =>
            {
                Ok(Self::Document(rest.to_owned()))
            }
            "endpoint"
                if rest.starts_with('/')
                    && rest.len() <= 256
                    && !rest.chars().any(char::is_control) =>
            {
                Ok(Self::Endpoint(rest.to_owned()))
            }
            _ => Err(ResourceParseError),
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Table { schema, table } => write!(f, "table:{schema}.{table}"),
            Self::Column {
                schema,
                table,
                column,
            } => write!(f, "column:{schema}.{table}.{column}"),
            Self::Document(id) => write!(f, "doc:{id}"),
            Self::Endpoint(path) => write!(f, "endpoint:{path}"),
        }
    }
}

/// Why a caller is refused. The `reason` strings are stable: they go to clients and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The token's role is not in the policy.
    #[error("role '{0}' is not known")]
    UnknownRole(String),
    /// The role may not act from the token's region.
    #[error("role '{role}' may not act from region '{region}'")]
    RegionNotAllowed {
        /// The role.
        role: String,
        /// The region.
        region: String,
    },
    /// The endpoint is fenced off for the token's region.
    #[error("endpoint {endpoint} does not serve region '{region}'")]
    EndpointFenced {
        /// The endpoint.
        endpoint: String,
        /// The region.
        region: String,
    },
    /// The table is not granted to the role.
    #[error("table {0} is not granted to this role")]
    TableNotGranted(String),
    /// The column is not granted to the role.
    #[error("column {0} is not granted to this role")]
    ColumnNotGranted(String),
    /// Documents carry their own ACLs, which the document store decides.
    #[error("document {0} is not visible to this role")]
    DocumentNotVisible(String),
}

impl Denial {
    /// Stable reason code, e.g. `table:public.invoice`, `region-not-allowed`.
    pub fn reason(&self) -> String {
        match self {
            Self::UnknownRole(_) => "role-unknown".to_owned(),
            Self::RegionNotAllowed { .. } => "region-not-allowed".to_owned(),
            Self::EndpointFenced { .. } => "endpoint-region-fenced".to_owned(),
            Self::TableNotGranted(t) => format!("table:{t}"),
            Self::ColumnNotGranted(c) => format!("column:{c}"),
            Self::DocumentNotVisible(d) => format!("doc:{d}"),
        }
    }

    /// Stable problem slug for the 403 response.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::UnknownRole(_) => "role-unknown",
            Self::RegionNotAllowed { .. } => "region-not-allowed",
            Self::EndpointFenced { .. } => "endpoint-region-fenced",
            Self::TableNotGranted(_) => "table-not-granted",
            Self::ColumnNotGranted(_) => "column-not-granted",
            Self::DocumentNotVisible(_) => "document-not-visible",
        }
    }
}

impl Policy {
    /// Admits a caller to an endpoint: the role must exist, the role must accept the token's
    /// region, and the endpoint must serve that region.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn admit(&self, role: &str, region: &str, endpoint: &str) -> Result<&RolePolicy, Denial> {
        let policy = self
            .roles
            .get(role)
            .ok_or_else(|| Denial::UnknownRole(role.to_owned()))?;
        if let Some(regions) = &policy.regions {
            if !regions.contains(region) {
                return Err(Denial::RegionNotAllowed {
                    role: role.to_owned(),
                    region: region.to_owned(),
                });
            }
        }
        if let Some(served) = self.endpoint_regions.get(endpoint) {
            if !served.contains(region) {
                return Err(Denial::EndpointFenced {
                    endpoint: endpoint.to_owned(),
                    region: region.to_owned(),
                });
            }
        }
        Ok(policy)
    }

    /// May a caller with `role` from `region` read `resource`? Documents are refused here: their
    /// ACLs live with the documents, and the document store answers for them.
    ///
    /// # Errors
    /// The rule that refuses it.
    pub fn authorize(&self, role: &str, region: &str, resource: &Resource) -> Result<(), Denial> {
        match resource {
            Resource::Endpoint(endpoint) => self.admit(role, region, endpoint).map(|_| ()),
            Resource::Table { schema, table } => {
                let policy = self.admit(role, region, "")?;
                if policy.grant_for(schema, table).is_some() {
                    Ok(())
                } else {
                    Err(Denial::TableNotGranted(format!("{schema}.{table}")))
                }
            }
            Resource::Column {
                schema,
                table,
                column,
            } => {
                let policy = self.admit(role, region, "")?;
                let grant = policy
                    .grant_for(schema, table)
                    .ok_or_else(|| Denial::TableNotGranted(format!("{schema}.{table}")))?;
                match &grant.columns {
                    Some(columns) if !columns.contains(column) => Err(Denial::ColumnNotGranted(
                        format!("{schema}.{table}.{column}"),
                    )),
                    _ => Ok(()),
                }
            }
            Resource::Document(id) => {
                self.admit(role, region, "")?;
                Err(Denial::DocumentNotVisible(id.clone()))
            }
        }
    }
}

impl RolePolicy {
    /// The grant covering `schema.table`, if any: an exact grant wins over a schema wildcard.
    pub fn grant_for(&self, schema: &str, table: &str) -> Option<&TableGrant> {
        self.tables
            .iter()
            .find(|g| g.schema == schema && g.table == table)
            .or_else(|| {
                self.tables
                    .iter()
                    .find(|g| g.schema == schema && g.table == "*")
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn grant(schema: &str, table: &str, columns: Option<&[&str]>) -> TableGrant {
        TableGrant {
            schema: schema.into(),
            table: table.into(),
            columns: columns.map(set),
        }
    }

    /// The demo policy, as the demo loader seeds it.
    pub(crate) fn demo() -> Policy {
        let role =
            |name: &str, row_scope, regions: Option<&[&str]>, tables: Vec<TableGrant>| RolePolicy {
                name: name.into(),
                row_scope,
                regions: regions.map(set),
                tables,
                rate_per_minute: 120,
                burst: 30,
            };
        let regions: &[&str] = &["americas", "apac", "emea"];
        let mut roles = HashMap::new();
        for r in [
            role(
                "admin",
                RowScope::All,
                None,
                vec![grant("public", "*", None), grant("flights", "*", None)],
            ),
            role(
                "analyst",
                RowScope::OwnRegion,
                Some(regions),
                [
                    "customer",
                    "invoice",
                    "invoice_line",
                    "track",
                    "album",
                    "artist",
                    "genre",
                    "media_type",
                ]
                .iter()
                .map(|t| grant("public", t, None))
                .collect(),
            ),
            role(
                "finance",
                RowScope::OwnRegion,
                Some(regions),
                vec![
                    grant("public", "invoice", None),
                    grant("public", "invoice_line", None),
                    grant(
                        "public",
                        "customer",
                        Some(&[
                            "customer_id",
                            "first_name",
                            "last_name",
                            "company",
                            "city",
                            "state",
                            "country",
                            "postal_code",
                            "support_rep_id",
                            "region",
                        ]),
                    ),
                ],
            ),
            role(
                "catalog",
                RowScope::All,
                None,
                [
                    "track",
                    "album",
                    "artist",
                    "genre",
                    "media_type",
                    "playlist",
                    "playlist_track",
                ]
                .iter()
                .map(|t| grant("public", t, None))
                .collect(),
            ),
        ] {
            roles.insert(r.name.clone(), r);
        }
        Policy {
            roles,
            endpoint_regions: HashMap::new(),
        }
    }

    fn res(s: &str) -> Resource {
        s.parse().unwrap()
    }

    #[test]
    fn demo_table_grants() {
        let p = demo();
        assert_eq!(
            p.authorize("catalog", "emea", &res("table:public.invoice")),
            Err(Denial::TableNotGranted("public.invoice".into()))
        );
        assert!(p
            .authorize("catalog", "emea", &res("table:public.track"))
            .is_ok());
        assert!(p
            .authorize("admin", "apac", &res("table:flights.flights"))
            .is_ok());
        assert!(p
            .authorize("admin", "apac", &res("table:public.employee"))
            .is_ok());
        assert!(p
            .authorize("analyst", "emea", &res("table:public.employee"))
            .is_err());
        assert!(p
            .authorize("analyst", "emea", &res("table:flights.flights"))
            .is_err());
    }

    #[test]
    fn demo_column_grants() {
        let p = demo();
        let denied = p
            .authorize("finance", "emea", &res("column:public.customer.email"))
            .unwrap_err();
        assert_eq!(denied.reason(), "column:public.customer.email");
        assert!(p
            .authorize("finance", "emea", &res("column:public.customer.country"))
            .is_ok());
        assert!(p
            .authorize("analyst", "emea", &res("column:public.customer.email"))
            .is_ok());
        assert_eq!(
            p.authorize("finance", "emea", &res("column:public.track.name"))
                .unwrap_err(),
            Denial::TableNotGranted("public.track".into())
        );
    }

    #[test]
    fn unknown_roles_and_regions_are_refused() {
        let mut p = demo();
        assert_eq!(
            p.admit("intern", "emea", "/v1/sql").unwrap_err().reason(),
            "role-unknown"
        );
        assert_eq!(
            p.admit("analyst", "mars", "/v1/sql").unwrap_err().reason(),
            "region-not-allowed"
        );
        assert!(
            p.admit("admin", "mars", "/v1/sql").is_ok(),
            "admin accepts any region"
        );
        p.endpoint_regions.insert("/v1/ask".into(), set(&["emea"]));
        assert_eq!(
            p.admit("analyst", "apac", "/v1/ask").unwrap_err().reason(),
            "endpoint-region-fenced"
        );
        assert!(p.admit("analyst", "emea", "/v1/ask").is_ok());
        assert!(
            p.admit("analyst", "apac", "/v1/sql").is_ok(),
            "unlisted endpoints serve every region"
        );
        assert!(p
            .authorize("analyst", "apac", &res("endpoint:/v1/ask"))
            .is_err());
    }

    #[test]
    fn resources_parse_strictly() {
        assert_eq!(
            res("table:public.Invoice"),
            Resource::Table {
                schema: "public".into(),
                table: "invoice".into()
            }
        );
        assert_eq!(res("doc:42").to_string(), "doc:42");
        for bad in [
            "table:invoice",
            "table:a.b.c",
            "column:a.b",
            "doc:",
            "endpoint:v1",
            "nope",
            "table:pub lic.x",
            "table:a;b.c",
        ] {
            assert!(bad.parse::<Resource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_grants_win_over_wildcards() {
        let mut p = demo();
        let admin = p.roles.get_mut("admin").unwrap();
        admin
            .tables
            .push(grant("public", "customer", Some(&["customer_id"])));
        assert!(p
            .authorize("admin", "emea", &res("column:public.customer.email"))
            .is_err());
        assert!(p
            .authorize("admin", "emea", &res("column:public.invoice.total"))
            .is_ok());
    }
}
