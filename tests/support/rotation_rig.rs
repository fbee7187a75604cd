//! Rotation-level test rig shared by the store rotation tests (`tests/store_rotation_*.rs`): a
//! real simulator and engines over any [`SecretStore`], a store wrapper that runs a test's hook
//! right before an operation is forwarded (to stop the server under a rotation, or to make two
//! engines meet at the check-and-set), and a reader that reads the store the way a real reader
//! does and checks every token it reads against the simulator.
//!
//! Include it next to `tests/common/mod.rs`:
//!
//! ```ignore
//! mod common;
//! #[path = "support/rotation_rig.rs"]
//! mod rotation_rig;
//! ```

#![allow(dead_code)] // each test binary uses its own part of this

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use netsuite_token_rotator::netsuite::{NetSuiteClient, TbaCredentials};
use netsuite_token_rotator::rotation::{Engine, Integration};
use netsuite_token_rotator::secret::{ExposeSecret, SecretString};
use netsuite_token_rotator::sim::{Inspection, Seed, SimHandle, Simulator};
use netsuite_token_rotator::store::{
    CredentialRecord, Intent, LoginLatch, SecretStore, StoreError, StoreState,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::common::{Recorder, integration, test_client_options};

/// A simulator and what engines over it share: the client, the integration and an event log.
pub struct Rig {
    pub sim: SimHandle,
    pub client: NetSuiteClient,
    pub integration: Arc<Integration>,
    pub events: Arc<Recorder>,
}

impl Rig {
    pub async fn start(revoke_after: Duration) -> Rig {
        let sim = Simulator::start(Seed::demo())
            .await
            .expect("simulator starts");
        let integration = Arc::new(integration(&sim.base_url(), revoke_after));
        Rig {
            sim,
            client: NetSuiteClient::new(test_client_options()).expect("NetSuite client"),
            integration,
            events: Arc::new(Recorder::default()),
        }
    }

    /// A new engine (its own owner id) over `store`, recording into the rig's event log.
    pub fn engine(&self, store: Arc<dyn SecretStore>) -> Engine {
        Engine::new(
            self.integration.clone(),
            self.client.clone(),
            store,
            self.events.clone(),
        )
    }

    /// Ids of the simulator's live tokens.
    pub fn active_tokens(&self) -> BTreeSet<String> {
        active_ids(&self.sim.sim().inspect())
    }

    /// How many tokens the simulator ever issued (live or revoked).
    pub fn token_count(&self) -> usize {
        self.sim.sim().inspect().tokens.len()
    }

    /// Whether `tokeninfo` signed with `record` (and its stored consumer pair) is accepted.
    pub async fn token_info_ok(&self, record: &CredentialRecord) -> bool {
        token_info_ok(&self.client, &self.integration, record).await
    }

    /// The design's invariants after a rotation run: the store's current token passes
    /// tokeninfo, and every live token is current, an unrevoked previous (inside its grace
    /// window), pending (known to the store), or named in an orphan report.
    pub async fn assert_invariants(&self, state: &StoreState) {
        if let Some(current) = &state.current {
            assert!(
                self.token_info_ok(current).await,
                "the store's current token {} must pass tokeninfo",
                current.id()
            );
        }
        let mut known: BTreeSet<String> = BTreeSet::new();
        known.extend(state.current.iter().map(|c| c.id().to_string()));
        known.extend(state.pending.iter().map(|p| p.id().to_string()));
        if let Some(previous) = state.previous.as_ref().filter(|p| p.revoked_at.is_none()) {
            known.insert(previous.token.id().to_string());
        }
        let orphan_names = self.events.orphan_names();
        for token in self.sim.sim().inspect().active_tokens() {
            assert!(
                known.contains(&token.token_id) || orphan_names.contains(&token.name),
                "token {} ({}) is live but neither in the store nor named in an orphan report",
                token.token_id,
                token.name
            );
        }
    }

    /// After a settled rotation with no grace window: exactly the current token is live.
    pub async fn assert_only_current_live(&self, state: &StoreState) {
        let current = state.current.as_ref().expect("a current token");
        assert!(state.intent.is_none() && state.pending.is_none(), "settled");
        assert_eq!(
            self.active_tokens(),
            BTreeSet::from([current.id().to_string()]),
            "only the current token is live"
        );
        self.assert_invariants(state).await;
    }
}

pub fn active_ids(inspection: &Inspection) -> BTreeSet<String> {
    inspection
        .active_tokens()
        .map(|t| t.token_id.clone())
        .collect()
}

pub async fn token_info_ok(
    client: &NetSuiteClient,
    integration: &Integration,
    record: &CredentialRecord,
) -> bool {
    let record = record
        .as_tba()
        .expect("a TBA integration holds TBA records");
    let tba = integration.tba().expect("a TBA integration");
    let creds = TbaCredentials {
        consumer_key: record
            .consumer_key
            .clone()
            .unwrap_or_else(|| tba.consumer_key.clone()),
        consumer_secret: record
            .consumer_secret
            .clone()
            .unwrap_or_else(|| tba.consumer_secret.clone()),
        token_id: record.token_id.clone(),
        token_secret: record.token_secret.clone(),
    };
    client
        .token_info(&integration.endpoint, &integration.account, &creds)
        .await
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// A store wrapper with hooks

/// Something a test runs right before an operation reaches the real store.
pub type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A real store whose operations can be preceded by a one-shot hook (stopping the server, say),
/// and whose `begin_rotation` can wait at a [`Rendezvous`]. It also keeps every token secret it
/// passes on, so tests can check that no error message quotes one.
pub struct HookedStore {
    pub inner: Arc<dyn SecretStore>,
    hooks: Mutex<Vec<(&'static str, Hook)>>,
    rendezvous: Mutex<Option<Arc<Rendezvous>>>,
    secrets: Mutex<Vec<SecretString>>,
}

impl HookedStore {
    pub fn new(inner: Arc<dyn SecretStore>) -> HookedStore {
        HookedStore {
            inner,
            hooks: Mutex::new(Vec::new()),
            rendezvous: Mutex::new(None),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// Runs `hook` once, right before the next `op` (a [`SecretStore`] method name) is forwarded.
    pub fn before<F, Fut>(&self, op: &'static str, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks
            .lock()
            .unwrap()
            .push((op, Box::new(move || Box::pin(hook()))));
    }

    /// Makes every `begin_rotation` wait at `rendezvous` before it is forwarded.
    pub fn meet_before_begin(&self, rendezvous: Arc<Rendezvous>) {
        *self.rendezvous.lock().unwrap() = Some(rendezvous);
    }

    /// Every token secret this wrapper passed to the store.
    pub fn secrets_seen(&self) -> Vec<String> {
        self.secrets
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.expose_secret().to_string())
            .collect()
    }

    async fn run_hooks(&self, op: &'static str) {
        let due: Vec<Hook> = {
            let mut hooks = self.hooks.lock().unwrap();
            let (due, rest): (Vec<_>, Vec<_>) = hooks.drain(..).partition(|(o, _)| *o == op);
            *hooks = rest;
            due.into_iter().map(|(_, h)| h).collect()
        };
        for hook in due {
            hook().await;
        }
    }

    fn keep_secret(&self, token: &CredentialRecord) {
        self.secrets
            .lock()
            .unwrap()
            .push(token.as_tba().expect("a TBA record").token_secret.clone());
    }
}

#[async_trait::async_trait]
impl SecretStore for HookedStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn load(&self) -> Result<StoreState, StoreError> {
        self.run_hooks("load").await;
        self.inner.load().await
    }
    async fn begin_rotation(&self, intent: &Intent) -> Result<(), StoreError> {
        let rendezvous = self.rendezvous.lock().unwrap().clone();
        if let Some(rendezvous) = rendezvous {
            rendezvous.arrive().await;
        }
        self.run_hooks("begin_rotation").await;
        self.inner.begin_rotation(intent).await
    }
    async fn stage_pending(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        self.keep_secret(token);
        self.run_hooks("stage_pending").await;
        self.inner.stage_pending(token).await
    }
    async fn promote(&self, id: Uuid, after: DateTime<Utc>) -> Result<(), StoreError> {
        self.run_hooks("promote").await;
        self.inner.promote(id, after).await
    }
    async fn abandon_rotation(&self, id: Uuid) -> Result<(), StoreError> {
        self.run_hooks("abandon_rotation").await;
        self.inner.abandon_rotation(id).await
    }
    async fn mark_previous_revoked(&self, t: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.run_hooks("mark_previous_revoked").await;
        self.inner.mark_previous_revoked(t, at).await
    }
    async fn import_current(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        self.keep_secret(token);
        self.run_hooks("import_current").await;
        self.inner.import_current(token).await
    }
    async fn set_login_latch(&self, latch: Option<&LoginLatch>) -> Result<(), StoreError> {
        self.run_hooks("set_login_latch").await;
        self.inner.set_login_latch(latch).await
    }
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.run_hooks("check_writable").await;
        self.inner.check_writable().await
    }
}

/// Makes the next rotation through `store` call `check_writable` right before its begin, stage
/// and promote (as `check` may while a daemon rotates), each time checking that it passed and
/// changed nothing `load` shows.
pub fn check_writable_before_each_step(store: &HookedStore) {
    for op in ["begin_rotation", "stage_pending", "promote"] {
        let inner = store.inner.clone();
        store.before(op, move || async move {
            let before = format!("{:?}", inner.load().await.expect("load before the check"));
            if let Err(e) = inner.check_writable().await {
                panic!("check_writable before {op}: {e}");
            }
            let after = format!("{:?}", inner.load().await.expect("load after the check"));
            assert_eq!(
                before, after,
                "check_writable before {op} changed the store"
            );
        });
    }
}

/// A latch as the engine would write it after a refused login.
pub fn refused_login_latch() -> LoginLatch {
    LoginLatch {
        at: Utc::now(),
        login: "k9Xw+fingerprint/=".into(),
        reason: "401 INVALID_LOGIN_CREDENTIALS".into(),
    }
}

/// Sets the latch through `store`; checks that `other` (another process on the same store) sees
/// it, that `read` (a reader) still gets the current token and that every invariant holds; then
/// clears it through `other`.
pub async fn latch_seen_by_another_store_and_cleared<F, Fut>(
    rig: &Rig,
    store: &dyn SecretStore,
    other: &dyn SecretStore,
    read: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = CredentialRecord>,
{
    let latch = refused_login_latch();
    store.set_login_latch(Some(&latch)).await.unwrap();
    assert_eq!(other.load().await.unwrap().login_latch, Some(latch));
    let state = store.load().await.unwrap();
    let current = state.current.as_ref().expect("a current token");
    let read = read().await;
    assert_eq!(
        (read.id().to_string().as_str(), read.rotation_id()),
        (current.id(), current.rotation_id())
    );
    rig.assert_invariants(&state).await;
    other.set_login_latch(None).await.unwrap();
    assert_eq!(store.load().await.unwrap().login_latch, None);
}

/// Lets `parties` tasks meet: each [`Rendezvous::arrive`] waits until all have arrived or left.
/// A party that finishes without arriving must call [`Rendezvous::leave`], so that the others
/// are not kept waiting for it (a failure then shows as a failed assertion, not a hang).
pub struct Rendezvous {
    parties: usize,
    count: Mutex<usize>,
    changed: Notify,
}

impl Rendezvous {
    pub fn new(parties: usize) -> Arc<Rendezvous> {
        Arc::new(Rendezvous {
            parties,
            count: Mutex::new(0),
            changed: Notify::new(),
        })
    }

    /// Starts a new round.
    pub fn reset(&self) {
        *self.count.lock().unwrap() = 0;
    }

    pub async fn arrive(&self) {
        self.bump();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if *self.count.lock().unwrap() >= self.parties {
                return;
            }
            changed.await;
        }
    }

    pub fn leave(&self) {
        self.bump();
    }

    fn bump(&self) {
        *self.count.lock().unwrap() += 1;
        self.changed.notify_waiters();
    }
}

// ---------------------------------------------------------------------------------------------
// A reader beside the rotations

/// What a reader saw.
#[derive(Debug)]
pub struct ReaderReport {
    pub reads: usize,
    /// Distinct token ids, in the order first read.
    pub tokens: Vec<String>,
    /// Reads whose token was replaced and revoked between the read and the tokeninfo call made
    /// right after it (the race a zero grace window allows; each one was checked to have been
    /// live when read).
    pub revoked_after_read: usize,
}

/// Most reads a reader makes before it gives up on the rotations finishing.
const READ_LIMIT: usize = 20_000;
/// Reads a reader still makes after the rotations finished.
const READS_AFTER_DONE: usize = 5;

/// A reader task: reads the store with `read` (as a real consumer does) until `done` is set and
/// a few more times, and for every token it reads calls tokeninfo against the simulator at once.
/// Each read token must be accepted, or else must have been live in the simulator just before
/// the read and revoked since (the previous token whose grace window ended right after the
/// read). A token already revoked before it was read, or refused while live, fails the test.
///
/// `first_read` is signalled after the first checked read, so the caller can start rotating
/// only once the reader has seen the token it started with.
pub fn spawn_reader<F, Fut>(
    sim: Simulator,
    client: NetSuiteClient,
    integration: Arc<Integration>,
    done: Arc<AtomicBool>,
    first_read: tokio::sync::oneshot::Sender<()>,
    read: F,
) -> tokio::task::JoinHandle<ReaderReport>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = CredentialRecord> + Send,
{
    tokio::spawn(async move {
        let mut report = ReaderReport {
            reads: 0,
            tokens: Vec::new(),
            revoked_after_read: 0,
        };
        let mut first_read = Some(first_read);
        let mut after_done = 0;
        while report.reads < READ_LIMIT {
            if done.load(Ordering::SeqCst) {
                after_done += 1;
                if after_done > READS_AFTER_DONE {
                    return report;
                }
            }
            let before = sim.inspect();
            let record = read().await;
            report.reads += 1;
            if !report.tokens.contains(&record.id().to_string()) {
                report.tokens.push(record.id().to_string().clone());
            }
            let id = &record.id().to_string();
            let live_before = match before.token(id) {
                Some(view) => view.is_active(),
                // Issued after the snapshot and promoted before the read: live when read.
                None => true,
            };
            assert!(
                live_before,
                "read {}: the store served token {id}, which the simulator had already revoked",
                report.reads
            );
            if !token_info_ok(&client, &integration, &record).await {
                let after = sim.inspect();
                let view = after.token(id).unwrap_or_else(|| {
                    panic!(
                        "read {}: token {id} is unknown to the simulator",
                        report.reads
                    )
                });
                assert!(
                    !view.is_active(),
                    "read {}: tokeninfo refused token {id} although the simulator holds it live \
                     (the store served a broken value)",
                    report.reads
                );
                report.revoked_after_read += 1;
            }
            if let Some(signal) = first_read.take() {
                let _ = signal.send(());
            }
        }
        panic!("the rotations did not finish within {READ_LIMIT} reads");
    })
}

/// One round of two engines rotating one store at once, both having read the store before
/// either records its intent (they meet in `meeting`): exactly one wins, the other sees the
/// winner's rotation, and afterwards only the winner's token is current and live. Returns the
/// store state after the round.
pub async fn race_round(
    rig: &Rig,
    (engine_a, engine_b): (&Engine, &Engine),
    store: &dyn SecretStore,
    meeting: &Rendezvous,
    round: usize,
) -> netsuite_token_rotator::store::StoreState {
    use netsuite_token_rotator::rotation::{RotationError, Step};
    use netsuite_token_rotator::store::StoreErrorKind;
    meeting.reset();
    let (ra, rb) = tokio::join!(
        async {
            let r = engine_a.rotate().await;
            meeting.leave();
            r
        },
        async {
            let r = engine_b.rotate().await;
            meeting.leave();
            r
        }
    );
    let (winner, loser) = match (ra, rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (ra, rb) => panic!("round {round}: expected one winner, got {ra:?} and {rb:?}"),
    };
    assert!(
        matches!(&loser, RotationError::InProgress { .. })
            || matches!(&loser, RotationError::Store { step: Step::Intent, source } if source.kind == StoreErrorKind::Conflict),
        "round {round}: the loser must see the winner's rotation: {loser}"
    );
    let state = store.load().await.unwrap();
    assert_eq!(
        state.current.as_ref().unwrap().id(),
        winner.token_id,
        "round {round}"
    );
    rig.assert_only_current_live(&state).await;
    state
}
