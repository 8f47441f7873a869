//! [`Operator`]: who may run operational endpoints (the index advisor, document ingest): a user
//! whose role is `admin`, or an allowed service account (Cloud Scheduler, Eventarc) presenting its
//! OIDC identity token (`SCHEDULER_OIDC_AUDIENCE`, `SCHEDULER_OIDC_SERVICE_ACCOUNTS`). Handlers
//! decide what a service account may do beyond that (the scheduler may run the advisor, never apply
//! its advice).

use crate::audit::AuditRecord;
use crate::auth::{bearer_token_from_headers, unverified_issuer};
use crate::http::caller::{record, token_error, FunctionName};
use crate::http::{ApiError, Caller};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The role every operational endpoint admits.
pub const ADMIN_ROLE: &str = "admin";

/// An admitted operator.
pub enum Operator {
    /// A user whose role is `admin`.
    Admin(Caller),
    /// An allowed service account, by email, and the function it called.
    Scheduler(String, &'static str),
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
            Self::Scheduler(email, function) => {
                scheduler_record(email, function, action, resource, allowed, reason)
            }
        }
    }
}

fn scheduler_record(
    email: &str,
    function: &str,
    action: &str,
    resource: String,
    allowed: bool,
    reason: String,
) -> AuditRecord {
    AuditRecord {
        request_id: crate::http::request_id::current(),
        sub: Some(email.to_owned()),
        role: Some("service-account".to_owned()),
        function: function.to_owned(),
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
        let function = parts
            .extensions
            .get::<FunctionName>()
            .map_or("unknown", |f| f.0);
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
                                function,
                                "request",
                                resource,
                                true,
                                "granted".to_owned(),
                            ),
                        )
                        .await?;
                        Ok(Self::Scheduler(email, function))
                    }
                    Ok(email) => {
                        record(
                            governance,
                            scheduler_record(
                                &email,
                                function,
                                "request",
                                resource,
                                false,
                                "service-account-not-allowed".to_owned(),
                            ),
                        )
                        .await?;
                        Err(ApiError::Forbidden {
                            kind: "service-account-not-allowed",
                            detail: format!("this service account may not call {function}"),
                        })
                    }
                    Err(err) => {
                        let mut row = scheduler_record(
                            "",
                            function,
                            "request",
                            resource,
                            false,
                            err.slug().to_owned(),
                        );
                        row.sub = None;
                        record(governance, row).await?;
                        Err(token_error(&err))
                    }
                };
            }
        }
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.principal.role != ADMIN_ROLE {
            let resource = format!("endpoint:{}", parts.uri.path());
            record(
                governance,
                caller.audit_record("request", resource, false, "admin-only".to_owned()),
            )
            .await?;
            return Err(ApiError::Forbidden {
                kind: "admin-only",
                detail: format!("{function} is for the admin role only"),
            });
        }
        Ok(Self::Admin(caller))
    }
}
