//! `GET /v1/whoami`: the verified caller and what their role may read.

use quarry_shared::http::{Caller, Json, Problem};
use quarry_shared::policy::RowScope;
use serde::Serialize;
use utoipa::ToSchema;

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

/// Who the token says the caller is, and what the policy lets them read.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = WhoAmI),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role or region not admitted", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    let (row_scope, mut tables) = match caller.role() {
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
    Json(WhoAmI {
        sub: caller.principal.sub,
        role: caller.principal.role,
        region: caller.principal.region,
        exp: caller.principal.exp,
        row_scope,
        tables,
    })
}
