//! Prometheus metrics: one registry that the daemon updates as rotations happen and that
//! `/metrics` renders in the OpenMetrics text format (serve it with [`CONTENT_TYPE`]), or, for
//! scrapers that do not ask for OpenMetrics, in the Prometheus text format 0.0.4
//! ([`to_prometheus_text`], [`PROMETHEUS_CONTENT_TYPE`]).
//!
//! Labels hold only names from the configuration (integration, alert channel) and fixed words
//! (outcome, result); never a token, key or secret. Times are Unix seconds. The token age is
//! computed when the metrics are rendered, from the issue time the daemon recorded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

use crate::netsuite::CallCounts;
use crate::schedule::{ActiveFreeze, Freezes};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of [`to_prometheus_text`]'s output: the Prometheus text exposition
/// format 0.0.4, for scrapers that do not ask for OpenMetrics.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the rotation-duration buckets, in seconds: a rotation is a few HTTP calls
/// and store writes, so seconds normally, minutes when NetSuite or the store is slow.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The label set of a per-integration series.
fn integration_labels(name: &str) -> [(&'static str, &str); 1] {
    [("integration", name)]
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    channel: String,
    result: String,
}

/// The daemon's metrics. Clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    integrations: Arc<PerIntegration>,
    netsuite_calls: Arc<NetSuiteCalls>,
    alerts: Family<AlertLabels, Counter>,
    ready: Gauge,
    reload_failures: Counter,
}

/// The `outcome` and `reason` label pairs of `rotations_total`, every one exported (at zero)
/// from the start: `rotated` has reason `none`; a failure has one of a small fixed set (see
/// `docs/observability.md`).
pub const ROTATION_OUTCOMES: [(&str, &str); 7] = [
    ("rotated", "none"),
    ("failed", "login"),
    ("failed", "rate_limited"),
    ("failed", "unavailable"),
    ("failed", "rejected"),
    ("failed", "store"),
    ("failed", "verification"),
];

/// Every per-integration series, one map entry per integration. A daemon holds thousands of
/// integrations for weeks; a `Family` per metric would keep a hash entry, a label string and
/// an atomic per metric and integration (about 400 B of each idle integration's memory). The
/// series are written out at scrape time instead (see the `Collector` impl).
#[derive(Debug, Default)]
struct PerIntegration {
    /// Keyed by the integration's name, shared with its configuration where it is tracked.
    series: Mutex<BTreeMap<Arc<str>, Series>>,
    /// The time token ages are computed for at the next scrape (Unix seconds).
    scrape_time: AtomicI64,
}

/// One integration's numbers; unset until the daemon has reported the value, so the series
/// appears only then (as a `Family` entry would).
#[derive(Debug, Default)]
struct Series {
    issued_at: Reported,
    last_success: Reported,
    next_rotation: Reported,
    revocations_pending: Reported,
    /// Failed steps since the last one that succeeded.
    consecutive_failures: Reported,
    /// 1 while a refused NLAuth login latches the integration.
    login_latched: Reported,
    /// When the current M2M certificate expires (Unix time); never set for TBA.
    certificate_expiry: Reported,
    /// When the current credential is due for replacement (Unix time).
    rotation_due: Reported,
    /// When the unrevoked previous credential's grace window ends; none when there is none.
    revoke_due: Reported,
    /// Zero until the first orphan is reported, and then the series appears.
    orphans_suspected: u64,
    /// The integration's freeze windows: whether one is in force is worked out at scrape time.
    freezes: Freezes,
    /// Rotations by outcome and reason, and their durations (boxed: the map holds an entry
    /// per integration, and this is its largest part).
    rotations: Box<Rotations>,
}

/// A gauge value the daemon has reported, or none yet: an `Option<i64>` in half the space
/// (`i64::MIN`, which no time or count here takes, stands for none), for a map that holds an
/// entry per integration.
#[derive(Clone, Copy, Debug)]
struct Reported(i64);

impl Reported {
    const NONE: Reported = Reported(i64::MIN);

