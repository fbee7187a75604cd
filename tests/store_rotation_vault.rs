//! Whole rotations through the real engine into Vault against the real NetSuite simulator, on a
//! real OpenBao server (`tests/support/openbao.rs`): KV v2 at `secret/` and KV v1 on a version 1
//! `kv` mount.
//! Bootstrap and rotations, a reader reading the KV data path over HTTP as Vault Agent or
//! External Secrets Operator would and checking every token it reads with tokeninfo, two engines
//! rotating one KV v2 path at once, the server stopping in the middle of a rotation, and
//! `check_writable` and the login latch beside the engine's rotations.

mod common;
#[path = "support/openbao.rs"]
mod openbao;
#[path = "support/rotation_rig.rs"]
mod rotation_rig;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use netsuite_token_rotator::rotation::{Engine, PreviousFate, RotationError, Step};
use netsuite_token_rotator::secret::{ExposeSecret, SecretRef};
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStoreConfig, connect};
use netsuite_token_rotator::store::{CredentialRecord, SecretStore, StoreErrorKind};
use openbao::OpenBao;
use rotation_rig::{
    HookedStore, Rendezvous, Rig, check_writable_before_each_step,
    latch_seen_by_another_store_and_cleared, race_round, spawn_reader,
};
use serde_json::Value;
use tokio::sync::Mutex;

const NO_GRACE: Duration = Duration::ZERO;
const TOKEN: &str = "rotation-test-token";
const PATH: &str = "netsuite/erp-sync";
const KV1_MOUNT: &str = "kv1";

fn store_config(address: &str, token: &str, mount: &str, kv_version: u8) -> VaultStoreConfig {
    VaultStoreConfig {
        address: address.to_string(),
        mount: mount.to_string(),
        path: PATH.to_string(),
        kv_version,
        namespace: None,
        ca_cert: None,
        auth: VaultAuth::Token {
            token: SecretRef::Literal(token.into()),
        },
    }
}

/// A dev server with KV v2 at `secret/` whose root token is `TOKEN`.
async fn kv2_vault() -> OpenBao {
    OpenBao::start_with_root_token(TOKEN).await
}

/// The same on storage that survives a stop and a restart.
async fn kv2_persistent_vault() -> OpenBao {
    let vault = OpenBao::start_persistent().await;
    vault.add_root_token(TOKEN).await;
    vault
}

async fn kv2_store(vault: &OpenBao) -> Arc<dyn SecretStore> {
    Arc::new(
        connect(&store_config(&vault.address, TOKEN, "secret", 2))
            .await
            .expect("connect to OpenBao"),
    )
}

/// What a reader does: `GET /v1/<mount>/data/<path>` (KV v2) or `GET /v1/<mount>/<path>` (KV v1)
/// with its token, and the token object from the answer.
#[derive(Clone)]
struct Reader {
    http: reqwest::Client,
    url: String,
    token: String,
    kv_version: u8,
}

impl Reader {
    fn new(address: &str, token: &str, mount: &str, kv_version: u8) -> Reader {
        let url = match kv_version {
            1 => format!("{address}/v1/{mount}/{PATH}"),
            _ => format!("{address}/v1/{mount}/data/{PATH}"),
        };
        Reader {
            http: reqwest::Client::new(),
            url,
            token: token.to_string(),
            kv_version,
        }
    }

    async fn read(&self) -> CredentialRecord {
        let response = self
            .http
            .get(&self.url)
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .expect("Vault answers the reader");
        assert_eq!(response.status().as_u16(), 200, "reader GET {}", self.url);
        let bytes = response.bytes().await.expect("a body");
        let body: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
        let data = match self.kv_version {
            1 => &body["data"],
            _ => &body["data"]["data"],
        };
        serde_json::from_value(data.clone()).expect("the data is a whole token object")
    }
}

fn same_token(a: &CredentialRecord, b: &CredentialRecord) -> bool {
    let (a, b) = (a.as_tba().unwrap(), b.as_tba().unwrap());
    a.token_id == b.token_id
        && a.rotation_id == b.rotation_id
        && a.token_secret.expose_secret() == b.token_secret.expose_secret()
}

