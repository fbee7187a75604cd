//! The daemon, the CLI and the store as one system, with the real binary against the
//! simulator: a refused NetSuite login latches (one failed login in all, across scheduled
//! runs and restarts, until the login changes); a token the CLI replaced beside the running
//! daemon is revoked by the daemon when its grace window ends, and `--revoke-now` revokes it
//! at once; `check` proves a store writable and `rotate` issues nothing for a store it cannot
//! write; and every metric series is there right after start.

mod common;
#[path = "support/rotator.rs"]
mod rotator;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::demo;
use netsuite_token_rotator::sim::{Seed, Simulator};
use netsuite_token_rotator::store::SecretStore;
use netsuite_token_rotator::store::file::{FileStore, FileStoreConfig};
use rotator::{Daemon, free_port, get, sample, status_json};

/// `config.toml` in `dir` for [`rotator::config_text`] with `setup`, its password read from
/// the file `password` beside it (re-read at every reload) instead of the environment.
fn config_with_password_file(dir: &Path, setup: &rotator::Setup<'_>) -> PathBuf {
    let text = rotator::config_text(setup).replace(
        "password = { env = \"IT_PASSWORD\" }",
        &format!(
            "password = {{ file = \"{}\" }}",
            dir.join("password").display()
        ),
    );
    assert!(text.contains("password = { file"), "{text}");
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    config
}

fn file_store(dir: &Path) -> FileStore {
    FileStore::new(&FileStoreConfig {
        path: dir.join("store/erp.json"),
    })
}

/// A config in `dir` for a daemon listening on a free port, with `revoke_after`; returns its
/// path and the listen address.
fn config_listening(dir: &Path, endpoint: &str, revoke_after: &str) -> (PathBuf, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let config = rotator::write_config(
        dir,
        &rotator::Setup {
            listen: &listen,
            revoke_after,
            ..rotator::Setup::new(endpoint)
        },
    );
    (config, listen)
}

fn write_password(dir: &Path, password: &str) {
    std::fs::write(dir.join("password"), password).unwrap();
}

/// Item 1: a wrong password is refused once; the integration latches, and neither the next
/// scheduled runs nor a restart log in again. `/readyz`, the metric, `status` and the alert say
/// it is latched. Writing the right password and reloading lifts it: the next run rotates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_latches_across_runs_and_restarts_until_the_password_changes() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let (hook_url, mut hooks) = rotator::webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config_with_password_file(
        dir.path(),
        &rotator::Setup {
            schedule: "*/2 * * * * *",
            listen: &listen,
            hook_url: Some(&hook_url),
            ..rotator::Setup::new(&sim.base_url())
        },
    );
    write_password(dir.path(), "not-the-password");
    let failed_logins = || sim.sim().inspect().failed_login_count;

    // Four scheduled runs fail: the first with NetSuite's refusal, the rest latched.
    let daemon = Daemon::start(rotator::command(&config, demo::PASSWORD));
    let lines = daemon.wait_for("job step failed", 4);
    assert_eq!(failed_logins(), 1, "{}", lines.join("\n"));
    assert_eq!(sim.sim().inspect().requests("issuetoken"), 1);
    assert!(
        lines.iter().any(|l| l.contains("latched")),
        "{}",
        lines.join("\n")
    );

    // Every surface says latched, and why.
    let (ready, body) = get(&format!("http://{listen}/readyz")).await;
    assert_eq!(ready, 503, "{body}");
    assert!(body.contains("erp") && body.contains("latched"), "{body}");
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    assert_eq!(
        sample(
            &metrics,
            "netsuite_rotator_login_latched",
            &[("integration", "erp")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "netsuite_rotator_ready", &[]), Some(0.0));
    let status = status_json(&config);
    assert_eq!(status["state"], "latched", "{status}");
    assert!(status["login_latched"]["reason"].is_string(), "{status}");
    let alert: serde_json::Value =
        serde_json::from_str(&hooks.recv().await.expect("an alert")).unwrap();
    assert_eq!(alert["event"], "trigger", "{alert}");
    assert_eq!(alert["kind"], "login-refused", "{alert}");
    let summary = alert["summary"].as_str().unwrap();
    assert!(
        summary.contains("latched") && summary.contains("no login is tried again"),
        "{summary}"
    );
    assert!(!alert.to_string().contains("not-the-password"));
    let (rest, code) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", rest.join("\n"));

    // A restart with the same wrong password: still latched, no login tried.
    let daemon = Daemon::start(rotator::command(&config, demo::PASSWORD));
    let lines = daemon.wait_for("job step failed", 2);
    assert_eq!(failed_logins(), 1, "{}", lines.join("\n"));
    assert_eq!(sim.sim().inspect().requests("issuetoken"), 1);

    // The operator fixes the password and reloads: the latch is lifted and the next run
    // rotates with one login, which succeeds.
    write_password(dir.path(), demo::PASSWORD);
    daemon.signal("HUP");
    let lines = daemon.wait_for("token promoted to current", 1);
    assert!(
        lines.iter().any(|l| l.contains("latch is lifted")),
        "{}",
        lines.join("\n")
    );
    assert_eq!(failed_logins(), 1);
    let (ready, body) = get(&format!("http://{listen}/readyz")).await;
    assert_eq!(ready, 200, "{body}");
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    assert_eq!(
        sample(
            &metrics,
            "netsuite_rotator_login_latched",
            &[("integration", "erp")]
        ),
        Some(0.0),
        "{metrics}"
    );
    let status = status_json(&config);
    assert!(status["login_latched"].is_null(), "{status}");
    let (rest, code) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", rest.join("\n"));
    let mut resolved = false;
    while let Ok(body) = hooks.try_recv() {
        let event: serde_json::Value = serde_json::from_str(&body).unwrap();
        resolved |= event["event"] == "resolve" && event["kind"] == "login-refused";
    }
    assert!(resolved, "the login-refused problem was resolved");
}

