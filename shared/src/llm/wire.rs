//! What the HTTP providers share: sending a request and classifying its failure, reading a
//! bounded JSON answer, and turning a `text/event-stream` answer into a [`TokenStream`].

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::retry::parse_retry_after;
use super::sse::{Event, SseDecoder};
use super::{LlmError, TokenStream};
use crate::http::outbound::{read_limited, read_prefix, ReadError};

/// Largest whole answer read (a completion is a few KiB; this only stops a runaway peer).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Largest single streamed event.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// How much of an error answer is read for its message.
const MAX_ERROR_BYTES: usize = 8 << 10;
/// How much of the provider's error message is kept.
const MAX_MESSAGE_CHARS: usize = 300;

/// A transport failure, without the URL (it may carry a key in its query).
pub(crate) fn transport(provider: &str, err: reqwest::Error) -> LlmError {
    if err.is_timeout() {
        LlmError::Timeout {
            provider: provider.to_owned(),
        }
    } else {
        LlmError::Unreachable {
            provider: provider.to_owned(),
            message: err.without_url().to_string(),
        }
    }
}

/// Sends `request` and returns the response if its status is a success; otherwise the failure
/// classified by status, with the provider's `Retry-After` (header, or Gemini's `RetryInfo`).
pub(crate) async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, LlmError> {
    let mut response = request.send().await.map_err(|e| transport(provider, e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let header_delay = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = read_prefix(&mut response, MAX_ERROR_BYTES).await;
    let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
    let retry_after = header_delay.or_else(|| parsed.as_ref().and_then(ErrorBody::retry_delay));
    let message = parsed
        .and_then(|p| p.error.message)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    let provider = provider.to_owned();
    let status = status.as_u16();
    Err(match status {
        429 => LlmError::RateLimited {
            provider,
            retry_after,
        },
        401 | 403 => LlmError::Unauthorized { provider, status },
        408 => LlmError::Timeout { provider },
        500..=599 => LlmError::Server {
            provider,
            status,
            retry_after,
        },
        _ => LlmError::Refused {
            provider,
            status,
            message,
        },
    })
}

/// The answer's body as `T`.
pub(crate) async fn json<T: DeserializeOwned>(
    provider: &str,
    mut response: reqwest::Response,
) -> Result<T, LlmError> {
    let body = read_limited(&mut response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| read_error(provider, e))?;
    serde_json::from_slice(&body)
        .map_err(|e| invalid(provider, format!("not the expected JSON: {e}")))
}

/// [`LlmError::InvalidAnswer`].
pub(crate) fn invalid(provider: &str, message: impl Into<String>) -> LlmError {
    LlmError::InvalidAnswer {
        provider: provider.to_owned(),
        message: message.into(),
    }
}

fn read_error(provider: &str, err: ReadError) -> LlmError {
    match err {
        ReadError::TooLarge { limit } => {
            invalid(provider, format!("answer larger than {limit} bytes"))
        }
        ReadError::Transport(e) => transport(provider, e),
    }
}

/// What one server-sent event of a streamed answer means.
pub(crate) enum Piece {
    /// Text to pass on (may be empty, then it is skipped).
    Text(String),
    /// The provider said the answer is complete.
    Done,
}

/// Turns a streamed answer into pieces of text: each event goes through `parse`; the stream ends
/// at [`Piece::Done`], at the end of the body, or after the first error. `idle` bounds the wait
/// for each chunk of the body, so a stalled connection ends as a [`LlmError::Timeout`].
pub(crate) fn event_stream<F>(
    provider: &str,
    response: reqwest::Response,
    idle: Duration,
    parse: F,
) -> TokenStream
where
    F: FnMut(&Event) -> Result<Piece, LlmError> + Send + 'static,
{
    struct State<F> {
        provider: String,
        response: reqwest::Response,
        decoder: SseDecoder,
        pending: VecDeque<String>,
        parse: F,
        idle: Duration,
        done: bool,
    }

    impl<F: FnMut(&Event) -> Result<Piece, LlmError>> State<F> {
        /// Parses `events` into `pending`; `Err` ends the stream.
        fn take(&mut self, events: Vec<Event>) -> Result<(), LlmError> {
            for event in events {
                match (self.parse)(&event)? {
                    Piece::Text(text) if !text.is_empty() => self.pending.push_back(text),
                    Piece::Text(_) => {}
                    Piece::Done => {
                        self.done = true;
                        break;
                    }
                }
            }
            Ok(())
        }

        async fn next(&mut self) -> Option<Result<String, LlmError>> {
            loop {
                if let Some(text) = self.pending.pop_front() {
                    return Some(Ok(text));
                }
                if self.done {
                    return None;
                }
                let chunk = match tokio::time::timeout(self.idle, self.response.chunk()).await {
                    Err(_) => Err(LlmError::Timeout {
                        provider: self.provider.clone(),
                    }),
                    Ok(chunk) => chunk.map_err(|e| transport(&self.provider, e)),
                };
                let step = match chunk {
                    Ok(Some(bytes)) => match self.decoder.push(&bytes) {
                        Ok(events) => self.take(events),
                        Err(e) => Err(invalid(&self.provider, e.to_string())),
                    },
                    Ok(None) => {
                        let last = self.decoder.finish().into_iter().collect();
                        let step = self.take(last);
                        self.done = true;
                        step
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = step {
                    self.done = true;
                    self.pending.clear();
                    return Some(Err(e));
                }
            }
        }
    }

    let state = State {
        provider: provider.to_owned(),
        response,
        decoder: SseDecoder::new(MAX_EVENT_BYTES),
        pending: VecDeque::new(),
        parse,
        idle,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    }))
}

/// The error body both OpenAI (`{"error": {"message"}}`) and Google
/// (`{"error": {"code", "message", "status", "details"}}`) send.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl ErrorBody {
    /// Google's `google.rpc.RetryInfo` detail: `{"@type": "…RetryInfo", "retryDelay": "31s"}`.
    fn retry_delay(&self) -> Option<Duration> {
        self.error.details.iter().find_map(|detail| {
            let delay = detail.get("retryDelay")?.as_str()?;
            parse_retry_after(delay.strip_suffix('s')?, SystemTime::now())
        })
    }
}
