//! The local model's speed on this machine: load time, a cold prompt (nothing cached), the same
//! system turn with a new question (prefix cache), generation speed, and the grammar's cost.
//!
//! ```sh
//! cargo run --release -p quarry-shared --features local-llm --example local_llm_bench -- \
//!     .quarry/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
//! ```
//!
//! The system turn is Chinook's DDL from `migrations/0002_chinook.sql` (comments included), cut
//! to about `SCHEMA_CHARS` characters: the size of the schema context `ask` sends.

use std::path::PathBuf;
use std::time::Instant;

use quarry_shared::config::llm::LocalSettings;
use quarry_shared::llm::local::LocalProvider;
use quarry_shared::llm::{gbnf, ChatRequest, LlmProvider};

const SCHEMA_CHARS: usize = 4_400;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let model_path = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: local_llm_bench MODEL.gguf [THREADS]"))?,
    );
    let threads = std::env::args().nth(2).map_or(Ok(0), |t| t.parse())?;
    let ddl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/0002_chinook.sql"
    ))?;
    let schema: String = ddl.chars().take(SCHEMA_CHARS).collect();
    let system = format!(
        "You write PostgreSQL queries that answer questions about this database. \
         Answer with the SQL only.\n\nDatabase:\n{schema}"
    );
    let settings = LocalSettings {
        model_path,
        threads,
        context: 4096,
        queue: 4,
        timeout: std::time::Duration::from_secs(300),
        prefix_cache_bytes: 512 << 20,
        draft: 3,
    };
    let started = Instant::now();
    let model = tokio::task::spawn_blocking(move || LocalProvider::load(&settings)).await??;
    println!("load: {:.2} s", started.elapsed().as_secs_f64());

    let names = [
        "customer",
        "country",
        "invoice",
        "total",
        "billing_country",
        "track",
        "genre",
        "name",
        "genre_id",
        "invoice_id",
        "customer_id",
    ];
    let tables = ["customer", "invoice", "track", "genre"];
    let questions = [
        "How many customers are there in each country?",
        "What is the total invoiced per billing country?",
        "How many tracks does each genre have?",
        "Which 5 customers spent the most?",
    ];
    for (i, question) in questions.iter().enumerate() {
        for grammar in [false, true] {
            let mut request = ChatRequest::new(&system, *question);
            request.max_tokens = 64;
            if grammar {
                request.grammar = Some(gbnf::sql::grammar(&names, &tables));
            }
            let before = model.stats();
            let started = Instant::now();
            let answer = model.complete(&request).await?;
            let took = started.elapsed().as_secs_f64();
            let after = model.stats();
            println!(
                "q{i} grammar={grammar}: {took:.2} s, prompt {} tokens ({} evaluated, {} reused), {} generated: {:?}",
                answer.usage.prompt_tokens,
                after.prompt_tokens_evaluated - before.prompt_tokens_evaluated,
                after.prompt_tokens_reused - before.prompt_tokens_reused,
                answer.usage.completion_tokens,
                answer.text.replace('\n', " "),
            );
        }
    }
    // Generation speed alone: a long answer after a short prompt.
    let mut long = ChatRequest::new("", "Write a 200-word story about a lighthouse.");
    long.max_tokens = 200;
    model.complete(&long).await?;
    long.messages[0].content = "Write a 200-word story about a harbour.".into();
    let started = Instant::now();
    let answer = model.complete(&long).await?;
    println!(
        "generation: {} tokens in {:.2} s = {:.1} tokens/s (prompt included)",
        answer.usage.completion_tokens,
        started.elapsed().as_secs_f64(),
        f64::from(answer.usage.completion_tokens) / started.elapsed().as_secs_f64()
    );
    Ok(())
}
