//! The `/metrics` text: after the calls the daemon makes, the output parses as OpenMetrics
//! text line by line, names and labels follow the Prometheus conventions, counters only grow,
//! the histogram's buckets are cumulative, and the token age is computed at render time.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netsuite_token_rotator::telemetry::Metrics;
use netsuite_token_rotator::telemetry::metrics::{CONTENT_TYPE, DURATION_BUCKETS};

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The parsed exposition: samples, and the HELP/TYPE/UNIT text per metric family.
#[derive(Debug, Default)]
struct Exposition {
    samples: Vec<Sample>,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    units: BTreeMap<String, String>,
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A strict reader of the text format: every line is a known comment or a well-formed sample,
/// the output ends with `# EOF`, and every sample belongs to a family with HELP and TYPE.
fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name, rest) = (parts.next(), parts.next(), parts.next());
            let (Some(kind), Some(name), Some(rest)) = (kind, name, rest) else {
                panic!("malformed comment line: {line}");
            };
            assert!(is_metric_name(name), "bad family name in {line}");
            let table = match kind {
                "HELP" => &mut out.help,
                "TYPE" => &mut out.types,
                "UNIT" => &mut out.units,
                _ => panic!("unknown comment line: {line}"),
            };
            assert!(
                table.insert(name.to_string(), rest.to_string()).is_none(),
                "{kind} twice for {name}"
            );
            continue;
        }
        out.samples.push(parse_sample(line));
    }
    for sample in &out.samples {
        let family = family_of(&sample.name, &out.types);
        assert!(out.help.contains_key(&family), "HELP for {}", sample.name);
    }
    out
}

/// The family a sample belongs to: its name, or its name without a type's suffix.
fn family_of(sample: &str, types: &BTreeMap<String, String>) -> String {
    if types.contains_key(sample) {
        return sample.to_string();
    }
    for suffix in ["_total", "_bucket", "_sum", "_count", "_created"] {
        if let Some(family) = sample.strip_suffix(suffix)
            && types.contains_key(family)
        {
            return family.to_string();
        }
    }
    panic!("sample {sample} has no # TYPE line");
}

fn parse_sample(line: &str) -> Sample {
    let (name_and_labels, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value: {line}"));
    let (name, labels) = match name_and_labels.split_once('{') {
        None => (name_and_labels, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            (name, parse_labels(body, line))
        }
    };
    assert!(is_metric_name(name), "bad metric name: {line}");
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `a="x",b="y"` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line}"));
        assert!(is_metric_name(key), "bad label name {key:?} in {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("dangling escape in {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line}"),
            }
        };
        labels.insert(key.to_string(), value);
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    labels
}

