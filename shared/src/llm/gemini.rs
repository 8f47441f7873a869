//! Google's Gemini API: `models/{model}:generateContent`, `:streamGenerateContent?alt=sse`, and
//! `:embedContent` for embeddings. The key goes in the `x-goog-api-key` header, never in the URL
//! (where it would end up in logs).
//!
//! Structured output uses `responseMimeType: application/json` with `responseJsonSchema`, which
//! takes JSON Schema as written (the older `responseSchema` takes an OpenAPI subset that rejects
//! `additionalProperties`). Parts marked `thought` (the reasoning of thinking models) are not
//! part of the answer and are dropped.

use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire::{self, Piece};
use super::{
    ChatRequest, Completion, FinishReason, LlmError, LlmProvider, Role, TokenStream, Usage,
};

/// What an embedding is for; Gemini tunes the vector to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskType {
    /// A question to be matched against stored texts (the semantic cache's lookups).
    RetrievalQuery,
    /// A text to be stored and found later.
    RetrievalDocument,
    /// Comparing two texts for similarity.
    SemanticSimilarity,
}

impl TaskType {
    fn wire(self) -> &'static str {
        match self {
            Self::RetrievalQuery => "RETRIEVAL_QUERY",
            Self::RetrievalDocument => "RETRIEVAL_DOCUMENT",
            Self::SemanticSimilarity => "SEMANTIC_SIMILARITY",
        }
    }
}

/// The Gemini API.
pub struct GeminiProvider {
    http: reqwest::Client,
    base: url::Url,
    api_key: SecretString,
    model: String,
    embed_model: String,
    idle_timeout: Duration,
}

impl GeminiProvider {
    /// A provider for `model` (e.g. `gemini-2.5-flash`) and `embed_model` (e.g.
    /// `gemini-embedding-001`) at `base_url` ([`crate::config::llm::GEMINI_BASE_URL`] in production). Model names
    /// are path segments and are checked by the settings (`[A-Za-z0-9._-]`).
    pub fn new(
        http: reqwest::Client,
        base_url: url::Url,
        api_key: SecretString,
        model: impl Into<String>,
        embed_model: impl Into<String>,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            http,
            base: base_url,
            api_key,
            model: model.into(),
            embed_model: embed_model.into(),
            idle_timeout,
        }
    }

    fn url(&self, model: &str, method: &str) -> Result<url::Url, LlmError> {
        crate::http::outbound::below(&self.base, &format!("v1beta/models/{model}:{method}"))
            .map_err(|e| wire::invalid(self.name(), format!("bad endpoint: {e}")))
    }

    fn post(&self, url: url::Url, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(url)
            .header("x-goog-api-key", self.api_key.expose_secret())
            .json(body)
    }

    fn body(request: &ChatRequest) -> Value {
        let contents: Vec<Value> = request
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                };
                json!({"role": role, "parts": [{"text": m.content}]})
            })
            .collect();
        let mut config = json!({
            "maxOutputTokens": request.max_tokens,
            "temperature": request.temperature,
        });
        if let Some(schema) = &request.json_schema {
            config["responseMimeType"] = json!("application/json");
            config["responseJsonSchema"] = schema.schema.clone();
        }
        let mut body = json!({"contents": contents, "generationConfig": config});
        if !request.system.is_empty() {
            body["systemInstruction"] = json!({"parts": [{"text": request.system}]});
        }
        body
    }

    /// The embedding of `text` for `task`, by `:embedContent`.
    ///
    /// # Errors
    /// As the call fails, or [`LlmError::InvalidAnswer`] for an empty vector.
    pub async fn embed(&self, text: &str, task: TaskType) -> Result<Vec<f32>, LlmError> {
        let body = json!({
            "model": format!("models/{}", self.embed_model),
            "content": {"parts": [{"text": text}]},
            "taskType": task.wire(),
        });
        let url = self.url(&self.embed_model, "embedContent")?;
        let response = wire::send(self.name(), self.post(url, &body)).await?;
        let answer: EmbedAnswer = wire::json(self.name(), response).await?;
        if answer.embedding.values.is_empty() {
            return Err(wire::invalid(self.name(), "empty embedding"));
        }
        Ok(answer.embedding.values)
    }
}

