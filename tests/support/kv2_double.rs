//! An in-process HTTP double of HashiCorp Vault's KV version 2 secrets engine, for tests.
//!
//! No Vault build can be installed where these tests run, so the KV v2 semantics the Vault store
//! relies on (versions, check-and-set, soft delete, destroy, key metadata and `custom_metadata`)
//! are checked against this double, which follows Vault's published API rather than a guess at it.
//! Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/kv2_double.rs"]
//! mod kv2_double;
//! ```
//!
//! (a `#[path]` include rather than `tests/support/mod.rs`, so that each test binary takes only
//! the helpers it names and no shared `mod.rs` has to list them all).
//!
//! Written from:
//! - KV v2 API: `website/content/api-docs/secret/kv/kv-v2.mdx` in hashicorp/vault
//!   (published at /vault/api-docs/secret/kv/kv-v2): request and response shapes, `cas`,
//!   `cas_required`, `max_versions` ("when 0 is used or the value is unset, Vault will keep 10
//!   versions"), `delete_version_after`, `custom_metadata`, PATCH with
//!   `application/merge-patch+json`, delete/undelete/destroy, LIST.
//! - HTTP API overview: `website/content/api-docs/index.mdx` (token in `X-Vault-Token` or
//!   `Authorization: Bearer`, `X-Vault-Namespace`, `PUT` = `POST`, `GET ?list=true` = `LIST`,
//!   `{"errors":[...]}` for every status >= 400, an empty LIST is 404 `{"errors":[]}`, 204 when
//!   there is no body).
//! - Token API: `website/content/api-docs/auth/token.mdx` (lookup-self, renew-self shapes);
//!   `website/content/api-docs/system/health.mdx` (`/sys/health` of an unsealed active node).
//! - Where the pages are silent, the KV plugin's handlers (hashicorp/vault-plugin-secrets-kv,
//!   `path_data.go`, `path_metadata.go`, `path_delete.go`, `path_destroy.go`, `path_config.go`)
//!   and Vault's response envelope (`sdk/logical/translate_response.go`): the exact error texts
//!   (`check-and-set parameter did not match the current version`, `check-and-set parameter
//!   required for this call`, `no data provided`, `No version number provided`), the 404 with
//!   `data: null` and the version metadata for a deleted or destroyed version, the
//!   `oldest_version` bookkeeping when old versions are trimmed, `custom_metadata` limits (64
//!   keys, key 1..=128 bytes, value 1..=512 bytes, printable) and `null` when none is set, and
//!   the "Invalid path for a versioned K/V secrets engine" 404 for paths outside
//!   `data/`, `metadata/`, `delete/`, `undelete/`, `destroy/` and `config`.
//!
//! - ACL policies: `website/content/docs/concepts/policies.mdx` (capabilities `create`, `read`,
//!   `update`, `patch`, `delete`, `list`, `deny`; `create` for a write to a key that does not
//!   exist yet, `update` for one that does; a path with no matching rule is denied; an exact
//!   path wins over a glob, and of two globs the longer prefix wins). Checked after the token
//!   and before the KV engine, so a write the policy allows may still be refused by the engine.
//!
//! Deliberate simplifications (see also the list at the top of `tests/kv2_double.rs`):
//! - One KV v2 mount, one token. Without [`Kv2Double::set_policy`] the token may do everything
//!   (a root token); with it, one policy of exact paths and `*`-suffixed globs (no `+`
//!   segments, no parameter constraints). `auth/token/*-self` and `sys/health` are always
//!   allowed, as Vault's `default` policy and the unauthenticated health endpoint allow them.
//! - A version whose `deletion_time` is now counts as deleted (Vault: strictly before now).
//! - A key's own `max_versions` wins over the mount's when non-zero, as the API page says
//!   ("a key's metadata setting can overwrite this value"); newer plugin code takes the larger of
//!   the two.
//! - Field conversion errors (a `max_versions` that is not a number, say) are 400s whose text
//!   approximates Vault's.
//! - PATCH of a key that does not exist answers 404 with an empty body (the plugin answers
//!   `RespondWithStatusCode(nil, ..)`); clients must not rely on a body there.
//!
//! State lives in memory, shared by the listener: [`Kv2Double::stop`] closes the listener and
//! every open connection (a store that is down), [`Kv2Double::restart`] listens again on the
//! same port with the same secrets.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The mount a fresh Vault dev server enables KV v2 at.
pub const DEFAULT_MOUNT: &str = "secret";
/// Vault's text when `options.cas` is not the key's current version.
pub const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
/// Vault's text when `cas_required` is set and a write carries no `options.cas`.
pub const CAS_REQUIRED: &str = "check-and-set parameter required for this call";
/// Vault's text when `options.cas` is not a number.
pub const CAS_UNPARSABLE: &str = "error parsing check-and-set parameter";
/// Vault's text for a missing, wrong or revoked token.
pub const PERMISSION_DENIED: &str = "permission denied";
/// The warning Vault attaches to a 404 for a path a KV v2 mount does not serve.
pub const INVALID_KV2_PATH_WARNING: &str = "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.";
/// The Vault version `/sys/health` reports.
pub const EMULATED_VAULT_VERSION: &str = "1.17.0";

/// "When 0 is used or the value is unset, Vault will keep 10 versions."
const DEFAULT_MAX_VERSIONS: u32 = 10;
const MAX_CUSTOM_METADATA_KEYS: usize = 64;
const MAX_CUSTOM_METADATA_KEY_LEN: usize = 128;
const MAX_CUSTOM_METADATA_VALUE_LEN: usize = 512;
const CUSTOM_METADATA_ERROR_PREFIX: &str = "custom_metadata validation failed";
const CAS_REQUIRED_IGNORED_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";
/// Vault's default token TTL (768h).
const TOKEN_TTL_SECS: i64 = 768 * 3600;
const TOKEN_ACCESSOR: &str = "kv2-double-accessor-0000";

/// Which endpoint a request went to, for [`Kv2Double::request_count`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathKind {
    /// `/v1/<mount>/data/<path>`
    Data,
    /// `/v1/<mount>/metadata/<path>`
    Metadata,
    /// `/v1/<mount>/delete/<path>`
    Delete,
    /// `/v1/<mount>/undelete/<path>`
    Undelete,
    /// `/v1/<mount>/destroy/<path>`
    Destroy,
    /// `/v1/<mount>/config`
    Config,
    /// Any other path inside the mount (Vault answers 404 with a warning).
    InvalidKvPath,
    /// `/v1/auth/token/lookup-self`
    TokenLookupSelf,
    /// `/v1/auth/token/renew-self`
    TokenRenewSelf,
    /// `/v1/sys/health`
    Health,
    /// Anything the double has no handler for.
    NoHandler,
}

/// One request the double answered. Holds no token and no body, so it can be printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub kind: PathKind,
    /// The key path inside the mount (`netsuite/erp-sync`), or the request path for other kinds.
    pub path: String,
    /// The `X-Vault-Namespace` header, if any.
    pub namespace: Option<String>,
    pub status: u16,
}

