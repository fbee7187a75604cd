//! Freeze windows with the real binary against the simulator: a rotation that falls due inside
//! a window runs after it; a revocation falling due inside one still happens; `rotate` refuses
//! inside one unless `--force`; `status`, the metrics and the log say the freeze is in force.

mod common;
#[path = "support/rotator.rs"]
mod rotator;

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use common::demo;
use netsuite_token_rotator::sim::{Seed, Simulator};
use rotator::{Daemon, free_port, get, sample, status_json};

/// `config.toml` in `dir` for the daemon against `endpoint`, listening on a free port, with
/// `schedule`, `revoke_after` and a daemon-wide freeze window "quarter-close" from `from` until
/// `until` (none when `window` is `None`). Returns its path and the listen address.
fn config(
    dir: &Path,
    endpoint: &str,
    schedule: &str,
    revoke_after: &str,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> (PathBuf, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut text = rotator::config_text(&rotator::Setup {
        listen: &listen,
        schedule,
        revoke_after,
        ..rotator::Setup::new(endpoint)
    });
    if let Some((from, until)) = window {
        let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        // Top-level tables go before the first [[integrations]].
        text = text.replacen(
            "[[integrations]]",
            &format!(
                "[[freeze]]\nname = \"quarter-close\"\nfrom = \"{}\"\nuntil = \"{}\"\n\n[[integrations]]",
                rfc3339(from),
                rfc3339(until)
            ),
            1,
        );
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    (path, listen)
}

/// The daemon's `/metrics`, with erp's `freeze_active` and `freeze_end_timestamp_seconds`.
async fn freeze_metrics(listen: &str) -> (String, Option<f64>, Option<f64>) {
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    let erp = [("integration", "erp")];
    let active = sample(&metrics, "netsuite_rotator_freeze_active", &erp);
    let end = sample(
        &metrics,
        "netsuite_rotator_freeze_end_timestamp_seconds",
        &erp,
    );
    (metrics, active, end)
}

fn rotate(config: &Path, args: &[&str]) -> std::process::Output {
    rotator::command(config, demo::PASSWORD)
        .arg("rotate")
        .args(args)
        .output()
        .unwrap()
}

fn current_rotation(config: &Path) -> String {
    status_json(config)["current"]["rotation_id"]
        .as_str()
        .expect("a current token")
        .to_string()
}

/// A window of an hour, in force now: the previous token's grace window ends inside it and the
/// daemon revokes it; the current token is overdue, and the daemon leaves it alone and says
/// why. `rotate` refuses, naming the window and `--force`; `--force` rotates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_freeze_revocations_happen_and_rotations_wait_unless_forced() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two rotations before the freeze: a current token and a previous one in a short grace.
    let (plain, _) = config(dir.path(), &sim.base_url(), "0 0 3 1 1 *", "2s", None);
    for _ in 0..2 {
        rotator::succeed(rotator::command(&plain, demo::PASSWORD).args(["rotate", "--all"]));
    }
    let before = status_json(&plain);
    let current = before["current"]["rotation_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(before["previous"]["revoked_at"].is_null(), "{before}");

    // Every second is a scheduled time: the current token is overdue from the next second on.
    let now = Utc::now();
    let until = now + chrono::Duration::hours(1);
    let (frozen, listen) = config(
        dir.path(),
        &sim.base_url(),
        "* * * * * *",
        "2s",
        Some((now - chrono::Duration::minutes(1), until)),
    );
    let status = status_json(&frozen);
    assert_eq!(status["freeze"]["window"], "quarter-close", "{status}");
    assert_eq!(
        status["freeze"]["until"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(until.trunc_subsecs(0)),
        "{status}"
    );

    let daemon = Daemon::start(rotator::command(&frozen, demo::PASSWORD));
    // The grace window ends first (a rotation never replaces a previous token still in its
    // grace window), and the revocation is not held.
    daemon.wait_for("previous token revoked", 1);
    let after = status_json(&frozen);
    assert!(after["previous"]["revoked_at"].is_string(), "{after}");
    assert_eq!(after["current"]["rotation_id"], current.as_str(), "{after}");
    let revoked_at: DateTime<Utc> = after["previous"]["revoked_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(revoked_at < until, "revoked inside the window: {after}");
    // Then the rotation is due, and held; the metrics say so.
    daemon.wait_for("rotation due, held by a freeze window", 1);
    let (metrics, active, end) = freeze_metrics(&listen).await;
    assert_eq!(active, Some(1.0), "{metrics}");
    assert_eq!(end, Some(until.timestamp() as f64), "{metrics}");
    let erp = [("integration", "erp")];
    assert_eq!(
        sample(
            &metrics,
            "netsuite_rotator_rotation_due_timestamp_seconds",
            &erp
        ),
        Some(until.timestamp() as f64),
        "the due time is the window's end: {metrics}"
    );
    let (lines, code) = daemon.terminate();
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_eq!(
        current_rotation(&frozen),
        current,
        "nothing rotated inside the window"
    );

    // `rotate` refuses, naming the window, its end and the way round it; nothing changes.
    let refused = rotate(&frozen, &["--integration", "erp"]);
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("freeze window \"quarter-close\" is in force until")
            && stdout.contains("rotate --force --integration erp"),
        "{stdout}"
    );
    let dry = rotate(&frozen, &["--all", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would refuse: freeze window"));
    assert_eq!(current_rotation(&frozen), current);

    let forced = rotate(&frozen, &["--integration", "erp", "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stdout)
    );
    assert_ne!(
        current_rotation(&frozen),
        current,
        "--force rotates inside the window"
    );
}

/// A window in force for ten seconds over an overdue token: the daemon holds the rotation
/// and runs it after the window's end, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_due_inside_a_freeze_runs_after_it() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (plain, _) = config(dir.path(), &sim.base_url(), "0 0 3 1 1 *", "0s", None);
    rotator::succeed(rotator::command(&plain, demo::PASSWORD).args(["rotate", "--all"]));
    let current = current_rotation(&plain);

    let now = Utc::now();
    let until = (now + chrono::Duration::seconds(10)).trunc_subsecs(0);
    let (frozen, listen) = config(
        dir.path(),
        &sim.base_url(),
        "* * * * * *",
        "0s",
        Some((now - chrono::Duration::minutes(1), until)),
    );
    // The token falls due at the first second boundary after its issue: `status` says when.
    let deadline = std::time::Instant::now() + rotator::BOUND;
    while status_json(&frozen)["rotation_due"] != true {
        assert!(std::time::Instant::now() < deadline, "never due");
    }
    let daemon = Daemon::start(rotator::command(&frozen, demo::PASSWORD));
    daemon.wait_for("rotation due, held by a freeze window", 1);
    daemon.wait_for("token promoted to current", 1);
    let status = status_json(&frozen);
    assert_ne!(
        status["current"]["rotation_id"],
        current.as_str(),
        "{status}"
    );
    let issued_at: DateTime<Utc> = status["current"]["issued_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        issued_at >= until,
        "rotated after the window ({until}): {status}"
    );
    assert!(status["freeze"].is_null(), "{status}");
    let (metrics, active, end) = freeze_metrics(&listen).await;
    assert_eq!((active, end), (Some(0.0), None), "{metrics}");
}
