//! The thread that owns the model: loads it, then runs queued jobs one at a time.
//!
//! llama.cpp's context borrows the model and is not meant to be shared across threads, so both
//! live on this thread's stack for the life of the process; everything else talks to it through
//! the job queue. Per job: tokenize the ChatML prompt, reuse the longest prefix whose model state
//! is known (what the context already holds, or a cached system turn), evaluate only the rest,
//! save the system turn's state if it is new, then sample token by token, under a grammar when the
//! request has one, until end-of-turn, `max_tokens`, or the caller going away. A greedy step
//! evaluates the chosen token with a prompt-lookup draft after it and keeps the drafted tokens
//! greedy decoding agrees with.

use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use super::chatml::{self, Piece};
use super::lookup::{self, Lookup};
use super::prefix::{common_prefix, PrefixCache};
use super::utf8::Utf8Pieces;
use super::{record_job, Counters, Event, Job, LoadError, NAME, PREFIX_CACHE_ENTRIES};
use crate::config::llm::LocalSettings;
use crate::llm::{FinishReason, LlmError, Usage};

/// Tokens evaluated per llama.cpp batch.
const BATCH: usize = 512;

/// Candidates checked against a grammar before the whole vocabulary is.
const GRAMMAR_TOP_K: usize = 64;

/// llama.cpp's process-wide backend: initialised once, never freed (a second init is an error).
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs through tracing (target `llama-cpp-2`), filtered like everything else.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// What the worker is started with.
pub(super) struct Worker {
    pub(super) settings: LocalSettings,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) job_ms: Arc<AtomicU64>,
    pub(super) counters: Arc<Counters>,
}

impl Worker {
    /// Loads the model, reports the outcome on `loaded`, then serves `queue` until every sender
    /// is gone.
    pub(super) fn run(self, queue: Receiver<Job>, loaded: SyncSender<Result<(), LoadError>>) {
        let path = self.settings.model_path.display().to_string();
        let llama = |reason: String| LoadError::Llama {
            path: path.clone(),
            reason,
        };
        let backend = match backend() {
            Ok(backend) => backend,
            Err(reason) => {
                let _ = loaded.send(Err(llama(reason)));
                return;
            }
        };
        let model = match LlamaModel::load_from_file(
            backend,
            &self.settings.model_path,
            &LlamaModelParams::default(),
        ) {
            Ok(model) => model,
            Err(e) => {
                let _ = loaded.send(Err(llama(e.to_string())));
                return;
            }
        };
        let threads = match self.settings.threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        };
        let threads = i32::try_from(threads).unwrap_or(i32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.settings.context))
            .with_n_batch(BATCH as u32)
            .with_n_ubatch(BATCH as u32)
            .with_n_seq_max(1)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = match model.new_context(backend, params) {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = loaded.send(Err(llama(e.to_string())));
                return;
            }
        };
        tracing::info!(
            path,
            threads,
            context = self.settings.context,
            parameters = model.n_params(),
            "local model loaded"
        );
        let _ = loaded.send(Ok(()));
        let mut session = Session {
            counters: &self.counters,
            model: &model,
            ctx,
            held: Vec::new(),
            prefixes: PrefixCache::new(PREFIX_CACHE_ENTRIES, self.settings.prefix_cache_bytes),
            last_batch_len: 0,
            batch: LlamaBatch::new(BATCH, 1),
            draft: self.settings.draft.min(BATCH - 1),
        };
        while let Ok(job) = queue.recv() {
            let depth = self
                .queued
                .fetch_sub(1, Ordering::Relaxed)
                .saturating_sub(1);
            metrics::gauge!("llm_local_queue_depth").set(depth as f64);
            if job.events.is_closed() {
                // The caller gave up while the job waited.
                continue;
            }
            let _ = job.events.send(Event::Started);
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| session.run(&job)));
            let event = match outcome {
                Ok(Ok(Some((finish, usage)))) => Event::Done { finish, usage },
                Ok(Ok(None)) => {
                    self.counters.jobs.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(error)) => Event::Failed(error),
                Err(_) => {
                    tracing::error!("the local model's job panicked; its state is reset");
                    session.forget();
                    Event::Failed(internal("generation failed"))
                }
            };
            record_job(&self.job_ms, started.elapsed());
            // Counted before the caller hears the outcome, so stats read after an answer include it.
            self.counters.jobs.fetch_add(1, Ordering::Relaxed);
            let _ = job.events.send(event);
        }
    }
}

