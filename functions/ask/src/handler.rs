//! `POST /v1/ask`: a question in plain language → (cache) → route → SQL through sql-exec
//! and/or passages through retrieve (both as the caller) → the model's answer, with the SQL,
//! the rows, the citations, every query attempt and where the time went. With
//! `Accept: text/event-stream` the same arrives as server-sent events: `route`, `sql`, `rows`,
//! the answer's `token`s, then `done` with the whole response (or `error` with a problem).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use quarry_shared::http::{ApiError, Caller, Json, Problem};
use quarry_shared::state::AppState;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::answer::{self, Citation, Evidence};
use crate::cache_key;
use crate::engine::{engine, CallerSql, Engine};
use crate::memory::{valid_session_id, Turn};
use crate::peers::{Forward, Passage, PeerError, ResultColumn, SqlResult};
use crate::per_group;
use crate::route::{self, Route};
use crate::sql_prompt::{self, Example};
use crate::text_to_sql::{self, Attempt, TextToSqlError};
use crate::{millis, unix_now};

/// Longest question accepted, in characters.
const MAX_QUESTION_CHARS: usize = 2000;
/// Longest answer kept in a session's memory, in characters.
const MEMORY_ANSWER_CHARS: usize = 600;

/// Where to look for the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Let `ask` decide (default).
    #[default]
    Auto,
    /// Tables only.
    Sql,
    /// Documents only.
    Docs,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Sql => "sql",
            Self::Docs => "docs",
        }
    }
}

/// A question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question, in plain language.
    #[schema(example = "How many customers do we have in each country?")]
    pub question: String,
    /// A conversation id chosen by the client (1–64 of `[A-Za-z0-9_-]`), for follow-ups.
    pub session_id: Option<String>,
    /// `auto` (default), `sql` or `docs`.
    #[serde(default)]
    pub mode: Mode,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AskResponse {
    /// The answer in plain language.
    pub answer: String,
    /// Where it came from.
    pub route: Route,
    /// The query that produced `rows`, for SQL routes.
    pub sql: Option<String>,
    /// Result columns.
    pub columns: Vec<ResultColumn>,
    /// Result rows (at most `ASK_MAX_ROWS`).
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<Value>>,
    /// Passages the answer cites, by their number in the answer text.
    pub citations: Vec<Citation>,
    /// Whether the answer came from the semantic cache.
    pub cached: bool,
    /// Every query tried, the one that ran last.
    pub attempts: Vec<Attempt>,
    /// Parts that were unavailable and left out (`chroma`, `memory`, `cache`).
    pub degraded: Vec<String>,
    /// Milliseconds per stage, and `total`.
    pub timings_ms: BTreeMap<String, u64>,
}

/// Answers a question within the caller's permissions.
#[utoipa::path(
    post,
    path = "/v1/ask",
    tag = "ask",
    request_body = AskRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer (JSON, or server-sent events with Accept: text/event-stream)", body = AskResponse),
        (status = 400, description = "Empty or oversized question, bad session id, unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role or region not admitted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No working query could be written", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No language model or peer available", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ask(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(request): Json<AskRequest>,
) -> Result<Response, ApiError> {
    let question = request.question.trim().to_owned();
    if question.is_empty() {
        return Err(ApiError::bad_request(
            "invalid-question",
            "the question is empty",
        ));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::bad_request(
            "invalid-question",
            format!("the question is longer than {MAX_QUESTION_CHARS} characters"),
        ));
    }
    if let Some(session) = &request.session_id {
        if !valid_session_id(session) {
            return Err(ApiError::bad_request(
                "invalid-session-id",
                "session_id is 1 to 64 letters, digits, '-' or '_'",
            ));
        }
    }
    let engine = engine(&state).await?;
    let run = Run {
        state: state.clone(),
        engine,
        forward: Forward {
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            request_id: caller.request_id.clone(),
        },
        caller,
        question,
        session: request.session_id,
        mode: request.mode,
        events: None,
    };
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        return Ok(Json(run.answer().await?).into_response());
    }
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut run = run;
        run.events = Some(tx.clone());
        let event = match run.answer().await {
            Ok(response) => Event::default()
                .event("done")
                .json_data(&response)
                .unwrap_or_else(|_| Event::default().event("done")),
            Err(err) => Event::default()
                .event("error")
                .json_data(err.problem(run.caller.request_id.clone()))
                .unwrap_or_else(|_| Event::default().event("error")),
        };
        let _ = tx.send(event).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One question's way through the stages.
