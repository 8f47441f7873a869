//! Outbound HTTP helpers: reading answers (JWKS, Chroma, LLM providers, peer functions) without
//! trusting their size — a peer that streams forever, or lies in `Content-Length`, must not
//! exhaust memory — and building endpoint URLs below a configured base.

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is larger than the caller's limit.
    #[error("answer larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The connection failed while reading (a timeout is one: see [`reqwest::Error::is_timeout`]).
    #[error("reading the answer failed: {0}")]
    Transport(#[source] reqwest::Error),
}

/// The whole body of `response`, refused once it exceeds `limit` bytes. Reads chunk by chunk:
/// `Content-Length` may be absent (chunked encoding) or wrong.
///
/// # Errors
/// [`ReadError::TooLarge`] past `limit` (also when `Content-Length` announces more), or
/// [`ReadError::Transport`] when the connection fails.
pub async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(ReadError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Up to about `max` bytes of the start of an error answer, best effort: the status is what
/// counts, the body only helps a human, so a failed read just ends it.
pub async fn read_prefix(response: &mut reqwest::Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(max);
    body
}

/// `base` with the relative `path` appended below it, whether or not `base` ends with `/`
/// (`http://h/v1` + `chat/completions` = `http://h/v1/chat/completions`, where a plain
/// [`url::Url::join`] would drop `v1`).
///
/// # Errors
/// A base that cannot take a path (`mailto:`, `data:`) or an unusable `path`.
pub fn below(base: &url::Url, path: &str) -> Result<url::Url, url::ParseError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(path)
}