/// KV v2 bookkeeping after a settled rotation with no grace window: `previous` is the version
/// before the current one, recorded as revoked, and no rotation sibling is left.
async fn assert_kv2_bookkeeping(vault: &OpenBao, previous_revoked: bool) {
    let secret = vault
        .kv2_metadata("secret", PATH)
        .await
        .expect("the token key exists");
    let custom: std::collections::BTreeMap<String, String> =
        serde_json::from_value(secret["custom_metadata"].clone()).unwrap_or_default();
    let current_version = secret["current_version"].as_u64().expect("current_version");
    assert_eq!(
        custom.get("previous_version").map(String::as_str),
        Some((current_version - 1).to_string().as_str()),
        "{custom:?}"
    );
    assert!(custom.contains_key("previous_revoke_after"), "{custom:?}");
    assert_eq!(
        custom.contains_key("previous_revoked_at"),
        previous_revoked,
        "{custom:?}"
    );
    assert!(
        vault
            .kv2_metadata("secret", &format!("{PATH}.rotation"))
            .await
            .is_none(),
        "the rotation sibling is removed once the rotation is done"
    );
}

/// Bootstrap, then two rotations, checking the store, the reader's view and the simulator.
async fn bootstrap_and_two_rotations(
    rig: &Rig,
    engine: &Engine,
    store: &dyn SecretStore,
    reader: &Reader,
) -> Vec<CredentialRecord> {
    assert!(store.load().await.unwrap().current.is_none());
    let first = engine.rotate().await.expect("bootstrap rotation");
    assert!(matches!(first.previous, PreviousFate::None));
    let state = store.load().await.unwrap();
    let mut tokens = vec![state.current.clone().expect("current after bootstrap")];
    assert!(same_token(&reader.read().await, &tokens[0]));
    rig.assert_only_current_live(&state).await;
    for round in 1..=2 {
        let rotated = engine.rotate().await.expect("rotation");
        let previous = tokens.last().unwrap().clone();
        assert!(
            matches!(&rotated.previous, PreviousFate::Revoked { token_id } if *token_id == previous.id()),
            "round {round}: {:?}",
            rotated.previous
        );
        let state = store.load().await.unwrap();
        let current = state.current.clone().unwrap();
        assert_eq!(current.id().to_string(), rotated.token_id);
        assert!(same_token(&reader.read().await, &current));
        let kept = state.previous.as_ref().expect("previous kept as a record");
        assert!(same_token(&kept.token, &previous));
        assert!(kept.revoked_at.is_some());
        rig.assert_only_current_live(&state).await;
        tokens.push(current);
    }
    tokens
}

