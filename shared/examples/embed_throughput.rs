//! Embedding throughput on real chunk texts, the Rust side of `scripts/bench-embed.sh` (the same
//! texts go through PyTorch sentence-transformers there, in the same run).
//!
//! Usage: `embed_throughput TEXTS.jsonl [ROUNDS]`: one JSON string per line. Loads the model from
//! `QUARRY_MODELS_DIR`, embeds every text once to warm up, then ROUNDS times (default 3), and
//! prints chunks per second of the best round as `rust-candle chunks=N seconds=S chunks_per_s=R`.

use std::path::PathBuf;
use std::time::Instant;

use quarry_shared::rag::embed::{self, Embedder};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        anyhow::bail!("usage: embed_throughput TEXTS.jsonl [ROUNDS]");
    };
    let rounds: usize = args.get(2).map_or(Ok(3), |r| r.parse())?;
    let texts: Vec<String> = std::fs::read_to_string(file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(!texts.is_empty(), "no texts in {file}");
    let dir = std::env::var_os("QUARRY_MODELS_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("QUARRY_MODELS_DIR is not set"))?
        .join(embed::MODEL_FOLDER);
    let embedder = Embedder::load(&dir)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    embedder.embed(&refs)?;
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let vectors = embedder.embed(&refs)?;
        anyhow::ensure!(vectors.len() == texts.len(), "wrong number of vectors");
        best = best.min(started.elapsed().as_secs_f64());
    }
    let tokens: usize = texts
        .iter()
        .map(|t| embedder.count_tokens(t).min(254))
        .sum();
    println!(
        "rust-candle chunks={} mean_tokens={:.0} seconds={best:.2} chunks_per_s={:.1} threads={}",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        texts.len() as f64 / best,
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    Ok(())
}
