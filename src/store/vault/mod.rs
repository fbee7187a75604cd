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
//!
//! Files: `config.rs` (the `[integrations.store]` keys), `http.rs` (one call, Vault's errors as
//! store errors), `client.rs` (login, token renewal, the HTTP transport), `mount.rs` (the mount's
//! KV version), `layout.rs` (paths, documents, `custom_metadata` keys), `kv1.rs` and `kv2.rs`
//! (reading each layout; KV v2's bookkeeping writes), `steps.rs` (the [`SecretStore`] steps),
//! this file (the store, `connect`, the calls every layout shares), `canned.rs` (answers from a
//! list, for fuzzing), `tests.rs`.

mod canned;
mod client;
mod config;
mod http;
mod kv1;
mod kv2;
mod layout;
mod mount;
mod steps;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use super::{CredentialRecord, PreviousToken, StoreError, StoreErrorKind};
use crate::secret::{SecretRef, SecretString};

pub(in crate::store) use canned::canned;
use client::*;
pub use config::*;
use http::*;
use layout::*;
use mount::*;

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
