//! `GET /v1/whoami`: the verified caller and what their role may read.

use quarry_shared::http::{Caller, Json, Problem};

use crate::decision::{self, WhoAmI};

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
    Json(decision::whoami(&caller.policy, caller.principal))
}
