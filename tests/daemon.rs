//! The real daemon (`run`) against the simulator: rotations on a seconds schedule, readiness,
//! SIGHUP reloads (a bad config is refused, a good one applied), SIGTERM drains and exits 0,
//! and the invariants hold afterwards.

mod common;
#[path = "support/otlp.rs"]
mod otlp;
#[path = "support/rotator.rs"]
mod rotator;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::demo;
use netsuite_token_rotator::sim::{Seed, Simulator};
use rotator::{BIN, Daemon, free_port, get};

fn config_text(base_url: &str, listen: &str, schedule: &str, revoke_after: &str) -> String {
    rotator::config_text(&rotator::Setup {
        schedule,
        listen,
        revoke_after,
        ..rotator::Setup::new(base_url)
    })
}

fn start_daemon(config: &Path) -> Daemon {
    Daemon::start(rotator::command(config, demo::PASSWORD))
}

/// A config in `dir` for the daemon against `base_url` on `schedule`, listening on a free
/// port, with no grace window; returns its path and the listen address.
fn write_config(dir: &Path, base_url: &str, schedule: &str) -> (std::path::PathBuf, String) {
    let config = dir.join("config.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(&config, config_text(base_url, &listen, schedule, "0s")).unwrap();
    (config, listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_rotates_on_schedule_reloads_on_sighup_and_drains_on_sigterm() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let traces = otlp::Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    let with_otlp = |text: String| {
        text.replace(
            "log_format = \"json\"",
            &format!(
                "log_format = \"json\"\notlp_endpoint = \"{}\"",
                traces.base_url
            ),
        )
    };
    std::fs::write(
        &config,
        with_otlp(config_text(&sim.base_url(), &listen, "*/2 * * * * *", "0s")),
    )
    .unwrap();

    let daemon = start_daemon(&config);
    daemon.wait_for("recovered and scheduled", 1);
    let (status, body) = get(&format!("http://{listen}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&format!("http://{listen}/healthz")).await.0, 200);

    // The empty store bootstraps at once, then the schedule rotates every two seconds. Once the
    // fourth has promoted, three have finished and been counted.
    daemon.wait_for("token promoted to current", 4);
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    let rotated = metrics
        .lines()
        .find(|l| {
            l.starts_with("netsuite_rotator_rotations_total{") && l.contains("outcome=\"rotated\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no rotated counter in /metrics:\n{metrics}"));
    assert!(rotated >= 3.0, "{metrics}");

    // An invalid config on SIGHUP is refused and the daemon keeps rotating.
    std::fs::write(&config, "[[integrations]]\nname = 3\n").unwrap();
    daemon.signal("HUP");
    daemon.wait_for("configuration reload refused", 1);
    daemon.wait_for("token promoted to current", 1);

    // A valid one is applied: a grace window of an hour keeps the next replaced token live.
    // It also adds an alert channel, which a reload does not apply: the log says so.
    let reloaded = rotator::config_text(&rotator::Setup {
        schedule: "*/2 * * * * *",
        listen: &listen,
        revoke_after: "1h",
        hook_url: Some("http://127.0.0.1:9/hook"),
        ..rotator::Setup::new(&sim.base_url())
    });
    std::fs::write(&config, with_otlp(reloaded)).unwrap();
    daemon.signal("HUP");
    let lines = daemon.wait_for("configuration reloaded", 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[[alerts]] changes take effect at the next restart")),
        "{lines:#?}"
    );
    daemon.wait_for("token promoted to current", 1);

    daemon.signal("TERM");
    let mut daemon = daemon;
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM drains and exits 0");

    // Every rotation the daemon ran is one trace: a root span with its step children.
    let spans = otlp::exported_spans(&traces.received.lock().unwrap());
    let rotated: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "rotation")
        .filter(|r| r.attr("rotation.outcome").as_deref() == Some("rotated"))
        .collect();
    assert!(rotated.len() >= 6, "{} rotated root spans", rotated.len());
    for root in rotated {
        let children: Vec<&str> = spans
            .iter()
            .filter(|s| s.span.parent_span_id == root.span.span_id)
            .map(|s| s.span.name.as_str())
            .collect();
        for step in [
            "rotation.intent",
            "rotation.issue",
            "rotation.stage",
            "rotation.verify",
            "rotation.promote",
        ] {
            assert!(
                children.contains(&step),
                "{step} missing under a rotation: {children:?}"
            );
        }
    }

    // Invariants: the current token verifies; live tokens are current and the one previous.
    rotator::succeed(rotator::command(&config, demo::PASSWORD).args(["verify", "--all"]));
    let active = sim
        .sim()
        .inspect()
        .tokens
        .iter()
        .filter(|t| t.is_active())
        .count();
    assert!(
        active <= 2,
        "current and at most one previous in its grace window: {active}"
    );
    assert!(sim.sim().inspect().tokens.len() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_at_start_exits_2_and_a_busy_port_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_text("http://127.0.0.1:9", "127.0.0.1:0", "every day", "0s"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("integrations[0].schedule"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = busy.local_addr().unwrap().to_string();
    std::fs::write(
        &config,
        config_text("http://127.0.0.1:9", &listen, "0 0 3 * * *", "0s"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("IT_CONSUMER_KEY", "k")
        .env("IT_CONSUMER_SECRET", "s")
        .env("IT_PASSWORD", "p")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[daemon] listen"));
}

/// A stand-in for PagerDuty's Events API v2: records every event and answers 202 as documented.
async fn pagerduty_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use axum::{Router, body::Bytes, routing::post};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v2/enqueue",
        post(move |body: Bytes| {
            let tx = tx.clone();
            async move {
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let answer = serde_json::json!({
                    "status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]
                });
                let _ = tx.send(event);
                (axum::http::StatusCode::ACCEPTED, answer.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_clock_skew_triggers_a_pagerduty_alert_resolved_after_recovery() {
    use netsuite_token_rotator::sim::Faults;
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let (events_url, mut events) = pagerduty_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    let text = format!(
        "{}\n[[alerts]]\nkind = \"pagerduty\"\nrouting_key = {{ env = \"IT_PD_KEY\" }}\nevents_url = \"{events_url}\"\n",
        config_text(&sim.base_url(), &listen, "*/2 * * * * *", "0s")
    );
    std::fs::write(&config, text).unwrap();

    // NetSuite's clock is ten minutes off: every signed request gets timestamp_refused.
    sim.sim()
        .set_faults(Faults {
            clock_skew_secs: 600,
            ..Faults::default()
        })
        .unwrap();
    let routing_key = "R0UT1NGKEY0000000000000000000000";
    let mut child = rotator::command(&config, demo::PASSWORD)
        .arg("run")
        .env("IT_PD_KEY", routing_key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Events arrive in the order the daemon raised them; read until the clock-skew trigger.
    let bound = Duration::from_secs(60);
    let mut next_event = async || {
        tokio::time::timeout(bound, events.recv())
            .await
            .expect("PagerDuty receives an event within the bound")
            .unwrap()
    };
    let mut triggered = std::collections::BTreeSet::new();
    loop {
        let event = next_event().await;
        assert_eq!(event["event_action"], "trigger", "{event}");
        assert_eq!(event["routing_key"], routing_key);
        triggered.insert(event["dedup_key"].as_str().unwrap().to_string());
        if event["payload"]["class"] == "clock-skew" {
            break;
        }
    }

    // The clock is fixed: the pending token verifies, the rotation completes, and every open
    // problem of the integration is resolved under its dedup key. (The first success after a
    // start also resolves every other kind, in no set order across keys: wait for these.)
    sim.sim().set_faults(Faults::default()).unwrap();
    let mut resolved = std::collections::BTreeSet::new();
    while !triggered.is_subset(&resolved) {
        let event = next_event().await;
        let key = event["dedup_key"].as_str().unwrap().to_string();
        match event["event_action"].as_str() {
            Some("resolve") => {
                resolved.insert(key);
            }
            _ => {
                triggered.insert(key);
            }
        }
    }
    assert!(
        resolved.contains("netsuite-token-rotator/erp/clock-skew"),
        "{resolved:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let active = sim
        .sim()
        .inspect()
        .tokens
        .iter()
        .filter(|t| t.is_active())
        .count();
    assert!(active >= 1);
}

/// Under systemd (`Type=notify`): `READY=1` with a status line once recovery is done, watchdog
/// pings when `$WATCHDOG_USEC` is set, `RELOADING=1` then `READY=1` again on SIGHUP, and
/// `STOPPING=1` on SIGTERM, all as datagrams on `$NOTIFY_SOCKET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_is_told_ready_watchdog_reloading_and_stopping() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_text(&sim.base_url(), "127.0.0.1:0", "0 0 3 * * Sun", "0s"),
    )
    .unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(rotator::BOUND)).unwrap();
    // Reads datagrams until one contains `needle`; returns it.
    let wait_for = |needle: &str| -> String {
        let mut buffer = [0u8; 4096];
        loop {
            let n = socket
                .recv(&mut buffer)
                .unwrap_or_else(|e| panic!("no {needle:?} from the daemon: {e}"));
            let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
            if message.lines().any(|line| line == needle) {
                return message;
            }
        }
    };

    let mut command = rotator::command(&config, demo::PASSWORD);
    command
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000");
    let daemon = Daemon::start(command);
    let ready = wait_for("READY=1");
    assert!(
        ready.contains("STATUS=1 integration recovered and scheduled"),
        "{ready}"
    );
    // Pings at half the interval: two of them arrive, the daemon otherwise idle.
    wait_for("WATCHDOG=1");
    wait_for("WATCHDOG=1");
    daemon.signal("HUP");
    wait_for("RELOADING=1");
    wait_for("READY=1");
    let (_, code) = daemon.terminate();
    let stopping = wait_for("STOPPING=1");
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    assert_eq!(code, Some(0));
}

/// Item 3 of the one-system issue: a store holding garbage at start-up. `/readyz`, the `ready`
/// gauge, the log (an ERROR line, no "recovered and scheduled"), `status` and an alert agree
/// that it is unusable, each saying how to recover; nothing is issued for it. Once the data is
/// moved aside and the daemon is told, it bootstraps and every surface turns healthy together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_holding_garbage_is_unready_everywhere_with_how_to_recover() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let (hook_url, mut hooks) = rotator::webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = rotator::write_config(
        dir.path(),
        &rotator::Setup {
            listen: &listen,
            hook_url: Some(&hook_url),
            ..rotator::Setup::new(&sim.base_url())
        },
    );
    let garbage = dir.path().join("store/erp.json");
    std::fs::create_dir_all(garbage.parent().unwrap()).unwrap();
    std::fs::write(&garbage, "{\"token_id\": 42, not json").unwrap();

    let daemon = start_daemon(&config);
    let lines = daemon.wait_for("not ready: ", 1);
    let logged: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !lines.iter().any(|l| l.contains("recovered and scheduled")),
        "{lines:#?}"
    );
    let not_ready = logged.last().unwrap();
    assert_eq!(not_ready["level"], "ERROR", "{not_ready}");
    assert!(
        not_ready["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("(erp)"),
        "{not_ready}"
    );
    let unusable = logged
        .iter()
        .find(|l| l["fields"]["message"] == "the store cannot be used")
        .unwrap_or_else(|| panic!("no store error line: {lines:#?}"));
    assert_eq!(unusable["level"], "ERROR", "{unusable}");
    let hint = unusable["fields"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("import --integration erp") && hint.contains("token_id"),
        "{hint}"
    );

    let (status, body) = get(&format!("http://{listen}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("not ready: erp:") && body.contains("import --integration erp"),
        "{body}"
    );
    assert_eq!(get(&format!("http://{listen}/healthz")).await.0, 200);
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    assert!(
        metrics.lines().any(|l| l == "netsuite_rotator_ready 0"),
        "{metrics}"
    );
    let alert: serde_json::Value =
        serde_json::from_str(&hooks.recv().await.expect("an alert")).unwrap();
    assert_eq!(alert["event"], "trigger", "{alert}");
    assert_eq!(alert["kind"], "store-unreadable", "{alert}");
    assert!(
        alert.to_string().contains("import --integration erp"),
        "{alert}"
    );
    let out = rotator::command(&config, demo::PASSWORD)
        .arg("status")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("import --integration erp"), "{shown}");
    assert!(sim.sim().inspect().tokens.is_empty(), "nothing was issued");

    // The runbook's recovery: keep the data aside, then let the daemon read the store again.
    std::fs::rename(&garbage, dir.path().join("erp.json.unreadable")).unwrap();
    let told = reqwest::Client::new()
        .post(format!("http://{listen}/reconcile?integration=erp"))
        .send()
        .await
        .unwrap();
    assert_eq!(told.status().as_u16(), 202);
    daemon.wait_for("token promoted to current", 1);
    let (status, body) = get(&format!("http://{listen}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    assert!(
        metrics.lines().any(|l| l == "netsuite_rotator_ready 1"),
        "{metrics}"
    );
    let resolved: serde_json::Value =
        serde_json::from_str(&hooks.recv().await.expect("a resolve")).unwrap();
    assert_eq!(resolved["event"], "resolve", "{resolved}");
    assert_eq!(resolved["kind"], "store-unreadable", "{resolved}");
    let (_, code) = daemon.terminate();
    assert_eq!(code, Some(0));
}

/// Item 7 of the one-system issue: a problem raised before a restart is resolved after it.
/// The clock-skew incident opened by one daemon process is closed, under the same dedup key,
/// by the first successful rotation of the next process, which never raised it itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_raised_before_a_restart_is_resolved_after_it() {
    use netsuite_token_rotator::sim::Faults;
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let (events_url, mut events) = pagerduty_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = format!(
        "{}\n[[alerts]]\nkind = \"pagerduty\"\nrouting_key = {{ env = \"IT_PD_KEY\" }}\nevents_url = \"{events_url}\"\n",
        config_text(&sim.base_url(), "127.0.0.1:0", "*/2 * * * * *", "0s")
    );
    std::fs::write(&config, text).unwrap();
    let start = || {
        let mut command = rotator::command(&config, demo::PASSWORD);
        command.env("IT_PD_KEY", "R0UT1NGKEY0000000000000000000000");
        Daemon::start(command)
    };
    let bound = Duration::from_secs(120);
    let mut next_event = async || {
        tokio::time::timeout(bound, events.recv())
            .await
            .expect("PagerDuty receives an event within the bound")
            .unwrap()
    };
    let key = "netsuite-token-rotator/erp/clock-skew";

    sim.sim()
        .set_faults(Faults {
            clock_skew_secs: 600,
            ..Faults::default()
        })
        .unwrap();
    let first = start();
    loop {
        let event = next_event().await;
        assert_eq!(event["event_action"], "trigger", "{event}");
        if event["dedup_key"] == key {
            break;
        }
    }
    let (_, code) = first.terminate();
    assert_eq!(code, Some(0));

    // Fixed while no daemon runs; the next process rotates and resolves the incident.
    sim.sim().set_faults(Faults::default()).unwrap();
    let second = start();
    second.wait_for("token promoted to current", 1);
    loop {
        let event = next_event().await;
        if event["dedup_key"] == key {
            assert_eq!(event["event_action"], "resolve", "{event}");
            break;
        }
    }
    let (_, code) = second.terminate();
    assert_eq!(code, Some(0));
}

/// Log fields hold values and sentences, never Rust's debug forms: no `Some("…")` for an
/// optional field (a value, or the field left out), recovery said in words, counts with their
/// plural right ("1 integration").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_hold_values_and_sentences_not_debug_forms() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path(), &sim.base_url(), "*/2 * * * * *");
    let daemon = start_daemon(&config);
    // The empty store bootstraps (no previous token), the next run replaces it.
    let mut lines = daemon.wait_for("token promoted to current", 2);
    let (rest, code) = daemon.terminate();
    assert_eq!(code, Some(0));
    lines.extend(rest);
    // A wrong password: every scheduled run fails and says when it is tried again.
    let scheduled = rotator::Scheduled::new(&sim.base_url()).await;
    lines.extend(scheduled.run_until_failed("not-the-password", 1).lines);

    for line in &lines {
        for debug_form in ["Some(", "None", "Recovery {", "1 integrations"] {
            assert!(!line.contains(debug_form), "{debug_form:?} in {line}");
        }
    }
    let logged: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fields_of = |message: &str| -> Vec<&serde_json::Value> {
        let found: Vec<_> = logged
            .iter()
            .map(|l| &l["fields"])
            .filter(|f| {
                f["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect();
        assert!(
            !found.is_empty(),
            "no {message:?} line in:\n{}",
            lines.join("\n")
        );
        found
    };
    assert_eq!(
        fields_of("recovery done")[0]["recovery"],
        "nothing to recover"
    );
    assert_eq!(
        fields_of("1 integration recovered and scheduled").len(),
        2,
        "both daemons got ready"
    );
    let verified = fields_of("token verified with tokeninfo");
    assert_eq!(verified[0]["company"], demo::ACCOUNT, "{}", verified[0]);
    assert_eq!(verified[0]["role"], demo::ROLE_ID, "{}", verified[0]);
    let promoted = fields_of("token promoted to current");
    assert!(
        promoted[0].get("previous").is_none(),
        "a bootstrap replaces no token: {}",
        promoted[0]
    );
    assert!(promoted[1]["previous"].is_string(), "{}", promoted[1]);
    let failed = fields_of("job step failed");
    assert!(
        failed[0]["retry_at"]
            .as_str()
            .is_some_and(|at| at.parse::<chrono::DateTime<chrono::Utc>>().is_ok()),
        "{}",
        failed[0]
    );
}
