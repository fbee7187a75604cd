//! HashiCorp Vault KV store: keeps one integration's token in a KV v2 (or v1) secret that
//! readers (External Secrets Operator, the CSI driver, Vault Agent) read as it is.
//!
//! Layout, KV v2 (`<mount>` and `<path>` from the config):
//! - `<mount>/data/<path>`: the reader-facing [`CredentialRecord`], written with `options.cas` set to
//!   the version that was read (0 for the first write), so of two promoters only one wins.
//! - `<mount>/data/<path>.rotation`: the rotation in progress (intent, pending token, and the
//!   plan of a promotion under way). Readers never read it. Created with `cas=0` (create-only:
//!   the check-and-set of `begin_rotation`), updated with `cas`, removed with a metadata delete.
//! - The previous token is the KV v2 version of `<path>` that was current before the last
//!   promotion; which version, its revoke time and its revocation are kept in the
//!   `custom_metadata` of `<path>` (`previous_version`, `previous_revoke_after`,
//!   `previous_revoked_at`; other keys there are left alone).
//! - The login latch ([`LoginLatch`]) is the `custom_metadata` key `login_latch` of `<path>`,
//!   in [`LoginLatch::to_compact`]'s form; metadata can be written before `<path>` has a version,
//!   so a bootstrap whose first login is refused can record it.
//!
//! KV v1 has neither versions nor check-and-set: `<mount>/<path>` holds the current token,
//! `<mount>/<path>.rotation` the rotation in progress, the previous token with its bookkeeping
//! and the login latch (the document is kept while any of them is set). Only one daemon may use
//! a KV v1 store ([`VaultStore::is_single_writer`]).
//!
//! A promotion is written in steps (plan into the sibling, current, bookkeeping, sibling
//! cleared), each safe to crash after: a plan whose rotation is already current is a committed
//! promotion, which the next `promote`, `begin_rotation` or `mark_previous_revoked` finishes.
//!
//! HTTP: raw Vault API calls over `reqwest` rather than `vaultrs`, because every call needs the
//! status code and Vault's `errors` text for precise errors, KV v2 `options.cas` and
//! `custom_metadata` writes, 404 bodies of soft-deleted versions, and tolerance of the smaller
//! responses of Vault-compatible servers. The client keeps the Vault token fresh: see
//! [`token_action`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{
    CredentialRecord, Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreErrorKind,
    StoreState,
};
use crate::secret::{ExposeSecret, SecretRef, SecretString};

// ---------------------------------------------------------------------------------------------
// Configuration

/// `[integrations.store]` with `kind = "vault"`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultStoreConfig {
    /// Vault's base address, e.g. `https://vault.internal:8200`.
    pub address: String,
    /// Where the KV engine is mounted.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The secret readers read, inside the mount, e.g. `netsuite/erp-sync`.
    pub path: String,
    /// 2 (versioned, check-and-set) or 1 (one daemon per store only).
    #[serde(default = "default_kv_version")]
    pub kv_version: u8,
    /// Vault Enterprise / HCP namespace, sent as `X-Vault-Namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM file with the CA certificate(s) that signed Vault's TLS certificate.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    pub auth: VaultAuth,
}

/// How the daemon logs in to Vault.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// A token used as it is (not renewed); looked up once at start to fail fast.
    Token { token: SecretRef },
    /// AppRole login at `auth/<mount>/login`.
    Approle {
        role_id: SecretRef,
        secret_id: SecretRef,
        #[serde(default = "default_approle_mount")]
        mount: String,
    },
    /// Kubernetes service-account login at `auth/<mount>/login`; the JWT is re-read at each
    /// login because projected tokens rotate.
    Kubernetes {
        role: String,
        #[serde(default = "default_jwt_path")]
        jwt_path: PathBuf,
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
    },
}

fn default_mount() -> String {
    "secret".to_string()
}
fn default_kv_version() -> u8 {
    2
}
fn default_approle_mount() -> String {
    "approle".to_string()
}
fn default_kubernetes_mount() -> String {
    "kubernetes".to_string()
}
fn default_jwt_path() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
}

/// A Vault store setting that cannot work, named by its config key.
#[derive(Debug, thiserror::Error)]
pub enum VaultConfigError {
    #[error("kv_version = {0}: expected 1 or 2")]
    KvVersion(u8),
    #[error(
        "address = {0:?}: expected an http:// or https:// URL such as https://vault.internal:8200"
    )]
    Address(String),
    #[error(
        "{key} = {value:?}: expected path segments of letters, digits, '.', '_' or '-' separated by single '/' (no leading or trailing '/', no '.' or '..' segment)"
    )]
    Path { key: &'static str, value: String },
}

impl VaultStoreConfig {
    /// Checks the settings that need no network; `connect` calls it too.
    pub fn validate(&self) -> Result<(), VaultConfigError> {
        if !matches!(self.kv_version, 1 | 2) {
            return Err(VaultConfigError::KvVersion(self.kv_version));
        }
        let address = self.address.trim_end_matches('/');
        let scheme_ok = address.starts_with("http://") || address.starts_with("https://");
        if !scheme_ok || address.split("://").nth(1).is_none_or(str::is_empty) {
            return Err(VaultConfigError::Address(self.address.clone()));
        }
        check_vault_path("mount", &self.mount)?;
        check_vault_path("path", &self.path)?;
        match &self.auth {
            VaultAuth::Token { .. } => {}
            VaultAuth::Approle { mount, .. } => check_vault_path("auth.mount", mount)?,
            VaultAuth::Kubernetes { mount, .. } => check_vault_path("auth.mount", mount)?,
        }
        Ok(())
    }
}

/// Paths go into URLs unencoded, so only characters that need no encoding are accepted.
fn check_vault_path(key: &'static str, value: &str) -> Result<(), VaultConfigError> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if value.split('/').all(segment_ok) {
        Ok(())
    } else {
        Err(VaultConfigError::Path {
            key,
            value: value.to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Transport: one Vault API call, with the token handled below it

/// What Vault answered: the status and the JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn new(status: u16, bytes: &[u8]) -> Reply {
        let body = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }
}

/// A call that got no answer from Vault (or could not be authenticated).
#[derive(Debug)]
struct Failure {
    kind: StoreErrorKind,
    detail: String,
}

/// Sends requests to `/v1/<path>`; authentication is the transport's business. The HTTP
/// transport is [`VaultHttp`]; unit tests use an in-memory KV v2.
#[async_trait::async_trait]
trait Transport: Send + Sync {
    async fn send(&self, method: Method, path: &str, body: Option<&[u8]>)
    -> Result<Reply, Failure>;
}

/// The login-issued token's lease, for deciding when to renew it.
#[derive(Clone, Copy, Debug)]
struct Lease {
    obtained: Instant,
    ttl: Duration,
    renewable: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum TokenAction {
    Use,
    Renew,
    Login,
}

/// Before a call: a token within a third of its TTL of expiry is renewed if renewable, else
/// replaced by a new login. A static token (no lease) and a token without expiry are used.
fn token_action(lease: Option<&Lease>, now: Instant) -> TokenAction {
    let Some(lease) = lease else {
        return TokenAction::Use;
    };
    if lease.ttl.is_zero() {
        return TokenAction::Use;
    }
    let refresh_at = lease.obtained + lease.ttl - lease.ttl / 3;
    if now < refresh_at {
        TokenAction::Use
    } else if lease.renewable {
        TokenAction::Renew
    } else {
        TokenAction::Login
    }
}

/// Credentials for a login, resolved from the config's secret references.
enum Login {
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id: SecretString,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt_path: PathBuf,
    },
}

struct Session {
    token: SecretString,
    /// `None` for a static token from the config: used as it is.
    lease: Option<Lease>,
}

struct VaultHttp {
    client: reqwest::Client,
    /// Without trailing '/'.
    address: String,
    namespace: Option<String>,
    login: Option<Login>,
    session: tokio::sync::Mutex<Session>,
}

#[derive(Serialize)]
struct AppRoleLoginBody<'a> {
    role_id: &'a str,
    secret_id: &'a str,
}

#[derive(Serialize)]
struct KubernetesLoginBody<'a> {
    role: &'a str,
    jwt: &'a str,
}