/// Mount-wide settings, as `/v1/<mount>/config` reads and writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountConfig {
    /// 0 means Vault's default of 10.
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 is unset, negative disables `delete_version_after` on every key.
    pub delete_version_after_secs: i64,
}

/// One version of a secret.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredVersion {
    pub created_time: DateTime<Utc>,
    /// Set by a soft delete, or ahead of time by `delete_version_after`.
    pub deletion_time: Option<DateTime<Utc>>,
    pub destroyed: bool,
    /// `None` once destroyed.
    pub data: Option<Map<String, Value>>,
}

/// A key's metadata and the versions it still keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSecret {
    pub created_time: DateTime<Utc>,
    pub updated_time: DateTime<Utc>,
    pub current_version: u64,
    pub oldest_version: u64,
    /// 0 means the mount's setting.
    pub max_versions: u32,
    pub cas_required: bool,
    pub delete_version_after_secs: i64,
    /// `None` reads back as JSON `null`; Vault stores an empty map as none at all.
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub versions: BTreeMap<u64, StoredVersion>,
}

/// A running KV v2 double on 127.0.0.1.
pub struct Kv2Double {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<RunningServer>,
}

struct RunningServer {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Kv2Double {
    /// Starts a double with a KV v2 mount at `secret/` that accepts only `token`.
    pub async fn start(token: &str) -> Kv2Double {
        Self::start_with_mount(token, DEFAULT_MOUNT).await
    }

    /// Starts a double with its KV v2 mount at `mount` (no slashes) that accepts only `token`.
    pub async fn start_with_mount(token: &str, mount: &str) -> Kv2Double {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 for the KV v2 double");
        let addr = listener
            .local_addr()
            .expect("reading the KV v2 double's local address");
        let shared = Arc::new(Shared::new(token, mount.trim_matches('/')));
        let server = Some(serve(listener, Arc::clone(&shared)));
        Kv2Double {
            shared,
            addr,
            server,
        }
    }

    /// The base URL to give a Vault client, e.g. `http://127.0.0.1:41234`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn mount(&self) -> &str {
        &self.shared.mount
    }

    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops listening and closes every connection once its request in flight (if any) is
    /// answered. Secrets survive for [`Kv2Double::restart`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            // The receiver only goes away if the server task already ended, which the await
            // below reports.
            let _ = server.shutdown.send(());
            server
                .task
                .await
                .expect("the KV v2 double's server task ended without panicking");
        }
    }

    /// Listens again on the same port, with the same state. Panics if the port was taken in the
    /// meantime, which would make the test meaningless.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await.unwrap_or_else(|error| {
            panic!(
                "re-binding the KV v2 double to {} after a stop: {error}",
                self.addr
            )
        });
        self.server = Some(serve(listener, Arc::clone(&self.shared)));
    }

    /// From now on only `token` is accepted (the old one answers 403, like a revoked token).
    pub fn set_token(&self, token: &str) {
        self.shared.lock().token = token.to_owned();
    }

    /// With `Some(ns)`, requests whose `X-Vault-Namespace` is not `ns` (trailing `/` ignored)
    /// are refused with 403, as Vault refuses a token used outside its namespace.
    pub fn require_namespace(&self, namespace: Option<&str>) {
        self.shared.lock().required_namespace = namespace.map(normalize_namespace);
    }

    pub fn set_config(&self, config: MountConfig) {
        self.shared.lock().config = config;
    }

    pub fn config(&self) -> MountConfig {
        self.shared.lock().config
    }

    /// A copy of a key's metadata and versions, read without going through HTTP.
    pub fn secret(&self, path: &str) -> Option<StoredSecret> {
        self.shared.lock().secrets.get(path).cloned()
    }

    /// The data of the key's current version, if that version is readable (not deleted or
    /// destroyed).
    pub fn latest_data(&self, path: &str) -> Option<Map<String, Value>> {
        let state = self.shared.lock();
        let secret = state.secrets.get(path)?;
        let version = secret.versions.get(&secret.current_version)?;
        if version.is_readable(Utc::now()) {
            version.data.clone()
        } else {
            None
        }
    }

    /// Every key path in the mount, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.shared.lock().secrets.keys().cloned().collect()
    }

    /// Writes a new version directly, without check-and-set, and returns its number.
    pub fn seed(&self, path: &str, data: Map<String, Value>) -> u64 {
        let mut state = self.shared.lock();
        let config = state.config;
        let now = Utc::now();
        let secret = state
            .secrets
            .entry(path.to_owned())
            .or_insert_with(|| StoredSecret::new(now));
        let deletion = deletion_time_for(
            now,
            config.delete_version_after_secs,
            secret.delete_version_after_secs,
        );
        secret.add_version(now, deletion, data, config.max_versions)
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many requests with this method (`GET`, `LIST`, ...) went to this kind of endpoint.
    pub fn request_count(&self, method: &str, kind: PathKind) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.kind == kind && request.method.eq_ignore_ascii_case(method))
            .count()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// From now on the token holds only this policy: `(path under /v1/, capabilities)` rules,
    /// e.g. `("secret/data/app", &["read"])` or `("secret/metadata/*", &["list"])`. `None`
    /// gives it every right again.
    pub fn set_policy(&self, rules: Option<&[(&str, &[&str])]>) {
        self.shared.lock().policy = rules.map(|rules| {
            rules
                .iter()
                .map(|(path, capabilities)| {
                    let capabilities = capabilities.iter().map(|c| (*c).to_owned()).collect();
                    ((*path).to_owned(), capabilities)
                })
                .collect()
        });
    }

    /// The next `count` authenticated requests are answered with `status` and
    /// `{"errors":["injected fault"]}` without being applied.
    pub fn refuse_next(&self, count: usize, status: u16) {
        let mut state = self.shared.lock();
        state.faults.refuse_next = count;
        state.faults.refuse_status = status;
    }

    /// The next `count` authenticated requests are applied, then answered with 500: the client
    /// cannot tell whether its write happened, as after a lost answer.
    pub fn lose_next_answers(&self, count: usize) {
        self.shared.lock().faults.lose_answer_next = count;
    }
}

impl Drop for Kv2Double {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.shutdown.send(());
        }
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>) -> RunningServer {
    let app = Router::new().fallback(handle).with_state(shared);
    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown_signal.await;
            })
            .await
            .expect("serving the KV v2 double");
    });
    RunningServer { shutdown, task }
}

struct Shared {
    mount: String,
    state: Mutex<DoubleState>,
}

