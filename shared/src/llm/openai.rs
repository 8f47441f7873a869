//! Any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM, llama.cpp's
//! `llama-server`): `POST {base}/chat/completions`, streamed as server-sent events ending with
//! `data: [DONE]`.
//!
//! Structured output is `response_format: {"type": "json_schema", "json_schema": {…, "strict":
//! true}}`, which OpenAI, vLLM, Ollama (≥ 0.5) and llama-server all accept. `max_tokens` rather
//! than OpenAI's newer `max_completion_tokens`: it is the field the self-hosted servers read.

use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire::{self, Piece};
use super::{
    ChatRequest, Completion, FinishReason, LlmError, LlmProvider, Role, TokenStream, Usage,
};

/// An OpenAI-compatible endpoint.
pub struct OpenAiProvider {
    http: reqwest::Client,
    endpoint: url::Url,
    api_key: Option<SecretString>,
    model: String,
    idle_timeout: Duration,
}

impl OpenAiProvider {
    /// A provider for `model` at `base_url` (the URL up to `/v1`, e.g.
    /// `http://127.0.0.1:11434/v1`), sending `api_key` as a bearer token when set. `idle_timeout`
    /// bounds the wait between two pieces of a streamed answer.
    ///
    /// # Errors
    /// A base URL that cannot take a path (`mailto:`, `data:`).
    pub fn new(
        http: reqwest::Client,
        base_url: &url::Url,
        api_key: Option<SecretString>,
        model: impl Into<String>,
        idle_timeout: Duration,
    ) -> Result<Self, url::ParseError> {
        Ok(Self {
            http,
            endpoint: crate::http::outbound::below(base_url, "chat/completions")?,
            api_key,
            model: model.into(),
            idle_timeout,
        })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.extend(request.messages.iter().map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content})
        }));
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": stream,
        });
        if let Some(schema) = &request.json_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": schema.name, "schema": schema.schema, "strict": true},
            });
        }
        body
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let request = self.http.post(self.endpoint.clone()).json(body);
        match &self.api_key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }
}

impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let response = wire::send(self.name(), self.post(&self.body(request, false))).await?;
            let answer: ChatAnswer = wire::json(self.name(), response).await?;
            let choice = answer
                .choices
                .into_iter()
                .next()
                .ok_or_else(|| wire::invalid(self.name(), "no choices"))?;
            let text = choice
                .message
                .content
                .ok_or_else(|| wire::invalid(self.name(), "no content in the answer"))?;
            let usage = answer.usage.unwrap_or_default();
            Ok(Completion {
                text,
                finish: finish_reason(choice.finish_reason.as_deref()),
                usage: Usage {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
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
            let response = wire::send(self.name(), self.post(&self.body(request, true))).await?;
            let name = self.name().to_owned();
            Ok(wire::event_stream(
                self.name(),
                response,
                self.idle_timeout,
                move |event| {
                    if event.data.trim() == "[DONE]" {
                        return Ok(Piece::Done);
                    }
                    let chunk: StreamChunk = serde_json::from_str(&event.data).map_err(|e| {
                        wire::invalid(&name, format!("not a chat.completion.chunk: {e}"))
                    })?;
                    let text = chunk
                        .choices
                        .into_iter()
                        .next()
                        .and_then(|c| c.delta.content)
                        .unwrap_or_default();
                    Ok(Piece::Text(text))
                },
            ))
        })
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") | None => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some(_) => FinishReason::Other,
    }
}

#[derive(Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<AnswerUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct AnswerUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{JsonSchema, Message};

    fn provider() -> OpenAiProvider {
        OpenAiProvider::new(
            reqwest::Client::new(),
            &"http://127.0.0.1:9/v1".parse().unwrap(),
            None,
            "qwen",
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn endpoint_is_below_the_base_path() {
        assert_eq!(
            provider().endpoint.as_str(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        let with_slash =
            crate::http::outbound::below(&"http://h/v1/".parse().unwrap(), "chat/completions")
                .unwrap();
        assert_eq!(with_slash.as_str(), "http://h/v1/chat/completions");
    }

    #[test]
    fn body_has_system_turns_and_schema() {
        let mut request = ChatRequest::new("be brief", "hi");
        request.messages.insert(0, Message::assistant("earlier"));
        request.json_schema = Some(JsonSchema {
            name: "route".into(),
            schema: json!({"type": "object"}),
        });
        let body = provider().body(&request, true);
        assert_eq!(body["model"], "qwen");
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(body["messages"][1]["role"], "assistant");
        assert_eq!(
            body["messages"][2],
            json!({"role": "user", "content": "hi"})
        );
        assert_eq!(body["response_format"]["json_schema"]["name"], "route");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    }

    #[test]
    fn no_system_message_when_empty() {
        let body = provider().body(&ChatRequest::new("", "hi"), false);
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
        assert!(body.get("response_format").is_none());
    }
}
