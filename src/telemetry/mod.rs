//! Telemetry: log lines on stderr, traces exported over OTLP, and Prometheus metrics.
//!
//! [`init`] installs the process's one `tracing` subscriber: the fmt layer (text or JSON,
//! filtered by `RUST_LOG`) and, when an OTLP endpoint is configured, an OpenTelemetry layer
//! whose spans a batch processor on tokio sends to the collector. [`init_logging`] is the
//! logs-only variant for the one-shot commands. [`Metrics`] is the registry behind `/metrics`.
//!
//! Secrets never reach here: the types that hold them print redactions, the code logs token ids
//! shortened, and HTTP spans carry URLs with their query values replaced (see [`http`]).
//! `docs/observability.md` lists the spans, attributes, metrics and `OTEL_*` variables.

pub mod config;
pub mod metrics;
mod otlp;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use config::{LogFormat, TelemetryConfig};

pub use metrics::{Metrics, ROTATION_OUTCOMES};

/// Installs the global subscriber once for logs only; later calls are ignored (tests, reloads).
pub fn init_logging(format: LogFormat, default_level: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(default_level))
        .with_ansi(colour_on_stderr())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Installs the global subscriber: logs on stderr as `config.log_format` says, at `RUST_LOG`
/// or else `default_level`; plus OTLP trace export when `config.otlp_endpoint` or
/// `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` names a collector. Export needs a tokio runtime.
///
/// Keep the guard for the life of the process and call [`TelemetryGuard::shutdown`] before
/// exiting, so the last spans leave. Fails when the export settings are wrong (the message
/// names the key or variable) or a subscriber is already installed.
pub fn init(config: &TelemetryConfig, default_level: &str) -> Result<TelemetryGuard, String> {
    // Checked first: a provider built and then dropped unused would block its thread.
    if tracing::dispatcher::has_been_set() {
        return Err("telemetry: a tracing subscriber is already installed in this process".into());
    }
    let env = |name: &str| std::env::var(name).ok();
    let provider = match otlp::plan(config, &env)? {
        Some(plan) => Some(otlp::tracer_provider(&plan)?),
        None => None,
    };
    let fmt_layer = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour_on_stderr())
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(log_filter(default_level));
    // Traces do not follow RUST_LOG: quieter logs must not cost the rotation spans. Only this
    // crate's spans are exported, which also keeps the exporter's own HTTP client out.
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_filter(Targets::new().with_target(env!("CARGO_CRATE_NAME"), Level::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    let guard = TelemetryGuard { provider };
    match installed {
        Ok(()) => Ok(guard),
        Err(e) => Err(format!(
            "telemetry: a tracing subscriber is already installed in this process ({e})"
        )),
    }
}

/// What is wrong with the trace export settings (`[telemetry]` and the `OTEL_*` variables),
/// as [`init`] would report it, without starting an exporter: for `check`, which sends no spans.
pub fn export_settings_problem(config: &TelemetryConfig) -> Option<String> {
    otlp::plan(config, &|name: &str| std::env::var(name).ok()).err()
}

/// For tests that read what was logged: a `tracing_subscriber` writer (`with_writer(move ||
/// log.clone())`) whose clones share what they were given.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl CapturedLog {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether text logs on stderr get colour: only for a person at a terminal (escape codes in
/// journald, a file or a pipe are noise), and not when `NO_COLOR` is set to anything non-empty.
/// The simulator's logs follow the same rule.
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn log_filter(default_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level))
}

/// Holds the trace exporter; flushes it on [`shutdown`](TelemetryGuard::shutdown) or drop.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends every finished span now and waits for the collector's answer.
    pub async fn flush(&self) -> Result<(), String> {
        let Some(provider) = self.provider.clone() else {
            return Ok(());
        };
        run_blocking(move || provider.force_flush()).await
    }

    /// Sends the remaining spans and stops the exporter; waits for the collector's answer.
    pub async fn shutdown(mut self) -> Result<(), String> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        run_blocking(move || provider.shutdown()).await
    }
}

/// The SDK's flush and shutdown block their thread until the export task (on tokio) answers,
/// so they run on the blocking pool, where they cannot stall that task.
async fn run_blocking(
    operation: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) -> Result<(), String> {
    match tokio::task::spawn_blocking(operation).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("telemetry: exporting the last spans failed: {e}")),
        Err(e) => Err(format!("telemetry: the span flush did not finish: {e}")),
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // Blocking on a current-thread runtime would wait for a task that can never run, and
        // outside any runtime the export task may be gone or not driven: there the last spans
        // are dropped. Call `shutdown().await` to keep them.
        if let Ok(handle) = tokio::runtime::Handle::try_current()
            && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            let _ = tokio::task::block_in_place(|| provider.shutdown());
        }
    }
}