impl Shared {
    fn new(token: &str, mount: &str) -> Shared {
        let now = Utc::now();
        Shared {
            mount: mount.to_owned(),
            state: Mutex::new(DoubleState {
                token: token.to_owned(),
                token_issued: now,
                token_expires: now + TimeDelta::seconds(TOKEN_TTL_SECS),
                required_namespace: None,
                policy: None,
                config: MountConfig::default(),
                secrets: BTreeMap::new(),
                requests: Vec::new(),
                faults: Faults::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DoubleState> {
        // A panic while holding the lock is a bug in a test; the state is still worth reading.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct DoubleState {
    token: String,
    token_issued: DateTime<Utc>,
    token_expires: DateTime<Utc>,
    required_namespace: Option<String>,
    /// `None`: every right (a root token).
    policy: Option<Vec<(String, BTreeSet<String>)>>,
    config: MountConfig,
    secrets: BTreeMap<String, StoredSecret>,
    requests: Vec<RecordedRequest>,
    faults: Faults,
}

#[derive(Default)]
struct Faults {
    refuse_next: usize,
    refuse_status: u16,
    lose_answer_next: usize,
}

/// The whole request is handled under the state lock, so every write is atomic with its
/// check-and-set, as Vault's per-key lock makes it.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming::parse(&method, &uri, &headers, &body);
    let mut state = shared.lock();
    let (route, reply) = state.answer(&shared.mount, &incoming);
    state.requests.push(RecordedRequest {
        method: method.as_str().to_owned(),
        kind: route.kind(),
        path: route.key().to_owned(),
        namespace: incoming.namespace.clone(),
        status: reply.status.as_u16(),
    });
    drop(state);
    reply.into_response()
}

/// What the double needs from an HTTP request.
struct Incoming<'a> {
    method: &'a Method,
    /// Percent-decoded path, `/v1/...`.
    path: String,
    query: BTreeMap<String, String>,
    token: Option<String>,
    namespace: Option<String>,
    content_type: Option<String>,
    body: &'a [u8],
}

impl<'a> Incoming<'a> {
    fn parse(method: &'a Method, uri: &Uri, headers: &HeaderMap, body: &'a [u8]) -> Incoming<'a> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let bearer = header("authorization").and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .map(|token| token.trim().to_owned())
        });
        Incoming {
            method,
            path: percent_decode(uri.path()),
            query: parse_query(uri.query().unwrap_or("")),
            token: header("x-vault-token").or(bearer),
            namespace: header("x-vault-namespace"),
            content_type: header("content-type"),
            body,
        }
    }
}

/// The operation Vault derives from the method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Read,
    List,
    Update,
    Patch,
    Delete,
    Head,
}

/// Where a request goes.
enum Route {
    Health,
    LookupSelf,
    RenewSelf,
    Config,
    Data(String),
    Metadata(String),
    Delete(String),
    Undelete(String),
    Destroy(String),
    InvalidKvPath(String),
    NoHandler(String),
}

impl Route {
    /// `path` is what follows `/v1/`.
    fn classify(path: &str, mount: &str) -> Route {
        match path {
            "sys/health" => return Route::Health,
            "auth/token/lookup-self" => return Route::LookupSelf,
            "auth/token/renew-self" => return Route::RenewSelf,
            _ => {}
        }
        let inside_mount = match path.strip_prefix(mount) {
            Some("") => "",
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ => return Route::NoHandler(path.to_owned()),
        };
        if inside_mount == "config" {
            return Route::Config;
        }
        if let Some(key) = inside_mount.strip_prefix("data/") {
            // Vault's data pattern needs a non-empty path that does not end in '/'.
            if !key.is_empty() && !key.ends_with('/') {
                return Route::Data(key.to_owned());
            }
        } else if let Some(key) = inside_mount.strip_prefix("metadata/") {
            return Route::Metadata(key.to_owned());
        } else if let Some(key) = inside_mount.strip_prefix("delete/") {
            return Route::Delete(key.to_owned());
        } else if let Some(key) = inside_mount.strip_prefix("undelete/") {
            return Route::Undelete(key.to_owned());
        } else if let Some(key) = inside_mount.strip_prefix("destroy/") {
            return Route::Destroy(key.to_owned());
        }
        Route::InvalidKvPath(inside_mount.to_owned())
    }

    fn kind(&self) -> PathKind {
        match self {
            Route::Health => PathKind::Health,
            Route::LookupSelf => PathKind::TokenLookupSelf,
            Route::RenewSelf => PathKind::TokenRenewSelf,
            Route::Config => PathKind::Config,
            Route::Data(_) => PathKind::Data,
            Route::Metadata(_) => PathKind::Metadata,
            Route::Delete(_) => PathKind::Delete,
            Route::Undelete(_) => PathKind::Undelete,
            Route::Destroy(_) => PathKind::Destroy,
            Route::InvalidKvPath(_) => PathKind::InvalidKvPath,
            Route::NoHandler(_) => PathKind::NoHandler,
        }
    }

    fn key(&self) -> &str {
        match self {
            Route::Health => "sys/health",
            Route::LookupSelf => "auth/token/lookup-self",
            Route::RenewSelf => "auth/token/renew-self",
            Route::Config => "config",
            Route::Data(key)
            | Route::Metadata(key)
            | Route::Delete(key)
            | Route::Undelete(key)
            | Route::Destroy(key)
            | Route::InvalidKvPath(key)
            | Route::NoHandler(key) => key,
        }
    }
}

impl DoubleState {
    /// Vault's order: method and body are checked before the token, the token before the path.
    fn answer(&mut self, mount: &str, incoming: &Incoming<'_>) -> (Route, Reply) {
        let Some(after_v1) = incoming.path.strip_prefix("/v1/") else {
            return (
                Route::NoHandler(incoming.path.clone()),
                Reply::errors(StatusCode::NOT_FOUND, &[]),
            );
        };
        let operation = match operation_of(incoming) {
            Ok(operation) => operation,
            Err(reply) => return (Route::classify(after_v1, mount), reply),
        };
        let mut path = after_v1.to_owned();
        // Vault lists "directories": a LIST of `metadata/foo` is a LIST of `metadata/foo/`.
        if operation == Operation::List && !path.ends_with('/') {
            path.push('/');
        }
        let route = Route::classify(&path, mount);
        let body = match operation {
            Operation::Update | Operation::Patch => match body_object(incoming.body) {
                Ok(body) => body,
                Err(reply) => return (route, reply),
            },
            _ => Map::new(),
        };
        if let Route::Health = route {
            return (route, health(operation));
        }
        if let Err(reply) = self.authenticate(incoming) {
            return (route, reply);
        }
        if let Err(reply) = self.authorize(&route, operation, &path) {
            return (route, reply);
        }
        if self.faults.refuse_next > 0 {
            self.faults.refuse_next -= 1;
            let status = StatusCode::from_u16(self.faults.refuse_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (route, Reply::errors(status, &["injected fault"]));
        }
        if operation == Operation::Patch
            && let Err(reply) = check_merge_patch_content_type(incoming.content_type.as_deref())
        {
            return (route, reply);
        }
        let reply = self.dispatch(&route, operation, &body, &incoming.query);
        if self.faults.lose_answer_next > 0 {
            self.faults.lose_answer_next -= 1;
            return (
                route,
                Reply::errors(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &["injected fault after the request was applied"],
                ),
            );
        }
        (route, reply)
    }

    fn authenticate(&self, incoming: &Incoming<'_>) -> Result<(), Reply> {
        let token_ok = incoming
            .token
            .as_deref()
            .is_some_and(|token| !token.is_empty() && token == self.token);
        let namespace_ok = match &self.required_namespace {
            None => true,
            Some(required) => incoming
                .namespace
                .as_deref()
                .is_some_and(|namespace| normalize_namespace(namespace) == *required),
        };
        if token_ok && namespace_ok {
            Ok(())
        } else {
            Err(Reply::errors(StatusCode::FORBIDDEN, &[PERMISSION_DENIED]))
        }
    }

    /// Vault's ACL check: the capability the request needs, in the most specific matching rule.
    fn authorize(&self, route: &Route, operation: Operation, path: &str) -> Result<(), Reply> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        if matches!(route, Route::Health | Route::LookupSelf | Route::RenewSelf) {
            return Ok(());
        }
        let needed = match operation {
            Operation::Read | Operation::Head => "read",
            Operation::List => "list",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::Update => match route {
                // Paths with an existence check: create until the key exists, then update.
                Route::Data(key) | Route::Metadata(key) if !self.secrets.contains_key(key) => {
                    "create"
                }
                _ => "update",
            },
        };
        let exact = policy.iter().find(|(rule, _)| rule == path);
        let glob = || {
            policy
                .iter()
                .filter_map(|(rule, capabilities)| {
                    let prefix = rule.strip_suffix('*')?;
                    path.starts_with(prefix)
                        .then_some((prefix.len(), capabilities))
                })
                .max_by_key(|(length, _)| *length)
                .map(|(_, capabilities)| capabilities)
        };
        let capabilities = exact.map(|(_, capabilities)| capabilities).or_else(glob);
        match capabilities {
            Some(capabilities)
                if !capabilities.contains("deny") && capabilities.contains(needed) =>
            {
                Ok(())
            }
            _ => Err(Reply::errors(StatusCode::FORBIDDEN, &[PERMISSION_DENIED])),
        }
    }

