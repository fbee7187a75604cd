//! The real binary against NetSuite as it really answers (`shared/netsuite-tba-protocol.md`):
//! an account concurrency limit that RESTlet domains enforce with `400
//! SSS_REQUEST_LIMIT_EXCEEDED`, the exact number of calls a rotation costs with no failed login
//! in the account's audit trail, and a `200` page answering `revoketoken`.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::demo;
use netsuite_token_rotator::sim::{Faults, Inspection, Limits, Seed, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");

/// `count` integrations of the demo account, `per_account` NetSuite calls at once per account,
/// each with its own file store, no grace window.
fn fleet_config(base_url: &str, count: usize, per_account: usize) -> String {
    let mut text = format!(
        "[daemon]\nmax_concurrent_rotations = {per_account}\n\
         max_concurrent_per_account = {per_account}\n"
    );
    for index in 0..count {
        let name = format!("int-{index:02}");
        text.push_str(&common::demo_integration_toml(
            base_url,
            &name,
            "IT_PASSWORD",
        ));
    }
    text
}

fn run(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
        .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
        .env("IT_PASSWORD", demo::PASSWORD)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Calls made to the three token services so far.
fn token_calls(seen: &Inspection) -> u64 {
    ["issuetoken", "tokeninfo", "revoketoken"]
        .iter()
        .map(|endpoint| seen.requests(endpoint))
        .sum()
}

/// The account's concurrency limit at 1 and every request holding its slot a while, so that
/// four rotations at once keep running into it: every rotation still succeeds, because the
/// 400s are backed off and retried, and none is taken for a login failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_20_rotates_under_an_account_concurrency_limit_of_1() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    sim.sim()
        .set_limits(Limits {
            concurrency_limit: Some(1),
            latency_ms: 25,
        })
        .unwrap_or_else(|e| panic!("limits: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, fleet_config(&sim.base_url(), 20, 4)).unwrap();

    // Bootstrap, then a rotation that also revokes each replaced token.
    for round in ["bootstrap", "rotation"] {
        let output = run(&config, &["rotate", "--all"]);
        let text = stdout(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{round}: {text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            text.lines()
                .filter(|line| line.contains(": rotated (rotation "))
                .count(),
            20,
            "{round}: {text}"
        );
    }

    let seen = sim.sim().inspect();
    let limited = seen.refused("request_limit_exceeded");
    assert!(
        limited > 0,
        "the limit was never reached, so this test proves nothing: {:?}",
        seen.refused
    );
    eprintln!(
        "fleet of 20, limit 1, 4 at once: {limited} requests refused with 400 \
         SSS_REQUEST_LIMIT_EXCEEDED over {} token-service requests",
        token_calls(&seen)
    );
    assert_eq!(seen.failed_login_count, 0, "{:?}", seen.failed_logins);
    // Every rotation's calls got through in the end: 2 for the bootstrap, 3 for the rotation.
    let answered = token_calls(&seen) - limited;
    assert_eq!(answered, 20 * (2 + 3), "{:?}", seen.requests);
    assert_eq!(seen.active_tokens().count(), 20);
}

/// A routine rotation costs exactly the protocol's calls, none of them meant to fail: 2 for
/// the bootstrap (issuetoken, tokeninfo), then 3 (issuetoken, tokeninfo, revoketoken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_rotations_cost_2_3_3_3_calls_and_no_failed_login() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, fleet_config(&sim.base_url(), 1, 1)).unwrap();

    let mut costs = Vec::new();
    let mut before = token_calls(&sim.sim().inspect());
    for _ in 0..4 {
        let output = run(&config, &["rotate", "--integration", "int-00"]);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        let after = token_calls(&sim.sim().inspect());
        costs.push(after - before);
        before = after;
    }
    assert_eq!(costs, [2, 3, 3, 3]);
    let seen = sim.sim().inspect();
    assert_eq!(seen.failed_login_count, 0, "{:?}", seen.failed_logins);
    assert!(seen.failed_logins.is_empty());
    assert_eq!(seen.active_tokens().count(), 1);
    assert_eq!(seen.tokens.len(), 4);
}

/// A login page answering `revoketoken` with 200 revokes nothing: the replaced token stays
/// recorded as not revoked (never live and unknown), and a later `revoke` finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_page_answering_revoketoken_leaves_the_token_recorded_until_revoked() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, fleet_config(&sim.base_url(), 1, 1)).unwrap();
    let bootstrap = run(&config, &["rotate", "--integration", "int-00"]);
    assert_eq!(bootstrap.status.code(), Some(0), "{}", stdout(&bootstrap));
    let first = sim.sim().inspect().tokens[0].token_id.clone();

    sim.sim()
        .set_faults(Faults {
            login_page: 1.0,
            endpoints: vec!["revoketoken".into()],
            ..Faults::default()
        })
        .unwrap();
    let rotated = run(&config, &["rotate", "--integration", "int-00"]);
    let text = format!(
        "{}{}",
        stdout(&rotated),
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(text.contains("revocation is not confirmed"), "{text}");
    let seen = sim.sim().inspect();
    assert!(
        seen.token(&first).unwrap().is_active(),
        "nothing revoked it"
    );
    assert_eq!(seen.active_tokens().count(), 2);
    let status = stdout(&run(&config, &["status", "--json"]));
    let status: serde_json::Value = serde_json::from_str(&status).expect("status --json");
    let previous = &status[0]["previous"];
    let shown = format!("{}…{}", &first[..4], &first[first.len() - 4..]);
    assert_eq!(previous["token_id"], shown.as_str(), "{status}");
    assert!(
        previous["revoked_at"].is_null(),
        "the store still calls the replaced token not revoked: {status}"
    );

    sim.sim().set_faults(Faults::default()).unwrap();
    let revoked = run(&config, &["revoke", "--all"]);
    assert_eq!(revoked.status.code(), Some(0), "{}", stdout(&revoked));
    let seen = sim.sim().inspect();
    assert!(!seen.token(&first).unwrap().is_active());
    assert_eq!(seen.active_tokens().count(), 1);
    assert_eq!(seen.failed_login_count, 0, "{:?}", seen.failed_logins);
}

/// The first `issuetoken` installs the integration; an account that requires approval of new
/// integrations then refuses its first token with `consumer_key_refused`. The rotator says
/// that plainly, keeps the token recorded, and finishes the rotation once it is approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_waiting_for_approval_is_named_and_finished_after_approval() {
    let mut seed = Seed::demo();
    seed.accounts[0].require_approval = true;
    seed.accounts[0].integrations[0].installed = false;
    let sim = Simulator::start(seed).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, fleet_config(&sim.base_url(), 1, 1)).unwrap();

    let waiting = run(&config, &["rotate", "--integration", "int-00"]);
    let text = stdout(&waiting);
    assert_eq!(waiting.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Require Approval during Auto-Installation of Integration"),
        "{text}"
    );
    assert!(text.contains("Manage Integrations"), "{text}");
    assert!(
        text.contains("docs/runbook.md#integration-awaiting-approval"),
        "{text}"
    );

    sim.sim().approve(demo::CONSUMER_KEY).unwrap();
    let approved = run(&config, &["rotate", "--integration", "int-00"]);
    assert_eq!(approved.status.code(), Some(0), "{}", stdout(&approved));
    let seen = sim.sim().inspect();
    assert_eq!(
        seen.active_tokens().count(),
        1,
        "the first token was promoted or revoked, not left live and unknown: {:?}",
        seen.tokens
    );
    let status = stdout(&run(&config, &["status", "--json"]));
    let active = &seen.active_tokens().next().unwrap().token_id;
    let shown = format!("{}…{}", &active[..4], &active[active.len() - 4..]);
    assert!(status.contains(&shown), "{status}");
}

/// A current token that NetSuite refuses although no rotation replaced it (a sandbox refresh
/// deletes the sandbox's tokens; someone may revoke it by hand): `verify` names the likely
/// causes and the way back, and `rotate` is that way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_token_revoked_behind_the_rotators_back_is_explained_and_rotated_away() {
    use netsuite_token_rotator::netsuite::{
        AccountId, ClientOptions, Endpoint, NetSuiteClient, TbaCredentials,
    };
    use netsuite_token_rotator::secret::SecretString;

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, fleet_config(&sim.base_url(), 1, 1)).unwrap();
    let bootstrap = run(&config, &["rotate", "--integration", "int-00"]);
    assert_eq!(bootstrap.status.code(), Some(0), "{}", stdout(&bootstrap));

    // What a reader sees, used to revoke the token the way a person or a refresh would.
    let reader: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("store/int-00.json")).unwrap(),
    )
    .unwrap();
    let creds = TbaCredentials {
        consumer_key: SecretString::from(demo::CONSUMER_KEY),
        consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
        token_id: reader["token_id"].as_str().unwrap().to_string(),
        token_secret: SecretString::from(reader["token_secret"].as_str().unwrap()),
    };
    let account = AccountId::parse(demo::ACCOUNT).unwrap();
    let endpoint = Endpoint::for_account(&account, Some(&sim.base_url()));
    NetSuiteClient::new(ClientOptions::default())
        .unwrap()
        .revoke_token(&endpoint, &account, &creds)
        .await
        .unwrap();

    let verified = run(&config, &["verify", "--all"]);
    let text = stdout(&verified);
    assert_eq!(verified.status.code(), Some(1), "{text}");
    assert!(text.contains("sandbox refresh"), "{text}");
    assert!(text.contains("rotate --integration int-00"), "{text}");
    assert!(
        text.contains("docs/runbook.md#current-token-rejected"),
        "{text}"
    );

    let rotated = run(&config, &["rotate", "--integration", "int-00"]);
    assert_eq!(rotated.status.code(), Some(0), "{}", stdout(&rotated));
    let verified = run(&config, &["verify", "--all"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    assert_eq!(sim.sim().inspect().active_tokens().count(), 1);
}
