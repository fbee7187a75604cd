//! What the daemon reports about its jobs: alerts, metrics and the systemd status line, in one
//! place, so the jobs only say what happened.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alert::{
    AlertKind, Alerter, alert_for_event, alert_for_failure, alert_for_store_problem,
};
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
        let reason = result.as_ref().err().map(RotationError::reason);
        self.metrics.rotation_finished(name, reason, elapsed);
        match reason {
            None => self.metrics.set_login_latched(name, false),
            // A refused login latches at once; the store says so at the next read too.
            Some("login") => self.metrics.set_login_latched(name, true),
            Some(_) => {}
        }
        if result.is_ok() {
            self.metrics.set_last_success(name, Utc::now().timestamp());
            self.alerter
                .healed(name, engine.integration().account.realm());
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

    /// The store could not be read or written: an alert that says how to recover.
    pub fn store_problem(&self, engine: &Engine, error: &crate::store::StoreError) {
        let integration = engine.integration();
        self.alerter.trigger(alert_for_store_problem(
            &integration.name,
            integration.account.realm(),
            error,
        ));
    }

    /// A configuration reload was refused.
    pub fn reload_failed(&self) {
        self.metrics.reload_failed();
    }

    /// Failed steps of the integration since its last successful one.
    pub fn consecutive_failures(&self, integration: &str, failures: u32) {
        self.metrics.set_consecutive_failures(integration, failures);
    }

    /// What the store holds, read before each decision: token age, pending revocations and
    /// when the oldest is due, the login latch, and (until a rotation succeeds in this process) the last success as the
    /// current token's issue time. A store read again clears its store alert.
    pub fn store_state(&self, engine: &Engine, state: &StoreState) {
        let name = &engine.integration().name;
        self.alerter.resolve(name, AlertKind::StoreUnreadable);
        if let Some(current) = &state.current {
            let issued_at = current.issued_at().timestamp();
            self.metrics.set_token_issued_at(name, issued_at);
            self.metrics.last_success_at_least(name, issued_at);
            if let Some(not_after) = current.expires_at() {
                self.metrics
                    .set_certificate_expiry(name, not_after.timestamp());
            }
        }
        self.metrics
            .set_login_latched(name, state.login_latch.is_some());
        let unrevoked = state.previous.as_ref().filter(|p| p.revoked_at.is_none());
        self.metrics
            .set_revoke_due(name, unrevoked.map(|p| p.revoke_after.timestamp()));
        self.metrics.set_revocations_pending(
            name,
            u64::from(unrevoked.is_some()) + u64::from(state.pending.is_some()),
        );
    }

    /// When the current credential falls due (see `job::rotation_due`); `None` removes it.
    pub fn rotation_due(&self, integration: &str, at: Option<DateTime<Utc>>) {
        self.metrics
            .set_rotation_due(integration, at.map(|t| t.timestamp()));
    }

    /// The integration's freeze windows (the metrics say at scrape time whether one holds it).
    pub fn freezes(&self, integration: &str, freezes: &crate::schedule::Freezes) {
        self.metrics.set_freezes(integration, freezes);
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
