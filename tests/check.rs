//! `check` through the real binary: one line per check, every check run even after a failure,
//! the datacenterurls and endpoint probes, alert channels probed without sending anything,
//! nothing changed (no token issued, no store file written), and no secret printed.

mod common;

// The simulator answers the binary from this process: it needs runtime workers of its own.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::demo;
use netsuite_token_rotator::sim::{Seed, SimHandle, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");
const SLACK_PATH_SECRET: &str = "T0000/B0000/slack-path-secret-4711";
const WEBHOOK_SECRET: &str = "webhook-hmac-secret-4711";

fn config_text(base_url: &str, hook_port: u16) -> String {
    format!(
        r#"
[netsuite]
datacenter_url = "{base_url}"
max_attempts = 1

[[alerts]]
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/alerts"
secret = {{ env = "CHK_WEBHOOK_SECRET" }}

[[alerts]]
kind = "slack"
webhook_url = {{ env = "CHK_SLACK_URL" }}

[[integrations]]
name = "direct"
account_id = "{account}"
endpoint = "{base_url}"
consumer_key = {{ env = "CHK_CONSUMER_KEY" }}
consumer_secret = {{ env = "CHK_CONSUMER_SECRET" }}
[integrations.login]
email = "{email}"
password = {{ env = "CHK_PASSWORD" }}
role = "{role}"
[integrations.store]
kind = "file"
path = "direct.json"

[[integrations]]
name = "via-datacenter"
account_id = "{account}"
consumer_key = {{ env = "CHK_CONSUMER_KEY" }}
consumer_secret = {{ env = "CHK_CONSUMER_SECRET" }}
[integrations.login]
email = "{email}"
password = {{ env = "CHK_PASSWORD" }}
role = "{role}"
[integrations.store]
kind = "file"
path = "via-datacenter.json"
"#,
        account = demo::ACCOUNT,
        email = demo::EMAIL,
        role = demo::ROLE_ID,
    )
}

fn run(config: &Path, args: &[&str], closed_port: u16, unset: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("CHK_CONSUMER_KEY", demo::CONSUMER_KEY)
        .env("CHK_CONSUMER_SECRET", demo::CONSUMER_SECRET)
        .env("CHK_PASSWORD", demo::PASSWORD)
        .env("CHK_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env(
            "CHK_SLACK_URL",
            format!("http://127.0.0.1:{closed_port}/services/{SLACK_PATH_SECRET}"),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for name in unset {
        cmd.env_remove(name);
    }
    cmd.output().expect("binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

struct Setup {
    sim: SimHandle,
    dir: tempfile::TempDir,
    hook: TcpListener,
    closed_port: u16,
}

impl Setup {
    async fn new() -> Setup {
        let sim = Simulator::start(Seed::demo()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let hook = TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed_port();
        let config = config_text(&sim.base_url(), hook.local_addr().unwrap().port());
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Setup {
            sim,
            dir,
            hook,
            closed_port,
        }
    }

    fn check(&self, unset: &[&str]) -> (Output, String) {
        let out = run(
            &self.dir.path().join("config.toml"),
            &["check"],
            self.closed_port,
            unset,
        );
        let shown = text(&out);
        (out, shown)
    }

    /// Accepts the probe's connection and returns what it sent.
    fn bytes_the_probe_sent(&self) -> usize {
        let (mut stream, _) = self.hook.accept().unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        received.len()
    }
}

fn line_with<'a>(shown: &'a str, needle: &str) -> &'a str {
    shown
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{shown}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_problem_on_its_own_line_and_changes_nothing() {
    let s = Setup::new().await;
    let (out, shown) = s.check(&[]);

    assert_eq!(
        out.status.code(),
        Some(1),
        "the slack channel is down:\n{shown}"
    );
    assert!(
        line_with(&shown, "direct: endpoint").starts_with("ok"),
        "{shown}"
    );
    assert!(
        line_with(&shown, "via-datacenter: datacenterurls").starts_with("warn"),
        "the simulator's restDomain is not the default RESTlet host:\n{shown}"
    );
    assert!(
        line_with(&shown, "via-datacenter: datacenterurls").contains("endpoint = "),
        "the warning says how to fix it:\n{shown}"
    );
    assert!(
        line_with(&shown, "direct: store").starts_with("ok"),
        "{shown}"
    );
    assert!(line_with(&shown, "direct: the store holds no current token").starts_with("warn"));
    assert!(
        line_with(&shown, "alerts[0] webhook").starts_with("ok"),
        "{shown}"
    );
    let slack = line_with(&shown, "alerts[1] slack");
    assert!(slack.starts_with("FAIL"), "{shown}");
    assert!(
        slack.contains(&format!("127.0.0.1:{}", s.closed_port)),
        "{slack}"
    );
    assert!(shown.contains("1 check failed, "), "{shown}");

    assert_eq!(s.bytes_the_probe_sent(), 0, "check must not send an alert");
    assert!(
        s.sim.sim().inspect().tokens.is_empty(),
        "check issued a token"
    );
    assert!(
        !s.dir.path().join("direct.json").exists(),
        "check wrote a store"
    );
    for secret in [
        SLACK_PATH_SECRET,
        WEBHOOK_SECRET,
        demo::PASSWORD,
        demo::CONSUMER_SECRET,
        demo::CONSUMER_KEY,
    ] {
        assert!(!shown.contains(secret), "check printed a secret:\n{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_its_line_and_the_other_checks_still_run() {
    let s = Setup::new().await;
    let (out, shown) = s.check(&["CHK_CONSUMER_SECRET"]);
    s.bytes_the_probe_sent();

    assert_eq!(out.status.code(), Some(1), "{shown}");
    let failed = line_with(&shown, "direct: integrations[0].consumer_secret");
    assert!(failed.starts_with("FAIL"), "{shown}");
    assert!(
        failed.contains("CHK_CONSUMER_SECRET"),
        "names the variable: {failed}"
    );
    assert!(
        line_with(&shown, "direct: store").starts_with("ok"),
        "{shown}"
    );
    assert!(
        line_with(&shown, "direct: endpoint").starts_with("ok"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_check_proves_the_current_token_with_tokeninfo() {
    let s = Setup::new().await;
    let config = s.dir.path().join("config.toml");
    let rotated = run(
        &config,
        &["rotate", "--integration", "direct"],
        s.closed_port,
        &[],
    );
    assert!(rotated.status.success(), "{}", text(&rotated));

    let (_, shown) = s.check(&[]);
    s.bytes_the_probe_sent();
    assert!(
        line_with(&shown, "direct: NetSuite accepted the current token").starts_with("ok"),
        "{shown}"
    );
    assert_eq!(
        s.sim.sim().inspect().tokens.len(),
        1,
        "check issued no token beyond the rotation's"
    );

    let status = run(&config, &["status", "--json"], s.closed_port, &[]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let direct = &rows[0];
    assert_eq!(direct["integration"], "direct");
    assert_eq!(direct["state"], "ok");
    assert_eq!(direct["rotation_due"], false);
    assert!(direct["next_rotation"].is_string(), "{direct}");
    assert_eq!(rows[1]["state"], "no-token");
    assert_eq!(rows[1]["rotation_due"], true);
}

/// One run names every secret reference that cannot be read, in every integration: not only
/// the first of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unresolvable_secret_of_every_integration_is_reported_in_one_run() {
    let s = Setup::new().await;
    let config = std::fs::read_to_string(s.dir.path().join("config.toml")).unwrap();
    let (first, second) = config.split_once("name = \"via-datacenter\"").unwrap();
    let first = first
        .replace("CHK_CONSUMER_KEY", "CHK_A_CONSUMER_KEY")
        .replace("CHK_PASSWORD", "CHK_A_PASSWORD");
    let second = second.replace("CHK_CONSUMER_SECRET", "CHK_B_CONSUMER_SECRET");
    std::fs::write(
        s.dir.path().join("config.toml"),
        format!("{first}name = \"via-datacenter\"{second}"),
    )
    .unwrap();

    let (out, shown) = s.check(&[
        "CHK_A_CONSUMER_KEY",
        "CHK_A_PASSWORD",
        "CHK_B_CONSUMER_SECRET",
    ]);
    s.bytes_the_probe_sent();
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for (integration, field, variable) in [
        (
            "direct",
            "integrations[0].consumer_key",
            "CHK_A_CONSUMER_KEY",
        ),
        ("direct", "integrations[0].login.password", "CHK_A_PASSWORD"),
        (
            "via-datacenter",
            "integrations[1].consumer_secret",
            "CHK_B_CONSUMER_SECRET",
        ),
    ] {
        let line = line_with(&shown, &format!("{integration}: {field}"));
        assert!(line.starts_with("FAIL"), "{shown}");
        assert!(
            line.contains(&format!("environment variable {variable} is not set")),
            "{line}"
        );
    }
    assert_eq!(
        shown
            .lines()
            .filter(|l| l.contains("environment variable"))
            .count(),
        3,
        "{shown}"
    );
}

/// `check` is a one-shot probe: with an OTLP endpoint configured it exports no spans, so a
/// collector that is down adds nothing to its report (it used to flush at exit and print the
/// export error). The collector here is a port nothing listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_sends_no_spans_even_with_an_otlp_endpoint() {
    let s = Setup::new().await;
    let path = s.dir.path().join("config.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\n{config}",
            closed_port()
        ),
    )
    .unwrap();

    let (out, shown) = s.check(&[]);
    s.bytes_the_probe_sent();
    // The run made NetSuite calls (datacenterurls), which are spans wherever export is on.
    assert!(
        line_with(&shown, "via-datacenter: datacenterurls").starts_with("warn"),
        "{shown}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for word in ["export", "span", "otlp", "OTLP", "telemetry"] {
        assert!(!stderr.contains(word), "{word:?} on stderr:\n{stderr}");
    }

    // The export settings are still checked: an endpoint that is no URL fails its line.
    std::fs::write(
        &path,
        format!("[telemetry]\notlp_endpoint = \"collector:4318\"\n{config}"),
    )
    .unwrap();
    let (out, shown) = s.check(&[]);
    s.bytes_the_probe_sent();
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        line_with(&shown, "telemetry.otlp_endpoint").starts_with("FAIL"),
        "{shown}"
    );
}
