//! The `SecretStore` steps on Secrets Manager: load, intent, stage, promote, revoke marks,
//! the login latch, each with the check-and-set its version labels give.

use aws_sdk_secretsmanager::types::Tag;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AwsStore, CredentialRecord, Intent, LoginLatch, SecretStore, StoreError, StoreErrorKind,
    StoreState,
};
use crate::secret::{ExposeSecret, SecretString, short_id};
use crate::store::aws::snapshot::VersionValues;
use crate::store::aws::{
    AWSPENDING, IntentValue, LOCK_LABEL, LOGIN_LATCH_TAG, NOT_A_TOKEN, REVOKED_LABEL_PREFIX,
    holder_words, intent_label, intent_version_id, revoked_label, token_version_id,
};

#[async_trait::async_trait]
impl SecretStore for AwsStore {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn load(&self) -> Result<StoreState, StoreError> {
        let snap = self.snapshot().await?;
        self.load_state(&snap).await
    }

    async fn begin_rotation(&self, intent: &Intent) -> Result<(), StoreError> {
        const OP: &str = "begin_rotation";
        let rotation_id = intent.rotation_id;
        let mut snap = self.existing_snapshot(OP).await?;
        if let Some(holder) = snap.lock_holder() {
            if holder.rotation_id == rotation_id {
                if snap.rotation_in_progress().is_some() {
                    return Ok(());
                }
                return Err(self.conflict(
                    OP,
                    format!("rotation {rotation_id} has already been promoted"),
                ));
            }
            if snap.rotation_in_progress().is_some() {
                return Err(self.conflict(
                    OP,
                    format!(
                        "another rotation is in progress ({})",
                        holder_words(Some(&holder))
                    ),
                ));
            }
            // The holder's token is current: a promotion that stopped before its clean-up.
            self.finish_rotation(holder.rotation_id, None).await?;
            snap = self.snapshot().await?;
        }
        if let Some(pending) = snap.pending_version() {
            return Err(self.conflict(
                OP,
                format!(
                    "version {pending} carries AWSPENDING but no rotation holds the lock; finish or remove it first"
                ),
            ));
        }
        let token_version = token_version_id(rotation_id);
        if snap.labels.contains_key(&token_version) {
            return Err(self.conflict(
                OP,
                format!("rotation {rotation_id} already staged a token (version {token_version}); a rotation id is used once"),
            ));
        }
        let lock_at = self.ensure_lock(&snap).await?;

        let placeholder = intent_version_id(rotation_id);
        let label = intent_label(rotation_id);
        let value = serde_json::to_string(&IntentValue {
            netsuite_token_rotator_intent: intent.clone(),
        })
        .expect("an intent always serialises");
        let labels = match self
            .put_version(
                &placeholder,
                &SecretString::from(value),
                &[&label],
                "recording the rotation intent",
            )
            .await
        {
            Ok(labels) => labels,
            Err(e) if e.is("ResourceExistsException") => {
                return Err(self.conflict(
                    OP,
                    format!(
                        "a different intent is already recorded for rotation {rotation_id} ({})",
                        e.error.detail
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if !labels.contains(&label) {
            self.move_label("UpdateSecretVersionStage", &label, None, Some(&placeholder))
                .await?;
        }
        if lock_at == placeholder {
            return Ok(());
        }
        match self
            .move_label(
                "begin_rotation: UpdateSecretVersionStage",
                LOCK_LABEL,
                Some(&lock_at),
                Some(&placeholder),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is("InvalidParameterException") => {
                let now = self.snapshot().await?;
                if now.lock_version() == Some(placeholder.as_str()) {
                    return Ok(()); // our own earlier attempt moved it; its answer was lost
                }
                // Best effort: a stray intent label is also swept by the next promotion.
                let _ = self.remove_label(&label, &placeholder).await;
                Err(self.conflict(
                    OP,
                    format!(
                        "another rotation took the rotation lock first ({}; {})",
                        holder_words(now.lock_holder().as_ref()),
                        e.error.detail
                    ),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn stage_pending(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        const OP: &str = "stage_pending";
        let rotation_id = token.rotation_id();
        let snap = self.snapshot().await?;
        match snap.lock_holder() {
            Some(h) if h.rotation_id == rotation_id => {}
            other => {
                return Err(self.conflict(
                    OP,
                    format!(
                        "rotation {rotation_id} does not hold the rotation lock ({})",
                        holder_words(other.as_ref())
                    ),
                ));
            }
        }
        let token_version = token_version_id(rotation_id);
        let value = SecretString::from(
            serde_json::to_string(token).expect("a token record always serialises"),
        );
        // Secrets Manager itself refuses another value under an existing version id; checking
        // first gives the same answer with a clearer message (and on stand-ins that overwrite).
        if snap.labels.contains_key(&token_version) {
            let staged = self.value(&token_version).await?;
            if staged.expose_secret() != value.expose_secret() {
                return Err(self.conflict(
                    OP,
                    format!(
                        "a different token is already staged for rotation {rotation_id} (version {token_version})"
                    ),
                ));
            }
        }
        let labels = match self
            .put_version(
                &token_version,
                &value,
                &[AWSPENDING],
                "staging the new token as AWSPENDING",
            )
            .await
        {
            Ok(labels) => labels,
            Err(e) if e.is("ResourceExistsException") => {
                return Err(self.conflict(
                    OP,
                    format!(
                        "a different token is already staged for rotation {rotation_id} ({})",
                        e.error.detail
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let current = snap.current() == Some(token_version.as_str());
        if !labels.iter().any(|l| l == AWSPENDING) && !current {
            // A repeated put changes no labels; put AWSPENDING back where it belongs.
            let from = snap
                .version_with(AWSPENDING)
                .filter(|v| *v != token_version);
            self.move_label(
                "UpdateSecretVersionStage",
                AWSPENDING,
                from,
                Some(&token_version),
            )
            .await?;
        }
        Ok(())
    }

    async fn promote(
        &self,
        rotation_id: Uuid,
        revoke_previous_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let snap = self.snapshot().await?;
        let current = snap.current().map(str::to_string);
        self.promote_expecting_current(rotation_id, current.as_deref(), revoke_previous_after)
            .await
    }

    async fn abandon_rotation(&self, rotation_id: Uuid) -> Result<(), StoreError> {
        let snap = self.snapshot().await?;
        if snap.lock_holder().map(|h| h.rotation_id) != Some(rotation_id) {
            return Ok(());
        }
        // Pending goes before the lock, so a crash in between still shows whose it was.
        let token_version = token_version_id(rotation_id);
        if snap.pending_version() == Some(token_version.as_str()) {
            self.remove_label(AWSPENDING, &token_version).await?;
        }
        self.finish_rotation(rotation_id, None).await
    }

    async fn mark_previous_revoked(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let snap = self.snapshot().await?;
        let Some(version) = snap.previous_token_version() else {
            return Ok(());
        };
        if snap
            .labels_of(version)
            .iter()
            .any(|l| l.starts_with(REVOKED_LABEL_PREFIX))
        {
            return Ok(());
        }
        match self.previous(&snap).await? {
            Some(previous) if previous.token.id() == token_id => {}
            _ => return Ok(()),
        }
        self.move_label(
            "mark_previous_revoked: UpdateSecretVersionStage",
            &revoked_label(at, version),
            None,
            Some(version),
        )
        .await?;
        Ok(())
    }

    async fn import_current(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        const OP: &str = "import_current";
        let snap = self.existing_snapshot(OP).await?;
        if let Some(version) = snap.current_token_version() {
            let current = self.token(version, NOT_A_TOKEN).await?;
            if current.rotation_id() == token.rotation_id() && current.id() == token.id() {
                return self.finish_rotation(token.rotation_id(), None).await;
            }
            return Err(self.conflict(
                OP,
                format!(
                    "the secret already holds a current token ({}); import only fills an empty store",
                    short_id(current.id())
                ),
            ));
        }
        // An import is a rotation whose token is already issued and verified by hand: taking
        // the same lock makes it check-and-set against rotations and other imports.
        let intent = Intent {
            rotation_id: token.rotation_id(),
            token_name: format!("imported token {}", short_id(token.id())),
            started_at: token.issued_at(),
            owner: String::new(),
        };
        self.begin_rotation(&intent).await?;
        self.stage_pending(token).await?;
        self.promote(token.rotation_id(), Utc::now()).await
    }

    /// `TagResource` / `UntagResource` of [`LOGIN_LATCH_TAG`] alone: other tags, the versions
    /// and their labels (the rotation's check-and-set) are not touched, and nothing is written
    /// when the tag already says the same. The engine writes the latch after `begin_rotation`,
    /// which creates a missing secret; a latch set on a secret that does not exist yet creates
    /// it the same way (without a value; or fails as `begin_rotation` would, when the config
    /// does not let this store create it). Clearing on a missing secret is a no-op.
    async fn set_login_latch(&self, latch: Option<&LoginLatch>) -> Result<(), StoreError> {
        const OP: &str = "set_login_latch";
        let Some(latch) = latch else {
            let snap = self.snapshot().await?;
            if snap.latch_tag.is_none() {
                return Ok(());
            }
            return self
                .client
                .untag_resource()
                .secret_id(&self.config.secret_id)
                .tag_keys(LOGIN_LATCH_TAG)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let mut e = self.call_error(
                        "UntagResource",
                        &format!("removing tag {LOGIN_LATCH_TAG}"),
                        e,
                    );
                    e.error.operation = "set_login_latch: UntagResource";
                    e.error
                });
        };
        let value = latch.to_compact().map_err(|reason| {
            StoreError::new(&self.description, OP, StoreErrorKind::Failed, reason)
        })?;
        let snap = self.existing_snapshot(OP).await?;
        if snap.latch_tag.as_deref() == Some(value.as_str()) {
            return Ok(());
        }
        self.client
            .tag_resource()
            .secret_id(&self.config.secret_id)
            .tags(Tag::builder().key(LOGIN_LATCH_TAG).value(value).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let mut e =
                    self.call_error("TagResource", &format!("setting tag {LOGIN_LATCH_TAG}"), e);
                e.error.operation = "set_login_latch: TagResource";
                e.error
            })
    }

    /// Proves what can be proven without a change readers or the rotation could see:
    /// - `DescribeSecret`: the read every step starts with (a refusal is `access denied`).
    /// - `UpdateSecretVersionStage`, the right behind every check-and-set: the rotation lock
    ///   [`LOCK_LABEL`] is moved onto the version it already sits on (`RemoveFromVersionId` =
    ///   `MoveToVersionId`), which changes nothing. If a rotation moves the lock in between,
    ///   Secrets Manager refuses the move (`InvalidParameterException`), after IAM allowed it:
    ///   proven all the same, and nothing moved. Not `AWSCURRENT` onto its own version: moving
    ///   `AWSCURRENT` makes Secrets Manager move `AWSPREVIOUS` too (moto_server then takes
    ///   `AWSPREVIOUS` off the previous token's version), which would lose the previous token.
    ///
    /// Not proven: `PutSecretValue` (only by creating a version; `begin_rotation` puts the
    /// intent version before a token is issued, so a refusal still comes before one),
    /// `CreateSecret` (only by creating the secret; a secret this store may not create is
    /// reported here, as `begin_rotation` would), `TagResource`/`UntagResource` (a no-op tag
    /// write would race with a latch being set or cleared), and `UpdateSecretVersionStage` on a
    /// secret this store has not rotated yet (no label of its own to move; the first
    /// `begin_rotation` moves one before a token is issued).
    async fn check_writable(&self) -> Result<(), StoreError> {
        const OP: &str = "check_writable";
        let snap = self.snapshot().await.map_err(|mut e| {
            e.operation = "check_writable: DescribeSecret";
            e
        })?;
        if !snap.exists {
            return match self.cannot_create(OP) {
                Some(refusal) => Err(refusal),
                None => Ok(()),
            };
        }
        let Some(lock) = snap.lock_version() else {
            return Ok(());
        };
        match self
            .move_label(
                "check_writable: UpdateSecretVersionStage",
                LOCK_LABEL,
                Some(lock),
                Some(lock),
            )
            .await
        {
            Err(e) if !e.is("InvalidParameterException") => Err(e.into()),
            _ => Ok(()),
        }
    }
}
