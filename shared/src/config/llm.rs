//! Settings of the language models: which providers, in which fallback order, and the policy
//! every call runs under.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LLM_PROVIDERS` | see below | fallback order, comma-separated: `gemini`, `openai`, `local` |
//! | `GEMINI_API_KEY` | — | Gemini key (on Cloud Run, a Secret Manager secret mounted as this variable) |
//! | `GEMINI_MODEL` | `gemini-2.5-flash` | model of `generateContent` |
//! | `GEMINI_EMBED_MODEL` | `gemini-embedding-001` | model of `embedContent` |
//! | `GEMINI_BASE_URL` | Google's | endpoint override (tests, proxies) |
//! | `OPENAI_BASE_URL` | — | an OpenAI-compatible server, up to `/v1` |
//! | `OPENAI_API_KEY` | — | its bearer key, if it wants one |
//! | `OPENAI_MODEL` | — | the model name it serves (required with `OPENAI_BASE_URL`) |
//! | `LOCAL_LLM_MODEL` | `$QUARRY_MODELS_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf` | GGUF file of the local model |
//! | `LOCAL_LLM_THREADS` | all cores | llama.cpp threads |
//! | `LOCAL_LLM_CONTEXT` | 8192 | context window in tokens (the schema prompt of a 30-table database is ~6,000) |
//! | `LOCAL_LLM_TIMEOUT_MS` | 300000 | deadline of one local call, queueing included |
//! | `LOCAL_LLM_QUEUE` | 8 | requests that may wait for the local model before 503 |
//! | `LOCAL_LLM_PREFIX_CACHE_MB` | 512 | memory for saved prompt prefixes (KV states; 0 = none) |
//! | `LOCAL_LLM_DRAFT` | 3 | tokens drafted per greedy decode step by prompt lookup (0 = none) |
//! | `LLM_TIMEOUT_MS` | 60000 | deadline of one attempt (and between two streamed pieces) |
//! | `LLM_MAX_RETRIES` | 2 | retries of a transient failure |
//! | `LLM_RETRY_BASE_MS` / `LLM_RETRY_MAX_MS` | 250 / 4000 | backoff ceiling of the first retry / of any wait |
//! | `LLM_BREAKER_FAILURES` | 5 | consecutive failures that open a provider's breaker |
//! | `LLM_BREAKER_COOLDOWN_SECS` | 30 | how long it stays open before a probe |
//!
//! Without `LLM_PROVIDERS`, the remote providers that are configured are used (Gemini first),
//! and the local model when none is — so a machine with no key and no network still answers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::{ranged, ranged_millis, validate_url, ConfigError};

/// Google's Gemini endpoint.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/";

/// The GGUF file `make up` downloads (`scripts/assets.sh --llm full`).
pub const DEFAULT_LOCAL_MODEL: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// A kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Google's Gemini API.
    Gemini,
    /// An OpenAI-compatible chat-completions server.
    OpenAi,
    /// The GGUF model in-process (llama.cpp).
    Local,
}

impl ProviderKind {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gemini" => Some(Self::Gemini),
            "openai" => Some(Self::OpenAi),
            "local" => Some(Self::Local),
            _ => None,
        }
    }
}

/// Gemini's settings.
#[derive(Clone)]
pub struct GeminiSettings {
    /// The API key.
    pub api_key: SecretString,
    /// Model of `generateContent`.
    pub model: String,
    /// Model of `embedContent`.
    pub embed_model: String,
    /// Endpoint.
    pub base_url: url::Url,
}

/// An OpenAI-compatible server's settings.
#[derive(Clone)]
pub struct OpenAiSettings {
    /// Base URL up to `/v1`.
    pub base_url: url::Url,
    /// Bearer key, if any.
    pub api_key: Option<SecretString>,
    /// Model name.
    pub model: String,
}

