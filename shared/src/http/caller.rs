//! [`Caller`]: the extractor that governs a request before its handler runs.
//!
//! In order: a per-IP limit on failed authentication (checked before any token work, so floods
//! of garbage tokens are cheap to refuse), token verification, admission by the policy (known role, region allowed for the role,
//! endpoint not fenced off for the region), a per-`sub` rate limit from the role's policy, and an
//! audit row for the decision, whichever it is. A handler that takes a `Caller` cannot run for an
//! unauthenticated or unadmitted request, and every function verifies the token itself: no
//! function trusts another's word.

#[cfg(feature = "server")]
use std::net::{IpAddr, SocketAddr};
#[cfg(feature = "server")]
use std::sync::Arc;

#[cfg(feature = "server")]
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
#[cfg(feature = "server")]
use axum::http::request::Parts;

use super::ApiError;
#[cfg(feature = "server")]
use crate::audit::AuditRecord;
use crate::auth::AuthError;
#[cfg(feature = "server")]
use crate::auth::{self, Principal};
#[cfg(feature = "server")]
use crate::governance::Governance;
use crate::policy::Denial;
#[cfg(feature = "server")]
use crate::policy::{Policy, RolePolicy};
#[cfg(feature = "server")]
use crate::ratelimit::Limit;
#[cfg(feature = "server")]
use crate::state::AppState;

/// Which function a route belongs to, set on each function's routes by the server (under
/// `quarry dev` one process serves them all, and the audit log must still say which decided).
#[derive(Debug, Clone, Copy)]
pub struct FunctionName(pub &'static str);

/// An authenticated, admitted caller.
#[cfg(feature = "server")]
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who, from the verified token.
    pub principal: Principal,
    /// The policy in force for this request.
    pub policy: Arc<Policy>,
    /// The function handling the request.
    pub function: &'static str,
    /// The request id.
    pub request_id: Option<String>,
}

#[cfg(feature = "server")]
impl Caller {
    /// The caller's role policy (present: admission checked it).
    pub fn role(&self) -> Option<&RolePolicy> {
        self.policy.roles.get(&self.principal.role)
    }

    /// An audit record pre-filled with who, where and which function.
    pub fn audit_record(
        &self,
        action: &str,
        resource: String,
        allowed: bool,
        reason: String,
    ) -> AuditRecord {
        AuditRecord {
            request_id: self.request_id.clone(),
            sub: Some(self.principal.sub.clone()),
            role: Some(self.principal.role.clone()),
            region: Some(self.principal.region.clone()),
            function: self.function.to_owned(),
            action: action.to_owned(),
            resource,
            allowed,
            reason,
            ..AuditRecord::default()
        }
    }
}

/// Records `record`, turning a failure into the fail-closed 503.
///
/// # Errors
/// [`ApiError::Unavailable`] when the row cannot be written.
#[cfg(feature = "server")]
pub async fn record(governance: &Governance, record: AuditRecord) -> Result<(), ApiError> {
    governance.audit.write(record).await.map_err(|err| {
        tracing::error!(
            error = format!("{:#}", anyhow::Error::from(err)),
            "audit write failed; refusing the request"
        );
        ApiError::Unavailable {
            kind: "audit-unavailable",
            detail: "The audit log cannot be written right now, so the request was not processed."
                .to_owned(),
            retry_after: Some(std::time::Duration::from_secs(2)),
        }
    })
}

/// The 401/503 for a token that did not verify.
pub fn token_error(err: &AuthError) -> ApiError {
    if err.is_unavailable() {
        ApiError::Unavailable {
            kind: err.slug(),
            detail: "Token keys cannot be fetched right now.".to_owned(),
            retry_after: Some(std::time::Duration::from_secs(5)),
        }
    } else {
        ApiError::Unauthorized {
            kind: err.slug(),
            detail: err.to_string(),
        }
    }
}

/// The 403 for a policy denial.
pub fn denial_error(denial: &Denial) -> ApiError {
    ApiError::Forbidden {
        kind: denial.slug(),
        detail: denial.to_string(),
    }
}

#[cfg(feature = "server")]
fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(feature = "server")]
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let governance = state.governance.as_ref();
        let function = parts
            .extensions
            .get::<FunctionName>()
            .map_or("unknown", |f| f.0);
        let endpoint = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let request_id = super::request_id::current();
        let anonymous = |reason: String| AuditRecord {
            request_id: request_id.clone(),
            function: function.to_owned(),
            action: "request".to_owned(),
            resource: format!("endpoint:{endpoint}"),
            allowed: false,
            reason,
            ..AuditRecord::default()
        };

        // Unauthenticated attempts are limited per client IP. Only failures spend the IP's
        // budget (many users may share one address behind a NAT); once it is spent, the IP is
        // refused before any token work, so a flood of forged tokens stays cheap.
        let ip_key =
            client_ip(parts, state.settings.trust_forwarded_for).map(|ip| format!("ip:{ip}"));
        let anon_limit = Limit {
            per_minute: state.settings.anon_rate_per_minute,
            burst: state.settings.anon_rate_per_minute.clamp(1, 60),
        };
        if let Some(key) = &ip_key {
            if let Err(wait) = governance.limiter.peek(key, anon_limit).await {
                record(governance, anonymous("rate-limited-ip".to_owned())).await?;
                return Err(ApiError::TooManyRequests { retry_after: wait });
            }
        }

        let principal = match auth::bearer_token_from_headers(&parts.headers) {
            Ok(token) => governance.verifier.verify(token).await,
            Err(err) => Err(err),
        };
        let principal = match principal {
            Ok(p) => p,
            Err(err) => {
                if let Some(key) = &ip_key {
                    // The refusal below is already decided; the spent token only matters next time.
                    let _ = governance.limiter.check(key, anon_limit).await;
                }
                record(governance, anonymous(err.slug().to_owned())).await?;
                return Err(token_error(&err));
            }
        };

        let policy = governance.policy.current().await.map_err(ApiError::from)?;
        let caller = Self {
            principal,
            policy,
            function,
            request_id,
        };
        let resource = format!("endpoint:{endpoint}");
        let admitted = caller
            .policy
            .admit(&caller.principal.role, &caller.principal.region, &endpoint)
            .map(|r| Limit {
                per_minute: r.rate_per_minute,
                burst: r.burst,
            });
        let limit = match admitted {
            Ok(limit) => limit,
            Err(denial) => {
                record(
                    governance,
                    caller.audit_record("request", resource, false, denial.reason()),
                )
                .await?;
                return Err(denial_error(&denial));
            }
        };
        if let Err(wait) = governance
            .limiter
            .check(&format!("sub:{}", caller.principal.sub), limit)
            .await
        {
            record(
                governance,
                caller.audit_record("request", resource, false, "rate-limited".to_owned()),
            )
            .await?;
            return Err(ApiError::TooManyRequests { retry_after: wait });
        }
        record(
            governance,
            caller.audit_record("request", resource, true, "granted".to_owned()),
        )
        .await?;
        Ok(caller)
    }
}
