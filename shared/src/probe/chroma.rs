//! Chroma probe: the v2 heartbeat endpoint.

use futures::future::BoxFuture;

use super::{Probe, ProbeError};

/// Probes a Chroma server's `GET /api/v2/heartbeat`.
pub struct ChromaProbe {
    http: reqwest::Client,
    heartbeat: url::Url,
}

impl ChromaProbe {
    /// A probe of the Chroma server at `base`.
    ///
    /// # Errors
    /// When `base` cannot be joined with the heartbeat path.
    pub fn new(http: reqwest::Client, base: &url::Url) -> Result<Self, url::ParseError> {
        let heartbeat = base.join("api/v2/heartbeat")?;
        Ok(Self { http, heartbeat })
    }
}

impl Probe for ChromaProbe {
    fn name(&self) -> &'static str {
        "chroma"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin(async move {
            self.http
                .get(self.heartbeat.clone())
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| ProbeError::Unreachable(e.without_url().into()))?;
            Ok(())
        })
    }
}
