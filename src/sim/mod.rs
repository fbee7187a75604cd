//! `netsuite-sim`: a NetSuite stand-in for tests, the `demo` command and benchmarks.
//!
//! It implements, from `shared/netsuite-tba-protocol.md` and independently of
//! `crate::netsuite`, the endpoints `GET /rest/issuetoken` (NLAuth, with TOTP for 2FA roles),
//! `GET /rest/tokeninfo` and `GET /rest/revoketoken` (OAuth 1.0 TBA with HMAC-SHA256; revoke
//! also takes NLAuth) and `GET /rest/datacenterurls`. It checks passwords, TOTP codes,
//! signatures, nonces and timestamps for real, keeps the tokens it issued, can inject faults, and
//! enforces a per-account request concurrency limit as RESTlet domains do ([`Limits`]).
//!
//! It also implements OAuth 2.0 client credentials (M2M) from `shared/netsuite-oauth2-m2m.md`:
//! the token endpoint `POST /services/rest/auth/oauth2/v1/token` and the certificate rotation
//! endpoint under `/services/rest/auth/oauth2/v1/clients/<client ID>/certificates` (see
//! `docs/simulator-m2m.md`). An administrator's first certificate comes from
//! [`Simulator::upload_certificate`] or the seed.
//!
//! Rust API (all of it is also reachable over HTTP under `/sim/*`):
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use netsuite_token_rotator::sim::{Faults, Limits, Seed, Simulator};
//! let handle = Simulator::start(Seed::demo()).await?;     // 127.0.0.1, a free port
//! let base = handle.base_url();                           // "http://127.0.0.1:PORT"
//! handle.sim().set_faults(Faults { reset: 0.2, ..Faults::default() })?;
//! handle.sim().set_limits(Limits { concurrency_limit: Some(2), latency_ms: 50 })?;
//! let seen = handle.sim().inspect();  // tokens, counters, failed logins; no secrets
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! HTTP control surface (JSON):
//! - `GET /sim/inspect` -> [`Inspection`]
//! - `GET /sim/faults`, `PUT /sim/faults` with a [`Faults`] body
//! - `GET /sim/limits`, `PUT /sim/limits` with a [`Limits`] body
//! - `POST /sim/integrations/<consumer key>/approve` and `.../block`
//! - `POST /sim/tokens` with a [`HandMadeToken`] body -> `{"tokenId", "tokenSecret"}`
//! - `POST /sim/m2m/certificates` with an [`AdminCertificate`] body -> `{"id"}`
//! - `GET /sim/m2m/answers`, `PUT /sim/m2m/answers` with an [`M2mAnswers`] body
//!
//! Choices where the protocol page is silent are kept in one place each: the reason names not
//! on the page ([`reason`]), the answer to an NLAuth revoke of a token that cannot be revoked
//! and the datacenterurls account form (both in `state.rs`, next to [`reason`]).

mod faults;
mod inspection;
mod limits;
mod m2m;
#[doc(hidden)]
pub mod parse_entry;
mod reply;
mod request;
mod seed;
mod server;
mod state;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Faults, FaultsError};
pub use inspection::{
    ControlError, FailedLogin, HandMadeToken, Inspection, IntegrationView, TokenStatus, TokenView,
    reason,
};
pub use limits::{Limits, LimitsError};
pub use m2m::{
    AddAnswer, AdminCertificate, CertificateError, CertificateStatus, CertificateView, KeyType,
    M2mAnswers, M2mError, reason as m2m_reason,
};
pub use seed::{
    IntegrationState, PERMISSION_LOG_IN_USING_ACCESS_TOKENS,
    PERMISSION_MANAGE_OWN_OAUTH2_CERTIFICATES, PERMISSION_USER_ACCESS_TOKENS, Seed, SeedAccount,
    SeedError, SeedIntegration, SeedM2mCertificate, SeedM2mClient, SeedRole, SeedToken, SeedUser,
    demo,
};

