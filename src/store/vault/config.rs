//! `[integrations.store]` with `kind = "vault"`: the Vault store's configuration and its
//! validation.

use std::path::PathBuf;

use crate::secret::SecretRef;

/// `[integrations.store]` with `kind = "vault"`.
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultStoreConfig {
    /// Vault's base address, e.g. `https://vault.internal:8200`.
    #[schemars(pattern(VAULT_ADDRESS))]
    pub address: String,
    /// Where the KV engine is mounted.
    #[serde(default = "default_mount")]
    #[schemars(pattern(VAULT_PATH))]
    pub mount: String,
    /// The secret readers read, inside the mount, e.g. `netsuite/erp-sync`.
    #[schemars(pattern(VAULT_PATH))]
    pub path: String,
    /// 2 (versioned, check-and-set) or 1 (one daemon per store only).
    #[serde(default = "default_kv_version")]
    #[schemars(extend("enum" = [1, 2]))]
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
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// A token used as it is (not renewed); looked up once at start to fail fast.
    Token { token: SecretRef },
    /// AppRole login at `auth/<mount>/login`.
    Approle {
        role_id: SecretRef,
        secret_id: SecretRef,
        #[serde(default = "default_approle_mount")]
        #[schemars(pattern(VAULT_PATH))]
        mount: String,
    },
    /// Kubernetes service-account login at `auth/<mount>/login`; the JWT is re-read at each
    /// login because projected tokens rotate.
    Kubernetes {
        role: String,
        #[serde(default = "default_jwt_path")]
        jwt_path: PathBuf,
        #[serde(default = "default_kubernetes_mount")]
        #[schemars(pattern(VAULT_PATH))]
        mount: String,
    },
}

/// What [`VaultStoreConfig::validate`] accepts as `address`, as a JSON-schema pattern: http(s)
/// and something besides slashes after `://`.
pub const VAULT_ADDRESS: &str = "^https?://.*[^/]";

/// What [`check_vault_path`] accepts, as a JSON-schema pattern (RE2 and ECMA-262 alike, no
/// look-ahead): segments of letters, digits, '.', '_' or '-' with at least one character that
/// is not a dot (or three dots and more), separated by single '/'.
pub const VAULT_PATH: &str = r"^([A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.\.+)(/([A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.\.+))*$";

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