/// Item 2: `rotate` by hand beside the running daemon. The CLI tells the daemon, which revokes
/// the replaced token when its grace window ends (not at its next scheduled wake, a week away)
/// and whose metrics follow at once; `rotate --revoke-now` revokes the replaced token before
/// it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_revokes_a_token_the_cli_replaced_when_its_grace_window_ends() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, listen) = config_listening(dir.path(), &sim.base_url(), "3s");
    let store = file_store(dir.path());
    let daemon = Daemon::start(rotator::command(&config, demo::PASSWORD));
    daemon.wait_for("token promoted to current", 1);
    let first = store
        .load()
        .await
        .unwrap()
        .current
        .unwrap()
        .id()
        .to_string();

    let stdout = rotator::succeed(rotator::command(&config, demo::PASSWORD).args([
        "rotate",
        "--integration",
        "erp",
    ]));
    assert!(
        stdout.contains("then the running daemon revokes it"),
        "{stdout}"
    );
    let state = store.load().await.unwrap();
    let previous = state.previous.expect("the first token is previous");
    assert_eq!(previous.token.id().to_string(), first);
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    assert_eq!(
        sample(
            &metrics,
            "netsuite_rotator_revocations_pending",
            &[("integration", "erp")]
        ),
        Some(1.0),
        "the daemon read the store the CLI changed: {metrics}"
    );

    let lines = daemon.wait_for("previous token revoked", 1);
    let revoked = sim
        .sim()
        .inspect()
        .tokens
        .into_iter()
        .find(|t| t.token_id == first)
        .unwrap();
    let revoked_at = revoked.revoked_at.unwrap_or_else(|| {
        panic!(
            "the first token is revoked in NetSuite:\n{}",
            lines.join("\n")
        )
    });
    assert!(
        revoked_at >= previous.revoke_after,
        "not before its grace window ended: {revoked_at} < {}",
        previous.revoke_after
    );
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    assert_eq!(
        sample(
            &metrics,
            "netsuite_rotator_revocations_pending",
            &[("integration", "erp")]
        ),
        Some(0.0),
        "{metrics}"
    );

    // A suspected leak: the replaced token is revoked before `rotate --revoke-now` returns.
    let second = store
        .load()
        .await
        .unwrap()
        .current
        .unwrap()
        .id()
        .to_string();
    let stdout = rotator::succeed(rotator::command(&config, demo::PASSWORD).args([
        "rotate",
        "--integration",
        "erp",
        "--revoke-now",
    ]));
    assert!(stdout.contains("revoked"), "{stdout}");
    let inspection = sim.sim().inspect();
    let second = inspection
        .tokens
        .iter()
        .find(|t| t.token_id == second)
        .unwrap();
    assert!(!second.is_active(), "{stdout}");
    assert_eq!(
        inspection.active_tokens().count(),
        1,
        "only the new current token is live"
    );
    let (_, code) = daemon.terminate();
    assert_eq!(code, Some(0));
}

fn running_as_root() -> bool {
    let uid = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&uid.stdout).trim() == "0"
}

