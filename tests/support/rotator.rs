//! The real `netsuite-token-rotator` binary against servers the test started: a config with
//! one integration on the demo account (file store, secrets from the environment), the binary
//! run with those secrets, the daemon (`run`) with its JSON log lines streamed to the test, and
//! a webhook receiver for its alerts.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use netsuite_token_rotator::sim::demo;

pub const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");

/// Longest wait for the next log line: a bound so a hung daemon fails the test instead of
/// hanging it, not a timing assertion (generous: the chaos run loads the machine).
pub const BOUND: Duration = Duration::from_secs(90);

/// Longest wait for the lines [`Daemon::wait_for`] waits for, all together: long enough for
/// a few backoffs of a failing job (30 s, then 60 s), a bound and not a timing assertion.
pub const WAIT_BOUND: Duration = Duration::from_secs(300);

/// Attempts the client makes for transient failures, as the configs below set them.
pub const MAX_ATTEMPTS: u32 = 3;

/// What the config says beyond the integration's account and credentials.
#[derive(Clone, Copy)]
pub struct Setup<'a> {
    /// The RESTlet domain override.
    pub endpoint: &'a str,
    /// Six-field cron schedule.
    pub schedule: &'a str,
    /// A webhook alert channel, when set.
    pub hook_url: Option<&'a str>,
    /// `[daemon] listen`.
    pub listen: &'a str,
    /// The grace window before a replaced token is revoked.
    pub revoke_after: &'a str,
}

