//! The KV v2 layout: the current token as the latest version of `<path>` (written with
//! `cas`), the previous token as the version before it, and the bookkeeping in the path's
//! `custom_metadata`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::store::{CredentialRecord, LoginLatch, PreviousToken, StoreError, StoreErrorKind};

use crate::store::vault::{
    META_LOGIN_LATCH, META_PREVIOUS_REVOKE_AFTER, META_PREVIOUS_REVOKED_AT, META_PREVIOUS_VERSION,
    MetadataWrite, RotationDoc, Snapshot, VaultStore, to_json_bytes,
};

impl VaultStore {
    pub(super) async fn snapshot_v2(&self, op: &'static str) -> Result<Snapshot, StoreError> {
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

    pub(super) async fn read_version(
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

    pub(super) async fn previous_from_metadata(
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

    pub(super) async fn previous_from_version(
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

    /// KV v2: records the previous token's version and times in `custom_metadata` of `<path>`,
    /// keeping keys that other tools put there.
    pub(super) async fn write_previous_metadata(
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
    pub(super) async fn write_custom_metadata(
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
    pub(super) fn latch_from_metadata(
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
}
