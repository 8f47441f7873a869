//! Load generator for `POST /v1/retrieve` against a running Quarry (`make up`, or `quarry dev`).
//!
//! ```sh
//! eval "$(scripts/stack.sh env)"
//! TOKEN=$(./target/release/quarry token --sub load --role admin --region emea)
//! cargo run --release -p quarry-cli --example retrieve_load -- http://127.0.0.1:8080 "$TOKEN" 4 30
//! ```
//!
//! Arguments: base URL, bearer token, concurrent clients (default 4), seconds (default 30, at most
//! 600), question file (default `eval/retrieval/postgres-manual.jsonl`). Clients cycle through the
//! questions (distinct queries, so nothing is served from a cache); the report gives throughput,
//! latency percentiles of successful requests, failures, and how many responses were degraded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(token)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: retrieve_load BASE_URL TOKEN [CLIENTS] [SECONDS] [QUESTIONS]");
    };
    let clients: usize = args.get(3).map_or(Ok(4), |s| s.parse())?;
    let seconds: u64 = args.get(4).map_or(Ok(30), |s| s.parse())?;
    let file = args
        .get(5)
        .cloned()
        .unwrap_or_else(|| "eval/retrieval/postgres-manual.jsonl".to_owned());
    anyhow::ensure!(
        (1..=1000).contains(&clients) && (1..=600).contains(&seconds),
        "1-1000 clients, 1-600 seconds"
    );
    let questions: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(&file)?
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["question"].as_str().map(str::to_owned))
            .collect(),
    );
    anyhow::ensure!(!questions.is_empty(), "no questions in {file}");
    let url = format!("{}/v1/retrieve", base.trim_end_matches('/'));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (url, token, questions, next) = (
            url.clone(),
            token.clone(),
            Arc::clone(&questions),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()?;
            let (mut latencies, mut failures, mut degraded) = (Vec::new(), 0usize, 0usize);
            while Instant::now() < deadline {
                let q = &questions[next.fetch_add(1, Ordering::Relaxed) % questions.len()];
                let body = serde_json::json!({"query": q, "top_k": 8});
                let started = Instant::now();
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        latencies.push(started.elapsed());
                        if v["degraded"].as_array().is_some_and(|d| !d.is_empty()) {
                            degraded += 1;
                        }
                    }
                    _ => failures += 1,
                }
            }
            anyhow::Ok((latencies, failures, degraded))
        }));
    }
    let (mut all, mut failures, mut degraded) = (Vec::new(), 0, 0);
    for task in tasks {
        let (latencies, failed, d) = task.await??;
        all.extend(latencies);
        failures += failed;
        degraded += d;
    }
    all.sort_unstable();
    anyhow::ensure!(!all.is_empty(), "no request succeeded ({failures} failed)");
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    println!(
        "clients={clients} seconds={seconds} ok={} failed={failures} degraded={degraded} throughput={:.1} req/s p50={:.2?} p95={:.2?} p99={:.2?} max={:.2?}",
        all.len(),
        all.len() as f64 / seconds as f64,
        at(0.50),
        at(0.95),
        at(0.99),
        all[all.len() - 1],
    );
    Ok(())
}
