//! What one `ListSecretVersionIds` (and `DescribeSecret`) shows of a secret: which version
//! carries which label, who holds the lock, and the store's state read from it.

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AwsStore, CredentialRecord, Intent, LOG_TARGET, LoginLatch, PreviousToken, StoreError,
    StoreErrorKind, StoreState,
};
use crate::secret::{ExposeSecret, SecretString};
use crate::store::aws::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, INTENT_LABEL_PREFIX, LOCK_LABEL, LOGIN_LATCH_TAG,
    NOT_A_TOKEN, REVOKE_AFTER_LABEL_PREFIX, REVOKED_LABEL_PREFIX, intent_version_id,
    is_own_version, json_error_words, label_time, token_version_id,
};

/// The value of an intent placeholder version.
#[derive(Serialize, Deserialize)]
pub(super) struct IntentValue {
    pub(super) netsuite_token_rotator_intent: Intent,
}

/// The labels of every labelled version of the secret, and the latch tag, as one
/// `DescribeSecret` saw them.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub(super) exists: bool,
    pub(super) labels: BTreeMap<String, Vec<String>>,
    /// The value of [`LOGIN_LATCH_TAG`], if the secret has it.
    pub(super) latch_tag: Option<String>,
}

/// A rotation that holds the lock.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LockHolder {
    pub(super) version_id: String,
    pub(super) rotation_id: Uuid,
}

impl Snapshot {
    /// The labelled versions of an existing secret, from `DescribeSecret`'s
    /// `VersionIdsToStages` (versions without labels are left out).
    pub(super) fn of_stages(stages: Option<&HashMap<String, Vec<String>>>) -> Snapshot {
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

    pub(super) fn version_with(&self, label: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(version, _)| version.as_str())
    }

    pub(super) fn labels_of(&self, version_id: &str) -> &[String] {
        self.labels.get(version_id).map_or(&[], Vec::as_slice)
    }

    pub(super) fn current(&self) -> Option<&str> {
        self.version_with(AWSCURRENT)
    }

    /// A current version that may hold a token (not one of this store's own versions).
    pub(super) fn current_token_version(&self) -> Option<&str> {
        self.current().filter(|v| !is_own_version(v))
    }

    /// `AWSPREVIOUS`, when it is a possible token and not also current.
    pub(super) fn previous_token_version(&self) -> Option<&str> {
        self.version_with(AWSPREVIOUS)
            .filter(|v| !is_own_version(v) && Some(*v) != self.current())
    }

    /// `AWSPENDING`, unless it sits on the current version (a promotion not yet cleaned up).
    pub(super) fn pending_version(&self) -> Option<&str> {
        self.version_with(AWSPENDING)
            .filter(|v| Some(*v) != self.current())
    }

    pub(super) fn lock_version(&self) -> Option<&str> {
        self.version_with(LOCK_LABEL)
    }

    /// The rotation holding the lock: the lock's version still carries its intent label.
    pub(super) fn lock_holder(&self) -> Option<LockHolder> {
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
    pub(super) fn rotation_in_progress(&self) -> Option<LockHolder> {
        self.lock_holder()
            .filter(|h| self.current() != Some(token_version_id(h.rotation_id).as_str()))
    }
}

/// Where the reading code gets the values of versions from: Secrets Manager (`GetSecretValue`)
/// for [`AwsStore`], canned values for [`load_canned`]. Everything that makes a token, a previous
/// token or a whole [`StoreState`] of those values is written once, here.
pub(super) trait VersionValues {
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
            tracing::warn!(target: LOG_TARGET,
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
pub(super) fn secret_string(
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
pub(super) struct CannedVersions<'a> {
    pub(super) values: &'a HashMap<String, Option<String>>,
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
pub(crate) async fn load_canned(
    stages: &HashMap<String, Vec<String>>,
    values: &HashMap<String, Option<String>>,
) -> Result<StoreState, StoreError> {
    let snap = Snapshot::of_stages(Some(stages));
    CannedVersions { values }.load_state(&snap).await
}

pub(super) fn holder_words(holder: Option<&LockHolder>) -> String {
    match holder {
        Some(h) => format!(
            "rotation {} holds it, on version {}",
            h.rotation_id, h.version_id
        ),
        None => "no rotation holds it".to_string(),
    }
}