/// Runs the binary as a user who may read and write the files of `dir`'s `store/` folder but
/// not create files in it (a read-only folder): as root (who writes anywhere) it drops to
/// `nobody` with `setpriv` and hands the files to `nobody`; otherwise the folder's mode is
/// enough.
fn as_user_who_cannot_write_the_folder(config: &Path, dir: &Path, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let store_dir = dir.join("store");
    let root = running_as_root();
    if root {
        for file in std::fs::read_dir(&store_dir).unwrap() {
            std::os::unix::fs::chown(file.unwrap().path(), Some(65534), Some(65534)).unwrap();
        }
    }
    std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = rotator::command(config, demo::PASSWORD);
    if root {
        let mut dropped = Command::new("setpriv");
        dropped.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            rotator::BIN,
        ]);
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => dropped.env(key, value),
                None => dropped.env_remove(key),
            };
        }
        dropped
            .args(command.get_args())
            .stdin(std::process::Stdio::null());
        command = dropped;
    }
    command.args(args).output().unwrap()
}

/// Item 4: a store whose files can be read and written but whose folder is read-only (the
/// reader file is replaced by renaming a temp file there, so promoting would fail) fails
/// `check`, naming the folder, and `rotate` stops before it issues anything: no token made
/// that could not be kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_on_a_store_it_cannot_write_and_rotate_issues_nothing() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = rotator::write_config(dir.path(), &rotator::Setup::new(&sim.base_url()));
    rotator::succeed(rotator::command(&config, demo::PASSWORD).args(["rotate", "--all"]));
    let store_dir = dir.path().join("store");
    let before = sim.sim().inspect();

    let check = as_user_who_cannot_write_the_folder(&config, dir.path(), &["check"]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{stdout}{stderr}");
    let failed = stdout
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or_else(|| panic!("no FAIL line: {stdout}{stderr}"));
    assert!(
        failed.contains(&store_dir.display().to_string()) && failed.contains("temp file"),
        "check names the folder it cannot write in: {stdout}{stderr}"
    );

    let rotate = as_user_who_cannot_write_the_folder(&config, dir.path(), &["rotate", "--all"]);
    let stdout = String::from_utf8_lossy(&rotate.stdout);
    let stderr = String::from_utf8_lossy(&rotate.stderr);
    assert_eq!(rotate.status.code(), Some(1), "{stdout}{stderr}");
    let after = sim.sim().inspect();
    assert_eq!(
        after.requests("issuetoken"),
        before.requests("issuetoken"),
        "nothing issued: {stdout}{stderr}"
    );
    assert_eq!(after.tokens.len(), before.tokens.len());
    assert_eq!(after.failed_login_count, 0);
}

/// Item 6: right after a start, before any rotation, every series an alert rule needs is
/// there: the last success (from the store's current token), every outcome and reason at 0,
/// build information, failures, the latch, reload failures and readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_is_present_right_after_start() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, listen) = config_listening(dir.path(), &sim.base_url(), "0s");
    rotator::succeed(rotator::command(&config, demo::PASSWORD).args(["rotate", "--all"]));
    let store = file_store(dir.path());
    let issued_at = store.load().await.unwrap().current.unwrap().issued_at();

    let daemon = Daemon::start(rotator::command(&config, demo::PASSWORD));
    daemon.wait_for("1 integration recovered and scheduled", 1);
    let (_, metrics) = get(&format!("http://{listen}/metrics")).await;
    let erp = [("integration", "erp")];
    assert_eq!(
        sample(
            &metrics,
            "netsuite_rotator_last_success_timestamp_seconds",
            &erp
        ),
        Some(issued_at.timestamp() as f64),
        "{metrics}"
    );
    for (outcome, reason) in netsuite_token_rotator::telemetry::metrics::ROTATION_OUTCOMES {
        assert_eq!(
            sample(
                &metrics,
                "netsuite_rotator_rotations_total",
                &[
                    ("integration", "erp"),
                    ("outcome", outcome),
                    ("reason", reason)
                ]
            ),
            Some(0.0),
            "{outcome}/{reason}: {metrics}"
        );
    }
    for (family, labels, value) in [
        (
            "netsuite_rotator_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))][..],
            1.0,
        ),
        ("netsuite_rotator_consecutive_failures", &erp[..], 0.0),
        ("netsuite_rotator_login_latched", &erp[..], 0.0),
        ("netsuite_rotator_revocations_pending", &erp[..], 0.0),
        (
            "netsuite_rotator_config_reload_failures_total",
            &[][..],
            0.0,
        ),
        ("netsuite_rotator_ready", &[][..], 1.0),
    ] {
        assert_eq!(
            sample(&metrics, family, labels),
            Some(value),
            "{family}: {metrics}"
        );
    }
    let (_, code) = daemon.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(
        sim.sim().inspect().requests("issuetoken"),
        1,
        "no rotation ran"
    );
}