    fn get(self) -> Option<i64> {
        (self.0 != i64::MIN).then_some(self.0)
    }
}

impl Default for Reported {
    fn default() -> Reported {
        Reported::NONE
    }
}

#[derive(Debug, Default)]
struct Rotations {
    /// Counts in the order of [`ROTATION_OUTCOMES`].
    by_outcome: [u64; ROTATION_OUTCOMES.len()],
    duration_sum: f64,
    duration_count: u64,
    /// Observations per bucket of [`DURATION_BUCKETS`], then the `+Inf` bucket.
    duration_buckets: [u64; DURATION_BUCKETS.len() + 1],
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
        let integrations = Arc::new(PerIntegration::default());
        registry.register_collector(Box::new(integrations.clone()));
        let netsuite_calls = Arc::new(NetSuiteCalls::default());
        registry.register_collector(Box::new(netsuite_calls.clone()));
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts delivered (result=sent) or given up on (result=failed), by channel",
            alerts.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when /readyz answers 200: configuration loaded, recovery done, every store \
             readable and no integration latched on a refused login; else 0",
            ready.clone(),
        );
        let reload_failures = Counter::default();
        registry.register(
            "config_reload_failures",
            "Configuration reloads (SIGHUP) refused; the running configuration stayed",
            reload_failures.clone(),
        );
        let build_info = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build_info
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the running version in the label",
            build_info,
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                integrations,
                netsuite_calls,
                alerts,
                ready,
                reload_failures,
            }),
        }
    }

    /// A rotation ended: counts it under `reason` (`None` for a success, else one of the
    /// failure reasons of [`ROTATION_OUTCOMES`]) and records how long it took.
    pub fn rotation_finished(&self, integration: &str, reason: Option<&str>, duration: Duration) {
        let index = ROTATION_OUTCOMES
            .iter()
            .position(|(outcome, r)| match reason {
                None => *outcome == "rotated",
                Some(reason) => *outcome == "failed" && *r == reason,
            })
            .expect("a reason of ROTATION_OUTCOMES");
        self.update(integration, |series| {
            let rotations = &mut series.rotations;
            rotations.by_outcome[index] += 1;
            let seconds = duration.as_secs_f64();
            rotations.duration_sum += seconds;
            rotations.duration_count += 1;
            let bucket = DURATION_BUCKETS
                .iter()
                .position(|upper| seconds <= *upper)
                .unwrap_or(DURATION_BUCKETS.len());
            rotations.duration_buckets[bucket] += 1;
        });
    }

    /// When the integration's current token was issued; the token age follows from it.
    pub fn set_token_issued_at(&self, integration: &str, unix_secs: i64) {
        self.update(integration, |series| series.issued_at = Reported(unix_secs));
    }

    pub fn set_last_success(&self, integration: &str, unix_secs: i64) {
        self.update(integration, |series| {
            series.last_success = Reported(unix_secs)
        });
    }

    /// The last success as far as the store tells (the issue time of its current token), for
    /// an integration that has not rotated since the daemon started: kept if already known.
    pub fn last_success_at_least(&self, integration: &str, unix_secs: i64) {
        self.update(integration, |series| {
            if series
                .last_success
                .get()
                .is_none_or(|known| known < unix_secs)
            {
                series.last_success = Reported(unix_secs)
            }
        });
    }

    /// When the integration's current certificate expires (M2M).
    pub fn set_certificate_expiry(&self, integration: &str, unix_secs: i64) {
        self.update(integration, |series| {
            series.certificate_expiry = Reported(unix_secs)
        });
    }

    /// When the current credential is due for replacement (`None`: no current credential, or
    /// a schedule with no next time); an alert fires when a rotation is long past it.
    pub fn set_rotation_due(&self, integration: &str, unix_secs: Option<i64>) {
        self.update(integration, |series| {
            series.rotation_due = unix_secs.map_or(Reported::NONE, Reported)
        });
    }

    /// When the unrevoked previous credential is to be revoked (`None` removes the series: no
    /// credential waits for revocation).
    pub fn set_revoke_due(&self, integration: &str, unix_secs: Option<i64>) {
        self.update(integration, |series| {
            series.revoke_due = unix_secs.map_or(Reported::NONE, Reported)
        });
    }

    pub fn set_consecutive_failures(&self, integration: &str, failures: u32) {
        self.update(integration, |series| {
            series.consecutive_failures = Reported(i64::from(failures))
        });
    }

    pub fn set_login_latched(&self, integration: &str, latched: bool) {
        self.update(integration, |series| {
            series.login_latched = Reported(i64::from(latched))
        });
    }

    /// A configuration reload was refused.
    pub fn reload_failed(&self) {
        self.inner.reload_failures.inc();
    }

    /// The integration's freeze windows, for `freeze_active` and `freeze_end_timestamp_seconds`.
    pub fn set_freezes(&self, integration: &str, freezes: &Freezes) {
        self.update(integration, |series| series.freezes = freezes.clone());
    }

    pub fn set_next_rotation(&self, integration: &str, unix_secs: i64) {
        self.update(integration, |series| {
            series.next_rotation = Reported(unix_secs)
        });
    }

    /// Replaced tokens of the integration that are not revoked yet.
    pub fn set_revocations_pending(&self, integration: &str, pending: u64) {
        let pending = i64::try_from(pending).unwrap_or(i64::MAX);
        self.update(integration, |series| {
            series.revocations_pending = Reported(pending)
        });
    }

    /// One suspected orphan token was reported.
    pub fn orphan_suspected(&self, integration: &str) {
        self.update(integration, |series| series.orphans_suspected += 1);
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

    /// Exports the NetSuite client's attempt counts (every call and result from the start, so
    /// a rate of rate-limited answers can be alerted on before the first one).
    pub fn observe_netsuite_calls(&self, counts: Arc<CallCounts>) {
        *self
            .inner
            .netsuite_calls
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(counts);
    }

    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.set(i64::from(ready));
    }

    /// The integrations the daemon runs now (at start and after a reload): their series are
    /// created at once, empty until reported, and the series of integrations no longer
    /// configured are dropped, so a removed integration's token age stops growing on the
    /// dashboards. Creating them all here, in order, also keeps the map's nodes together in
    /// memory instead of spread among start-up's short-lived allocations.
    pub fn track_integrations(&self, names: impl IntoIterator<Item = Arc<str>>) {
        let mut series = self.inner.integrations.lock();
        let mut kept: Vec<(Arc<str>, Series)> = names
            .into_iter()
            .map(|name| {
                let existing = series.remove(&name).unwrap_or_else(Series::fresh);
                (name, existing)
            })
            .collect();
        kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        kept.dedup_by(|a, b| a.0 == b.0);
        *series = kept.into_iter().collect();
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
        let mut text = String::new();
        self.inner
            .integrations
            .scrape_time
            .store(now, Ordering::Relaxed);
        encode(&mut text, &self.inner.registry).expect("writing to a String cannot fail");
        text
    }

    fn update(&self, integration: &str, change: impl FnOnce(&mut Series)) {
        let mut series = self.inner.integrations.lock();
        match series.get_mut(integration) {
            Some(existing) => change(existing),
            None => {
                let mut new = Series::fresh();
                change(&mut new);
                series.insert(integration.into(), new);
            }
        }
    }
}
impl Series {
    /// A new integration's series: counts and flags known (zero) from the start; the times
    /// follow from the first read of its store.
    fn fresh() -> Series {
        Series {
            consecutive_failures: Reported(0),
            login_latched: Reported(0),
            ..Series::default()
        }
    }
}

