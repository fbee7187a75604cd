//! Secret stores: where the rotation keeps its state and where readers find the current token.
//!
//! Every backend implements [`SecretStore`], a small step-shaped trait that mirrors the rotation
//! protocol (intent, stage, promote, abandon, mark revoked, import). The rotation engine talks
//! only to this trait, so adding a backend touches this folder and the config's store enum.
//!
//! What readers see is one JSON object per integration, a [`CredentialRecord`] (a TBA token or
//! an M2M certificate, `record.rs`); the bookkeeping that makes rotation crash-safe (intent,
//! pending, previous and its revoke time) lives wherever the backend keeps things readers do
//! not read: a state file beside the reader file, a sibling Vault path and `custom_metadata`,
//! AWS staging labels and tags.
//!
//! Contract every backend keeps (the engine relies on it):
//! - `begin_rotation`, `promote` and `import_current` are check-and-set: of several callers
//!   racing, in this process or in others, exactly one succeeds and the rest get
//!   [`StoreErrorKind::Conflict`].
//! - Each operation is idempotent for the same rotation id, so a step repeated after a crash or a
//!   lost answer is harmless.
//! - A failed operation leaves the reader-facing current token as it was.
//! - Errors name the store and the operation and never contain a secret value.

pub mod aws;
pub mod config;
pub mod file;
#[doc(hidden)]
pub mod parse_entry;
mod record;
mod rfc3339;
pub mod vault;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use record::{CertificateRecord, CredentialRecord, TokenRecord};

/// Step 1 of a rotation: the record that rotation `rotation_id` has started and that the token it
/// issues will be named `token_name`. An intent with no pending token after a crash means the
/// token may exist in NetSuite unknown to us: it is reported as a suspected orphan by that name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub rotation_id: Uuid,
    pub token_name: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub started_at: DateTime<Utc>,
    /// Which process runs the rotation (`host/pid/start-time`), so that recovery can tell a
    /// rotation whose process died from one still running elsewhere. Empty if unknown.
    #[serde(default)]
    pub owner: String,
}

/// The token that was current before the last promotion, kept until it is revoked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreviousToken {
    pub token: CredentialRecord,
    /// Readers have until then to pick up the new current token.
    #[serde(serialize_with = "rfc3339::serialize")]
    pub revoke_after: DateTime<Utc>,
    /// Set once `revoketoken` succeeded (or NetSuite said the token is already not valid).
    #[serde(serialize_with = "rfc3339::serialize_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The lock-out latch: NetSuite refused the NLAuth login of this configuration, so no login is
/// tried again until the login configuration changes or an operator asks (see
/// `rotation::latch`). Kept with the integration's state, so that a restart, another replica
/// and the CLI all see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginLatch {
    /// When the refused login was made.
    #[serde(serialize_with = "rfc3339::serialize")]
    pub at: DateTime<Utc>,
    /// A salted, slow fingerprint of the login that was refused (account, email, role,
    /// password, TOTP secret): tells a changed configuration from the same one without keeping
    /// the password. Only characters AWS allows in a tag value.
    pub login: String,
    /// What NetSuite answered, as a short code (`401 INVALID_LOGIN_CREDENTIALS`); never a
    /// secret, and only characters AWS allows in a tag value.
    pub reason: String,
}

/// The longest [`LoginLatch::to_compact`] text: AWS's limit on a tag value (Vault allows 512
/// bytes in a `custom_metadata` value).
pub const LOGIN_LATCH_COMPACT_MAX: usize = 256;

/// Whether `c` may stand in a [`LoginLatch`] field: the ASCII characters AWS allows in a tag
/// value (letters, digits, space and `_ . : / = + - @`), all of them printable as Vault wants.
pub fn is_tag_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

