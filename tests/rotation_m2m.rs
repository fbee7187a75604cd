//! M2M (OAuth 2.0 client-credentials) integrations against the simulator: bootstrap by import,
//! rotations through the certificate endpoint, every failing step, the five-certificate limit,
//! an expired certificate, and (with the real binary) a kill between any two steps and bad
//! `import` input. The invariants are the TBA ones: the store's current certificate gets an
//! access token, and every active certificate is current, previous inside its grace window,
//! pending, or named in an orphan report.

mod common;
#[path = "support/rotator.rs"]
mod rotator;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{FaultyStore, M2M_READER_KEYS, Recorder, admin_upload, demo, test_client_options};
use netsuite_token_rotator::cli::demo::demo_m2m_integration;
use netsuite_token_rotator::netsuite::NetSuiteClient;
use netsuite_token_rotator::netsuite::m2m::{KeyKind, NewCertificate};
use netsuite_token_rotator::rotation::{Engine, Event, RotationError};
use netsuite_token_rotator::secret::ExposeSecret;
use netsuite_token_rotator::sim::{Faults, Seed, SimHandle, Simulator};
use netsuite_token_rotator::store::file::{FileStore, FileStoreConfig};
use netsuite_token_rotator::store::{
    CertificateRecord, CredentialRecord, SecretStore, StoreErrorKind, StoreState,
};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");

fn active_certificates(sim: &SimHandle) -> BTreeSet<String> {
    sim.sim()
        .inspect()
        .certificates
        .iter()
        .filter(|c| c.is_active())
        .map(|c| c.id.clone())
        .collect()
}

struct Rig {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    store: Arc<FaultyStore>,
    events: Arc<Recorder>,
    engine: Engine,
}

impl Rig {
    async fn new(revoke_after: Duration) -> Rig {
        let sim = Simulator::start(Seed::demo()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::new(&FileStoreConfig {
            path: dir.path().join("erp-m2m.json"),
        });
        let store = Arc::new(FaultyStore::new(Arc::new(file)));
        let events = Arc::new(Recorder::default());
        let engine = Engine::new(
            Arc::new(demo_m2m_integration(&sim.base_url(), revoke_after)),
            NetSuiteClient::new(test_client_options()).unwrap(),
            store.clone(),
            events.clone(),
        );
        Rig {
            sim,
            _dir: dir,
            store,
            events,
            engine,
        }
    }

    /// A rig whose store holds the administrator's first certificate, imported.
    async fn imported(revoke_after: Duration) -> (Rig, String) {
        let rig = Rig::new(revoke_after).await;
        let (id, made) = admin_upload(&rig.sim, KeyKind::EcP256);
        rig.engine
            .import_certificate(id.clone(), made.private_key, Some(made.certificate))
            .await
            .expect("import proves the certificate with a token exchange");
        (rig, id)
    }

    async fn state(&self) -> StoreState {
        self.store.load().await.unwrap()
    }

    fn faults(&self, endpoint: &str, faults: Faults) {
        self.sim
            .sim()
            .set_faults(Faults {
                endpoints: vec![endpoint.to_string()],
                rng_seed: Some(7),
                ..faults
            })
            .unwrap();
    }

    fn heal(&self) {
        self.sim.sim().set_faults(Faults::default()).unwrap();
        self.store.heal();
    }

    /// The invariants: the current certificate gets an access token, and every active
    /// certificate is current, an unrevoked previous, pending, or named as an orphan.
    async fn assert_invariants(&self) {
        let state = self.state().await;
        self.engine
            .verify_current()
            .await
            .expect("the store's current certificate gets an access token");
        let mut known: BTreeSet<String> = BTreeSet::new();
        known.extend(state.current.iter().map(|c| c.id().to_string()));
        known.extend(state.pending.iter().map(|c| c.id().to_string()));
        if let Some(p) = state.previous.as_ref().filter(|p| p.revoked_at.is_none()) {
            known.insert(p.token.id().to_string());
        }
        let orphans: BTreeSet<String> = self
            .events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::OrphanSuspected {
                    token_id: Some(id), ..
                } => Some(id.clone()),
                _ => None,
            })
            .collect();
        for id in active_certificates(&self.sim) {
            assert!(
                known.contains(&id) || orphans.contains(&id),
                "active certificate {id} is neither in the store nor named as an orphan: {state:?}"
            );
        }
    }
}

