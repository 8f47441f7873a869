//! `quarry ask "question"`: asks the running stack (`make up`, or any Quarry at `--url`) as a
//! development user with the given role and region, streaming the answer into the terminal with
//! a spinner until it starts, then the SQL, the first rows and the citations.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use quarry_shared::config::Settings;
use quarry_shared::llm::sse::SseDecoder;
use serde_json::{json, Value};

/// Rows printed under the answer.
const ROWS_SHOWN: usize = 20;

/// Arguments of `quarry ask`.
#[derive(Args)]
pub struct AskArgs {
    /// The question.
    question: String,
    /// The asker's role (admin, analyst, finance, catalog).
    #[arg(long, default_value = "admin")]
    role: String,
    /// The asker's region (americas, apac, emea).
    #[arg(long, default_value = "emea")]
    region: String,
    /// The asker's subject (memory is kept per subject).
    #[arg(long, default_value = "cli-user")]
    sub: String,
    /// auto, sql or docs.
    #[arg(long, default_value = "auto")]
    mode: String,
    /// A conversation id, for follow-up questions.
    #[arg(long)]
    session: Option<String>,
    /// Quarry's base URL (default: this machine's `quarry dev`, http://127.0.0.1:$PORT).
    #[arg(long, env = "QUARRY_URL")]
    url: Option<String>,
    /// Print the whole response as JSON instead.
    #[arg(long)]
    json: bool,
}

/// Asks and prints.
pub async fn run(args: &AskArgs) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let token = super::token::mint(
        &settings,
        &args.sub,
        &args.role,
        &args.region,
        Duration::from_secs(600),
    )?;
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", settings.port));
    let mut body = json!({"question": args.question, "mode": args.mode});
    if let Some(session) = &args.session {
        body["session_id"] = json!(session);
    }
    let mut response = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()?
        .post(format!("{}/v1/ask", base.trim_end_matches('/')))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach Quarry at {base} (is `make up` running?)"))?;
    if !response.status().is_success() {
        let status = response.status();
        let problem: Value = response.json().await.unwrap_or(Value::Null);
        bail!(
            "{status}: {}",
            problem["detail"].as_str().unwrap_or("no detail")
        );
    }

    let spinner = Spinner::start();
    let mut decoder = SseDecoder::new(8 << 20);
    let mut streamed = false;
    let mut done: Option<Value> = None;
    let mut stdout = std::io::stdout();
    while let Some(chunk) = response.chunk().await? {
        for event in decoder.push(&chunk)? {
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            match event.event.as_str() {
                "route" => {
                    spinner.status(&format!("route: {}", data["route"].as_str().unwrap_or("?")))
                }
                "sql" => spinner.status("query ran; writing the answer"),
                "token" if !args.json => {
                    spinner.stop();
                    streamed = true;
                    write!(stdout, "{}", data["text"].as_str().unwrap_or_default())?;
                    stdout.flush()?;
                }
                "done" => done = Some(data),
                "error" => {
                    spinner.stop();
                    bail!(
                        "{}",
                        data["detail"].as_str().unwrap_or("the request failed")
                    );
                }
                _ => {}
            }
        }
    }
    spinner.stop();
    let done = done.context("the answer stream ended early")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    if streamed {
        println!();
    } else {
        println!("{}", done["answer"].as_str().unwrap_or_default());
    }
    print_details(&done);
    Ok(())
}

fn print_details(done: &Value) {
    if let Some(sql) = done["sql"].as_str() {
        println!("\nSQL:\n  {}", sql.replace('\n', "\n  "));
    }
    let columns: Vec<&str> = done["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    if let Some(rows) = done["rows"].as_array().filter(|r| !r.is_empty()) {
        println!("\n{}", columns.join(" | "));
        for row in rows.iter().take(ROWS_SHOWN) {
            let cells: Vec<String> = row
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            println!("{}", cells.join(" | "));
        }
        if rows.len() > ROWS_SHOWN {
            println!("… {} more rows", rows.len() - ROWS_SHOWN);
        }
    }
    if let Some(citations) = done["citations"].as_array().filter(|c| !c.is_empty()) {
        println!();
        for c in citations {
            let page = c["page"]
                .as_i64()
                .map(|p| format!(", page {p}"))
                .unwrap_or_default();
            println!(
                "[{}] {}{page}",
                c["n"],
                c["source"].as_str().unwrap_or_default()
            );
        }
    }
    let mut notes = Vec::new();
    if done["cached"] == true {
        notes.push("cached".to_owned());
    }
    if let Some(degraded) = done["degraded"].as_array().filter(|d| !d.is_empty()) {
        let names: Vec<&str> = degraded.iter().filter_map(Value::as_str).collect();
        notes.push(format!("degraded: {}", names.join(", ")));
    }
    if let Some(total) = done["timings_ms"]["total"].as_u64() {
        notes.push(format!("{total} ms"));
    }
    eprintln!("\n({})", notes.join("; "));
}

/// A spinner on stderr while nothing has been printed yet; silent when stderr is not a
/// terminal (pipes and CI logs get no control characters).
struct Spinner {
    state: Option<std::sync::Arc<std::sync::Mutex<(bool, String)>>>,
}

impl Spinner {
    fn start() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { state: None };
        }
        let state = std::sync::Arc::new(std::sync::Mutex::new((true, "thinking".to_owned())));
        let shared = std::sync::Arc::clone(&state);
        tokio::spawn(async move {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            for frame in FRAMES.iter().cycle() {
                {
                    let guard = shared
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if !guard.0 {
                        break;
                    }
                    eprint!("\r\x1b[2K{frame} {}…", guard.1);
                }
                tokio::time::sleep(Duration::from_millis(90)).await;
            }
        });
        Self { state: Some(state) }
    }

    fn status(&self, text: &str) {
        if let Some(state) = &self.state {
            state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .1 = text.to_owned();
        }
    }

    fn stop(&self) {
        if let Some(state) = &self.state {
            let mut guard = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if guard.0 {
                guard.0 = false;
                eprint!("\r\x1b[2K");
            }
        }
    }
}