/// The simulated NetSuite: cheap to clone, every clone sees the same world.
#[derive(Clone)]
pub struct Simulator {
    // A std mutex: every section is short and none is held across an await.
    state: Arc<Mutex<state::State>>,
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("netsuite-sim cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Simulator {
    pub fn new(seed: Seed) -> Result<Simulator, SeedError> {
        Ok(Simulator {
            state: Arc::new(Mutex::new(state::State::from_seed(seed)?)),
        })
    }

    /// Starts a simulator on 127.0.0.1 with a free port.
    pub async fn start(seed: Seed) -> Result<SimHandle, StartError> {
        Simulator::start_on(seed, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(seed: Seed, addr: SocketAddr) -> Result<SimHandle, StartError> {
        Simulator::new(seed)?.serve(addr).await
    }

    /// Serves this simulator over HTTP on `addr` (port 0 picks a free one).
    pub async fn serve(&self, addr: SocketAddr) -> Result<SimHandle, StartError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let (shutdown, watcher) = watch::channel(false);
        let task = tokio::spawn(server::accept_loop(listener, self.clone(), watcher));
        Ok(SimHandle {
            sim: self.clone(),
            addr: local,
            shutdown,
            task: Some(task),
        })
    }

    /// Every token (no secrets), the request, refusal and fault counters, the requests in
    /// flight and the recent failed logins.
    pub fn inspect(&self) -> Inspection {
        self.lock().inspect()
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults()
    }

    /// Replaces the fault settings; a `rng_seed` reseeds the fault draws.
    pub fn set_faults(&self, faults: Faults) -> Result<(), FaultsError> {
        self.lock().set_faults(faults)
    }

    pub fn limits(&self) -> Limits {
        self.lock().limits()
    }

    /// Replaces the concurrency limit and service time. Requests in flight keep their slots
    /// and are counted against a new limit; a new service time applies to requests arriving
    /// after it.
    pub fn set_limits(&self, limits: Limits) -> Result<(), LimitsError> {
        self.lock().set_limits(limits)
    }

    /// Makes a token the way the NetSuite UI does; returns its id and secret.
    pub fn create_token(
        &self,
        request: &HandMadeToken,
    ) -> Result<(String, SecretString), ControlError> {
        self.lock().create_token(request)
    }

    /// Uploads a certificate for a mapping of an M2M client, as an administrator does in the
    /// NetSuite UI (the bootstrap of a rotation); returns the certificate ID (the JWT `kid`).
    /// The endpoint's rules apply: key type and size, the two-year cap, five active at most.
    pub fn upload_certificate(&self, request: &AdminCertificate) -> Result<String, M2mError> {
        self.lock().upload_certificate(request)
    }

    pub fn m2m_answers(&self) -> M2mAnswers {
        self.lock().m2m_answers()
    }

    /// Replaces the shapes of the M2M answers (such as a certificate POST answer without ID).
    pub fn set_m2m_answers(&self, answers: M2mAnswers) {
        self.lock().set_m2m_answers(answers)
    }

    /// Enables (and marks installed) the integration with this consumer key.
    pub fn approve(&self, consumer_key: &str) -> Result<(), ControlError> {
        self.lock()
            .set_integration_state(consumer_key, IntegrationState::Enabled)
    }

    /// Blocks the integration: every request with its consumer key is then refused.
    pub fn block(&self, consumer_key: &str) -> Result<(), ControlError> {
        self.lock()
            .set_integration_state(consumer_key, IntegrationState::Blocked)
    }

    /// Says whether clients reach the simulator through a TLS terminator (a test's TLS server
    /// relaying to it): OAuth signatures are then checked over `https://` base URIs, the ones
    /// clients sign. Host and port come from the `Host` header either way. Rust API only: a
    /// terminator is something a test builds in its own process.
    pub fn set_behind_tls(&self, behind_tls: bool) {
        self.lock().set_public_scheme(behind_tls)
    }

    /// The simulator's clock in Unix seconds, injected skew included.
    pub fn now(&self) -> i64 {
        self.lock().now()
    }

    fn lock(&self) -> MutexGuard<'_, state::State> {
        // A panic under the lock leaves counters at worst half-updated; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator. Dropping it stops the server too; `shutdown` also waits for that.
pub struct SimHandle {
    sim: Simulator,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://ADDR`, the base URL to give a client (the RESTlet domain override).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn sim(&self) -> &Simulator {
        &self.sim
    }

    /// Stops accepting, drops every open connection and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
