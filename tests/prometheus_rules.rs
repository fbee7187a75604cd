//! The shipped Prometheus alert rules (`monitoring/prometheus/alerts.yaml`) against the real
//! tools and the real daemon: promtool accepts the file and passes its unit tests
//! (`alerts_test.yaml`), promtool's linter accepts a scrape of the daemon, every alert links to
//! a runbook section that exists, and a real Prometheus that loads the file and scrapes the
//! daemon fires the rotation-failing alert while NetSuite fails the rotations, and nothing
//! while they succeed. Needs promtool and prometheus (`scripts/setup/prometheus.sh`).

mod common;
#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/rotator.rs"]
mod rotator;

use std::collections::BTreeSet;

use netsuite_token_rotator::sim::{Faults, Seed, Simulator};
use prometheus::{Prometheus, poll, promtool, repo};
use rotator::{Daemon, free_port, get};

const RULES: &str = "monitoring/prometheus/alerts.yaml";
const RULE_TESTS: &str = "monitoring/prometheus/alerts_test.yaml";
/// The placeholder base every `runbook_url` starts with (the chart replaces it).
const RUNBOOK_BASE: &str = "https://netsuite-token-rotator.invalid";

#[test]
fn promtool_accepts_the_rule_file_and_passes_its_unit_tests() {
    let (ok, output) = promtool(&["check", "rules", RULES], None);
    assert!(ok, "promtool check rules {RULES}:\n{output}");
    assert!(output.contains("SUCCESS: 8 rules found"), "{output}");
    let (ok, output) = promtool(&["test", "rules", RULE_TESTS], None);
    assert!(ok, "promtool test rules {RULE_TESTS}:\n{output}");
}

/// The alert names in the rule file, in order (read line by line: `- alert: Name`).
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_string)
        .collect()
}

/// Every alert has a unit test, and every unit test's expectation names an alert of the file.
#[test]
fn every_alert_has_unit_tests_that_expect_it_to_fire() {
    let rules = std::fs::read_to_string(repo().join(RULES)).unwrap();
    let tests = std::fs::read_to_string(repo().join(RULE_TESTS)).unwrap();
    let alerts = alert_names(&rules);
    assert_eq!(alerts.len(), 8, "{alerts:?}");
    // An alert expected to fire has its runbook among the expected annotations; the test
    // cases name alerts as `alertname: Name`.
    let tested: BTreeSet<&str> = tests
        .lines()
        .filter_map(|l| l.trim().strip_prefix("alertname: "))
        .collect();
    for alert in &alerts {
        assert!(tested.contains(alert.as_str()), "{alert} has no unit test");
    }
    for name in &tested {
        assert!(alerts.iter().any(|a| a == name), "a test of unknown {name}");
    }
}

/// GitHub's heading anchors of the runbook (`## rotation-failed` -> `rotation-failed`).
fn runbook_anchors() -> BTreeSet<String> {
    std::fs::read_to_string(repo().join("docs/runbook.md"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// Each alert has a severity, a summary naming what is affected, and one runbook link built
/// from the one base, to a section of docs/runbook.md that exists.
#[test]
fn every_alert_has_severity_summary_and_a_runbook_section_that_exists() {
    let rules = std::fs::read_to_string(repo().join(RULES)).unwrap();
    let anchors = runbook_anchors();
    let blocks: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert_eq!(blocks.len(), alert_names(&rules).len());
    for block in blocks {
        let name = block.lines().next().unwrap();
        let field = |key: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .map(|v| v.trim().trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("{name} has no {key}"))
        };
        let severity = field("severity:");
        assert!(
            ["critical", "warning"].contains(&severity.as_str()),
            "{name}: {severity}"
        );
        let summary = field("summary:");
        assert!(
            summary.contains("{{ $labels.integration }}")
                || summary.contains("netsuite-token-rotator"),
            "{name}: the summary names neither the integration nor the daemon: {summary}"
        );
        let runbook = field("runbook_url:");
        let anchor = runbook
            .strip_prefix(&format!("{RUNBOOK_BASE}/docs/runbook.md#"))
            .unwrap_or_else(|| panic!("{name}: {runbook} is not <base>/docs/runbook.md#..."));
        assert!(
            anchors.contains(anchor),
            "{name}: docs/runbook.md has no section #{anchor}"
        );
    }
    // The base appears in the runbook links only, so replacing it changes nothing else.
    let links = rules
        .lines()
        .filter(|l| l.trim().starts_with("runbook_url:"))
        .count();
    let bases = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.contains(RUNBOOK_BASE))
        .count();
    assert_eq!(links, bases);
}

/// promtool's linter on what the daemon serves to Prometheus once it has replaced a token
/// (every family with samples, the due times included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_accepts_a_scrape_of_the_real_daemon() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    // Bootstrap, then a second rotation that leaves the first token in its grace window.
    let config = rotator::write_config(
        dir.path(),
        &rotator::Setup {
            schedule: "*/2 * * * * *",
            listen: &listen,
            revoke_after: "1h",
            ..rotator::Setup::new(&sim.base_url())
        },
    );
    let daemon = Daemon::start(rotator::command(&config, common::demo::PASSWORD));
    daemon.wait_for("token promoted to current", 2);
    let url = format!("http://{listen}/metrics");
    // The daemon reports the store it reads after the promotion: wait for that read.
    let metrics = poll("the due times in /metrics", async || {
        let (status, metrics) = get(&url).await;
        assert_eq!(status, 200);
        let due = ["rotation_due", "revoke_due"].iter().all(|m| {
            metrics.contains(&format!(
                "netsuite_rotator_{m}_timestamp_seconds{{integration=\"erp\"}}"
            ))
        });
        due.then_some(metrics)
    })
    .await;
    let (ok, output) = promtool(&["check", "metrics"], Some(&metrics));
    assert!(ok, "promtool check metrics:\n{output}\non:\n{metrics}");
}

