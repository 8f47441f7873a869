//! The local provider against the real 0.5B Qwen2.5-Coder GGUF (`scripts/assets.sh --llm small`):
//! answers, grammar-constrained JSON and SQL, the prompt-prefix cache, the bounded queue,
//! cancellation and the errors a caller can cause.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use quarry_shared::config::llm::LocalSettings;
use quarry_shared::llm::gbnf;
use quarry_shared::llm::local::{LoadError, LocalProvider};
use quarry_shared::llm::{ChatRequest, FinishReason, JsonSchema, LlmError, LlmProvider};
use tokio::sync::OnceCell;

fn model_path() -> PathBuf {
    let dir = std::env::var_os("QUARRY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.quarry/models"))
        });
    dir.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
}

fn settings(queue: usize) -> LocalSettings {
    with_draft(queue, 3)
}

fn with_draft(queue: usize, draft: usize) -> LocalSettings {
    LocalSettings {
        model_path: model_path(),
        threads: 0,
        context: 2048,
        queue,
        timeout: std::time::Duration::from_secs(300),
        prefix_cache_bytes: 512 << 20,
        draft,
    }
}

async fn load(queue: usize) -> Arc<LocalProvider> {
    let settings = settings(queue);
    tokio::task::spawn_blocking(move || LocalProvider::load(&settings))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e} (run scripts/assets.sh --llm small)"))
}

/// One shared model for the tests that do not depend on the queue size: loading is seconds.
async fn shared() -> Arc<LocalProvider> {
    static MODEL: OnceCell<Arc<LocalProvider>> = OnceCell::const_new();
    Arc::clone(MODEL.get_or_init(|| load(8)).await)
}

#[tokio::test]
async fn answers_a_question() {
    let model = shared().await;
    let mut request = ChatRequest::new(
        "You are a calculator. Answer with the number only.",
        "What is 17 + 25?",
    );
    request.max_tokens = 16;
    let answer = model.complete(&request).await.unwrap();
    assert!(answer.text.contains("42"), "{answer:?}");
    assert_eq!(answer.provider, "local");
    assert!(answer.usage.prompt_tokens > 10, "{answer:?}");
    assert!(answer.usage.completion_tokens >= 1, "{answer:?}");
}

