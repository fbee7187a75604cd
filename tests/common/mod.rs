//! Shared set-up for the rotation tests: a real simulator on a loopback port, a real file store
//! in a temporary folder, an engine wired to both, and checks of the design's invariants.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use netsuite_token_rotator::netsuite::{ClientOptions, NetSuiteClient, TbaCredentials};
use netsuite_token_rotator::rotation::{Engine, Event, EventSink, Integration};
use netsuite_token_rotator::secret::SecretString;
use netsuite_token_rotator::sim::{Seed, SimHandle, Simulator};
use netsuite_token_rotator::store::file::{FileStore, FileStoreConfig};
use netsuite_token_rotator::store::{
    CredentialRecord, Intent, LoginLatch, SecretStore, StoreError, StoreErrorKind, StoreState,
};
use uuid::Uuid;

pub use netsuite_token_rotator::sim::demo;

/// Client settings for tests: short timeouts and quick retries against the local simulator.
pub fn test_client_options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..ClientOptions::default()
    }
}

/// One `[[integrations]]` table of the demo account for the real binary: a file store at
/// `store/<name>.json` beside the config, no grace window, secrets read from the environment
/// (`IT_CONSUMER_KEY`, `IT_CONSUMER_SECRET`, and the password from `password_env`).
pub fn demo_integration_toml(base_url: &str, name: &str, password_env: &str) -> String {
    format!(
        r#"
[[integrations]]
name = "{name}"
account_id = "{account}"
endpoint = "{base_url}"
consumer_key = {{ env = "IT_CONSUMER_KEY" }}
consumer_secret = {{ env = "IT_CONSUMER_SECRET" }}
revoke_after = "0s"
[integrations.login]
email = "{email}"
password = {{ env = "{password_env}" }}
role = "{role}"
[integrations.store]
kind = "file"
path = "store/{name}.json"
"#,
        account = demo::ACCOUNT,
        email = demo::EMAIL,
        role = demo::ROLE_ID,
    )
}

pub fn integration(base_url: &str, revoke_after: Duration) -> Integration {
    Integration {
        name: "it".into(),
        token_name_prefix: "it".into(),
        ..netsuite_token_rotator::cli::demo::demo_integration(base_url, revoke_after)
    }
}

/// Records every event the engine emits.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn event(&self, _integration: &Integration, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    pub fn orphan_names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::OrphanSuspected { token_name, .. } => Some(token_name.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| pred(e)).count()
    }
}

/// Store operations a [`FaultyStore`] can be told to fail.
pub const STORE_OPS: [&str; 6] = [
    "begin_rotation",
    "stage_pending",
    "promote",
    "abandon_rotation",
    "mark_previous_revoked",
    "import_current",
];