fn unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_fresh_registry_shows_readiness_build_and_reloads_only() {
    let parsed = parse(&Metrics::new().render());
    assert_eq!(parsed.samples.len(), 3, "{:?}", parsed.samples);
    assert_eq!(parsed.value("netsuite_rotator_ready", &[]), Some(0.0));
    assert_eq!(
        parsed.value(
            "netsuite_rotator_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        parsed.value("netsuite_rotator_config_reload_failures_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        parsed.types.len(),
        3,
        "families without series are left out"
    );
}

#[test]
fn every_family_has_help_type_and_its_conventional_name() {
    let metrics = Metrics::new();
    metrics.rotation_finished("erp-sync", None, Duration::from_secs(2));
    metrics.set_token_issued_at("erp-sync", 1_700_000_000);
    metrics.set_last_success("erp-sync", 1_700_000_000);
    metrics.set_next_rotation("erp-sync", 1_700_604_800);
    metrics.set_revocations_pending("erp-sync", 1);
    metrics.orphan_suspected("erp-sync");
    metrics.alerts("webhook", 1, 0);
    let text = metrics.render();
    let parsed = parse(&text);
    let expected = [
        ("netsuite_rotator_rotations", "counter"),
        ("netsuite_rotator_rotation_duration_seconds", "histogram"),
        ("netsuite_rotator_token_issued_timestamp_seconds", "gauge"),
        ("netsuite_rotator_token_age_seconds", "gauge"),
        ("netsuite_rotator_last_success_timestamp_seconds", "gauge"),
        ("netsuite_rotator_next_rotation_timestamp_seconds", "gauge"),
        ("netsuite_rotator_revocations_pending", "gauge"),
        ("netsuite_rotator_orphans_suspected", "counter"),
        ("netsuite_rotator_alerts", "counter"),
        ("netsuite_rotator_ready", "gauge"),
        ("netsuite_rotator_build_info", "gauge"),
        ("netsuite_rotator_config_reload_failures", "counter"),
        ("netsuite_rotator_consecutive_failures", "gauge"),
        ("netsuite_rotator_login_latched", "gauge"),
        ("netsuite_rotator_freeze_active", "gauge"),
    ];
    for (family, kind) in expected {
        assert_eq!(
            parsed.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
        assert!(!parsed.help[family].trim().is_empty(), "{family}");
    }
    assert_eq!(parsed.types.len(), expected.len(), "{:?}", parsed.types);
    for family in [
        "netsuite_rotator_rotation_duration_seconds",
        "netsuite_rotator_token_age_seconds",
    ] {
        assert_eq!(
            parsed.units.get(family).map(String::as_str),
            Some("seconds")
        );
    }
    assert_eq!(parsed.value("netsuite_rotator_ready", &[]), Some(0.0));
    assert!(CONTENT_TYPE.starts_with("application/openmetrics-text"));
}

#[test]
fn rotations_are_counted_by_integration_and_outcome_and_only_grow() {
    let metrics = Metrics::new();
    metrics.rotation_finished("erp-sync", None, Duration::from_millis(300));
    metrics.rotation_finished("erp-sync", None, Duration::from_secs(3));
    metrics.rotation_finished("erp-sync", Some("unavailable"), Duration::from_secs(45));
    metrics.rotation_finished("payroll", None, Duration::from_secs(1));
    let before = parse(&metrics.render());
    let rotated = [
        ("integration", "erp-sync"),
        ("outcome", "rotated"),
        ("reason", "none"),
    ];
    let name = "netsuite_rotator_rotations_total";
    assert_eq!(before.value(name, &rotated), Some(2.0));
    let failed = |reason| {
        before.value(
            name,
            &[
                ("integration", "erp-sync"),
                ("outcome", "failed"),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(failed("unavailable"), Some(1.0));
    assert_eq!(
        failed("login"),
        Some(0.0),
        "every reason is there from the start"
    );
    assert_eq!(
        before.value(
            name,
            &[
                ("integration", "payroll"),
                ("outcome", "rotated"),
                ("reason", "none")
            ]
        ),
        Some(1.0)
    );

    metrics.rotation_finished("erp-sync", None, Duration::from_secs(2));
    let after = parse(&metrics.render());
    assert_eq!(after.value(name, &rotated), Some(3.0));
}

#[test]
fn the_duration_histogram_has_cumulative_buckets_sum_and_count() {
    let metrics = Metrics::new();
    for secs in [0.3, 3.0, 45.0, 400.0] {
        metrics.rotation_finished("erp-sync", None, Duration::from_secs_f64(secs));
    }
    let parsed = parse(&metrics.render());
    let family = "netsuite_rotator_rotation_duration_seconds";
    let buckets: Vec<(f64, f64)> = parsed
        .samples
        .iter()
        .filter(|s| s.name == format!("{family}_bucket"))
        .map(|s| {
            assert_eq!(s.labels["integration"], "erp-sync");
            let le = &s.labels["le"];
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (bound, s.value)
        })
        .collect();
    let bounds: Vec<f64> = buckets.iter().map(|(b, _)| *b).collect();
    let mut expected_bounds = DURATION_BUCKETS.to_vec();
    expected_bounds.push(f64::INFINITY);
    assert_eq!(bounds, expected_bounds);
    let count_at = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
    assert_eq!(count_at(0.25), 0.0);
    assert_eq!(count_at(0.5), 1.0);
    assert_eq!(count_at(5.0), 2.0);
    assert_eq!(count_at(60.0), 3.0);
    assert_eq!(count_at(300.0), 3.0);
    assert_eq!(count_at(f64::INFINITY), 4.0);
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
    let labels = [("integration", "erp-sync")];
    assert_eq!(parsed.value(&format!("{family}_count"), &labels), Some(4.0));
    let sum = parsed.value(&format!("{family}_sum"), &labels).unwrap();
    assert!((sum - 448.3).abs() < 1e-9, "{sum}");
}

#[test]
fn token_age_is_computed_at_render_time_from_the_issue_time() {
    let metrics = Metrics::new();
    metrics.set_token_issued_at("erp-sync", 1_000_000);
    let labels = [("integration", "erp-sync")];
    let age = "netsuite_rotator_token_age_seconds";

    let parsed = parse(&metrics.render_at(unix(1_000_600)));
    assert_eq!(parsed.value(age, &labels), Some(600.0));
    assert_eq!(
        parsed.value("netsuite_rotator_token_issued_timestamp_seconds", &labels),
        Some(1_000_000.0)
    );
    let parsed = parse(&metrics.render_at(unix(1_086_400)));
    assert_eq!(parsed.value(age, &labels), Some(86_400.0));

    // A new token restarts the age; a clock behind the issue time shows zero, not less.
    metrics.set_token_issued_at("erp-sync", 1_086_000);
    let parsed = parse(&metrics.render_at(unix(1_086_400)));
    assert_eq!(parsed.value(age, &labels), Some(400.0));
    let parsed = parse(&metrics.render_at(unix(1_000_000)));
    assert_eq!(parsed.value(age, &labels), Some(0.0));
}

#[test]
fn schedule_revocation_orphan_and_readiness_gauges() {
    let metrics = Metrics::new();
    metrics.set_last_success("erp-sync", 1_700_000_000);
    metrics.set_next_rotation("erp-sync", 1_700_604_800);
    metrics.set_revocations_pending("erp-sync", 1);
    metrics.orphan_suspected("erp-sync");
    metrics.orphan_suspected("erp-sync");
    metrics.set_ready(true);
    let parsed = parse(&metrics.render());
    let labels = [("integration", "erp-sync")];
    assert_eq!(
        parsed.value("netsuite_rotator_last_success_timestamp_seconds", &labels),
        Some(1_700_000_000.0)
    );
    assert_eq!(
        parsed.value("netsuite_rotator_next_rotation_timestamp_seconds", &labels),
        Some(1_700_604_800.0)
    );
    assert_eq!(
        parsed.value("netsuite_rotator_revocations_pending", &labels),
        Some(1.0)
    );
    assert_eq!(
        parsed.value("netsuite_rotator_orphans_suspected_total", &labels),
        Some(2.0)
    );
    assert_eq!(parsed.value("netsuite_rotator_ready", &[]), Some(1.0));

    metrics.set_revocations_pending("erp-sync", 0);
    metrics.set_ready(false);
    let parsed = parse(&metrics.render());
    assert_eq!(
        parsed.value("netsuite_rotator_revocations_pending", &labels),
        Some(0.0)
    );
    assert_eq!(parsed.value("netsuite_rotator_ready", &[]), Some(0.0));
}

/// The due times alerts compare with `time()`: set, moved, and the revocation's removed when no
/// replaced credential waits (an absent series cannot fire an alert; a stale time would).
#[test]
fn rotation_and_revocation_due_times_are_exported_and_removed() {
    let metrics = Metrics::new();
    let labels = [("integration", "erp-sync")];
    let rotation = "netsuite_rotator_rotation_due_timestamp_seconds";
    let revoke = "netsuite_rotator_revoke_due_timestamp_seconds";
    metrics.set_rotation_due("erp-sync", Some(1_700_604_800));
    metrics.set_revoke_due("erp-sync", Some(1_700_086_400));
    let parsed = parse(&metrics.render());
    assert_eq!(parsed.value(rotation, &labels), Some(1_700_604_800.0));
    assert_eq!(parsed.value(revoke, &labels), Some(1_700_086_400.0));
    assert_eq!(
        parsed.types["netsuite_rotator_rotation_due_timestamp_seconds"],
        "gauge"
    );
    assert_eq!(
        parsed.units["netsuite_rotator_revoke_due_timestamp_seconds"],
        "seconds"
    );

    metrics.set_revoke_due("erp-sync", None);
    metrics.set_rotation_due("erp-sync", Some(1_701_209_600));
    let text = metrics.render();
    assert!(!text.contains(revoke), "{text}");
    assert_eq!(parse(&text).value(rotation, &labels), Some(1_701_209_600.0));
}

#[test]
fn alert_totals_are_set_from_the_channel_counters_and_never_go_back() {
    let metrics = Metrics::new();
    let name = "netsuite_rotator_alerts_total";
    let sent = [("channel", "slack"), ("result", "sent")];
    let failed = [("channel", "slack"), ("result", "failed")];

    metrics.alerts("slack", 3, 1);
    let parsed = parse(&metrics.render());
    assert_eq!(parsed.value(name, &sent), Some(3.0));
    assert_eq!(parsed.value(name, &failed), Some(1.0));

    metrics.alerts("slack", 5, 1);
    let parsed = parse(&metrics.render());
    assert_eq!(parsed.value(name, &sent), Some(5.0));
    assert_eq!(parsed.value(name, &failed), Some(1.0));

    metrics.alerts("slack", 2, 0);
    let parsed = parse(&metrics.render());
    assert_eq!(
        parsed.value(name, &sent),
        Some(5.0),
        "a counter never decreases"
    );
}

#[test]
fn label_values_are_escaped_and_read_back_unchanged() {
    let metrics = Metrics::new();
    let odd = "team \"a\"\\b";
    metrics.rotation_finished(odd, None, Duration::from_secs(1));
    let parsed = parse(&metrics.render());
    assert_eq!(
        parsed.value(
            "netsuite_rotator_rotations_total",
            &[
                ("integration", odd),
                ("outcome", "rotated"),
                ("reason", "none")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn clones_share_one_registry() {
    let metrics = Metrics::new();
    let clone = metrics.clone();
    clone.orphan_suspected("erp-sync");
    let parsed = parse(&metrics.render());
    assert_eq!(
        parsed.value(
            "netsuite_rotator_orphans_suspected_total",
            &[("integration", "erp-sync")]
        ),
        Some(1.0)
    );
}

#[test]
fn tracked_integrations_keep_their_series_and_removed_ones_disappear() {
    let metrics = Metrics::new();
    metrics.track_integrations(["erp-sync", "crm"].map(Into::into));
    let parsed = parse(&metrics.render());
    for name in ["erp-sync", "crm"] {
        let one = [("integration", name)];
        assert_eq!(
            parsed.value("netsuite_rotator_consecutive_failures", &one),
            Some(0.0)
        );
        assert_eq!(
            parsed.value("netsuite_rotator_login_latched", &one),
            Some(0.0)
        );
        assert_eq!(
            parsed.value("netsuite_rotator_orphans_suspected_total", &one),
            Some(0.0)
        );
        for (outcome, reason) in netsuite_token_rotator::telemetry::ROTATION_OUTCOMES {
            let labels = [
                ("integration", name),
                ("outcome", outcome),
                ("reason", reason),
            ];
            assert_eq!(
                parsed.value("netsuite_rotator_rotations_total", &labels),
                Some(0.0),
                "tracked integrations count from zero at once: {labels:?}"
            );
        }
        assert_eq!(
            parsed.value("netsuite_rotator_token_age_seconds", &one),
            None,
            "times appear once the store is read"
        );
    }

    metrics.set_next_rotation("erp-sync", 1_700_604_800);
    metrics.set_next_rotation("crm", 1_700_000_000);
    metrics.rotation_finished("crm", None, Duration::from_secs(1));
    // A reload that drops `crm` and adds `billing`.
    metrics.track_integrations(["billing", "erp-sync"].map(Into::into));
    let parsed = parse(&metrics.render());
    let next = "netsuite_rotator_next_rotation_timestamp_seconds";
    assert_eq!(
        parsed.value(next, &[("integration", "erp-sync")]),
        Some(1_700_604_800.0),
        "a kept integration keeps its values"
    );
    assert_eq!(parsed.value(next, &[("integration", "crm")]), None);
    assert!(
        !parsed
            .samples
            .iter()
            .any(|s| s.labels.get("integration").map(String::as_str) == Some("crm")),
        "no series of a removed integration is left: {:?}",
        parsed.samples
    );
}

/// Every NetSuite attempt is counted by call and result, from the start (zeros included), and
/// an account concurrency limit (400 SSS_REQUEST_LIMIT_EXCEEDED) shows as `rate_limited`.
#[tokio::test]
async fn netsuite_attempts_are_exported_by_call_and_result_rate_limits_included() {
    use netsuite_token_rotator::netsuite::{AccountId, ClientOptions, NetSuiteClient};
    use netsuite_token_rotator::sim::{Faults, Seed, Simulator, demo};

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    sim.sim()
        .set_faults(Faults {
            rate_limit: 1.0,
            endpoints: vec!["datacenterurls".into()],
            ..Faults::default()
        })
        .unwrap();
    let client = NetSuiteClient::new(ClientOptions {
        datacenter_base: sim.base_url(),
        max_rate_limited_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        ..ClientOptions::default()
    })
    .unwrap();
    let metrics = Metrics::new();
    metrics.observe_netsuite_calls(client.call_counts());
    let name = "netsuite_rotator_netsuite_requests_total";
    let fresh = parse(&metrics.render());
    assert_eq!(
        fresh
            .types
            .get("netsuite_rotator_netsuite_requests")
            .map(String::as_str),
        Some("counter")
    );
    for call in ["issuetoken", "tokeninfo", "revoketoken", "datacenterurls"] {
        for result in [
            "ok",
            "rate_limited",
            "login_failed",
            "refused",
            "server_error",
            "bad_response",
            "transport_error",
        ] {
            assert_eq!(
                fresh.value(name, &[("call", call), ("result", result)]),
                Some(0.0),
                "{call} {result}"
            );
        }
    }

    let account = AccountId::parse(demo::ACCOUNT).unwrap();
    let err = client.datacenter_urls(&account).await.unwrap_err();
    assert!(err.is_rate_limited(), "{err}");
    sim.sim().set_faults(Faults::default()).unwrap();
    client.datacenter_urls(&account).await.unwrap();
    let after = parse(&metrics.render());
    let datacenter = |result| after.value(name, &[("call", "datacenterurls"), ("result", result)]);
    assert_eq!(
        datacenter("rate_limited"),
        Some(3.0),
        "the first try and 2 retries"
    );
    assert_eq!(datacenter("ok"), Some(1.0));
    assert_eq!(sim.sim().inspect().faults_injected("rate_limit"), 3);
}

/// The Prometheus text exposition format 0.0.4, read strictly: only `# HELP` and `# TYPE`
/// comments (no `# UNIT`, no `# EOF`), 0.0.4's types, each family's HELP and TYPE naming the
/// samples' own name (a counter's with `_total`; a histogram's samples add `_bucket`, `_sum`,
/// `_count`), the TYPE line before the family's first sample.
fn parse_prometheus_text(text: &str) -> Exposition {
    let mut out = Exposition::default();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (Some(kind), Some(name), Some(rest)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("malformed comment line: {line}");
            };
            assert!(is_metric_name(name), "bad family name in {line}");
            match kind {
                "HELP" => assert!(out.help.insert(name.into(), rest.into()).is_none()),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest),
                        "not a 0.0.4 type: {line}"
                    );
                    assert!(out.types.insert(name.into(), rest.into()).is_none());
                    current = Some((name.into(), rest.into()));
                }
                _ => panic!("not a 0.0.4 comment: {line}"),
            }
            continue;
        }
        let sample = parse_sample(line);
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
        let suffixes: &[&str] = match kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        assert!(
            suffixes
                .iter()
                .any(|suffix| sample.name == format!("{family}{suffix}")),
            "sample {} does not belong to the {kind} {family} whose TYPE precedes it",
            sample.name
        );
        out.samples.push(sample);
    }
    for family in out.types.keys() {
        assert!(out.help.contains_key(family), "HELP for {family}");
    }
    out
}

/// `/metrics` answers in OpenMetrics only to a scraper whose `Accept` prefers it (Prometheus
/// asks for it first); to anyone else (`text/plain;version=0.0.4`, `*/*`, no header) in the
/// Prometheus text format 0.0.4, with the same samples.
#[tokio::test]
async fn the_metrics_endpoint_serves_openmetrics_only_to_a_scraper_that_asks_for_it() {
    use netsuite_token_rotator::server::{Health, serve};
    use netsuite_token_rotator::telemetry::metrics::PROMETHEUS_CONTENT_TYPE;

    let metrics = Metrics::new();
    metrics.rotation_finished("erp-sync", None, Duration::from_secs(2));
    metrics.set_token_issued_at("erp-sync", 1_700_000_000);
    metrics.orphan_suspected("erp-sync");
    metrics.alerts("webhook", 1, 0);
    let rendered = metrics.clone();
    let health = Health::new(move |_ready| rendered.render_at(unix(1_700_000_100)));
    let addr = serve("127.0.0.1:0".parse().unwrap(), health).await.unwrap();
    let client = reqwest::Client::new();
    let scrape = async |accept: Option<&str>| {
        let mut request = client.get(format!("http://{addr}/metrics"));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        (content_type, response.text().await.unwrap())
    };
    let openmetrics_samples = parse(&metrics.render_at(unix(1_700_000_100))).samples;

    for accept in [
        // Prometheus 2.x and 3.x by default.
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        "application/openmetrics-text; version=1.0.0",
        "application/openmetrics-text",
    ] {
        let (content_type, body) = scrape(Some(accept)).await;
        assert_eq!(content_type, CONTENT_TYPE, "{accept}");
        assert_eq!(parse(&body).samples, openmetrics_samples, "{accept}");
    }

    for accept in [
        None,
        Some("*/*"),
        Some("text/plain;version=0.0.4"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        Some("text/plain"),
        // Prometheus with scrape_protocols = [PrometheusText0.0.4].
        Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.4"),
        Some("application/openmetrics-text;q=0.2, text/plain;version=0.0.4;q=0.8"),
        Some("application/openmetrics-text;q=0"),
        Some("application/json"),
    ] {
        let (content_type, body) = scrape(accept).await;
        assert_eq!(content_type, PROMETHEUS_CONTENT_TYPE, "{accept:?}");
        assert!(
            !body.contains("# EOF") && !body.contains("# UNIT"),
            "{body}"
        );
        let parsed = parse_prometheus_text(&body);
        assert_eq!(parsed.samples, openmetrics_samples, "{accept:?}");
        for counter in [
            "netsuite_rotator_rotations_total",
            "netsuite_rotator_orphans_suspected_total",
            "netsuite_rotator_alerts_total",
        ] {
            assert_eq!(parsed.types[counter], "counter", "{body}");
        }
        assert_eq!(
            parsed.types["netsuite_rotator_rotation_duration_seconds"],
            "histogram"
        );
    }
}