struct Run {
    state: AppState,
    engine: std::sync::Arc<Engine>,
    caller: Caller,
    forward: Forward,
    question: String,
    session: Option<String>,
    mode: Mode,
    /// Where progress goes when the client streams.
    events: Option<mpsc::Sender<Event>>,
}

/// What the cache needs to store an answer after it is written.
struct Cacheable {
    scope: String,
    embedding: Vec<f32>,
    signature: cache_key::Signature,
}

impl Run {
    async fn emit(&self, name: &str, data: Value) {
        if let Some(tx) = &self.events {
            let _ = tx
                .send(Event::default().event(name).data(data.to_string()))
                .await;
        }
    }

    async fn answer(&self) -> Result<AskResponse, ApiError> {
        let started = Instant::now();
        let mut timings: BTreeMap<String, u64> = BTreeMap::new();
        let mut degraded: Vec<String> = Vec::new();
        let sub = self.caller.principal.sub.clone();

        // "Remember that …" stores a fact instead of asking anything.
        if let Some(fact) = remember_command(&self.question) {
            let now = unix_now();
            let answer = match self.engine.memory.add_fact(&sub, fact, now).await {
                Ok(_) => "I will remember that.".to_owned(),
                Err(err) => {
                    tracing::warn!(error = %err, "memory unavailable");
                    degraded.push("memory".to_owned());
                    "I cannot remember anything right now.".to_owned()
                }
            };
            let mut response = empty_response(Route::None);
            response.answer = answer;
            response.degraded = degraded;
            response
                .timings_ms
                .insert("total".to_owned(), millis(started));
            return Ok(response);
        }

        let stage = Instant::now();
        let turns = match &self.session {
            Some(session) => self
                .engine
                .memory
                .turns(&sub, session)
                .await
                .unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "memory unavailable");
                    degraded.push("memory".to_owned());
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let facts = match self.engine.memory.facts(&sub).await {
            Ok(facts) => facts,
            Err(err) => {
                if !degraded.iter().any(|d| d == "memory") {
                    tracing::warn!(error = %err, "memory unavailable");
                    degraded.push("memory".to_owned());
                }
                Vec::new()
            }
        };
        timings.insert("memory".to_owned(), millis(stage));

        // Only questions that depend on nothing but themselves are cached: a follow-up or a
        // user's facts would make the answer personal. The same question asked again is found
        // by its text, before the embedding model runs; a similar one needs the embedding.
        let normalised = cache_key::normalise(&self.question);
        let mut scope = None;
        if turns.is_empty() && facts.is_empty() {
            let stage = Instant::now();
            match self.exact_hit(&normalised).await {
                Ok((Some(hit), _)) => {
                    return Ok(self.serve_hit(hit, degraded, stage, started).await)
                }
                Ok((None, found)) => scope = Some(found),
                Err(reason) => {
                    tracing::warn!(reason, "answer cache unavailable");
                    degraded.push("cache".to_owned());
                }
            }
            timings.insert("cache".to_owned(), millis(stage));
        }

        let stage = Instant::now();
        let embedding = crate::engine::embed(&self.engine.models_dir, vec![normalised])
            .await
            .and_then(|v| v.into_iter().next());
        timings.insert("embed".to_owned(), millis(stage));

        let mut cacheable = None;
        if let Some(scope) = scope {
            let stage = Instant::now();
            match self.similar_hit(scope, embedding.clone()).await {
                Ok((Some(hit), _)) => {
                    return Ok(self.serve_hit(hit, degraded, stage, started).await)
                }
                Ok((None, key)) => cacheable = Some(key),
                Err(reason) => {
                    tracing::warn!(reason, "answer cache unavailable");
                    degraded.push("cache".to_owned());
                }
            }
            *timings.entry("cache".to_owned()).or_default() += millis(stage);
        }

        let context = facts
            .iter()
            .map(|f| format!("- {}", f.text))
            .collect::<Vec<_>>()
            .join("\n");
        let mut response = self
            .compute(&turns, &context, embedding.as_deref(), &mut timings)
            .await?;
        response.degraded.extend(degraded);
        self.remember(&response).await;
        if let Some(key) = cacheable {
            if response.degraded.is_empty() {
                self.cache_store(&key, &response).await;
            }
        }
        timings.insert("total".to_owned(), millis(started));
        response.timings_ms = timings;
        Ok(response)
    }