impl VaultHttp {
    /// One HTTP exchange. Never quotes the body: Vault's answers can hold secrets.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> Result<Reply, Failure> {
        let url = format!("{}/v1/{}", self.address, path);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .header("X-Vault-Request", "true");
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_vec());
        }
        let unreachable = |e: reqwest::Error| Failure {
            kind: StoreErrorKind::Unavailable,
            detail: format!(
                "{method} /v1/{path}: no answer from {}: {}",
                self.address,
                error_chain(&e.without_url())
            ),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok(Reply::new(status, &bytes))
    }

    /// Returns a token fit for the next call, renewing or logging in first when it is due.
    async fn fresh_token(&self) -> Result<SecretString, Failure> {
        let mut session = self.session.lock().await;
        match token_action(session.lease.as_ref(), Instant::now()) {
            TokenAction::Use => {}
            TokenAction::Renew => {
                if let Err(failure) = self.renew(&mut session).await {
                    tracing::info!(
                        vault = %self.address,
                        reason = %failure.detail,
                        "vault token renewal failed; logging in again"
                    );
                    *session = self.log_in().await?;
                }
            }
            TokenAction::Login => *session = self.log_in().await?,
        }
        Ok(session.token.clone())
    }

    /// After a 403 with `used`: logs in again, unless another call already replaced the token.
    async fn replace_token(&self, used: &SecretString) -> Result<SecretString, Failure> {
        let mut session = self.session.lock().await;
        if session.token.expose_secret() == used.expose_secret() {
            *session = self.log_in().await?;
        }
        Ok(session.token.clone())
    }

    async fn renew(&self, session: &mut Session) -> Result<(), Failure> {
        let reply = self
            .exchange(
                Method::POST,
                "auth/token/renew-self",
                Some(b"{}"),
                Some(&session.token),
            )
            .await?;
        if reply.status != 200 {
            return Err(rejection(
                "renew-self",
                Method::POST,
                "auth/token/renew-self",
                &reply,
            ));
        }
        let (ttl, renewable) = lease_of(&reply.body);
        session.lease = Some(Lease {
            obtained: Instant::now(),
            ttl,
            renewable,
        });
        tracing::debug!(vault = %self.address, ttl_s = ttl.as_secs(), "vault token renewed");
        Ok(())
    }

    async fn log_in(&self) -> Result<Session, Failure> {
        let (path, body) = match self.login.as_ref() {
            None => {
                return Err(Failure {
                    kind: StoreErrorKind::Denied,
                    detail: "the configured Vault token cannot be renewed or replaced".into(),
                });
            }
            Some(Login::AppRole {
                mount,
                role_id,
                secret_id,
            }) => {
                let body = AppRoleLoginBody {
                    role_id: role_id.expose_secret(),
                    secret_id: secret_id.expose_secret(),
                };
                (format!("auth/{mount}/login"), to_json_bytes(&body))
            }
            Some(Login::Kubernetes {
                mount,
                role,
                jwt_path,
            }) => {
                let jwt =
                    Zeroizing::new(tokio::fs::read_to_string(jwt_path).await.map_err(|e| {
                        Failure {
                            kind: StoreErrorKind::Denied,
                            detail: format!(
                                "cannot read the Kubernetes service account token {}: {e}",
                                jwt_path.display()
                            ),
                        }
                    })?);
                let body = KubernetesLoginBody {
                    role,
                    jwt: jwt.trim(),
                };
                (format!("auth/{mount}/login"), to_json_bytes(&body))
            }
        };
        let reply = self
            .exchange(Method::POST, &path, Some(&body), None)
            .await?;
        if reply.status != 200 {
            let mut failure = rejection("login", Method::POST, &path, &reply);
            if (400..500).contains(&reply.status) && reply.status != 429 {
                failure.kind = StoreErrorKind::Denied;
            }
            return Err(failure);
        }
        let token = reply
            .body
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure {
                kind: StoreErrorKind::Failed,
                detail: format!("POST /v1/{path}: the answer has no auth.client_token"),
            })?;
        let (ttl, renewable) = lease_of(&reply.body);
        tracing::info!(vault = %self.address, login = %path, ttl_s = ttl.as_secs(), renewable, "logged in to vault");
        Ok(Session {
            token: SecretString::from(token),
            lease: Some(Lease {
                obtained: Instant::now(),
                ttl,
                renewable,
            }),
        })
    }
}

#[async_trait::async_trait]
impl Transport for VaultHttp {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        let token = self.fresh_token().await?;
        let reply = self
            .exchange(method.clone(), path, body, Some(&token))
            .await?;
        // A 403 may be a token that expired or was revoked under us: one new login, one retry.
        if reply.status == 403 && self.login.is_some() {
            tracing::info!(vault = %self.address, "vault refused the token (403); logging in again");
            let token = self.replace_token(&token).await?;
            return self.exchange(method, path, body, Some(&token)).await;
        }
        Ok(reply)
    }
}

