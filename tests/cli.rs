//! The real binary: crash recovery between every two steps, exit codes and messages for bad
//! config, `status`, `import` from stdin, the demo, and a scan of everything printed at
//! `RUST_LOG=trace` for secret values.

mod common;

// The tests block on the binary while the simulator answers it from this process: the
// simulator needs runtime workers of its own, hence the multi-thread flavour.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::demo;
use netsuite_token_rotator::secret::ExposeSecret;
use netsuite_token_rotator::sim::{HandMadeToken, Seed, SimHandle, Simulator};
use netsuite_token_rotator::store::file::{FileStore, FileStoreConfig};
use netsuite_token_rotator::store::{Intent, SecretStore, StoreState};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");

struct Setup {
    sim: SimHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    async fn new(revoke_after: &str) -> Setup {
        let sim = Simulator::start(Seed::demo()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text(&sim.base_url(), revoke_after)).unwrap();
        Setup { sim, dir, config }
    }

    fn store_path(&self) -> PathBuf {
        self.dir.path().join("store/erp.json")
    }

    /// Runs the binary with the test's secrets in its environment.
    fn run(&self, args: &[&str], extra_env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
            .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
            .env("IT_PASSWORD", demo::PASSWORD)
            .env_remove("RUST_LOG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary starts");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    async fn state(&self) -> StoreState {
        FileStore::new(&FileStoreConfig {
            path: self.store_path(),
        })
        .load()
        .await
        .unwrap()
    }

    fn active_tokens(&self) -> Vec<(String, String)> {
        self.sim
            .sim()
            .inspect()
            .tokens
            .iter()
            .filter(|t| t.is_active())
            .map(|t| (t.token_id.clone(), t.name.clone()))
            .collect()
    }
}

fn config_text(base_url: &str, revoke_after: &str) -> String {
    format!(
        r#"
[[integrations]]
name = "erp"
account_id = "{account}"
endpoint = "{base_url}"
consumer_key = {{ env = "IT_CONSUMER_KEY" }}
consumer_secret = {{ env = "IT_CONSUMER_SECRET" }}
revoke_after = "{revoke_after}"
[integrations.login]
email = "{email}"
password = {{ env = "IT_PASSWORD" }}
role = "{role}"
[integrations.store]
kind = "file"
path = "store/erp.json"
"#,
        account = demo::ACCOUNT,
        email = demo::EMAIL,
        role = demo::ROLE_ID,
    )
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_between_any_two_steps_recovers_on_the_next_start() {
    for failpoint in [
        "after-intent",
        "after-issue",
        "after-stage",
        "after-verify",
        "after-promote",
    ] {
        let s = Setup::new("0s").await;
        let ok = s.run(&["rotate", "--integration", "erp"], &[], None);
        assert!(ok.status.success(), "bootstrap: {}", text(&ok));

        let crashed = s.run(
            &["rotate", "--all"],
            &[("NETSUITE_ROTATOR_FAILPOINT", failpoint)],
            None,
        );
        assert!(
            !crashed.status.success() && crashed.status.code().is_none(),
            "{failpoint}: the process should die by signal: {}",
            text(&crashed)
        );

        let next = s.run(&["rotate", "--all"], &[], None);
        let output = text(&next);
        assert!(next.status.success(), "{failpoint}: next start: {output}");

        // Invariants: current verifies; every live token is current or named as an orphan.
        let state = s.state().await;
        assert!(
            state.intent.is_none() && state.pending.is_none(),
            "{failpoint}"
        );
        let current = state.current.expect("current token");
        let verify = s.run(&["verify", "--all"], &[], None);
        assert!(verify.status.success(), "{failpoint}: {}", text(&verify));
        for (token_id, name) in s.active_tokens() {
            assert!(
                token_id == current.id() || output.contains(&name),
                "{failpoint}: live token {name} is neither current nor named in an orphan report:\n{output}"
            );
        }
        if failpoint == "after-issue" {
            assert!(
                output.contains("suspected orphan"),
                "after-issue must report the orphan: {output}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_config_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    let base = config_text("http://127.0.0.1:9", "0s");
    for (bad, field) in [
        (
            base.replace("revoke_after = \"0s\"", "revoke_after = \"later\""),
            "integrations[0].revoke_after",
        ),
        (
            base.replace("kind = \"file\"", "kind = \"s3\""),
            "integrations[0].store",
        ),
        (
            base.replace("role = \"1001\"", "role = 1001"),
            "integrations[0].login.role",
        ),
        (
            base.replace("[[integrations]]", "[[integration]]"),
            "integration",
        ),
        (
            base.replace("path = \"store/erp.json\"", "pathh = \"store/erp.json\""),
            "integrations[0].store: unknown key `pathh`; a store of kind = \"file\" takes the keys kind, path",
        ),
    ] {
        std::fs::write(&config, bad).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["rotate", "--all"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(field),
            "should name {field}: {}",
            text(&out)
        );
    }
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/config.toml", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("/nonexistent/config.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_reference_exits_2_naming_the_field_and_variable() {
    let s = Setup::new("0s").await;
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .args(["rotate", "--all"])
        .env_remove("IT_PASSWORD")
        .env("IT_CONSUMER_KEY", "k")
        .env("IT_CONSUMER_SECRET", "s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("integrations[0].login.password"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("IT_PASSWORD"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reads_the_token_from_stdin_and_status_shows_it_shortened() {
    let s = Setup::new("1h").await;
    let (token_id, token_secret) = s
        .sim
        .sim()
        .create_token(&HandMadeToken {
            account: demo::ACCOUNT.into(),
            email: demo::EMAIL.into(),
            role: demo::ROLE_ID.into(),
            consumer_key: demo::CONSUMER_KEY.into(),
            name: "by hand".into(),
        })
        .unwrap();
    let input = format!("{token_id}\n{}\n", token_secret.expose_secret());
    let out = s.run(&["import", "--integration", "erp"], &[], Some(&input));
    assert!(out.status.success(), "{}", text(&out));

    let status = s.run(&["status"], &[], None);
    let shown = text(&status);
    assert!(status.status.success(), "{shown}");
    assert!(
        !shown.contains(&token_id),
        "token ids are shortened: {shown}"
    );
    assert!(shown.contains(&token_id[..4]), "{shown}");

    let json = s.run(&["status", "--json"], &[], None);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows[0]["integration"], "erp");
    assert!(
        rows[0]["current"]["token_id"]
            .as_str()
            .unwrap()
            .contains('…')
    );

    let empty = s.run(&["import", "--integration", "erp"], &[], Some(""));
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty));
    assert!(text(&empty).contains("token id"), "{}", text(&empty));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_reports_failure_with_exit_1_and_check_passes_after_bootstrap() {
    let s = Setup::new("1h").await;
    let check = s.run(&["check"], &[], None);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("no current token"),
        "{}",
        text(&check)
    );
    assert!(s.run(&["rotate", "--all"], &[], None).status.success());
    assert!(s.run(&["rotate", "--all"], &[], None).status.success());
    // The previous token is in its grace window: a third rotation is refused with exit 1.
    let third = s.run(&["rotate", "--all"], &[], None);
    assert_eq!(third.status.code(), Some(1), "{}", text(&third));
    assert!(text(&third).contains("grace window"), "{}", text(&third));
    let check = s.run(&["check"], &[], None);
    assert!(check.status.success(), "{}", text(&check));
    // The dry run says so, and exits as the real command did.
    let dry = s.run(&["rotate", "--all", "--dry-run"], &[], None);
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    assert!(text(&dry).contains("would refuse"), "{}", text(&dry));
    assert!(text(&dry).contains("grace window"), "{}", text(&dry));
}

/// `rotate --dry-run` exits with the code `rotate` would: 1 when another process's rotation is
/// in progress (as `rotate` refuses), 0 when an abandoned one would be recovered and the
/// rotation would go on, 0 for a plain rotation, 1 when recovering would put the current token
/// in its grace window. Each prediction is checked against the real command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_exits_with_the_code_of_the_real_rotation() {
    let s = Setup::new("0s").await;
    let dry = s.run(&["rotate", "--all", "--dry-run"], &[], None);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("would bootstrap"), "{}", text(&dry));

    let store = FileStore::new(&FileStoreConfig {
        path: s.store_path(),
    });
    let intent = |started_at| Intent {
        rotation_id: uuid::Uuid::new_v4(),
        token_name: "erp-in-flight".into(),
        started_at,
        owner: "another-host/4242/1/00000001".into(),
    };
    // Started a minute ago on another host: for all this host knows, still running.
    let running = intent(chrono::Utc::now() - chrono::Duration::minutes(1));
    store.begin_rotation(&running).await.unwrap();
    let dry = s.run(&["rotate", "--all", "--dry-run"], &[], None);
    let real = s.run(&["rotate", "--all"], &[], None);
    assert_eq!(real.status.code(), Some(1), "{}", text(&real));
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    assert!(text(&dry).contains("would refuse"), "{}", text(&dry));
    assert!(
        text(&dry).contains(&running.rotation_id.to_string()),
        "{}",
        text(&dry)
    );

    // The same intent a day old: recovery takes it over, reports its token name, and rotates.
    store.abandon_rotation(running.rotation_id).await.unwrap();
    let stale = intent(chrono::Utc::now() - chrono::Duration::days(1));
    store.begin_rotation(&stale).await.unwrap();
    let dry = s.run(&["rotate", "--all", "--dry-run"], &[], None);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("would first recover"), "{}", text(&dry));
    let real = s.run(&["rotate", "--all"], &[], None);
    assert_eq!(real.status.code(), Some(0), "{}", text(&real));

    // A process died with its new token staged: recovery promotes it, which starts the grace
    // window of the token it replaces, and the rotation stops there.
    let s = Setup::new("1h").await;
    assert!(s.run(&["rotate", "--all"], &[], None).status.success());
    let died = s.run(
        &["rotate", "--all"],
        &[("NETSUITE_ROTATOR_FAILPOINT", "after-stage")],
        None,
    );
    assert_eq!(died.status.code(), None, "{}", text(&died));
    let dry = s.run(&["rotate", "--all", "--dry-run"], &[], None);
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    assert!(text(&dry).contains("would first recover"), "{}", text(&dry));
    assert!(text(&dry).contains("then refuse"), "{}", text(&dry));
    let real = s.run(&["rotate", "--all"], &[], None);
    assert_eq!(real.status.code(), Some(1), "{}", text(&real));
    assert!(text(&real).contains("grace window"), "{}", text(&real));
}

/// Every byte the binary prints at `RUST_LOG=trace` through a full rotation cycle, import,
/// verify, revoke and status is free of every secret the run used, raw or percent-encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_at_trace_level() {
    let s = Setup::new("0s").await;
    let trace = [("RUST_LOG", "trace")];
    let mut printed = String::new();
    let mut token_secrets: HashSet<String> = HashSet::new();
    let mut collect_secrets = |state: &StoreState| {
        for record in state
            .current
            .iter()
            .chain(state.previous.iter().map(|p| &p.token))
        {
            token_secrets.insert(
                record
                    .as_tba()
                    .unwrap()
                    .token_secret
                    .expose_secret()
                    .to_string(),
            );
        }
    };

