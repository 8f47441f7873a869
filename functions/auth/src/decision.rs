//! The decisions of `/v1/authorize` and `/v1/whoami`, and their JSON: pure functions of the policy
//! and the verified caller. The axum handlers (which add the audit row) and the WASM component
//! (which has no audit log) both answer through these, so they cannot drift apart.

use quarry_shared::auth::Principal;
use quarry_shared::http::ApiError;
use quarry_shared::policy::{Policy, Resource, ResourceParseError, RowScope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// What the caller wants to do; `read` is the only action Quarry grants.
    #[schema(example = "read")]
    pub action: String,
    /// `table:<schema>.<table>`, `column:<schema>.<table>.<column>`, `doc:<id>` or `endpoint:/<path>`.
    #[schema(example = "table:public.invoice")]
    pub resource: String,
}

/// The decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeResponse {
    /// Whether the caller may.
    pub allow: bool,
    /// Stable reason: `granted`, or what refuses it (`table:public.invoice`, `column:public.customer.email`,
    /// `region-not-allowed`, `action-not-supported`, ...).
    pub reason: String,
    /// The caller's role.
    pub role: String,
    /// The caller's region.
    pub region: String,
}

/// A decision with the parsed resource, for the audit row.
#[derive(Debug)]
pub struct Decision {
    /// The resource asked about, normalised (`table:public.invoice`).
    pub resource: Resource,
    /// The action as it may be recorded: at most 32 characters of what the caller sent.
    pub action: String,
    /// The answer.
    pub response: AuthorizeResponse,
}

/// May `principal` do `request.action` on `request.resource` under `policy`? Only `read` is ever
/// granted; anything else is refused with `action-not-supported`.
///
/// # Errors
/// 400 `invalid-resource` when the resource string is not one of the documented forms.
pub fn authorize(
    policy: &Policy,
    principal: &Principal,
    request: &AuthorizeRequest,
) -> Result<Decision, ApiError> {
    let resource: Resource = request.resource.parse().map_err(|e: ResourceParseError| {
        ApiError::bad_request("invalid-resource", e.to_string())
    })?;
    let (allow, reason) = if request.action == "read" {
        match policy.authorize(&principal.role, &principal.region, &resource) {
            Ok(()) => (true, "granted".to_owned()),
            Err(denial) => (false, denial.reason()),
        }
    } else {
        (false, "action-not-supported".to_owned())
    };
    Ok(Decision {
        resource,
        action: request.action.chars().take(32).collect(),
        response: AuthorizeResponse {
            allow,
            reason,
            role: principal.role.clone(),
            region: principal.region.clone(),
        },
    })
}

/// A table the caller may read.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readable {
    /// `schema.table`, or `schema.*` for every table of the schema.
    pub table: String,
    /// Readable columns; absent means every column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

/// The caller, as the token and the policy describe them.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// Token subject.
    pub sub: String,
    /// Role.
    pub role: String,
    /// Region.
    pub region: String,
    /// Token expiry, seconds since the epoch.
    pub exp: i64,
    /// `all` or `own_region`: which rows of region-bearing tables the caller sees.
    #[schema(value_type = String)]
    pub row_scope: RowScope,
    /// What the role may read.
    pub tables: Vec<Readable>,
}

/// Who `principal` is and what `policy` lets their role read, tables sorted by name.
pub fn whoami(policy: &Policy, principal: Principal) -> WhoAmI {
    let (row_scope, mut tables) = match policy.roles.get(&principal.role) {
        Some(role) => (
            role.row_scope,
            role.tables
                .iter()
                .map(|g| Readable {
                    table: format!("{}.{}", g.schema, g.table),
                    columns: g.columns.as_ref().map(|c| c.iter().cloned().collect()),
                })
                .collect::<Vec<_>>(),
        ),
        None => (RowScope::OwnRegion, Vec::new()),
    };
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    WhoAmI {
        sub: principal.sub,
        role: principal.role,
        region: principal.region,
        exp: principal.exp,
        row_scope,
        tables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_shared::policy::document;

    fn policy() -> Policy {
        document::parse(
            r#"{"version": 1, "roles": {
                "finance": {"row_scope": "own_region", "regions": ["emea"], "tables": [
                    {"schema": "public", "table": "invoice"},
                    {"schema": "public", "table": "customer", "columns": ["country", "customer_id"]}
                ]}
            }}"#,
        )
        .unwrap()
    }

    fn principal() -> Principal {
        Principal {
            sub: "fin".into(),
            role: "finance".into(),
            region: "emea".into(),
            exp: 1,
            iss: None,
        }
    }

    fn ask(action: &str, resource: &str) -> Result<Decision, ApiError> {
        authorize(
            &policy(),
            &principal(),
            &AuthorizeRequest {
                action: action.into(),
                resource: resource.into(),
            },
        )
    }

    #[test]
    fn decisions_and_reasons() {
        let d = ask("read", "table:public.Invoice").unwrap();
        assert!(d.response.allow);
        assert_eq!(d.response.reason, "granted");
        assert_eq!(d.resource.to_string(), "table:public.invoice");
        let d = ask("read", "column:public.customer.email").unwrap();
        assert!(!d.response.allow);
        assert_eq!(d.response.reason, "column:public.customer.email");
        let d = ask(&"write".repeat(10), "table:public.invoice").unwrap();
        assert_eq!(d.response.reason, "action-not-supported");
        assert_eq!(d.action.chars().count(), 32);
        let err = ask("read", "table:invoice").unwrap_err();
        assert_eq!(err.slug(), "invalid-resource");
    }

    #[test]
    fn whoami_lists_grants_sorted() {
        let me = whoami(&policy(), principal());
        let tables: Vec<&str> = me.tables.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(tables, ["public.customer", "public.invoice"]);
        assert_eq!(
            me.tables[0].columns.as_deref(),
            Some(&["country".to_owned(), "customer_id".to_owned()][..])
        );
        assert_eq!(me.row_scope, RowScope::OwnRegion);
    }
}