/// A real store with chosen operations failing, standing in for a store that breaks mid-way.
pub struct FaultyStore {
    pub inner: Arc<dyn SecretStore>,
    failing: Mutex<HashSet<&'static str>>,
    kind: Mutex<StoreErrorKind>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn SecretStore>) -> FaultyStore {
        FaultyStore {
            inner,
            failing: Mutex::new(HashSet::new()),
            kind: Mutex::new(StoreErrorKind::Failed),
        }
    }
    pub fn fail(&self, op: &'static str, kind: StoreErrorKind) {
        self.failing.lock().unwrap().insert(op);
        *self.kind.lock().unwrap() = kind;
    }
    pub fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }
    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        if self.failing.lock().unwrap().contains(op) {
            return Err(StoreError::new(
                self.describe(),
                op,
                *self.kind.lock().unwrap(),
                "injected by the test",
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SecretStore for FaultyStore {
    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }
    async fn load(&self) -> Result<StoreState, StoreError> {
        self.inner.load().await
    }
    async fn begin_rotation(&self, intent: &Intent) -> Result<(), StoreError> {
        self.check("begin_rotation")?;
        self.inner.begin_rotation(intent).await
    }
    async fn stage_pending(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        self.check("stage_pending")?;
        self.inner.stage_pending(token).await
    }
    async fn promote(&self, id: Uuid, after: DateTime<Utc>) -> Result<(), StoreError> {
        self.check("promote")?;
        self.inner.promote(id, after).await
    }
    async fn abandon_rotation(&self, id: Uuid) -> Result<(), StoreError> {
        self.check("abandon_rotation")?;
        self.inner.abandon_rotation(id).await
    }
    async fn mark_previous_revoked(&self, t: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.check("mark_previous_revoked")?;
        self.inner.mark_previous_revoked(t, at).await
    }
    async fn import_current(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        self.check("import_current")?;
        self.inner.import_current(token).await
    }
    async fn set_login_latch(&self, latch: Option<&LoginLatch>) -> Result<(), StoreError> {
        self.check("set_login_latch")?;
        self.inner.set_login_latch(latch).await
    }
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.check("check_writable")?;
        self.inner.check_writable().await
    }
}

/// A simulator, a file store (behind a [`FaultyStore`]) and an engine over both.
pub struct Fixture {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    pub store: Arc<FaultyStore>,
    pub events: Arc<Recorder>,
    pub engine: Engine,
    pub client: NetSuiteClient,
    pub integration: Arc<Integration>,
}

impl Fixture {
    pub async fn new(revoke_after: Duration) -> Fixture {
        Fixture::with(Seed::demo(), revoke_after, |_| {}).await
    }

    pub async fn with(
        seed: Seed,
        revoke_after: Duration,
        adjust: impl FnOnce(&mut Integration),
    ) -> Fixture {
        let sim = Simulator::start(seed).await.expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(FileStore::new(&FileStoreConfig {
            path: dir.path().join("token.json"),
        }));
        let store = Arc::new(FaultyStore::new(file));
        let events = Arc::new(Recorder::default());
        let client = NetSuiteClient::new(test_client_options()).unwrap();
        let mut integration = integration(&sim.base_url(), revoke_after);
        adjust(&mut integration);
        let integration = Arc::new(integration);
        let engine = Engine::new(
            integration.clone(),
            client.clone(),
            store.clone(),
            events.clone(),
        );
        Fixture {
            sim,
            dir,
            store,
            events,
            engine,
            client,
            integration,
        }
    }

    pub async fn state(&self) -> StoreState {
        self.store.load().await.expect("store readable")
    }

    /// Ids of the simulator's active tokens.
    pub fn active_tokens(&self) -> HashSet<String> {
        self.sim
            .sim()
            .inspect()
            .tokens
            .iter()
            .filter(|t| t.is_active())
            .map(|t| t.token_id.clone())
            .collect()
    }

    pub fn token_count(&self) -> usize {
        self.sim.sim().inspect().tokens.len()
    }

    pub async fn token_info_ok(&self, record: &CredentialRecord) -> bool {
        let record = record
            .as_tba()
            .expect("the demo integration holds TBA records");
        let creds = TbaCredentials {
            consumer_key: SecretString::from(demo::CONSUMER_KEY),
            consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
            token_id: record.token_id.clone(),
            token_secret: record.token_secret.clone(),
        };
        self.client
            .token_info(
                &self.integration.endpoint,
                &self.integration.account,
                &creds,
            )
            .await
            .is_ok()
    }

    /// The design's invariants: the current token passes tokeninfo, and every live token is
    /// current, previous inside its grace window, pending (known to the store), or named in an
    /// orphan report.
    pub async fn assert_invariants(&self) {
        let state = self.state().await;
        if let Some(current) = &state.current {
            assert!(
                self.token_info_ok(current).await,
                "the store's current token must pass tokeninfo"
            );
        }
        let mut known: HashSet<String> = HashSet::new();
        known.extend(state.current.iter().map(|c| c.id().to_string()));
        known.extend(state.pending.iter().map(|p| p.id().to_string()));
        if let Some(p) = state.previous.as_ref().filter(|p| p.revoked_at.is_none()) {
            known.insert(p.token.id().to_string());
        }
        let orphan_names = self.events.orphan_names();
        let inspection = self.sim.sim().inspect();
        for token in inspection.tokens.iter().filter(|t| t.is_active()) {
            assert!(
                known.contains(&token.token_id) || orphan_names.contains(&token.name),
                "token {} ({}) is live but neither in the store nor named in an orphan report",
                token.token_id,
                token.name
            );
        }
    }
}

/// The keys of an M2M integration's reader-facing record (docs/consumers.md).
pub const M2M_READER_KEYS: [&str; 9] = [
    "account_id",
    "algorithm",
    "certificate",
    "certificate_id",
    "client_id",
    "issued_at",
    "not_after",
    "private_key",
    "rotation_id",
];

/// A certificate "an administrator" made and uploaded for the demo M2M mapping: its ID, key
/// and certificate, ready for `import`.
pub fn admin_upload(
    sim: &SimHandle,
    kind: netsuite_token_rotator::netsuite::m2m::KeyKind,
) -> (
    String,
    netsuite_token_rotator::netsuite::m2m::NewCertificate,
) {
    let made = netsuite_token_rotator::netsuite::m2m::generate_certificate(
        kind,
        "uploaded by hand",
        Duration::from_secs(90 * 86_400),
    )
    .expect("a key pair and certificate");
    let id = sim
        .sim()
        .upload_certificate(&netsuite_token_rotator::sim::AdminCertificate {
            client_id: demo::M2M_CLIENT_ID.into(),
            entity: demo::ENTITY_ID.into(),
            role: demo::ROLE_ID.into(),
            pem: made.certificate.clone(),
        })
        .expect("the simulator takes the administrator's upload");
    (id, made)
}

/// An M2M integration of the demo seed on its own simulator and file store, its first
/// certificate uploaded by "an administrator" and imported.
pub struct M2mFixture {
    pub sim: SimHandle,
    pub store: Arc<dyn SecretStore>,
    pub engine: Engine,
    _dir: tempfile::TempDir,
}

impl M2mFixture {
    pub async fn imported() -> M2mFixture {
        let sim = Simulator::start(Seed::demo()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SecretStore> = Arc::new(FileStore::new(&FileStoreConfig {
            path: dir.path().join("m2m.json"),
        }));
        let engine = Engine::new(
            Arc::new(netsuite_token_rotator::cli::demo::demo_m2m_integration(
                &sim.base_url(),
                Duration::ZERO,
            )),
            NetSuiteClient::new(test_client_options()).unwrap(),
            store.clone(),
            Arc::new(Recorder::default()),
        );
        let (id, made) = admin_upload(&sim, netsuite_token_rotator::netsuite::m2m::KeyKind::EcP256);
        engine
            .import_certificate(id, made.private_key, Some(made.certificate))
            .await
            .expect("import");
        M2mFixture {
            sim,
            store,
            engine,
            _dir: dir,
        }
    }

    pub async fn state(&self) -> StoreState {
        self.store.load().await.unwrap()
    }
}