/// The local model's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// llama.cpp threads (0 = every core).
    pub threads: usize,
    /// Context window in tokens.
    pub context: u32,
    /// Requests that may wait for the model.
    pub queue: usize,
    /// Deadline of one call, queueing included. Longer than a remote provider's: the first
    /// prompt over a schema evaluates thousands of tokens on a small CPU (a minute or more), and
    /// a call given up on wastes that work.
    pub timeout: Duration,
    /// Bytes the saved prompt-prefix states may take together. A state grows with its prompt
    /// (the 1.5B model keeps ~28 KiB per token: ~84 MiB for a 3,000-token schema prompt).
    pub prefix_cache_bytes: usize,
    /// Tokens drafted per greedy decode step by prompt lookup (0 = none): a longer draft yields
    /// more tokens per step when it is right and costs more batch width when it is not (on two
    /// cores a step of 4 tokens costs about what one of 3 does, hence 3 drafted by default).
    pub draft: usize,
}

/// Every language-model setting, validated.
#[derive(Clone)]
pub struct LlmSettings {
    /// Providers in fallback order (never empty).
    pub providers: Vec<ProviderKind>,
    /// Gemini, when `GEMINI_API_KEY` is set.
    pub gemini: Option<GeminiSettings>,
    /// The OpenAI-compatible server, when `OPENAI_BASE_URL` is set.
    pub openai: Option<OpenAiSettings>,
    /// The local model.
    pub local: LocalSettings,
    /// Deadline of one attempt.
    pub attempt_timeout: Duration,
    /// Retries of a transient failure.
    pub max_retries: u32,
    /// Backoff ceiling of the first retry.
    pub retry_base: Duration,
    /// Longest wait before a retry.
    pub retry_max: Duration,
    /// Consecutive failures that open a breaker.
    pub breaker_failures: u32,
    /// How long a breaker stays open.
    pub breaker_cooldown: Duration,
}

impl std::fmt::Debug for LlmSettings {
    // By hand: the keys must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("providers", &self.providers)
            .field(
                "gemini",
                &self.gemini.as_ref().map(|g| {
                    (
                        g.model.as_str(),
                        g.embed_model.as_str(),
                        g.base_url.as_str(),
                    )
                }),
            )
            .field(
                "openai",
                &self
                    .openai
                    .as_ref()
                    .map(|o| (o.model.as_str(), o.base_url.as_str(), o.api_key.is_some())),
            )
            .field("local", &self.local)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .finish()
    }
}