    fn dispatch(
        &mut self,
        route: &Route,
        operation: Operation,
        body: &Map<String, Value>,
        query: &BTreeMap<String, String>,
    ) -> Reply {
        use Operation::*;
        match (route, operation) {
            (Route::LookupSelf, Read | Update) => self.token_lookup_self(),
            (Route::RenewSelf, Update) => self.token_renew_self(body),
            (Route::Config, Read) => self.config_read(),
            (Route::Config, Update) => self.config_write(body),
            (Route::Data(key), Read) => self.data_read(key, query),
            (Route::Data(key), Update) => self.data_write(key, body),
            (Route::Data(key), Patch) => self.data_patch(key, body),
            (Route::Data(key), Delete) => self.data_delete(key),
            (Route::Metadata(key), Read) => self.metadata_read(key),
            (Route::Metadata(key), List) => self.metadata_list(key),
            (Route::Metadata(key), Update) => self.metadata_write(key, body),
            (Route::Metadata(key), Patch) => self.metadata_patch(key, body),
            (Route::Metadata(key), Delete) => self.metadata_delete(key),
            (Route::Delete(key), Update) => self.versions_delete(key, body),
            (Route::Undelete(key), Update) => self.versions_undelete(key, body),
            (Route::Destroy(key), Update) => self.versions_destroy(key, body),
            (Route::InvalidKvPath(_), _) => invalid_kv_path(operation),
            (Route::NoHandler(path), _) => Reply::errors(
                StatusCode::NOT_FOUND,
                &[&format!(
                    "no handler for route \"{path}\". route entry not found."
                )],
            ),
            _ => Reply::errors(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
        }
    }

    fn data_read(&self, key: &str, query: &BTreeMap<String, String>) -> Reply {
        let requested = match query.get("version") {
            None => 0,
            Some(raw) => match raw.parse::<i64>() {
                Ok(number) => number,
                Err(_) => return field_error("version", raw, "expected an integer"),
            },
        };
        let Some(secret) = self.secrets.get(key) else {
            return Reply::errors(StatusCode::NOT_FOUND, &[]);
        };
        let number = if requested > 0 {
            requested as u64
        } else {
            secret.current_version
        };
        let Some(version) = secret.versions.get(&number) else {
            return Reply::errors(StatusCode::NOT_FOUND, &[]);
        };
        let metadata = version_metadata(secret, number);
        if !version.is_readable(Utc::now()) {
            // Vault answers a deleted or destroyed version with its metadata and no data.
            return Reply::envelope(
                StatusCode::NOT_FOUND,
                json!({"data": null, "metadata": metadata}),
                None,
                "",
            );
        }
        Reply::kv(
            StatusCode::OK,
            json!({"data": version.data, "metadata": metadata}),
        )
    }

    fn data_write(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let data = match body.get("data") {
            None | Some(Value::Null) => {
                return Reply::errors(StatusCode::BAD_REQUEST, &["no data provided"]);
            }
            Some(Value::Object(data)) => data.clone(),
            Some(other) => return field_error("data", &other.to_string(), "expected a map"),
        };
        let cas = match cas_option(body) {
            Ok(cas) => cas,
            Err(reply) => return reply,
        };
        let config = self.config;
        let existing = self.secrets.get(key);
        let current = existing.map_or(0, |secret| secret.current_version);
        let cas_required =
            config.cas_required || existing.is_some_and(|secret| secret.cas_required);
        if let Err(message) = check_cas(cas, current, cas_required) {
            return Reply::errors(StatusCode::BAD_REQUEST, &[message]);
        }
        let now = Utc::now();
        let secret = self
            .secrets
            .entry(key.to_owned())
            .or_insert_with(|| StoredSecret::new(now));
        let deletion = deletion_time_for(
            now,
            config.delete_version_after_secs,
            secret.delete_version_after_secs,
        );
        let number = secret.add_version(now, deletion, data, config.max_versions);
        Reply::kv(StatusCode::OK, version_metadata(secret, number))
    }

    fn data_patch(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let patch = match body.get("data") {
            None | Some(Value::Null) => {
                return Reply::errors(StatusCode::BAD_REQUEST, &["no data provided"]);
            }
            Some(patch) => patch.clone(),
        };
        let config = self.config;
        let Some(secret) = self.secrets.get_mut(key) else {
            return Reply::empty(StatusCode::NOT_FOUND);
        };
        let cas = match cas_option(body) {
            Ok(cas) => cas,
            Err(reply) => return reply,
        };
        let cas_required = config.cas_required || secret.cas_required;
        if let Err(message) = check_cas(cas, secret.current_version, cas_required) {
            return Reply::errors(StatusCode::BAD_REQUEST, &[message]);
        }
        let current = secret.current_version;
        let Some(version) = secret.versions.get(&current) else {
            return Reply::empty(StatusCode::NOT_FOUND);
        };
        let now = Utc::now();
        if !version.is_readable(now) {
            return Reply::envelope(
                StatusCode::NOT_FOUND,
                version_metadata(secret, current),
                None,
                "",
            );
        }
        let mut patched = Value::Object(version.data.clone().unwrap_or_default());
        merge_patch(&mut patched, &patch);
        let Value::Object(patched) = patched else {
            return field_error("data", &patch.to_string(), "expected a map");
        };
        let deletion = deletion_time_for(
            now,
            config.delete_version_after_secs,
            secret.delete_version_after_secs,
        );
        let number = secret.add_version(now, deletion, patched, config.max_versions);
        Reply::kv(StatusCode::OK, version_metadata(secret, number))
    }

    fn data_delete(&mut self, key: &str) -> Reply {
        let now = Utc::now();
        if let Some(secret) = self.secrets.get_mut(key) {
            let current = secret.current_version;
            if let Some(version) = secret.versions.get_mut(&current)
                && version.is_readable(now)
            {
                version.deletion_time = Some(now);
            }
        }
        Reply::empty(StatusCode::NO_CONTENT)
    }

    fn versions_delete(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let numbers = match version_numbers(body, "No version number provided") {
            Ok(numbers) => numbers,
            Err(reply) => return reply,
        };
        let now = Utc::now();
        if let Some(secret) = self.secrets.get_mut(key) {
            for number in numbers {
                if let Some(version) = secret.versions.get_mut(&number)
                    && version.is_readable(now)
                {
                    version.deletion_time = Some(now);
                }
            }
        }
        Reply::empty(StatusCode::NO_CONTENT)
    }

    fn versions_undelete(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let numbers = match version_numbers(body, "No version number provided") {
            Ok(numbers) => numbers,
            Err(reply) => return reply,
        };
        let config = self.config;
        let now = Utc::now();
        if let Some(secret) = self.secrets.get_mut(key) {
            let deletion = deletion_time_for(
                now,
                config.delete_version_after_secs,
                secret.delete_version_after_secs,
            );
            for number in numbers {
                if let Some(version) = secret.versions.get_mut(&number)
                    && !version.destroyed
                {
                    version.deletion_time = deletion;
                }
            }
        }
        Reply::empty(StatusCode::NO_CONTENT)
    }

    fn versions_destroy(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let numbers = match version_numbers(body, "no version number provided") {
            Ok(numbers) => numbers,
            Err(reply) => return reply,
        };
        if let Some(secret) = self.secrets.get_mut(key) {
            for number in numbers {
                if let Some(version) = secret.versions.get_mut(&number) {
                    version.destroyed = true;
                    version.data = None;
                }
            }
        }
        Reply::empty(StatusCode::NO_CONTENT)
    }

    fn metadata_read(&self, key: &str) -> Reply {
        match self.secrets.get(key) {
            None => Reply::errors(StatusCode::NOT_FOUND, &[]),
            Some(secret) => Reply::kv(StatusCode::OK, key_metadata(secret)),
        }
    }

    fn metadata_list(&self, prefix: &str) -> Reply {
        let prefix = if prefix == "/" { "" } else { prefix };
        let keys: BTreeSet<String> = self
            .secrets
            .keys()
            .filter_map(|key| key.strip_prefix(prefix))
            .filter(|rest| !rest.is_empty())
            .map(|rest| match rest.find('/') {
                Some(slash) => rest[..=slash].to_owned(),
                None => rest.to_owned(),
            })
            .collect();
        if keys.is_empty() {
            return Reply::errors(StatusCode::NOT_FOUND, &[]);
        }
        Reply::kv(StatusCode::OK, json!({ "keys": keys }))
    }

    fn metadata_write(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let settings = match KeySettings::parse(body, false) {
            Ok(settings) => settings,
            Err(reply) => return reply,
        };
        if settings.is_empty() {
            return Reply::empty(StatusCode::NO_CONTENT);
        }
        let warnings = self.cas_required_warning(settings.cas_required);
        let now = Utc::now();
        let secret = self
            .secrets
            .entry(key.to_owned())
            .or_insert_with(|| StoredSecret::new(now));
        if let Some(max_versions) = settings.max_versions {
            secret.max_versions = max_versions;
        }
        if let Some(cas_required) = settings.cas_required {
            secret.cas_required = cas_required;
        }
        if let Some(delete_version_after) = settings.delete_version_after_secs {
            secret.delete_version_after_secs = delete_version_after;
        }
        if let Some(custom) = settings.custom_metadata {
            let replacement: BTreeMap<String, String> = custom
                .into_iter()
                .filter_map(|(name, value)| value.map(|value| (name, value)))
                .collect();
            secret.custom_metadata = non_empty(replacement);
        }
        no_content_unless_warned(warnings)
    }

    fn metadata_patch(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let settings = match KeySettings::parse(body, true) {
            Ok(settings) => settings,
            Err(reply) => return reply,
        };
        if !self.secrets.contains_key(key) {
            return Reply::empty(StatusCode::NOT_FOUND);
        }
        let warnings = self.cas_required_warning(settings.cas_required);
        let Some(secret) = self.secrets.get_mut(key) else {
            return Reply::empty(StatusCode::NOT_FOUND);
        };
        if let Some(max_versions) = settings.max_versions {
            secret.max_versions = max_versions;
        }
        if let Some(cas_required) = settings.cas_required {
            secret.cas_required = cas_required;
        }
        if let Some(delete_version_after) = settings.delete_version_after_secs {
            secret.delete_version_after_secs = delete_version_after;
        }
        match settings.custom_metadata {
            // A JSON merge patch of `"custom_metadata": null` removes the whole map.
            Some(_) if body.get("custom_metadata") == Some(&Value::Null) => {
                secret.custom_metadata = None;
            }
            Some(patch) => {
                let mut merged = secret.custom_metadata.take().unwrap_or_default();
                for (name, value) in patch {
                    match value {
                        Some(value) => merged.insert(name, value),
                        None => merged.remove(&name),
                    };
                }
                secret.custom_metadata = non_empty(merged);
            }
            None => {}
        }
        no_content_unless_warned(warnings)
    }

    fn metadata_delete(&mut self, key: &str) -> Reply {
        self.secrets.remove(key);
        Reply::empty(StatusCode::NO_CONTENT)
    }

    fn cas_required_warning(&self, requested: Option<bool>) -> Option<Vec<String>> {
        (requested == Some(false) && self.config.cas_required)
            .then(|| vec![CAS_REQUIRED_IGNORED_WARNING.to_owned()])
    }

    fn config_read(&self) -> Reply {
        Reply::kv(
            StatusCode::OK,
            json!({
                "cas_required": self.config.cas_required,
                "delete_version_after": format_go_duration(self.config.delete_version_after_secs),
                "max_versions": self.config.max_versions,
            }),
        )
    }

    fn config_write(&mut self, body: &Map<String, Value>) -> Reply {
        if let Some(raw) = present(body, "max_versions") {
            match weak_int(raw).and_then(|number| u32::try_from(number).ok()) {
                Some(number) => self.config.max_versions = number,
                None => return field_error("max_versions", &raw.to_string(), "expected an int"),
            }
        }
        if let Some(raw) = present(body, "cas_required") {
            match weak_bool(raw) {
                Some(flag) => self.config.cas_required = flag,
                None => return field_error("cas_required", &raw.to_string(), "expected a bool"),
            }
        }
        if let Some(raw) = present(body, "delete_version_after") {
            match parse_duration_secs(raw) {
                // Negative disables delete_version_after on every key; Vault stores it as -1s.
                Ok(secs) => self.config.delete_version_after_secs = secs.max(-1),
                Err(reason) => {
                    return field_error("delete_version_after", &raw.to_string(), &reason);
                }
            }
        }
        Reply::empty(StatusCode::NO_CONTENT)
    }

    fn token_lookup_self(&self) -> Reply {
        let now = Utc::now();
        let ttl = (self.token_expires - now).num_seconds().max(0);
        let data = json!({
            "accessor": TOKEN_ACCESSOR,
            "creation_time": self.token_issued.timestamp(),
            "creation_ttl": TOKEN_TTL_SECS,
            "display_name": "token",
            "entity_id": "",
            "expire_time": format_time(&self.token_expires),
            "explicit_max_ttl": 0,
            "id": self.token,
            "issue_time": format_time(&self.token_issued),
            "meta": null,
            "num_uses": 0,
            "orphan": true,
            "path": "auth/token/create",
            "policies": ["default"],
            "renewable": true,
            "ttl": ttl,
            "type": "service",
        });
        Reply::envelope(StatusCode::OK, data, None, "token")
    }

    fn token_renew_self(&mut self, body: &Map<String, Value>) -> Reply {
        let increment = match present(body, "increment") {
            None => TOKEN_TTL_SECS,
            Some(raw) => match parse_duration_secs(raw) {
                Ok(secs) if secs > 0 => secs.min(TOKEN_TTL_SECS),
                Ok(_) => TOKEN_TTL_SECS,
                Err(reason) => return field_error("increment", &raw.to_string(), &reason),
            },
        };
        self.token_expires = Utc::now() + TimeDelta::seconds(increment);
        let auth = json!({
            "accessor": TOKEN_ACCESSOR,
            "client_token": self.token,
            "entity_id": "",
            "lease_duration": increment,
            "metadata": null,
            "mfa_requirement": null,
            "num_uses": 0,
            "orphan": true,
            "policies": ["default"],
            "renewable": true,
            "token_policies": ["default"],
            "token_type": "service",
        });
        Reply::with_auth(auth)
    }
}

impl StoredSecret {
    fn new(now: DateTime<Utc>) -> StoredSecret {
        StoredSecret {
            created_time: now,
            updated_time: now,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after_secs: 0,
            custom_metadata: None,
            versions: BTreeMap::new(),
        }
    }

