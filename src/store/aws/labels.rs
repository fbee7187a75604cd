//! The names this store gives versions and labels: a token's version id is its rotation id,
//! the lock and intent versions are its own (`nstr-`), and a previous token's revoke time and
//! revocation are labels on its version.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub(super) const AWSCURRENT: &str = "AWSCURRENT";
pub(super) const AWSPREVIOUS: &str = "AWSPREVIOUS";
pub(super) const AWSPENDING: &str = "AWSPENDING";
/// The rotation lock (see the module docs).
pub const LOCK_LABEL: &str = "NSTR_LOCK";
pub(super) const INTENT_LABEL_PREFIX: &str = "NSTR_INTENT_";
pub(super) const REVOKE_AFTER_LABEL_PREFIX: &str = "NSTR_REVOKE_AFTER_";
pub(super) const REVOKED_LABEL_PREFIX: &str = "NSTR_REVOKED_";
/// Versions created by this store for its own bookkeeping; never tokens.
pub(super) const OWN_VERSION_PREFIX: &str = "nstr-";
/// The fixed `ClientRequestToken` of the version the lock is created on (32-64 characters).
pub(super) const LOCK_VERSION_ID: &str = "nstr-lock-00000000000000000000000000000000";
pub(super) const LOCK_VERSION_VALUE: &str =
    r#"{"netsuite_token_rotator":"no token has been promoted into this secret yet"}"#;

/// The secret tag that holds the login latch.
pub const LOGIN_LATCH_TAG: &str = "netsuite-token-rotator:login-latch";

pub(super) const NOT_A_TOKEN: &str =
    "the secret's AWSCURRENT value is not a netsuite-token-rotator token object";

/// Per-attempt and whole-operation limits, so a store that stops answering becomes an
/// `Unavailable` error instead of a hung rotation.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

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

pub(super) fn revoke_after_label(at: DateTime<Utc>, version_id: &str) -> String {
    // Rounded up: a label must never let the previous token be revoked early.
    let secs = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    format!(
        "{REVOKE_AFTER_LABEL_PREFIX}{secs}_{}",
        label_safe(version_id)
    )
}

pub(super) fn revoked_label(at: DateTime<Utc>, version_id: &str) -> String {
    format!(
        "{REVOKED_LABEL_PREFIX}{}_{}",
        at.timestamp(),
        label_safe(version_id)
    )
}

/// Labels are unique per secret, so bookkeeping labels carry their version's id.
pub(super) fn label_safe(version_id: &str) -> String {
    version_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect()
}

pub(super) fn label_time(label: &str, prefix: &str) -> Option<DateTime<Utc>> {
    let rest = label.strip_prefix(prefix)?;
    let secs = rest.split('_').next()?.parse::<i64>().ok()?;
    DateTime::from_timestamp(secs, 0)
}

pub(super) fn is_bookkeeping_label(label: &str) -> bool {
    label.starts_with(REVOKE_AFTER_LABEL_PREFIX) || label.starts_with(REVOKED_LABEL_PREFIX)
}

pub(super) fn is_own_version(version_id: &str) -> bool {
    version_id.starts_with(OWN_VERSION_PREFIX)
}
