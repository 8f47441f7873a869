//! The in-process model: a GGUF file run by llama.cpp on this machine's CPU, so Quarry answers
//! with no key and no network.
//!
//! One model per process, on one worker thread ([`worker`]): a 1.5B model needs all of a small
//! machine's cores for one request, so requests wait in a bounded queue instead of competing. A
//! full queue answers [`LlmError::Busy`] at once with a `Retry-After` estimated from recent jobs,
//! which the orchestrator turns into a 503, rather than letting callers pile up behind a model
//! that cannot catch up.
//!
//! Prompts are Qwen's ChatML ([`chatml`]); the system turn's model state is cached per distinct
//! prefix ([`prefix`]), so a question on a schema already seen pays only for its own tokens.
//! Structured output is grammar-constrained decoding: [`ChatRequest::grammar`] when set, else a
//! grammar derived from [`ChatRequest::json_schema`] ([`crate::llm::gbnf`]). Greedy decoding
//! drafts tokens it can copy from the prompt ([`lookup`]) and checks them in the same step, so
//! a query that repeats its examples' joins takes fewer steps for the same text.

pub mod chatml;
pub mod lookup;
pub mod prefix;
pub mod utf8;
mod worker;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::{ChatRequest, Completion, FinishReason, LlmError, LlmProvider, TokenStream, Usage};
use crate::config::llm::LocalSettings;

/// The provider's name in logs, metrics and errors.
pub const NAME: &str = "local";

/// Most prefix states kept, whatever their size; `LocalSettings::prefix_cache_bytes` bounds
/// their memory (each is the KV cache of one system turn: ~28 KiB per token for the 1.5B model,
/// so ~30 MiB for a 1,100-token schema prompt).
pub const PREFIX_CACHE_ENTRIES: usize = 8;

/// Why the model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The GGUF file is not there.
    #[error(
        "the local model file {0} does not exist (run scripts/assets.sh, or set LOCAL_LLM_MODEL)"
    )]
    Missing(String),
    /// llama.cpp refused the file or could not make a context for it.
    #[error("llama.cpp could not load {path}: {reason}")]
    Llama {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The worker thread could not be started, or stopped while loading.
    #[error("the local model's worker thread failed: {0}")]
    Worker(String),
}

/// What the worker tells the caller of a job.
#[derive(Debug)]
enum Event {
    /// The worker took the job off the queue.
    Started,
    /// Generated text.
    Piece(String),
    /// Generation ended.
    Done { finish: FinishReason, usage: Usage },
    /// The job failed.
    Failed(LlmError),
}

/// Running totals of the worker's work, for tests and benchmarks (the same counts go to the
/// `llm_local_*` metrics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    jobs: AtomicU64,
    evaluated: AtomicU64,
    reused: AtomicU64,
    generated: AtomicU64,
    steps: AtomicU64,
    drafted: AtomicU64,
    kept: AtomicU64,
}

/// A snapshot of [`LocalProvider::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalStats {
    /// Jobs finished (answered, failed or abandoned by their caller).
    pub jobs: u64,
    /// Prompt tokens the model evaluated.
    pub prompt_tokens_evaluated: u64,
    /// Prompt tokens whose state was reused (prefix cache or the context's own).
    pub prompt_tokens_reused: u64,
    /// Tokens generated.
    pub tokens_generated: u64,
    /// Decode steps that generated them (fewer than the tokens when drafts were kept).
    pub decode_steps: u64,
    /// Tokens drafted by prompt lookup ([`lookup`]).
    pub draft_tokens: u64,
    /// Drafted tokens kept: greedy decoding picked them.
    pub draft_tokens_kept: u64,
}

/// A request on its way to the worker.
struct Job {
    request: ChatRequest,
    grammar: Option<String>,
    events: mpsc::UnboundedSender<Event>,
}