/// The model, its context and what the context's sequence 0 holds.
struct Session<'m> {
    counters: &'m Counters,
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    /// The tokens whose state sequence 0 holds, in order.
    held: Vec<LlamaToken>,
    prefixes: PrefixCache<SeqState>,
    /// Tokens in the last decoded batch: the logits of its last token are at this minus one.
    last_batch_len: usize,
    /// The batch every decode fills: allocated once, as generation decodes a few tokens at a
    /// time.
    batch: LlamaBatch<'static>,
    /// Most tokens drafted per greedy step ([`Lookup::max_draft`]).
    draft: usize,
}

impl Session<'_> {
    /// Runs one job. `Ok(None)` when the caller went away mid-way.
    fn run(&mut self, job: &Job) -> Result<Option<(FinishReason, Usage)>, LlmError> {
        let prompt = chatml::render(&job.request);
        let mut tokens = self.tokenize(&prompt.system);
        let system_len = tokens.len();
        tokens.extend(self.tokenize(&prompt.rest));
        let n_ctx = self.ctx.n_ctx() as usize;
        if tokens.len() + 1 >= n_ctx {
            return Err(LlmError::Refused {
                provider: NAME.to_owned(),
                status: 400,
                message: format!(
                    "a prompt of {} tokens does not fit the context of {n_ctx} (LOCAL_LLM_CONTEXT)",
                    tokens.len()
                ),
            });
        }
        let max_new = (job.request.max_tokens as usize).min(n_ctx - tokens.len());
        let mut sampler = match &job.grammar {
            Some(g) => Some(LlamaSampler::grammar(self.model, g, "root").map_err(|e| {
                LlmError::Refused {
                    provider: NAME.to_owned(),
                    status: 400,
                    message: format!("the grammar was refused: {e}"),
                }
            })?),
            None => None,
        };

        let reused = self.reuse_prefix(&tokens);
        let evaluated = tokens.len() - reused;
        metrics::counter!("llm_local_prompt_tokens_total", "state" => "reused")
            .increment(reused as u64);
        metrics::counter!("llm_local_prompt_tokens_total", "state" => "evaluated")
            .increment(evaluated as u64);
        self.counters
            .reused
            .fetch_add(reused as u64, Ordering::Relaxed);
        self.counters
            .evaluated
            .fetch_add(evaluated as u64, Ordering::Relaxed);
        let prompt_started = Instant::now();
        // Evaluate up to the end of the system turn first when its state is worth keeping, and
        // finish it even if the caller leaves meanwhile: it is the expensive, shared part (a
        // schema prompt can take a minute cold), and abandoning it would make the next caller,
        // given the same deadline, abandon it again.
        if reused < system_len && !self.prefixes.contains(&ids(&tokens[..system_len])) {
            self.evaluate(&tokens[reused..system_len], None)?;
            match self.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()) {
                Ok(state) => {
                    let size = state.byte_len();
                    self.prefixes
                        .insert(ids(&tokens[..system_len]), state, size);
                    metrics::gauge!("llm_local_prefix_cache_bytes")
                        .set(self.prefixes.bytes() as f64);
                }
                Err(e) => tracing::warn!(error = %e, "could not save the prompt prefix state"),
            }
        }
        let from = self.held.len();
        if !self.evaluate(&tokens[from..], Some(&job.events))? {
            return Ok(None);
        }
        let prompt_ms = prompt_started.elapsed().as_millis() as u64;

        let generate_started = Instant::now();
        // Drafting keeps the text greedy decoding writes, so it is only used when decoding is
        // greedy: a sampled token would not be checkable against the draft.
        let drafting = (job.request.temperature <= 0.0 && self.draft > 0)
            .then_some(Lookup::agreed(self.draft));
        let mut text = Utf8Pieces::default();
        let mut generated = 0usize;
        let mut steps = 0usize;
        let mut drafted = 0usize;
        let mut kept = 0usize;
        let mut next = self.sample(
            self.last_logits_index(),
            sampler.as_mut(),
            job.request.temperature,
        )?;
        let finish = loop {
            if generated >= max_new {
                break FinishReason::Length;
            }
            if self.model.vocab().is_eog(next) {
                break FinishReason::Stop;
            }
            if !self.emit(next, sampler.as_mut(), &mut text, &job.events) {
                return Ok(None);
            }
            generated += 1;
            let draft = match &drafting {
                Some(drafting) if lookup::worth_drafting(drafted, kept) => {
                    let mut seen = ids(&self.held);
                    seen.push(next.0);
                    drafting.draft(&seen, max_new - generated)
                }
                _ => Vec::new(),
            };
            let mut step = Vec::with_capacity(1 + draft.len());
            step.push(next);
            step.extend(draft.iter().copied().map(LlamaToken));
            if !self.decode_step(&step, &job.events)? {
                return Ok(None);
            }
            steps += 1;
            drafted += draft.len();
            // Keep drafted tokens while each is what greedy decoding picks from the logits
            // after the ones before it; the first it would not pick is replaced by its pick.
            let mut index = 0;
            next = loop {
                let chosen = self.sample(
                    i32::try_from(index).unwrap_or(i32::MAX),
                    sampler.as_mut(),
                    job.request.temperature,
                )?;
                let agrees = draft.get(index) == Some(&chosen.0);
                if !agrees || self.model.vocab().is_eog(chosen) || generated >= max_new {
                    break chosen;
                }
                if !self.emit(chosen, sampler.as_mut(), &mut text, &job.events) {
                    return Ok(None);
                }
                generated += 1;
                index += 1;
            };
            kept += index;
            self.counters.steps.fetch_add(1, Ordering::Relaxed);
            self.counters
                .drafted
                .fetch_add(draft.len() as u64, Ordering::Relaxed);
            self.counters
                .kept
                .fetch_add(index as u64, Ordering::Relaxed);
            self.drop_after(self.held.len() - (draft.len() - index))?;
        };
        let tail = text.finish();
        if !tail.is_empty() {
            let _ = job.events.send(Event::Piece(tail));
        }
        metrics::counter!("llm_local_generated_tokens_total").increment(generated as u64);
        metrics::counter!("llm_local_decode_steps_total").increment(steps as u64);
        metrics::counter!("llm_local_draft_tokens_total", "outcome" => "kept")
            .increment(kept as u64);
        metrics::counter!("llm_local_draft_tokens_total", "outcome" => "rejected")
            .increment((drafted - kept) as u64);
        tracing::debug!(
            prompt_tokens = tokens.len(),
            reused,
            evaluated,
            prompt_ms,
            generated,
            steps,
            drafted,
            kept,
            generate_ms = generate_started.elapsed().as_millis() as u64,
            "local generation"
        );
        Ok(Some((
            finish,
            Usage {
                prompt_tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
                completion_tokens: u32::try_from(generated).unwrap_or(u32::MAX),
            },
        )))
    }

    /// Positions sequence 0 at the longest prefix of `tokens` whose state is known and returns
    /// its length (always less than `tokens.len()`: the last prompt token is evaluated again so
    /// its logits exist).
    fn reuse_prefix(&mut self, tokens: &[LlamaToken]) -> usize {
        let wanted = ids(tokens);
        let mut keep = common_prefix(&ids(&self.held), &wanted);
        if let Some((len, state)) = self.prefixes.longest(&wanted) {
            if len > keep {
                let _ = self.ctx.kv_cache_seq_rm(0, None, None);
                match self.ctx.state_seq_set(state, 0) {
                    Ok(()) => {
                        self.held = tokens[..len].to_vec();
                        keep = len;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not restore a prompt prefix state");
                        self.forget();
                        keep = 0;
                    }
                }
            }
        }
        let keep = keep.min(tokens.len().saturating_sub(1));
        let keep_pos = u32::try_from(keep).unwrap_or(u32::MAX);
        if self.ctx.kv_cache_seq_rm(0, Some(keep_pos), None).is_err() {
            self.forget();
            return 0;
        }
        self.held.truncate(keep);
        keep
    }

    /// Evaluates `tokens` after what sequence 0 holds, in batches, with logits for the last one.
    /// `Ok(false)` when the caller (`events`, if given) went away between batches.
    fn evaluate(
        &mut self,
        tokens: &[LlamaToken],
        events: Option<&tokio::sync::mpsc::UnboundedSender<Event>>,
    ) -> Result<bool, LlmError> {
        for (chunk_index, chunk) in tokens.chunks(BATCH).enumerate() {
            if events.is_some_and(tokio::sync::mpsc::UnboundedSender::is_closed) {
                return Ok(false);
            }
            let last_chunk = (chunk_index + 1) * BATCH >= tokens.len();
            self.decode_batch(chunk, |i| last_chunk && i + 1 == chunk.len())?;
        }
        Ok(true)
    }

    /// Decodes `tokens` (at most [`BATCH`]) after what sequence 0 holds, in one batch, with
    /// logits for the positions `logits` picks.
    fn decode_batch(
        &mut self,
        tokens: &[LlamaToken],
        logits: impl Fn(usize) -> bool,
    ) -> Result<(), LlmError> {
        self.batch.clear();
        for (i, token) in tokens.iter().enumerate() {
            let pos = i32::try_from(self.held.len() + i).unwrap_or(i32::MAX);
            self.batch
                .add(*token, pos, &[0], logits(i))
                .map_err(|e| internal(&e.to_string()))?;
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            self.forget();
            return Err(internal(&format!("decode failed: {e}")));
        }
        self.held.extend_from_slice(tokens);
        self.last_batch_len = tokens.len();
        Ok(())
    }

    /// Hands a chosen token to the grammar and its text to the caller; `false` when the caller
    /// went away.
    fn emit(
        &self,
        token: LlamaToken,
        grammar: Option<&mut LlamaSampler>,
        text: &mut Utf8Pieces,
        events: &tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> bool {
        if let Some(grammar) = grammar {
            grammar.accept(token);
        }
        self.counters.generated.fetch_add(1, Ordering::Relaxed);
        let piece = self.model.vocab().token_to_piece(token, false, None);
        let piece = text.push(&piece);
        piece.is_empty() || events.send(Event::Piece(piece)).is_ok()
    }

    /// Evaluates one generation step, the chosen token and any draft after it, in one batch
    /// with logits for every token (each drafted token is checked against the logits before
    /// it). `Ok(false)` when the caller went away.
    fn decode_step(
        &mut self,
        tokens: &[LlamaToken],
        events: &tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Result<bool, LlmError> {
        if events.is_closed() {
            return Ok(false);
        }
        self.decode_batch(tokens, |_| true)?;
        Ok(true)
    }

    /// Drops what sequence 0 holds from position `keep` on (drafted tokens that were not kept).
    fn drop_after(&mut self, keep: usize) -> Result<(), LlmError> {
        if keep >= self.held.len() {
            return Ok(());
        }
        let pos = u32::try_from(keep).unwrap_or(u32::MAX);
        match self.ctx.kv_cache_seq_rm(0, Some(pos), None) {
            Ok(_) => {
                self.held.truncate(keep);
                Ok(())
            }
            Err(e) => {
                self.forget();
                Err(internal(&format!("could not drop drafted tokens: {e}")))
            }
        }
    }

    fn last_logits_index(&self) -> i32 {
        i32::try_from(self.last_batch_len.saturating_sub(1)).unwrap_or(0)
    }

    /// The next token. Under a grammar, greedy decoding first checks only the best token, then
    /// the best [`GRAMMAR_TOP_K`], and filters the whole vocabulary (150k tokens for Qwen, over a
    /// second per step with the SQL grammar) only when none of those is allowed. Greedy picks the
    /// highest allowed logit either way, so the shortcut never changes the answer.
    fn sample(
        &self,
        index: i32,
        grammar: Option<&mut LlamaSampler>,
        temperature: f32,
    ) -> Result<LlamaToken, LlmError> {
        let logits = self.ctx.get_logits_ith(index);
        let Some(grammar) = grammar else {
            if temperature <= 0.0 {
                return argmax(logits).ok_or_else(|| internal("no logits"));
            }
            let mut all = LlamaTokenDataArray::from_iter(self.ctx.candidates_ith(index), false);
            return self.sample_from(&mut all, temperature);
        };
        let top = top_k(logits, GRAMMAR_TOP_K);
        if temperature <= 0.0 {
            for candidates in [&top[..1.min(top.len())], &top[..]] {
                let mut subset = LlamaTokenDataArray::new(candidates.to_vec(), false);
                grammar.apply(&mut subset);
                if let Some(best) = best_allowed(&subset) {
                    return Ok(best);
                }
            }
            let mut all = LlamaTokenDataArray::from_iter(self.ctx.candidates_ith(index), false);
            grammar.apply(&mut all);
            return best_allowed(&all).ok_or_else(|| internal("the grammar allows no token here"));
        }
        // Sampling: among the allowed tokens of the top K (what top-k sampling would consider
        // anyway), or of the whole vocabulary when none of those is allowed.
        if let Some(token) = self.draw_allowed(top, grammar, temperature)? {
            return Ok(token);
        }
        let mut all = LlamaTokenDataArray::from_iter(self.ctx.candidates_ith(index), false);
        grammar.apply(&mut all);
        self.sample_from(&mut all, temperature)
    }

    /// A token drawn from `candidates` at `temperature` among those the grammar allows; `None`
    /// when it allows none. Draws first and checks only the drawn token, removing a rejected
    /// one and drawing again: the same distribution as filtering every candidate first
    /// (rejection sampling), at about one grammar check per token instead of one per candidate.
    /// Checking all 64 made a sampled query 3–4× slower per token than a greedy one (300–560 ms
    /// against ~125 ms in the eval).
    fn draw_allowed(
        &self,
        mut candidates: Vec<LlamaTokenData>,
        grammar: &mut LlamaSampler,
        temperature: f32,
    ) -> Result<Option<LlamaToken>, LlmError> {
        while !candidates.is_empty() {
            let mut pool = LlamaTokenDataArray::new(candidates.clone(), false);
            let drawn = self.sample_from(&mut pool, temperature)?;
            let Some(position) = candidates.iter().position(|d| d.id() == drawn) else {
                return Err(internal("sampling drew a token it was not offered"));
            };
            let mut one = LlamaTokenDataArray::new(vec![candidates[position]], false);
            grammar.apply(&mut one);
            if best_allowed(&one).is_some() {
                return Ok(Some(drawn));
            }
            candidates.swap_remove(position);
        }
        Ok(None)
    }

    fn sample_from(
        &self,
        candidates: &mut LlamaTokenDataArray,
        temperature: f32,
    ) -> Result<LlamaToken, LlmError> {
        let mut chain = LlamaSampler::chain_simple([
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(fastrand::u32(..)),
        ]);
        candidates.apply_sampler(&mut chain);
        candidates
            .selected_token()
            .ok_or_else(|| internal("sampling selected no token"))
    }

    /// Tokens of prompt pieces: template markers as special tokens, text as text.
    fn tokenize(&self, pieces: &[Piece]) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Special(marker) => {
                    out.extend(vocab.tokenize(marker.as_bytes(), false, true))
                }
                Piece::Text(text) => out.extend(vocab.tokenize(text.as_bytes(), false, false)),
            }
        }
        out
    }

    /// Drops everything sequence 0 holds (after an error, its state is unknown).
    fn forget(&mut self) {
        self.ctx.clear_kv_cache();
        self.held.clear();
    }
}

