//! An ordered fallback over providers (e.g. Gemini, then the local model): each request goes to
//! the first provider that answers. When none does, the caller gets one
//! [`LlmError::Unavailable`] with the shortest delay any of them asked for; with every breaker
//! open that costs no network call at all, which is the fast 503 the API promises.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{ChatRequest, Completion, LlmError, LlmProvider, TokenStream};

/// Providers tried in order. Built from [`super::resilient::Resilient`] members, so each has its
/// own retries and breaker.
pub struct FallbackChain {
    members: Vec<Arc<dyn LlmProvider>>,
    name: String,
}

impl FallbackChain {
    /// A chain over `members` (first = preferred). An empty chain answers every call with
    /// [`LlmError::Unavailable`].
    pub fn new(members: Vec<Arc<dyn LlmProvider>>) -> Self {
        let name = members
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(">");
        Self { members, name }
    }

    /// The members, first = preferred.
    pub fn members(&self) -> &[Arc<dyn LlmProvider>] {
        &self.members
    }

    async fn first_ok<'a, T, F>(&'a self, mut call: F) -> Result<T, LlmError>
    where
        F: FnMut(&'a Arc<dyn LlmProvider>) -> BoxFuture<'a, Result<T, LlmError>>,
    {
        let mut errors = Vec::with_capacity(self.members.len());
        for member in &self.members {
            match call(member).await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    tracing::info!(provider = member.name(), error = %error, "language model failed");
                    errors.push(error);
                }
            }
        }
        Err(combine(errors))
    }
}

/// The error of a chain whose every member failed: a failure of this request (refused, unusable
/// answer) is reported as such, since retrying elsewhere later will not help; otherwise the
/// providers are unavailable, and the shortest delay any asked for is the hint.
fn combine(errors: Vec<LlmError>) -> LlmError {
    if let Some(specific) = errors
        .iter()
        .find(|e| matches!(e, LlmError::Refused { .. } | LlmError::InvalidAnswer { .. }))
    {
        return specific.clone();
    }
    LlmError::Unavailable {
        retry_after: errors.iter().filter_map(LlmError::retry_after).min(),
    }
}

impl LlmProvider for FallbackChain {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.first_ok(move |member| member.complete(request)))
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<TokenStream, LlmError>> {
        Box::pin(self.first_ok(move |member| member.stream(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn open(secs: u64) -> LlmError {
        LlmError::CircuitOpen {
            provider: "p".into(),
            retry_after: Duration::from_secs(secs),
        }
    }

    #[test]
    fn unavailable_carries_the_shortest_delay() {
        let combined = combine(vec![
            open(30),
            LlmError::Timeout {
                provider: "q".into(),
            },
            open(7),
        ]);
        assert_eq!(
            combined,
            LlmError::Unavailable {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(combine(vec![]), LlmError::Unavailable { retry_after: None });
    }

    #[test]
    fn a_refused_request_is_reported_as_such() {
        let refused = LlmError::Refused {
            provider: "q".into(),
            status: 400,
            message: "context too long".into(),
        };
        assert_eq!(combine(vec![open(3), refused.clone()]), refused);
    }
}
