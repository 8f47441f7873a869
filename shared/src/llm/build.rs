//! The provider chain a process uses, built once from [`LlmSettings`].

use std::sync::Arc;

use super::chain::FallbackChain;
use super::gemini::GeminiProvider;
use super::openai::OpenAiProvider;
use super::resilient::{ResiliencePolicy, Resilient};
use super::retry::RetryPolicy;
use super::LlmProvider;
use crate::config::llm::{LlmSettings, ProviderKind};

/// Why the chain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `LLM_PROVIDERS` names the local model, but this process was given none (the binary was
    /// built without it, or loading it failed earlier).
    #[error("LLM_PROVIDERS lists local, but no local model is available: {0}")]
    NoLocalModel(String),
    /// A provider's URL cannot be used.
    #[error("{0} cannot be used as a base URL")]
    BadUrl(&'static str),
}

/// The retry, timeout and breaker policy of `settings`.
pub fn policy(settings: &LlmSettings) -> ResiliencePolicy {
    ResiliencePolicy {
        attempt_timeout: settings.attempt_timeout,
        retry: RetryPolicy {
            max_retries: settings.max_retries,
            base_delay: settings.retry_base,
            max_delay: settings.retry_max,
        },
        breaker_failures: settings.breaker_failures,
        breaker_cooldown: settings.breaker_cooldown,
    }
}

/// The fallback chain of `settings.providers`, each member behind its own timeout, retries and
/// breaker. `local` is the in-process model, which the caller loads (it is heavy and optional);
/// `Err(reason)` says why there is none.
///
/// # Errors
/// [`BuildError`] when a listed provider cannot be built.
pub fn chain(
    settings: &LlmSettings,
    http: &reqwest::Client,
    local: Result<Arc<dyn LlmProvider>, String>,
) -> Result<FallbackChain, BuildError> {
    let policy = policy(settings);
    let mut local = Some(local);
    let mut members: Vec<Arc<dyn LlmProvider>> = Vec::with_capacity(settings.providers.len());
    for kind in &settings.providers {
        let provider: Arc<dyn LlmProvider> = match kind {
            ProviderKind::Gemini => {
                // Settings guarantee the key is there when gemini is listed.
                let Some(g) = &settings.gemini else { continue };
                Arc::new(GeminiProvider::new(
                    http.clone(),
                    g.base_url.clone(),
                    g.api_key.clone(),
                    &g.model,
                    &g.embed_model,
                    settings.attempt_timeout,
                ))
            }
            ProviderKind::OpenAi => {
                let Some(o) = &settings.openai else { continue };
                Arc::new(
                    OpenAiProvider::new(
                        http.clone(),
                        &o.base_url,
                        o.api_key.clone(),
                        &o.model,
                        settings.attempt_timeout,
                    )
                    .map_err(|_| BuildError::BadUrl("OPENAI_BASE_URL"))?,
                )
            }
            ProviderKind::Local => match local.take() {
                Some(Ok(provider)) => provider,
                Some(Err(reason)) => return Err(BuildError::NoLocalModel(reason)),
                None => continue,
            },
        };
        let mut member_policy = policy;
        if *kind == ProviderKind::Local {
            // Retrying an in-process model that timed out only lengthens its queue; its deadline
            // is its own (a cold schema prompt takes minutes on a small CPU).
            member_policy.retry.max_retries = 0;
            member_policy.attempt_timeout = settings.local.timeout;
        }
        members.push(Arc::new(Resilient::new(provider, member_policy)));
    }
    Ok(FallbackChain::new(members))
}