/// The local model as an [`LlmProvider`].
pub struct LocalProvider {
    jobs: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    /// Moving average of a job's duration in milliseconds, for `Retry-After` estimates.
    job_ms: Arc<AtomicU64>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    /// Loads the model and starts its worker. Blocks for the load (seconds for a 1 GB file):
    /// call it from a blocking context.
    ///
    /// # Errors
    /// [`LoadError`] when the file is missing or llama.cpp cannot use it.
    pub fn load(settings: &LocalSettings) -> Result<Arc<Self>, LoadError> {
        if !settings.model_path.is_file() {
            return Err(LoadError::Missing(
                settings.model_path.display().to_string(),
            ));
        }
        let (jobs, queue) = sync_channel::<Job>(settings.queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let job_ms = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(Counters::default());
        let (loaded_tx, loaded_rx) = sync_channel::<Result<(), LoadError>>(1);
        let worker = worker::Worker {
            settings: settings.clone(),
            queued: Arc::clone(&queued),
            job_ms: Arc::clone(&job_ms),
            counters: Arc::clone(&counters),
        };
        std::thread::Builder::new()
            .name("quarry-llm".to_owned())
            .spawn(move || worker.run(queue, loaded_tx))
            .map_err(|e| LoadError::Worker(e.to_string()))?;
        loaded_rx
            .recv()
            .map_err(|_| LoadError::Worker("it stopped while loading the model".to_owned()))??;
        Ok(Arc::new(Self {
            jobs,
            queued,
            job_ms,
            counters,
        }))
    }

    /// What the model has done so far.
    pub fn stats(&self) -> LocalStats {
        let c = &self.counters;
        LocalStats {
            jobs: c.jobs.load(Ordering::Relaxed),
            prompt_tokens_evaluated: c.evaluated.load(Ordering::Relaxed),
            prompt_tokens_reused: c.reused.load(Ordering::Relaxed),
            tokens_generated: c.generated.load(Ordering::Relaxed),
            decode_steps: c.steps.load(Ordering::Relaxed),
            draft_tokens: c.drafted.load(Ordering::Relaxed),
            draft_tokens_kept: c.kept.load(Ordering::Relaxed),
        }
    }

    /// Requests waiting for the model (not counting the one it is working on).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues `request`; the receiver gets its events.
    fn submit(&self, request: &ChatRequest) -> Result<mpsc::UnboundedReceiver<Event>, LlmError> {
        let grammar = match (&request.grammar, &request.json_schema) {
            (Some(g), _) => Some(g.clone()),
            (None, Some(schema)) => Some(super::gbnf::json::grammar(&schema.schema).map_err(
                |e| LlmError::Refused {
                    provider: NAME.to_owned(),
                    status: 400,
                    message: e.to_string(),
                },
            )?),
            (None, None) => None,
        };
        let (events, receiver) = mpsc::unbounded_channel();
        let job = Job {
            request: request.clone(),
            grammar,
            events,
        };
        // Counted before sending so the worker's decrement can never run first.
        let depth = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        match self.jobs.try_send(job) {
            Ok(()) => {
                metrics::gauge!("llm_local_queue_depth").set(depth as f64);
                Ok(receiver)
            }
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                metrics::counter!("llm_local_rejected_total").increment(1);
                Err(LlmError::Busy {
                    provider: NAME.to_owned(),
                    retry_after: self.retry_after(depth),
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(stopped())
            }
        }
    }

    /// When a place in a queue of `depth` jobs may be free: the recent job time times the jobs
    /// ahead, between 1 s and 60 s.
    fn retry_after(&self, depth: usize) -> Duration {
        let per_job = self.job_ms.load(Ordering::Relaxed).max(1_000);
        let ms = per_job.saturating_mul(depth as u64).clamp(1_000, 60_000);
        Duration::from_millis(ms)
    }
}

/// The error a caller gets when the model cannot serve it (the worker is gone or llama.cpp failed):
/// a 500 whose details stay in the log.
pub(super) fn stopped() -> LlmError {
    LlmError::Server {
        provider: NAME.to_owned(),
        status: 500,
        retry_after: None,
    }
}

impl LlmProvider for LocalProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let mut events = self.submit(request)?;
            let mut text = String::new();
            while let Some(event) = events.recv().await {
                match event {
                    Event::Started => {}
                    Event::Piece(piece) => text.push_str(&piece),
                    Event::Done { finish, usage } => {
                        return Ok(Completion {
                            text,
                            finish,
                            usage,
                            provider: NAME.to_owned(),
                        })
                    }
                    Event::Failed(error) => return Err(error),
                }
            }
            Err(stopped())
        })
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<TokenStream, LlmError>> {
        Box::pin(async move {
            let mut events = self.submit(request)?;
            // Accepted means taken off the queue: time spent waiting counts against the
            // caller's attempt deadline, as a remote provider's queueing would.
            match events.recv().await {
                Some(Event::Started) => {}
                Some(Event::Failed(error)) => return Err(error),
                _ => return Err(stopped()),
            }
            let pieces = futures::stream::unfold(Some(events), |state| async move {
                let mut events = state?;
                loop {
                    match events.recv().await {
                        Some(Event::Piece(piece)) => return Some((Ok(piece), Some(events))),
                        Some(Event::Failed(error)) => return Some((Err(error), None)),
                        Some(Event::Started) => {}
                        Some(Event::Done { .. }) => return None,
                        None => return Some((Err(stopped()), None)),
                    }
                }
            });
            Ok(pieces.boxed())
        })
    }
}

/// How long the job took, folded into the moving average (weight 1/4 for the newest).
fn record_job(job_ms: &AtomicU64, took: Duration) {
    let took = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    let old = job_ms.load(Ordering::Relaxed);
    let new = if old == 0 { took } else { (old * 3 + took) / 4 };
    job_ms.store(new, Ordering::Relaxed);
}
