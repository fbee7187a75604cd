//! Chaos: the real daemon (`run`) rotating ten integrations on a one-second schedule against the
//! simulator injecting 20% faults (5xx, `400 SSS_REQUEST_LIMIT_EXCEEDED` rate limits, timeouts,
//! resets, garbage bodies, some of them after the token was created or revoked), with the AWS store on moto_server restarted at random
//! moments and the daemon SIGKILLed at random moments and restarted. After every kill, after the
//! last clean run, the design's invariants are checked against the simulator's inspection and
//! the store:
//! - every current token passes `tokeninfo` (else it is a *lost* token);
//! - every live token in NetSuite is current, pending, previous not yet revoked, named by an
//!   intent still in the store (the next start reports it), or named in an orphan alert from the
//!   daemon's JSON logs (else it is *unaccounted*).
//!
//! Size: CI runs `CI_ROTATIONS` rotations and `CI_KILLS` kills; `CHAOS_SOAK=1` runs the design's
//! 1,000 rotations and 100 kills (`CHAOS_ROTATIONS` / `CHAOS_KILLS` override either). The figures
//! are printed as one `chaos figures:` line for docs/reliability.md.
//! "Random moments" are random counts of daemon log lines, so no sleep stands in for a moment.

mod common;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/rotator.rs"]
mod rotator;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{demo, test_client_options};
use netsuite_token_rotator::netsuite::{AccountId, Endpoint, NetSuiteClient, TbaCredentials};
use netsuite_token_rotator::secret::SecretString;
use netsuite_token_rotator::sim::{Faults, Seed, Simulator};
use netsuite_token_rotator::store::SecretStore;
use rand::{Rng, SeedableRng};

const INTEGRATIONS: usize = 10;
const CI_ROTATIONS: usize = 150;
const CI_KILLS: usize = 12;

fn size() -> (usize, usize) {
    let soak = std::env::var_os("CHAOS_SOAK").is_some();
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rotations, kills) = if soak {
        (1_000, 100)
    } else {
        (CI_ROTATIONS, CI_KILLS)
    };
    (
        number("CHAOS_ROTATIONS", rotations),
        number("CHAOS_KILLS", kills),
    )
}

fn faults(seed: u64) -> Faults {
    Faults {
        server_error: 0.05,
        rate_limit: 0.04,
        timeout: 0.03,
        reset: 0.04,
        garbage: 0.04,
        after_processing_rate: 0.5,
        timeout_hold_ms: 2_500,
        rng_seed: Some(seed),
        ..Faults::default()
    }
}

fn secret_id(i: usize) -> String {
    format!("netsuite/chaos-{i}")
}

fn config_text(base_url: &str, moto_url: &str) -> String {
    let mut text = String::from(
        r#"
[daemon]
listen = "127.0.0.1:0"
shutdown_grace = "5s"
max_concurrent_rotations = 10
max_concurrent_per_account = 10
[telemetry]
log_format = "json"
[netsuite]
timeout = "1s"
max_attempts = 3
"#,
    );
    for i in 0..INTEGRATIONS {
        text.push_str(&format!(
            r#"
[[integrations]]
name = "chaos-{i}"
account_id = "{account}"
endpoint = "{base_url}"
consumer_key = {{ env = "IT_CONSUMER_KEY" }}
consumer_secret = {{ env = "IT_CONSUMER_SECRET" }}
schedule = "* * * * * *"
revoke_after = "2s"
token_name_prefix = "chaos-{i}"
[integrations.login]
email = "{email}"
password = {{ env = "IT_PASSWORD" }}
role = "{role}"
[integrations.store]
kind = "aws"
secret_id = "{secret}"
region = "{region}"
endpoint_url = "{moto_url}"
"#,
            account = demo::ACCOUNT,
            email = demo::EMAIL,
            role = demo::ROLE_ID,
            secret = secret_id(i),
            region = moto::REGION,
        ));
    }
    text
}

/// The daemon, with credentials for moto_server and nothing read from this machine's AWS
/// set-up.
fn start_daemon(config: &Path) -> rotator::Daemon {
    let mut command = rotator::command(config, demo::PASSWORD);
    moto::fake_credentials_for(&mut command);
    rotator::Daemon::start(command)
}

