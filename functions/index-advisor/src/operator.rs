//! [`Operator`]: who may run the advisor: an `admin` user, or a service account (Cloud Scheduler)
//! presenting its OIDC identity token. The scheduler may run the advisor, never apply its advice.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use quarry_shared::audit::AuditRecord;
use quarry_shared::auth::{bearer_token_from_headers, unverified_issuer};
use quarry_shared::http::caller::{record, token_error};
use quarry_shared::http::{ApiError, Caller};
use quarry_shared::state::AppState;

/// An admitted operator of the advisor.
pub enum Operator {
    /// A user whose role is `admin`.
    Admin(Caller),
    /// An allowed service account, by email.
    Scheduler(String),
}

impl Operator {
    /// An audit record for this operator.
    pub fn audit_record(
        &self,
        action: &str,
        resource: String,
        allowed: bool,
        reason: String,
    ) -> AuditRecord {
        match self {
            Self::Admin(caller) => caller.audit_record(action, resource, allowed, reason),
            Self::Scheduler(email) => scheduler_record(email, action, resource, allowed, reason),
        }
    }
}

fn scheduler_record(
    email: &str,
    action: &str,
    resource: String,
    allowed: bool,
    reason: String,
) -> AuditRecord {
    AuditRecord {
        request_id: quarry_shared::http::request_id::current(),
        sub: Some(email.to_owned()),
        role: Some("service-account".to_owned()),
        function: "index-advisor".to_owned(),
        action: action.to_owned(),
        resource,
        allowed,
        reason,
        ..AuditRecord::default()
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let governance = &state.governance;
        if let Some(accounts) = &governance.service_accounts {
            let token = bearer_token_from_headers(&parts.headers).ok();
            // The issuer only routes the token to the right verifier; that verifier checks it.
            if let Some(token) =
                token.filter(|t| unverified_issuer(t).as_deref() == Some(accounts.issuer.as_str()))
            {
                let resource = format!("endpoint:{}", parts.uri.path());
                return match accounts.verifier.verify_service_account(token).await {
                    Ok(email) if accounts.allowed.contains(&email) => {
                        record(
                            governance,
                            scheduler_record(
                                &email,
                                "request",
                                resource,
                                true,
                                "granted".to_owned(),
                            ),
                        )
                        .await?;
                        Ok(Self::Scheduler(email))
                    }
                    Ok(email) => {
                        record(
                            governance,
                            scheduler_record(
                                &email,
                                "request",
                                resource,
                                false,
                                "service-account-not-allowed".to_owned(),
                            ),
                        )
                        .await?;
                        Err(ApiError::Forbidden {
                            kind: "service-account-not-allowed",
                            detail: "this service account may not call the index advisor"
                                .to_owned(),
                        })
                    }
                    Err(err) => {
                        let mut row =
                            scheduler_record("", "request", resource, false, err.slug().to_owned());
                        row.sub = None;
                        record(governance, row).await?;
                        Err(token_error(&err))
                    }
                };
            }
        }
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.principal.role != crate::ADMIN_ROLE {
            let resource = format!("endpoint:{}", parts.uri.path());
            record(
                governance,
                caller.audit_record("request", resource, false, "admin-only".to_owned()),
            )
            .await?;
            return Err(ApiError::Forbidden {
                kind: "admin-only",
                detail: "index advice is for the admin role only".to_owned(),
            });
        }
        Ok(Self::Admin(caller))
    }
}
