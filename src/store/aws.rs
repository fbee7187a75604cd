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

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    CredentialRecord, Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreErrorKind,
    StoreState,
};
use crate::secret::{ExposeSecret, SecretString, short_id};

/// `[integrations.store]` with `kind = "aws"`.
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsStoreConfig {
    /// Name or ARN of the secret. Creating a missing secret needs a name.
    #[schemars(pattern(crate::value_format::pattern::NOT_BLANK))]
    pub secret_id: String,
    /// Overrides the region from the environment or profile.
    pub region: Option<String>,
    /// Overrides the Secrets Manager endpoint (a VPC endpoint, or moto_server in tests).
    #[schemars(pattern(crate::value_format::pattern::BASE_URL))]
    pub endpoint_url: Option<String>,
    /// KMS key for a secret this store creates; ignored for an existing secret.
    pub kms_key_id: Option<String>,
    /// Tags for a secret this store creates; an existing secret's tags are left alone.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Create the secret (without a value) on the first write if it does not exist.
    #[serde(default = "yes")]
    pub create_if_missing: bool,
}

fn yes() -> bool {
    true
}

const AWSCURRENT: &str = "AWSCURRENT";
const AWSPREVIOUS: &str = "AWSPREVIOUS";
const AWSPENDING: &str = "AWSPENDING";
/// The rotation lock (see the module docs).
pub const LOCK_LABEL: &str = "NSTR_LOCK";
const INTENT_LABEL_PREFIX: &str = "NSTR_INTENT_";
const REVOKE_AFTER_LABEL_PREFIX: &str = "NSTR_REVOKE_AFTER_";
const REVOKED_LABEL_PREFIX: &str = "NSTR_REVOKED_";
/// Versions created by this store for its own bookkeeping; never tokens.
const OWN_VERSION_PREFIX: &str = "nstr-";
/// The fixed `ClientRequestToken` of the version the lock is created on (32-64 characters).
const LOCK_VERSION_ID: &str = "nstr-lock-00000000000000000000000000000000";
const LOCK_VERSION_VALUE: &str =
    r#"{"netsuite_token_rotator":"no token has been promoted into this secret yet"}"#;

/// The secret tag that holds the login latch.
pub const LOGIN_LATCH_TAG: &str = "netsuite-token-rotator:login-latch";

const NOT_A_TOKEN: &str =
    "the secret's AWSCURRENT value is not a netsuite-token-rotator token object";

/// Per-attempt and whole-operation limits, so a store that stops answering becomes an
/// `Unavailable` error instead of a hung rotation.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The version id of the token staged by rotation `rotation_id`.
pub fn token_version_id(rotation_id: Uuid) -> String {
    rotation_id.hyphenated().to_string()
}

/// The version id of the intent placeholder of rotation `rotation_id`.
pub fn intent_version_id(rotation_id: Uuid) -> String {
    format!("{OWN_VERSION_PREFIX}intent-{}", rotation_id.simple())
}

/// The label that keeps rotation `rotation_id`'s hold on the lock alive.
pub fn intent_label(rotation_id: Uuid) -> String {
    format!("{INTENT_LABEL_PREFIX}{}", rotation_id.simple())
}

fn revoke_after_label(at: DateTime<Utc>, version_id: &str) -> String {
    // Rounded up: a label must never let the previous token be revoked early.
    let secs = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    format!(
        "{REVOKE_AFTER_LABEL_PREFIX}{secs}_{}",
        label_safe(version_id)
    )
}

fn revoked_label(at: DateTime<Utc>, version_id: &str) -> String {
    format!(
        "{REVOKED_LABEL_PREFIX}{}_{}",
        at.timestamp(),
        label_safe(version_id)
    )
}

/// Labels are unique per secret, so bookkeeping labels carry their version's id.
fn label_safe(version_id: &str) -> String {
    version_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect()
}

fn label_time(label: &str, prefix: &str) -> Option<DateTime<Utc>> {
    let rest = label.strip_prefix(prefix)?;
    let secs = rest.split('_').next()?.parse::<i64>().ok()?;
    DateTime::from_timestamp(secs, 0)
}

fn is_bookkeeping_label(label: &str) -> bool {
    label.starts_with(REVOKE_AFTER_LABEL_PREFIX) || label.starts_with(REVOKED_LABEL_PREFIX)
}

fn is_own_version(version_id: &str) -> bool {
    version_id.starts_with(OWN_VERSION_PREFIX)
}

/// The value of an intent placeholder version.
#[derive(Serialize, Deserialize)]
struct IntentValue {
    netsuite_token_rotator_intent: Intent,
}

/// The labels of every labelled version of the secret, and the latch tag, as one
/// `DescribeSecret` saw them.
#[derive(Debug, Default)]
struct Snapshot {
    exists: bool,
    labels: BTreeMap<String, Vec<String>>,
    /// The value of [`LOGIN_LATCH_TAG`], if the secret has it.
    latch_tag: Option<String>,
}

/// A rotation that holds the lock.
#[derive(Debug, Clone, PartialEq)]
struct LockHolder {
    version_id: String,
    rotation_id: Uuid,
}

