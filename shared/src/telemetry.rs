//! Logging: `tracing` to stdout, JSON by default (one object per line, as Cloud Logging reads it).

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber. Safe to call more than once (tests do): later calls are no-ops.
pub fn init(settings: &Settings) {
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