/// A TCP forwarder between the daemon and moto_server that can shut: while moto restarts and
/// replays its recording, the daemon's connections are refused, so the daemon sees a store that
/// is down and then back with its data, never a half-restored one (which real AWS never shows).
struct StoreGate {
    address: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StoreGate {
    async fn start(upstream: String) -> StoreGate {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let gate = open.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !gate.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        StoreGate { address, open }
    }

    /// Restarts moto with the gate shut; connections open through the gate die with moto.
    fn restart_store(&self, moto: &mut moto::MotoServer) {
        use std::sync::atomic::Ordering;
        self.open.store(false, Ordering::SeqCst);
        moto.restart();
        self.open.store(true, Ordering::SeqCst);
    }
}

/// What the log lines of all runs told.
#[derive(Default)]
struct Tally {
    /// Every log line of every run, for the failure message.
    lines: Vec<String>,
    rotations: usize,
    orphan_names: BTreeSet<String>,
    promoted_per_integration: BTreeMap<String, usize>,
}

impl Tally {
    fn read(&mut self, line: &str) {
        self.lines.push(line.to_string());
        if line.contains("token promoted to current") {
            self.rotations += 1;
            if let Some(name) = json_field(line, "integration") {
                *self.promoted_per_integration.entry(name).or_default() += 1;
            }
        }
        if line.contains("suspected orphan token")
            && let Some(name) = json_field(line, "token_name")
        {
            self.orphan_names.insert(name);
        }
    }
}

impl Tally {
    /// The log lines about the rotations behind the violating tokens.
    fn story(&self, violations: &Violations) -> String {
        let ids: Vec<&str> = violations
            .unaccounted
            .iter()
            .filter_map(|t| t.rsplit_once('(').map(|(_, n)| n.trim_end_matches(')')))
            .filter_map(|name| name.get(name.len().saturating_sub(36)..))
            .collect();
        self.lines
            .iter()
            .filter(|l| {
                ids.iter().any(|id| l.contains(id)) || l.contains("\"WARN\"") || l.contains("ERROR")
            })
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A string field anywhere in a JSON log line (top level, `fields` or `span`).
fn json_field(line: &str, key: &str) -> Option<String> {
    fn find(value: &serde_json::Value, key: &str) -> Option<String> {
        match value {
            serde_json::Value::Object(map) => map
                .get(key)
                .and_then(|v| v.as_str().map(str::to_string))
                .or_else(|| map.values().find_map(|v| find(v, key))),
            _ => None,
        }
    }
    find(&serde_json::from_str(line).ok()?, key)
}

#[derive(Default, Debug)]
struct Violations {
    lost: Vec<String>,
    unaccounted: Vec<String>,
}

/// Checks the invariants with the daemon stopped and the faults off.
async fn check_invariants(
    sim: &netsuite_token_rotator::sim::SimHandle,
    moto: &moto::MotoServer,
    tally: &Tally,
    client: &NetSuiteClient,
) -> Violations {
    let account = AccountId::parse(demo::ACCOUNT).unwrap();
    let endpoint = Endpoint::for_account(&account, Some(&sim.base_url()));
    let mut known = BTreeSet::new();
    let mut intent_names = BTreeSet::new();
    let mut violations = Violations::default();
    for i in 0..INTEGRATIONS {
        let store = moto.store(&secret_id(i)).await;
        let Ok(state) = store.load().await else {
            // Never written yet: the daemon was killed before its first write to this secret.
            continue;
        };
        if let Some(current) = &state.current {
            let creds = TbaCredentials {
                consumer_key: SecretString::from(demo::CONSUMER_KEY),
                consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
                token_id: current.id().to_string(),
                token_secret: current.as_tba().unwrap().token_secret.clone(),
            };
            if client
                .token_info(&endpoint, &account, &creds)
                .await
                .is_err()
            {
                violations
                    .lost
                    .push(format!("chaos-{i}: current {}", current.id()));
            }
            known.insert(current.id().to_string());
        }
        known.extend(state.pending.iter().map(|p| p.id().to_string()));
        if let Some(previous) = state.previous.as_ref().filter(|p| p.revoked_at.is_none()) {
            known.insert(previous.token.id().to_string());
        }
        intent_names.extend(state.intent.iter().map(|i| i.token_name.clone()));
    }
    for token in sim.sim().inspect().tokens.iter().filter(|t| t.is_active()) {
        let accounted = known.contains(&token.token_id)
            || intent_names.contains(&token.name)
            || tally.orphan_names.contains(&token.name);
        if !accounted {
            violations
                .unaccounted
                .push(format!("{} ({})", token.token_id, token.name));
        }
    }
    violations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_integrations_rotate_through_faults_kills_and_store_restarts() {
    let (target_rotations, target_kills) = size();
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos seed {seed} (CHAOS_SEED={seed} reruns this schedule of kills)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let mut moto = moto::MotoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let gate = StoreGate::start(format!("127.0.0.1:{}", moto.port())).await;
    std::fs::write(&config, config_text(&sim.base_url(), &gate.address)).unwrap();
    let client = NetSuiteClient::new(test_client_options()).unwrap();

    let mut tally = Tally::default();
    let mut kills = 0;
    let mut store_restarts = 0;
    let mut checks = 0;
    let store_restarts_on = std::env::var_os("CHAOS_NO_STORE_RESTARTS").is_none();
    // Spread the kills over the rotations: each run lasts a random number of log lines whose
    // mean makes the kills and the rotations end together.
    let lines_per_rotation = 6;
    let mean_run_lines = (target_rotations * lines_per_rotation / (target_kills + 1)).max(4);
    while kills < target_kills {
        sim.sim().set_faults(faults(rng.random())).unwrap();
        let daemon = start_daemon(&config);
        let run_lines = rng.random_range(1..=2 * mean_run_lines);
        let restart_store_at =
            (rng.random_bool(0.25) && store_restarts_on).then(|| rng.random_range(1..=run_lines));
        for n in 1..=run_lines {
            let Some(line) = daemon.next_line() else {
                panic!("the daemon went quiet or exited during chaos run {kills}");
            };
            tally.read(&line);
            if restart_store_at == Some(n) {
                tally.lines.push(format!("STORE RESTART after {n} lines"));
                gate.restart_store(&mut moto);
                store_restarts += 1;
            }
        }
        // SIGKILL: no drain, no clean-up.
        drop(daemon);
        kills += 1;
        sim.sim().set_faults(Faults::default()).unwrap();
        let violations = check_invariants(&sim, &moto, &tally, &client).await;
        checks += 1;
        if !violations.unaccounted.is_empty() {
            for i in 0..INTEGRATIONS {
                let versions = moto
                    .client()
                    .list_secret_version_ids()
                    .secret_id(secret_id(i))
                    .include_deprecated(true)
                    .send()
                    .await;
                let labels: Vec<String> = versions
                    .map(|v| {
                        v.versions()
                            .iter()
                            .map(|v| format!("{:?}={:?}", v.version_id(), v.version_stages()))
                            .collect()
                    })
                    .unwrap_or_default();
                eprintln!("chaos-{i}: {labels:?}");
            }
        }
        if let Some(path) = std::env::var_os("CHAOS_LOG") {
            std::fs::write(path, tally.lines.join("\n")).unwrap();
        }
        assert!(
            violations.lost.is_empty() && violations.unaccounted.is_empty(),
            "after kill {kills} ({store_restarts} store restarts): {violations:?}\n{}",
            tally.story(&violations)
        );
    }

    // A last clean run: no faults; it recovers whatever the last kill left and rotates every
    // integration at least once more, then drains on SIGTERM.
    let daemon = start_daemon(&config);
    let before = tally.promoted_per_integration.clone();
    let mut settled = BTreeSet::new();
    while settled.len() < INTEGRATIONS || tally.rotations < target_rotations {
        let line = daemon
            .next_line()
            .expect("the clean run keeps logging until every integration rotated");
        tally.read(&line);
        for (name, count) in &tally.promoted_per_integration {
            if *count > before.get(name).copied().unwrap_or(0) + 1 {
                settled.insert(name.clone());
            }
        }
    }
    daemon.signal("TERM");
    let mut daemon = daemon;
    while let Some(line) = daemon.next_line() {
        tally.read(&line);
    }
    assert_eq!(
        daemon.child.wait().unwrap().code(),
        Some(0),
        "SIGTERM drains"
    );
    let violations = check_invariants(&sim, &moto, &tally, &client).await;
    checks += 1;

    let inspection = sim.sim().inspect();
    let faults_injected: u64 = inspection.faults_injected.values().sum();
    let after_processing: u64 = inspection.faults_after_processing.values().sum();
    let requests: u64 = inspection.requests.values().sum();
    println!(
        "chaos figures: integrations={INTEGRATIONS} rotations={} requests={requests} \
         faults_injected={faults_injected} ({:?}) after_processing={after_processing} kills={kills} \
         store_restarts={store_restarts} invariant_checks={checks} orphans_alerted={} \
         tokens_issued={} lost={} unaccounted={}",
        tally.rotations,
        inspection.faults_injected,
        tally.orphan_names.len(),
        inspection.tokens.len(),
        violations.lost.len(),
        violations.unaccounted.len(),
    );
    assert!(violations.lost.is_empty(), "{violations:?}");
    assert!(violations.unaccounted.is_empty(), "{violations:?}");
    assert!(faults_injected > 0, "the run injected no fault");
    assert!(tally.rotations >= target_rotations);
}