    /// Adds the next version and trims the oldest ones past the version limit, keeping
    /// `oldest_version` the way Vault's `KeyMetadata.AddVersion` does.
    fn add_version(
        &mut self,
        created: DateTime<Utc>,
        deletion: Option<DateTime<Utc>>,
        data: Map<String, Value>,
        mount_max_versions: u32,
    ) -> u64 {
        self.current_version += 1;
        self.versions.insert(
            self.current_version,
            StoredVersion {
                created_time: created,
                deletion_time: deletion,
                destroyed: false,
                data: Some(data),
            },
        );
        self.updated_time = created;
        let max_versions = u64::from(match (self.max_versions, mount_max_versions) {
            (0, 0) => DEFAULT_MAX_VERSIONS,
            (0, mount) => mount,
            (own, _) => own,
        });
        if self.current_version - self.oldest_version >= max_versions {
            let newest_to_drop = self.current_version - max_versions;
            self.versions.retain(|number, _| *number > newest_to_drop);
            self.oldest_version = newest_to_drop + 1;
        }
        self.current_version
    }
}

impl StoredVersion {
    fn is_readable(&self, now: DateTime<Utc>) -> bool {
        let deleted = self.deletion_time.is_some_and(|at| at <= now);
        !deleted && !self.destroyed
    }
}

/// What a metadata write or patch asks to change. `None` fields are left as they are; in
/// `custom_metadata`, a `None` value removes that entry (patch only).
struct KeySettings {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    delete_version_after_secs: Option<i64>,
    custom_metadata: Option<BTreeMap<String, Option<String>>>,
}

impl KeySettings {
    fn parse(body: &Map<String, Value>, patch: bool) -> Result<KeySettings, Reply> {
        // In a merge patch a null resets the field to its zero value.
        let field = |name: &str| match body.get(name) {
            Some(Value::Null) if patch => Some(&Value::Null),
            Some(Value::Null) | None => None,
            Some(value) => Some(value),
        };
        let max_versions = match field("max_versions") {
            None => None,
            Some(Value::Null) => Some(0),
            Some(raw) => match weak_int(raw).and_then(|number| u32::try_from(number).ok()) {
                Some(number) => Some(number),
                None => {
                    return Err(field_error(
                        "max_versions",
                        &raw.to_string(),
                        "expected an int",
                    ));
                }
            },
        };
        let cas_required = match field("cas_required") {
            None => None,
            Some(Value::Null) => Some(false),
            Some(raw) => match weak_bool(raw) {
                Some(flag) => Some(flag),
                None => {
                    return Err(field_error(
                        "cas_required",
                        &raw.to_string(),
                        "expected a bool",
                    ));
                }
            },
        };
        let delete_version_after_secs = match field("delete_version_after") {
            None => None,
            Some(Value::Null) => Some(0),
            Some(raw) => match parse_duration_secs(raw) {
                Ok(secs) if secs >= 0 => Some(secs),
                Ok(_) => {
                    return Err(field_error(
                        "delete_version_after",
                        &raw.to_string(),
                        "cannot provide negative value",
                    ));
                }
                Err(reason) => {
                    return Err(field_error(
                        "delete_version_after",
                        &raw.to_string(),
                        &reason,
                    ));
                }
            },
        };
        let custom_metadata = match field("custom_metadata") {
            None => None,
            Some(Value::Null) => Some(BTreeMap::new()),
            Some(Value::Object(raw)) => Some(parse_custom_metadata(raw, patch)?),
            Some(other) => {
                return Err(field_error(
                    "custom_metadata",
                    &other.to_string(),
                    "expected a map",
                ));
            }
        };
        Ok(KeySettings {
            max_versions,
            cas_required,
            delete_version_after_secs,
            custom_metadata,
        })
    }

