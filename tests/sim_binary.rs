//! The `netsuite-sim` binary: starts on a free port, announces itself in one stdout line,
//! serves, and exits cleanly on SIGTERM without logging a seeded secret.

use std::process::Stdio;

use netsuite_token_rotator::sim::demo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const LINE_PREFIX: &str = "netsuite-sim listening on ";

/// Starts the binary and returns it with the base URL from its announcement line.
async fn launch(args: &[&str]) -> (Child, String, BufReader<tokio::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netsuite-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("netsuite-sim starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    let base = line
        .trim_end()
        .strip_prefix(LINE_PREFIX)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    (child, base, stdout)
}

async fn terminate(mut child: Child) -> (std::process::ExitStatus, String) {
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    (child.wait().await.unwrap(), stderr)
}

#[tokio::test]
async fn binary_announces_serves_and_stops_on_sigterm() {
    let (child, base, mut stdout) = launch(&[]).await;
    let answer = reqwest::get(format!(
        "{base}/rest/datacenterurls?account={}",
        demo::ACCOUNT
    ))
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["restDomain"], base.as_str());

    let (status, stderr) = terminate(child).await;
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "", "only one line goes to stdout");
    assert!(!stderr.contains(demo::PASSWORD));
    assert!(!stderr.contains(demo::CONSUMER_SECRET));
}

#[tokio::test]
async fn single_account_flags_replace_the_demo_account() {
    let secret = "flag-given-consumer-secret";
    let (child, base, _stdout) = launch(&[
        "--account",
        "999_SB1",
        "--consumer-key",
        "flag-key",
        "--consumer-secret",
        secret,
    ])
    .await;
    let known = reqwest::get(format!("{base}/rest/datacenterurls?account=999_SB1"))
        .await
        .unwrap();
    assert_eq!(known.status(), 200);
    let demo_gone = reqwest::get(format!(
        "{base}/rest/datacenterurls?account={}",
        demo::ACCOUNT
    ))
    .await
    .unwrap();
    assert_eq!(demo_gone.status(), 400);
    let (status, stderr) = terminate(child).await;
    assert!(status.success());
    assert!(!stderr.contains(secret));
}

#[tokio::test]
async fn example_seed_file_loads() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim-seed.example.toml");
    let (child, base, _stdout) = launch(&["--seed", seed]).await;
    let answer = reqwest::get(format!("{base}/rest/datacenterurls?account=7654321_SB2"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (status, stderr) = terminate(child).await;
    assert!(status.success());
    assert!(!stderr.contains("correct horse"));
}

#[tokio::test]
async fn a_bad_seed_file_exits_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.toml");
    std::fs::write(
        &path,
        "[[accounts]]\nid = 'x'\ncompany_name = 'c'\nfavourite = 'hunter2'\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_netsuite-sim"))
        .args(["--listen", "127.0.0.1:0", "--seed"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("favourite"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// `--concurrency-limit` and `--latency-ms` set the account concurrency limit at start, as
/// `/sim/limits` shows; a limit of 0 is refused.
#[tokio::test]
async fn limit_flags_set_the_account_concurrency_limit() {
    let (child, base, _stdout) = launch(&["--concurrency-limit", "3", "--latency-ms", "7"]).await;
    let limits = reqwest::get(format!("{base}/sim/limits"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let limits: serde_json::Value = serde_json::from_str(&limits).unwrap();
    assert_eq!(
        limits,
        serde_json::json!({"concurrency_limit": 3, "latency_ms": 7})
    );
    let (status, _) = terminate(child).await;
    assert!(status.success());

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_netsuite-sim"))
        .args(["--listen", "127.0.0.1:0", "--concurrency-limit", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("concurrency-limit"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
