//! Document access control: which roles and regions may see a document's chunks. Pure, no I/O.
//!
//! An ACL comes from the upload (multipart fields, object metadata `quarry-roles` /
//! `quarry-regions`), else from the path-prefix rule with the longest prefix of the document's
//! source URI (`quarry_meta.document_acl_rules`), else it is [`Acl::admin_only`]: a document nobody
//! described is visible to administrators only, never to everyone.

use std::fmt;

/// Object metadata key (and multipart field `roles`) listing the roles that may see a document.
pub const ROLES_METADATA_KEY: &str = "quarry-roles";
/// Object metadata key (and multipart field `regions`) listing the regions; `*` means any.
pub const REGIONS_METADATA_KEY: &str = "quarry-regions";

/// Why an ACL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A role or region name is not a policy name (`[a-z][a-z0-9_-]{0,62}`, or `*` for regions).
    #[error("'{name}' is not a valid {what} name (lowercase letters, digits, '_' and '-', starting with a letter)")]
    InvalidName {
        /// "role" or "region".
        what: &'static str,
        /// The offending name, truncated.
        name: String,
    },
    /// An ACL must name at least one role and one region.
    #[error("an ACL needs at least one {what}")]
    Empty {
        /// "role" or "region".
        what: &'static str,
    },
}

/// Roles and regions that may see a document. Names are sorted and unique, so two ACLs that
/// grant the same are equal (which decides whether a re-upload changes anything).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    roles: Vec<String>,
    regions: Vec<String>,
}

impl Acl {
    /// An ACL from role and region names; `*` among the regions means any region.
    ///
    /// # Errors
    /// [`AclError`] for an empty list or a name that is not a policy name.
    pub fn new<R, G>(roles: R, regions: G) -> Result<Self, AclError>
    where
        R: IntoIterator,
        R::Item: AsRef<str>,
        G: IntoIterator,
        G::Item: AsRef<str>,
    {
        let roles = normalise(roles, "role", false)?;
        let mut regions = normalise(regions, "region", true)?;
        if regions.iter().any(|r| r == "*") {
            regions = vec!["*".to_owned()];
        }
        Ok(Self { roles, regions })
    }

    /// Parses comma-separated lists, as metadata values and CLI flags carry them
    /// (`"admin, analyst"`, `"emea,apac"`, `"*"`).
    ///
    /// # Errors
    /// As [`Acl::new`].
    pub fn parse(roles: &str, regions: &str) -> Result<Self, AclError> {
        Self::new(split_list(roles), split_list(regions))
    }

    /// The default for a document nobody described: role `admin`, any region.
    pub fn admin_only() -> Self {
        Self {
            roles: vec!["admin".to_owned()],
            regions: vec!["*".to_owned()],
        }
    }

    /// The roles, sorted.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The regions, sorted; `["*"]` for any region.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// Whether any region may see it.
    pub fn any_region(&self) -> bool {
        self.regions.iter().any(|r| r == "*")
    }

    /// Whether a caller with `role` acting from `region` may see the document. The same rule as
    /// the database's `quarry_meta.acl_permits`.
    pub fn permits(&self, role: &str, region: &str) -> bool {
        self.roles.iter().any(|r| r == role)
            && (self.any_region() || self.regions.iter().any(|r| r == region))
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "roles={} regions={}",
            self.roles.join(","),
            self.regions.join(",")
        )
    }
}

/// A path-prefix rule: documents whose source URI starts with `prefix` get `acl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// A source URI prefix, e.g. `gs://uploads/finance/`.
    pub prefix: String,
    /// What documents under it get.
    pub acl: Acl,
}

/// The ACL a document gets: `explicit` (from its upload) when given, else the rule with the
/// longest prefix of `source`, else [`Acl::admin_only`].
pub fn resolve(source: &str, explicit: Option<Acl>, rules: &[AclRule]) -> Acl {
    if let Some(acl) = explicit {
        return acl;
    }
    rules
        .iter()
        .filter(|rule| source.starts_with(&rule.prefix))
        .max_by_key(|rule| rule.prefix.len())
        .map_or_else(Acl::admin_only, |rule| rule.acl.clone())
}

/// Whether `name` is a policy name: the same pattern as the `roles.name` check constraint.
pub fn is_policy_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn normalise<I>(names: I, what: &'static str, star: bool) -> Result<Vec<String>, AclError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref().trim();
        if !(is_policy_name(name) || (star && name == "*")) {
            return Err(AclError::InvalidName {
                what,
                name: name.chars().take(64).collect(),
            });
        }
        out.push(name.to_owned());
    }
    if out.is_empty() {
        return Err(AclError::Empty { what });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_deduplicated_and_star_absorbs_regions() {
        let acl = Acl::parse(" catalog,admin, admin ", "emea,*").unwrap();
        assert_eq!(acl.roles(), ["admin", "catalog"]);
        assert_eq!(acl.regions(), ["*"]);
        assert_eq!(acl, Acl::parse("admin,catalog", "*").unwrap());
    }

    #[test]
    fn bad_names_and_empty_lists_are_refused() {
        assert!(matches!(
            Acl::parse("Admin", "*"),
            Err(AclError::InvalidName { what: "role", .. })
        ));
        assert!(matches!(
            Acl::parse("admin", "emea;drop"),
            Err(AclError::InvalidName { what: "region", .. })
        ));
        assert!(matches!(
            Acl::parse("*", "emea"),
            Err(AclError::InvalidName { .. })
        ));
        assert_eq!(
            Acl::parse(" , ", "*"),
            Err(AclError::Empty { what: "role" })
        );
        assert_eq!(
            Acl::parse("admin", ""),
            Err(AclError::Empty { what: "region" })
        );
    }

    #[test]
    fn permits_needs_role_and_region() {
        let acl = Acl::parse("analyst", "emea").unwrap();
        assert!(acl.permits("analyst", "emea"));
        assert!(!acl.permits("analyst", "apac"));
        assert!(!acl.permits("catalog", "emea"));
        let any = Acl::parse("analyst", "*").unwrap();
        assert!(any.permits("analyst", "apac"));
    }

    #[test]
    fn resolve_prefers_explicit_then_longest_prefix_then_admin_only() {
        let rules = vec![
            AclRule {
                prefix: "gs://uploads/".into(),
                acl: Acl::parse("admin,analyst", "*").unwrap(),
            },
            AclRule {
                prefix: "gs://uploads/public/".into(),
                acl: Acl::parse("admin,analyst,catalog,finance", "*").unwrap(),
            },
        ];
        let explicit = Acl::parse("finance", "emea").unwrap();
        assert_eq!(
            resolve("gs://uploads/public/a.pdf", Some(explicit.clone()), &rules),
            explicit
        );
        assert_eq!(
            resolve("gs://uploads/public/a.pdf", None, &rules).roles(),
            ["admin", "analyst", "catalog", "finance"]
        );
        assert_eq!(
            resolve("gs://uploads/x.pdf", None, &rules).roles(),
            ["admin", "analyst"]
        );
        assert_eq!(resolve("file:///x.pdf", None, &rules), Acl::admin_only());
    }
}
