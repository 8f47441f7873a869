//! The LLM providers against a scripted server that speaks OpenAI's and Gemini's wire formats:
//! parsing, structured output, streaming, retries (with `Retry-After`), timeouts, the circuit
//! breaker opening and half-opening, fallback, and the fast 503 when every provider is open.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use quarry_shared::http::ApiError;
use quarry_shared::llm::breaker::State;
use quarry_shared::llm::chain::FallbackChain;
use quarry_shared::llm::gemini::{GeminiProvider, TaskType};
use quarry_shared::llm::openai::OpenAiProvider;
use quarry_shared::llm::resilient::{ResiliencePolicy, Resilient};
use quarry_shared::llm::retry::RetryPolicy;
use quarry_shared::llm::{ChatRequest, FinishReason, JsonSchema, LlmError, LlmProvider};
use quarry_shared::testing::llm_server::{Reply, ScriptedLlm};
use secrecy::SecretString;
use serde_json::json;

const IDLE: Duration = Duration::from_secs(5);

fn openai(server: &ScriptedLlm, key: Option<&str>) -> Arc<dyn LlmProvider> {
    let base = format!("{}v1", server.url()).parse().unwrap();
    Arc::new(
        OpenAiProvider::new(
            reqwest::Client::new(),
            &base,
            key.map(|k| SecretString::from(k.to_owned())),
            "scripted-model",
            IDLE,
        )
        .unwrap(),
    )
}

fn gemini_provider(server: &ScriptedLlm, idle: Duration) -> GeminiProvider {
    GeminiProvider::new(
        reqwest::Client::new(),
        server.url().parse().unwrap(),
        SecretString::from("gemini-secret-key".to_owned()),
        "gemini-test",
        "embed-test",
        idle,
    )
}

fn gemini(server: &ScriptedLlm) -> Arc<dyn LlmProvider> {
    Arc::new(gemini_provider(server, IDLE))
}

fn policy(retries: u32, threshold: u32, cooldown: Duration) -> ResiliencePolicy {
    ResiliencePolicy {
        attempt_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: retries,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
        breaker_failures: threshold,
        breaker_cooldown: cooldown,
    }
}

fn request() -> ChatRequest {
    ChatRequest::new("You answer briefly.", "How many customers are there?")
}

async fn collect(stream: quarry_shared::llm::TokenStream) -> Vec<Result<String, LlmError>> {
    stream.collect().await
}

#[tokio::test]
async fn openai_completion_sends_schema_and_key() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::openai("{\"route\":\"sql\"}"));
    let mut req = request();
    req.json_schema = Some(JsonSchema {
        name: "route".into(),
        schema: json!({"type": "object", "properties": {"route": {"type": "string", "enum": ["sql", "docs"]}},
                       "required": ["route"], "additionalProperties": false}),
    });
    let answer = openai(&server, Some("sk-test"))
        .complete(&req)
        .await
        .unwrap();
    assert_eq!(answer.text, "{\"route\":\"sql\"}");
    assert_eq!(answer.finish, FinishReason::Stop);
    assert_eq!(
        (answer.usage.prompt_tokens, answer.usage.completion_tokens),
        (11, 7)
    );
    assert_eq!(answer.provider, "openai");

    let [sent] = server.requests().try_into().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test");
    assert_eq!(sent.body["model"], "scripted-model");
    assert_eq!(sent.body["temperature"], 0.0);
    assert_eq!(sent.body["messages"][0]["role"], "system");
    assert_eq!(
        sent.body["messages"][1]["content"],
        "How many customers are there?"
    );
    assert_eq!(sent.body["response_format"]["type"], "json_schema");
    assert_eq!(
        sent.body["response_format"]["json_schema"]["schema"]["properties"]["route"]["enum"],
        json!(["sql", "docs"])
    );
}

#[tokio::test]
async fn gemini_completion_keeps_the_key_out_of_the_url() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::gemini("There are 59 customers."));
    let answer = gemini(&server).complete(&request()).await.unwrap();
    assert_eq!(answer.text, "There are 59 customers.");
    assert_eq!(answer.provider, "gemini");
    assert_eq!(
        (answer.usage.prompt_tokens, answer.usage.completion_tokens),
        (13, 5)
    );
    let [sent] = server.requests().try_into().unwrap();
    assert_eq!(sent.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(sent.headers["x-goog-api-key"], "gemini-secret-key");
    assert!(!sent.path.contains("key"), "{}", sent.path);
    assert_eq!(
        sent.body["systemInstruction"]["parts"][0]["text"],
        "You answer briefly."
    );
    assert_eq!(sent.body["contents"][0]["role"], "user");
}

