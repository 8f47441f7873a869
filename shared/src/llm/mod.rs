//! Large language models behind one trait, [`LlmProvider`], and what makes calling them safe.
//!
//! - [`openai`] and [`gemini`]: the two HTTP wire formats (any OpenAI-compatible chat-completions
//!   server: Ollama, vLLM, llama.cpp's server; Google's Gemini `generateContent`).
//! - [`retry`] and [`breaker`]: pure policy — when to try again (exponential backoff with full
//!   jitter, honouring `Retry-After`) and when to stop trying (a circuit breaker per provider).
//! - [`resilient`]: one provider wrapped in a per-attempt timeout, retries and its breaker, with
//!   metrics; [`chain`]: an ordered fallback over several, which answers a fast
//!   [`LlmError::Unavailable`] with a retry delay when every provider's breaker is open.
//! - [`sse`]: the `text/event-stream` decoder both streaming wire formats use.
//! - `local` (cargo feature `local-llm`): a GGUF model in-process through llama.cpp, with
//!   grammar-constrained decoding ([`gbnf`]) and prompt-prefix caching.
//!
//! A request is provider-neutral ([`ChatRequest`]): a system prompt, turns, limits, and an
//! optional JSON Schema the answer must follow (OpenAI's `response_format`, Gemini's
//! `responseJsonSchema`). Errors ([`LlmError`]) say whether trying again could help, which is all
//! the retry and fallback logic needs to know, and never carry a key or a URL.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub mod breaker;
#[cfg(feature = "server")]
pub mod build;
#[cfg(feature = "server")]
pub mod chain;
pub mod gbnf;
#[cfg(feature = "server")]
pub mod gemini;
#[cfg(feature = "local-llm")]
pub mod local;
#[cfg(feature = "server")]
pub mod openai;
#[cfg(feature = "server")]
pub mod resilient;
pub mod retry;
pub mod sse;
#[cfg(feature = "server")]
mod wire;

/// Who said a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person asking (or the orchestrator speaking for them).
    User,
    /// The model.
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl Message {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// A model turn (an earlier answer, or a few-shot example's answer).
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A JSON Schema the answer must follow (structured output).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchema {
    /// A short name (`[a-zA-Z0-9_-]`, OpenAI requires one), e.g. `route`.
    pub name: String,
    /// The schema itself (an object schema; keep to the subset every provider accepts: `type`,
    /// `properties`, `required`, `enum`, `items`, `description`, `additionalProperties: false`).
    pub schema: serde_json::Value,
}

/// A provider-neutral chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The system prompt (instructions, schema context); empty for none.
    pub system: String,
    /// The conversation so far, oldest first; the last turn is the user's.
    pub messages: Vec<Message>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature (0 = greedy, as text-to-SQL wants).
    pub temperature: f32,
    /// When set, the answer is JSON following this schema.
    pub json_schema: Option<JsonSchema>,
    /// A GBNF grammar the local model's output must follow (e.g. SQL over the linked schema's
    /// names, [`gbnf::sql`]). Remote providers cannot take one and ignore it; on the local model
    /// it replaces the grammar derived from `json_schema`.
    pub grammar: Option<String>,
}

impl ChatRequest {
    /// A request with one user turn, greedy decoding and a 512-token answer limit.
    pub fn new(system: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            system: system.into(),
            messages: vec![Message::user(user)],
            max_tokens: 512,
            temperature: 0.0,
            json_schema: None,
            grammar: None,
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer.
    Stop,
    /// `max_tokens` was reached: the answer is cut off.
    Length,
    /// Anything else the provider reported (a safety stop, a tool call).
    Other,
}

/// Token counts of one call, as the provider reported them (0 when it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated text (JSON when the request had a schema).
    pub text: String,
    /// Why generation stopped.
    pub finish: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// The provider that answered (after fallback, not necessarily the first one asked).
    pub provider: String,
}

/// Pieces of an answer as they are generated; the stream ends after the last one, or with an
/// error if the connection breaks mid-answer.
pub type TokenStream = BoxStream<'static, Result<String, LlmError>>;