    let (token_id, token_secret) = s
        .sim
        .sim()
        .create_token(&HandMadeToken {
            account: demo::ACCOUNT.into(),
            email: demo::EMAIL.into(),
            role: demo::ROLE_ID.into(),
            consumer_key: demo::CONSUMER_KEY.into(),
            name: "by hand".into(),
        })
        .unwrap();
    let input = format!("{token_id}\n{}\n", token_secret.expose_secret());
    printed += &text(&s.run(&["import", "--integration", "erp"], &trace, Some(&input)));
    collect_secrets(&s.state().await);
    for args in [
        &["rotate", "--all"][..],
        &["rotate", "--all"][..],
        &["verify", "--all"][..],
        &["revoke", "--all", "--force"][..],
        &["status"][..],
        &["status", "--json"][..],
        &["check"][..],
    ] {
        let out = s.run(args, &trace, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        printed += &text(&out);
        collect_secrets(&s.state().await);
    }
    assert!(
        printed.contains("TRACE") || printed.contains("DEBUG"),
        "trace logging was on"
    );
    assert!(
        !printed.contains('\x1b'),
        "text logs into a pipe carry no terminal colour codes"
    );
    assert!(
        token_secrets.len() >= 3,
        "collected the secrets of every token"
    );

    let mut secrets: Vec<String> = token_secrets.into_iter().collect();
    secrets.extend([
        demo::PASSWORD.to_string(),
        demo::CONSUMER_SECRET.to_string(),
    ]);
    for secret in &secrets {
        for form in [secret.clone(), percent_encode(secret)] {
            assert!(
                !printed.contains(&form),
                "a secret (or its percent-encoding) appears in the output"
            );
        }
    }
}

#[test]
fn demo_runs_three_rotations_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--rotations", "3", "--interval", "1", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert_eq!(shown.matches("4 verify").count(), 3, "{shown}");
    assert_eq!(shown.matches("5 promote").count(), 3, "{shown}");
    assert!(shown.contains("1 active"), "{shown}");
    let reader = std::fs::read_to_string(dir.path().join("demo-integration.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&reader).unwrap();
    for key in [
        "account_id",
        "realm",
        "consumer_key",
        "consumer_secret",
        "token_id",
        "token_secret",
        "issued_at",
        "rotation_id",
    ] {
        assert!(value.get(key).is_some(), "reader JSON lacks {key}");
    }
    assert!(!shown.contains(value["token_secret"].as_str().unwrap()));
    assert_eq!(mode(&dir.path().join("demo-integration.json")), 0o600);
}

/// `demo | head -3`, `status | head -1`: a reader that goes away must not make the binary
/// panic on its next line. Here the pipe's read end is closed before the binary starts, so
/// every line it prints meets EPIPE. Work that was asked for is still done (the rotation below
/// reaches the store) and the exit code says how the work went, not that nobody read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_quietly_with_the_commands_own_exit_code() {
    let s = Setup::new("0s").await;
    let with_closed_stdout = |command: &mut Command| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = command
            .stdout(writer)
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status, stderr)
    };
    let tool = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&s.config)
            .args(args)
            .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
            .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
            .env("IT_PASSWORD", demo::PASSWORD)
            .env_remove("RUST_LOG");
        command
    };

    let dir = tempfile::tempdir().unwrap();
    let mut demo_command = Command::new(BIN);
    demo_command
        .args(["demo", "--rotations", "2", "--interval", "1", "--data-dir"])
        .arg(dir.path());
    for (what, mut command) in [
        ("demo", demo_command),
        ("rotate", tool(&["rotate", "--all"])),
        ("status", tool(&["status"])),
        ("status --json", tool(&["status", "--json"])),
        ("check", tool(&["check"])),
        ("verify", tool(&["verify", "--all"])),
    ] {
        let (status, stderr) = with_closed_stdout(&mut command);
        assert_eq!(status.code(), Some(0), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{what}: {stderr}");
    }
    assert!(
        s.state().await.current.is_some(),
        "the rotation finished although nobody read its report"
    );
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// RFC 3986 encoding, as an NLAuth header or OAuth base string would carry the value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `{ file = }` and `{ credential = }` references are read for real: the consumer secret from
/// a file, the password from `$CREDENTIALS_DIRECTORY` (as systemd's `LoadCredential=` sets it),
/// each with the trailing newline `echo` writes. A rotation with them succeeds; without the
/// credentials directory the command stops with exit 2 naming the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_credential_references_are_read_for_a_rotation() {
    let s = Setup::new("0s").await;
    let secrets = s.dir.path().join("secrets");
    let credentials = s.dir.path().join("credentials");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(
        secrets.join("consumer-secret"),
        format!("{}\n", demo::CONSUMER_SECRET),
    )
    .unwrap();
    std::fs::write(
        credentials.join("erp-password"),
        format!("{}\n", demo::PASSWORD),
    )
    .unwrap();
    let config = config_text(&s.sim.base_url(), "0s")
        .replace(
            r#"consumer_secret = { env = "IT_CONSUMER_SECRET" }"#,
            &format!(
                "consumer_secret = {{ file = {:?} }}",
                secrets.join("consumer-secret")
            ),
        )
        .replace(
            r#"password = { env = "IT_PASSWORD" }"#,
            r#"password = { credential = "erp-password" }"#,
        );
    assert!(config.contains("{ file = ") && config.contains("{ credential = "));
    std::fs::write(&s.config, config).unwrap();

    let without = s.run(&["rotate", "--all"], &[("IT_CONSUMER_SECRET", "")], None);
    assert_eq!(without.status.code(), Some(2), "{}", text(&without));
    assert!(
        text(&without).contains("erp-password") && text(&without).contains("CREDENTIALS_DIRECTORY"),
        "{}",
        text(&without)
    );
    assert!(s.state().await.current.is_none());

    let dir = credentials.to_str().unwrap();
    let rotated = s.run(
        &["rotate", "--all"],
        &[("IT_CONSUMER_SECRET", ""), ("CREDENTIALS_DIRECTORY", dir)],
        None,
    );
    assert!(rotated.status.success(), "{}", text(&rotated));
    let current = s.state().await.current.expect("a current token");
    assert_eq!(s.active_tokens().len(), 1);
    assert_eq!(s.active_tokens()[0].0, current.id().to_string());
}

#[test]
fn version_and_every_commands_help_with_an_example() {
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("netsuite-token-rotator {}", env!("CARGO_PKG_VERSION"))
    );
    for command in [
        "run", "rotate", "verify", "revoke", "import", "status", "check", "demo",
    ] {
        let help = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        let help_text = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success(), "{command} --help: {help_text}");
        assert!(
            help_text.contains(&format!("netsuite-token-rotator {command}"))
                || help_text.contains("netsuite-token-rotator --config"),
            "{command} --help has no example: {help_text}"
        );
        assert!(
            help_text.contains("Example:"),
            "{command} --help: {help_text}"
        );
    }
}
