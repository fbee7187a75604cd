//! How a rotation fails: the step it failed in and what that means (retry, alert, an orphan
//! to revoke by name).

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::netsuite::NetSuiteError;
use crate::store::StoreError;

/// A protocol step, for messages and spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Load,
    Intent,
    Issue,
    Stage,
    Verify,
    Promote,
    Revoke,
    Recover,
    Import,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Load => "load",
            Step::Intent => "intent",
            Step::Issue => "issue",
            Step::Stage => "stage",
            Step::Verify => "verify",
            Step::Promote => "promote",
            Step::Revoke => "revoke",
            Step::Recover => "recover",
            Step::Import => "import",
        })
    }
}

/// Why a rotation (or recovery, revocation, import, verification) did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "rotation {rotation_id} has been in progress since {started_at} (owner {owner}); not starting another. If its process is gone, recovery takes it over once it is older than 15 minutes"
    )]
    InProgress {
        rotation_id: Uuid,
        started_at: DateTime<Utc>,
        owner: String,
    },
    #[error(
        "the previous token {token_id} stays valid until {revoke_after} (its grace window); rotating now would replace it before it is revoked. Rotate after that time, or run `revoke --force` first"
    )]
    PreviousInGrace {
        token_id: String,
        revoke_after: DateTime<Utc>,
    },
    #[error("{step}: {source}")]
    NetSuite {
        step: Step,
        #[source]
        source: NetSuiteError,
    },
    #[error("{step}: {source}")]
    Store {
        step: Step,
        #[source]
        source: StoreError,
    },
    #[error(
        "verify: tokeninfo reports {field} {actual:?}, expected {expected:?} (see [integrations.expect])"
    )]
    Mismatch {
        field: &'static str,
        expected: String,
        actual: String,
    },
    /// `[integrations.expect]` names a field the `tokeninfo` answer does not carry under any
    /// of the key names this tool knows (NetSuite does not publish them). Not a mismatch: the
    /// token may well be right.
    #[error(
        "verify: tokeninfo did not report the {what} (none of the keys {keys}); remove \
         `expect.{config_key}` from [integrations.expect], or, if NetSuite names it another way, \
         report the key name so it can be added (the answer's keys are not published)"
    )]
    ExpectedFieldMissing {
        what: &'static str,
        config_key: &'static str,
        keys: String,
    },
    /// The first token ever issued for the integration is refused with `consumer_key_refused`:
    /// that first `issuetoken` installed the integration, and the account makes new
    /// integrations wait for an administrator's approval.
    #[error(
        "verify: NetSuite refuses the integration's first token with consumer_key_refused: the \
         first issuetoken installed the integration, and this account has \"Require Approval \
         during Auto-Installation of Integration\" set, so it waits for an administrator to \
         enable it under Setup > Integration > Manage Integrations (state Enabled). The new \
         token stays recorded as pending; once the integration is approved, the next run \
         verifies and promotes it (docs/runbook.md#integration-awaiting-approval)"
    )]
    AwaitingApproval {
        #[source]
        source: NetSuiteError,
    },
    /// The store's current token, not replaced by any rotation, is refused as revoked or
    /// unknown.
    #[error(
        "verify: NetSuite refuses the store's current token {token_id} as revoked or unknown \
         (token_rejected), and no rotation replaced it. Most likely a sandbox refresh deleted \
         the account's tokens, or someone revoked it under Setup > Users/Roles > Access Tokens. \
         To re-bootstrap, run `rotate --integration {integration}`: it issues, verifies and \
         promotes a fresh token with the NLAuth login, and records the dead one as revoked \
         (docs/runbook.md#current-token-rejected)"
    )]
    CurrentTokenRejected {
        integration: String,
        token_id: String,
        #[source]
        source: Box<NetSuiteError>,
    },
    /// A refused NLAuth login latched the integration (see `latch`): no login is tried.
    #[error(
        "login latched, not logging in: NetSuite refused this NLAuth login at {since} ({reason}), and the \
         login configuration has not changed since; every further try would count toward \
         NetSuite's lock-out of the user. Fix the login (email, password, role, TOTP secret; \
         docs/runbook.md#login-refused), then reload the daemon (SIGHUP) or restart it: a \
         changed login is tried once. If the login was right all along, run \
         `rotate --integration {integration}` to try it once more"
    )]
    LoginLatched {
        integration: String,
        since: DateTime<Utc>,
        reason: String,
    },
    #[error(
        "the store holds no current token: run `rotate` to issue one, or `import` an existing one"
    )]
    NoCurrentToken,
    #[error(
        "import: the store already holds a token or a rotation; import only fills an empty store (rotate to replace a token)"
    )]
    StoreNotEmpty,
    /// An M2M integration rotates with an access token got with its current certificate, and
    /// there is none: the first certificate of a mapping comes from an administrator.
    #[error(
        "issue: the store holds no current certificate, and a new one can only be uploaded with an access token got with the current one. Bring in the certificate an administrator uploaded: `netsuite-token-rotator import --integration {integration}` with the certificate ID, the PEM private key and the PEM certificate on stdin (docs/netsuite-setup.md#m2m-oauth-20-client-credentials)"
    )]
    NeedsImport { integration: String },
    /// The current certificate has expired: nothing can get an access token with it, so no
    /// rotation can upload a new one. Not retried.
    #[error(
        "the current certificate {certificate_id} expired at {not_after}: NetSuite refuses its assertions, so no rotation can upload a new one. An administrator uploads a new certificate for the mapping (Setup > Integration > Manage Authentication > OAuth 2.0 Client Credentials (M2M) Setup); then move the store's value aside and run `netsuite-token-rotator import --integration {integration}` with it (docs/runbook.md#certificate-expired)"
    )]
    CertificateExpired {
        integration: String,
        certificate_id: String,
        not_after: DateTime<Utc>,
    },
    /// A new certificate would be the sixth active one of the integration record.
    #[error(
        "issue: the integration record already has {} active certificates ({}; the store's current one is {current}), and NetSuite allows five: uploading another would be refused. Revoke one that nothing uses (Setup > Integration > Manage Authentication > OAuth 2.0 Client Credentials (M2M) Setup, or the certificate's revoke call), then rotate again", active.len(), active.join(", ")
    )]
    TooManyCertificates {
        active: Vec<String>,
        current: String,
    },
    #[error("issue: cannot make a key pair and certificate: {problem}")]
    KeyGeneration { problem: String },
    #[error(
        "issue: NetSuite accepted the certificate upload without naming its ID, and the listing after it shows no new certificate; nothing was recorded. Rotate again; if it repeats, report the listing's shape (not published)"
    )]
    UploadNotListed,
    #[error(
        "issue: NetSuite accepted the certificate upload without naming its ID, and the listing after it shows several new certificates ({ids}): which one is this rotation's cannot be told. Each is named in an orphan alert; revoke those nothing uses"
    )]
    UploadAmbiguous { ids: String },
    #[error("integration {integration} is not a {expected} integration")]
    WrongKind {
        integration: String,
        expected: &'static str,
    },
    #[error("import: the {field} is not usable: {problem}")]
    BadImport {
        field: &'static str,
        problem: String,
    },
}