impl LlmSettings {
    pub(super) fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        models_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let gemini = get("GEMINI_API_KEY")
            .map(|key| -> Result<_, ConfigError> {
                let base = get("GEMINI_BASE_URL").unwrap_or_else(|| GEMINI_BASE_URL.to_owned());
                Ok(GeminiSettings {
                    api_key: SecretString::from(key),
                    model: model_name("GEMINI_MODEL", get("GEMINI_MODEL"), "gemini-2.5-flash")?,
                    embed_model: model_name(
                        "GEMINI_EMBED_MODEL",
                        get("GEMINI_EMBED_MODEL"),
                        "gemini-embedding-001",
                    )?,
                    base_url: http_url("GEMINI_BASE_URL", base)?,
                })
            })
            .transpose()?;
        let openai = get("OPENAI_BASE_URL")
            .map(|base| -> Result<_, ConfigError> {
                let model = get("OPENAI_MODEL").ok_or_else(|| {
                    ConfigError::new(
                        "OPENAI_MODEL",
                        "must name the model the server at OPENAI_BASE_URL serves",
                    )
                })?;
                Ok(OpenAiSettings {
                    base_url: http_url("OPENAI_BASE_URL", base)?,
                    api_key: get("OPENAI_API_KEY").map(SecretString::from),
                    model,
                })
            })
            .transpose()?;
        let providers = match get("LLM_PROVIDERS") {
            Some(list) => parse_providers(&list)?,
            None => {
                let mut kinds = Vec::new();
                if gemini.is_some() {
                    kinds.push(ProviderKind::Gemini);
                }
                if openai.is_some() {
                    kinds.push(ProviderKind::OpenAi);
                }
                if kinds.is_empty() {
                    kinds.push(ProviderKind::Local);
                }
                kinds
            }
        };
        if providers.contains(&ProviderKind::Gemini) && gemini.is_none() {
            return Err(ConfigError::new(
                "LLM_PROVIDERS",
                "lists gemini, but GEMINI_API_KEY is not set",
            ));
        }
        if providers.contains(&ProviderKind::OpenAi) && openai.is_none() {
            return Err(ConfigError::new(
                "LLM_PROVIDERS",
                "lists openai, but OPENAI_BASE_URL is not set",
            ));
        }
        let local = LocalSettings {
            model_path: get("LOCAL_LLM_MODEL")
                .map_or_else(|| models_dir.join(DEFAULT_LOCAL_MODEL), PathBuf::from),
            threads: to_usize(ranged(
                get("LOCAL_LLM_THREADS"),
                "LOCAL_LLM_THREADS",
                0,
                0..=256,
            )?),
            context: to_u32(ranged(
                get("LOCAL_LLM_CONTEXT"),
                "LOCAL_LLM_CONTEXT",
                8192,
                512..=32_768,
            )?),
            queue: to_usize(ranged(
                get("LOCAL_LLM_QUEUE"),
                "LOCAL_LLM_QUEUE",
                8,
                1..=10_000,
            )?),
            timeout: ranged_millis(
                get("LOCAL_LLM_TIMEOUT_MS"),
                "LOCAL_LLM_TIMEOUT_MS",
                300_000,
                1_000..=3_600_000,
            )?,
            prefix_cache_bytes: to_usize(ranged(
                get("LOCAL_LLM_PREFIX_CACHE_MB"),
                "LOCAL_LLM_PREFIX_CACHE_MB",
                512,
                0..=65_536,
            )?)
            .saturating_mul(1 << 20),
            draft: to_usize(ranged(
                get("LOCAL_LLM_DRAFT"),
                "LOCAL_LLM_DRAFT",
                3,
                0..=32,
            )?),
        };
        let retry_base = ranged_millis(
            get("LLM_RETRY_BASE_MS"),
            "LLM_RETRY_BASE_MS",
            250,
            1..=60_000,
        )?;
        let retry_max = ranged_millis(
            get("LLM_RETRY_MAX_MS"),
            "LLM_RETRY_MAX_MS",
            4000,
            1..=300_000,
        )?;
        if retry_max < retry_base {
            return Err(ConfigError::new(
                "LLM_RETRY_MAX_MS",
                "must be at least LLM_RETRY_BASE_MS",
            ));
        }
        Ok(Self {
            providers,
            gemini,
            openai,
            local,
            attempt_timeout: ranged_millis(
                get("LLM_TIMEOUT_MS"),
                "LLM_TIMEOUT_MS",
                60_000,
                100..=600_000,
            )?,
            max_retries: to_u32(ranged(
                get("LLM_MAX_RETRIES"),
                "LLM_MAX_RETRIES",
                2,
                0..=10,
            )?),
            retry_base,
            retry_max,
            breaker_failures: to_u32(ranged(
                get("LLM_BREAKER_FAILURES"),
                "LLM_BREAKER_FAILURES",
                5,
                1..=1000,
            )?),
            breaker_cooldown: Duration::from_secs(ranged(
                get("LLM_BREAKER_COOLDOWN_SECS"),
                "LLM_BREAKER_COOLDOWN_SECS",
                30,
                1..=3600,
            )?),
        })
    }
}

fn parse_providers(list: &str) -> Result<Vec<ProviderKind>, ConfigError> {
    let mut kinds = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = ProviderKind::parse(&name.to_ascii_lowercase()).ok_or_else(|| {
            ConfigError::new(
                "LLM_PROVIDERS",
                format!("unknown provider '{name}': use gemini, openai or local"),
            )
        })?;
        if kinds.contains(&kind) {
            return Err(ConfigError::new(
                "LLM_PROVIDERS",
                format!("lists '{name}' twice"),
            ));
        }
        kinds.push(kind);
    }
    if kinds.is_empty() {
        return Err(ConfigError::new(
            "LLM_PROVIDERS",
            "must name at least one of gemini, openai, local",
        ));
    }
    Ok(kinds)
}

/// A model name that is safe as a URL path segment.
fn model_name(
    var: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let name = value.unwrap_or_else(|| default.to_owned());
    let valid = (1..=100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(name)
    } else {
        Err(ConfigError::new(
            var,
            "must be 1-100 characters of letters, digits, '.', '_' and '-'",
        ))
    }
}