/// `auth.lease_duration` and `auth.renewable` of a login or renew answer.
fn lease_of(body: &Value) -> (Duration, bool) {
    let ttl = body
        .pointer("/auth/lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let renewable = body
        .pointer("/auth/renewable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (Duration::from_secs(ttl), renewable)
}

fn to_json_bytes<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(value).expect("serialising to JSON in memory cannot fail"))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Vault's error text: the `errors` array (Vault), or `error` (some compatible servers), each
/// entry cut short. The rest of the body is never quoted.
fn vault_errors(body: &Value) -> String {
    const MAX: usize = 300;
    let cut = |s: &str| s.chars().take(MAX).collect::<String>();
    let texts: Vec<String> = match (body.get("errors"), body.get("error")) {
        (Some(Value::Array(errors)), _) => {
            errors.iter().filter_map(Value::as_str).map(cut).collect()
        }
        (_, Some(Value::String(error))) => vec![cut(error)],
        _ => Vec::new(),
    };
    if texts.is_empty() {
        "no error text".to_string()
    } else {
        texts.join("; ")
    }
}

/// Maps a refusal to a kind: a lost check-and-set is a conflict, 403 is denied, the temporary
/// ones (412 from a lagging standby, 429, 5xx including 503 sealed) are unavailable.
fn kind_for(status: u16, errors: &str) -> StoreErrorKind {
    match status {
        400 if errors.contains("check-and-set") => StoreErrorKind::Conflict,
        401 | 403 => StoreErrorKind::Denied,
        412 | 429 | 500..=599 => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Failed,
    }
}

fn rejection(step: &str, method: Method, path: &str, reply: &Reply) -> Failure {
    let errors = vault_errors(&reply.body);
    Failure {
        kind: kind_for(reply.status, &errors),
        detail: format!(
            "{step}: {method} /v1/{path}: HTTP {}: {errors}",
            reply.status
        ),
    }
}

/// Answers each GET with the next of a list of canned replies (404 once they run out) and every
/// write with 204, at once: for [`canned`], which lets [`super::parse_entry`] run the store's
/// reading code on documents that no Vault served.
struct CannedReplies {
    replies: std::sync::Mutex<std::collections::VecDeque<Reply>>,
}

#[async_trait::async_trait]
impl Transport for CannedReplies {
    async fn send(
        &self,
        method: Method,
        _path: &str,
        _body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        if method != Method::GET {
            return Ok(Reply::new(204, b""));
        }
        let next = self
            .replies
            .lock()
            .map(|mut q| q.pop_front())
            .ok()
            .flatten();
        Ok(next.unwrap_or_else(|| Reply::new(404, b"{\"errors\":[]}")))
    }
}

/// A KV `kv_version` store at `secret/fuzz` whose GETs are answered, in the order the store
/// makes them, by `replies` (status and body bytes, as they would come over HTTP). Its futures
/// never wait.
pub(super) fn canned(kv_version: u8, replies: &[(u16, &[u8])]) -> VaultStore {
    let replies = replies
        .iter()
        .map(|&(status, bytes)| Reply::new(status, bytes))
        .collect();
    VaultStore {
        description: format!("vault (canned replies) secret/fuzz (KV v{kv_version})"),
        layout: Layout {
            mount: "secret".into(),
            path: "fuzz".into(),
            kv_version,
        },
        transport: Arc::new(CannedReplies {
            replies: std::sync::Mutex::new(replies),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The store

/// Where the store's secrets live.
#[derive(Clone, Debug)]
struct Layout {
    mount: String,
    path: String,
    kv_version: u8,
}

impl Layout {
    fn current(&self) -> String {
        match self.kv_version {
            1 => format!("{}/{}", self.mount, self.path),
            _ => format!("{}/data/{}", self.mount, self.path),
        }
    }
    fn current_version(&self, version: u64) -> String {
        format!("{}?version={version}", self.current())
    }
    fn current_metadata(&self) -> String {
        format!("{}/metadata/{}", self.mount, self.path)
    }
    fn rotation(&self) -> String {
        match self.kv_version {
            1 => format!("{}/{}.rotation", self.mount, self.path),
            _ => format!("{}/data/{}.rotation", self.mount, self.path),
        }
    }
    fn rotation_metadata(&self) -> String {
        format!("{}/metadata/{}.rotation", self.mount, self.path)
    }
    /// KV v1: the sibling `check_writable` writes and deletes again.
    fn write_check(&self) -> String {
        format!("{}/{}.write-check", self.mount, self.path)
    }
}

/// The sibling `<path>.rotation`: the rotation in progress, never read by readers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<Intent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<CredentialRecord>,
    /// Written before the current token is replaced, so that a crash in the middle of a
    /// promotion can be finished from what the store holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promoting: Option<Promotion>,
    /// KV v1 only (v2 keeps the previous token as a version of `<path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<PreviousToken>,
    /// KV v1 only (v2 keeps it in `custom_metadata`); absent in documents written before the
    /// latch existed, and while it is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_latch: Option<LoginLatch>,
}

impl RotationDoc {
    fn is_empty(&self) -> bool {
        self.intent.is_none()
            && self.pending.is_none()
            && self.promoting.is_none()
            && self.previous.is_none()
            && self.login_latch.is_none()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Promotion {
    rotation_id: Uuid,
    revoke_after: DateTime<Utc>,
    /// KV v2: the version of `<path>` that becomes previous (none when there was no current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_version: Option<u64>,
    /// KV v1: the token that becomes previous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_token: Option<CredentialRecord>,
}

/// `custom_metadata` keys on `<path>` (KV v2).
const META_PREVIOUS_VERSION: &str = "previous_version";
const META_PREVIOUS_REVOKE_AFTER: &str = "previous_revoke_after";
const META_PREVIOUS_REVOKED_AT: &str = "previous_revoked_at";
const META_LOGIN_LATCH: &str = "login_latch";

/// The body of `check_writable`'s refused KV v2 writes: no `data`, which Vault refuses before it
/// looks at anything else ("no data provided"), and a `cas` no key will ever reach, which it
/// would refuse next. Vault checks the token's policy before the engine sees the request, so the
/// refusal proves the right to write the path while nothing can be written.
const REFUSED_WRITE_PROBE: &[u8] = br#"{"options":{"cas":9223372036854775807}}"#;

/// Everything read from Vault for one operation, with the versions to check-and-set against.
#[derive(Debug, Default)]
struct Snapshot {
    current: Option<CredentialRecord>,
    /// KV v2: `current_version` of `<path>` (0 when it does not exist): the next write's `cas`.
    current_cas: u64,
    /// KV v2: `custom_metadata` of `<path>`.
    custom: Map<String, Value>,
    rotation: RotationDoc,
    /// KV v2: version of `<path>.rotation` (0 when it does not exist).
    rotation_cas: u64,
    previous: Option<PreviousToken>,
}

impl Snapshot {
    /// A promotion whose new token is already current but whose bookkeeping is unfinished.
    fn committed_promotion(&self) -> Option<&Promotion> {
        let promotion = self.rotation.promoting.as_ref()?;
        let current = self.current.as_ref()?;
        (current.rotation_id() == promotion.rotation_id).then_some(promotion)
    }

    fn rotation_in_progress(&self) -> Option<Uuid> {
        self.rotation.intent.as_ref().map(|i| i.rotation_id).or(self
            .rotation
            .pending
            .as_ref()
            .map(|p| p.rotation_id()))
    }
}

#[derive(Serialize)]
struct CasOptions {
    cas: u64,
}

#[derive(Serialize)]
struct KvV2Write<'a, T> {
    options: CasOptions,
    data: &'a T,
}

#[derive(Serialize)]
struct MetadataWrite<'a> {
    custom_metadata: &'a Map<String, Value>,
}

/// A Vault KV secret store for one integration.
pub struct VaultStore {
    description: String,
    layout: Layout,
    transport: Arc<dyn Transport>,
}

/// Connects to Vault: validates the config, resolves the credentials, and proves them (a login,
/// or `lookup-self` for a static token), so a wrong setup fails at start with a clear message.
pub async fn connect(config: &VaultStoreConfig) -> Result<VaultStore, StoreError> {
    let address = config.address.trim_end_matches('/').to_string();
    let description = describe(config);
    let fail = |kind, detail: String| StoreError::new(&description, "connect", kind, detail);
    config
        .validate()
        .map_err(|e| fail(StoreErrorKind::Failed, e.to_string()))?;

    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if let Some(ca_cert) = &config.ca_cert {
        let pem = std::fs::read(ca_cert).map_err(|e| {
            fail(
                StoreErrorKind::Failed,
                format!("ca_cert: cannot read {}: {e}", ca_cert.display()),
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            fail(
                StoreErrorKind::Failed,
                format!(
                    "ca_cert: {} is not a PEM certificate bundle: {e}",
                    ca_cert.display()
                ),
            )
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder.build().map_err(|e| {
        fail(
            StoreErrorKind::Failed,
            format!("cannot build the HTTP client: {}", error_chain(&e)),
        )
    })?;

    let resolve = |key: &str, secret: &SecretRef| {
        secret
            .resolve()
            .map_err(|e| fail(StoreErrorKind::Failed, format!("auth.{key}: {e}")))
    };
    let (static_token, login) = match &config.auth {
        VaultAuth::Token { token } => (Some(resolve("token", token)?), None),
        VaultAuth::Approle {
            role_id,
            secret_id,
            mount,
        } => (
            None,
            Some(Login::AppRole {
                mount: mount.clone(),
                role_id: resolve("role_id", role_id)?,
                secret_id: resolve("secret_id", secret_id)?,
            }),
        ),
        VaultAuth::Kubernetes {
            role,
            jwt_path,
            mount,
        } => (
            None,
            Some(Login::Kubernetes {
                mount: mount.clone(),
                role: role.clone(),
                jwt_path: jwt_path.clone(),
            }),
        ),
    };

    let mut http = VaultHttp {
        client,
        address: address.clone(),
        namespace: config.namespace.clone(),
        login,
        session: tokio::sync::Mutex::new(Session {
            token: SecretString::from(""),
            lease: None,
        }),
    };
    match static_token {
        Some(token) => {
            let reply = http
                .exchange(Method::GET, "auth/token/lookup-self", None, Some(&token))
                .await
                .map_err(|f| fail(f.kind, f.detail))?;
            if reply.status != 200 {
                let mut failure = rejection(
                    "check the configured token",
                    Method::GET,
                    "auth/token/lookup-self",
                    &reply,
                );
                if reply.status == 403 {
                    failure
                        .detail
                        .push_str(" (the token is unknown, expired or revoked)");
                }
                return Err(fail(failure.kind, failure.detail));
            }
            http.session = tokio::sync::Mutex::new(Session { token, lease: None });
        }
        None => {
            let session = http.log_in().await.map_err(|f| fail(f.kind, f.detail))?;
            http.session = tokio::sync::Mutex::new(session);
        }
    }

    let mount_path = format!("sys/internal/ui/mounts/{}", config.mount);
    let mount = http
        .send(Method::GET, &mount_path, None)
        .await
        .map_err(|f| fail(f.kind, f.detail))?;
    if let Some(actual) = kv_version_of_mount(&mount)
        && actual != config.kv_version
    {
        return Err(fail(
            StoreErrorKind::Failed,
            format!(
                "kv_version = {}, but Vault says mount {} is KV version {actual}",
                config.kv_version, config.mount
            ),
        ));
    }

    Ok(VaultStore {
        description,
        layout: Layout {
            mount: config.mount.clone(),
            path: config.path.clone(),
            kv_version: config.kv_version,
        },
        transport: Arc::new(http),
    })
}

/// The KV version Vault reports for a mount (`sys/internal/ui/mounts/<mount>`, readable under
/// the default policy), so a wrong `kv_version` fails at start instead of writing to odd paths.
/// `None` when the server does not say (older Vaults, compatible servers, no permission).
fn kv_version_of_mount(reply: &Reply) -> Option<u8> {
    if reply.status != 200 || reply.body.pointer("/data/type")?.as_str()? != "kv" {
        return None;
    }
    match reply.body.pointer("/data/options/version") {
        Some(Value::String(v)) => v.parse().ok(),
        Some(Value::Null) | None => Some(1),
        Some(_) => None,
    }
}

fn describe(config: &VaultStoreConfig) -> String {
    let namespace = match &config.namespace {
        Some(ns) => format!(", namespace {ns}"),
        None => String::new(),
    };
    format!(
        "vault {} {}/{} (KV v{}{namespace})",
        config.address.trim_end_matches('/'),
        config.mount,
        config.path,
        config.kv_version
    )
}

impl VaultStore {
    /// KV v1 has no check-and-set: only one daemon may rotate through this store (`check` warns).
    pub fn is_single_writer(&self) -> bool {
        self.layout.kv_version == 1
    }

    fn error(
        &self,
        op: &'static str,
        kind: StoreErrorKind,
        detail: impl Into<String>,
    ) -> StoreError {
        StoreError::new(&self.description, op, kind, detail)
    }

    fn conflict(&self, op: &'static str, detail: impl Into<String>) -> StoreError {
        self.error(op, StoreErrorKind::Conflict, detail)
    }

    async fn call(
        &self,
        op: &'static str,
        step: &str,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, StoreError> {
        self.transport
            .send(method, path, body)
            .await
            .map_err(|f| self.error(op, f.kind, format!("{step}: {}", f.detail)))
    }

    fn reject(
        &self,
        op: &'static str,
        step: &str,
        method: Method,
        path: &str,
        reply: &Reply,
    ) -> StoreError {
        let failure = rejection(step, method, path, reply);
        self.error(op, failure.kind, failure.detail)
    }

    /// GET; `None` for 404 (with the body, which for a soft-deleted KV v2 version still names it).
    async fn read(
        &self,
        op: &'static str,
        step: &str,
        path: &str,
    ) -> Result<Result<Value, Value>, StoreError> {
        let reply = self.call(op, step, Method::GET, path, None).await?;
        match reply.status {
            200 => Ok(Ok(reply.body)),
            404 => Ok(Err(reply.body)),
            _ => Err(self.reject(op, step, Method::GET, path, &reply)),
        }
    }

    async fn write(
        &self,
        op: &'static str,
        step: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let reply = self.call(op, step, Method::POST, path, Some(body)).await?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.reject(op, step, Method::POST, path, &reply)),
        }
    }

    async fn delete(&self, op: &'static str, step: &str, path: &str) -> Result<(), StoreError> {
        let reply = self.call(op, step, Method::DELETE, path, None).await?;
        match reply.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.reject(op, step, Method::DELETE, path, &reply)),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        what: &str,
        path: &str,
        value: Option<&Value>,
    ) -> Result<T, StoreError> {
        let value = value.cloned().unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| {
            self.error(
                op,
                StoreErrorKind::Invalid,
                format!(
                    "{what} at {path} is not this program's JSON: {}",
                    safe_serde_reason(&e)
                ),
            )
        })
    }

    // --- reading --------------------------------------------------------------------------

    async fn snapshot(&self, op: &'static str) -> Result<Snapshot, StoreError> {
        match self.layout.kv_version {
            1 => self.snapshot_v1(op).await,
            _ => self.snapshot_v2(op).await,
        }
    }

    async fn snapshot_v1(&self, op: &'static str) -> Result<Snapshot, StoreError> {
        let current_path = self.layout.current();
        let current = match self.read(op, "read current (KV v1)", &current_path).await? {
            Ok(body) => {
                Some(self.parse(op, "the current token", &current_path, body.get("data"))?)
            }
            Err(_) => None,
        };
        let rotation_path = self.layout.rotation();
        let rotation: RotationDoc = match self
            .read(op, "read rotation state (KV v1)", &rotation_path)
            .await?
        {
            Ok(body) => self.parse(op, "the rotation state", &rotation_path, body.get("data"))?,
            Err(_) => RotationDoc::default(),
        };
        let mut snapshot = Snapshot {
            current,
            previous: rotation.previous.clone(),
            rotation,
            ..Snapshot::default()
        };
        if let Some(promotion) = snapshot.committed_promotion() {
            snapshot.previous = promotion.previous_token.clone().map(|token| PreviousToken {
                token,
                revoke_after: promotion.revoke_after,
                revoked_at: None,
            });
        }
        Ok(snapshot)
    }

    async fn snapshot_v2(&self, op: &'static str) -> Result<Snapshot, StoreError> {
        let metadata_path = self.layout.current_metadata();
        let (current_cas, custom) = match self
            .read(op, "read metadata (KV v2)", &metadata_path)
            .await?
        {
            Ok(body) => {
                let version = body
                    .pointer("/data/current_version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let custom = body
                    .pointer("/data/custom_metadata")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                (version, custom)
            }
            Err(_) => (0, Map::new()),
        };
        let current = match current_cas {
            0 => None,
            version => self.read_version(op, version).await?,
        };

        let rotation_path = self.layout.rotation();
        let (rotation, rotation_cas) = match self
            .read(op, "read rotation state (KV v2)", &rotation_path)
            .await?
        {
            Ok(body) => {
                let doc = self.parse(
                    op,
                    "the rotation state",
                    &rotation_path,
                    body.pointer("/data/data"),
                )?;
                let version = body
                    .pointer("/data/metadata/version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                (doc, version)
            }
            // A soft-deleted latest version still counts for check-and-set.
            Err(body) => (
                RotationDoc::default(),
                body.pointer("/data/metadata/version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            ),
        };

        let mut snapshot = Snapshot {
            current,
            current_cas,
            custom,
            rotation,
            rotation_cas,
            previous: None,
        };
        snapshot.previous = match snapshot.committed_promotion().cloned() {
            Some(promotion) => match promotion.previous_version {
                Some(version) => {
                    self.previous_from_version(op, version, promotion.revoke_after, None)
                        .await?
                }
                None => None,
            },
            None => self.previous_from_metadata(op, &snapshot.custom).await?,
        };
        Ok(snapshot)
    }

    async fn read_version(
        &self,
        op: &'static str,
        version: u64,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let path = self.layout.current_version(version);
        let step = format!("read version {version} (KV v2)");
        match self.read(op, &step, &path).await? {
            Ok(body) => Ok(Some(self.parse(
                op,
                &format!("version {version} of the token"),
                &path,
                body.pointer("/data/data"),
            )?)),
            Err(_) => Ok(None),
        }
    }

    async fn previous_from_metadata(
        &self,
        op: &'static str,
        custom: &Map<String, Value>,
    ) -> Result<Option<PreviousToken>, StoreError> {
        let Some(version) = custom.get(META_PREVIOUS_VERSION).and_then(Value::as_str) else {
            return Ok(None);
        };
        let metadata_path = self.layout.current_metadata();
        let bad = |key: &str| {
            self.error(
                op,
                StoreErrorKind::Invalid,
                format!("custom_metadata of {metadata_path}: {key} is missing or not what this program writes"),
            )
        };
        let version: u64 = version.parse().map_err(|_| bad(META_PREVIOUS_VERSION))?;
        let time = |key: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
            match custom.get(key).and_then(Value::as_str) {
                None | Some("") => Ok(None),
                Some(text) => DateTime::parse_from_rfc3339(text)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(|_| bad(key)),
            }
        };
        let revoke_after =
            time(META_PREVIOUS_REVOKE_AFTER)?.ok_or_else(|| bad(META_PREVIOUS_REVOKE_AFTER))?;
        let revoked_at = time(META_PREVIOUS_REVOKED_AT)?;
        self.previous_from_version(op, version, revoke_after, revoked_at)
            .await
    }

    async fn previous_from_version(
        &self,
        op: &'static str,
        version: u64,
        revoke_after: DateTime<Utc>,
        revoked_at: Option<DateTime<Utc>>,
    ) -> Result<Option<PreviousToken>, StoreError> {
        match self.read_version(op, version).await? {
            Some(token) => Ok(Some(PreviousToken {
                token,
                revoke_after,
                revoked_at,
            })),
            // Nothing left to revoke or show once it was revoked.
            None if revoked_at.is_some() => Ok(None),
            None => Err(self.error(
                op,
                StoreErrorKind::Invalid,
                format!(
                    "the previous token (version {version} of {}) is gone but was never revoked: \
                     revoke it in NetSuite by hand, and keep max_versions of the mount at 2 or more",
                    self.layout.current()
                ),
            )),
        }
    }

    // --- writing --------------------------------------------------------------------------

    async fn write_current(
        &self,
        op: &'static str,
        token: &CredentialRecord,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let path = self.layout.current();
        self.write_kv(op, "write current", &path, token, snapshot.current_cas)
            .await
    }

    async fn write_rotation(
        &self,
        op: &'static str,
        doc: &RotationDoc,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let path = self.layout.rotation();
        self.write_kv(
            op,
            "write rotation state",
            &path,
            doc,
            snapshot.rotation_cas,
        )
        .await
    }

    /// Writes `data` at `path`: as is on KV v1, wrapped with `options.cas` on KV v2.
    async fn write_kv<T: Serialize>(
        &self,
        op: &'static str,
        what: &str,
        path: &str,
        data: &T,
        cas: u64,
    ) -> Result<(), StoreError> {
        match self.layout.kv_version {
            1 => {
                let step = format!("{what} (KV v1)");
                self.write(op, &step, path, &to_json_bytes(data)).await
            }
            _ => {
                let body = KvV2Write {
                    options: CasOptions { cas },
                    data,
                };
                let step = format!("{what} (KV v2 cas={cas})");
                self.write(op, &step, path, &to_json_bytes(&body)).await
            }
        }
    }

    /// Ends the rotation: KV v2 deletes `<path>.rotation` with all its versions; KV v1 keeps
    /// only the previous token and the login latch of `snapshot` there.
    async fn clear_rotation(
        &self,
        op: &'static str,
        snapshot: &Snapshot,
        previous: Option<PreviousToken>,
    ) -> Result<(), StoreError> {
        match self.layout.kv_version {
            1 => {
                let doc = RotationDoc {
                    previous,
                    login_latch: snapshot.rotation.login_latch.clone(),
                    ..RotationDoc::default()
                };
                let path = self.layout.rotation();
                if doc.is_empty() {
                    self.delete(op, "delete rotation state (KV v1)", &path)
                        .await
                } else {
                    self.write(
                        op,
                        "write rotation state (KV v1)",
                        &path,
                        &to_json_bytes(&doc),
                    )
                    .await
                }
            }
            _ => {
                let path = self.layout.rotation_metadata();
                self.delete(op, "delete rotation state (KV v2 metadata)", &path)
                    .await
            }
        }
    }

    /// KV v2: records the previous token's version and times in `custom_metadata` of `<path>`,
    /// keeping keys that other tools put there.
    async fn write_previous_metadata(
        &self,
        op: &'static str,
        custom: &Map<String, Value>,
        previous: Option<(u64, DateTime<Utc>, Option<DateTime<Utc>>)>,
    ) -> Result<(), StoreError> {
        let mut custom = custom.clone();
        for key in [
            META_PREVIOUS_VERSION,
            META_PREVIOUS_REVOKE_AFTER,
            META_PREVIOUS_REVOKED_AT,
        ] {
            custom.remove(key);
        }
        if let Some((version, revoke_after, revoked_at)) = previous {
            custom.insert(
                META_PREVIOUS_VERSION.into(),
                Value::String(version.to_string()),
            );
            custom.insert(
                META_PREVIOUS_REVOKE_AFTER.into(),
                Value::String(revoke_after.to_rfc3339()),
            );
            if let Some(at) = revoked_at {
                custom.insert(
                    META_PREVIOUS_REVOKED_AT.into(),
                    Value::String(at.to_rfc3339()),
                );
            }
        }
        self.write_custom_metadata(op, &custom).await
    }

    /// KV v2: replaces `custom_metadata` of `<path>` with `custom` (the map as read, with this
    /// program's keys changed), creating the key's metadata if `<path>` has no version yet.
    async fn write_custom_metadata(
        &self,
        op: &'static str,
        custom: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let body = MetadataWrite {
            custom_metadata: custom,
        };
        let path = self.layout.current_metadata();
        self.write(
            op,
            "write custom_metadata (KV v2)",
            &path,
            &to_json_bytes(&body),
        )
        .await
    }

    /// KV v2: the login latch in `custom_metadata` of `<path>`.
    fn latch_from_metadata(
        &self,
        op: &'static str,
        custom: &Map<String, Value>,
    ) -> Result<Option<LoginLatch>, StoreError> {
        let Some(value) = custom.get(META_LOGIN_LATCH) else {
            return Ok(None);
        };
        value
            .as_str()
            .ok_or_else(|| "not a string".to_string())
            .and_then(LoginLatch::from_compact)
            .map(Some)
            .map_err(|reason| {
                self.error(
                    op,
                    StoreErrorKind::Invalid,
                    format!(
                        "custom_metadata of {}: {META_LOGIN_LATCH} is {reason}; clear it (set_login_latch None, or delete the key) to go on",
                        self.layout.current_metadata()
                    ),
                )
            })
    }

    /// KV v2 `check_writable` on `path`: a write Vault must refuse for its content (see
    /// [`REFUSED_WRITE_PROBE`]) after it has allowed it by policy.
    async fn refused_write(
        &self,
        op: &'static str,
        what: &str,
        path: &str,
    ) -> Result<(), StoreError> {
        let step = format!("prove write access to the {what} (KV v2 write with no data)");
        let reply = self
            .call(op, &step, Method::POST, path, Some(REFUSED_WRITE_PROBE))
            .await?;
        let errors = vault_errors(&reply.body);
        match reply.status {
            400 if errors.contains("no data provided") || errors.contains("check-and-set") => {
                Ok(())
            }
            200 | 204 => Err(self.error(
                op,
                StoreErrorKind::Failed,
                format!(
                    "{step}: POST /v1/{path}: HTTP {}: the server took a write with no data and an impossible cas, \
                     which Vault's KV v2 refuses; this server's check-and-set cannot be trusted",
                    reply.status
                ),
            )),
            _ => Err(self.reject(op, &step, Method::POST, path, &reply)),
        }
    }

    /// Finishes a promotion whose new token is already current: records the previous token and
    /// clears the rotation.
    async fn finish_promotion(
        &self,
        op: &'static str,
        snapshot: &Snapshot,
        promotion: &Promotion,
    ) -> Result<(), StoreError> {
        match self.layout.kv_version {
            1 => {
                let previous = promotion.previous_token.clone().map(|token| PreviousToken {
                    token,
                    revoke_after: promotion.revoke_after,
                    revoked_at: None,
                });
                self.clear_rotation(op, snapshot, previous).await
            }
            _ => {
                let previous = promotion
                    .previous_version
                    .map(|v| (v, promotion.revoke_after, None));
                self.write_previous_metadata(op, &snapshot.custom, previous)
                    .await?;
                self.clear_rotation(op, snapshot, None).await
            }
        }
    }

    /// Finishes a committed promotion left by a crash, and returns what the store then holds.
    async fn settled_snapshot(&self, op: &'static str) -> Result<Snapshot, StoreError> {
        let snapshot = self.snapshot(op).await?;
        match snapshot.committed_promotion().cloned() {
            Some(promotion) => {
                self.finish_promotion(op, &snapshot, &promotion).await?;
                self.snapshot(op).await
            }
            None => Ok(snapshot),
        }
    }
}

/// Serde's reason without the value it quotes for type errors (the value may be a secret).
fn safe_serde_reason(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("missing field") || text.starts_with("unknown field") {
        text
    } else {
        "a field has the wrong type or format".to_string()
    }
}

#[async_trait::async_trait]
impl SecretStore for VaultStore {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn load(&self) -> Result<StoreState, StoreError> {
        let snapshot = self.snapshot("load").await?;
        let login_latch = match self.layout.kv_version {
            1 => snapshot.rotation.login_latch,
            _ => self.latch_from_metadata("load", &snapshot.custom)?,
        };
        Ok(StoreState {
            current: snapshot.current,
            previous: snapshot.previous,
            intent: snapshot.rotation.intent,
            pending: snapshot.rotation.pending,
            login_latch,
        })
    }

    async fn begin_rotation(&self, intent: &Intent) -> Result<(), StoreError> {
        const OP: &str = "begin_rotation";
        let snapshot = self.settled_snapshot(OP).await?;
        if let Some(existing) = snapshot.rotation_in_progress() {
            return if existing == intent.rotation_id {
                Ok(())
            } else {
                Err(self.conflict(OP, format!("rotation {existing} is already in progress")))
            };
        }
        let doc = RotationDoc {
            intent: Some(intent.clone()),
            ..snapshot.rotation.clone()
        };
        match self.write_rotation(OP, &doc, &snapshot).await {
            Err(e) if e.is_conflict() => {
                // Lost the create-only race; it is still ours if a repeat of this call won it.
                let now = self.snapshot(OP).await?;
                match now.rotation_in_progress() {
                    Some(id) if id == intent.rotation_id => Ok(()),
                    Some(id) => Err(self.conflict(OP, format!("rotation {id} started first"))),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn stage_pending(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        const OP: &str = "stage_pending";
        let snapshot = self.snapshot(OP).await?;
        if snapshot
            .current
            .as_ref()
            .is_some_and(|c| c.rotation_id() == token.rotation_id() && c.id() == token.id())
        {
            return Ok(()); // already promoted: a late repeat
        }
        match &snapshot.rotation.intent {
            Some(intent) if intent.rotation_id == token.rotation_id() => {}
            Some(intent) => {
                return Err(self.conflict(
                    OP,
                    format!(
                        "the store's intent belongs to rotation {}",
                        intent.rotation_id
                    ),
                ));
            }
            None => {
                return Err(self.conflict(
                    OP,
                    format!(
                        "no intent for rotation {} (it was abandoned or never begun)",
                        token.rotation_id()
                    ),
                ));
            }
        }
        if let Some(pending) = &snapshot.rotation.pending {
            return if pending.id() == token.id() {
                Ok(())
            } else {
                Err(self.conflict(OP, "another token is already staged for this rotation"))
            };
        }
        let doc = RotationDoc {
            pending: Some(token.clone()),
            ..snapshot.rotation.clone()
        };
        match self.write_rotation(OP, &doc, &snapshot).await {
            Err(e) if e.is_conflict() => {
                let now = self.snapshot(OP).await?;
                match now.rotation.pending {
                    Some(p) if p.rotation_id() == token.rotation_id() && p.id() == token.id() => {
                        Ok(())
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    async fn promote(
        &self,
        rotation_id: Uuid,
        revoke_previous_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "promote";
        let snapshot = self.snapshot(OP).await?;
        if snapshot
            .current
            .as_ref()
            .is_some_and(|c| c.rotation_id() == rotation_id)
        {
            if let Some(promotion) = snapshot.committed_promotion().cloned() {
                self.finish_promotion(OP, &snapshot, &promotion).await?;
            } else if snapshot.rotation_in_progress() == Some(rotation_id) {
                self.clear_rotation(OP, &snapshot, snapshot.rotation.previous.clone())
                    .await?;
            }
            return Ok(());
        }
        let pending = match (&snapshot.rotation.intent, &snapshot.rotation.pending) {
            (Some(intent), Some(pending))
                if intent.rotation_id == rotation_id && pending.rotation_id() == rotation_id =>
            {
                pending.clone()
            }
            _ => {
                return Err(self.conflict(
                    OP,
                    format!("no pending token of rotation {rotation_id} to promote"),
                ));
            }
        };
        if let Some(previous) = &snapshot.previous
            && previous.revoked_at.is_none()
        {
            return Err(self.conflict(
                OP,
                format!(
                    "the previous token (revoke after {}) has not been revoked yet and would be overwritten",
                    previous.revoke_after.to_rfc3339()
                ),
            ));
        }

        let promotion = Promotion {
            rotation_id,
            revoke_after: revoke_previous_after,
            previous_version: match self.layout.kv_version {
                1 => None,
                _ => snapshot.current.as_ref().map(|_| snapshot.current_cas),
            },
            previous_token: match self.layout.kv_version {
                1 => snapshot.current.clone(),
                _ => None,
            },
        };
        let doc = RotationDoc {
            promoting: Some(promotion.clone()),
            ..snapshot.rotation.clone()
        };
        self.write_rotation(OP, &doc, &snapshot).await?;
        self.write_current(OP, &pending, &snapshot).await?;
        self.finish_promotion(OP, &snapshot, &promotion).await
    }

    async fn abandon_rotation(&self, rotation_id: Uuid) -> Result<(), StoreError> {
        const OP: &str = "abandon_rotation";
        let snapshot = self.snapshot(OP).await?;
        if snapshot.rotation_in_progress() != Some(rotation_id) {
            return Ok(());
        }
        if snapshot
            .current
            .as_ref()
            .is_some_and(|c| c.rotation_id() == rotation_id)
        {
            return Err(self.conflict(
                OP,
                format!("rotation {rotation_id} is already current; call promote to finish it"),
            ));
        }
        self.clear_rotation(OP, &snapshot, snapshot.rotation.previous.clone())
            .await
    }

    async fn mark_previous_revoked(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "mark_previous_revoked";
        let snapshot = self.settled_snapshot(OP).await?;
        let Some(previous) = &snapshot.previous else {
            return Ok(());
        };
        if previous.token.id() != token_id || previous.revoked_at.is_some() {
            return Ok(());
        }
        match self.layout.kv_version {
            1 => {
                let doc = RotationDoc {
                    previous: Some(PreviousToken {
                        revoked_at: Some(at),
                        ..previous.clone()
                    }),
                    ..snapshot.rotation.clone()
                };
                self.write_rotation(OP, &doc, &snapshot).await
            }
            _ => {
                let version = snapshot
                    .custom
                    .get(META_PREVIOUS_VERSION)
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        self.error(
                            OP,
                            StoreErrorKind::Invalid,
                            "custom_metadata lost previous_version",
                        )
                    })?;
                self.write_previous_metadata(
                    OP,
                    &snapshot.custom,
                    Some((version, previous.revoke_after, Some(at))),
                )
                .await
            }
        }
    }

    async fn import_current(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        const OP: &str = "import_current";
        let snapshot = self.snapshot(OP).await?;
        if let Some(current) = &snapshot.current {
            return if current.rotation_id() == token.rotation_id() && current.id() == token.id() {
                Ok(())
            } else {
                Err(self.conflict(OP, "the store already has a current token"))
            };
        }
        if let Some(id) = snapshot.rotation_in_progress() {
            return Err(self.conflict(OP, format!("rotation {id} is in progress")));
        }
        match self.write_current(OP, token, &snapshot).await {
            Err(e) if e.is_conflict() => {
                let now = self.snapshot(OP).await?;
                match now.current {
                    Some(c) if c.rotation_id() == token.rotation_id() && c.id() == token.id() => {
                        Ok(())
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    async fn set_login_latch(&self, latch: Option<&LoginLatch>) -> Result<(), StoreError> {
        const OP: &str = "set_login_latch";
        match self.layout.kv_version {
            1 => {
                // Read and written whole, like every KV v1 step (one daemon per store); the
                // rotation's fields are written back as they were read.
                let snapshot = self.snapshot_v1(OP).await?;
                if snapshot.rotation.login_latch.as_ref() == latch {
                    return Ok(());
                }
                let doc = RotationDoc {
                    login_latch: latch.cloned(),
                    ..snapshot.rotation.clone()
                };
                let path = self.layout.rotation();
                if doc.is_empty() {
                    self.delete(OP, "delete rotation state (KV v1)", &path)
                        .await
                } else {
                    self.write_rotation(OP, &doc, &snapshot).await
                }
            }
            _ => {
                // Read-modify-write of the map, as the previous token's keys are written: only
                // `login_latch` changes. Not `<path>.rotation`, whose create-only write is the
                // check-and-set of `begin_rotation`, and not a version of `<path>`, which readers
                // would read.
                let wanted = latch
                    .map(LoginLatch::to_compact)
                    .transpose()
                    .map_err(|reason| self.error(OP, StoreErrorKind::Failed, reason))?;
                let path = self.layout.current_metadata();
                let mut custom = match self.read(OP, "read metadata (KV v2)", &path).await? {
                    Ok(body) => body
                        .pointer("/data/custom_metadata")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                    Err(_) => Map::new(),
                };
                if custom.get(META_LOGIN_LATCH).and_then(Value::as_str) == wanted.as_deref() {
                    return Ok(());
                }
                match wanted {
                    Some(text) => custom.insert(META_LOGIN_LATCH.into(), Value::String(text)),
                    None => custom.remove(META_LOGIN_LATCH),
                };
                self.write_custom_metadata(OP, &custom).await
            }
        }
    }

    /// KV v2 changes nothing at all: Vault checks the token's policy before the KV engine sees
    /// a request, so requests that pass the policy and are then refused for their content, or
    /// that the engine answers without writing, prove the rights a rotation needs:
    /// - `POST <mount>/data/<path>` and `<mount>/data/<path>.rotation` with no `data` and a
    ///   `cas` no key reaches ([`REFUSED_WRITE_PROBE`]): `create`, or `update` once the key
    ///   exists, as the next real write there needs. Vault answers 400; the audit log shows them.
    /// - `POST <mount>/metadata/<path>` with an empty body: Vault's KV engine returns before it
    ///   reads or writes anything when no field is given ("fast path"), after the policy
    ///   allowed `create`/`update`.
    ///
    /// A no-op rewrite of `custom_metadata` would race with a promotion writing the previous
    /// token's keys (metadata has no check-and-set) and could undo it; a throwaway document
    /// beside `<path>` would prove rights on a path the rotation never writes. The `delete` of
    /// `<path>.rotation`'s metadata (the end of every rotation) cannot be proven without
    /// deleting it.
    ///
    /// KV v1 has no check-and-set to refuse a write with, and may take an empty document, so it
    /// writes a tiny document to `<mount>/<path>.write-check`, a sibling no reader and no
    /// rotation uses, and deletes it again: that proves that Vault takes this token's writes
    /// on the mount (unsealed, storage writable, token valid), and the `create`/`update`/
    /// `delete` rights on that path, which the documented policy grants beside the others. Two
    /// checks at once are harmless (both write, both delete).
    async fn check_writable(&self) -> Result<(), StoreError> {
        const OP: &str = "check_writable";
        match self.layout.kv_version {
            1 => {
                let path = self.layout.write_check();
                self.write(
                    OP,
                    "write the check document (KV v1)",
                    &path,
                    br#"{"netsuite_token_rotator":"write check"}"#,
                )
                .await?;
                self.delete(OP, "delete the check document (KV v1)", &path)
                    .await
            }
            _ => {
                self.refused_write(OP, "current token", &self.layout.current())
                    .await?;
                self.refused_write(OP, "rotation state", &self.layout.rotation())
                    .await?;
                let path = self.layout.current_metadata();
                self.write(
                    OP,
                    "prove write access to the metadata (KV v2 metadata write with no field)",
                    &path,
                    b"{}",
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::store::TokenRecord;

    // --- pure parts --------------------------------------------------------------------------

    #[test]
    fn token_is_renewed_or_replaced_in_the_last_third_of_its_ttl() {
        let now = Instant::now();
        let lease = |age_s: u64, ttl_s: u64, renewable: bool| Lease {
            obtained: now - Duration::from_secs(age_s),
            ttl: Duration::from_secs(ttl_s),
            renewable,
        };
        assert_eq!(token_action(None, now), TokenAction::Use);
        assert_eq!(
            token_action(Some(&lease(5, 0, true)), now),
            TokenAction::Use
        );
        assert_eq!(
            token_action(Some(&lease(5, 9, true)), now),
            TokenAction::Use
        );
        assert_eq!(
            token_action(Some(&lease(6, 9, true)), now),
            TokenAction::Renew
        );
        assert_eq!(
            token_action(Some(&lease(6, 9, false)), now),
            TokenAction::Login
        );
        assert_eq!(
            token_action(Some(&lease(20, 9, true)), now),
            TokenAction::Renew
        );
    }

    #[test]
    fn refusals_are_classified_and_quote_only_vault_errors() {
        let cas = json!({"errors": ["check-and-set parameter did not match the current version"]});
        assert_eq!(kind_for(400, &vault_errors(&cas)), StoreErrorKind::Conflict);
        assert_eq!(kind_for(400, "invalid request"), StoreErrorKind::Failed);
        assert_eq!(kind_for(403, ""), StoreErrorKind::Denied);
        for status in [412, 429, 500, 502, 503] {
            assert_eq!(
                kind_for(status, ""),
                StoreErrorKind::Unavailable,
                "{status}"
            );
        }
        assert_eq!(kind_for(404, ""), StoreErrorKind::Failed);

        assert_eq!(vault_errors(&json!({"errors": ["a", "b"]})), "a; b");
        assert_eq!(
            vault_errors(&json!({"error": "Permission denied."})),
            "Permission denied."
        );
        let secretive = json!({"data": {"token_secret": "s3cr3t"}});
        assert_eq!(vault_errors(&secretive), "no error text");

        let reply = Reply {
            status: 400,
            body: cas,
        };
        let failure = rejection(
            "write current (KV v2 cas=3)",
            Method::POST,
            "secret/data/ns/x",
            &reply,
        );
        assert_eq!(failure.kind, StoreErrorKind::Conflict);
        assert_eq!(
            failure.detail,
            "write current (KV v2 cas=3): POST /v1/secret/data/ns/x: HTTP 400: \
             check-and-set parameter did not match the current version"
        );
    }

    #[test]
    fn the_mount_s_kv_version_is_read_from_vault_s_answer() {
        let mount = |status, body| kv_version_of_mount(&Reply { status, body });
        let v2 = json!({"data": {"type": "kv", "options": {"version": "2"}, "path": "secret/"}});
        assert_eq!(mount(200, v2), Some(2));
        assert_eq!(
            mount(200, json!({"data": {"type": "kv", "options": null}})),
            Some(1)
        );
        assert_eq!(
            mount(
                200,
                json!({"data": {"type": "kv", "options": {"version": "1"}}})
            ),
            Some(1)
        );
        assert_eq!(mount(200, json!({"data": {"type": "transit"}})), None);
        assert_eq!(mount(404, json!({"errors": []})), None);
        assert_eq!(
            mount(500, json!({"error": "Logical backend path not supported."})),
            None
        );
    }

    #[test]
    fn serde_reasons_never_quote_values() {
        let wrong_type: Result<CredentialRecord, _> = serde_json::from_value(json!({
            "account_id": "1", "realm": "1", "token_id": "t", "token_secret": ["s3cr3t"],
            "issued_at": "2026-01-01T00:00:00Z", "rotation_id": Uuid::nil()
        }));
        let reason = safe_serde_reason(&wrong_type.unwrap_err());
        assert!(!reason.contains("s3cr3t"), "{reason}");
        let missing: Result<CredentialRecord, _> =
            serde_json::from_value(json!({"account_id": "1"}));
        assert!(safe_serde_reason(&missing.unwrap_err()).starts_with("missing field"));
    }

    #[derive(Deserialize)]
    struct Wrapper {
        store: VaultStoreConfig,
    }

    fn parse(toml_text: &str) -> Result<VaultStoreConfig, String> {
        toml::from_str::<Wrapper>(toml_text)
            .map(|w| w.store)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn config_defaults_and_auth_methods() {
        let config = parse(
            r#"[store]
address = "https://vault.internal:8200"
path = "netsuite/erp-sync"
auth = { method = "kubernetes", role = "netsuite-token-rotator" }"#,
        )
        .unwrap();
        assert_eq!(config.mount, "secret");
        assert_eq!(config.kv_version, 2);
        config.validate().unwrap();
        match &config.auth {
            VaultAuth::Kubernetes {
                role,
                jwt_path,
                mount,
            } => {
                assert_eq!(role, "netsuite-token-rotator");
                assert_eq!(
                    jwt_path,
                    Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token")
                );
                assert_eq!(mount, "kubernetes");
            }
            other => panic!("{other:?}"),
        }

        let approle = parse(
            r#"[store]
address = "http://127.0.0.1:8200"
path = "p"
kv_version = 1
auth = { method = "approle", role_id = { env = "ROLE_ID" }, secret_id = { file = "/run/sid" } }"#,
        )
        .unwrap();
        assert!(matches!(&approle.auth, VaultAuth::Approle { mount, .. } if mount == "approle"));
        let token = parse(
            r#"[store]
address = "http://127.0.0.1:8200"
path = "p"
auth = { method = "token", token = "literal-token-value" }"#,
        )
        .unwrap();
        assert!(!format!("{token:?}").contains("literal-token-value"));
    }

    #[test]
    fn config_mistakes_are_named() {
        let base = |extra: &str| {
            format!(
                "[store]\naddress = \"http://127.0.0.1:8200\"\npath = \"netsuite/x\"\n{extra}\nauth = {{ method = \"token\", token = {{ env = \"T\" }} }}"
            )
        };
        let err = parse(&base("kv_version = 3"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("kv_version"), "{err}");
        let err = parse(&base("mount = \"a//b\""))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("mount = "), "{err}");
        let err = parse(&base("path_typo = \"x\"")).unwrap_err();
        assert!(err.contains("path_typo"), "{err}");
        let err = parse("[store]\naddress = \"vault:8200\"\npath = \"x\"\nauth = { method = \"token\", token = \"t\" }")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("address = "), "{err}");
        let err =
            parse("[store]\naddress = \"http://v\"\npath = \"x\"\nauth = { method = \"ldap\" }")
                .unwrap_err();
        assert!(err.contains("ldap"), "{err}");
    }

    // --- KV v2 layout, against an in-memory KV v2 --------------------------------------------

    #[derive(Default)]
    struct Kv2Secret {
        versions: Vec<Value>,
        custom: Map<String, Value>,
    }

    /// KV v2 as Vault's API documents it, in memory, mounted at `secret`: versions, `cas`,
    /// `custom_metadata`, metadata delete. Can fail one request, or let "another writer" write
    /// to a path just before our next write there.
    #[derive(Default)]
    struct FakeKv2 {
        secrets: Mutex<HashMap<String, Kv2Secret>>,
        fail_once: Mutex<Option<(Method, String)>>,
        interfere: Mutex<Option<(String, Value)>>,
        writes: Mutex<Vec<String>>,
    }

    fn reply(status: u16, body: Value) -> Result<Reply, Failure> {
        Ok(Reply { status, body })
    }

    #[async_trait::async_trait]
    impl Transport for FakeKv2 {
        async fn send(
            &self,
            method: Method,
            path: &str,
            body: Option<&[u8]>,
        ) -> Result<Reply, Failure> {
            if self.fail_once.lock().unwrap().as_ref() == Some(&(method.clone(), path.to_string()))
            {
                *self.fail_once.lock().unwrap() = None;
                return reply(503, json!({"errors": ["Vault is sealed"]}));
            }
            let body: Value = body
                .map(|b| serde_json::from_slice(b).unwrap())
                .unwrap_or(Value::Null);
            let (path, version) = match path.split_once("?version=") {
                Some((p, v)) => (p, Some(v.parse::<usize>().unwrap())),
                None => (path, None),
            };
            let rest = path.strip_prefix("secret/").expect("mount secret");
            let mut secrets = self.secrets.lock().unwrap();
            if let Some(key) = rest.strip_prefix("data/") {
                if method == Method::GET {
                    let Some(secret) = secrets.get(key) else {
                        return reply(404, json!({"errors": []}));
                    };
                    let n = version.unwrap_or(secret.versions.len());
                    return match secret.versions.get(n.wrapping_sub(1)) {
                        Some(data) => reply(
                            200,
                            json!({"data": {"data": data, "metadata": {"version": n}}}),
                        ),
                        None => reply(404, json!({"errors": []})),
                    };
                }
                assert_eq!(method, Method::POST);
                self.writes
                    .lock()
                    .unwrap()
                    .push(format!("{key} cas={}", body["options"]["cas"]));
                if body.get("data").is_none_or(Value::is_null) {
                    return reply(400, json!({"errors": ["no data provided"]}));
                }
                let interference = self.interfere.lock().unwrap().take_if(|(p, _)| p == key);
                if let Some((_, other)) = interference {
                    secrets
                        .entry(key.to_string())
                        .or_default()
                        .versions
                        .push(other);
                }
                let secret = secrets.entry(key.to_string()).or_default();
                if let Some(cas) = body["options"]["cas"].as_u64()
                    && cas as usize != secret.versions.len()
                {
                    return reply(
                        400,
                        json!({"errors": ["check-and-set parameter did not match the current version"]}),
                    );
                }
                secret.versions.push(body["data"].clone());
                return reply(200, json!({"data": {"version": secret.versions.len()}}));
            }
            let key = rest.strip_prefix("metadata/").expect("data/ or metadata/");
            match method {
                Method::GET => match secrets.get(key) {
                    Some(s) => reply(
                        200,
                        json!({"data": {"current_version": s.versions.len(), "custom_metadata": s.custom}}),
                    ),
                    None => reply(404, json!({"errors": []})),
                },
                Method::POST => {
                    self.writes.lock().unwrap().push(format!("{key} metadata"));
                    // Vault's "fast path": a write that names no field changes nothing.
                    let Some(custom) = body.get("custom_metadata").and_then(Value::as_object)
                    else {
                        return reply(204, Value::Null);
                    };
                    let custom = custom.clone();
                    assert!(
                        custom.values().all(Value::is_string),
                        "custom_metadata values are strings"
                    );
                    secrets.entry(key.to_string()).or_default().custom = custom;
                    reply(204, Value::Null)
                }
                Method::DELETE => {
                    secrets.remove(key);
                    reply(204, Value::Null)
                }
                other => panic!("unexpected {other}"),
            }
        }
    }

    fn kv2_store(fake: &Arc<FakeKv2>) -> VaultStore {
        VaultStore {
            description: "vault http://fake secret/ns/x (KV v2)".into(),
            layout: Layout {
                mount: "secret".into(),
                path: "ns/x".into(),
                kv_version: 2,
            },
            transport: fake.clone(),
        }
    }

    fn record(rotation_id: Uuid, n: u32) -> CredentialRecord {
        CredentialRecord::Tba(TokenRecord {
            account_id: "123456_SB1".into(),
            realm: "123456_SB1".into(),
            consumer_key: None,
            consumer_secret: None,
            token_id: format!("tid-{n}"),
            token_secret: SecretString::from(format!("ts-{n}")),
            issued_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, n).unwrap(),
            rotation_id,
        })
    }

    fn intent(rotation_id: Uuid) -> Intent {
        Intent {
            rotation_id,
            token_name: format!("x {rotation_id}"),
            started_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            owner: String::new(),
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 1, hour, 0, 0).unwrap()
    }

    async fn staged(store: &VaultStore, n: u32) -> Uuid {
        let id = Uuid::new_v4();
        store.begin_rotation(&intent(id)).await.unwrap();
        store.stage_pending(&record(id, n)).await.unwrap();
        id
    }

    #[tokio::test]
    async fn kv2_previous_is_the_prior_version_with_bookkeeping_in_custom_metadata() {
        let fake = Arc::new(FakeKv2::default());
        fake.secrets
            .lock()
            .unwrap()
            .entry("ns/x".into())
            .or_default()
            .custom = json!({"owner": "team-erp"}).as_object().cloned().unwrap();
        let store = kv2_store(&fake);
        assert!(!store.is_single_writer());

        let first = staged(&store, 1).await;
        store.promote(first, at(0)).await.unwrap();
        let second = staged(&store, 2).await;
        store.promote(second, at(1)).await.unwrap();
        store.promote(second, at(1)).await.unwrap();

        let state = store.load().await.unwrap();
        assert_eq!(state.current.unwrap().id(), "tid-2");
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.id(), "tid-1");
        assert_eq!(previous.revoke_after, at(1));
        assert!(previous.revoked_at.is_none() && state.intent.is_none() && state.pending.is_none());
        {
            let secrets = fake.secrets.lock().unwrap();
            assert!(
                !secrets.contains_key("ns/x.rotation"),
                "rotation state deleted after promote"
            );
            let custom = &secrets["ns/x"].custom;
            assert_eq!(custom["previous_version"], "1");
            assert_eq!(custom["owner"], "team-erp", "foreign custom_metadata kept");
        }
        assert_eq!(
            fake.writes
                .lock()
                .unwrap()
                .iter()
                .filter(|w| w.starts_with("ns/x cas"))
                .collect::<Vec<_>>(),
            ["ns/x cas=0", "ns/x cas=1"],
            "current written with cas = the version read"
        );

        store.mark_previous_revoked("tid-1", at(2)).await.unwrap();
        store.mark_previous_revoked("tid-1", at(3)).await.unwrap();
        assert_eq!(
            store.load().await.unwrap().previous.unwrap().revoked_at,
            Some(at(2))
        );
        let third = staged(&store, 3).await;
        store.promote(third, at(4)).await.unwrap();
        assert_eq!(
            store.load().await.unwrap().previous.unwrap().token.id(),
            "tid-2"
        );
    }

    #[tokio::test]
    async fn kv2_begin_rotation_is_create_only() {
        let fake = Arc::new(FakeKv2::default());
        let (a, b) = (kv2_store(&fake), kv2_store(&fake));
        let (ra, rb) = (Uuid::new_v4(), Uuid::new_v4());
        a.begin_rotation(&intent(ra)).await.unwrap();
        assert!(
            b.begin_rotation(&intent(rb))
                .await
                .unwrap_err()
                .is_conflict()
        );
        a.abandon_rotation(ra).await.unwrap();

        // B reads an empty sibling, but A's intent lands before B's create-only write.
        let doc = serde_json::to_value(RotationDoc {
            intent: Some(intent(ra)),
            ..RotationDoc::default()
        })
        .unwrap();
        *fake.interfere.lock().unwrap() = Some(("ns/x.rotation".into(), doc));
        let lost = b.begin_rotation(&intent(rb)).await.unwrap_err();
        assert!(lost.is_conflict(), "{lost}");
        assert!(lost.to_string().contains(&ra.to_string()), "{lost}");
        assert_eq!(a.load().await.unwrap().intent.unwrap().rotation_id, ra);
    }

    #[tokio::test]
    async fn kv2_concurrent_promoter_loses_the_cas() {
        let fake = Arc::new(FakeKv2::default());
        let store = kv2_store(&fake);
        let first = staged(&store, 1).await;
        store.promote(first, at(0)).await.unwrap();
        let second = staged(&store, 2).await;

        let intruder = serde_json::to_value(record(Uuid::new_v4(), 9)).unwrap();
        *fake.interfere.lock().unwrap() = Some(("ns/x".into(), intruder));
        let lost = store.promote(second, at(1)).await.unwrap_err();
        assert!(lost.is_conflict(), "{lost}");
        assert!(
            lost.detail.contains("write current (KV v2 cas=1)"),
            "{lost}"
        );
        assert!(
            lost.detail
                .contains("check-and-set parameter did not match"),
            "{lost}"
        );
        assert_eq!(store.load().await.unwrap().current.unwrap().id(), "tid-9");
    }

    #[tokio::test]
    async fn kv2_promotion_interrupted_after_the_current_write_is_finished_by_a_repeat() {
        let fake = Arc::new(FakeKv2::default());
        let store = kv2_store(&fake);
        let first = staged(&store, 1).await;
        store.promote(first, at(0)).await.unwrap();
        let second = staged(&store, 2).await;

        *fake.fail_once.lock().unwrap() = Some((Method::POST, "secret/metadata/ns/x".into()));
        let err = store.promote(second, at(5)).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");

        // The new token is current; the old one is already reported as previous.
        let state = store.load().await.unwrap();
        assert_eq!(state.current.unwrap().id(), "tid-2");
        let previous = state.previous.unwrap();
        assert_eq!(
            (previous.token.id(), previous.revoke_after),
            ("tid-1", at(5))
        );
        assert_eq!(state.pending.unwrap().rotation_id(), second);

        store.promote(second, at(6)).await.unwrap();
        let state = store.load().await.unwrap();
        assert!(state.intent.is_none() && state.pending.is_none());
        assert_eq!(
            state.previous.unwrap().revoke_after,
            at(5),
            "the plan's time is kept"
        );
        assert!(!fake.secrets.lock().unwrap().contains_key("ns/x.rotation"));
    }

    #[tokio::test]
    async fn kv2_import_is_create_only_and_foreign_data_is_invalid() {
        let fake = Arc::new(FakeKv2::default());
        let store = kv2_store(&fake);
        let imported = record(Uuid::new_v4(), 1);
        store.import_current(&imported).await.unwrap();
        store.import_current(&imported).await.unwrap();
        assert!(
            store
                .import_current(&record(Uuid::new_v4(), 2))
                .await
                .unwrap_err()
                .is_conflict()
        );

        fake.secrets
            .lock()
            .unwrap()
            .get_mut("ns/x")
            .unwrap()
            .versions
            .push(json!({"password": "hunter2"}));
        let err = store.load().await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    fn latch(reason: &str) -> LoginLatch {
        LoginLatch {
            at: at(7),
            login: "q3Rk+9/xZw=".into(),
            reason: reason.into(),
        }
    }

    /// Another tool's write of one `custom_metadata` key of `ns/x`.
    fn set_custom(fake: &FakeKv2, key: &str, value: &str) {
        let mut secrets = fake.secrets.lock().unwrap();
        let secret = secrets.get_mut("ns/x").expect("the key exists");
        secret.custom.insert(key.into(), json!(value));
    }

    #[tokio::test]
    async fn kv2_login_latch_is_a_custom_metadata_key_that_rotations_keep() {
        let fake = Arc::new(FakeKv2::default());
        let store = kv2_store(&fake);

        // A bootstrap whose first login was refused: no version of <path> exists yet.
        store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
        assert_eq!(
            store.load().await.unwrap().login_latch,
            Some(latch("401 A"))
        );
        {
            let secrets = fake.secrets.lock().unwrap();
            assert!(secrets["ns/x"].versions.is_empty(), "no version written");
            assert_eq!(
                secrets["ns/x"].custom["login_latch"],
                "2026-02-01T07:00:00Z 11:q3Rk+9/xZw= 401 A"
            );
        }

        // Rotations (promote rewrites custom_metadata) and an abandon keep it.
        let first = staged(&store, 1).await;
        store.promote(first, at(0)).await.unwrap();
        let second = staged(&store, 2).await;
        store.abandon_rotation(second).await.unwrap();
        let state = store.load().await.unwrap();
        assert_eq!(state.login_latch, Some(latch("401 A")));
        assert_eq!(state.current.unwrap().id(), "tid-1");

        // Setting it again changes nothing and writes nothing; clearing removes only the key.
        fake.writes.lock().unwrap().clear();
        store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
        assert!(fake.writes.lock().unwrap().is_empty());
        set_custom(&fake, "owner", "team-erp");
        store.set_login_latch(None).await.unwrap();
        store.set_login_latch(None).await.unwrap();
        assert_eq!(store.load().await.unwrap().login_latch, None);
        let custom = fake.secrets.lock().unwrap()["ns/x"].custom.clone();
        assert_eq!(custom.get("owner"), Some(&json!("team-erp")));
        assert!(!custom.contains_key("login_latch"));

        // Something else under the key is reported, and can be cleared.
        set_custom(&fake, "login_latch", "yes");
        let err = store.load().await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
        assert!(err.detail.contains("login_latch"), "{err}");
        store.set_login_latch(None).await.unwrap();
        assert_eq!(store.load().await.unwrap().login_latch, None);
    }

    #[tokio::test]
    async fn kv2_check_writable_writes_nothing() {
        let fake = Arc::new(FakeKv2::default());
        let store = kv2_store(&fake);
        store.check_writable().await.unwrap();
        assert!(fake.secrets.lock().unwrap().is_empty(), "nothing created");

        let first = staged(&store, 1).await;
        store.promote(first, at(0)).await.unwrap();
        let second = staged(&store, 2).await;
        let before = store.load().await.unwrap();
        fake.writes.lock().unwrap().clear();
        store.check_writable().await.unwrap();
        assert_eq!(
            *fake.writes.lock().unwrap(),
            [
                "ns/x cas=9223372036854775807",
                "ns/x.rotation cas=9223372036854775807",
                "ns/x metadata"
            ]
        );
        let after = store.load().await.unwrap();
        assert_eq!(after.current.unwrap().id(), before.current.unwrap().id());
        assert_eq!(after.pending.unwrap().id(), "tid-2");
        assert_eq!(after.intent.unwrap().rotation_id, second);
        {
            let secrets = fake.secrets.lock().unwrap();
            assert_eq!(secrets["ns/x"].versions.len(), 1);
            assert_eq!(secrets["ns/x.rotation"].versions.len(), 2);
        }

        *fake.fail_once.lock().unwrap() = Some((Method::POST, "secret/data/ns/x.rotation".into()));
        let err = store.check_writable().await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
        assert!(err.detail.contains("rotation state"), "{err}");
    }

    // --- the HTTP client's token handling, against a small Vault stand-in --------------------

    #[derive(Default)]
    struct AuthServer {
        logins: AtomicU32,
        renewals: AtomicU32,
    }

    async fn auth_server() -> (String, Arc<AuthServer>) {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::{get, post};
        let state = Arc::new(AuthServer::default());
        let login = |axum::extract::State(s): axum::extract::State<Arc<AuthServer>>| async move {
            let n = s.logins.fetch_add(1, Ordering::SeqCst) + 1;
            json!({"auth": {"client_token": format!("t{n}"), "lease_duration": 60, "renewable": true}})
                .to_string()
        };
        let renew = |axum::extract::State(s): axum::extract::State<Arc<AuthServer>>| async move {
            s.renewals.fetch_add(1, Ordering::SeqCst);
            json!({"auth": {"client_token": "unchanged", "lease_duration": 60, "renewable": true}})
                .to_string()
        };
        // Only the token of the second login is accepted: the first "expired".
        let read = |headers: HeaderMap| async move {
            match headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
                Some("t2") => (StatusCode::OK, json!({"data": {"ok": true}}).to_string()),
                _ => (
                    StatusCode::FORBIDDEN,
                    json!({"errors": ["permission denied"]}).to_string(),
                ),
            }
        };
        let app = axum::Router::new()
            .route("/v1/auth/approle/login", post(login))
            .route("/v1/auth/token/renew-self", post(renew))
            .route("/v1/secret/data/x", get(read))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (address, state)
    }

    async fn approle_http(address: &str) -> VaultHttp {
        let mut http = VaultHttp {
            client: reqwest::Client::new(),
            address: address.to_string(),
            namespace: None,
            login: Some(Login::AppRole {
                mount: "approle".into(),
                role_id: SecretString::from("rid"),
                secret_id: SecretString::from("sid"),
            }),
            session: tokio::sync::Mutex::new(Session {
                token: SecretString::from(""),
                lease: None,
            }),
        };
        let session = http.log_in().await.map_err(|f| f.detail).unwrap();
        http.session = tokio::sync::Mutex::new(session);
        http
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_by_one_new_login_and_the_call_retried() {
        let (address, server) = auth_server().await;
        let http = approle_http(&address).await;
        let reply = http
            .send(Method::GET, "secret/data/x", None)
            .await
            .map_err(|f| f.detail)
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(server.logins.load(Ordering::SeqCst), 2);

        // Still refused after the new login (t3 is not accepted either): no third login.
        let http = approle_http(&address).await;
        let reply = http
            .send(Method::GET, "secret/data/x", None)
            .await
            .map_err(|f| f.detail)
            .unwrap();
        assert_eq!(reply.status, 403);
        assert_eq!(server.logins.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_renewed_before_the_call() {
        let (address, server) = auth_server().await;
        let http = approle_http(&address).await;
        {
            let mut session = http.session.lock().await;
            let lease = session.lease.as_mut().unwrap();
            lease.obtained = Instant::now() - Duration::from_secs(50);
        }
        http.fresh_token().await.map_err(|f| f.detail).unwrap();
        assert_eq!(server.renewals.load(Ordering::SeqCst), 1);
        assert_eq!(server.logins.load(Ordering::SeqCst), 1);
        http.fresh_token().await.map_err(|f| f.detail).unwrap();
        assert_eq!(
            server.renewals.load(Ordering::SeqCst),
            1,
            "fresh again after renewal"
        );
    }
}
