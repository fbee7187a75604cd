//! AWS Secrets Manager store: one secret per integration, its versions and staging labels.
//!
//! Readers (`GetSecretValue`, External Secrets Operator, the CSI driver) read `AWSCURRENT`, which
//! only ever moves from one complete [`CredentialRecord`] to another in a single
//! `UpdateSecretVersionStage`, so they never see a half-written token. The rotation bookkeeping
//! lives in versions and labels readers do not read (`docs/stores-aws.md` has the full map):
//!
//! - A token's version id (`ClientRequestToken`) is the rotation id that issued it; `AWSPENDING`
//!   marks the staged token, `AWSCURRENT` the promoted one, `AWSPREVIOUS` the one it replaced.
//! - The rotation lock is the label `NSTR_LOCK`. It always sits on exactly one version and is
//!   only ever *moved* with `RemoveFromVersionId` = where we saw it, which Secrets Manager refuses
//!   once it has moved: that refusal is the check-and-set between daemons. A rotation holds the
//!   lock while it sits on the rotation's intent placeholder (version `nstr-intent-<id>`, value the
//!   [`Intent`] JSON) and that version still carries `NSTR_INTENT_<id>`; removing that label
//!   releases the lock. The lock is created once per secret by an idempotent `PutSecretValue`
//!   under a fixed `ClientRequestToken` (`nstr-lock-…`), so racing creators converge on one lock.
//! - The previous token's revoke time and revocation are labels on its own version
//!   (`NSTR_REVOKE_AFTER_<unix>_<version>`, `NSTR_REVOKED_<unix>_<version>`): they travel with
//!   the version they describe, need no permission beyond the label moves rotation needs anyway,
//!   and never touch secret tags, which tag policies and ABAC conditions often govern.
//! - The login latch ([`LoginLatch`]) is about the secret, not a version, and must be there
//!   before the secret has one: it is the one tag this store writes,
//!   [`LOGIN_LATCH_TAG`], in [`LoginLatch::to_compact`]'s form (`TagResource` /
//!   `UntagResource`, each a single call on that key alone; read from `DescribeSecret`). Readers
//!   (`GetSecretValue`) never see tags.
//!
//! Versions this store creates for itself (lock, intent) have ids starting `nstr-`, and are never
//! read as tokens. If a secret has no value yet, the lock version is its first version, so AWS
//! makes it `AWSCURRENT` until the first promotion; readers see
//! `{"netsuite_token_rotator": …}` then, never an intent and never a partial token.
//!
//! The code relies on Secrets Manager's documented behaviour: `PutSecretValue` with an existing
//! `ClientRequestToken` succeeds without change for the same value and is refused
//! (`ResourceExistsException`) for another, and `UpdateSecretVersionStage` fails
//! (`InvalidParameterException`) when `RemoveFromVersionId` does not hold the label.

/// The target of this store's log lines, the same from every file of this module.
const LOG_TARGET: &str = "netsuite_token_rotator::store::aws";

mod config;
mod errors;
mod labels;
mod snapshot;
mod steps;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    CredentialRecord, Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreErrorKind,
    StoreState,
};
use crate::secret::{ExposeSecret, SecretString, short_id};

pub use config::AwsStoreConfig;
use config::*;
use errors::*;
pub use labels::*;
pub(crate) use snapshot::load_canned;
use snapshot::*;

/// An AWS Secrets Manager secret holding one integration's token.
pub struct AwsStore {
    client: Client,
    config: AwsStoreConfig,
    description: String,
}