#[tokio::test]
async fn gemini_embeddings() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::json(
        200,
        json!({"embedding": {"values": [0.25, -0.5, 1.0]}}),
    ));
    server.push(Reply::json(200, json!({"embedding": {"values": []}})));
    let provider = gemini_provider(&server, IDLE);
    let v = provider
        .embed("customers in Brazil", TaskType::RetrievalQuery)
        .await
        .unwrap();
    assert_eq!(v, [0.25, -0.5, 1.0]);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/embed-test:embedContent");
    assert_eq!(sent.body["taskType"], "RETRIEVAL_QUERY");
    assert_eq!(
        sent.body["content"]["parts"][0]["text"],
        "customers in Brazil"
    );
    let empty = provider
        .embed("x", TaskType::SemanticSimilarity)
        .await
        .unwrap_err();
    assert!(matches!(empty, LlmError::InvalidAnswer { .. }), "{empty:?}");
}

#[tokio::test]
async fn both_wire_formats_stream() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::openai_stream(&["There ", "are ", "59."]).gap(Duration::from_millis(20)));
    server.push(Reply::gemini_stream(&["Fifty", "-nine."]));
    let pieces = collect(openai(&server, None).stream(&request()).await.unwrap()).await;
    let pieces: Vec<String> = pieces.into_iter().map(Result::unwrap).collect();
    assert_eq!(pieces, ["There ", "are ", "59."]);
    assert_eq!(server.requests()[0].body["stream"], true);

    let pieces = collect(gemini(&server).stream(&request()).await.unwrap()).await;
    let pieces: Vec<String> = pieces.into_iter().map(Result::unwrap).collect();
    assert_eq!(pieces, ["Fifty", "-nine."]);
    assert_eq!(
        server.requests()[1].path,
        "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn a_stalled_stream_ends_with_a_timeout() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::gemini_stream(&["first", "never"]).gap(Duration::from_secs(3)));
    let provider = gemini_provider(&server, Duration::from_millis(300));
    let pieces = collect(provider.stream(&request()).await.unwrap()).await;
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert_eq!(pieces[0].as_deref(), Ok("first"));
    assert!(
        matches!(pieces[1], Err(LlmError::Timeout { .. })),
        "{pieces:?}"
    );
}

#[tokio::test]
async fn retries_honour_retry_after() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::error(429, "slow down").header("retry-after", "1"));
    server.push(Reply::openai("ok"));
    let provider = Resilient::new(openai(&server, None), policy(2, 5, Duration::from_secs(30)));
    let started = Instant::now();
    let answer = provider.complete(&request()).await.unwrap();
    assert_eq!(answer.text, "ok");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn gemini_retry_info_is_a_retry_after() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::json(
        429,
        json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
               "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]}}),
    ));
    server.push(Reply::gemini("ok"));
    let provider = Resilient::new(gemini(&server), policy(1, 5, Duration::from_secs(30)));
    let started = Instant::now();
    assert_eq!(provider.complete(&request()).await.unwrap().text, "ok");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_past_the_limit_is_not_waited_for() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::error(503, "maintenance").header("retry-after", "120"));
    let provider = Resilient::new(openai(&server, None), policy(3, 5, Duration::from_secs(30)));
    let started = Instant::now();
    let err = provider.complete(&request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Server { status: 503, retry_after: Some(d), .. } if d == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_slow_attempt_times_out_and_is_retried() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::openai("too late").after(Duration::from_secs(3)));
    server.push(Reply::openai("in time"));
    let mut p = policy(1, 5, Duration::from_secs(30));
    p.attempt_timeout = Duration::from_millis(300);
    let provider = Resilient::new(openai(&server, None), p);
    assert_eq!(provider.complete(&request()).await.unwrap().text, "in time");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn refused_and_unusable_answers_are_not_retried() {
    let server = ScriptedLlm::start().await;
    server.push(Reply::error(400, "maximum context length exceeded"));
    server.push(Reply::json(200, json!({"unexpected": true})));
    let provider = Resilient::new(openai(&server, None), policy(3, 1, Duration::from_secs(30)));
    let refused = provider.complete(&request()).await.unwrap_err();
    assert!(
        matches!(&refused, LlmError::Refused { status: 400, message, .. } if message.contains("context length")),
        "{refused:?}"
    );
    let unusable = provider.complete(&request()).await.unwrap_err();
    assert!(
        matches!(unusable, LlmError::InvalidAnswer { .. }),
        "{unusable:?}"
    );
    assert_eq!(server.hits(), 2);
    // Neither says anything about the provider's health: the breaker (threshold 1) stays closed.
    assert_eq!(provider.breaker_state(), State::Closed);
}