    /// The stages proper: route, SQL and/or documents, answer.
    async fn compute(
        &self,
        turns: &[Turn],
        facts: &str,
        embedding: Option<&[f32]>,
        timings: &mut BTreeMap<String, u64>,
    ) -> Result<AskResponse, ApiError> {
        let role = self.caller.principal.role.clone();
        let stage = Instant::now();
        let schema = self
            .engine
            .schema(&role, &self.forward)
            .await
            .map_err(peer_error)?;
        timings.insert("schema".to_owned(), millis(stage));

        // A follow-up ("and in 2010?") is routed with the question it follows.
        let routed_text = match turns.last() {
            Some(last) => format!("{}\n{}", last.question, self.question),
            None => self.question.clone(),
        };
        let route = match self.mode {
            Mode::Sql => Route::Sql,
            Mode::Docs => Route::Docs,
            Mode::Auto => {
                let stage = Instant::now();
                let route = match route::heuristic(&routed_text, &schema.words) {
                    Some(route) => route,
                    None => {
                        let completion = self
                            .engine
                            .llm
                            .complete(&route::request(&routed_text, &schema.tables))
                            .await?;
                        route::parse(&completion.text).unwrap_or(Route::Both)
                    }
                };
                timings.insert("route".to_owned(), millis(stage));
                route
            }
        };
        self.emit("route", json!({"route": route})).await;
        let mut response = empty_response(route);
        if route == Route::None {
            response.answer = "I can answer questions about the company's data and documents; \
                               this question is about neither."
                .to_owned();
            return Ok(response);
        }
        let asked = if facts.is_empty() {
            self.question.clone()
        } else {
            format!("Known about me:\n{facts}\n\n{}", self.question)
        };

        let sql = if matches!(route, Route::Sql | Route::Both) {
            let stage = Instant::now();
            let linked = schema.link(&self.engine.settings, embedding);
            let identifiers = schema.identifiers(&linked);
            let system = sql_prompt::system_prompt(&schema.ddl(&linked), &identifiers);
            let history: Vec<Example> = turns
                .iter()
                .filter_map(|t| {
                    t.sql.as_ref().map(|sql| Example {
                        question: t.question.clone(),
                        sql: sql.clone(),
                    })
                })
                .collect();
            let examples = match (embedding, self.caller.role()) {
                (Some(question), Some(role)) => {
                    self.engine
                        .golden
                        .examples(
                            &self.state.db,
                            &self.engine.models_dir,
                            role,
                            question,
                            &schema.qualified(&linked),
                        )
                        .await
                }
                _ => Vec::new(),
            };
            tracing::debug!(
                tables = linked.len(),
                examples = ?examples.iter().map(|e| e.question.as_str()).collect::<Vec<_>>(),
                "text-to-SQL prompt"
            );
            let mut generation =
                sql_prompt::generation_request(&system, &examples, &history, &asked);
            // Only the local model can take a grammar; remote providers ignore it.
            generation.grammar = Some(schema.grammar(&linked, &identifiers));
            let runner = CallerSql {
                peers: &self.engine.peers,
                forward: &self.forward,
            };
            let outcome = text_to_sql::run(
                self.engine.llm.as_ref(),
                &runner,
                &schema.view,
                generation,
                per_group::read(&self.question).as_ref(),
                self.engine.settings.max_attempts,
                self.engine.settings.max_rows,
            )
            .await;
            timings.insert("sql".to_owned(), millis(stage));
            match outcome {
                Ok(answer) => {
                    response.attempts = answer.attempts;
                    self.emit(
                        "sql",
                        json!({"sql": answer.sql, "attempts": response.attempts}),
                    )
                    .await;
                    self.emit(
                        "rows",
                        json!({"columns": answer.result.columns, "rows": answer.result.rows, "truncated": answer.result.truncated}),
                    )
                    .await;
                    Some((answer.sql, answer.result))
                }
                // With documents to fall back on, a failed query is not the end.
                Err(TextToSqlError::GaveUp { attempts }) if route == Route::Both => {
                    response.attempts = attempts;
                    None
                }
                Err(err) => return Err(sql_error(err)),
            }
        } else {
            None
        };

        let passages: Vec<Passage> = if matches!(route, Route::Docs | Route::Both) {
            let stage = Instant::now();
            let retrieved = self
                .engine
                .peers
                .retrieve(&self.forward, &self.question, self.engine.settings.top_k)
                .await
                .map_err(peer_error)?;
            timings.insert("retrieve".to_owned(), millis(stage));
            response.degraded.extend(retrieved.degraded);
            retrieved.passages
        } else {
            Vec::new()
        };

        let stage = Instant::now();
        let rows_to_model = self.engine.settings.rows_to_llm;
        let text = match (&sql, passages.is_empty()) {
            // A result the model may not see and nothing else to say: the table speaks.
            (Some((_, result)), true) if rows_to_model == 0 => answer::from_table_alone(result),
            (None, true) => {
                "I found nothing I am allowed to show you that answers this.".to_owned()
            }
            _ => {
                let evidence = Evidence {
                    sql: sql.as_ref().map(|(q, r)| (q.as_str(), r)),
                    rows_to_model,
                    passages: &passages,
                };
                self.generate(&answer::request(&asked, &evidence)).await?
            }
        };
        timings.insert("answer".to_owned(), millis(stage));
        let (text, citations) = answer::cite(&text, &passages);
        response.answer = text;
        response.citations = citations;
        if let Some((query, SqlResult { columns, rows, .. })) = sql {
            response.sql = Some(query);
            response.columns = columns;
            response.rows = rows;
        }
        Ok(response)
    }