#[tokio::test]
async fn json_schema_output_follows_the_schema() {
    let model = shared().await;
    let mut request = ChatRequest::new(
        "Classify the question: sql for questions about sales data, docs for policies.",
        "What is our data-retention policy?",
    );
    request.max_tokens = 60;
    request.json_schema = Some(JsonSchema {
        name: "route".into(),
        schema: serde_json::json!({
            "type": "object",
            "properties": {
                "route": {"type": "string", "enum": ["sql", "docs", "both", "none"]},
                "confidence": {"type": "number"}
            },
            "required": ["route", "confidence"],
            "additionalProperties": false
        }),
    });
    let answer = model.complete(&request).await.unwrap();
    let value: serde_json::Value = serde_json::from_str(answer.text.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", answer.text));
    let route = value["route"].as_str().unwrap();
    assert!(["sql", "docs", "both", "none"].contains(&route), "{value}");
    assert!(value["confidence"].is_number(), "{value}");
    assert_eq!(value.as_object().unwrap().len(), 2, "{value}");
}

/// Without the grammar the model follows the question's wording to a table that does not
/// exist; with it, it cannot.
#[tokio::test]
async fn the_sql_grammar_keeps_names_inside_the_schema() {
    let model = shared().await;
    let system = "Write one PostgreSQL query. Answer with the SQL only.\n\
                  CREATE TABLE customer (customer_id integer PRIMARY KEY, first_name text, country text);";
    let mut request = ChatRequest::new(system, "Select all rows from the clients table.");
    request.max_tokens = 60;
    let free = model.complete(&request).await.unwrap().text;
    request.grammar = Some(gbnf::sql::grammar(
        &["customer", "customer_id", "first_name", "country"],
        &["customer"],
    ));
    let constrained = model.complete(&request).await.unwrap().text;
    let lower = constrained.to_ascii_lowercase();
    assert!(lower.contains("select"), "{constrained}");
    assert!(
        !lower.contains("clients"),
        "constrained: {constrained} (unconstrained: {free})"
    );
    assert!(!constrained.contains("```"), "{constrained}");
    // Asked for words, the model still has to write a statement.
    request.messages[0].content = "Is a query over customer the right one? Explain.".into();
    let statement = model.complete(&request).await.unwrap().text;
    let start = statement.trim_start().to_ascii_lowercase();
    assert!(
        start.starts_with("select") || start.starts_with("with") || start.starts_with('('),
        "{statement}"
    );
}

#[tokio::test]
async fn a_known_system_turn_is_not_evaluated_again() {
    let model = load(4).await;
    let system_a = format!(
        "You answer questions about this schema.\n{}",
        "CREATE TABLE t (id integer, name text, price numeric);\n".repeat(20)
    );
    let system_b = format!(
        "Other instructions.\n{}",
        "CREATE TABLE u (x integer);\n".repeat(20)
    );
    let ask = |system: &str, q: &str| {
        let mut r = ChatRequest::new(system, q);
        r.max_tokens = 4;
        r
    };
    model
        .complete(&ask(&system_a, "How many rows?"))
        .await
        .unwrap();
    let after_first = model.stats();
    // A different system turn replaces what the context holds...
    model.complete(&ask(&system_b, "Anything?")).await.unwrap();
    let after_second = model.stats();
    // ...and the first one comes back from the prefix cache, not from evaluation.
    let third = model
        .complete(&ask(&system_a, "What is the most expensive?"))
        .await
        .unwrap();
    let after_third = model.stats();
    let reused = after_third.prompt_tokens_reused - after_second.prompt_tokens_reused;
    let evaluated = after_third.prompt_tokens_evaluated - after_second.prompt_tokens_evaluated;
    // The system turn is ~270 tokens; the question ~15.
    assert!(
        reused >= 250,
        "reused {reused} of {} prompt tokens",
        third.usage.prompt_tokens
    );
    assert!(evaluated < 40, "evaluated {evaluated}");
    assert_eq!(reused + evaluated, u64::from(third.usage.prompt_tokens));
    assert!(
        after_first.prompt_tokens_evaluated >= 250,
        "{after_first:?}"
    );
}

#[tokio::test]
async fn drafting_writes_the_same_text_in_fewer_steps() {
    let load_with = |draft| async move {
        let settings = with_draft(2, draft);
        tokio::task::spawn_blocking(move || LocalProvider::load(&settings))
            .await
            .unwrap()
            .unwrap()
    };
    let (drafting, plain) = (load_with(3).await, load_with(0).await);
    // A query that copies its example's joins, as text-to-SQL answers do.
    let mut copy = ChatRequest::new(
        "You write PostgreSQL queries. Example: SELECT c.first_name, c.last_name, \
         sum(i.total) AS spent FROM customer c JOIN invoice i ON i.customer_id = c.customer_id \
         GROUP BY c.customer_id, c.first_name, c.last_name ORDER BY spent DESC LIMIT 5",
        "Write the example query again, with LIMIT 3 instead of LIMIT 5. SQL only.",
    );
    copy.max_tokens = 80;
    let with = drafting.complete(&copy).await.unwrap();
    let without = plain.complete(&copy).await.unwrap();
    assert_eq!(with.text, without.text);
    assert!(with.text.contains("customer_id"), "{}", with.text);
    let (d, p) = (drafting.stats(), plain.stats());
    assert_eq!(d.tokens_generated, p.tokens_generated);
    assert!(d.draft_tokens_kept > 5, "{d:?}");
    assert!(d.draft_tokens_kept <= d.draft_tokens, "{d:?}");
    assert_eq!(
        d.decode_steps + d.draft_tokens_kept,
        d.tokens_generated,
        "every token is a step's own or a kept draft: {d:?}"
    );
    assert_eq!((p.draft_tokens, p.decode_steps), (0, p.tokens_generated));

    // Sampled text cannot be checked against a draft: nothing is drafted.
    let mut sampled = copy.clone();
    sampled.temperature = 0.7;
    drafting.complete(&sampled).await.unwrap();
    assert_eq!(drafting.stats().draft_tokens, d.draft_tokens);
}

#[tokio::test]
async fn streaming_yields_the_answer_in_pieces() {
    let model = shared().await;
    let mut request = ChatRequest::new("Answer briefly.", "Name three primary colours.");
    request.max_tokens = 40;
    let mut stream = model.stream(&request).await.unwrap();
    let mut pieces = Vec::new();
    while let Some(piece) = stream.next().await {
        pieces.push(piece.unwrap());
    }
    assert!(pieces.len() > 2, "{pieces:?}");
    assert!(
        pieces.concat().to_ascii_lowercase().contains("red"),
        "{pieces:?}"
    );
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_with_a_retry_delay() {
    let model = load(1).await;
    let mut long = ChatRequest::new("Write at length.", "Tell a long story about a lighthouse.");
    long.max_tokens = 200;
    // Running (taken off the queue)...
    let running = model.stream(&long).await.unwrap();
    // ...one waiting in the queue's only place...
    let waiting = {
        let model = Arc::clone(&model);
        let mut short = ChatRequest::new("", "Say hi.");
        short.max_tokens = 4;
        tokio::spawn(async move { model.complete(&short).await })
    };
    while model.queued() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...so a third is refused without waiting.
    let started = std::time::Instant::now();
    let refused = model.complete(&long).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(matches!(refused, LlmError::Busy { .. }), "{refused:?}");
    assert!(refused.retry_after().unwrap() >= Duration::from_secs(1));
    drop(running);
    let waited = waiting.await.unwrap().unwrap();
    assert!(!waited.text.is_empty());
}

#[tokio::test]
async fn a_caller_that_goes_away_stops_the_generation() {
    let model = load(2).await;
    let mut long = ChatRequest::new(
        "Write at length.",
        "Describe the history of Rome in detail.",
    );
    long.max_tokens = 400;
    let before = model.stats();
    let mut stream = model.stream(&long).await.unwrap();
    let _first = stream.next().await.unwrap().unwrap();
    drop(stream);
    let mut short = ChatRequest::new("", "Say ok.");
    short.max_tokens = 3;
    model.complete(&short).await.unwrap();
    let after = model.stats();
    assert!(
        after.tokens_generated - before.tokens_generated < 100,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.jobs - before.jobs, 2);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let model = shared().await;
    let huge = ChatRequest::new("x ".repeat(5_000), "q");
    let err = model.complete(&huge).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Refused { status: 400, message, .. } if message.contains("does not fit")),
        "{err:?}"
    );
    let mut bad_grammar = ChatRequest::new("", "q");
    bad_grammar.grammar = Some("root ::= undefined-rule".into());
    let err = model.complete(&bad_grammar).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Refused { status: 400, .. }),
        "{err:?}"
    );
    let mut bad_schema = ChatRequest::new("", "q");
    bad_schema.json_schema = Some(JsonSchema {
        name: "x".into(),
        schema: serde_json::json!({"anyOf": []}),
    });
    let err = model.complete(&bad_schema).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Refused { status: 400, .. }),
        "{err:?}"
    );
    // The model still answers after them.
    let mut ok = ChatRequest::new("", "Say yes.");
    ok.max_tokens = 3;
    let answer = model.complete(&ok).await.unwrap();
    assert!(matches!(
        answer.finish,
        FinishReason::Stop | FinishReason::Length
    ));
}

#[test]
fn a_missing_model_file_says_how_to_get_it() {
    let mut s = settings(1);
    s.model_path = PathBuf::from("/nonexistent/model.gguf");
    let err = LocalProvider::load(&s).unwrap_err();
    assert!(matches!(err, LoadError::Missing(_)));
    assert!(err.to_string().contains("scripts/assets.sh"), "{err}");
}