fn http_url(var: &'static str, value: String) -> Result<url::Url, ConfigError> {
    validate_url(var, value.clone(), &["http", "https"])?;
    url::Url::parse(&value).map_err(|_| ConfigError::new(var, "is not a valid URL"))
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<LlmSettings, ConfigError> {
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        LlmSettings::from_lookup(&get, Path::new("/models"))
    }

    #[test]
    fn defaults_to_the_local_model() {
        let s = load(&[]).unwrap();
        assert_eq!(s.providers, [ProviderKind::Local]);
        assert_eq!(
            s.local.model_path,
            Path::new("/models").join(DEFAULT_LOCAL_MODEL)
        );
        assert_eq!(s.local.queue, 8);
        assert_eq!(s.local.prefix_cache_bytes, 512 << 20);
        assert_eq!(s.local.draft, 3);
        assert_eq!(load(&[("LOCAL_LLM_DRAFT", "0")]).unwrap().local.draft, 0);
        assert_eq!(s.attempt_timeout, Duration::from_secs(60));
    }

    #[test]
    fn configured_remotes_come_first_without_a_list() {
        let s = load(&[
            ("GEMINI_API_KEY", "k"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("OPENAI_MODEL", "qwen2.5-coder"),
        ])
        .unwrap();
        assert_eq!(s.providers, [ProviderKind::Gemini, ProviderKind::OpenAi]);
        let explicit =
            load(&[("GEMINI_API_KEY", "k"), ("LLM_PROVIDERS", "gemini, local")]).unwrap();
        assert_eq!(
            explicit.providers,
            [ProviderKind::Gemini, ProviderKind::Local]
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, var) in [
            (vec![("LLM_PROVIDERS", "gemini")], "LLM_PROVIDERS"),
            (vec![("LLM_PROVIDERS", "openai")], "LLM_PROVIDERS"),
            (vec![("LLM_PROVIDERS", "local,local")], "LLM_PROVIDERS"),
            (vec![("LLM_PROVIDERS", "claude")], "LLM_PROVIDERS"),
            (vec![("LLM_PROVIDERS", " , ")], "LLM_PROVIDERS"),
            (vec![("OPENAI_BASE_URL", "http://h/v1")], "OPENAI_MODEL"),
            (
                vec![("OPENAI_BASE_URL", "ftp://h"), ("OPENAI_MODEL", "m")],
                "OPENAI_BASE_URL",
            ),
            (
                vec![("GEMINI_API_KEY", "k"), ("GEMINI_MODEL", "../x")],
                "GEMINI_MODEL",
            ),
            (vec![("LLM_TIMEOUT_MS", "5")], "LLM_TIMEOUT_MS"),
            (
                vec![("LLM_RETRY_BASE_MS", "900"), ("LLM_RETRY_MAX_MS", "100")],
                "LLM_RETRY_MAX_MS",
            ),
            (vec![("LOCAL_LLM_QUEUE", "0")], "LOCAL_LLM_QUEUE"),
            (
                vec![("LOCAL_LLM_PREFIX_CACHE_MB", "lots")],
                "LOCAL_LLM_PREFIX_CACHE_MB",
            ),
            (
                vec![("LOCAL_LLM_PREFIX_CACHE_MB", "100000")],
                "LOCAL_LLM_PREFIX_CACHE_MB",
            ),
            (vec![("LOCAL_LLM_DRAFT", "64")], "LOCAL_LLM_DRAFT"),
            (vec![("LOCAL_LLM_DRAFT", "-1")], "LOCAL_LLM_DRAFT"),
        ] {
            assert_eq!(load(&vars).unwrap_err().var, var, "{vars:?}");
        }
    }

    #[test]
    fn keys_never_reach_debug() {
        let s = load(&[
            ("GEMINI_API_KEY", "sekrit-gemini"),
            ("OPENAI_BASE_URL", "http://h/v1"),
            ("OPENAI_MODEL", "m"),
            ("OPENAI_API_KEY", "sekrit-openai"),
        ])
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("sekrit"), "{debug}");
    }
}