impl Snapshot {
    /// The labelled versions of an existing secret, from `DescribeSecret`'s
    /// `VersionIdsToStages` (versions without labels are left out).
    fn of_stages(stages: Option<&HashMap<String, Vec<String>>>) -> Snapshot {
        let labels = stages
            .map(|m| {
                m.iter()
                    .filter(|(_, labels)| !labels.is_empty())
                    .map(|(v, labels)| (v.clone(), labels.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Snapshot {
            exists: true,
            labels,
            latch_tag: None,
        }
    }

    fn version_with(&self, label: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(version, _)| version.as_str())
    }

    fn labels_of(&self, version_id: &str) -> &[String] {
        self.labels.get(version_id).map_or(&[], Vec::as_slice)
    }

    fn current(&self) -> Option<&str> {
        self.version_with(AWSCURRENT)
    }

    /// A current version that may hold a token (not one of this store's own versions).
    fn current_token_version(&self) -> Option<&str> {
        self.current().filter(|v| !is_own_version(v))
    }

    /// `AWSPREVIOUS`, when it is a possible token and not also current.
    fn previous_token_version(&self) -> Option<&str> {
        self.version_with(AWSPREVIOUS)
            .filter(|v| !is_own_version(v) && Some(*v) != self.current())
    }

    /// `AWSPENDING`, unless it sits on the current version (a promotion not yet cleaned up).
    fn pending_version(&self) -> Option<&str> {
        self.version_with(AWSPENDING)
            .filter(|v| Some(*v) != self.current())
    }

    fn lock_version(&self) -> Option<&str> {
        self.version_with(LOCK_LABEL)
    }

    /// The rotation holding the lock: the lock's version still carries its intent label.
    fn lock_holder(&self) -> Option<LockHolder> {
        let version_id = self.lock_version()?;
        self.labels_of(version_id).iter().find_map(|label| {
            let hex = label.strip_prefix(INTENT_LABEL_PREFIX)?;
            let rotation_id = Uuid::try_parse(hex).ok()?;
            (intent_version_id(rotation_id) == version_id).then(|| LockHolder {
                version_id: version_id.to_string(),
                rotation_id,
            })
        })
    }

    /// A rotation in progress: it holds the lock and its token is not current yet.
    fn rotation_in_progress(&self) -> Option<LockHolder> {
        self.lock_holder()
            .filter(|h| self.current() != Some(token_version_id(h.rotation_id).as_str()))
    }
}

/// Where the reading code gets the values of versions from: Secrets Manager (`GetSecretValue`)
/// for [`AwsStore`], canned values for [`load_canned`]. Everything that makes a token, a previous
/// token or a whole [`StoreState`] of those values is written once, here.
trait VersionValues {
    /// The store, as errors name it.
    fn description(&self) -> &str;

    /// The `SecretString` of `version_id`.
    async fn value(&self, version_id: &str) -> Result<SecretString, StoreError>;

    /// The token in `version_id`; `what` names the version in the message when it is not one.
    async fn token(&self, version_id: &str, what: &str) -> Result<CredentialRecord, StoreError> {
        let value = self.value(version_id).await?;
        serde_json::from_str::<CredentialRecord>(value.expose_secret()).map_err(|e| {
            StoreError::new(
                self.description(),
                "GetSecretValue",
                StoreErrorKind::Invalid,
                format!("{what} (version {version_id}; {})", json_error_words(&e)),
            )
        })
    }

    /// The previous token with its bookkeeping. A previous value that is not a token of ours
    /// (a hand-made value) is not ours to revoke and reads as none.
    async fn previous(&self, snap: &Snapshot) -> Result<Option<PreviousToken>, StoreError> {
        let Some(version_id) = snap.previous_token_version() else {
            return Ok(None);
        };
        let value = self.value(version_id).await?;
        let Ok(token) = serde_json::from_str::<CredentialRecord>(value.expose_secret()) else {
            tracing::warn!(
                store = %self.description(),
                version = version_id,
                "AWSPREVIOUS is not a netsuite-token-rotator token object; ignoring it"
            );
            return Ok(None);
        };
        let labels = snap.labels_of(version_id);
        let revoke_after = labels
            .iter()
            .find_map(|l| label_time(l, REVOKE_AFTER_LABEL_PREFIX))
            // A previous token that became previous outside this store (a hand-made
            // put-secret-value) has no grace window on record: it is due now.
            .unwrap_or(DateTime::UNIX_EPOCH);
        let revoked_at = labels
            .iter()
            .find_map(|l| label_time(l, REVOKED_LABEL_PREFIX));
        Ok(Some(PreviousToken {
            token,
            revoke_after,
            revoked_at,
        }))
    }

    /// What [`SecretStore::load`] returns for the secret `snap` describes.
    async fn load_state(&self, snap: &Snapshot) -> Result<StoreState, StoreError> {
        let mut state = StoreState::default();
        if let Some(version) = snap.current_token_version() {
            state.current = Some(self.token(version, NOT_A_TOKEN).await?);
        }
        state.previous = self.previous(snap).await?;
        if let Some(holder) = snap.rotation_in_progress() {
            let value = self.value(&holder.version_id).await?;
            let marker: IntentValue = serde_json::from_str(value.expose_secret()).map_err(|e| {
                StoreError::new(
                    self.description(),
                    "GetSecretValue",
                    StoreErrorKind::Invalid,
                    format!(
                        "the intent version {} is not a netsuite-token-rotator intent ({})",
                        holder.version_id,
                        json_error_words(&e)
                    ),
                )
            })?;
            state.intent = Some(marker.netsuite_token_rotator_intent);
        }
        if let Some(version) = snap.pending_version() {
            state.pending = Some(
                self.token(
                    version,
                    "the secret's AWSPENDING value is not a netsuite-token-rotator token object",
                )
                .await?,
            );
        }
        if let Some(text) = &snap.latch_tag {
            state.login_latch = Some(LoginLatch::from_compact(text).map_err(|reason| {
                StoreError::new(
                    self.description(),
                    "DescribeSecret",
                    StoreErrorKind::Invalid,
                    format!(
                        "tag {LOGIN_LATCH_TAG} is {reason}; clear it (set_login_latch None, or untag-resource) to go on"
                    ),
                )
            })?);
        }
        Ok(state)
    }
}

/// A version's `SecretString`, or the error for a version that holds a binary value.
fn secret_string(
    description: &str,
    version_id: &str,
    value: Option<&str>,
) -> Result<SecretString, StoreError> {
    match value {
        Some(s) => Ok(SecretString::from(s)),
        None => Err(StoreError::new(
            description,
            "GetSecretValue",
            StoreErrorKind::Invalid,
            format!("version {version_id} holds a binary value, not a JSON string"),
        )),
    }
}

impl VersionValues for AwsStore {
    fn description(&self) -> &str {
        &self.description
    }

    async fn value(&self, version_id: &str) -> Result<SecretString, StoreError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.config.secret_id)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| {
                StoreError::from(self.call_error(
                    "GetSecretValue",
                    &format!("reading version {version_id}"),
                    e,
                ))
            })?;
        secret_string(&self.description, version_id, out.secret_string())
    }
}

