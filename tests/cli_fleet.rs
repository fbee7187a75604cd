//! `rotate --all` over several integrations of one account: it runs them concurrently under
//! `[daemon]` limits, yet reports every integration once, in config order, and exits 1 when
//! any failed and 0 when none did.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::demo;
use netsuite_token_rotator::sim::{Seed, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");

/// `names` integrations of the demo account; those in `bad_password` log in with a wrong one.
fn fleet_config(base_url: &str, names: &[&str], bad_password: &[&str]) -> String {
    let mut text = String::from(
        "[daemon]\nmax_concurrent_rotations = 3\nmax_concurrent_per_account = 2\n\
         [netsuite]\nmax_attempts = 1\n",
    );
    for name in names {
        let password = if bad_password.contains(name) {
            "IT_WRONG_PASSWORD"
        } else {
            "IT_PASSWORD"
        };
        text.push_str(&common::demo_integration_toml(base_url, name, password));
    }
    text
}

fn rotate_all(config: &Path) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["rotate", "--all"])
        .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
        .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
        .env("IT_PASSWORD", demo::PASSWORD)
        .env("IT_WRONG_PASSWORD", "not the password")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

/// The integration name each stdout line starts with, in order.
fn reported_names(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split(':').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_all_reports_every_integration_in_config_order_with_the_right_exit_code() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let names = [
        "int-a", "int-b", "int-c", "int-d", "int-e", "int-f", "int-g",
    ];

    std::fs::write(&config, fleet_config(&sim.base_url(), &names, &["int-c"])).unwrap();
    let mixed = rotate_all(&config);
    let stdout = String::from_utf8_lossy(&mixed.stdout).to_string();
    assert_eq!(
        mixed.status.code(),
        Some(1),
        "one failure exits 1: {stdout}"
    );
    assert_eq!(
        reported_names(&mixed),
        names,
        "one line each, config order: {stdout}"
    );
    for line in stdout.lines() {
        let expected = if line.starts_with("int-c:") {
            "rotation failed"
        } else {
            ": rotated (rotation "
        };
        assert!(line.contains(expected), "{line}");
    }

    std::fs::write(&config, fleet_config(&sim.base_url(), &names, &[])).unwrap();
    let clean = rotate_all(&config);
    let stdout = String::from_utf8_lossy(&clean.stdout).to_string();
    assert_eq!(clean.status.code(), Some(0), "no failure exits 0: {stdout}");
    assert_eq!(reported_names(&clean), names, "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|line| line.contains(": rotated (rotation ")),
        "{stdout}"
    );
}
