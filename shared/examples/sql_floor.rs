//! The least time the local model can take to write each eval question's gold SQL: the floor
//! under `quarry eval sql`'s latency, whatever the orchestration around the model does.
//!
//! ```sh
//! cargo run --release -p quarry-shared --features local-llm --example sql_floor -- \
//!     .quarry/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf eval/sql/chinook.jsonl [THREADS]
//! ```
//!
//! Per question, against a system turn of [`SYSTEM_TOKENS`] tokens (the size of the schema
//! prompt `ask` sends for Chinook) that is evaluated once and kept, as the prefix cache keeps it:
//!
//! - **prefill**: the question's own turn, evaluated in one batch. It is the question alone, with
//!   no retrieved examples, so it is shorter than what `ask` evaluates;
//! - **decode**: the gold SQL fed back one token per decode step, exactly the steps generation
//!   takes to write it (n tokens need n steps; the end-of-turn token comes from the last one's
//!   logits). No sampling, no grammar, no repair, no answer turn: each of those only adds;
//! - **with drafts**: the same decode with prompt-lookup drafts (`llm::local::lookup`, as the
//!   worker drafts): each step feeds the gold token with the draft looked up after it, keeps
//!   the drafted tokens that match the gold text and drops the rest, so it takes fewer, wider
//!   steps. It first prints what a step costs by its width.
//!
//! So `prefill + decode` is what the question costs if the model wrote the right query first
//! time, in the fewest tokens, and the answer were read off the table without the model. The
//! report also counts how many gold tokens are the model's own greedy choice, a check that the
//! gold text is close to what the model would write (fewer tokens than it would, if anything).

use std::io::BufRead;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use quarry_shared::llm::local::lookup::Lookup;

/// Tokens in the kept system turn: the Chinook schema prompt's size in the eval's debug log.
const SYSTEM_TOKENS: usize = 1_727;

/// Tokens per prefill batch.
const BATCH: usize = 512;

/// Drafting as the worker does it with its defaults (`LOCAL_LLM_DRAFT=3`).
const LOOKUP: Lookup = Lookup::agreed(3);

/// One question's figures.
struct Row {
    id: String,
    question_tokens: usize,
    sql_tokens: usize,
    greedy_agrees: usize,
    prefill_ms: f64,
    decode_ms: f64,
    /// Decode steps and time with prompt-lookup drafts, as the worker drafts.
    drafted_steps: usize,
    drafted_ms: f64,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sql_floor MODEL.gguf QUESTIONS.jsonl [THREADS]";
    let model_path = PathBuf::from(args.next().context(usage)?);
    let questions_path = PathBuf::from(args.next().context(usage)?);
    let threads: i32 = match args.next() {
        Some(t) => t.parse().context("THREADS must be a number")?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get() as i32),
    };
    let questions = read_questions(&questions_path)?;

    let backend = LlamaBackend::init()?;
    let model = LlamaModel::load_from_file(&backend, &model_path, &LlamaModelParams::default())?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(4096))
        .with_n_batch(BATCH as u32)
        .with_n_ubatch(BATCH as u32)
        .with_n_seq_max(1)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params)?;
    let mut batch = LlamaBatch::new(BATCH, 1);

    let ddl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/0002_chinook.sql"
    ))?;
    let mut system = special(&model, "<|im_start|>");
    system.extend(text(
        &model,
        &format!("system\nYou write PostgreSQL queries. Database:\n{ddl}"),
    ));
    system.truncate(SYSTEM_TOKENS - 2);
    system.extend(special(&model, "<|im_end|>"));
    system.extend(text(&model, "\n"));
    let started = Instant::now();
    evaluate(&mut ctx, &mut batch, &system, 0)?;
    println!(
        "threads {threads}; system turn: {} tokens in {:.1} s",
        system.len(),
        started.elapsed().as_secs_f64()
    );

    step_widths(&mut ctx, &mut batch, &system)?;

    let mut rows = Vec::new();
    for (id, question, sql) in questions {
        // Back to the system turn alone, as the prefix cache restores it.
        ctx.kv_cache_seq_rm(0, Some(system.len() as u32), None)?;
        let mut turn = special(&model, "<|im_start|>");
        turn.extend(text(&model, &format!("user\n{question}")));
        turn.extend(special(&model, "<|im_end|>"));
        turn.extend(text(&model, "\n"));
        turn.extend(special(&model, "<|im_start|>"));
        turn.extend(text(&model, "assistant\n"));
        let gold = text(&model, &sql);

        let started = Instant::now();
        let mut last = evaluate(&mut ctx, &mut batch, &turn, system.len())?;
        let prefill_ms = millis(started);
        let mut greedy_agrees = 0;
        let started = Instant::now();
        for (position, token) in (system.len() + turn.len()..).zip(&gold) {
            if argmax(ctx.get_logits_ith(last)) == Some(*token) {
                greedy_agrees += 1;
            }
            batch.clear();
            batch.add(*token, position as i32, &[0], true)?;
            ctx.decode(&mut batch)?;
            last = 0;
        }
        let decode_ms = millis(started);

        // Again with drafts: the gold token of each step plus the draft looked up after it, in
        // one batch; the drafted tokens that match the gold text are kept, the rest dropped.
        ctx.kv_cache_seq_rm(0, Some((system.len() + turn.len()) as u32), None)?;
        let mut seen: Vec<i32> = system.iter().chain(&turn).map(|t| t.0).collect();
        let started = Instant::now();
        let mut drafted_steps = 0;
        let mut at = 0;
        while at < gold.len() {
            seen.push(gold[at].0);
            let draft = LOOKUP.draft(&seen, gold.len() - at - 1);
            let kept = draft
                .iter()
                .zip(&gold[at + 1..])
                .take_while(|(d, g)| **d == g.0)
                .count();
            batch.clear();
            batch.add(gold[at], seen.len() as i32 - 1, &[0], true)?;
            for (i, token) in draft.iter().enumerate() {
                batch.add(LlamaToken(*token), (seen.len() + i) as i32, &[0], true)?;
            }
            ctx.decode(&mut batch)?;
            seen.extend(&draft[..kept]);
            ctx.kv_cache_seq_rm(0, Some(seen.len() as u32), None)?;
            drafted_steps += 1;
            at += 1 + kept;
        }
        let drafted_ms = millis(started);
        let row = Row {
            id,
            question_tokens: turn.len(),
            sql_tokens: gold.len(),
            greedy_agrees,
            prefill_ms,
            decode_ms,
            drafted_steps,
            drafted_ms,
        };
        println!(
            "{}: question {} tokens, prefill {:.0} ms; SQL {} tokens ({} the greedy choice), decode {:.0} ms; floor {:.2} s; with drafts {} steps, {:.2} s",
            row.id,
            row.question_tokens,
            row.prefill_ms,
            row.sql_tokens,
            row.greedy_agrees,
            row.decode_ms,
            (row.prefill_ms + row.decode_ms) / 1000.0,
            row.drafted_steps,
            (row.prefill_ms + row.drafted_ms) / 1000.0
        );
        rows.push(row);
    }
    summarise(&rows);
    Ok(())
}

