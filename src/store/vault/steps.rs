//! The [`SecretStore`] steps on Vault: intent, stage, promote, abandon, mark revoked, import,
//! the login latch and the writability check, each as a sequence of KV writes that is safe to
//! crash after.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::store::{
    CredentialRecord, Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreErrorKind,
    StoreState,
};

use crate::store::vault::META_LOGIN_LATCH;
use crate::store::vault::META_PREVIOUS_VERSION;
use crate::store::vault::Promotion;
use crate::store::vault::RotationDoc;
use crate::store::vault::VaultStore;

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
