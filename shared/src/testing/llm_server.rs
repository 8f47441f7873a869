//! A scripted language-model server for tests: it speaks OpenAI's chat-completions and
//! Gemini's `generateContent` wire formats, answers with the replies a test queued (status,
//! delay, headers, JSON or a server-sent event stream), and records every request.
//!
//! The one test double the house allows is for an external paid API; this is it. It is
//! test-only (feature `test-support`) and nothing in the product can reach it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One queued answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    delay: Duration,
    body: ReplyBody,
}

#[derive(Clone, Debug)]
enum ReplyBody {
    Json(Value),
    /// `data:` payloads, sent `gap` apart.
    Events(Vec<String>, Duration),
}

impl Reply {
    /// An OpenAI chat completion whose message is `text`.
    pub fn openai(text: &str) -> Self {
        Self::json(
            200,
            json!({
                "id": "chatcmpl-test", "object": "chat.completion", "model": "scripted",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }),
        )
    }

    /// A Gemini `GenerateContentResponse` whose candidate is `text`.
    pub fn gemini(text: &str) -> Self {
        Self::json(
            200,
            json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 13, "candidatesTokenCount": 5},
            }),
        )
    }

    /// An OpenAI stream: one `chat.completion.chunk` per piece, then `[DONE]`.
    pub fn openai_stream(pieces: &[&str]) -> Self {
        let mut events: Vec<String> = pieces
            .iter()
            .map(|p| {
                json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})
                    .to_string()
            })
            .collect();
        events.push(
            json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                .to_string(),
        );
        events.push("[DONE]".to_owned());
        Self::events(events)
    }

    /// A Gemini `?alt=sse` stream: one partial response per piece, the last with `STOP`.
    pub fn gemini_stream(pieces: &[&str]) -> Self {
        let last = pieces.len().saturating_sub(1);
        let events = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut candidate = json!({"content": {"role": "model", "parts": [{"text": p}]}});
                if i == last {
                    candidate["finishReason"] = json!("STOP");
                }
                json!({"candidates": [candidate]}).to_string()
            })
            .collect();
        Self::events(events)
    }

    /// Any JSON answer with `status`.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            body: ReplyBody::Json(body),
        }
    }

    /// An error answer in the shape both APIs use (`{"error": {"code", "message"}}`).
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            json!({"error": {"code": status, "message": message, "status": "SCRIPTED"}}),
        )
    }

    /// A server-sent event stream of raw `data:` payloads.
    pub fn events(data: Vec<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            delay: Duration::ZERO,
            body: ReplyBody::Events(data, Duration::ZERO),
        }
    }

    /// Waits `delay` before answering (the status line included).
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Waits `gap` between two events of a stream.
    #[must_use]
    pub fn gap(mut self, gap: Duration) -> Self {
        if let ReplyBody::Events(_, g) = &mut self.body {
            *g = gap;
        }
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Path and query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
}

/// Computes a reply from the request, for tests that answer by content (a text-to-SQL loop).
pub type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    fallback: Option<Responder>,
    requests: Vec<Recorded>,
}

/// The running server. Dropping it leaves the task running until the test's runtime ends.
#[derive(Clone)]
pub struct ScriptedLlm {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl ScriptedLlm {
    /// Starts a server on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port can be bound (a broken test machine).
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the scripted LLM server: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("scripted LLM address: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, script }
    }

    /// The base URL (`http://127.0.0.1:PORT/`); OpenAI clients add `v1`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Queues `reply` for the next request that finds the queue's head.
    pub fn push(&self, reply: Reply) {
        self.lock().queue.push_back(reply);
    }

    /// What to answer once the queue is empty (default: a 500 saying the script ran out).
    pub fn respond_with(&self, responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        self.lock().fallback = Some(Arc::new(responder));
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.lock().requests.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn answer(State(script): State<Arc<Mutex<Script>>>, request: Request) -> Response {
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let recorded = Recorded {
        path,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    let reply = {
        let mut script = script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        script.requests.push(recorded.clone());
        match script.queue.pop_front() {
            Some(reply) => reply,
            None => match &script.fallback {
                Some(responder) => responder(&recorded),
                None => Reply::error(500, "the test script has no reply left"),
            },
        }
    };
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        ReplyBody::Json(value) => (status, axum::Json(value)).into_response(),
        ReplyBody::Events(events, gap) => {
            let stream = futures::stream::unfold(
                (events.into_iter(), true),
                move |(mut events, first)| async move {
                    let data = events.next()?;
                    if !first {
                        tokio::time::sleep(gap).await;
                    }
                    let frame = format!("data: {data}\n\n");
                    Some((Ok::<_, std::io::Error>(frame), (events, false)))
                },
            );
            (status, Body::from_stream(stream)).into_response()
        }
    };
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            axum::http::HeaderValue::try_from(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
