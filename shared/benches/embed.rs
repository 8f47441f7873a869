//! Embedding throughput: all-MiniLM-L6-v2 on the CPU, 32 chunks of ~200 words per call (about
//! 250 word pieces, just under the model's 256 window; `Embedder::embed` runs them in batches of
//! 8), as ingestion embeds them.
//!
//! Criterion reports the time per batch and, through `Throughput::Elements`, embeddings per second.
//! Needs the model (`scripts/assets.sh`) and `QUARRY_MODELS_DIR`:
//!
//! Run: `QUARRY_MODELS_DIR=$PWD/.quarry/models cargo bench -p quarry-shared --features embed
//! --bench embed -- --warm-up-time 2 --measurement-time 20`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput};
use quarry_shared::rag::embed::Embedder;

const BATCH: usize = 32;
const WORDS: usize = 200;

/// Varied prose so the tokenizer sees ordinary words, not one word repeated.
const VOCABULARY: &[&str] = &[
    "the",
    "database",
    "vacuum",
    "reclaims",
    "storage",
    "occupied",
    "by",
    "dead",
    "tuples",
    "and",
    "an",
    "index",
    "scan",
    "reads",
    "pages",
    "from",
    "disk",
    "when",
    "statistics",
    "are",
    "stale",
    "planner",
    "chooses",
    "sequential",
    "plans",
    "for",
    "large",
    "tables",
    "with",
    "many",
    "rows",
    "transaction",
    "visibility",
    "map",
    "autovacuum",
    "workers",
    "run",
    "periodically.",
];

fn chunk(seed: usize) -> String {
    (0..WORDS)
        .map(|i| VOCABULARY[(i * 7 + seed * 13 + i / 5) % VOCABULARY.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let dir = std::env::var_os("QUARRY_MODELS_DIR")
        .map(|d| PathBuf::from(d).join("all-minilm-l6-v2"))
        .unwrap_or_else(|| panic!("QUARRY_MODELS_DIR is not set: see this bench's header"));
    let embedder = Embedder::load(&dir).unwrap_or_else(|e| panic!("{e}: {:?}", dir.display()));

    let chunks: Vec<String> = (0..BATCH).map(chunk).collect();
    let texts: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let tokens: usize = texts.iter().map(|t| embedder.count_tokens(t)).sum();
    println!(
        "batch of {BATCH} chunks, {WORDS} words each, {} word pieces on average",
        tokens / BATCH
    );

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_32x200_words", |b| {
        b.iter(|| embedder.embed(black_box(&texts)).expect("embed"))
    });
    group.finish();
    c.final_summary();
}