/// A reader beside four rotations; every token it reads is checked against the simulator.
async fn reader_during_rotations(
    rig: &Rig,
    engine: &Engine,
    store: &dyn SecretStore,
    reader: Reader,
) {
    let mut issued = vec![engine.rotate().await.expect("bootstrap").token_id];
    let done = Arc::new(AtomicBool::new(false));
    let (first_read, first_read_done) = tokio::sync::oneshot::channel();
    let task = spawn_reader(
        rig.sim.sim().clone(),
        rig.client.clone(),
        rig.integration.clone(),
        done.clone(),
        first_read,
        move || {
            let reader = reader.clone();
            async move { reader.read().await }
        },
    );
    first_read_done.await.expect("the reader read once");
    for _ in 0..4 {
        issued.push(engine.rotate().await.expect("rotation").token_id);
        rig.assert_only_current_live(&store.load().await.unwrap())
            .await;
    }
    done.store(true, Ordering::SeqCst);
    let report = task.await.expect("reader task");
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

/// Checks a failed rotation's message: it names the store's path and the operation, and quotes
/// none of the secrets in play.
fn assert_error_is_clean(err: &RotationError, store: &HookedStore, extra: &[&str]) {
    let RotationError::Store { source, .. } = err else {
        panic!("expected a store error, got {err}");
    };
    let message = err.to_string();
    assert!(message.contains(PATH), "names the path: {message}");
    assert!(
        message.contains(source.operation),
        "names the operation: {message}"
    );
    let debug = format!("{err:?}");
    let seen = store.secrets_seen();
    assert!(!seen.is_empty());
    for secret in seen
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .chain([common::demo::CONSUMER_SECRET, TOKEN])
    {
        assert!(!message.contains(secret), "{message}");
        assert!(!debug.contains(secret), "{debug}");
    }
}

/// Rotations through the engine with `check_writable` before each step, then the latch set by
/// one store and seen and cleared by another on the same path: readers keep reading the working
/// current token throughout.
async fn check_and_latch_beside_rotations(
    rig: &Rig,
    engine: &Engine,
    store: &HookedStore,
    other: &dyn SecretStore,
    reader: &Reader,
) {
    engine.rotate().await.expect("bootstrap");
    for _ in 0..2 {
        check_writable_before_each_step(store);
        engine
            .rotate()
            .await
            .expect("a rotation checked at every step");
        let state = store.load().await.unwrap();
        assert!(same_token(
            &reader.read().await,
            state.current.as_ref().unwrap()
        ));
        rig.assert_only_current_live(&state).await;
    }
    latch_seen_by_another_store_and_cleared(rig, store, other, || reader.read()).await;
    let rotated = engine
        .rotate()
        .await
        .expect("a rotation after the latch is cleared");
    assert_eq!(reader.read().await.id().to_string(), rotated.token_id);
}

// ---------------------------------------------------------------------------------------------
// KV v2, against OpenBao's `secret/` mount

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_bootstrap_then_two_rotations() {
    let double = kv2_vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = kv2_store(&double).await;
    let engine = rig.engine(store.clone());
    let reader = Reader::new(&double.address, TOKEN, "secret", 2);
    let tokens = bootstrap_and_two_rotations(&rig, &engine, store.as_ref(), &reader).await;
    assert_eq!(tokens.len(), 3);
    assert_eq!(
        double.kv2_metadata("secret", PATH).await.unwrap()["current_version"],
        3
    );
    assert_kv2_bookkeeping(&double, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_a_reader_of_the_data_path_always_gets_a_working_token() {
    let double = kv2_vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = kv2_store(&double).await;
    let engine = rig.engine(store.clone());
    let reader = Reader::new(&double.address, TOKEN, "secret", 2);
    reader_during_rotations(&rig, &engine, store.as_ref(), reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_two_engines_rotating_one_path_at_once_never_both_win() {
    let double = kv2_vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let a = Arc::new(HookedStore::new(kv2_store(&double).await));
    let b = Arc::new(HookedStore::new(kv2_store(&double).await));
    let (engine_a, engine_b) = (rig.engine(a.clone()), rig.engine(b.clone()));
    engine_a.rotate().await.expect("bootstrap");

    // Both engines have read the store before either records its intent: they meet at the
    // create-only (cas=0) write of the rotation sibling.
    let meeting = Rendezvous::new(2);
    a.meet_before_begin(meeting.clone());
    b.meet_before_begin(meeting.clone());
    for round in 0..3 {
        race_round(&rig, (&engine_a, &engine_b), b.as_ref(), &meeting, round).await;
        assert_kv2_bookkeeping(&double, true).await;
    }
    // One bootstrap and one winner per round wrote the token key.
    assert_eq!(
        double.kv2_metadata("secret", PATH).await.unwrap()["current_version"],
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_stopping_before_stage_costs_no_token_and_the_next_run_completes() {
    let double = Arc::new(Mutex::new(kv2_persistent_vault().await));
    let rig = Rig::start(NO_GRACE).await;
    let (address, mount) = (double.lock().await.address.clone(), "secret".to_string());
    let store = Arc::new(HookedStore::new(kv2_store(&*double.lock().await).await));
    let engine = rig.engine(store.clone());
    engine.rotate().await.expect("bootstrap");
    let t0 = store.load().await.unwrap().current.unwrap();

    let stopping = double.clone();
    store.before("stage_pending", move || async move {
        stopping.lock().await.stop();
    });
    let err = engine.rotate().await.unwrap_err();
    assert!(
        matches!(&err, RotationError::Store { step: Step::Stage, source } if source.kind == StoreErrorKind::Unavailable),
        "{err}"
    );
    assert_error_is_clean(
        &err,
        &store,
        &[t0.as_tba().unwrap().token_secret.expose_secret()],
    );
    assert_eq!(rig.token_count(), 2, "a new token was issued");
    assert_eq!(
        rig.active_tokens(),
        BTreeSet::from([t0.id().to_string().clone()]),
        "and revoked at once"
    );

    double.lock().await.restart().await;
    let reader = Reader::new(&address, TOKEN, &mount, 2);
    assert!(same_token(&reader.read().await, &t0));
    let state = store.load().await.unwrap();
    assert!(same_token(state.current.as_ref().unwrap(), &t0));
    rig.assert_invariants(&state).await;

    let rotated = engine.rotate().await.expect("the next run completes");
    let state = store.load().await.unwrap();
    assert_eq!(
        state.current.as_ref().unwrap().id().to_string(),
        rotated.token_id
    );
    assert!(same_token(
        &reader.read().await,
        state.current.as_ref().unwrap()
    ));
    rig.assert_only_current_live(&state).await;
    assert_kv2_bookkeeping(&*double.lock().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_stopping_before_promote_keeps_the_new_token_pending_until_the_next_run() {
    let double = Arc::new(Mutex::new(kv2_persistent_vault().await));
    let rig = Rig::start(NO_GRACE).await;
    let (address, mount) = (double.lock().await.address.clone(), "secret".to_string());
    let store = Arc::new(HookedStore::new(kv2_store(&*double.lock().await).await));
    let engine = rig.engine(store.clone());
    engine.rotate().await.expect("bootstrap");
    let t0 = store.load().await.unwrap().current.unwrap();

    let stopping = double.clone();
    store.before("promote", move || async move {
        stopping.lock().await.stop();
    });
    let err = engine.rotate().await.unwrap_err();
    assert!(
        matches!(&err, RotationError::Store { step: Step::Promote, source } if source.kind == StoreErrorKind::Unavailable),
        "{err}"
    );
    assert_error_is_clean(
        &err,
        &store,
        &[t0.as_tba().unwrap().token_secret.expose_secret()],
    );

    double.lock().await.restart().await;
    let reader = Reader::new(&address, TOKEN, &mount, 2);
    assert!(
        same_token(&reader.read().await, &t0),
        "readers keep the old token"
    );
    let state = store.load().await.unwrap();
    assert!(same_token(state.current.as_ref().unwrap(), &t0));
    let pending = state.pending.clone().expect("the new token stays pending");
    assert_eq!(
        rig.active_tokens(),
        BTreeSet::from([
            t0.id().to_string().clone(),
            pending.id().to_string().clone()
        ])
    );
    rig.assert_invariants(&state).await;

    let rotated = engine.rotate().await.expect("the next run completes");
    let state = store.load().await.unwrap();
    let current = state.current.clone().unwrap();
    assert_eq!(current.id().to_string(), rotated.token_id);
    assert!(same_token(
        &state.previous.as_ref().unwrap().token,
        &pending
    ));
    assert!(same_token(&reader.read().await, &current));
    rig.assert_only_current_live(&state).await;
    assert_kv2_bookkeeping(&*double.lock().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_check_writable_and_the_latch_leave_rotations_and_readers_alone() {
    let double = kv2_vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = Arc::new(HookedStore::new(kv2_store(&double).await));
    let engine = rig.engine(store.clone());
    let other = kv2_store(&double).await;
    let reader = Reader::new(&double.address, TOKEN, "secret", 2);
    check_and_latch_beside_rotations(&rig, &engine, &store, other.as_ref(), &reader).await;
    assert_kv2_bookkeeping(&double, true).await;
}

// ---------------------------------------------------------------------------------------------
// KV v1, against a version 1 `kv` mount on OpenBao (one daemon per store: no two-engine race)

async fn kv1_vault() -> OpenBao {
    let vault = OpenBao::start().await;
    vault.enable_kv1(KV1_MOUNT).await;
    vault
}

async fn kv1_store(vault: &OpenBao) -> Arc<dyn SecretStore> {
    Arc::new(
        connect(&store_config(
            &vault.address,
            &vault.root_token,
            KV1_MOUNT,
            1,
        ))
        .await
        .expect("connect to OpenBao"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv1_bootstrap_then_two_rotations() {
    let vault = kv1_vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = kv1_store(&vault).await;
    let engine = rig.engine(store.clone());
    let reader = Reader::new(&vault.address, &vault.root_token, KV1_MOUNT, 1);
    bootstrap_and_two_rotations(&rig, &engine, store.as_ref(), &reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv1_a_reader_of_the_path_always_gets_a_working_token() {
    let vault = kv1_vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = kv1_store(&vault).await;
    let engine = rig.engine(store.clone());
    let reader = Reader::new(&vault.address, &vault.root_token, KV1_MOUNT, 1);
    reader_during_rotations(&rig, &engine, store.as_ref(), reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv1_stopping_before_stage_or_promote_keeps_readers_on_a_working_token() {
    let vault = Arc::new(Mutex::new(OpenBao::start_persistent().await));
    vault.lock().await.enable_kv1(KV1_MOUNT).await;
    let rig = Rig::start(NO_GRACE).await;
    let (address, root) = {
        let v = vault.lock().await;
        (v.address.clone(), v.root_token.clone())
    };
    let store = Arc::new(HookedStore::new(kv1_store(&*vault.lock().await).await));
    let engine = rig.engine(store.clone());
    let reader = Reader::new(&address, &root, KV1_MOUNT, 1);
    engine.rotate().await.expect("bootstrap");
    let t0 = store.load().await.unwrap().current.unwrap();

    // Stopped before stage: the new token is revoked, the old one stays current.
    let stopping = vault.clone();
    store.before("stage_pending", move || async move {
        stopping.lock().await.stop();
    });
    let err = engine.rotate().await.unwrap_err();
    assert!(
        matches!(&err, RotationError::Store { step: Step::Stage, source } if source.kind == StoreErrorKind::Unavailable),
        "{err}"
    );
    assert_error_is_clean(
        &err,
        &store,
        &[t0.as_tba().unwrap().token_secret.expose_secret(), &root],
    );
    assert_eq!(
        rig.active_tokens(),
        BTreeSet::from([t0.id().to_string().clone()])
    );
    vault.lock().await.restart().await;
    assert!(same_token(&reader.read().await, &t0));
    rig.assert_invariants(&store.load().await.unwrap()).await;

    // Stopped before promote: the new token stays pending, the next run promotes it.
    let stopping = vault.clone();
    store.before("promote", move || async move {
        stopping.lock().await.stop();
    });
    let err = engine.rotate().await.unwrap_err();
    assert!(
        matches!(&err, RotationError::Store { step: Step::Promote, source } if source.kind == StoreErrorKind::Unavailable),
        "{err}"
    );
    vault.lock().await.restart().await;
    assert!(same_token(&reader.read().await, &t0));
    let state = store.load().await.unwrap();
    let pending = state.pending.clone().expect("the new token stays pending");
    rig.assert_invariants(&state).await;

    let rotated = engine.rotate().await.expect("the next run completes");
    let state = store.load().await.unwrap();
    assert_eq!(
        state.current.as_ref().unwrap().id().to_string(),
        rotated.token_id
    );
    assert!(same_token(
        &state.previous.as_ref().unwrap().token,
        &pending
    ));
    assert!(same_token(
        &reader.read().await,
        state.current.as_ref().unwrap()
    ));
    rig.assert_only_current_live(&state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv1_check_writable_and_the_latch_leave_rotations_and_readers_alone() {
    let vault = kv1_vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = Arc::new(HookedStore::new(kv1_store(&vault).await));
    let engine = rig.engine(store.clone());
    let other = kv1_store(&vault).await;
    let reader = Reader::new(&vault.address, &vault.root_token, KV1_MOUNT, 1);
    check_and_latch_beside_rotations(&rig, &engine, &store, other.as_ref(), &reader).await;
}