    /// The answer text: streamed as `token` events when the client streams.
    async fn generate(
        &self,
        request: &quarry_shared::llm::ChatRequest,
    ) -> Result<String, ApiError> {
        if self.events.is_none() {
            return Ok(self.engine.llm.complete(request).await?.text);
        }
        let mut stream = self.engine.llm.stream(request).await?;
        let mut text = String::new();
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            self.emit("token", json!({"text": piece})).await;
            text.push_str(&piece);
        }
        Ok(text)
    }

    /// The answer cache's scope for this caller and mode at the current data version.
    async fn cache_scope(&self) -> Result<String, String> {
        let version = self.engine.data_version.current(&self.state).await?;
        let policy = self
            .caller
            .role()
            .map(|r| format!("{r:?}"))
            .unwrap_or_default();
        Ok(cache_key::scope(
            &self.caller.principal.role,
            &self.caller.principal.region,
            &format!("{version}|{policy}"),
            self.mode.label(),
        ))
    }

    /// The cached answer to this very question (`normalised`), and the scope it was looked up
    /// in. `Err` says why the cache cannot be used now.
    async fn exact_hit(&self, normalised: &str) -> Result<(Option<AskResponse>, String), String> {
        let scope = self.cache_scope().await?;
        let hit = self
            .engine
            .cache
            .lookup_exact(&scope, normalised)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            hit.and_then(|answer| serde_json::from_str::<AskResponse>(&answer).ok()),
            scope,
        ))
    }

    /// The cached answer to the most similar question in `scope`, or what storing this
    /// question's answer will need.
    async fn similar_hit(
        &self,
        scope: String,
        embedding: Option<Vec<f32>>,
    ) -> Result<(Option<AskResponse>, Cacheable), String> {
        let embedding = embedding.ok_or("the embedding model is unavailable")?;
        let signature = cache_key::signature(&self.question);
        let hit = self
            .engine
            .cache
            .lookup(&scope, &embedding, &signature)
            .await
            .map_err(|e| e.to_string())?;
        let cached = hit.and_then(|hit| {
            tracing::debug!(similarity = hit.similarity, "answer cache hit");
            serde_json::from_str::<AskResponse>(&hit.answer).ok()
        });
        Ok((
            cached,
            Cacheable {
                scope,
                embedding,
                signature,
            },
        ))
    }

    /// `hit` as this caller's answer: marked cached, with this request's timings and
    /// degradations, and remembered in the session like any answer.
    async fn serve_hit(
        &self,
        mut hit: AskResponse,
        degraded: Vec<String>,
        stage: Instant,
        started: Instant,
    ) -> AskResponse {
        hit.cached = true;
        hit.degraded = degraded;
        hit.timings_ms = BTreeMap::from([
            ("cache".to_owned(), millis(stage)),
            ("total".to_owned(), millis(started)),
        ]);
        self.remember(&hit).await;
        hit
    }

    async fn cache_store(&self, key: &Cacheable, response: &AskResponse) {
        let Ok(json) = serde_json::to_string(response) else {
            return;
        };
        let normalised = cache_key::normalise(&self.question);
        if let Err(err) = self
            .engine
            .cache
            .store(
                &key.scope,
                &normalised,
                &key.embedding,
                &key.signature,
                &json,
            )
            .await
        {
            tracing::warn!(error = %err, "answer cache unavailable");
        }
    }

    /// Adds this turn to the session's memory (best effort: a failure was already reported as
    /// degraded when the turns were read).
    async fn remember(&self, response: &AskResponse) {
        let Some(session) = &self.session else {
            return;
        };
        let turn = Turn {
            question: self.question.clone(),
            sql: response.sql.clone(),
            answer: response.answer.chars().take(MEMORY_ANSWER_CHARS).collect(),
        };
        if let Err(err) = self
            .engine
            .memory
            .push_turn(&self.caller.principal.sub, session, &turn)
            .await
        {
            tracing::debug!(error = %err, "turn not remembered");
        }
    }
}

