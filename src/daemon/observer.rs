//! What the daemon reports about its jobs: alerts, metrics and the systemd status line, in one
//! place, so the jobs only say what happened.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alert::{Alerter, alert_for_event, alert_for_failure};
use crate::config::Config;
use crate::daemon::notify;
use crate::rotation::{Engine, Event, EventSink, Rotated, RotationError};
use crate::store::StoreState;

/// Collects what the jobs report and hands it to the alert channels and the metrics registry.
pub struct Observer {
    alerter: Alerter,
    /// Integration name -> account id, for alerts raised from events (which carry the name).
    accounts: HashMap<String, String>,
}

impl Observer {
    pub fn new(config: &Config) -> Result<Observer, String> {
        Ok(Observer {
            alerter: Alerter::from_config(&config.alerts)?,
            accounts: config
                .integrations
                .iter()
                .map(|i| (i.name.clone(), i.account_id.clone()))
                .collect(),
        })
    }

    pub fn render_metrics(&self) -> String {
        String::new()
    }

    pub fn rotation_finished(
        &self,
        engine: &Engine,
        result: &Result<Rotated, RotationError>,
        _elapsed: Duration,
    ) {
        let name = &engine.integration().name;
        if result.is_ok() {
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

    pub fn store_state(&self, _engine: &Engine, _state: &StoreState) {}

    pub fn next_rotation(&self, _integration: &str, _at: DateTime<Utc>) {}

    /// Waits for in-flight alert deliveries at shutdown, up to `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        self.alerter.flush(timeout).await;
    }
}

impl EventSink for Observer {
    fn event(&self, integration: &str, event: &Event) {
        let account = self.accounts.get(integration).map_or("", String::as_str);
        if let Some(alert) = alert_for_event(integration, account, event) {
            self.alerter.trigger(alert);
        }
    }
}
