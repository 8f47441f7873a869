//! `quarry eval`: rerunnable evaluations.
//!
//! - `quarry eval retrieval`: the PostgreSQL manual question set (`eval/retrieval/`) against what
//!   is ingested, for vector only, full text only and hybrid: recall@k, MRR@k, nDCG@k over pages,
//!   and latency.
//! - `quarry eval ocr`: word accuracy of the extractor's OCR on a scanned page against reference
//!   text.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use quarry_cli::metrics::{rank_scores, word_accuracy, RankScores};
use quarry_retrieve::search::{Mode, Searcher, Viewer};
use quarry_shared::docs::chroma::{ChromaIndex, VectorIndex};
use serde::Deserialize;

/// What to evaluate.
#[derive(Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality on the PostgreSQL manual (ingest it first: `quarry ingest /usr/share/doc/postgresql-doc-15/html`).
    Retrieval(RetrievalArgs),
    /// OCR word accuracy on a scanned page.
    Ocr(OcrArgs),
    /// Text-to-SQL execution accuracy on Chinook, against the running stack (`make up`).
    Sql(super::eval_sql::SqlArgs),
}

/// Arguments of `quarry eval retrieval`.
#[derive(Args)]
pub struct RetrievalArgs {
    /// The question set (JSON lines: id, question, pages).
    #[arg(long, default_value = "eval/retrieval/postgres-manual.jsonl")]
    questions: PathBuf,
    /// Cut-off k.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Role to search as.
    #[arg(long, default_value = "admin")]
    role: String,
    /// Region to search from.
    #[arg(long, default_value = "emea")]
    region: String,
}

/// Arguments of `quarry eval ocr`.
#[derive(Args)]
pub struct OcrArgs {
    /// The scanned document (PDF or image).
    #[arg(long, default_value = ".quarry/data/ocr/linn.pdf")]
    document: PathBuf,
    /// Its reference text.
    #[arg(long, default_value = ".quarry/data/ocr/linn.txt")]
    reference: PathBuf,
}

#[derive(Deserialize)]
struct Question {
    id: String,
    question: String,
    pages: Vec<String>,
}

/// Runs an evaluation and prints its report.
pub async fn run(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Retrieval(args) => retrieval(&args).await,
        EvalCommand::Ocr(args) => ocr(&args).await,
        EvalCommand::Sql(args) => super::eval_sql::run(&args).await,
    }
}

async fn retrieval(args: &RetrievalArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.questions)
        .with_context(|| format!("cannot read {}", args.questions.display()))?;
    let questions: Vec<Question> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("line {}", i + 1)))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!questions.is_empty(), "no questions");

    let (settings, url) = super::settings_with_db()?;
    let url = settings.app_database_url().map_or(url, str::to_owned);
    let pool = quarry_shared::db::pool(&url, 4)?;
    let models = settings.docs.models_dir.clone();
    let embedder =
        tokio::task::spawn_blocking(move || quarry_shared::rag::embed::shared(&models)).await??;
    let index: Option<Arc<dyn VectorIndex>> = match &settings.chroma_url {
        Some(chroma) => Some(Arc::new(
            ChromaIndex::connect(
                reqwest::Client::new(),
                chroma,
                &settings.docs.chroma_collection,
                settings.docs.chroma_timeout,
            )
            .await?,
        )),
        None => None,
    };
    let searcher = Searcher {
        pool,
        embedder,
        index,
        chroma_timeout: settings.docs.chroma_timeout,
    };
    let viewer = Viewer {
        role: &args.role,
        region: &args.region,
    };
    println!(
        "{} questions, k = {}, role {} / region {}",
        questions.len(),
        args.k,
        args.role,
        args.region
    );
    println!(
        "| retriever | recall@{k} | MRR@{k} | nDCG@{k} | p50 ms | p95 ms |",
        k = args.k
    );
    println!("|---|---|---|---|---|---|");
    for mode in [Mode::Vector, Mode::Text, Mode::Hybrid] {
        let mut total = RankScores::default();
        let mut latencies = Vec::with_capacity(questions.len());
        let mut degraded = false;
        for q in &questions {
            let started = Instant::now();
            let outcome = searcher.search(&viewer, &q.question, args.k, mode).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            degraded |= !outcome.degraded.is_empty();
            let pages: Vec<&str> = outcome
                .passages
                .iter()
                .map(|p| p.source.rsplit('/').next().unwrap_or(&p.source))
                .collect();
            let relevant: Vec<&str> = q.pages.iter().map(String::as_str).collect();
            let s = rank_scores(&pages, &relevant, args.k);
            if std::env::var_os("QUARRY_EVAL_VERBOSE").is_some() && s.recall < 1.0 {
                eprintln!(
                    "{:?} {} miss: {} -> {:?}",
                    mode,
                    q.id,
                    q.question,
                    &pages[..pages.len().min(3)]
                );
            }
            total.recall += s.recall;
            total.mrr += s.mrr;
            total.ndcg += s.ndcg;
        }
        let n = questions.len() as f64;
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "| {}{} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} |",
            match mode {
                Mode::Vector => "vector (pgvector)",
                Mode::Text => "full text (PostgreSQL)",
                Mode::Hybrid => "hybrid (RRF: pgvector + full text + Chroma)",
            },
            if degraded { " [degraded]" } else { "" },
            total.recall / n,
            total.mrr / n,
            total.ndcg / n,
            pct(0.5),
            pct(0.95),
        );
    }
    Ok(())
}

async fn ocr(args: &OcrArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.document)
        .with_context(|| format!("cannot read {}", args.document.display()))?;
    let reference = std::fs::read_to_string(&args.reference)
        .with_context(|| format!("cannot read {}", args.reference.display()))?;
    let name = args
        .document
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let started = Instant::now();
    let extracted = tokio::task::spawn_blocking(move || {
        let media = quarry_ingest::extract::sniff(&bytes, name.as_deref(), None)?;
        quarry_ingest::extract::extract(&bytes, media, &quarry_ingest::extract::Limits::default())
    })
    .await??;
    let (accuracy, errors, words) = word_accuracy(&extracted.text, &reference);
    println!(
        "{}: {} page(s), {} OCR'd, {:.1} s; word accuracy {:.1}% ({errors} word edits over {words} reference words)",
        args.document.display(),
        extracted.pages.unwrap_or(1),
        extracted.ocr_pages,
        started.elapsed().as_secs_f64(),
        accuracy * 100.0
    );
    println!("note: the reference text is itself approximate (it is an OCR transcript with its own errors), so this understates accuracy somewhat");
    Ok(())
}
