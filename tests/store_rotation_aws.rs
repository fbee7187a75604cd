//! Whole rotations through the real engine into AWS Secrets Manager (a real moto_server) against
//! the real NetSuite simulator: bootstrap into a missing secret and into an existing secret with
//! no value, readers reading `AWSCURRENT` through the SDK during rotations and checking every
//! token they read with tokeninfo, two engines rotating one secret at once, and the server
//! stopping in the middle of a rotation, and `check_writable` and the login latch beside the
//! engine's rotations. The evidence for "readers of the store always see a working token".

mod common;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/rotation_rig.rs"]
mod rotation_rig;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moto::MotoServer;
use netsuite_token_rotator::rotation::{PreviousFate, RevokeOutcome, RotationError, Step};
use netsuite_token_rotator::secret::ExposeSecret;
use netsuite_token_rotator::store::aws::{AwsStore, token_version_id};
use netsuite_token_rotator::store::{CredentialRecord, SecretStore, StoreErrorKind};
use rotation_rig::{
    HookedStore, Rendezvous, Rig, check_writable_before_each_step,
    latch_seen_by_another_store_and_cleared, race_round, spawn_reader,
};
use tokio::sync::Mutex;

const NO_GRACE: Duration = Duration::ZERO;
const HOUR: Duration = Duration::from_secs(3600);

/// Staging labels by version id, read with the SDK as an operator would (DescribeSecret).
async fn labels(server: &MotoServer, secret_id: &str) -> BTreeMap<String, BTreeSet<String>> {
    let described = server
        .client()
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .expect("DescribeSecret");
    described
        .version_ids_to_stages()
        .map(|m| {
            m.iter()
                .map(|(v, ls)| (v.clone(), ls.iter().cloned().collect()))
                .collect()
        })
        .unwrap_or_default()
}

fn versions_with(labels: &BTreeMap<String, BTreeSet<String>>, label: &str) -> Vec<String> {
    labels
        .iter()
        .filter(|(_, ls)| ls.contains(label))
        .map(|(v, _)| v.clone())
        .collect()
}

/// AWSCURRENT on `current`'s version, AWSPREVIOUS on `previous`'s (if any), no AWSPENDING.
fn assert_labels(
    labels: &BTreeMap<String, BTreeSet<String>>,
    current: &CredentialRecord,
    previous: Option<&CredentialRecord>,
) {
    assert_eq!(
        versions_with(labels, "AWSCURRENT"),
        vec![token_version_id(current.rotation_id())],
        "{labels:?}"
    );
    assert_eq!(
        versions_with(labels, "AWSPREVIOUS"),
        previous
            .map(|p| vec![token_version_id(p.rotation_id())])
            .unwrap_or_default(),
        "{labels:?}"
    );
    assert!(versions_with(labels, "AWSPENDING").is_empty(), "{labels:?}");
}