#[tokio::test]
async fn breaker_opens_fails_fast_and_half_opens() {
    let server = ScriptedLlm::start().await;
    let cooldown = Duration::from_millis(400);
    let provider = Resilient::new(openai(&server, None), policy(0, 3, cooldown));
    for _ in 0..3 {
        server.push(Reply::error(500, "boom"));
        let err = provider.complete(&request()).await.unwrap_err();
        assert!(
            matches!(err, LlmError::Server { status: 500, .. }),
            "{err:?}"
        );
    }
    assert_eq!(provider.breaker_state(), State::Open);

    // Open: no request reaches the server, and the caller learns when to come back.
    let started = Instant::now();
    let err = provider.complete(&request()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(
        matches!(err, LlmError::CircuitOpen { retry_after, .. } if retry_after <= cooldown),
        "{err:?}"
    );
    assert_eq!(server.hits(), 3);

    // Half-open: one probe; it fails, so the breaker opens again.
    tokio::time::sleep(cooldown).await;
    server.push(Reply::error(502, "still down"));
    assert!(matches!(
        provider.complete(&request()).await,
        Err(LlmError::Server { status: 502, .. })
    ));
    assert_eq!(provider.breaker_state(), State::Open);
    assert!(matches!(
        provider.complete(&request()).await,
        Err(LlmError::CircuitOpen { .. })
    ));
    assert_eq!(server.hits(), 4);

    // The next probe succeeds and closes it.
    tokio::time::sleep(cooldown).await;
    server.push(Reply::openai("back"));
    assert_eq!(provider.complete(&request()).await.unwrap().text, "back");
    assert_eq!(provider.breaker_state(), State::Closed);
}

#[tokio::test]
async fn fallback_to_the_next_provider() {
    let primary = ScriptedLlm::start().await;
    let secondary = ScriptedLlm::start().await;
    primary.push(Reply::error(503, "overloaded"));
    primary.push(Reply::error(503, "overloaded"));
    secondary.push(Reply::openai("from the fallback"));
    let chain = FallbackChain::new(vec![
        Arc::new(Resilient::new(
            gemini(&primary),
            policy(1, 5, Duration::from_secs(30)),
        )),
        Arc::new(Resilient::new(
            openai(&secondary, None),
            policy(1, 5, Duration::from_secs(30)),
        )),
    ]);
    assert_eq!(chain.name(), "gemini>openai");
    let answer = chain.complete(&request()).await.unwrap();
    assert_eq!(answer.provider, "openai");
    assert_eq!(answer.text, "from the fallback");
    assert_eq!(
        primary.hits(),
        2,
        "the primary is retried once before falling back"
    );

    // A refused key is not retried, but the next provider is asked.
    primary.push(Reply::error(401, "API key not valid"));
    secondary.push(Reply::openai_stream(&["streamed ", "fallback"]));
    let pieces = collect(chain.stream(&request()).await.unwrap()).await;
    assert_eq!(pieces.concat_ok(), "streamed fallback");
    assert_eq!(primary.hits(), 3);
}

#[tokio::test]
async fn every_breaker_open_is_a_fast_503_with_retry_after() {
    let a = ScriptedLlm::start().await;
    let b = ScriptedLlm::start().await;
    let cooldown = Duration::from_secs(20);
    let chain = FallbackChain::new(vec![
        Arc::new(Resilient::new(gemini(&a), policy(0, 1, cooldown))),
        Arc::new(Resilient::new(openai(&b, None), policy(0, 1, cooldown))),
    ]);
    a.push(Reply::error(500, "down"));
    b.push(Reply::error(500, "down"));
    let first = chain.complete(&request()).await.unwrap_err();
    assert!(matches!(first, LlmError::Unavailable { .. }), "{first:?}");

    let started = Instant::now();
    let err = chain.complete(&request()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    let retry_after = err.retry_after().expect("a delay");
    assert!(
        retry_after > Duration::from_secs(15) && retry_after <= cooldown,
        "{retry_after:?}"
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));

    let api: ApiError = err.into();
    assert_eq!(api.status().as_u16(), 503);
    assert_eq!(api.slug(), "llm-unavailable");
    let response = api.to_http(None);
    let seconds: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((16..=20).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn unreachable_provider_errors_carry_no_url() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let base: url::Url = format!("http://127.0.0.1:{port}/v1?key=leak")
        .parse()
        .unwrap();
    let provider = OpenAiProvider::new(reqwest::Client::new(), &base, None, "m", IDLE).unwrap();
    let err = provider.complete(&request()).await.unwrap_err();
    assert!(matches!(err, LlmError::Unreachable { .. }), "{err:?}");
    assert!(!err.to_string().contains("leak"), "{err}");
    assert!(err.is_transient() && err.is_provider_failure());
}

trait ConcatOk {
    fn concat_ok(self) -> String;
}

impl ConcatOk for Vec<Result<String, LlmError>> {
    fn concat_ok(self) -> String {
        self.into_iter().map(Result::unwrap).collect()
    }
}