fn current_m2m(state: &StoreState) -> &CertificateRecord {
    state
        .current
        .as_ref()
        .and_then(CredentialRecord::as_m2m)
        .expect("a current certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_by_import_then_three_rotations_leave_one_active_certificate() {
    let (rig, first) = Rig::imported(Duration::ZERO).await;
    let state = rig.state().await;
    let imported = current_m2m(&state);
    assert_eq!(imported.certificate_id, first);
    assert_eq!(imported.algorithm, "ES256");
    assert!(
        imported.not_after.is_some(),
        "expiry read from the certificate"
    );

    let mut seen = BTreeSet::from([first.clone()]);
    for n in 1..=3 {
        let rotated = rig.engine.rotate().await.expect("rotation");
        assert!(
            seen.insert(rotated.token_id.clone()),
            "rotation {n}: a new ID"
        );
        assert_eq!(
            active_certificates(&rig.sim),
            BTreeSet::from([rotated.token_id.clone()]),
            "rotation {n}: only the new certificate is active (no grace window)"
        );
        rig.assert_invariants().await;
    }
    let inspection = rig.sim.sim().inspect();
    assert_eq!(inspection.certificates.len(), 4);
    assert!(
        inspection
            .certificates
            .iter()
            .filter(|c| c.id != first)
            .all(|c| c.entity == demo::ENTITY_ID && c.role == demo::ROLE_ID),
        "every rotation uploads for the configured mapping"
    );

    // What readers see: exactly the documented keys, the key and certificate in PEM.
    let reader: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rig._dir.path().join("erp-m2m.json")).unwrap())
            .unwrap();
    let keys: BTreeSet<&str> = reader
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(M2M_READER_KEYS));
    assert!(
        reader["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        reader["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(reader["client_id"], demo::M2M_CLIENT_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_window_keeps_the_previous_certificate_until_it_is_revoked() {
    let (rig, first) = Rig::imported(Duration::from_secs(3600)).await;
    let rotated = rig.engine.rotate().await.unwrap();
    assert_eq!(
        active_certificates(&rig.sim),
        BTreeSet::from([first.clone(), rotated.token_id.clone()])
    );
    // Another rotation would replace the previous one before its revocation: refused.
    let err = rig.engine.rotate().await.unwrap_err();
    assert!(
        matches!(err, RotationError::PreviousInGrace { .. }),
        "{err}"
    );
    rig.engine.revoke_due(true).await.unwrap();
    assert_eq!(
        active_certificates(&rig.sim),
        BTreeSet::from([rotated.token_id])
    );
    rig.assert_invariants().await;
}

/// Each NetSuite call of a rotation failing: the current certificate stays, and nothing is
/// left active that the store does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failing_netsuite_step_leaves_the_current_certificate_and_nothing_unknown() {
    for endpoint in ["token", "certificates", "certificate_add"] {
        let (rig, first) = Rig::imported(Duration::ZERO).await;
        rig.faults(
            endpoint,
            Faults {
                server_error: 1.0,
                ..Faults::default()
            },
        );
        let err = rig.engine.rotate().await.unwrap_err();
        assert!(err.is_transient(), "{endpoint}: {err}");
        let state = rig.state().await;
        assert_eq!(current_m2m(&state).certificate_id, first, "{endpoint}");
        assert!(
            state.intent.is_none() && state.pending.is_none(),
            "{endpoint}"
        );
        assert_eq!(
            active_certificates(&rig.sim),
            BTreeSet::from([first.clone()]),
            "{endpoint}: nothing was added"
        );
        assert_eq!(
            rig.events.orphan_names(),
            Vec::<String>::new(),
            "{endpoint}"
        );
        rig.heal();
        rig.engine.rotate().await.expect("the next run rotates");
        rig.assert_invariants().await;
    }
}

/// The upload's answer is lost after NetSuite took it: the listing finds the new
/// certificate, and the rotation goes on with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_is_lost_is_found_by_listing() {
    let (rig, first) = Rig::imported(Duration::ZERO).await;
    rig.faults(
        "certificate_add",
        Faults {
            reset: 1.0,
            after_processing_rate: 1.0,
            ..Faults::default()
        },
    );
    let rotated = rig.engine.rotate().await.expect("rotation goes on");
    assert_ne!(rotated.token_id, first);
    assert_eq!(
        active_certificates(&rig.sim),
        BTreeSet::from([rotated.token_id])
    );
    rig.heal();
    rig.assert_invariants().await;
}

/// NetSuite's answer to an upload is not published: one without the ID (or a 204) is
/// resolved by listing before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_answer_without_an_id_is_resolved_by_listing() {
    use netsuite_token_rotator::sim::{AddAnswer, M2mAnswers};
    for answer in [AddAnswer::WithoutId, AddAnswer::NoContent] {
        let (rig, _) = Rig::imported(Duration::ZERO).await;
        rig.sim
            .sim()
            .set_m2m_answers(M2mAnswers { add_answer: answer });
        let rotated = rig.engine.rotate().await.expect("rotation");
        assert_eq!(
            active_certificates(&rig.sim),
            BTreeSet::from([rotated.token_id])
        );
        rig.assert_invariants().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_revoke_the_new_certificate_or_keep_it_pending_for_the_next_run() {
    // Staging fails for good: the new certificate is revoked at once.
    let (rig, first) = Rig::imported(Duration::ZERO).await;
    rig.store.fail("stage_pending", StoreErrorKind::Failed);
    rig.engine.rotate().await.unwrap_err();
    assert_eq!(active_certificates(&rig.sim), BTreeSet::from([first]));
    assert_eq!(rig.sim.sim().inspect().certificates.len(), 2);
    rig.heal();
    rig.assert_invariants().await;

    // Promotion fails: the verified certificate stays pending, and the next run promotes it.
    let (rig, _) = Rig::imported(Duration::ZERO).await;
    rig.store.fail("promote", StoreErrorKind::Unavailable);
    rig.engine.rotate().await.unwrap_err();
    let pending = rig
        .state()
        .await
        .pending
        .expect("pending kept")
        .id()
        .to_string();
    rig.assert_invariants().await;
    rig.heal();
    let recovery = rig.engine.recover().await.unwrap();
    assert!(recovery.promoted.is_some(), "{recovery}");
    assert_eq!(current_m2m(&rig.state().await).certificate_id, pending);
    rig.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revocation_is_retried_and_alerted_not_lost() {
    let (rig, first) = Rig::imported(Duration::ZERO).await;
    rig.faults(
        "certificate_revoke",
        Faults {
            server_error: 1.0,
            ..Faults::default()
        },
    );
    let rotated = rig
        .engine
        .rotate()
        .await
        .expect("the rotation itself succeeds");
    assert!(
        active_certificates(&rig.sim).contains(&first),
        "the previous certificate is still active"
    );
    let state = rig.state().await;
    assert_eq!(state.previous.as_ref().unwrap().token.id(), first);
    assert!(state.previous.unwrap().revoked_at.is_none());
    assert_eq!(
        rig.events
            .count(|e| matches!(e, Event::RevokeFailed { .. })),
        1
    );
    rig.heal();
    rig.engine.revoke_due(false).await.unwrap();
    assert_eq!(
        active_certificates(&rig.sim),
        BTreeSet::from([rotated.token_id])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixth_active_certificate_is_never_uploaded() {
    let (rig, first) = Rig::imported(Duration::ZERO).await;
    for _ in 0..4 {
        admin_upload(&rig.sim, KeyKind::EcP256);
    }
    let before = rig.sim.sim().inspect().certificates.len();
    let err = rig.engine.rotate().await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, RotationError::TooManyCertificates { .. }),
        "{message}"
    );
    assert!(message.contains("5 active certificates"), "{message}");
    assert!(message.contains("NetSuite allows five"), "{message}");
    assert!(message.contains(&first), "names the current one: {message}");
    assert!(!err.is_transient());
    assert_eq!(
        rig.sim.sim().inspect().certificates.len(),
        before,
        "no upload"
    );
    assert!(rig.state().await.intent.is_none());
}

/// A certificate past its expiry is an alert, not a retry loop: nothing is sent to NetSuite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_current_certificate_stops_rotation_without_calling_netsuite() {
    let rig = Rig::new(Duration::ZERO).await;
    let (id, made) = admin_upload(&rig.sim, KeyKind::EcP256);
    let expired = CredentialRecord::M2m(CertificateRecord {
        account_id: demo::ACCOUNT.into(),
        client_id: None,
        certificate_id: id.clone(),
        algorithm: "ES256".into(),
        private_key: made.private_key,
        certificate: Some(made.certificate),
        not_after: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        issued_at: chrono::Utc::now() - chrono::Duration::days(400),
        rotation_id: uuid::Uuid::new_v4(),
    });
    rig.store.import_current(&expired).await.unwrap();
    let requests_before = rig.sim.sim().inspect().requests.clone();
    let err = rig.engine.rotate().await.unwrap_err();
    assert!(
        matches!(err, RotationError::CertificateExpired { .. }),
        "{err}"
    );
    assert!(!err.is_transient(), "not retried with backoff");
    let message = err.to_string();
    assert!(
        message.contains(&id) && message.contains("import"),
        "{message}"
    );
    assert_eq!(
        rig.sim.sim().inspect().requests,
        requests_before,
        "no call to NetSuite"
    );
    let alert = netsuite_token_rotator::alert::alert_for_failure("erp", demo::ACCOUNT, &err);
    assert_eq!(
        alert.kind,
        netsuite_token_rotator::alert::AlertKind::CertificateExpired
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_m2m_integration_needs_an_import_before_its_first_rotation() {
    let rig = Rig::new(Duration::ZERO).await;
    let err = rig.engine.rotate().await.unwrap_err();
    assert!(matches!(err, RotationError::NeedsImport { .. }), "{err}");
    assert!(err.to_string().contains("import --integration"), "{err}");
    assert!(active_certificates(&rig.sim).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_what_netsuite_or_the_key_refuses_and_stores_nothing() {
    let rig = Rig::new(Duration::ZERO).await;
    let (id, made) = admin_upload(&rig.sim, KeyKind::EcP256);
    let secret = made.private_key.expose_secret().to_string();

    // A key that is not PEM.
    let err = rig
        .engine
        .import_certificate(id.clone(), "not a key".to_string().into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");

    // A certificate ID NetSuite does not know.
    let err = rig
        .engine
        .import_certificate("no-such-certificate".into(), made.private_key.clone(), None)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains(&secret), "{message}");

    // A certificate that does not belong to the key.
    let (_, other) = admin_upload(&rig.sim, KeyKind::EcP256);
    let err = rig
        .engine
        .import_certificate(
            id.clone(),
            made.private_key.clone(),
            Some(other.certificate),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");

    assert!(rig.state().await.current.is_none(), "nothing stored");
    rig.engine
        .import_certificate(id, made.private_key, None)
        .await
        .expect("the right pair imports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_id_and_a_skewed_clock_are_named_and_change_nothing() {
    // A client ID that is not the integration record's.
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new(&FileStoreConfig {
        path: dir.path().join("erp-m2m.json"),
    }));
    let mut integration = demo_m2m_integration(&sim.base_url(), Duration::ZERO);
    if let Some(m2m) = match &mut integration.credential {
        netsuite_token_rotator::rotation::Credential::M2m(m2m) => Some(m2m),
        _ => None,
    } {
        m2m.client_id = "not-the-client-id".to_string().into();
    }
    let engine = Engine::new(
        Arc::new(integration),
        NetSuiteClient::new(test_client_options()).unwrap(),
        store.clone(),
        Arc::new(Recorder::default()),
    );
    let (id, made) = admin_upload(&sim, KeyKind::EcP256);
    let err = engine
        .import_certificate(id.clone(), made.private_key.clone(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(!err.to_string().contains("not-the-client-id"), "{err}");
    assert!(store.load().await.unwrap().current.is_none());

    // The simulator's clock two hours ahead: the assertion looks expired to NetSuite.
    let (rig, first) = Rig::imported(Duration::ZERO).await;
    rig.sim
        .sim()
        .set_faults(Faults {
            clock_skew_secs: 7200,
            ..Faults::default()
        })
        .unwrap();
    let err = rig.engine.rotate().await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("invalid_client"), "{message}");
    assert!(
        message.contains("exp") || message.contains("clock"),
        "{message}"
    );
    assert_eq!(active_certificates(&rig.sim), BTreeSet::from([first]));
}

// ---------------------------------------------------------------------------------------------
// The real binary

struct Binary {
    sim: SimHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Binary {
    async fn new() -> Binary {
        Binary::with("", "0 0 3 * * Sun").await
    }

    /// With `daemon` (a `[daemon]` table's text, or nothing) and the integration's schedule.
    async fn with(daemon: &str, schedule: &str) -> Binary {
        let sim = Simulator::start(Seed::demo()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"{daemon}
[[integrations]]
name = "erp-m2m"
account_id = "{account}"
endpoint = "{base_url}"
schedule = "{schedule}"
revoke_after = "0s"
[integrations.m2m]
client_id = {{ env = "IT_CLIENT_ID" }}
role = "{role}"
entity = "{entity}"
[integrations.store]
kind = "file"
path = "store/erp-m2m.json"
"#,
                account = demo::ACCOUNT,
                base_url = sim.base_url(),
                role = demo::ROLE_ID,
                entity = demo::ENTITY_ID,
            ),
        )
        .unwrap();
        Binary { sim, dir, config }
    }

    /// The binary with this test's config and secrets.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .env("IT_CLIENT_ID", demo::M2M_CLIENT_ID)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET");
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
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

    /// `import` of the administrator's first certificate, as an operator runs it.
    fn import_first(&self) -> (String, NewCertificate) {
        let (id, made) = admin_upload(&self.sim, KeyKind::EcP384);
        let input = format!(
            "{id}\n{}\n{}\n",
            made.private_key.expose_secret(),
            made.certificate
        );
        let out = self.run(&["import", "--integration", "erp-m2m"], &[], Some(&input));
        assert!(out.status.success(), "import: {}", text(&out));
        (id, made)
    }

    async fn state(&self) -> StoreState {
        FileStore::new(&FileStoreConfig {
            path: self.dir.path().join("store/erp-m2m.json"),
        })
        .load()
        .await
        .unwrap()
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_rotate_verify_check_and_status_with_the_binary() {
    let b = Binary::new().await;
    let (first, made) = b.import_first();
    assert_eq!(current_m2m(&b.state().await).algorithm, "ES384");
    let rotated = b.run(&["rotate", "--integration", "erp-m2m"], &[], None);
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert_eq!(active_certificates(&b.sim).len(), 1);
    assert!(!active_certificates(&b.sim).contains(&first));
    for args in [&["verify", "--all"][..], &["check"][..], &["status"][..]] {
        let out = b.run(args, &[], None);
        let all = text(&out);
        assert!(out.status.success(), "{args:?}: {all}");
        assert!(!all.contains("PRIVATE KEY"), "{args:?}: {all}");
        assert!(
            !all.contains(made.private_key.expose_secret().lines().nth(1).unwrap()),
            "{args:?}"
        );
    }
    let check = text(&b.run(&["check"], &[], None));
    assert!(check.contains("a token exchange"), "{check}");
    let status = text(&b.run(&["status", "--json"], &[], None));
    assert!(status.contains("expires_at"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_import_input_exits_2_naming_what_was_expected() {
    let b = Binary::new().await;
    for (input, expected) in [
        ("", "certificate ID"),
        ("abc\nnot pem at all\n", "PEM private key"),
        (
            "abc\n-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
            "expected the private key",
        ),
    ] {
        let out = b.run(&["import", "--integration", "erp-m2m"], &[], Some(input));
        assert_eq!(out.status.code(), Some(2), "{input:?}: {}", text(&out));
        assert!(text(&out).contains(expected), "{input:?}: {}", text(&out));
    }
    assert!(b.state().await.current.is_none());
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
        let b = Binary::new().await;
        b.import_first();
        let crashed = b.run(
            &["rotate", "--all"],
            &[("NETSUITE_ROTATOR_FAILPOINT", failpoint)],
            None,
        );
        assert!(
            !crashed.status.success() && crashed.status.code().is_none(),
            "{failpoint}: the process should die by signal: {}",
            text(&crashed)
        );
        let next = b.run(&["rotate", "--all"], &[], None);
        let output = text(&next);
        assert!(next.status.success(), "{failpoint}: next start: {output}");
        let state = b.state().await;
        assert!(
            state.intent.is_none() && state.pending.is_none(),
            "{failpoint}"
        );
        let current = state.current.expect("current certificate");
        let verify = b.run(&["verify", "--all"], &[], None);
        assert!(verify.status.success(), "{failpoint}: {}", text(&verify));
        for id in active_certificates(&b.sim) {
            assert!(
                id == current.id() || output.contains(&id),
                "{failpoint}: active certificate {id} is neither current nor named in an orphan report:\n{output}"
            );
        }
        if failpoint == "after-issue" {
            assert!(
                output.contains("suspected orphan"),
                "after-issue must report the uploaded certificate: {output}"
            );
        }
    }
}

#[test]
fn the_m2m_demo_ends_with_one_active_certificate_a_reader_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "demo",
            "--m2m",
            "--rotations",
            "2",
            "--interval",
            "1",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("3 certificates made, 1 active, 2 revoked"),
        "{shown}"
    );
    assert!(shown.contains("got an access token"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("demo-m2m-integration.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["algorithm"], "ES256");
}

/// `renew_before` in the running daemon: a certificate expiring within it is replaced at
/// start, though the schedule is a year away, and the metric shows the new one's expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_renews_a_certificate_inside_renew_before_and_exports_its_expiry() {
    let port = rotator::free_port();
    let b = Binary::with(
        &format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
        "0 0 3 1 1 *",
    )
    .await;
    // The administrator's certificate expires in 20 days: inside the default 30-day window.
    let made = netsuite_token_rotator::netsuite::m2m::generate_certificate(
        KeyKind::EcP256,
        "expiring soon",
        Duration::from_secs(20 * 86_400),
    )
    .unwrap();
    let first = b
        .sim
        .sim()
        .upload_certificate(&netsuite_token_rotator::sim::AdminCertificate {
            client_id: demo::M2M_CLIENT_ID.into(),
            entity: demo::ENTITY_ID.into(),
            role: demo::ROLE_ID.into(),
            pem: made.certificate.clone(),
        })
        .unwrap();
    let input = format!(
        "{first}\n{}{}",
        made.private_key.expose_secret(),
        made.certificate
    );
    let out = b.run(&["import", "--integration", "erp-m2m"], &[], Some(&input));
    assert!(out.status.success(), "{}", text(&out));

    let daemon = rotator::Daemon::start(b.command());
    daemon.wait_for("token promoted to current", 1);
    // What the CLI does after a change: the daemon reads the store again before answering.
    let reconciled = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/reconcile?integration=erp-m2m"
        ))
        .send()
        .await
        .unwrap();
    assert!(reconciled.status().is_success());
    let (status, metrics) = rotator::get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(status, 200);
    let expiry: i64 = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "netsuite_rotator_certificate_expiry_timestamp_seconds{integration=\"erp-m2m\"}",
            )
        })
        .unwrap_or_else(|| panic!("no certificate expiry series:\n{metrics}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let in_a_year = chrono::Utc::now().timestamp() + 300 * 86_400;
    assert!(
        expiry > in_a_year,
        "the new certificate's expiry, not the old one's: {expiry}"
    );
    assert!(!active_certificates(&b.sim).contains(&first));
    let (_, code) = daemon.terminate();
    assert_eq!(code, Some(0));
}

/// An expired certificate in the store: `/readyz`, `status` and the metric say so alike, and
/// the daemon makes no call to NetSuite for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_not_ready_in_readyz_status_and_metrics_alike() {
    let port = rotator::free_port();
    let b = Binary::with(
        &format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
        "0 0 3 1 1 *",
    )
    .await;
    let (id, made) = admin_upload(&b.sim, KeyKind::EcP256);
    let not_after = chrono::Utc::now() - chrono::Duration::hours(1);
    FileStore::new(&FileStoreConfig {
        path: b.dir.path().join("store/erp-m2m.json"),
    })
    .import_current(&CredentialRecord::M2m(CertificateRecord {
        account_id: demo::ACCOUNT.into(),
        client_id: None,
        certificate_id: id,
        algorithm: "ES256".into(),
        private_key: made.private_key,
        certificate: Some(made.certificate),
        not_after: Some(not_after),
        issued_at: chrono::Utc::now() - chrono::Duration::days(400),
        rotation_id: uuid::Uuid::new_v4(),
    }))
    .await
    .unwrap();
    let requests = b.sim.sim().inspect().requests.clone();

    let daemon = rotator::Daemon::start(b.command());
    daemon.wait_for("not ready: ", 1);
    let (status, body) = rotator::get(&format!("http://127.0.0.1:{port}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("expired"), "{body}");
    let (_, metrics) = rotator::get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(
        metrics.contains(&format!(
            "netsuite_rotator_certificate_expiry_timestamp_seconds{{integration=\"erp-m2m\"}} {}",
            not_after.timestamp()
        )),
        "{metrics}"
    );
    assert!(metrics.contains("netsuite_rotator_ready 0"), "{metrics}");
    let status = text(&b.run(&["status"], &[], None));
    assert!(status.contains("expired"), "{status}");
    let (_, code) = daemon.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(
        b.sim.sim().inspect().requests,
        requests,
        "no call to NetSuite for an expired certificate"
    );
}

/// A real store that runs `hook` once, right after a rotation staged its certificate: the
/// moment between stage and verify, where the tests below break the verification.
struct AfterStage {
    inner: Arc<dyn SecretStore>,
    hook: std::sync::Mutex<Option<StageHook>>,
}

type StageHook = Box<
    dyn FnOnce(CredentialRecord) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send,
>;

#[async_trait::async_trait]
impl SecretStore for AfterStage {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn load(&self) -> Result<StoreState, netsuite_token_rotator::store::StoreError> {
        self.inner.load().await
    }
    async fn begin_rotation(
        &self,
        intent: &netsuite_token_rotator::store::Intent,
    ) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.begin_rotation(intent).await
    }
    async fn stage_pending(
        &self,
        token: &CredentialRecord,
    ) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.stage_pending(token).await?;
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook(token.clone()).await;
        }
        Ok(())
    }
    async fn promote(
        &self,
        rotation_id: uuid::Uuid,
        revoke_previous_after: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.promote(rotation_id, revoke_previous_after).await
    }
    async fn abandon_rotation(
        &self,
        rotation_id: uuid::Uuid,
    ) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.abandon_rotation(rotation_id).await
    }
    async fn mark_previous_revoked(
        &self,
        token_id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.mark_previous_revoked(token_id, at).await
    }
    async fn import_current(
        &self,
        token: &CredentialRecord,
    ) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.import_current(token).await
    }
    async fn set_login_latch(
        &self,
        latch: Option<&netsuite_token_rotator::store::LoginLatch>,
    ) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.set_login_latch(latch).await
    }
    async fn check_writable(&self) -> Result<(), netsuite_token_rotator::store::StoreError> {
        self.inner.check_writable().await
    }
}

/// An engine on `sim` whose store runs `hook` after staging, with the first certificate
/// imported; and the imported certificate's ID.
async fn with_stage_hook(
    sim: &SimHandle,
    dir: &std::path::Path,
    hook: StageHook,
) -> (Engine, Arc<dyn SecretStore>, String) {
    let store: Arc<dyn SecretStore> = Arc::new(AfterStage {
        inner: Arc::new(FileStore::new(&FileStoreConfig {
            path: dir.join("erp-m2m.json"),
        })),
        hook: std::sync::Mutex::new(Some(hook)),
    });
    let engine = Engine::new(
        Arc::new(demo_m2m_integration(&sim.base_url(), Duration::ZERO)),
        NetSuiteClient::new(test_client_options()).unwrap(),
        store.clone(),
        Arc::new(Recorder::default()),
    );
    let (id, made) = admin_upload(sim, KeyKind::EcP256);
    engine
        .import_certificate(id.clone(), made.private_key, Some(made.certificate))
        .await
        .unwrap();
    (engine, store, id)
}

/// Verification fails for good (the new certificate was revoked behind the rotation's back):
/// the new one is revoked and dropped, the current one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_that_fails_verification_is_dropped_and_the_current_one_stays() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base_url = sim.base_url();
    let hook: StageHook = Box::new(move |staged| {
        Box::pin(async move {
            // Someone revokes the new certificate with its own access token.
            use netsuite_token_rotator::netsuite::Endpoint;
            use netsuite_token_rotator::netsuite::m2m::M2mCredentials;
            let client = NetSuiteClient::new(test_client_options()).unwrap();
            let endpoint = Endpoint {
                base_url: base_url.as_str().into(),
            };
            let record = staged.as_m2m().unwrap();
            let client_id = demo::M2M_CLIENT_ID.to_string().into();
            let token = client
                .m2m_access_token(
                    &endpoint,
                    &M2mCredentials {
                        client_id: &client_id,
                        certificate_id: &record.certificate_id,
                        algorithm: &record.algorithm,
                        private_key: &record.private_key,
                    },
                    &["rest_webservices".to_string()],
                )
                .await
                .unwrap();
            client
                .revoke_certificate(&endpoint, &client_id, &token, &record.certificate_id)
                .await
                .unwrap();
        })
    });
    let (engine, store, first) = with_stage_hook(&sim, dir.path(), hook).await;
    let err = engine.rotate().await.unwrap_err();
    assert!(err.to_string().starts_with("verify:"), "{err}");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    let state = store.load().await.unwrap();
    assert_eq!(state.current.unwrap().id(), first);
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_eq!(active_certificates(&sim), BTreeSet::from([first]));
}

/// Verification cannot reach NetSuite: the staged certificate cannot be revoked either, so it
/// stays recorded as pending, and the next run verifies and promotes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_netsuite_does_not_answer_leaves_the_certificate_pending_for_recovery() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let control = sim.sim().clone();
    let hook: StageHook = Box::new(move |_| {
        Box::pin(async move {
            control
                .set_faults(Faults {
                    server_error: 1.0,
                    endpoints: vec!["token".into()],
                    ..Faults::default()
                })
                .unwrap();
        })
    });
    let (engine, store, first) = with_stage_hook(&sim, dir.path(), hook).await;
    let err = engine.rotate().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let pending = store.load().await.unwrap().pending.expect("still pending");
    assert_eq!(
        active_certificates(&sim),
        BTreeSet::from([first.clone(), pending.id().to_string()]),
        "both known to the store"
    );
    sim.sim().set_faults(Faults::default()).unwrap();
    let recovery = engine.recover().await.unwrap();
    assert!(recovery.promoted.is_some(), "{recovery}");
    assert_eq!(
        store.load().await.unwrap().current.unwrap().id(),
        pending.id()
    );
}

/// The certificate's subject names the rotation within X.509's 64-character common name, even
/// with the longest prefix the config allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_subject_names_the_rotation_within_64_characters() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SecretStore> = Arc::new(FileStore::new(&FileStoreConfig {
        path: dir.path().join("erp-m2m.json"),
    }));
    let prefix = "p".repeat(40);
    let integration = netsuite_token_rotator::rotation::Integration {
        token_name_prefix: prefix.as_str().into(),
        ..demo_m2m_integration(&sim.base_url(), Duration::ZERO)
    };
    let engine = Engine::new(
        Arc::new(integration),
        NetSuiteClient::new(test_client_options()).unwrap(),
        store.clone(),
        Arc::new(Recorder::default()),
    );
    let (id, made) = admin_upload(&sim, KeyKind::EcP256);
    engine
        .import_certificate(id, made.private_key, Some(made.certificate))
        .await
        .unwrap();
    let rotated = engine.rotate().await.unwrap();
    let state = store.load().await.unwrap();
    let pem = current_m2m(&state).certificate.clone().unwrap();
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let certificate = der.parse_x509().unwrap();
    let common_name = certificate
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(common_name.chars().count(), 64, "{common_name}");
    assert!(
        common_name.starts_with(&format!("{prefix}-")),
        "{common_name}"
    );
    let rotation = rotated.rotation_id.to_string();
    assert!(
        rotation.starts_with(&common_name[41..]),
        "{common_name} / {rotation}"
    );
}