/// Versions as `DescribeSecret` and `GetSecretValue` would answer them: `stages` maps version
/// ids to staging labels, `values` version ids to their `SecretString` (`None`: a binary value).
struct CannedVersions<'a> {
    values: &'a HashMap<String, Option<String>>,
}

impl VersionValues for CannedVersions<'_> {
    fn description(&self) -> &str {
        "aws (canned versions)"
    }

    async fn value(&self, version_id: &str) -> Result<SecretString, StoreError> {
        match self.values.get(version_id) {
            Some(value) => secret_string(self.description(), version_id, value.as_deref()),
            None => Err(StoreError::new(
                self.description(),
                "GetSecretValue",
                StoreErrorKind::Failed,
                format!("reading version {version_id}: no such version"),
            )),
        }
    }
}

/// What `load` makes of a secret with these versions, without Secrets Manager: for
/// [`super::parse_entry`]. The future never waits.
pub(super) async fn load_canned(
    stages: &HashMap<String, Vec<String>>,
    values: &HashMap<String, Option<String>>,
) -> Result<StoreState, StoreError> {
    let snap = Snapshot::of_stages(Some(stages));
    CannedVersions { values }.load_state(&snap).await
}

/// What a failed SDK call said, kept apart from [`StoreError`] so a caller can recognise the
/// refusals that mean a lost check-and-set.
struct CallError {
    code: Option<String>,
    error: StoreError,
}

impl CallError {
    fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> StoreError {
        e.error
    }
}

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

fn describe(config: &AwsStoreConfig) -> String {
    let mut s = format!("aws-secretsmanager secret {}", config.secret_id);
    if let Some(region) = &config.region {
        s.push_str(&format!(" in {region}"));
    }
    if let Some(endpoint) = &config.endpoint_url {
        s.push_str(&format!(" at {endpoint}"));
    }
    s
}

fn service_error_kind(code: &str, status: u16) -> StoreErrorKind {
    match code {
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "RequestTimeout"
        | "RequestTimeoutException" => StoreErrorKind::Unavailable,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "DecryptionFailure" => StoreErrorKind::Denied,
        // A refusal without a code Secrets Manager names (moto_server's IAM check answers 403
        // with a body the SDK cannot read) is still a refusal of the caller.
        _ if status == 401 || status == 403 => StoreErrorKind::Denied,
        _ if status >= 500 => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Failed,
    }
}

/// Where and what kind of JSON problem, without serde_json's message (which can quote the value).
fn json_error_words(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of another shape",
        serde_json::error::Category::Eof => "cut-off JSON",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}

fn holder_words(holder: Option<&LockHolder>) -> String {
    match holder {
        Some(h) => format!(
            "rotation {} holds it, on version {}",
            h.rotation_id, h.version_id
        ),
        None => "no rotation holds it".to_string(),
    }
}

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
