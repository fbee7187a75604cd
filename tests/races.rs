//! Races between real daemons: two and three `run` processes share one store (an AWS secret on
//! moto_server, a Vault KV v2 path on a real OpenBao server) and one integration
//! whose schedule fires at the same second in every process (every two seconds). The store's
//! check-and-set must let exactly one of them run each rotation:
//! - no rotation id is promoted twice (counted in the daemons' JSON logs and in the simulator,
//!   where each rotation's token name carries its id);
//! - afterwards the store holds one current token that passes `tokeninfo`, and every live
//!   token in NetSuite is that one or one the store still tracks.
//!
//! And an operator's `rotate` beside a running daemon, on a file store.

mod common;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/openbao.rs"]
mod openbao;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{demo, test_client_options};
use netsuite_token_rotator::netsuite::{AccountId, Endpoint, NetSuiteClient, TbaCredentials};
use netsuite_token_rotator::secret::{SecretRef, SecretString};
use netsuite_token_rotator::sim::{Seed, SimHandle, Simulator};
use netsuite_token_rotator::store::SecretStore;
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStoreConfig};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");
const VAULT_TOKEN: &str = "races-test-token";
/// Promotions to watch before stopping the daemons.
const PROMOTIONS: usize = 6;
/// Longest wait for the next log line: a bound that fails a hung daemon, not a timing check.
const LINE_BOUND: Duration = Duration::from_secs(90);

fn config_text(base_url: &str, store: &str) -> String {
    format!(
        r#"
[daemon]
listen = "127.0.0.1:0"
shutdown_grace = "5s"
[telemetry]
log_format = "json"
[[integrations]]
name = "shared"
account_id = "{account}"
endpoint = "{base_url}"
consumer_key = {{ env = "IT_CONSUMER_KEY" }}
consumer_secret = {{ env = "IT_CONSUMER_SECRET" }}
schedule = "*/2 * * * * *"
revoke_after = "0s"
token_name_prefix = "race"
[integrations.login]
email = "{email}"
password = {{ env = "IT_PASSWORD" }}
role = "{role}"
{store}
"#,
        account = demo::ACCOUNT,
        email = demo::EMAIL,
        role = demo::ROLE_ID,
    )
}

/// Several daemons whose stderr lines arrive on one channel, tagged with the daemon's index.
struct Daemons {
    children: Vec<Child>,
    lines: mpsc::Receiver<(usize, String)>,
}

impl Daemons {
    fn start(config: &Path, count: usize) -> Daemons {
        let (tx, lines) = mpsc::channel();
        let children = (0..count)
            .map(|index| {
                let mut command = Command::new(BIN);
                moto::fake_credentials_for(&mut command);
                let mut child = command
                    .arg("--config")
                    .arg(config)
                    .arg("run")
                    .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
                    .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
                    .env("IT_PASSWORD", demo::PASSWORD)
                    .env("IT_VAULT_TOKEN", VAULT_TOKEN)
                    .env("RUST_LOG", "info")
                    .env_remove("NOTIFY_SOCKET")
                    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("daemon starts");
                let stderr = child.stderr.take().unwrap();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        if tx.send((index, line)).is_err() {
                            break;
                        }
                    }
                });
                child
            })
            .collect();
        Daemons { children, lines }
    }

    /// Reads lines until `promotions` promotions were logged; returns rotation id -> daemons.
    fn watch(&self, promotions: usize) -> (BTreeMap<String, Vec<usize>>, usize) {
        let mut promoted: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut total = 0;
        let mut conflicts = 0;
        while total < promotions {
            let (index, line) = self
                .lines
                .recv_timeout(LINE_BOUND)
                .expect("the daemons keep rotating");
            if line.contains("token promoted to current") {
                let id = rotation_id(&line).expect("a promotion names its rotation");
                promoted.entry(id).or_default().push(index);
                total += 1;
            }
            // The losers of a collision: their step fails on the store's check-and-set.
            if line.contains("job step failed") {
                conflicts += 1;
            }
        }
        (promoted, conflicts)
    }

    fn stop(mut self) {
        for child in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.children {
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(0), "SIGTERM drains and exits 0");
        }
        self.children.clear();
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn rotation_id(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["fields"]["rotation_id"].as_str().map(str::to_string)
}