/// The `k` highest logits as candidates, best first.
fn top_k(logits: &[f32], k: usize) -> Vec<LlamaTokenData> {
    let mut indexed: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
    let k = k.min(indexed.len());
    if k == 0 {
        return Vec::new();
    }
    indexed.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    indexed.truncate(k);
    indexed.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    indexed
        .into_iter()
        .filter_map(|(i, logit)| {
            Some(LlamaTokenData::new(
                LlamaToken(i32::try_from(i).ok()?),
                logit,
                0.0,
            ))
        })
        .collect()
}

/// The highest-logit token the grammar left allowed (it sets the others to minus infinity).
fn best_allowed(candidates: &LlamaTokenDataArray) -> Option<LlamaToken> {
    candidates
        .data
        .iter()
        .filter(|d| d.logit().is_finite())
        .max_by(|a, b| a.logit().total_cmp(&b.logit()))
        .map(LlamaTokenData::id)
}

fn argmax(logits: &[f32]) -> Option<LlamaToken> {
    logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .and_then(|(i, _)| i32::try_from(i).ok())
        .map(LlamaToken)
}

fn ids(tokens: &[LlamaToken]) -> Vec<i32> {
    tokens.iter().map(|t| t.0).collect()
}

fn internal(message: &str) -> LlmError {
    tracing::warn!(message, "local model error");
    super::stopped()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_takes_the_highest_logits_best_first() {
        let top = top_k(&[0.1, 3.0, -1.0, 2.0, f32::NEG_INFINITY], 2);
        let ids: Vec<i32> = top.iter().map(|d| d.id().0).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(top_k(&[1.0], 64).len(), 1);
        assert!(top_k(&[], 4).is_empty());
    }

    #[test]
    fn the_best_allowed_token_skips_what_the_grammar_removed() {
        let candidates = LlamaTokenDataArray::new(
            vec![
                LlamaTokenData::new(LlamaToken(7), f32::NEG_INFINITY, 0.0),
                LlamaTokenData::new(LlamaToken(8), 1.5, 0.0),
                LlamaTokenData::new(LlamaToken(9), 0.5, 0.0),
            ],
            false,
        );
        assert_eq!(best_allowed(&candidates), Some(LlamaToken(8)));
        let none = LlamaTokenDataArray::new(
            vec![LlamaTokenData::new(LlamaToken(1), f32::NEG_INFINITY, 0.0)],
            false,
        );
        assert_eq!(best_allowed(&none), None);
    }
}
