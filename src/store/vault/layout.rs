//! Where the store keeps things in Vault (the reader's path, the `.rotation` sibling, the
//! `custom_metadata` keys) and the documents written there.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::store::{CredentialRecord, Intent, LoginLatch, PreviousToken};

/// Where the store's secrets live.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    pub(super) mount: String,
    pub(super) path: String,
    pub(super) kv_version: u8,
}

impl Layout {
    pub(super) fn current(&self) -> String {
        match self.kv_version {
            1 => format!("{}/{}", self.mount, self.path),
            _ => format!("{}/data/{}", self.mount, self.path),
        }
    }
    pub(super) fn current_version(&self, version: u64) -> String {
        format!("{}?version={version}", self.current())
    }
    pub(super) fn current_metadata(&self) -> String {
        format!("{}/metadata/{}", self.mount, self.path)
    }
    pub(super) fn rotation(&self) -> String {
        match self.kv_version {
            1 => format!("{}/{}.rotation", self.mount, self.path),
            _ => format!("{}/data/{}.rotation", self.mount, self.path),
        }
    }
    pub(super) fn rotation_metadata(&self) -> String {
        format!("{}/metadata/{}.rotation", self.mount, self.path)
    }
    /// KV v1: the sibling `check_writable` writes and deletes again.
    pub(super) fn write_check(&self) -> String {
        format!("{}/{}.write-check", self.mount, self.path)
    }
}

/// The sibling `<path>.rotation`: the rotation in progress, never read by readers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RotationDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) intent: Option<Intent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pending: Option<CredentialRecord>,
    /// Written before the current token is replaced, so that a crash in the middle of a
    /// promotion can be finished from what the store holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) promoting: Option<Promotion>,
    /// KV v1 only (v2 keeps the previous token as a version of `<path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous: Option<PreviousToken>,
    /// KV v1 only (v2 keeps it in `custom_metadata`); absent in documents written before the
    /// latch existed, and while it is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) login_latch: Option<LoginLatch>,
}

impl RotationDoc {
    pub(super) fn is_empty(&self) -> bool {
        self.intent.is_none()
            && self.pending.is_none()
            && self.promoting.is_none()
            && self.previous.is_none()
            && self.login_latch.is_none()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Promotion {
    pub(super) rotation_id: Uuid,
    pub(super) revoke_after: DateTime<Utc>,
    /// KV v2: the version of `<path>` that becomes previous (none when there was no current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous_version: Option<u64>,
    /// KV v1: the token that becomes previous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous_token: Option<CredentialRecord>,
}

/// `custom_metadata` keys on `<path>` (KV v2).
pub(super) const META_PREVIOUS_VERSION: &str = "previous_version";
pub(super) const META_PREVIOUS_REVOKE_AFTER: &str = "previous_revoke_after";
pub(super) const META_PREVIOUS_REVOKED_AT: &str = "previous_revoked_at";
pub(super) const META_LOGIN_LATCH: &str = "login_latch";

/// The body of `check_writable`'s refused KV v2 writes: no `data`, which Vault refuses before it
/// looks at anything else ("no data provided"), and a `cas` no key will ever reach, which it
/// would refuse next. Vault checks the token's policy before the engine sees the request, so the
/// refusal proves the right to write the path while nothing can be written.
pub(super) const REFUSED_WRITE_PROBE: &[u8] = br#"{"options":{"cas":9223372036854775807}}"#;

/// Everything read from Vault for one operation, with the versions to check-and-set against.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub(super) current: Option<CredentialRecord>,
    /// KV v2: `current_version` of `<path>` (0 when it does not exist): the next write's `cas`.
    pub(super) current_cas: u64,
    /// KV v2: `custom_metadata` of `<path>`.
    pub(super) custom: Map<String, Value>,
    pub(super) rotation: RotationDoc,
    /// KV v2: version of `<path>.rotation` (0 when it does not exist).
    pub(super) rotation_cas: u64,
    pub(super) previous: Option<PreviousToken>,
}

impl Snapshot {
    /// A promotion whose new token is already current but whose bookkeeping is unfinished.
    pub(super) fn committed_promotion(&self) -> Option<&Promotion> {
        let promotion = self.rotation.promoting.as_ref()?;
        let current = self.current.as_ref()?;
        (current.rotation_id() == promotion.rotation_id).then_some(promotion)
    }

    pub(super) fn rotation_in_progress(&self) -> Option<Uuid> {
        self.rotation.intent.as_ref().map(|i| i.rotation_id).or(self
            .rotation
            .pending
            .as_ref()
            .map(|p| p.rotation_id()))
    }
}

#[derive(Serialize)]
pub(super) struct CasOptions {
    pub(super) cas: u64,
}

#[derive(Serialize)]
pub(super) struct KvV2Write<'a, T> {
    pub(super) options: CasOptions,
    pub(super) data: &'a T,
}

#[derive(Serialize)]
pub(super) struct MetadataWrite<'a> {
    pub(super) custom_metadata: &'a Map<String, Value>,
}