impl LoginLatch {
    /// The latch as one line that a tag value or a `custom_metadata` value can hold:
    /// `<at> <length of login>:<login> <reason>`, e.g.
    /// `2026-02-01T03:00:00Z 11:q3Rk+9/xZw= 401 INVALID_LOGIN_CREDENTIALS`. `at` is RFC 3339 in
    /// UTC (no spaces), `login` is length-prefixed so that it may hold any allowed character,
    /// and `reason` is the rest of the line. Only the characters of [`is_tag_value_char`], at
    /// most [`LOGIN_LATCH_COMPACT_MAX`] of them. The error names what is wrong, never a value.
    pub fn to_compact(&self) -> Result<String, String> {
        for (field, text) in [("login", &self.login), ("reason", &self.reason)] {
            if !text.chars().all(is_tag_value_char) {
                return Err(format!(
                    "the login latch's {field} holds a character that AWS does not allow in a tag value"
                ));
            }
        }
        let at = self.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let text = format!("{at} {}:{} {}", self.login.len(), self.login, self.reason);
        if text.len() > LOGIN_LATCH_COMPACT_MAX {
            return Err(format!(
                "the login latch takes {} characters written out, more than the {LOGIN_LATCH_COMPACT_MAX} a tag value may hold",
                text.len()
            ));
        }
        Ok(text)
    }

    /// Reads what [`LoginLatch::to_compact`] wrote. The error says what is wrong, never quotes.
    pub fn from_compact(text: &str) -> Result<LoginLatch, String> {
        let bad = |what: &str| format!("not a login latch this program wrote ({what})");
        if !text.chars().all(is_tag_value_char) {
            return Err(bad("a character outside those of a tag value"));
        }
        let (at, rest) = text.split_once(' ').ok_or_else(|| bad("no time"))?;
        let at = DateTime::parse_from_rfc3339(at)
            .map_err(|_| bad("the time is not RFC 3339"))?
            .with_timezone(&Utc);
        let (length, rest) = rest.split_once(':').ok_or_else(|| bad("no login length"))?;
        let length: usize = length
            .parse()
            .map_err(|_| bad("the login length is not a number"))?;
        // All characters are ASCII (checked above), so a byte index is a character index.
        let login = rest
            .get(..length)
            .ok_or_else(|| bad("the login is cut short"))?;
        let reason = rest[length..]
            .strip_prefix(' ')
            .ok_or_else(|| bad("no space after the login"))?;
        Ok(LoginLatch {
            at,
            login: login.to_string(),
            reason: reason.to_string(),
        })
    }
}

/// Everything a store holds for one integration.
#[derive(Clone, Debug, Default)]
pub struct StoreState {
    pub current: Option<CredentialRecord>,
    pub previous: Option<PreviousToken>,
    pub intent: Option<Intent>,
    /// The token staged by the rotation named in `intent`; its `rotation_id` is the intent's.
    pub pending: Option<CredentialRecord>,
    /// Set after a refused NLAuth login; cleared by the next successful `issuetoken`.
    pub login_latch: Option<LoginLatch>,
}

