//! What the daemon reports about its jobs: alerts, metrics and the systemd status line, in one
//! place, so the jobs only say what happened.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alert::{Alerter, alert_for_event, alert_for_failure};
use crate::config::Config;
use crate::daemon::notify;
use crate::rotation::{Engine, Event, EventSink, Integration, Rotated, RotationError};
use crate::store::StoreState;
use crate::telemetry::Metrics;

/// Collects what the jobs report and hands it to the alert channels and the metrics registry.
pub struct Observer {
    alerter: Alerter,
    metrics: Metrics,
}

impl Observer {
    pub fn new(config: &Config) -> Result<Observer, String> {
        Ok(Observer {
            alerter: Alerter::from_config(&config.alerts)?,
            metrics: Metrics::new(),
        })
    }

    /// The Prometheus text for `/metrics`; alert counters are read from the alerter now.
    pub fn render_metrics(&self) -> String {
        for (channel, sent, failed) in self.alerter.counts() {
            self.metrics.alerts(&channel, sent, failed);
        }
        self.metrics.render()
    }

    pub fn set_ready(&self, ready: bool) {
        self.metrics.set_ready(ready);
    }

    /// Exports the NetSuite client's attempt counts (see [`Metrics::observe_netsuite_calls`]).
    pub fn observe_netsuite_calls(&self, client: &crate::netsuite::NetSuiteClient) {
        self.metrics.observe_netsuite_calls(client.call_counts());
    }

    /// The integrations now running (see [`Metrics::track_integrations`]).
    pub fn track_integrations(&self, names: impl IntoIterator<Item = std::sync::Arc<str>>) {
        self.metrics.track_integrations(names);
    }

    pub fn rotation_finished(
        &self,
        engine: &Engine,
        result: &Result<Rotated, RotationError>,
        elapsed: Duration,
    ) {
        let name = &engine.integration().name;
        let outcome = match result {
            Ok(_) => "rotated",
            Err(e) if e.is_transient() => "failed_transient",
            Err(_) => "failed",
        };
        self.metrics.rotation_finished(name, outcome, elapsed);
        if result.is_ok() {
            self.metrics.set_last_success(name, Utc::now().timestamp());
            self.alerter.resolve_all(name);
            notify::status(&format!(
                "last rotation: {name} at {}",
                Utc::now().format("%F %T UTC")
            ));
        }
    }

    /// A failure on-call should hear about (permanent, or transient several times over).
    pub fn failure_alert(&self, engine: &Engine, error: &RotationError) {
        let integration = engine.integration();
        self.alerter.trigger(alert_for_failure(
            &integration.name,
            integration.account.realm(),
            error,
        ));
    }

    /// What the store holds, read before each decision: token age and pending revocations.
    pub fn store_state(&self, engine: &Engine, state: &StoreState) {
        let name = &engine.integration().name;
        if let Some(current) = &state.current {
            self.metrics
                .set_token_issued_at(name, current.issued_at.timestamp());
        }
        let unrevoked = state.previous.as_ref().filter(|p| p.revoked_at.is_none());
        self.metrics.set_revocations_pending(
            name,
            u64::from(unrevoked.is_some()) + u64::from(state.pending.is_some()),
        );
    }

    pub fn next_rotation(&self, integration: &str, at: DateTime<Utc>) {
        self.metrics.set_next_rotation(integration, at.timestamp());
    }

    /// Waits for in-flight alert deliveries at shutdown, up to `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        self.alerter.flush(timeout).await;
    }
}

impl EventSink for Observer {
    fn event(&self, integration: &Integration, event: &Event) {
        let name = &integration.name;
        if matches!(event, Event::OrphanSuspected { .. }) {
            self.metrics.orphan_suspected(name);
        }
        if let Some(alert) = alert_for_event(name, integration.account.realm(), event) {
            self.alerter.trigger(alert);
        }
    }
}