/// What one decode step costs by its width: the chosen token plus 0 to 7 drafted ones, each
/// with logits (how the worker checks a prompt-lookup draft), right after the system turn.
fn step_widths(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    system: &[LlamaToken],
) -> anyhow::Result<()> {
    const REPEATS: usize = 8;
    for width in [1, 2, 3, 4, 5, 8] {
        let mut took = Vec::with_capacity(REPEATS);
        for _ in 0..REPEATS {
            ctx.kv_cache_seq_rm(0, Some(system.len() as u32), None)?;
            batch.clear();
            for (i, token) in system[100..100 + width].iter().enumerate() {
                batch.add(*token, (system.len() + i) as i32, &[0], true)?;
            }
            let started = Instant::now();
            ctx.decode(batch)?;
            took.push(millis(started));
        }
        took.sort_by(f64::total_cmp);
        println!(
            "decode step of width {width}: median {:.1} ms",
            took[REPEATS / 2]
        );
    }
    Ok(())
}

/// `(id, question, gold sql)` from an eval JSONL file.
fn read_questions(path: &PathBuf) -> anyhow::Result<Vec<(String, String, String)>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let field = |name: &str| {
            v[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("a line without \"{name}\""))
        };
        out.push((field("id")?, field("question")?, field("sql")?));
    }
    Ok(out)
}

/// Evaluates `tokens` from `position` on in batches; the logits index of the last one.
fn evaluate(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    tokens: &[LlamaToken],
    position: usize,
) -> anyhow::Result<i32> {
    let mut last = 0;
    for (c, chunk) in tokens.chunks(BATCH).enumerate() {
        batch.clear();
        for (i, token) in chunk.iter().enumerate() {
            let at = position + c * BATCH + i;
            batch.add(*token, at as i32, &[0], at + 1 == position + tokens.len())?;
        }
        ctx.decode(batch)?;
        last = chunk.len() as i32 - 1;
    }
    Ok(last)
}

fn special(model: &LlamaModel, marker: &str) -> Vec<LlamaToken> {
    model.vocab().tokenize(marker.as_bytes(), false, true)
}

fn text(model: &LlamaModel, text: &str) -> Vec<LlamaToken> {
    model.vocab().tokenize(text.as_bytes(), false, false)
}

fn argmax(logits: &[f32]) -> Option<LlamaToken> {
    logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| LlamaToken(i as i32))
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// One figure of a question.
type Figure = dyn Fn(&Row) -> f64;

/// Medians and 95th percentiles over the questions, and how many are under 3 s.
fn summarise(rows: &[Row]) {
    let stat = |f: &Figure| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.95))
    };
    if rows.is_empty() {
        println!("no questions");
        return;
    }
    let tokens: usize = rows.iter().map(|r| r.sql_tokens).sum();
    let agrees: usize = rows.iter().map(|r| r.greedy_agrees).sum();
    let decode: f64 = rows.iter().map(|r| r.decode_ms).sum();
    let lines: [(&str, &Figure); 7] = [
        ("question tokens", &|r| r.question_tokens as f64),
        ("SQL tokens", &|r| r.sql_tokens as f64),
        ("prefill ms", &|r| r.prefill_ms),
        ("decode ms", &|r| r.decode_ms),
        ("floor ms", &|r| r.prefill_ms + r.decode_ms),
        ("decode steps with drafts", &|r| r.drafted_steps as f64),
        ("floor with drafts ms", &|r| r.prefill_ms + r.drafted_ms),
    ];
    for (name, f) in lines {
        let (p50, p95) = stat(f);
        println!("{name}: p50 {p50:.0}, p95 {p95:.0}");
    }
    println!(
        "{} questions; {tokens} SQL tokens, {agrees} ({:.0} %) the greedy choice; {:.1} ms per decode step; {} of {} floors under 3 s",
        rows.len(),
        100.0 * agrees as f64 / tokens as f64,
        decode / tokens as f64,
        rows.iter().filter(|r| r.prefill_ms + r.decode_ms < 3000.0).count(),
        rows.len()
    );
    println!(
        "with drafts: {} floors under 3 s",
        rows.iter()
            .filter(|r| r.prefill_ms + r.drafted_ms < 3000.0)
            .count()
    );
}