impl LlmProvider for GeminiProvider {
    fn name(&self) -> &str {
        "gemini"
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let url = self.url(&self.model, "generateContent")?;
            let response = wire::send(self.name(), self.post(url, &Self::body(request))).await?;
            let answer: Answer = wire::json(self.name(), response).await?;
            let usage = answer.usage_metadata.clone().unwrap_or_default();
            let (text, finish) = answer.text(self.name())?;
            Ok(Completion {
                text,
                finish: finish.unwrap_or(FinishReason::Stop),
                usage: Usage {
                    prompt_tokens: usage.prompt_token_count,
                    completion_tokens: usage.candidates_token_count,
                },
                provider: self.name().to_owned(),
            })
        })
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<TokenStream, LlmError>> {
        Box::pin(async move {
            let mut url = self.url(&self.model, "streamGenerateContent")?;
            url.query_pairs_mut().append_pair("alt", "sse");
            let response = wire::send(self.name(), self.post(url, &Self::body(request))).await?;
            let name = self.name().to_owned();
            Ok(wire::event_stream(
                self.name(),
                response,
                self.idle_timeout,
                move |event| {
                    let answer: Answer = serde_json::from_str(&event.data).map_err(|e| {
                        wire::invalid(&name, format!("not a GenerateContentResponse: {e}"))
                    })?;
                    // Each event is a partial response; the last carries the finish reason.
                    let (text, finish) = answer.text(&name)?;
                    Ok(match finish {
                        Some(_) if text.is_empty() => Piece::Done,
                        _ => Piece::Text(text),
                    })
                },
            ))
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
}

impl Answer {
    /// The first candidate's text (thought parts dropped) and its finish reason, or why there
    /// is none.
    fn text(self, provider: &str) -> Result<(String, Option<FinishReason>), LlmError> {
        let Some(candidate) = self.candidates.into_iter().next() else {
            let reason = self
                .prompt_feedback
                .and_then(|f| f.block_reason)
                .unwrap_or_else(|| "no candidate".to_owned());
            return Err(wire::invalid(provider, format!("prompt blocked: {reason}")));
        };
        let finish = candidate.finish_reason.as_deref().map(|r| match r {
            "STOP" => FinishReason::Stop,
            "MAX_TOKENS" => FinishReason::Length,
            _ => FinishReason::Other,
        });
        let text: String = candidate
            .content
            .map(|c| c.parts)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.thought)
            .filter_map(|p| p.text)
            .collect();
        if matches!(finish, Some(FinishReason::Other)) && text.is_empty() {
            let reason = candidate.finish_reason.unwrap_or_default();
            return Err(wire::invalid(
                provider,
                format!("answer withheld: {reason}"),
            ));
        }
        Ok((text, finish))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
}

#[derive(Deserialize)]
struct EmbedAnswer {
    embedding: EmbeddingValues,
}

#[derive(Deserialize)]
struct EmbeddingValues {
    #[serde(default)]
    values: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{JsonSchema, Message};

    #[test]
    fn body_maps_roles_system_and_schema() {
        let mut request = ChatRequest::new("sys", "q2");
        request.messages.insert(0, Message::user("q1"));
        request.messages.insert(1, Message::assistant("a1"));
        request.json_schema = Some(JsonSchema {
            name: "x".into(),
            schema: json!({"type": "object", "additionalProperties": false}),
        });
        let body = GeminiProvider::body(&request);
        let roles: Vec<&str> = body["contents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "model", "user"]);
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], "sys");
        let config = &body["generationConfig"];
        assert_eq!(config["responseMimeType"], "application/json");
        assert_eq!(config["responseJsonSchema"]["additionalProperties"], false);
        assert_eq!(config["maxOutputTokens"], 512);
    }

    fn answer(v: Value) -> Result<(String, Option<FinishReason>), LlmError> {
        serde_json::from_value::<Answer>(v).unwrap().text("gemini")
    }

    #[test]
    fn thoughts_are_dropped_and_finish_mapped() {
        let (text, finish) = answer(json!({"candidates": [{
            "content": {"parts": [{"text": "hmm", "thought": true}, {"text": "4"}, {"text": "2"}]},
            "finishReason": "MAX_TOKENS"}]}))
        .unwrap();
        assert_eq!((text.as_str(), finish), ("42", Some(FinishReason::Length)));
    }

    #[test]
    fn blocked_prompts_and_withheld_answers_are_errors() {
        let blocked = answer(json!({"promptFeedback": {"blockReason": "SAFETY"}})).unwrap_err();
        assert!(blocked.to_string().contains("SAFETY"), "{blocked}");
        let withheld = answer(json!({"candidates": [{"finishReason": "RECITATION"}]})).unwrap_err();
        assert!(withheld.to_string().contains("RECITATION"), "{withheld}");
    }
}