/// `GetSecretValue` with `VersionStage=AWSCURRENT`, parsed as a reader parses it.
async fn read_current(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> CredentialRecord {
    let value = client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("GetSecretValue AWSCURRENT");
    serde_json::from_str(value.secret_string().expect("a string secret"))
        .expect("AWSCURRENT holds a whole token object")
}

fn same_token(a: &CredentialRecord, b: &CredentialRecord) -> bool {
    let (a, b) = (a.as_tba().unwrap(), b.as_tba().unwrap());
    a.token_id == b.token_id
        && a.rotation_id == b.rotation_id
        && a.token_secret.expose_secret() == b.token_secret.expose_secret()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_into_a_missing_secret_then_two_rotations() {
    let server = MotoServer::start();
    let rig = Rig::start(NO_GRACE).await;
    let secret = "netsuite/rot-missing";
    let store: Arc<dyn SecretStore> = Arc::new(server.store(secret).await);
    let engine = rig.engine(store.clone());
    assert!(store.load().await.unwrap().current.is_none());

    let first = engine.rotate().await.expect("bootstrap rotation");
    assert!(matches!(first.previous, PreviousFate::None));
    let state = store.load().await.unwrap();
    let t0 = state.current.clone().expect("current after bootstrap");
    assert_eq!(t0.id(), first.token_id);
    assert_labels(&labels(&server, secret).await, &t0, None);
    assert!(same_token(
        &read_current(&server.client(), secret).await,
        &t0
    ));
    rig.assert_only_current_live(&state).await;

    let mut previous = t0;
    for round in 1..=2 {
        let rotated = engine.rotate().await.expect("rotation");
        assert!(
            matches!(&rotated.previous, PreviousFate::Revoked { token_id } if *token_id == previous.id()),
            "round {round}: {:?}",
            rotated.previous
        );
        let state = store.load().await.unwrap();
        let current = state.current.clone().unwrap();
        assert_eq!(current.id(), rotated.token_id);
        assert_labels(&labels(&server, secret).await, &current, Some(&previous));
        assert!(same_token(
            &read_current(&server.client(), secret).await,
            &current
        ));
        let kept = state.previous.as_ref().expect("previous kept as a record");
        assert_eq!(kept.token.id(), previous.id());
        assert!(kept.revoked_at.is_some());
        rig.assert_only_current_live(&state).await;
        previous = current;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_into_an_existing_secret_with_no_value_then_two_rotations_in_grace() {
    let server = MotoServer::start();
    let secret = "netsuite/rot-terraformed";
    server.create_empty_secret(secret).await;
    let rig = Rig::start(HOUR).await;
    let mut config = server.store_config(secret);
    config.create_if_missing = false;
    let store: Arc<dyn SecretStore> = Arc::new(AwsStore::connect(&config).await.unwrap());
    let engine = rig.engine(store.clone());
    assert!(store.load().await.unwrap().current.is_none());

    engine.rotate().await.expect("bootstrap rotation");
    let t0 = store.load().await.unwrap().current.unwrap();
    assert_labels(&labels(&server, secret).await, &t0, None);
    assert_eq!(rig.active_tokens(), BTreeSet::from([t0.id().to_string()]));

    // With a grace window, the replaced token stays live and recorded as previous.
    let rotated = engine.rotate().await.expect("first rotation");
    assert!(matches!(rotated.previous, PreviousFate::RevokeAt { .. }));
    let state = store.load().await.unwrap();
    let t1 = state.current.clone().unwrap();
    assert_labels(&labels(&server, secret).await, &t1, Some(&t0));
    let previous = state.previous.as_ref().unwrap();
    assert!(same_token(&previous.token, &t0));
    assert!(previous.revoked_at.is_none() && previous.revoke_after > chrono::Utc::now());
    assert_eq!(
        rig.active_tokens(),
        BTreeSet::from([t0.id().to_string(), t1.id().to_string()])
    );
    assert!(rig.token_info_ok(&t0).await, "previous works in its grace");
    rig.assert_invariants(&state).await;

    // The second rotation waits for the grace window (here: forced to end).
    assert!(matches!(
        engine.rotate().await.unwrap_err(),
        RotationError::PreviousInGrace { .. }
    ));
    assert!(matches!(
        engine.revoke_due(true).await.unwrap(),
        RevokeOutcome::Revoked { .. }
    ));
    engine.rotate().await.expect("second rotation");
    let state = store.load().await.unwrap();
    let t2 = state.current.clone().unwrap();
    assert_labels(&labels(&server, secret).await, &t2, Some(&t1));
    assert_eq!(
        rig.active_tokens(),
        BTreeSet::from([t1.id().to_string(), t2.id().to_string()])
    );
    assert!(same_token(
        &read_current(&server.client(), secret).await,
        &t2
    ));
    rig.assert_invariants(&state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_awscurrent_always_gets_a_working_token() {
    let server = MotoServer::start();
    let rig = Rig::start(NO_GRACE).await;
    let secret = "netsuite/rot-readers";
    let store: Arc<dyn SecretStore> = Arc::new(server.store(secret).await);
    let engine = rig.engine(store.clone());
    let mut issued = vec![engine.rotate().await.expect("bootstrap").token_id];

    let done = Arc::new(AtomicBool::new(false));
    let (first_read, first_read_done) = tokio::sync::oneshot::channel();
    let client = server.client();
    let reader = spawn_reader(
        rig.sim.sim().clone(),
        rig.client.clone(),
        rig.integration.clone(),
        done.clone(),
        first_read,
        move || {
            let client = client.clone();
            async move { read_current(&client, "netsuite/rot-readers").await }
        },
    );
    first_read_done.await.expect("the reader read once");
    for _ in 0..4 {
        issued.push(engine.rotate().await.expect("rotation").token_id);
        rig.assert_only_current_live(&store.load().await.unwrap())
            .await;
    }
    done.store(true, Ordering::SeqCst);
    let report = reader.await.expect("reader task");

    assert!(
        report.tokens.iter().all(|t| issued.contains(t)),
        "{report:?} {issued:?}"
    );
    assert_eq!(report.tokens.first(), issued.first(), "{report:?}");
    assert_eq!(report.tokens.last(), issued.last(), "{report:?}");
    println!(
        "reader: {} reads, {} tokens, {} revoked right after being read",
        report.reads,
        report.tokens.len(),
        report.revoked_after_read
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_rotating_one_secret_at_once_never_both_win() {
    let server = MotoServer::start();
    let rig = Rig::start(NO_GRACE).await;
    let secret = "netsuite/rot-race";
    let a = Arc::new(HookedStore::new(Arc::new(server.store(secret).await)));
    let b = Arc::new(HookedStore::new(Arc::new(server.store(secret).await)));
    let (engine_a, engine_b) = (rig.engine(a.clone()), rig.engine(b.clone()));
    engine_a.rotate().await.expect("bootstrap");

    // Both engines have read the store before either records its intent: they meet at the
    // check-and-set itself.
    let meeting = Rendezvous::new(2);
    a.meet_before_begin(meeting.clone());
    b.meet_before_begin(meeting.clone());
    for round in 0..3 {
        race_round(&rig, (&engine_a, &engine_b), a.as_ref(), &meeting, round).await;
    }
    let state = b.load().await.unwrap();
    let labels = labels(&server, secret).await;
    assert_labels(
        &labels,
        state.current.as_ref().unwrap(),
        Some(&state.previous.as_ref().unwrap().token),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stopping_before_stage_costs_no_token_and_the_next_run_completes() {
    let server = Arc::new(Mutex::new(MotoServer::start()));
    let rig = Rig::start(NO_GRACE).await;
    let secret = "netsuite/rot-outage-stage";
    let store = Arc::new(HookedStore::new(Arc::new(
        server.lock().await.store(secret).await,
    )));
    let engine = rig.engine(store.clone());
    engine.rotate().await.expect("bootstrap");
    let t0 = store.load().await.unwrap().current.unwrap();

    let stopping = server.clone();
    store.before("stage_pending", move || async move {
        stopping.lock().await.stop();
    });
    let err = engine.rotate().await.unwrap_err();
    let RotationError::Store {
        step: Step::Stage,
        source,
    } = &err
    else {
        panic!("expected a stage failure, got {err}");
    };
    assert_eq!(source.kind, StoreErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(message.contains(secret), "names the secret: {message}");
    assert!(
        message.contains(source.operation),
        "names the operation: {message}"
    );
    let secrets: BTreeSet<String> = store.secrets_seen().into_iter().collect();
    assert_eq!(
        secrets.len(),
        2,
        "the bootstrap token and the new one were staged"
    );
    for secret_value in secrets.iter().map(String::as_str).chain([
        t0.as_tba().unwrap().token_secret.expose_secret(),
        common::demo::CONSUMER_SECRET,
    ]) {
        assert!(!message.contains(secret_value), "{message}");
        assert!(!format!("{err:?}").contains(secret_value), "{err:?}");
    }
    // The new token was revoked at once; only the old current is live.
    assert_eq!(rig.token_count(), 2);
    assert_eq!(rig.active_tokens(), BTreeSet::from([t0.id().to_string()]));

    server.lock().await.restart();
    assert!(same_token(
        &read_current(&server.lock().await.client(), secret).await,
        &t0
    ));
    let state = store.load().await.unwrap();
    assert!(same_token(state.current.as_ref().unwrap(), &t0));
    rig.assert_invariants(&state).await;

    let rotated = engine.rotate().await.expect("the next run completes");
    let state = store.load().await.unwrap();
    let t1 = state.current.clone().unwrap();
    assert_eq!(t1.id(), rotated.token_id);
    assert_labels(&labels(&*server.lock().await, secret).await, &t1, Some(&t0));
    rig.assert_only_current_live(&state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stopping_before_promote_keeps_the_new_token_pending_until_the_next_run() {
    let server = Arc::new(Mutex::new(MotoServer::start()));
    let rig = Rig::start(NO_GRACE).await;
    let secret = "netsuite/rot-outage-promote";
    let store = Arc::new(HookedStore::new(Arc::new(
        server.lock().await.store(secret).await,
    )));
    let engine = rig.engine(store.clone());
    engine.rotate().await.expect("bootstrap");
    let t0 = store.load().await.unwrap().current.unwrap();

    let stopping = server.clone();
    store.before("promote", move || async move {
        stopping.lock().await.stop();
    });
    let err = engine.rotate().await.unwrap_err();
    assert!(
        matches!(&err, RotationError::Store { step: Step::Promote, source } if source.kind == StoreErrorKind::Unavailable),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(secret), "{message}");
    for secret_value in store.secrets_seen() {
        assert!(!message.contains(&secret_value), "{message}");
    }

    server.lock().await.restart();
    // Readers still get the old token; the new one is live and recorded as pending.
    assert!(same_token(
        &read_current(&server.lock().await.client(), secret).await,
        &t0
    ));
    let state = store.load().await.unwrap();
    assert!(same_token(state.current.as_ref().unwrap(), &t0));
    let pending = state.pending.clone().expect("the new token stays pending");
    assert_eq!(
        rig.active_tokens(),
        BTreeSet::from([t0.id().to_string(), pending.id().to_string()])
    );
    assert!(
        versions_with(&labels(&*server.lock().await, secret).await, "AWSPENDING")
            == vec![token_version_id(pending.rotation_id())]
    );
    rig.assert_invariants(&state).await;

    // The next run promotes the pending token first, then rotates once more.
    let rotated = engine.rotate().await.expect("the next run completes");
    let state = store.load().await.unwrap();
    let current = state.current.clone().unwrap();
    assert_eq!(current.id(), rotated.token_id);
    assert!(
        !rig.active_tokens().contains(pending.id()),
        "the recovered token was promoted, then replaced and revoked"
    );
    assert_labels(
        &labels(&*server.lock().await, secret).await,
        &current,
        Some(&pending),
    );
    rig.assert_only_current_live(&state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writable_and_the_latch_leave_rotations_labels_and_readers_alone() {
    let server = MotoServer::start();
    let rig = Rig::start(NO_GRACE).await;
    let secret = "netsuite/rot-checked";
    let store = Arc::new(HookedStore::new(Arc::new(server.store(secret).await)));
    let engine = rig.engine(store.clone());
    let other = server.store(secret).await;

    // Checked before every step, from the bootstrap into a missing secret on.
    let mut previous: Option<CredentialRecord> = None;
    for _ in 0..3 {
        check_writable_before_each_step(&store);
        engine
            .rotate()
            .await
            .expect("a rotation checked at every step");
        let state = store.load().await.unwrap();
        let current = state.current.clone().unwrap();
        assert_labels(&labels(&server, secret).await, &current, previous.as_ref());
        assert!(same_token(
            &read_current(&server.client(), secret).await,
            &current
        ));
        rig.assert_only_current_live(&state).await;
        previous = Some(current);
    }

    // The latch: set by one store, seen and cleared by another; labels and readers unchanged.
    let before = labels(&server, secret).await;
    let client = server.client();
    latch_seen_by_another_store_and_cleared(&rig, store.as_ref(), &other, || {
        read_current(&client, secret)
    })
    .await;
    assert_eq!(labels(&server, secret).await, before);
    let rotated = engine
        .rotate()
        .await
        .expect("a rotation after the latch is cleared");
    assert_eq!(
        read_current(&server.client(), secret)
            .await
            .id()
            .to_string(),
        rotated.token_id
    );
}
