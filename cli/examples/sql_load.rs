//! Load generator for `POST /v1/sql` against a running Quarry (`make up`, or `quarry dev`).
//!
//! ```sh
//! eval "$(scripts/stack.sh env)"
//! TOKEN=$(./target/release/quarry token --sub load --role catalog --region emea)
//! cargo run --release -p quarry-cli --example sql_load -- http://127.0.0.1:8080 "$TOKEN" 50 20
//! ```
//!
//! Arguments: base URL, bearer token, concurrent clients (default 50), seconds (default 20, at most
//! 300). Every client sends the same 10-row query in a loop on its own connection; the report gives
//! throughput and latency percentiles of successful requests and counts the failures. It only ever
//! talks to the URL it is given and stops by itself.

use std::time::{Duration, Instant};

const QUERY: &str =
    "SELECT track_id, name, unit_price FROM track WHERE genre_id = $1 ORDER BY track_id LIMIT 10";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(token)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: sql_load BASE_URL TOKEN [CLIENTS] [SECONDS]");
    };
    let clients: usize = args.get(3).map_or(Ok(50), |s| s.parse())?;
    let seconds: u64 = args.get(4).map_or(Ok(20), |s| s.parse())?;
    anyhow::ensure!(
        (1..=1000).contains(&clients) && (1..=300).contains(&seconds),
        "1-1000 clients, 1-300 seconds"
    );
    let url = format!("{}/v1/sql", base.trim_end_matches('/'));
    let body = serde_json::json!({"sql": QUERY, "params": [1]});
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (url, token, body) = (url.clone(), token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()?;
            let (mut latencies, mut failures) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let started = Instant::now();
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(started.elapsed());
                    }
                    _ => failures += 1,
                }
            }
            anyhow::Ok((latencies, failures))
        }));
    }
    let (mut all, mut failures) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, failed) = task.await??;
        all.extend(latencies);
        failures += failed;
    }
    all.sort_unstable();
    anyhow::ensure!(!all.is_empty(), "no request succeeded ({failures} failed)");
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    println!(
        "clients={clients} seconds={seconds} ok={} failed={failures} throughput={:.0} req/s p50={:.2?} p95={:.2?} p99={:.2?} max={:.2?}",
        all.len(),
        all.len() as f64 / seconds as f64,
        at(0.50),
        at(0.95),
        at(0.99),
        all[all.len() - 1],
    );
    Ok(())
}