/// The fact in "remember that …" / "please remember: …", if the question is one.
fn remember_command(question: &str) -> Option<&str> {
    let lower = question.to_lowercase();
    let start = lower.strip_prefix("please ").map_or(0, |_| "please ".len());
    let rest = lower[start..].strip_prefix("remember")?;
    let mut offset = start + "remember".len() + (rest.len() - rest.trim_start().len());
    let rest = rest.trim_start();
    let lead = ["that ", ":"]
        .into_iter()
        .find(|lead| rest.starts_with(lead))?;
    offset += lead.len();
    let fact = question.get(offset..)?.trim();
    (!fact.is_empty()).then_some(fact)
}

fn empty_response(route: Route) -> AskResponse {
    AskResponse {
        answer: String::new(),
        route,
        sql: None,
        columns: Vec::new(),
        rows: Vec::new(),
        citations: Vec::new(),
        cached: false,
        attempts: Vec::new(),
        degraded: Vec::new(),
        timings_ms: BTreeMap::new(),
    }
}

/// A peer's refusal of the caller passes through as the same kind of problem; anything else is
/// a 503.
fn peer_error(err: PeerError) -> ApiError {
    match err {
        PeerError::Denied {
            status: 401,
            detail,
            ..
        } => ApiError::Unauthorized {
            kind: "token-invalid",
            detail,
        },
        PeerError::Denied { detail, .. } => ApiError::Forbidden {
            kind: "forbidden",
            detail,
        },
        PeerError::Rejected { detail, .. } => ApiError::Unprocessable {
            kind: "peer-rejected",
            detail,
        },
        PeerError::Unavailable {
            peer, retry_after, ..
        } => ApiError::Unavailable {
            kind: "peer-unavailable",
            detail: format!("The {peer} function is not available right now."),
            retry_after: Some(retry_after.unwrap_or(std::time::Duration::from_secs(2))),
        },
    }
}

fn sql_error(err: TextToSqlError) -> ApiError {
    match err {
        TextToSqlError::Llm(e) => e.into(),
        TextToSqlError::Peer(e) => peer_error(e),
        TextToSqlError::GaveUp { attempts } => {
            let error = ApiError::Unprocessable {
                kind: "sql-generation-failed",
                detail: format!(
                    "No working query after {} attempts; the last failed with: {}",
                    attempts.len(),
                    attempts
                        .last()
                        .and_then(|a| a.error.clone())
                        .unwrap_or_default()
                ),
            };
            // The caller sees what was tried, as a successful answer shows it, so a failure can
            // be read (and `quarry eval sql` can score the first attempt of a failed question).
            match serde_json::to_value(&attempts) {
                Ok(attempts) => error.with_members(serde_json::Map::from_iter([(
                    "attempts".to_owned(),
                    attempts,
                )])),
                Err(_) => error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remember_commands() {
        assert_eq!(
            remember_command("Remember that I manage EMEA"),
            Some("I manage EMEA")
        );
        assert_eq!(
            remember_command("please remember: my team is Jazz"),
            Some("my team is Jazz")
        );
        assert_eq!(remember_command("Remember   that  x"), Some("x"));
        assert_eq!(remember_command("remember"), None);
        assert_eq!(remember_command("Remember that"), None);
        assert_eq!(remember_command("remembering the 2010 sales?"), None);
        assert_eq!(remember_command("How many customers?"), None);
    }
}