    fn is_empty(&self) -> bool {
        self.max_versions.is_none()
            && self.cas_required.is_none()
            && self.delete_version_after_secs.is_none()
            && self.custom_metadata.is_none()
    }
}

/// Converts `custom_metadata` to strings the way Vault's weak decoding does, then applies
/// Vault's limits. In a patch a null value means "remove this entry" and is not validated.
fn parse_custom_metadata(
    raw: &Map<String, Value>,
    patch: bool,
) -> Result<BTreeMap<String, Option<String>>, Reply> {
    let mut parsed = BTreeMap::new();
    for (name, value) in raw {
        if patch && value.is_null() {
            parsed.insert(name.clone(), None);
            continue;
        }
        let Some(text) = weak_string(value) else {
            return Err(Reply::errors(
                StatusCode::BAD_REQUEST,
                &[&format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: '{name}' expected type 'string', got unconvertible type"
                )],
            ));
        };
        parsed.insert(name.clone(), Some(text));
    }
    let to_validate: BTreeMap<&str, &str> = parsed
        .iter()
        .filter_map(|(name, value)| value.as_deref().map(|value| (name.as_str(), value)))
        .collect();
    let problems = custom_metadata_problems(&to_validate);
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(Reply::errors(
            StatusCode::BAD_REQUEST,
            &[&go_multierror(&problems)],
        ))
    }
}