/// A backend for one integration's token.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// Names the store for messages and `status`: kind and location, never a credential.
    fn describe(&self) -> String;

    /// The engine is about to run several steps in a row (a rotation, with the recovery and
    /// revocation before it; a revocation), and calls [`SecretStore::release`] after them. Meanwhile a store may keep what
    /// it read or wrote, to spare the next step reading it again, as long as every step still
    /// sees a change another process made (the file store: `file/memo.rs`). Holds may nest.
    fn hold(&self) {}

    /// Ends a [`SecretStore::hold`]; what was kept for it goes with the last one.
    fn release(&self) {}

    /// Reads the whole state. A store that does not exist yet, or holds nothing, is
    /// `StoreState::default()`.
    async fn load(&self) -> Result<StoreState, StoreError>;

    /// Step 1, check-and-set: records `intent` only if no rotation is in progress (no intent and
    /// no pending). Otherwise `Conflict`. Repeating it for the same rotation id succeeds.
    async fn begin_rotation(&self, intent: &Intent) -> Result<(), StoreError>;

    /// Step 3: writes `token` as pending for rotation `token.rotation_id`. Idempotent. `Conflict`
    /// if the store's intent belongs to another rotation (or is gone).
    async fn stage_pending(&self, token: &CredentialRecord) -> Result<(), StoreError>;

    /// Step 5, check-and-set: the pending token of `rotation_id` becomes current; the old current,
    /// if any, becomes previous with `revoke_previous_after`; intent and pending are cleared.
    /// `Conflict` if the pending token is not this rotation's, or if a previous token that has not
    /// been revoked would be overwritten. Succeeds without change if `rotation_id` is already
    /// current (a repeated promote).
    async fn promote(
        &self,
        rotation_id: Uuid,
        revoke_previous_after: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Drops the intent and the pending token of `rotation_id`, leaving current and previous as
    /// they are. Called once the pending token is revoked (or was never issued). Idempotent; a
    /// no-op if the store's rotation is another one.
    async fn abandon_rotation(&self, rotation_id: Uuid) -> Result<(), StoreError>;

    /// Step 6 bookkeeping: records that the previous token `token_id` was revoked at `at`.
    /// Idempotent; a no-op if the previous token is another one.
    async fn mark_previous_revoked(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// `import`, check-and-set: puts a hand-made `token` in as current, only into a store with no
    /// current token and no rotation in progress; otherwise `Conflict`.
    async fn import_current(&self, token: &CredentialRecord) -> Result<(), StoreError>;

    /// Records (`Some`) or clears (`None`) the lock-out latch, leaving everything else as it
    /// is. Idempotent; last writer wins (only a rotation holding the intent writes it).
    async fn set_login_latch(&self, latch: Option<&LoginLatch>) -> Result<(), StoreError>;

    /// Proves that the store can be written, without changing what readers see or the
    /// rotation's state: `check`, and every rotation before it issues a token, call it, so
    /// that a store that cannot take the new token is found before NetSuite issues one.
    async fn check_writable(&self) -> Result<(), StoreError>;
}

/// What went wrong in a store, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
#[error("{store}: {operation}: {kind}: {detail}")]
pub struct StoreError {
    /// [`SecretStore::describe`] of the store.
    pub store: String,
    /// The operation that failed, e.g. `begin_rotation` or `GetSecretValue`.
    pub operation: &'static str,
    pub kind: StoreErrorKind,
    /// What the server or the file system said. Never a secret value.
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// A check-and-set lost: another rotation or writer got there first.
    Conflict,
    /// The store could not be reached or answered with a temporary error; retrying may help.
    Unavailable,
    /// Credentials or permissions were refused.
    Denied,
    /// The store holds data this program cannot read (a hand-edited file, another tool's value).
    Invalid,
    /// Anything else the store refused for good.
    Failed,
}

impl StoreErrorKind {
    pub fn is_transient(self) -> bool {
        matches!(self, StoreErrorKind::Unavailable)
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::Conflict => "conflict",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Denied => "access denied",
            StoreErrorKind::Invalid => "invalid stored data",
            StoreErrorKind::Failed => "failed",
        })
    }
}

impl StoreError {
    pub fn new(
        store: impl Into<String>,
        operation: &'static str,
        kind: StoreErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        StoreError {
            store: store.into(),
            operation,
            kind,
            detail: detail.into(),
        }
    }

    pub fn is_conflict(&self) -> bool {
        self.kind == StoreErrorKind::Conflict
    }

    /// What an operator can do about it, for logs, alerts and `status`.
    pub fn hint(&self, integration: &str) -> String {
        match self.kind {
            StoreErrorKind::Invalid => format!(
                "{} holds data this program cannot read (hand-edited, truncated, or another \
                 tool's value). Move that data aside (keep it: it may hold a live token), \
                 then put a valid token back: `netsuite-token-rotator import --integration \
                 {integration}` with the token id and secret on stdin, or `rotate \
                 --integration {integration}` to issue a fresh one. A valid value is one JSON \
                 object with account_id, realm, token_id, token_secret, issued_at and \
                 rotation_id (a TBA token), or with account_id, certificate_id, algorithm, \
                 private_key, issued_at and rotation_id (an M2M certificate) \
                 (docs/consumers.md; docs/runbook.md#store-unreadable)",
                self.store
            ),
            StoreErrorKind::Denied => format!(
                "{} refused the daemon's credentials or permissions: compare them with the \
                 policy in docs/stores-vault.md or docs/stores-aws.md, or the file's owner and \
                 mode (docs/runbook.md#store-unreadable)",
                self.store
            ),
            StoreErrorKind::Unavailable => format!(
                "{} did not answer; the daemon retries with backoff. Check that it is up and \
                 reachable from this host (docs/runbook.md#store-unreadable)",
                self.store
            ),
            StoreErrorKind::Conflict | StoreErrorKind::Failed => format!(
                "see the error above and docs/runbook.md#store-unreadable; `netsuite-token-rotator \
                 check` tests reading and writing {} without changing it",
                self.store
            ),
        }
    }
}