/// A language model.
///
/// Implementations do one attempt per call: timeouts, retries, the circuit breaker and fallback
/// are layered on top ([`resilient::Resilient`], [`chain::FallbackChain`]), so every provider
/// gets the same policy.
pub trait LlmProvider: Send + Sync {
    /// A short name for logs and metrics (`gemini`, `openai`, `local`).
    fn name(&self) -> &str;

    /// The whole answer to `request`.
    ///
    /// # Errors
    /// As the provider fails; see [`LlmError`].
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, LlmError>>;

    /// The answer as a stream of pieces. Resolves once the provider has accepted the request
    /// (status 200 and headers received), so a refused request fails here, where it can still be
    /// retried, rather than mid-stream.
    ///
    /// # Errors
    /// As the provider fails before the first piece; later failures arrive in the stream.
    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<TokenStream, LlmError>>;
}

/// Why a provider call failed. Messages never carry an API key, a URL or a prompt.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum LlmError {
    /// No answer within the per-attempt deadline.
    #[error("{provider}: no answer within the deadline")]
    Timeout {
        /// The provider.
        provider: String,
    },
    /// The provider could not be reached (DNS, connection refused, TLS, reset).
    #[error("{provider}: unreachable: {message}")]
    Unreachable {
        /// The provider.
        provider: String,
        /// What the transport said (without the URL).
        message: String,
    },
    /// 429: the provider asks us to slow down.
    #[error("{provider}: rate limited")]
    RateLimited {
        /// The provider.
        provider: String,
        /// Its `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// A 5xx answer (503 may carry `Retry-After`).
    #[error("{provider}: server error {status}")]
    Server {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// Its `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// 401/403: the key is missing, wrong or not allowed this model. Not worth retrying, but
    /// another provider may work.
    #[error("{provider}: credentials refused ({status})")]
    Unauthorized {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
    },
    /// Another 4xx: the provider refused this request (too long a prompt, a schema it does not
    /// support). Retrying the same request cannot help.
    #[error("{provider}: request refused ({status}): {message}")]
    Refused {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message, shortened.
        message: String,
    },
    /// The answer could not be used: not the wire format, no candidate, blocked by a safety
    /// filter, or larger than the limit.
    #[error("{provider}: unusable answer: {message}")]
    InvalidAnswer {
        /// The provider.
        provider: String,
        /// What was wrong with it.
        message: String,
    },
    /// The provider's circuit breaker is open: it failed repeatedly and is left alone until the
    /// cool-down ends.
    #[error("{provider}: circuit open")]
    CircuitOpen {
        /// The provider.
        provider: String,
        /// Until the breaker lets a probe through.
        retry_after: Duration,
    },
    /// A local model's queue is full.
    #[error("{provider}: busy")]
    Busy {
        /// The provider.
        provider: String,
        /// A hint of when a slot may be free.
        retry_after: Duration,
    },
    /// Every configured provider failed or is open. What callers turn into a 503.
    #[error("no language model is available")]
    Unavailable {
        /// When trying again may help.
        retry_after: Option<Duration>,
    },
}

impl LlmError {
    /// Whether the same request may succeed if retried shortly (timeouts, connection failures,
    /// 429, 5xx). A full local queue is not: waiting in line behind a slow model is what the
    /// caller's fast 503 is for.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::RateLimited { .. }
                | Self::Server { .. }
        )
    }

    /// Whether this failure says the provider is unhealthy, so its circuit breaker counts it. A
    /// refused request or an odd answer is about this request; a full local queue is load, not
    /// failure.
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Unauthorized { .. }
        )
    }

    /// The delay the provider (or the breaker) asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. }
            | Self::Server { retry_after, .. }
            | Self::Unavailable { retry_after } => *retry_after,
            Self::CircuitOpen { retry_after, .. } | Self::Busy { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// A stable label for metrics and logs (`timeout`, `rate_limited`, …).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server_error",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Refused { .. } => "refused",
            Self::InvalidAnswer { .. } => "invalid_answer",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Busy { .. } => "busy",
            Self::Unavailable { .. } => "unavailable",
        }
    }
}
