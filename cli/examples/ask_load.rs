//! Open-loop load on `POST /v1/ask` with the language model played by a scripted
//! OpenAI-compatible server that answers every call after a fixed delay (500 ms by default), so
//! what is measured is Quarry — routing, memory, the semantic cache, schema context, sql-exec,
//! the answer — and not a model's speed.
//!
//! ```sh
//! eval "$(scripts/stack.sh env)"
//! cargo run --release -p quarry-cli --example ask_load -- target/release/quarry 20 30 distinct
//! ```
//!
//! Arguments: the `quarry` binary, requests per second (open loop: sent on schedule whether or
//! not earlier ones finished, as independent users would), seconds, and `distinct` (every
//! question different: no cache hits) or `repeat` (one question: after the first, cache hits).
//! It starts the scripted model on a free port and `quarry dev` on another (the stack's
//! PostgreSQL, Redis and Chroma from the environment), and stops both when done.
//!
//! Reports latency percentiles in milliseconds (all, cache hits and misses apart), failures,
//! model calls per question, and the orchestration overhead: mean end-to-end time minus the time
//! the scripted model was asked to take for the calls it served.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quarry_shared::testing::llm_server::{Recorded, Reply, ScriptedLlm};

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn system(r: &Recorded) -> String {
    r.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A model that routes to SQL, writes a count query and answers in one sentence.
fn model(r: &Recorded) -> Reply {
    let system = system(r);
    if system.starts_with("You write PostgreSQL") {
        Reply::openai("SELECT count(*) AS invoices FROM invoice WHERE total > 5")
    } else if system.starts_with("You answer questions") {
        Reply::openai("There are 140 such invoices.")
    } else {
        Reply::openai("{\"route\": \"sql\"}")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bin), Some(qps), Some(seconds), Some(mode)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        anyhow::bail!("usage: ask_load QUARRY_BIN QPS SECONDS distinct|repeat [LLM_DELAY_MS]");
    };
    let qps: f64 = qps.parse()?;
    let seconds: u64 = seconds.parse()?;
    let delay = Duration::from_millis(args.get(5).map_or(Ok(500), |s| s.parse())?);
    anyhow::ensure!(qps > 0.0 && qps <= 2000.0 && (1..=600).contains(&seconds));
    let distinct = match mode.as_str() {
        "distinct" => true,
        "repeat" => false,
        other => anyhow::bail!("mode must be distinct or repeat, not {other}"),
    };

    let llm = ScriptedLlm::start().await;
    llm.respond_with(move |r| model(r).after(delay));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _dev = Dev(Command::new(bin)
        .arg("dev")
        .env("PORT", port.to_string())
        .env("JWT_SECRET", quarry_shared::testing::TEST_JWT_SECRET)
        // A fresh cache and rate-limit namespace per run.
        .env("REDIS_KEY_PREFIX", format!("load-{}", std::process::id()))
        .env("LLM_PROVIDERS", "openai")
        .env("OPENAI_BASE_URL", format!("{}v1", llm.url()))
        .env("OPENAI_MODEL", "scripted")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;
    let started = Instant::now();
    while http
        .get(format!("{base}/health"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "quarry dev did not come up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One user per request: the per-user rate limit (a role's burst) is not what is measured.
    let token = |i: usize| quarry_shared::testing::token(&format!("load-{i}"), "admin", "emea");
    // Warm up: the schema context, the embedder and the engine are built on first use.
    let warm = http
        .post(format!("{base}/v1/ask"))
        .bearer_auth(token(usize::MAX))
        .json(&serde_json::json!({"question": "How many invoices are above 5 dollars? (warm-up)"}))
        .send()
        .await?;
    anyhow::ensure!(
        warm.status().is_success(),
        "warm-up failed: {}",
        warm.text().await?
    );
    let calls_before = llm.hits();

    let total = (qps * seconds as f64).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / qps);
    let mut tasks = Vec::with_capacity(total);
    let start = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let question = if distinct {
            format!(
                "How many invoices above {} dollars were issued to customer {}?",
                5 + i % 7,
                1000 + i
            )
        } else {
            "How many invoices were issued with a total above 5 dollars?".to_owned()
        };
        let (http, url, token) = (http.clone(), format!("{base}/v1/ask"), token(i));
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"question": question}))
                .send()
                .await;
            let body = match response {
                Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
                _ => None,
            };
            (sent.elapsed(), body)
        }));
    }
    let (mut ok, mut hits, mut misses, mut failed) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    for task in tasks {
        let (took, body) = task.await?;
        match body {
            Some(body) => {
                if body["cached"] == true {
                    hits.push(took);
                } else {
                    misses.push(took);
                }
                ok.push(took);
            }
            None => failed += 1,
        }
    }
    let calls = llm.hits() - calls_before;
    anyhow::ensure!(!ok.is_empty(), "no request succeeded ({failed} failed)");
    let mean = ok.iter().sum::<Duration>() / ok.len() as u32;
    let calls_per_question = calls as f64 / total as f64;
    let overhead = mean.as_secs_f64() - calls_per_question * delay.as_secs_f64();
    println!(
        "mode={mode} qps={qps} seconds={seconds} sent={total} ok={} failed={failed} \
         model_calls/question={calls_per_question:.2} mean={:.1}ms overhead_mean={:.1}ms (model delay {}ms)",
        ok.len(),
        mean.as_secs_f64() * 1000.0,
        overhead * 1000.0,
        delay.as_millis(),
    );
    for (label, durations) in [
        ("all", &mut ok),
        ("cache hits", &mut hits),
        ("misses", &mut misses),
    ] {
        println!("  {label}: {}", percentiles(durations));
    }
    Ok(())
}

/// `n=… p50=… p95=… p99=… max=…` in milliseconds (sorts `durations`).
fn percentiles(durations: &mut [Duration]) -> String {
    if durations.is_empty() {
        return "n=0".to_owned();
    }
    durations.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at =
        |q: f64| ms(durations[((durations.len() as f64 * q) as usize).min(durations.len() - 1)]);
    format!(
        "n={} p50={:.1}ms p95={:.1}ms p99={:.1}ms max={:.1}ms",
        durations.len(),
        at(0.50),
        at(0.95),
        at(0.99),
        ms(durations[durations.len() - 1]),
    )
}