impl<'a> Setup<'a> {
    /// Weekly rotations, no alert channel, any free port for the health server, no grace
    /// window.
    pub fn new(endpoint: &'a str) -> Setup<'a> {
        Setup {
            endpoint,
            schedule: "0 0 3 * * Sun",
            hook_url: None,
            listen: "127.0.0.1:0",
            revoke_after: "0s",
        }
    }
}

/// A config for one integration `erp` of the demo account, with a file store beside it.
/// Secrets are `{ env = .. }` references, set by [`command`].
pub fn config_text(setup: &Setup<'_>) -> String {
    let alerts = setup
        .hook_url
        .map(|url| format!("[[alerts]]\nkind = \"webhook\"\nurl = \"{url}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[daemon]
listen = "{listen}"
shutdown_grace = "10s"
[telemetry]
log_format = "json"
[netsuite]
max_attempts = {max_attempts}
{alerts}
[[integrations]]
name = "erp"
account_id = "{account}"
endpoint = "{endpoint}"
consumer_key = {{ env = "IT_CONSUMER_KEY" }}
consumer_secret = {{ env = "IT_CONSUMER_SECRET" }}
schedule = "{schedule}"
revoke_after = "{revoke_after}"
[integrations.login]
email = "{email}"
password = {{ env = "IT_PASSWORD" }}
role = "{role}"
[integrations.store]
kind = "file"
path = "store/erp.json"
"#,
        listen = setup.listen,
        max_attempts = MAX_ATTEMPTS,
        account = demo::ACCOUNT,
        endpoint = setup.endpoint,
        schedule = setup.schedule,
        revoke_after = setup.revoke_after,
        email = demo::EMAIL,
        role = demo::ROLE_ID,
    )
}

/// Writes [`config_text`] to `config.toml` in `dir`; returns its path.
pub fn write_config(dir: &Path, setup: &Setup<'_>) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(&config, config_text(setup)).unwrap();
    config
}

/// The binary with `--config config`, the demo consumer pair and `password` in the
/// environment, and nothing inherited that would change where it reports.
pub fn command(config: &Path, password: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
        .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
        .env("IT_PASSWORD", password)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end and returns its stdout; panics with both outputs unless it
/// exited 0.
pub fn succeed(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The daemon (`run`) with its stderr (JSON log lines) streamed to a channel.
pub struct Daemon {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `command` (from [`command`]) with `run` appended.
    pub fn start(mut command: Command) -> Daemon {
        let mut child = command
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines }
    }

    /// The next log line, or `None` once the daemon has exited and every line was read.
    /// Panics if none comes within [`BOUND`] while the daemon runs.
    pub fn next_line(&self) -> Option<String> {
        self.next_line_within(BOUND)
            .unwrap_or_else(|| panic!("no daemon log line within {BOUND:?}"))
    }

    /// Like [`Daemon::next_line`], waiting at most `bound`: `None` when it passed.
    fn next_line_within(&self, bound: Duration) -> Option<Option<String>> {
        match self.lines.recv_timeout(bound) {
            Ok(line) => Some(Some(line)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(None),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        }
    }

    /// Waits for `count` log lines containing `needle`; returns every line read meanwhile.
    /// Panics if they have not all come within [`WAIT_BOUND`] (a daemon that keeps logging
    /// something else fails the test instead of hanging it).
    pub fn wait_for(&self, needle: &str, count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + WAIT_BOUND;
        let mut seen = Vec::new();
        let mut found = 0;
        while found < count {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some(next) = self.next_line_within(left) else {
                panic!(
                    "waited {WAIT_BOUND:?} for {count} lines with {needle:?}, saw {found}:\n{}",
                    seen.join("\n")
                )
            };
            let Some(line) = next else {
                panic!(
                    "the daemon exited; waited for {count} lines with {needle:?}, saw {found}:\n{}",
                    seen.join("\n")
                )
            };
            found += usize::from(line.contains(needle));
            seen.push(line);
        }
        seen
    }

    /// Sends the signal `name` (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM (a run in flight finishes first) and returns the lines logged until the
    /// exit, with the exit code.
    pub fn terminate(mut self) -> (Vec<String>, Option<i32>) {
        self.signal("TERM");
        let mut rest = Vec::new();
        while let Some(line) = self.next_line() {
            rest.push(line);
        }
        let code = self.child.wait().unwrap().code();
        (rest, code)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon on a two-second schedule against `endpoint`, alerting to a webhook receiver, in
/// a temporary folder (config and file store).
pub struct Scheduled {
    pub dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
    hooks: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// What the daemon did until it was stopped.
pub struct Stopped {
    /// Every log line, in order.
    pub lines: Vec<String>,
    /// Scheduled runs that failed (`job step failed`), those drained at SIGTERM included.
    pub failed_runs: usize,
}

impl Scheduled {
    pub async fn new(endpoint: &str) -> Scheduled {
        let (hook_url, hooks) = webhook_receiver().await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            dir.path(),
            &Setup {
                schedule: "*/2 * * * * *",
                hook_url: Some(&hook_url),
                ..Setup::new(endpoint)
            },
        );
        Scheduled { dir, config, hooks }
    }

    /// Runs the daemon with `password` until `runs` scheduled runs have failed, then stops it
    /// with SIGTERM (a run in flight finishes and is counted) and checks that it exited 0.
    pub fn run_until_failed(&self, password: &str, runs: usize) -> Stopped {
        let daemon = Daemon::start(command(&self.config, password));
        let mut lines = daemon.wait_for("job step failed", runs);
        let (rest, code) = daemon.terminate();
        lines.extend(rest);
        assert_eq!(code, Some(0), "SIGTERM drains and exits 0");
        let failed_runs = lines
            .iter()
            .filter(|l| l.contains("job step failed"))
            .count();
        Stopped { lines, failed_runs }
    }

    /// The alert bodies received so far; the daemon waits for its deliveries before it exits.
    pub fn alerts(&mut self) -> Vec<String> {
        let mut alerts = Vec::new();
        while let Ok(body) = self.hooks.try_recv() {
            alerts.push(body);
        }
        alerts
    }
}

/// A webhook alert channel: every POSTed body, in order of arrival.
pub async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (hook_tx, hooks) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let hook_tx = hook_tx.clone();
            async move {
                let _ = hook_tx.send(String::from_utf8_lossy(&body).into_owned());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hook_url, hooks)
}

/// The names in `suspected orphan token` log lines (JSON), which the daemon also alerts.
pub fn orphan_names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("suspected orphan token"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["token_name"].as_str().map(str::to_string))
        .collect()
}

/// Tokens live in the simulator that the store does not hold (as current, pending or an
/// unrevoked previous) and no orphan report names: each would be a token left valid and
/// unknown. As `id (name)`.
pub fn unaccounted(
    inspection: &netsuite_token_rotator::sim::Inspection,
    state: &netsuite_token_rotator::store::StoreState,
    orphan_names: &[String],
) -> Vec<String> {
    let mut known: Vec<&str> = Vec::new();
    known.extend(state.current.iter().map(|c| c.id()));
    known.extend(state.pending.iter().map(|p| p.id()));
    if let Some(previous) = state.previous.as_ref().filter(|p| p.revoked_at.is_none()) {
        known.push(previous.token.id());
    }
    inspection
        .active_tokens()
        .filter(|t| !known.contains(&t.token_id.as_str()) && !orphan_names.contains(&t.name))
        .map(|t| format!("{} ({})", t.token_id, t.name))
        .collect()
}

/// A port nothing listens on right now, for `[daemon] listen`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET url` on the daemon's health server: status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the daemon answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of the sample of `family` whose labels include every `labels` pair, in the
/// Prometheus text format `/metrics` serves to a client that does not ask for OpenMetrics.
pub fn sample(metrics: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

pub fn status_json(config: &Path) -> serde_json::Value {
    let out = command(config, demo::PASSWORD)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let all: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let rows = all
        .as_array()
        .or_else(|| all["integrations"].as_array())
        .unwrap_or_else(|| panic!("no integrations in {all}"));
    rows[0].clone()
}