fn custom_metadata_problems(entries: &BTreeMap<&str, &str>) -> Vec<String> {
    if entries.len() > MAX_CUSTOM_METADATA_KEYS {
        return vec![format!(
            "{CUSTOM_METADATA_ERROR_PREFIX}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            entries.len()
        )];
    }
    let mut problems = Vec::new();
    for (name, value) in entries {
        if name.is_empty() || name.len() > MAX_CUSTOM_METADATA_KEY_LEN {
            problems.push(format!(
                "{CUSTOM_METADATA_ERROR_PREFIX}: length of key {name:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LEN}",
                name.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_CUSTOM_METADATA_VALUE_LEN {
            problems.push(format!(
                "{CUSTOM_METADATA_ERROR_PREFIX}: length of value for key {name:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LEN}",
                value.len()
            ));
        }
        if !is_printable(name) {
            problems.push(format!(
                "{CUSTOM_METADATA_ERROR_PREFIX}: key {name:?} ({name}) contains unprintable characters"
            ));
        }
        if !is_printable(value) {
            problems.push(format!(
                "{CUSTOM_METADATA_ERROR_PREFIX}: value for key {name:?} contains unprintable characters"
            ));
        }
    }
    problems
}

fn is_printable(text: &str) -> bool {
    text.chars().all(|c| !c.is_control())
}

/// The text of a Go `multierror` with its default list format, which Vault puts in `errors`.
fn go_multierror(problems: &[String]) -> String {
    if let [only] = problems {
        return format!("1 error occurred:\n\t* {only}\n\n");
    }
    let points: Vec<String> = problems
        .iter()
        .map(|problem| format!("* {problem}"))
        .collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        problems.len(),
        points.join("\n\t")
    )
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

fn no_content_unless_warned(warnings: Option<Vec<String>>) -> Reply {
    match warnings {
        Some(warnings) => Reply::envelope(StatusCode::OK, Value::Null, Some(warnings), "kv"),
        None => Reply::empty(StatusCode::NO_CONTENT),
    }
}

/// The version-specific metadata returned by data reads and writes.
fn version_metadata(secret: &StoredSecret, number: u64) -> Value {
    let version = secret.versions.get(&number);
    json!({
        "created_time": version.map_or_else(String::new, |v| format_time(&v.created_time)),
        "custom_metadata": secret.custom_metadata,
        "deletion_time": version
            .and_then(|v| v.deletion_time.as_ref())
            .map_or_else(String::new, format_time),
        "destroyed": version.is_some_and(|v| v.destroyed),
        "version": number,
    })
}

/// The body of `GET /v1/<mount>/metadata/<path>`.
fn key_metadata(secret: &StoredSecret) -> Value {
    let versions: Map<String, Value> = secret
        .versions
        .iter()
        .map(|(number, version)| {
            (
                number.to_string(),
                json!({
                    "created_time": format_time(&version.created_time),
                    "deletion_time": version
                        .deletion_time
                        .as_ref()
                        .map_or_else(String::new, format_time),
                    "destroyed": version.destroyed,
                }),
            )
        })
        .collect();
    json!({
        "cas_required": secret.cas_required,
        "created_time": format_time(&secret.created_time),
        "current_version": secret.current_version,
        "custom_metadata": secret.custom_metadata,
        "delete_version_after": format_go_duration(secret.delete_version_after_secs),
        "max_versions": secret.max_versions,
        "oldest_version": secret.oldest_version,
        "updated_time": format_time(&secret.updated_time),
        "versions": versions,
    })
}

/// A new version's `deletion_time`: creation plus the smaller non-zero of the mount's and the
/// key's `delete_version_after`, unless the mount disabled it.
fn deletion_time_for(
    created: DateTime<Utc>,
    mount_secs: i64,
    key_secs: i64,
) -> Option<DateTime<Utc>> {
    if mount_secs < 0 {
        return None;
    }
    let after = match (mount_secs, key_secs) {
        (0, 0) => return None,
        (0, key) => key,
        (mount, 0) => mount,
        (mount, key) => mount.min(key),
    };
    Some(created + TimeDelta::seconds(after))
}

fn check_cas(cas: Option<i64>, current_version: u64, required: bool) -> Result<(), &'static str> {
    match cas {
        Some(cas) if u64::try_from(cas).ok() != Some(current_version) => Err(CAS_MISMATCH),
        Some(_) => Ok(()),
        None if required => Err(CAS_REQUIRED),
        None => Ok(()),
    }
}

/// `options.cas`, if the request sets it.
fn cas_option(body: &Map<String, Value>) -> Result<Option<i64>, Reply> {
    let options = match body.get("options") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(options)) => options,
        Some(other) => return Err(field_error("options", &other.to_string(), "expected a map")),
    };
    match options.get("cas") {
        None => Ok(None),
        Some(raw) => weak_int(raw)
            .map(Some)
            .ok_or_else(|| Reply::errors(StatusCode::BAD_REQUEST, &[CAS_UNPARSABLE])),
    }
}

/// `versions` as Vault's comma-separated int slice accepts it: a list, a number, or "1,2".
fn version_numbers(body: &Map<String, Value>, missing: &str) -> Result<Vec<u64>, Reply> {
    let invalid =
        |raw: &Value| field_error("versions", &raw.to_string(), "expected a list of ints");
    let numbers: Vec<i64> = match body.get("versions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| weak_int(item).ok_or_else(|| invalid(item)))
            .collect::<Result<_, _>>()?,
        Some(Value::String(text)) if text.trim().is_empty() => Vec::new(),
        Some(Value::String(text)) => text
            .split(',')
            .map(|part| {
                part.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid(&Value::String(text.clone())))
            })
            .collect::<Result<_, _>>()?,
        Some(raw) => vec![weak_int(raw).ok_or_else(|| invalid(raw))?],
    };
    if numbers.is_empty() {
        return Err(Reply::errors(StatusCode::BAD_REQUEST, &[missing]));
    }
    // A negative number names no version; Vault's uint64 conversion makes it one that never exists.
    Ok(numbers
        .into_iter()
        .filter_map(|number| u64::try_from(number).ok())
        .collect())
}

fn present<'b>(body: &'b Map<String, Value>, name: &str) -> Option<&'b Value> {
    body.get(name).filter(|value| !value.is_null())
}

fn weak_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|float| float.fract() == 0.0)
                .map(|float| float as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    }
}

fn weak_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => number.as_i64().map(|number| number != 0),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Some(true),
            "0" | "f" | "false" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn weak_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(if *flag { "1" } else { "0" }.to_owned()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Parses a duration the way Vault's `ParseDurationSecond` does: a number of seconds, a string
/// of digits, `<n>d`, or a Go duration string (`1h30m`, `90s`, `1.5h`), truncated to seconds.
fn parse_duration_secs(value: &Value) -> Result<i64, String> {
    let text = match value {
        Value::Number(number) => {
            return number
                .as_i64()
                .or_else(|| number.as_f64().map(|float| float as i64))
                .ok_or_else(|| format!("{number} is not a number of seconds"));
        }
        Value::String(text) => text.trim(),
        other => return Err(format!("{other} is not a duration")),
    };
    if text.is_empty() {
        return Ok(0);
    }
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    if let Some(days) = text.strip_suffix('d')
        && let Ok(days) = days.parse::<i64>()
    {
        return Ok(days * 86_400);
    }
    parse_go_duration_nanos(text)
        .map(|nanos| (nanos / 1e9) as i64)
        .ok_or_else(|| format!("time: invalid duration {text:?}"))
}

fn parse_go_duration_nanos(text: &str) -> Option<f64> {
    let (sign, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (-1.0, &text[1..]),
        Some(b'+') => (1.0, &text[1..]),
        _ => (1.0, text),
    };
    if rest == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * per_unit;
    }
    Some(sign * total)
}