/// The alert that must page when rotations keep failing does, through a real Prometheus that
/// loads the shipped file; while rotations succeed nothing is even pending, and once they
/// succeed again the alert resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_fires_the_failing_alert_only_while_rotations_fail() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = rotator::write_config(
        dir.path(),
        &rotator::Setup {
            schedule: "*/2 * * * * *",
            listen: &listen,
            ..rotator::Setup::new(&sim.base_url())
        },
    );
    let daemon = Daemon::start(rotator::command(&config, common::demo::PASSWORD));
    let prometheus = Prometheus::start(&listen, &[&repo().join(RULES)]).await;

    // Rotations succeed: once Prometheus has scraped a completed one and evaluated the rules
    // after it, no alert is pending or firing.
    poll("a scraped successful rotation", async || {
        let rotated = prometheus
            .query(r#"netsuite_rotator_rotations_total{integration="erp", outcome="rotated"} > 0"#)
            .await;
        (!rotated.is_empty()).then_some(())
    })
    .await;
    prometheus.evaluated_since_now().await;
    let alerts = prometheus.alerts().await;
    assert!(
        alerts.is_empty(),
        "alerts while rotations succeed: {alerts:?}"
    );
    let rules = prometheus.api("rules").await;
    let loaded = rules["groups"][0]["rules"].as_array().unwrap().len();
    assert_eq!(loaded, 8, "{rules}");

    // NetSuite fails every issuetoken: after three failed runs the alert fires, naming the
    // integration and linking its runbook section; it is the only one.
    sim.sim()
        .set_faults(Faults {
            server_error: 1.0,
            endpoints: vec!["issuetoken".into()],
            ..Faults::default()
        })
        .unwrap();
    let firing = poll("NetsuiteRotatorRotationFailing firing", async || {
        let alerts = prometheus.alerts().await;
        alerts.into_iter().find(|a| {
            a["labels"]["alertname"] == "NetsuiteRotatorRotationFailing" && a["state"] == "firing"
        })
    })
    .await;
    assert_eq!(firing["labels"]["integration"], "erp", "{firing}");
    assert_eq!(firing["labels"]["severity"], "warning", "{firing}");
    assert_eq!(
        firing["annotations"]["summary"],
        "NetSuite credential rotation of erp is failing repeatedly"
    );
    assert_eq!(
        firing["annotations"]["runbook_url"],
        format!("{RUNBOOK_BASE}/docs/runbook.md#rotation-failed")
    );
    let names: BTreeSet<String> = prometheus
        .alerts()
        .await
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["NetsuiteRotatorRotationFailing".to_string()])
    );
    assert!(sim.sim().inspect().faults_injected("server_error") >= 3);

    // NetSuite answers again: the next run rotates, and the alert resolves.
    sim.sim().set_faults(Faults::default()).unwrap();
    poll("every alert resolved", async || {
        prometheus.alerts().await.is_empty().then_some(())
    })
    .await;
    let (_, code) = daemon.terminate();
    assert_eq!(code, Some(0));
}