impl AwsStore {
    /// Builds an SDK client from the default credential chain (environment, shared profile, web
    /// identity / IRSA, container and instance metadata) with the config's region and endpoint
    /// overrides, and wraps it.
    ///
    /// An SDK client holds connection pools and credential caches: build one per (region,
    /// endpoint) and share it between integrations with [`AwsStore::with_client`], rather than
    /// calling `connect` per integration.
    pub async fn connect(config: &AwsStoreConfig) -> Result<AwsStore, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(3100))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk_config = loader.load().await;
        if sdk_config.region().is_none() {
            return Err(StoreError::new(
                describe(config),
                "connect",
                StoreErrorKind::Failed,
                "no AWS region: set `region` in the store config, or AWS_REGION / a profile region",
            ));
        }
        Ok(AwsStore::with_client(Client::new(&sdk_config), config))
    }

    /// Wraps an existing SDK client (shared between stores in one region); the config's region
    /// and endpoint are then the client's business and only name the store in messages.
    pub fn with_client(client: Client, config: &AwsStoreConfig) -> AwsStore {
        AwsStore {
            client,
            description: describe(config),
            config: config.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn secret_id(&self) -> &str {
        &self.config.secret_id
    }

    /// Every labelled version and its staging labels, for `status` and tests. An absent secret
    /// has none.
    pub async fn staging_labels(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        Ok(self.snapshot().await?.labels)
    }

    /// [`SecretStore::promote`] with the version the caller believes is `AWSCURRENT` (`None`:
    /// the secret has no current version). `Conflict` if `AWSCURRENT` is elsewhere by the time
    /// it is moved, so a promoter working from a stale read loses.
    pub async fn promote_expecting_current(
        &self,
        rotation_id: Uuid,
        expected_current: Option<&str>,
        revoke_previous_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "promote";
        let snap = self.snapshot().await?;
        let token_version = token_version_id(rotation_id);
        if snap.current() == Some(token_version.as_str()) {
            return self
                .finish_rotation(rotation_id, Some(revoke_previous_after))
                .await;
        }
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
        if snap.version_with(AWSPENDING) != Some(token_version.as_str()) {
            return Err(self.conflict(
                OP,
                format!("no token is staged (AWSPENDING) for rotation {rotation_id}"),
            ));
        }
        if let Some(previous) = self.previous(&snap).await?
            && previous.revoked_at.is_none()
        {
            return Err(self.conflict(
                OP,
                format!(
                    "the previous token {} is not revoked yet; promoting now would drop it unrevoked",
                    short_id(previous.token.id())
                ),
            ));
        }

        if snap.current() != expected_current {
            return Err(self.conflict(
                OP,
                format!(
                    "AWSCURRENT is on version {}, not on the expected version {}",
                    snap.current().unwrap_or("(none)"),
                    expected_current.unwrap_or("(none)")
                ),
            ));
        }
        // The revoke time goes on the current version before it becomes previous, so no
        // moment exists where a previous token has no grace window on record.
        if let Some(current) = expected_current
            && self.holds_token(current).await?
        {
            self.set_bookkeeping(
                &snap,
                current,
                &[revoke_after_label(revoke_previous_after, current)],
            )
            .await?;
        }
        let moved = self
            .move_label(
                "promote: UpdateSecretVersionStage",
                AWSCURRENT,
                expected_current,
                Some(&token_version),
            )
            .await;
        if let Err(e) = moved {
            if !e.is("InvalidParameterException") {
                return Err(e.into());
            }
            let now = self.snapshot().await?;
            if now.current() != Some(token_version.as_str()) {
                return Err(self.conflict(
                    OP,
                    format!(
                        "AWSCURRENT is no longer on version {} (now on {}): another writer promoted first ({})",
                        expected_current.unwrap_or("(none)"),
                        now.current().unwrap_or("(none)"),
                        e.error.detail
                    ),
                ));
            }
        }
        self.finish_rotation(rotation_id, Some(revoke_previous_after))
            .await
    }

    // ----- reading -----

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(&self.config.secret_id)
            .send()
            .await;
        let out = match described {
            Ok(out) => out,
            Err(e) => {
                let e = self.call_error("DescribeSecret", "reading the secret's versions", e);
                if e.is("ResourceNotFoundException") {
                    return Ok(Snapshot::default());
                }
                return Err(e.into());
            }
        };
        if out.deleted_date().is_some() {
            return Err(StoreError::new(
                &self.description,
                "DescribeSecret",
                StoreErrorKind::Failed,
                "the secret is scheduled for deletion; restore it (RestoreSecret) or point the store at another secret",
            ));
        }
        let mut snap = Snapshot::of_stages(out.version_ids_to_stages());
        snap.latch_tag = out
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(LOGIN_LATCH_TAG))
            .map(|tag| tag.value().unwrap_or_default().to_string());
        Ok(snap)
    }

    async fn holds_token(&self, version_id: &str) -> Result<bool, StoreError> {
        if is_own_version(version_id) {
            return Ok(false);
        }
        let value = self.value(version_id).await?;
        Ok(serde_json::from_str::<CredentialRecord>(value.expose_secret()).is_ok())
    }

    // ----- writing -----

    /// The snapshot of a secret that exists, creating it (without a value) if allowed.
    async fn existing_snapshot(&self, op: &'static str) -> Result<Snapshot, StoreError> {
        let snap = self.snapshot().await?;
        if snap.exists {
            return Ok(snap);
        }
        if let Some(refusal) = self.cannot_create(op) {
            return Err(refusal);
        }
        let tags = self
            .config
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Vec<_>>();
        let created = self
            .client
            .create_secret()
            .name(&self.config.secret_id)
            .set_kms_key_id(self.config.kms_key_id.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .description("NetSuite TBA token kept by netsuite-token-rotator")
            .send()
            .await;
        if let Err(e) = created {
            let e = self.call_error("CreateSecret", "creating the missing secret", e);
            // Another daemon created it first: that is what we wanted.
            if !e.is("ResourceExistsException") {
                return Err(e.into());
            }
        }
        self.snapshot().await
    }

    /// Why a missing secret cannot be created by this store, if it cannot.
    fn cannot_create(&self, op: &'static str) -> Option<StoreError> {
        let detail = if !self.config.create_if_missing {
            "the secret does not exist and create_if_missing is false; create it (a value is not needed) or set create_if_missing = true"
        } else if self.config.secret_id.starts_with("arn:") {
            "the secret does not exist, and a secret given by ARN cannot be created: give its name instead"
        } else {
            return None;
        };
        Some(StoreError::new(
            &self.description,
            op,
            StoreErrorKind::Failed,
            detail,
        ))
    }

    /// `PutSecretValue` under `version_id` with `labels`; returns the version's labels after.
    /// Repeating it with the same value changes nothing (labels included).
    async fn put_version(
        &self,
        version_id: &str,
        value: &SecretString,
        labels: &[&str],
        purpose: &str,
    ) -> Result<Vec<String>, CallError> {
        let mut put = self
            .client
            .put_secret_value()
            .secret_id(&self.config.secret_id)
            .client_request_token(version_id)
            .secret_string(value.expose_secret());
        for label in labels {
            put = put.version_stages(*label);
        }
        // The input holds the secret value: it is never formatted, only sent.
        let out = put
            .send()
            .await
            .map_err(|e| self.call_error("PutSecretValue", purpose, e))?;
        Ok(out.version_stages().to_vec())
    }

    /// Moves `label` from `from` to `to` (either may be absent: attach or remove).
    async fn move_label(
        &self,
        operation: &'static str,
        label: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<(), CallError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.config.secret_id)
            .version_stage(label)
            .set_remove_from_version_id(from.map(str::to_string))
            .set_move_to_version_id(to.map(str::to_string))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let purpose = format!(
                    "moving label {label} from version {} to version {}",
                    from.unwrap_or("(none)"),
                    to.unwrap_or("(none)")
                );
                let mut e = self.call_error("UpdateSecretVersionStage", &purpose, e);
                e.error.operation = operation;
                e
            })
    }

    /// Removes `label` from `version_id`; a label already gone is fine (another cleaner won).
    async fn remove_label(&self, label: &str, version_id: &str) -> Result<(), StoreError> {
        match self
            .move_label("UpdateSecretVersionStage", label, Some(version_id), None)
            .await
        {
            Err(e) if !e.is("InvalidParameterException") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Makes `version_id`'s bookkeeping labels exactly `wanted`.
    async fn set_bookkeeping(
        &self,
        snap: &Snapshot,
        version_id: &str,
        wanted: &[String],
    ) -> Result<(), StoreError> {
        let have = snap.labels_of(version_id);
        for label in have.iter().filter(|l| is_bookkeeping_label(l)) {
            if !wanted.contains(label) {
                self.remove_label(label, version_id).await?;
            }
        }
        for label in wanted {
            if !have.contains(label) {
                self.move_label("UpdateSecretVersionStage", label, None, Some(version_id))
                    .await?;
            }
        }
        Ok(())
    }

    /// Creates the lock on its fixed version if the secret has none; returns where it is.
    async fn ensure_lock(&self, snap: &Snapshot) -> Result<String, StoreError> {
        if let Some(version) = snap.lock_version() {
            return Ok(version.to_string());
        }
        let labels = self
            .put_version(
                LOCK_VERSION_ID,
                &SecretString::from(LOCK_VERSION_VALUE),
                &[LOCK_LABEL],
                "creating the rotation lock",
            )
            .await?;
        if labels.iter().any(|l| l == LOCK_LABEL) {
            return Ok(LOCK_VERSION_ID.to_string());
        }
        // The lock version exists without the lock: either another rotation moved the lock to
        // its intent since our snapshot (two daemons beginning at once), or it was removed by
        // hand. Look again rather than attach it blindly: attaching without RemoveFromVersionId
        // is refused by AWS when the label sits elsewhere, but moto_server attaches it anyway,
        // which would let both rotations go on.
        let now = self.snapshot().await?;
        match now.lock_version() {
            Some(version) if version == LOCK_VERSION_ID => Ok(version.to_string()),
            Some(_) => Err(self.conflict(
                "begin_rotation",
                format!(
                    "another rotation took the rotation lock first ({})",
                    holder_words(now.lock_holder().as_ref())
                ),
            )),
            None => {
                self.move_label(
                    "UpdateSecretVersionStage",
                    LOCK_LABEL,
                    None,
                    Some(LOCK_VERSION_ID),
                )
                .await?;
                Ok(LOCK_VERSION_ID.to_string())
            }
        }
    }

    /// Completes rotation `rotation_id` once its token is `AWSCURRENT` (or drops it, for
    /// abandon): clears stray intent labels, bookkeeping of versions that are no longer
    /// previous, `AWSPREVIOUS` on this store's own versions and `AWSPENDING`, then releases the
    /// lock. Every step is idempotent, so a crash anywhere leaves something this finishes.
    async fn finish_rotation(
        &self,
        rotation_id: Uuid,
        revoke_previous_after: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let snap = self.snapshot().await?;
        let holder = snap.lock_holder().filter(|h| h.rotation_id == rotation_id);
        let previous = snap.previous_token_version();
        for (version, labels) in &snap.labels {
            // Only the lock's own version may carry a live intent label; elsewhere it is left
            // by a rotation that lost the race for the lock.
            let on_lock = snap.lock_version() == Some(version.as_str());
            for label in labels {
                let stray_intent = label.starts_with(INTENT_LABEL_PREFIX) && !on_lock;
                let stale_bookkeeping =
                    is_bookkeeping_label(label) && Some(version.as_str()) != previous;
                if stray_intent || stale_bookkeeping {
                    self.remove_label(label, version).await?;
                }
            }
        }
        if let Some(own) = snap.version_with(AWSPREVIOUS).filter(|v| is_own_version(v)) {
            self.remove_label(AWSPREVIOUS, own).await?;
        }
        if let (Some(previous), Some(at)) = (previous, revoke_previous_after) {
            let labels = snap.labels_of(previous);
            let recorded = labels
                .iter()
                .any(|l| l.starts_with(REVOKE_AFTER_LABEL_PREFIX));
            if !recorded && self.holds_token(previous).await? {
                self.move_label(
                    "UpdateSecretVersionStage",
                    &revoke_after_label(at, previous),
                    None,
                    Some(previous),
                )
                .await?;
            }
        }
        let token_version = token_version_id(rotation_id);
        if snap.version_with(AWSPENDING) == Some(token_version.as_str()) {
            self.remove_label(AWSPENDING, &token_version).await?;
        }
        if let Some(holder) = holder {
            self.remove_label(&intent_label(rotation_id), &holder.version_id)
                .await?;
        }
        Ok(())
    }

    // ----- errors -----

    fn conflict(&self, operation: &'static str, detail: String) -> StoreError {
        StoreError::new(
            &self.description,
            operation,
            StoreErrorKind::Conflict,
            detail,
        )
    }

    /// Turns an SDK failure into words: the operation, what it was for, and the server's error
    /// code and message. Never formats the request (a `PutSecretValue` input holds the secret)
    /// nor a response body.
    fn call_error<E>(
        &self,
        operation: &'static str,
        purpose: &str,
        err: SdkError<E, aws_sdk_secretsmanager::config::http::HttpResponse>,
    ) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (kind, code, detail) = match &err {
            SdkError::ServiceError(service) => {
                let code = service
                    .err()
                    .code()
                    .unwrap_or("(no error code)")
                    .to_string();
                let message = service.err().message().unwrap_or("(no message)");
                let status = service.raw().status().as_u16();
                let kind = service_error_kind(&code, status);
                let detail = format!("{purpose}: HTTP {status} {code}: {message}");
                (kind, Some(code), detail)
            }
            SdkError::TimeoutError(_) => (
                StoreErrorKind::Unavailable,
                None,
                format!("{purpose}: no answer in time"),
            ),
            SdkError::DispatchFailure(dispatch) => (
                StoreErrorKind::Unavailable,
                None,
                format!(
                    "{purpose}: the request could not be sent: {}",
                    dispatch
                        .as_connector_error()
                        .map(|c| DisplayErrorContext(c).to_string())
                        .unwrap_or_else(|| "connection failed".to_string())
                ),
            ),
            SdkError::ResponseError(response) => (
                StoreErrorKind::Unavailable,
                None,
                format!(
                    "{purpose}: the answer (HTTP {}) could not be read",
                    response.raw().status().as_u16()
                ),
            ),
            _ => (
                StoreErrorKind::Failed,
                None,
                format!("{purpose}: the request could not be built"),
            ),
        };
        CallError {
            code,
            error: StoreError::new(&self.description, operation, kind, detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(entries: &[(&str, &[&str])]) -> Snapshot {
        Snapshot {
            exists: true,
            labels: entries
                .iter()
                .map(|(v, l)| (v.to_string(), l.iter().map(|s| s.to_string()).collect()))
                .collect(),
            latch_tag: None,
        }
    }

    #[test]
    fn labels_fit_aws_limits_and_round_trip_times() {
        let r = Uuid::new_v4();
        let version = token_version_id(r);
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let label = revoke_after_label(at, &version);
        assert!(label.len() <= 256);
        assert!(label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_eq!(label_time(&label, REVOKE_AFTER_LABEL_PREFIX), Some(at));
        let late = at + chrono::Duration::milliseconds(1);
        assert_eq!(
            label_time(
                &revoke_after_label(late, &version),
                REVOKE_AFTER_LABEL_PREFIX
            ),
            Some(at + chrono::Duration::seconds(1)),
            "a revoke time is rounded up, never down"
        );
        let placeholder = intent_version_id(r);
        assert!((32..=64).contains(&placeholder.len()));
        assert!((32..=64).contains(&LOCK_VERSION_ID.len()));
        assert!((32..=64).contains(&version.len()));
    }

    #[test]
    fn lock_is_held_only_while_the_intent_label_is_on_the_lock_version() {
        let r = Uuid::new_v4();
        let p = intent_version_id(r);
        let held = snap(&[(p.as_str(), &[LOCK_LABEL, intent_label(r).as_str()])]);
        assert_eq!(held.lock_holder().map(|h| h.rotation_id), Some(r));
        let released = snap(&[(p.as_str(), &[LOCK_LABEL])]);
        assert_eq!(released.lock_holder(), None);
        let stray = snap(&[
            (p.as_str(), &[intent_label(r).as_str()]),
            (LOCK_VERSION_ID, &[LOCK_LABEL, AWSCURRENT]),
        ]);
        assert_eq!(stray.lock_holder(), None);
        assert_eq!(stray.current_token_version(), None);
    }

    #[test]
    fn a_promoted_rotation_is_not_in_progress() {
        let r = Uuid::new_v4();
        let p = intent_version_id(r);
        let t = token_version_id(r);
        let s = snap(&[
            (p.as_str(), &[LOCK_LABEL, intent_label(r).as_str()]),
            (t.as_str(), &[AWSCURRENT, AWSPENDING]),
        ]);
        assert!(s.lock_holder().is_some());
        assert_eq!(s.rotation_in_progress(), None);
        assert_eq!(s.pending_version(), None);
    }

    #[test]
    fn json_errors_never_quote_the_value() {
        let e = serde_json::from_str::<CredentialRecord>(r#"{"token_secret": 5, "x": "hunter2"}"#)
            .unwrap_err();
        assert!(!json_error_words(&e).contains("hunter2"));
        let e = serde_json::from_str::<CredentialRecord>(r#""hunter2""#).unwrap_err();
        assert!(!json_error_words(&e).contains("hunter2"));
    }

    #[test]
    fn server_error_codes_map_to_kinds_an_operator_can_act_on() {
        assert_eq!(
            service_error_kind("AccessDeniedException", 400),
            StoreErrorKind::Denied
        );
        assert_eq!(
            service_error_kind("UnrecognizedClientException", 400),
            StoreErrorKind::Denied
        );
        assert_eq!(
            service_error_kind("ThrottlingException", 400),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            service_error_kind("SomethingNew", 503),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            service_error_kind("(no error code)", 403),
            StoreErrorKind::Denied
        );
        assert_eq!(
            service_error_kind("ResourceNotFoundException", 400),
            StoreErrorKind::Failed
        );
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let c: AwsStoreConfig = toml::from_str(r#"secret_id = "netsuite/erp""#).unwrap();
        assert!(c.create_if_missing);
        assert!(c.tags.is_empty());
        let e = toml::from_str::<AwsStoreConfig>("secret_id = \"x\"\nsecret_name = \"y\"");
        assert!(e.is_err());
    }
}