/// The invariants after the race, and the sim's view: no token name issued twice.
async fn assert_one_current(sim: &SimHandle, store: &dyn SecretStore) {
    let state = store.load().await.expect("store readable");
    let current = state.current.expect("a current token after the race");
    let account = AccountId::parse(demo::ACCOUNT).unwrap();
    let endpoint = Endpoint::for_account(&account, Some(&sim.base_url()));
    let creds = TbaCredentials {
        consumer_key: SecretString::from(demo::CONSUMER_KEY),
        consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
        token_id: current.id().to_string().clone(),
        token_secret: current.as_tba().unwrap().token_secret.clone(),
    };
    let client = NetSuiteClient::new(test_client_options()).unwrap();
    client
        .token_info(&endpoint, &account, &creds)
        .await
        .expect("the current token passes tokeninfo");

    let inspection = sim.sim().inspect();
    let mut names = BTreeSet::new();
    for token in &inspection.tokens {
        assert!(
            names.insert(token.name.clone()),
            "token name {} issued twice",
            token.name
        );
    }
    let mut tracked = BTreeSet::from([current.id().to_string().clone()]);
    tracked.extend(state.pending.iter().map(|p| p.id().to_string().clone()));
    if let Some(p) = state.previous.filter(|p| p.revoked_at.is_none()) {
        tracked.insert(p.token.id().to_string());
    }
    for token in inspection.tokens.iter().filter(|t| t.is_active()) {
        assert!(
            tracked.contains(&token.token_id),
            "live token {} is not the store's current one nor tracked by it",
            token.name
        );
    }
}

async fn race(sim: &SimHandle, config: &Path, daemons: usize, store: &dyn SecretStore) {
    let running = Daemons::start(config, daemons);
    let (promoted, conflicts) = running.watch(PROMOTIONS);
    running.stop();
    let twice: Vec<_> = promoted.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "rotations promoted more than once: {twice:?}"
    );
    let daemons_that_promoted: BTreeSet<usize> = promoted.values().flatten().copied().collect();
    println!(
        "race of {daemons} daemons: {} rotations, each promoted once, by daemons {daemons_that_promoted:?}; {conflicts} runs lost a collision",
        promoted.len()
    );
    assert_one_current(sim, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_daemons_on_one_aws_secret_never_rotate_twice() {
    let moto = moto::MotoServer::start();
    for daemons in [2, 3] {
        let sim = Simulator::start(Seed::demo()).await.unwrap();
        let secret = format!("netsuite/race-{daemons}");
        let store_toml = format!(
            "[integrations.store]\nkind = \"aws\"\nsecret_id = \"{secret}\"\nregion = \"{}\"\nendpoint_url = \"{}\"\n",
            moto::REGION,
            moto.endpoint_url()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text(&sim.base_url(), &store_toml)).unwrap();
        let store = moto.store(&secret).await;
        race(&sim, &config, daemons, &store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_daemons_on_one_vault_kv2_path_never_rotate_twice() {
    let vault = openbao::OpenBao::start_with_root_token(VAULT_TOKEN).await;
    for daemons in [2, 3] {
        let sim = Simulator::start(Seed::demo()).await.unwrap();
        let path = format!("netsuite/race-{daemons}");
        let store_toml = format!(
            "[integrations.store]\nkind = \"vault\"\naddress = \"{}\"\nmount = \"{}\"\npath = \"{path}\"\nkv_version = 2\nauth = {{ method = \"token\", token = {{ env = \"IT_VAULT_TOKEN\" }} }}\n",
            vault.address, "secret"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text(&sim.base_url(), &store_toml)).unwrap();
        let store = netsuite_token_rotator::store::vault::connect(&VaultStoreConfig {
            address: vault.address.clone(),
            mount: "secret".to_string(),
            path: path.clone(),
            kv_version: 2,
            namespace: None,
            ca_cert: None,
            auth: VaultAuth::Token {
                token: SecretRef::Literal(VAULT_TOKEN.into()),
            },
        })
        .await
        .unwrap();
        race(&sim, &config, daemons, &store).await;
    }
}

/// An operator's `rotate --all` while the daemon rotates the same store every two seconds (a
/// file store here: the check-and-set is the store's own). Every operator run either rotates
/// or is refused with exit 1 because a rotation is in progress or the previous token is
/// still to be revoked; no rotation is promoted twice; the invariants hold afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_rotate_while_the_daemon_runs_is_decided_by_the_store() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("shared.json");
    let config = dir.path().join("config.toml");
    let store_table = format!(
        "[integrations.store]\nkind = \"file\"\npath = {:?}\n",
        store_path
    );
    std::fs::write(&config, config_text(&sim.base_url(), &store_table)).unwrap();

    let daemon = Daemons::start(&config, 1);
    daemon.watch(1);
    let mut operator_rotations = 0;
    for _ in 0..4 {
        let output = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["rotate", "--all"])
            .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
            .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
            .env("IT_PASSWORD", demo::PASSWORD)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        match output.status.code() {
            Some(0) => operator_rotations += 1,
            Some(1) => assert!(
                text.contains("in progress") || text.contains("grace window"),
                "refused for another reason: {text}"
            ),
            other => panic!("rotate exited {other:?}: {text}"),
        }
    }
    let (promoted, _) = daemon.watch(2);
    daemon.stop();
    let twice: Vec<_> = promoted.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "promoted more than once: {twice:?}");
    println!("operator: {operator_rotations} of 4 runs rotated beside the daemon");
    let store = netsuite_token_rotator::store::file::FileStore::new(
        &netsuite_token_rotator::store::file::FileStoreConfig { path: store_path },
    );
    assert_one_current(&sim, &store).await;
}
