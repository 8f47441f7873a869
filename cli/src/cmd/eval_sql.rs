//! `quarry eval sql`: execution accuracy of text-to-SQL on a question set with gold SQL, against
//! a running Quarry (`make up`): each question goes to `POST /v1/ask` in `sql` mode; the gold
//! query, the first generated query and the final one are run through `POST /v1/sql` and their
//! results compared ([`quarry_cli::metrics::same_result`]). Reports accuracy on the first
//! attempt and after repair, mean attempts, and p50/p95 latency of the whole question.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use quarry_cli::metrics::same_result;
use quarry_shared::config::Settings;
use serde::Deserialize;
use serde_json::{json, Value};

/// Arguments of `quarry eval sql`.
#[derive(Args)]
pub struct SqlArgs {
    /// The question set (JSON lines: id, question, sql, ordered).
    #[arg(long, default_value = "eval/sql/chinook.jsonl")]
    questions: PathBuf,
    /// Quarry's base URL (default: this machine's `quarry dev`).
    #[arg(long, env = "QUARRY_URL")]
    url: Option<String>,
    /// Role to ask as.
    #[arg(long, default_value = "admin")]
    role: String,
    /// Region to ask from.
    #[arg(long, default_value = "emea")]
    region: String,
    /// Only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// Write one JSON line per question here.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Question {
    id: String,
    question: String,
    sql: String,
    #[serde(default)]
    ordered: bool,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach Quarry at {}", self.base))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// The rows of `sql`, or `None` when it does not run.
    async fn rows(&self, sql: &str) -> anyhow::Result<Option<Vec<Vec<Value>>>> {
        let (status, body) = self
            .post("/v1/sql", json!({"sql": sql, "max_rows": 1000}))
            .await?;
        if status != 200 {
            return Ok(None);
        }
        Ok(serde_json::from_value(body["rows"].clone()).ok())
    }
}

/// Runs the evaluation.
pub async fn run(args: &SqlArgs) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let text = std::fs::read_to_string(&args.questions)
        .with_context(|| format!("cannot read {}", args.questions.display()))?;
    let mut questions = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let q: Question = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", args.questions.display(), n + 1))?;
        questions.push(q);
    }
    if let Some(limit) = args.limit {
        questions.truncate(limit);
    }
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(900))
            .build()?,
        base: args
            .url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", settings.port))
            .trim_end_matches('/')
            .to_owned(),
        token: super::token::mint(
            &settings,
            "eval-sql",
            &args.role,
            &args.region,
            Duration::from_secs(86_400),
        )?,
    };
    let mut report = match &args.report {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => None,
    };

    let (mut first_ok, mut final_ok, mut attempts_total, mut failed) =
        (0usize, 0usize, 0usize, 0usize);
    let mut latencies: Vec<f64> = Vec::new();
    for q in &questions {
        let gold = client
            .rows(&q.sql)
            .await?
            .with_context(|| format!("the gold SQL of {} does not run", q.id))?;
        let started = Instant::now();
        // Every question starts a fresh session and skips nothing: the cache is scoped by the
        // question, and each question is asked once.
        let (status, body) = client
            .post("/v1/ask", json!({"question": q.question, "mode": "sql"}))
            .await?;
        let latency = started.elapsed().as_secs_f64();
        latencies.push(latency);
        let attempts = body["attempts"].as_array().cloned().unwrap_or_default();
        attempts_total += attempts.len();
        let first = match attempts.first() {
            Some(a) if a.get("error").is_none() => match a["sql"].as_str() {
                Some(sql) => client
                    .rows(sql)
                    .await?
                    .is_some_and(|rows| same_result(&gold, &rows, q.ordered)),
                None => false,
            },
            _ => false,
        };
        let last = match (status, body["sql"].as_str()) {
            (200, Some(sql)) => client
                .rows(sql)
                .await?
                .is_some_and(|rows| same_result(&gold, &rows, q.ordered)),
            _ => false,
        };
        if status != 200 {
            failed += 1;
        }
        first_ok += usize::from(first);
        final_ok += usize::from(last);
        eprintln!(
            "{:<6} {} {} {:>6.1}s{}  {}",
            q.id,
            if first { "✓" } else { "·" },
            if last { "✓" } else { "✗" },
            latency,
            if body["cached"] == true {
                " (cached)"
            } else {
                ""
            },
            q.question
        );
        if let Some(file) = report.as_mut() {
            let line = json!({
                "id": q.id, "question": q.question, "gold": q.sql, "status": status,
                "sql": body["sql"], "attempts": attempts, "first_correct": first,
                "correct": last, "latency_s": latency, "timings_ms": body["timings_ms"],
                "problem": if status == 200 { Value::Null } else { body.clone() },
            });
            writeln!(file, "{line}")?;
        }
    }

    let n = questions.len().max(1) as f64;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    println!("questions            {}", questions.len());
    println!(
        "first attempt        {:.1} % ({first_ok})",
        100.0 * first_ok as f64 / n
    );
    println!(
        "after repair         {:.1} % ({final_ok})",
        100.0 * final_ok as f64 / n
    );
    println!("no answer (non-200)  {failed}");
    println!("mean attempts        {:.2}", attempts_total as f64 / n);
    println!(
        "latency p50 / p95    {:.1} s / {:.1} s",
        pct(0.5),
        pct(0.95)
    );
    Ok(())
}