/// Opens the store an integration's config names. Nothing is read or written yet.
pub async fn open(
    config: &config::StoreConfig,
) -> Result<std::sync::Arc<dyn SecretStore>, StoreError> {
    use config::StoreConfig;
    Ok(match config {
        StoreConfig::File(c) => std::sync::Arc::new(file::FileStore::new(c)),
        StoreConfig::Vault(c) => std::sync::Arc::new(vault::connect(c).await?),
        StoreConfig::Aws(c) => std::sync::Arc::new(aws::AwsStore::connect(c).await?),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn latch(login: &str, reason: &str) -> LoginLatch {
        LoginLatch {
            at: Utc.with_ymd_and_hms(2026, 2, 1, 3, 0, 0).unwrap(),
            login: login.to_string(),
            reason: reason.to_string(),
        }
    }

    #[test]
    fn a_latch_is_written_compactly_and_read_back() {
        let plain = latch("q3Rk+9/xZw=", "401 INVALID_LOGIN_CREDENTIALS");
        let text = plain.to_compact().unwrap();
        assert_eq!(
            text,
            "2026-02-01T03:00:00Z 11:q3Rk+9/xZw= 401 INVALID_LOGIN_CREDENTIALS"
        );
        assert_eq!(LoginLatch::from_compact(&text).unwrap(), plain);

        // Spaces and colons in the login, an empty reason, sub-second times: all survive.
        let odd = LoginLatch {
            at: Utc.timestamp_opt(1_770_000_000, 123_456_789).unwrap(),
            ..latch("a b: 3:c ", "")
        };
        assert_eq!(
            LoginLatch::from_compact(&odd.to_compact().unwrap()).unwrap(),
            odd
        );
    }

    #[test]
    fn a_latch_that_cannot_be_a_tag_value_is_refused_without_quoting_it() {
        let err = latch("pa\u{7}ss", "x").to_compact().unwrap_err();
        assert!(err.contains("login") && !err.contains("pa"), "{err}");
        let err = latch("x", "naïve").to_compact().unwrap_err();
        assert!(err.contains("reason"), "{err}");
        let err = latch(&"x".repeat(300), "y").to_compact().unwrap_err();
        assert!(err.contains("256"), "{err}");

        for text in [
            "",
            "2026-02-01T03:00:00Z",
            "yesterday 1:x y",
            "2026-02-01T03:00:00Z x:y z",
            "2026-02-01T03:00:00Z 9:short z",
            "2026-02-01T03:00:00Z 1:xy",
            "2026-02-01T03:00:00Z 1:x\ty",
        ] {
            let err = LoginLatch::from_compact(text).unwrap_err();
            assert!(err.starts_with("not a login latch"), "{text:?}: {err}");
        }
    }

    proptest! {
        #[test]
        fn every_latch_of_allowed_characters_round_trips(
            login in "[A-Za-z0-9 _.:/=+@-]{0,80}",
            reason in "[A-Za-z0-9 _.:/=+@-]{0,80}",
            secs in 0i64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let latch = LoginLatch {
                at: Utc.timestamp_opt(secs, nanos).unwrap(),
                login,
                reason,
            };
            let text = latch.to_compact().unwrap();
            prop_assert!(text.len() <= LOGIN_LATCH_COMPACT_MAX);
            prop_assert!(text.chars().all(is_tag_value_char));
            prop_assert_eq!(LoginLatch::from_compact(&text).unwrap(), latch);
        }

        #[test]
        fn reading_any_text_never_panics(text in "\\PC{0,120}") {
            let _ = LoginLatch::from_compact(&text);
        }
    }
}
