//! Logging set-up: `tracing` to stderr as text or JSON, filtered by `RUST_LOG`.
//!
//! Secrets never reach here: the types that hold them print redactions, and the code logs token
//! ids shortened. OpenTelemetry export and metrics join this module with the daemon.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are ignored (tests, reloads).
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
