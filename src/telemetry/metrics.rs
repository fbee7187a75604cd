//! Prometheus metrics: one registry that the daemon updates as rotations happen and that
//! `/metrics` renders in the OpenMetrics text format (serve it with [`CONTENT_TYPE`]).
//!
//! Labels hold only names from the configuration (integration, alert channel) and fixed words
//! (outcome, result); never a token, key or secret. Times are Unix seconds. The token age is
//! computed when the metrics are rendered, from the issue time the daemon recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the rotation-duration buckets, in seconds: a rotation is a few HTTP calls
/// and store writes, so seconds normally, minutes when NetSuite or the store is slow.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationLabels {
    integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    integration: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    channel: String,
    result: String,
}

type PerIntegration<M> = Family<IntegrationLabels, M>;

/// The daemon's metrics. Clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    rotations: Family<RotationLabels, Counter>,
    rotation_duration: Family<IntegrationLabels, Histogram, fn() -> Histogram>,
    token_issued_at: PerIntegration<Gauge>,
    token_age: PerIntegration<Gauge>,
    /// Issue times by integration, for the ages computed at render time.
    issued_at: Mutex<BTreeMap<String, i64>>,
    last_success: PerIntegration<Gauge>,
    next_rotation: PerIntegration<Gauge>,
    revocations_pending: PerIntegration<Gauge>,
    orphans_suspected: PerIntegration<Counter>,
    alerts: Family<AlertLabels, Counter>,
    ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("netsuite_rotator");
        let rotations = Family::<RotationLabels, Counter>::default();
        registry.register(
            "rotations",
            "Rotations finished, by integration and outcome",
            rotations.clone(),
        );
        let rotation_duration: Family<IntegrationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register_with_unit(
            "rotation_duration",
            "Wall time of a rotation, recovery and revocation included",
            Unit::Seconds,
            rotation_duration.clone(),
        );
        let token_issued_at = PerIntegration::<Gauge>::default();
        registry.register_with_unit(
            "token_issued_timestamp",
            "When the current token was issued (Unix time)",
            Unit::Seconds,
            token_issued_at.clone(),
        );
        let token_age = PerIntegration::<Gauge>::default();
        registry.register_with_unit(
            "token_age",
            "Age of the current token at scrape time",
            Unit::Seconds,
            token_age.clone(),
        );
        let last_success = PerIntegration::<Gauge>::default();
        registry.register_with_unit(
            "last_success_timestamp",
            "When the last rotation succeeded (Unix time)",
            Unit::Seconds,
            last_success.clone(),
        );
        let next_rotation = PerIntegration::<Gauge>::default();
        registry.register_with_unit(
            "next_rotation_timestamp",
            "When the next rotation is scheduled (Unix time)",
            Unit::Seconds,
            next_rotation.clone(),
        );
        let revocations_pending = PerIntegration::<Gauge>::default();
        registry.register(
            "revocations_pending",
            "Replaced tokens still valid: in their grace window or waiting for a revocation retry",
            revocations_pending.clone(),
        );
        let orphans_suspected = PerIntegration::<Counter>::default();
        registry.register(
            "orphans_suspected",
            "Tokens NetSuite may hold that the store does not know; revoke them by name",
            orphans_suspected.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts delivered (result=sent) or given up on (result=failed), by channel",
            alerts.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when the daemon is ready (configuration loaded, stores reachable), else 0",
            ready.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                rotations,
                rotation_duration,
                token_issued_at,
                token_age,
                issued_at: Mutex::default(),
                last_success,
                next_rotation,
                revocations_pending,
                orphans_suspected,
                alerts,
                ready,
            }),
        }
    }

    /// A rotation ended: counts it under `outcome` (e.g. `rotated`, `failed`) and records how
    /// long it took.
    pub fn rotation_finished(&self, integration: &str, outcome: &str, duration: Duration) {
        let labels = RotationLabels {
            integration: integration.to_string(),
            outcome: outcome.to_string(),
        };
        self.inner.rotations.get_or_create(&labels).inc();
        self.inner
            .rotation_duration
            .get_or_create(&integration_labels(integration))
            .observe(duration.as_secs_f64());
    }

    /// When the integration's current token was issued; the token age follows from it.
    pub fn set_token_issued_at(&self, integration: &str, unix_secs: i64) {
        let labels = integration_labels(integration);
        self.inner
            .token_issued_at
            .get_or_create(&labels)
            .set(unix_secs);
        self.issued_at().insert(integration.to_string(), unix_secs);
    }

    pub fn set_last_success(&self, integration: &str, unix_secs: i64) {
        let labels = integration_labels(integration);
        self.inner
            .last_success
            .get_or_create(&labels)
            .set(unix_secs);
    }

    pub fn set_next_rotation(&self, integration: &str, unix_secs: i64) {
        let labels = integration_labels(integration);
        self.inner
            .next_rotation
            .get_or_create(&labels)
            .set(unix_secs);
    }

    /// Replaced tokens of the integration that are not revoked yet.
    pub fn set_revocations_pending(&self, integration: &str, pending: u64) {
        let labels = integration_labels(integration);
        let pending = i64::try_from(pending).unwrap_or(i64::MAX);
        self.inner
            .revocations_pending
            .get_or_create(&labels)
            .set(pending);
    }

    /// One suspected orphan token was reported.
    pub fn orphan_suspected(&self, integration: &str) {
        let labels = integration_labels(integration);
        self.inner.orphans_suspected.get_or_create(&labels).inc();
    }

    /// The alert channel's running totals of alerts sent and given up on. Totals only grow, so
    /// a smaller number than last time (the channel was rebuilt) leaves the counter as it is.
    pub fn alerts(&self, channel: &str, sent: u64, failed: u64) {
        for (result, total) in [("sent", sent), ("failed", failed)] {
            let labels = AlertLabels {
                channel: channel.to_string(),
                result: result.to_string(),
            };
            let counter = self.inner.alerts.get_or_create(&labels);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.set(i64::from(ready));
    }

    /// The metrics in the OpenMetrics text format, token ages computed for now.
    pub fn render(&self) -> String {
        self.render_at(SystemTime::now())
    }

    /// [`render`](Metrics::render) with token ages computed for the given time.
    pub fn render_at(&self, now: SystemTime) -> String {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(since_epoch) => i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        for (integration, issued_at) in self.issued_at().iter() {
            // A clock behind the issuer's must not show a negative age.
            let age = now.saturating_sub(*issued_at).max(0);
            self.inner
                .token_age
                .get_or_create(&integration_labels(integration))
                .set(age);
        }
        let mut text = String::new();
        encode(&mut text, &self.inner.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Metrics {
    fn issued_at(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, i64>> {
        // The map stays consistent even if a holder panicked: every write is one insert.
        self.inner
            .issued_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn integration_labels(integration: &str) -> IntegrationLabels {
    IntegrationLabels {
        integration: integration.to_string(),
    }
}
