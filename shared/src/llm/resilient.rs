//! One provider made safe to call: a deadline per attempt, retries with backoff on transient
//! failures, and a circuit breaker — all exported as metrics.
//!
//! Metrics (label `provider`):
//! - `llm_calls_total{outcome}`: attempts by outcome (`ok` or an [`LlmError::label`]);
//! - `llm_call_duration_seconds`: time per attempt (for streams, until the answer starts);
//! - `llm_retries_total`;
//! - `llm_breaker_state`: 0 closed, 1 half-open, 2 open;
//! - `llm_breaker_transitions_total{from,to}`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::breaker::{CircuitBreaker, Permit, State, Transition};
use super::retry::RetryPolicy;
use super::{ChatRequest, Completion, LlmError, LlmProvider, TokenStream};

/// The policy of [`Resilient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResiliencePolicy {
    /// Deadline of one attempt (for a stream: until the provider accepts it, and then between
    /// two pieces).
    pub attempt_timeout: Duration,
    /// When to retry.
    pub retry: RetryPolicy,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_cooldown: Duration,
}

impl Default for ResiliencePolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

/// A provider behind a timeout, retries and a circuit breaker. Itself an [`LlmProvider`].
pub struct Resilient {
    inner: Arc<dyn LlmProvider>,
    policy: ResiliencePolicy,
    breaker: CircuitBreaker,
}

impl Resilient {
    /// Wraps `inner`. The breaker starts closed.
    pub fn new(inner: Arc<dyn LlmProvider>, policy: ResiliencePolicy) -> Self {
        let breaker = CircuitBreaker::new(policy.breaker_failures, policy.breaker_cooldown);
        metrics::gauge!("llm_breaker_state", "provider" => inner.name().to_owned())
            .set(State::Closed.gauge());
        Self {
            inner,
            policy,
            breaker,
        }
    }

    /// The breaker's state, for health reports.
    pub fn breaker_state(&self) -> State {
        self.breaker.state()
    }

    /// Runs `call` under the policy: each attempt asks the breaker, is bounded by the attempt
    /// timeout, and reports its outcome; transient failures are retried after a backoff.
    async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let provider = self.inner.name();
        let mut retry = 0;
        loop {
            let (permit, transition) = match self.breaker.try_acquire(Instant::now()) {
                Ok(admitted) => admitted,
                Err(rejected) => {
                    metrics::counter!("llm_calls_total", "provider" => provider.to_owned(), "outcome" => "circuit_open")
                        .increment(1);
                    return Err(LlmError::CircuitOpen {
                        provider: provider.to_owned(),
                        retry_after: rejected.retry_after,
                    });
                }
            };
            self.record(transition);
            let mut guard = PermitGuard {
                owner: self,
                permit: Some(permit),
            };
            let started = Instant::now();
            let outcome = match tokio::time::timeout(self.policy.attempt_timeout, call()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(LlmError::Timeout {
                    provider: provider.to_owned(),
                }),
            };
            metrics::histogram!("llm_call_duration_seconds", "provider" => provider.to_owned())
                .record(started.elapsed().as_secs_f64());
            let label = outcome.as_ref().map_or_else(LlmError::label, |_| "ok");
            metrics::counter!("llm_calls_total", "provider" => provider.to_owned(), "outcome" => label)
                .increment(1);
            let error = match outcome {
                Ok(value) => {
                    guard.success();
                    return Ok(value);
                }
                Err(error) => error,
            };
            guard.failure(&error);
            if !error.is_transient() {
                return Err(error);
            }
            retry += 1;
            let Some(delay) = self
                .policy
                .retry
                .delay(retry, error.retry_after(), fastrand::f64())
            else {
                return Err(error);
            };
            metrics::counter!("llm_retries_total", "provider" => provider.to_owned()).increment(1);
            tracing::debug!(provider, retry, delay_ms = delay.as_millis() as u64, error = %error, "retrying the language model");
            tokio::time::sleep(delay).await;
        }
    }

    fn record(&self, transition: Option<Transition>) {
        let Some(Transition { from, to }) = transition else {
            return;
        };
        let provider = self.inner.name().to_owned();
        metrics::gauge!("llm_breaker_state", "provider" => provider.clone()).set(to.gauge());
        metrics::counter!("llm_breaker_transitions_total", "provider" => provider.clone(), "from" => from.label(), "to" => to.label())
            .increment(1);
        if to == State::Open {
            tracing::warn!(provider, "language model circuit opened");
        } else {
            tracing::info!(
                provider,
                from = from.label(),
                to = to.label(),
                "language model circuit changed"
            );
        }
    }
}

/// Reports a permit's outcome exactly once; dropped unreported (the request was cancelled, e.g.
/// the client went away) it counts as neutral, so a half-open probe never stays in flight forever.
struct PermitGuard<'a> {
    owner: &'a Resilient,
    permit: Option<Permit>,
}

impl PermitGuard<'_> {
    fn success(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.owner.record(self.owner.breaker.on_success(permit));
        }
    }

    fn failure(&mut self, error: &LlmError) {
        if let Some(permit) = self.permit.take() {
            let now = Instant::now();
            let transition = if error.is_provider_failure() {
                self.owner.breaker.on_failure(permit, now)
            } else {
                self.owner.breaker.on_neutral(permit, now)
            };
            self.owner.record(transition);
        }
    }
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let transition = self.owner.breaker.on_neutral(permit, Instant::now());
            self.owner.record(transition);
        }
    }
}

impl LlmProvider for Resilient {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.run(|| self.inner.complete(request)))
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<TokenStream, LlmError>> {
        Box::pin(self.run(|| self.inner.stream(request)))
    }
}