impl RotationError {
    /// Worth trying again later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            RotationError::NetSuite { source, .. } => source.is_transient(),
            RotationError::Store { source, .. } => source.kind.is_transient(),
            RotationError::InProgress { .. } | RotationError::PreviousInGrace { .. } => true,
            _ => false,
        }
    }

    /// Why, in one word of a small fixed set, for the `reason` label of the rotations metric
    /// (listed in `docs/observability.md`): `login`, `rate_limited`, `unavailable` (NetSuite
    /// did not answer or answered 5xx), `rejected` (NetSuite refused a request), `store`, or
    /// `verification` (the new or current token did not check out).
    pub fn reason(&self) -> &'static str {
        match self {
            RotationError::LoginLatched { .. } => "login",
            RotationError::NetSuite { source, .. } if source.is_login_failure() => "login",
            RotationError::NetSuite { source, .. } if source.is_rate_limited() => "rate_limited",
            RotationError::NetSuite {
                step: Step::Verify, ..
            } => "verification",
            RotationError::NetSuite { source, .. } if source.is_transient() => "unavailable",
            RotationError::NetSuite { .. } => "rejected",
            RotationError::Store { .. }
            | RotationError::InProgress { .. }
            | RotationError::PreviousInGrace { .. }
            | RotationError::NoCurrentToken
            | RotationError::StoreNotEmpty => "store",
            RotationError::NeedsImport { .. }
            | RotationError::TooManyCertificates { .. }
            | RotationError::KeyGeneration { .. }
            | RotationError::UploadNotListed
            | RotationError::UploadAmbiguous { .. }
            | RotationError::WrongKind { .. }
            | RotationError::BadImport { .. } => "rejected",
            RotationError::CertificateExpired { .. } => "verification",
            RotationError::Mismatch { .. }
            | RotationError::ExpectedFieldMissing { .. }
            | RotationError::AwaitingApproval { .. }
            | RotationError::CurrentTokenRejected { .. } => "verification",
        }
    }
}