/// Go's `time.Duration.String()` for whole seconds: `0s`, `45s`, `1m30s`, `3h25m19s`, `-1s`.
fn format_go_duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let secs = secs.unsigned_abs();
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// RFC 3339 in UTC with as many fractional digits as needed, as Go's `RFC3339Nano` writes it:
/// `2018-03-22T02:24:06.945319214Z`, `2021-09-10T15:26:08.684999Z`.
fn format_time(time: &DateTime<Utc>) -> String {
    let whole = time.format("%Y-%m-%dT%H:%M:%S");
    let nanos = time.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{whole}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{whole}.{}Z", fraction.trim_end_matches('0'))
}

fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (name, value) in patch {
            if value.is_null() {
                target.remove(name);
            } else {
                merge_patch(target.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn operation_of(incoming: &Incoming<'_>) -> Result<Operation, Reply> {
    let method = incoming.method;
    if method == Method::GET {
        return match incoming.query.get("list").map(String::as_str) {
            None | Some("") => Ok(Operation::Read),
            Some("true" | "1" | "t" | "TRUE" | "True" | "T") => Ok(Operation::List),
            Some("false" | "0" | "f" | "FALSE" | "False" | "F") => Ok(Operation::Read),
            Some(_) => Err(Reply::errors(StatusCode::BAD_REQUEST, &[])),
        };
    }
    if method == Method::POST || method == Method::PUT {
        return Ok(Operation::Update);
    }
    if method == Method::DELETE {
        return Ok(Operation::Delete);
    }
    if method == Method::PATCH {
        return Ok(Operation::Patch);
    }
    if method == Method::HEAD {
        return Ok(Operation::Head);
    }
    if method.as_str() == "LIST" {
        return Ok(Operation::List);
    }
    Err(Reply::errors(StatusCode::METHOD_NOT_ALLOWED, &[]))
}

fn check_merge_patch_content_type(content_type: Option<&str>) -> Result<(), Reply> {
    let media_type = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type.is_empty() {
        return Err(Reply::errors(
            StatusCode::BAD_REQUEST,
            &["mime: no media type"],
        ));
    }
    if media_type != "application/merge-patch+json" {
        return Err(Reply::errors(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &[&format!(
                "PATCH requires Content-Type of application/merge-patch+json, provided {media_type}"
            )],
        ));
    }
    Ok(())
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Reply::errors(
            StatusCode::BAD_REQUEST,
            &["failed to parse JSON input: expected a JSON object"],
        )),
        Err(error) => Err(Reply::errors(
            StatusCode::BAD_REQUEST,
            &[&format!("failed to parse JSON input: {error}")],
        )),
    }
}

fn field_error(field: &str, raw: &str, reason: &str) -> Reply {
    Reply::errors(
        StatusCode::BAD_REQUEST,
        &[&format!(
            "error converting input {raw} for field {field:?}: {reason}"
        )],
    )
}

fn invalid_kv_path(operation: Operation) -> Reply {
    let verb = match operation {
        Operation::Update | Operation::Patch => "put",
        Operation::Delete => "delete",
        Operation::List => "list",
        Operation::Read | Operation::Head => "get",
    };
    let warning = INVALID_KV2_PATH_WARNING.replace("'vault kv get'", &format!("'vault kv {verb}'"));
    Reply::envelope(
        StatusCode::NOT_FOUND,
        Value::Null,
        Some(vec![warning]),
        "kv",
    )
}

fn health(operation: Operation) -> Reply {
    if operation == Operation::Head {
        return Reply::empty(StatusCode::OK);
    }
    let body = json!({
        "cluster_id": "00000000-0000-0000-0000-00000000kv20",
        "cluster_name": "vault-cluster-kv2-double",
        "initialized": true,
        "performance_standby": false,
        "replication_dr_mode": "disabled",
        "replication_performance_mode": "disabled",
        "sealed": false,
        "server_time_utc": Utc::now().timestamp(),
        "standby": false,
        "version": EMULATED_VAULT_VERSION,
    });
    Reply::raw_json(StatusCode::OK, &body)
}

fn normalize_namespace(namespace: &str) -> String {
    namespace.trim_matches('/').to_owned()
}

fn percent_decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&name.replace('+', " ")),
                percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

/// Vault's response envelope, in Vault's field order (`sdk/logical.HTTPResponse`).
#[derive(Serialize)]
struct Envelope {
    request_id: String,
    lease_id: String,
    renewable: bool,
    lease_duration: u64,
    data: Value,
    wrap_info: Option<Value>,
    warnings: Option<Vec<String>>,
    auth: Option<Value>,
    mount_type: String,
}

/// An answer: a status and a JSON body (empty for 204 and the like).
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

impl Reply {
    fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: Vec::new(),
        }
    }

    fn raw_json(status: StatusCode, value: &Value) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(value).expect("serializing a JSON value"),
        }
    }

    /// `{"errors":[...]}`, Vault's shape for every status >= 400 outside the KV handlers.
    fn errors(status: StatusCode, messages: &[&str]) -> Reply {
        Reply::raw_json(status, &json!({ "errors": messages }))
    }

    /// A successful answer of the KV mount.
    fn kv(status: StatusCode, data: Value) -> Reply {
        Reply::envelope(status, data, None, "kv")
    }

    fn envelope(
        status: StatusCode,
        data: Value,
        warnings: Option<Vec<String>>,
        mount_type: &str,
    ) -> Reply {
        Reply::from_envelope(
            status,
            Envelope {
                request_id: uuid::Uuid::new_v4().to_string(),
                lease_id: String::new(),
                renewable: false,
                lease_duration: 0,
                data,
                wrap_info: None,
                warnings,
                auth: None,
                mount_type: mount_type.to_owned(),
            },
        )
    }

    fn with_auth(auth: Value) -> Reply {
        Reply::from_envelope(
            StatusCode::OK,
            Envelope {
                request_id: uuid::Uuid::new_v4().to_string(),
                lease_id: String::new(),
                renewable: false,
                lease_duration: 0,
                data: Value::Null,
                wrap_info: None,
                warnings: None,
                auth: Some(auth),
                mount_type: "token".to_owned(),
            },
        )
    }

    fn from_envelope(status: StatusCode, envelope: Envelope) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(&envelope).expect("serializing a Vault response envelope"),
        }
    }

    fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .status(self.status)
            .header(header::CACHE_CONTROL, "no-store");
        if !self.body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Body::from(self.body))
            .expect("a response built from a valid status and static headers")
    }
}