/// [`Metrics::render`]'s OpenMetrics text in the Prometheus text exposition format 0.0.4
/// (serve it with [`PROMETHEUS_CONTENT_TYPE`]). For what this registry holds, the two formats
/// differ only in these lines, checked against both specifications:
/// - a counter's `# HELP` and `# TYPE` name its samples' name, `_total` included (OpenMetrics
///   names the family without it, and 0.0.4 would take `x_total` for an untyped metric of its
///   own);
/// - `# UNIT` and the closing `# EOF` are OpenMetrics only (0.0.4 knows HELP and TYPE);
/// - OpenMetrics' type `unknown` is 0.0.4's `untyped`.
///
/// Sample lines are the same in both: names, label escaping (`\\`, `\"`, `\n`), values (`+Inf`,
/// integers, floats). What would differ is not produced here: exemplars (only
/// `CounterWithExemplar` and `HistogramWithExemplars` write them), `_created` series, timestamps
/// (seconds in OpenMetrics, milliseconds in 0.0.4), the `info`, `stateset` and
/// `gaugehistogram` types; and HELP texts, which prometheus-client writes as given, hold no
/// backslash, quote or newline. The test of `/metrics` reads the output back with a strict
/// 0.0.4 reader.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let (name, rest) = line.strip_prefix(prefix)?.split_once(' ')?;
            Some((prefix, name, rest))
        });
        match descriptor {
            Some((prefix, name, rest)) if counters.contains(name) => {
                text.push_str(&format!("{prefix}{name}_total {rest}"));
            }
            Some(("# TYPE ", name, "unknown")) => {
                text.push_str(&format!("# TYPE {name} untyped"));
            }
            _ => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

impl PerIntegration {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, Series>> {
        // Every update is one field assignment: the map stays consistent if a holder panicked.
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A per-integration gauge and how to read it from a [`Series`] at scrape time (Unix seconds).
struct GaugeSpec {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    value: fn(&Series, i64) -> Option<i64>,
}

const SECONDS: Option<Unit> = Some(Unit::Seconds);

const GAUGES: [GaugeSpec; 12] = [
    GaugeSpec {
        name: "token_issued_timestamp",
        help: "When the current token was issued (Unix time)",
        unit: SECONDS,
        value: |s, _| s.issued_at.get(),
    },
    GaugeSpec {
        name: "token_age",
        help: "Age of the current token at scrape time",
        unit: SECONDS,
        // A clock behind the issuer's must not show a negative age.
        value: |s, now| s.issued_at.get().map(|at| now.saturating_sub(at).max(0)),
    },
    GaugeSpec {
        name: "last_success_timestamp",
        help: "When the last rotation succeeded (Unix time)",
        unit: SECONDS,
        value: |s, _| s.last_success.get(),
    },
    GaugeSpec {
        name: "next_rotation_timestamp",
        help: "When the next rotation is scheduled (Unix time)",
        unit: SECONDS,
        value: |s, _| s.next_rotation.get(),
    },
    GaugeSpec {
        name: "certificate_expiry_timestamp",
        help: "When the current M2M certificate expires (Unix time); M2M integrations only",
        unit: SECONDS,
        value: |s, _| s.certificate_expiry.get(),
    },
    GaugeSpec {
        name: "rotation_due_timestamp",
        help: "When the current token or certificate is due for replacement (Unix time): the \
               schedule's first time after its issue, or for an M2M certificate its expiry \
               minus renew_before when that is earlier",
        unit: SECONDS,
        value: |s, _| s.rotation_due.get(),
    },
    GaugeSpec {
        name: "revoke_due_timestamp",
        help: "When the replaced, not yet revoked credential's grace window ends (Unix time); \
               absent when none waits",
        unit: SECONDS,
        value: |s, _| s.revoke_due.get(),
    },
    GaugeSpec {
        name: "revocations_pending",
        help: "Replaced tokens still valid: in their grace window or waiting for a revocation retry",
        unit: None,
        value: |s, _| s.revocations_pending.get(),
    },
    GaugeSpec {
        name: "consecutive_failures",
        help: "Failed rotation or revocation steps since the last one that succeeded",
        unit: None,
        value: |s, _| s.consecutive_failures.get(),
    },
    GaugeSpec {
        name: "freeze_active",
        help: "1 while a freeze window holds the integration: no rotation starts (revocations \
               still happen)",
        unit: None,
        value: |s, now| Some(i64::from(active_freeze(s, now).is_some())),
    },
    GaugeSpec {
        name: "freeze_end_timestamp",
        help: "When the freeze window in force ends (Unix time); absent outside one",
        unit: SECONDS,
        value: |s, now| active_freeze(s, now).map(|freeze| freeze.until.timestamp()),
    },
    GaugeSpec {
        name: "login_latched",
        help: "1 while NetSuite's refusal of the NLAuth login latches the integration: no login \
               is tried until the login configuration changes or an operator runs rotate for it",
        unit: None,
        value: |s, _| s.login_latched.get(),
    },
];

/// The freeze in force at scrape time `now` (Unix seconds).
fn active_freeze(series: &Series, now: i64) -> Option<ActiveFreeze> {
    if series.freezes.is_empty() {
        return None;
    }
    series.freezes.at(DateTime::from_timestamp(now, 0)?)
}

/// Names, help texts and units of the per-integration metrics (the registry adds the
/// `netsuite_rotator_` prefix, the unit suffix and `_total` for counters).
impl Collector for PerIntegration {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let series = self.lock();
        let now = self.scrape_time.load(Ordering::Relaxed);

        if !series.is_empty() {
            let mut rotations = encoder.encode_descriptor(
                "rotations",
                "Rotations finished, by integration, outcome (rotated, failed) and reason (none; \
                 login, rate_limited, unavailable, rejected, store, verification)",
                None,
                MetricType::Counter,
            )?;
            for (name, s) in series.iter() {
                for ((outcome, reason), count) in
                    ROTATION_OUTCOMES.iter().zip(s.rotations.by_outcome)
                {
                    let labels = [
                        ("integration", &**name),
                        ("outcome", outcome),
                        ("reason", reason),
                    ];
                    ConstCounter::new(count).encode(rotations.encode_family(&labels)?)?;
                }
            }
        }

        if !series.is_empty() {
            let mut durations = encoder.encode_descriptor(
                "rotation_duration",
                "Wall time of a rotation, recovery and revocation included",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (name, s) in series.iter() {
                {
                    let r = &s.rotations;
                    let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
                        .iter()
                        .copied()
                        .chain(std::iter::once(f64::INFINITY))
                        .zip(r.duration_buckets)
                        .collect();
                    durations
                        .encode_family(&integration_labels(name))?
                        .encode_histogram::<NoLabelSet>(
                            r.duration_sum,
                            r.duration_count,
                            &buckets,
                            None,
                        )?;
                }
            }
        }

        for gauge in &GAUGES {
            if !series.values().any(|s| (gauge.value)(s, now).is_some()) {
                continue;
            }
            let mut family = encoder.encode_descriptor(
                gauge.name,
                gauge.help,
                gauge.unit.as_ref(),
                MetricType::Gauge,
            )?;
            for (name, s) in series.iter() {
                if let Some(v) = (gauge.value)(s, now) {
                    ConstGauge::new(v).encode(family.encode_family(&integration_labels(name))?)?;
                }
            }
        }

        if !series.is_empty() {
            let mut orphans = encoder.encode_descriptor(
                "orphans_suspected",
                "Tokens NetSuite may hold that the store does not know; revoke them by name",
                None,
                MetricType::Counter,
            )?;
            for (name, s) in series.iter() {
                ConstCounter::new(s.orphans_suspected)
                    .encode(orphans.encode_family(&integration_labels(name))?)?;
            }
        }
        Ok(())
    }
}

/// The NetSuite client's attempt counts, read at scrape time.
#[derive(Debug, Default)]
struct NetSuiteCalls {
    counts: Mutex<Option<Arc<CallCounts>>>,
}

impl Collector for NetSuiteCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(counts) = counts.as_ref() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "netsuite_requests",
            "NetSuite call attempts (each retry counts) by call and result; rate_limited is the \
             account's concurrency limit (400 SSS_REQUEST_LIMIT_EXCEEDED or 429)",
            None,
            MetricType::Counter,
        )?;
        for (call, result, count) in counts.snapshot() {
            let labels = [("call", call.name()), ("result", result.name())];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
