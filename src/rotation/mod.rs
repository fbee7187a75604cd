//! The rotation engine: the six-step protocol of `design.md`, recovery of rotations left half
//! done, revocation of replaced credentials, `import` and `verify`.
//!
//! One [`Engine`] serves one integration. It talks to the store only through the
//! [`SecretStore`] trait and to NetSuite only through its credential kind's steps
//! ([`CredentialKind`], in `kind/`: a TBA token or an M2M certificate), so every backend and
//! every kind gets the same protocol:
//!
//! 1. intent  — the store records rotation `R` (check-and-set: one rotation at a time);
//! 2. issue   — the kind makes a new credential named `<prefix>-<R>` (`issuetoken` with NLAuth;
//!    or a certificate uploaded with an access token from the current one);
//! 3. stage   — the new credential goes into the store as pending (revoked at once if this
//!    fails);
//! 4. verify  — the kind proves it (`tokeninfo` against the expectations; a token exchange),
//!    else it is revoked;
//! 5. promote — pending becomes current, the old current becomes previous with a revoke time;
//! 6. revoke  — once its grace window has passed, the previous credential is revoked.
//!
//! The rule behind every error path: nothing NetSuite made for us is left valid without the
//! store knowing it (or an orphan alert naming it), and the store's current credential is only
//! ever replaced by one that passed verification.

pub mod events;
mod failpoint;
pub mod kind;
pub mod latch;
mod owner;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::netsuite::{AccountId, Endpoint, NetSuiteClient, NetSuiteError, Revoked, TokenInfo};
use crate::secret::{SecretString, short_id};
use crate::store::{
    CredentialRecord, Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreState,
};

pub use events::{Event, EventSink, NoEvents};
pub use failpoint::ENV as FAILPOINT_ENV;
pub use kind::m2m::M2m;
pub use kind::tba::{Expectations, Tba};
pub use kind::{CredentialKind, IssueError};
pub use latch::LoginGate;

/// Everything the engine needs to know about one integration, secrets resolved. What several
/// integrations have in common (account, endpoint, login, expectations) is shared between
/// them (see `config::Resolver`): a daemon holds thousands of these for weeks.
#[derive(Debug)]
pub struct Integration {
    pub name: Arc<str>,
    pub account: AccountId,
    /// Where the kind's calls go: the RESTlet domain for TBA, the SuiteTalk domain for M2M, or
    /// the configured override.
    pub endpoint: Endpoint,
    pub credential: Credential,
    /// Grace window between promotion and revocation of the replaced credential.
    pub revoke_after: Duration,
    /// Names new credentials `<prefix>-<rotation id>` (a TBA token's name, an M2M
    /// certificate's subject).
    pub token_name_prefix: Arc<str>,
    /// Whether the consumer pair (TBA) or the client ID (M2M) is written into the store
    /// beside the credential.
    pub store_consumer_credentials: bool,
}

/// The kind of credential an integration rotates, with what that kind needs.
#[derive(Debug)]
pub enum Credential {
    Tba(Tba),
    M2m(M2m),
}

impl Integration {
    /// The steps of this integration's kind.
    pub fn kind(&self) -> &dyn CredentialKind {
        match &self.credential {
            Credential::Tba(tba) => tba,
            Credential::M2m(m2m) => m2m,
        }
    }

    /// The TBA settings; `None` for an M2M integration (no NLAuth login, no latch).
    pub fn tba(&self) -> Option<&Tba> {
        match &self.credential {
            Credential::Tba(tba) => Some(tba),
            Credential::M2m(_) => None,
        }
    }

    /// The TBA settings to change (tests that break a login or an expectation).
    pub fn tba_mut(&mut self) -> Option<&mut Tba> {
        match &mut self.credential {
            Credential::Tba(tba) => Some(tba),
            Credential::M2m(_) => None,
        }
    }

    pub fn m2m(&self) -> Option<&M2m> {
        match &self.credential {
            Credential::M2m(m2m) => Some(m2m),
            Credential::Tba(_) => None,
        }
    }

    /// How NetSuite proves a credential of this kind works: `tokeninfo` or `a token exchange`.
    pub fn proof(&self) -> &'static str {
        match &self.credential {
            Credential::Tba(_) => "tokeninfo",
            Credential::M2m(_) => "a token exchange",
        }
    }

    /// What the integration's credential is called in messages: `token` or `certificate`.
    pub fn noun(&self) -> &'static str {
        match &self.credential {
            Credential::Tba(_) => "token",
            Credential::M2m(_) => "certificate",
        }
    }
}

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

/// How a rotation was asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct RotateOptions {
    /// An operator named this integration: a lock-out latch is lifted for this one try.
    pub explicit: bool,
    /// Revoke the replaced token at once after promotion, with no grace window (a suspected
    /// leak): readers still holding it fail until they read the store again.
    pub revoke_now: bool,
}

/// A completed rotation.
#[derive(Debug)]
pub struct Rotated {
    pub rotation_id: Uuid,
    pub token_id: String,
    pub previous: PreviousFate,
}

/// What became of the token a rotation replaced.
#[derive(Debug)]
pub enum PreviousFate {
    /// There was none (bootstrap).
    None,
    Revoked {
        token_id: String,
    },
    /// Revoked by a later run once its grace window has passed.
    RevokeAt {
        token_id: String,
        at: DateTime<Utc>,
    },
    /// Due but not revoked yet; recorded, so a later run tries again.
    RevokeFailed {
        token_id: String,
        error: String,
    },
}

/// What recovery found and did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// A verified pending token was promoted.
    pub promoted: Option<Uuid>,
    /// A pending token that failed verification was revoked and dropped.
    pub discarded: Option<Uuid>,
    /// A rotation died between issue and stage: its token name was reported as an orphan.
    pub orphan_reported: Option<String>,
    /// An overdue previous token was revoked.
    pub previous_revoked: Option<String>,
}

/// One sentence for the log: "nothing to recover", or what was done, e.g. "promoted the
/// pending token of rotation R; revoked previous token T".
impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut done: Vec<String> = Vec::new();
        if let Some(rotation_id) = self.promoted {
            done.push(format!(
                "promoted the pending token of rotation {rotation_id}"
            ));
        }
        if let Some(rotation_id) = self.discarded {
            done.push(format!(
                "revoked the pending token of rotation {rotation_id}, which failed verification"
            ));
        }
        if let Some(token_name) = &self.orphan_reported {
            done.push(format!(
                "reported token {token_name} as a suspected orphan (its rotation stopped before staging it)"
            ));
        }
        if let Some(token_id) = &self.previous_revoked {
            done.push(format!("revoked previous token {}", short_id(token_id)));
        }
        if done.is_empty() {
            return f.write_str("nothing to recover");
        }
        f.write_str(&done.join("; "))
    }
}

/// What `revoke_due` did.
#[derive(Debug)]
pub enum RevokeOutcome {
    NothingToRevoke,
    NotDue {
        token_id: String,
        revoke_after: DateTime<Utc>,
    },
    Revoked {
        token_id: String,
    },
}

/// What [`Engine::rotate`] would do with the store as it is, for `rotate --dry-run`.
#[derive(Debug)]
pub struct Plan {
    /// An unfinished rotation that recovery would take over first, and whether it had staged
    /// its token (then promoted if tokeninfo accepts it, else revoked).
    pub recover: Option<(Intent, bool)>,
    /// Then the rotation, or the error `rotate` would stop with.
    pub then: Result<Planned, RotationError>,
}

/// The rotation a [`Plan`] foresees once recovery is done.
#[derive(Debug)]
pub enum Planned {
    /// The previous token's grace window is over: revoke it, then replace the current token.
    RevokeThenRotate {
        previous_token_id: String,
        current_token_id: Option<String>,
    },
    Rotate {
        current_token_id: String,
    },
    /// An empty store: issue a first token.
    Bootstrap,
}

/// Runs the protocol for one integration.
pub struct Engine {
    integration: Arc<Integration>,
    client: NetSuiteClient,
    store: Arc<dyn SecretStore>,
    events: Arc<dyn EventSink>,
    /// Names this engine in the intents it writes (see `owner`).
    owner: owner::Owner,
}

/// Attempts for store writes whose failure would cost a token (stage, abandon, bookkeeping).
const STORE_ATTEMPTS: u32 = 3;

impl Engine {
    pub fn new(
        integration: Arc<Integration>,
        client: NetSuiteClient,
        store: Arc<dyn SecretStore>,
        events: Arc<dyn EventSink>,
    ) -> Engine {
        Engine {
            integration,
            client,
            store,
            events,
            owner: owner::Owner::new_instance(),
        }
    }

    pub fn integration(&self) -> &Integration {
        &self.integration
    }

    pub fn store(&self) -> &dyn SecretStore {
        self.store.as_ref()
    }

    /// One whole rotation, as the schedule asks for it (see [`Engine::rotate_with`]).
    pub async fn rotate(&self) -> Result<Rotated, RotationError> {
        self.rotate_with(RotateOptions::default()).await
    }

    /// One whole rotation: recovery first, then the due revocation, then steps 1 to 5, then
    /// step 6 at once when the grace window is zero (or `options.revoke_now`).
    pub async fn rotate_with(&self, options: RotateOptions) -> Result<Rotated, RotationError> {
        let span = info_span!(
            "rotation",
            integration = %self.integration.name,
            netsuite.account = %self.integration.account,
            rotation.id = tracing::field::Empty,
            rotation.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        );
        let result = self
            .rotate_inner(&span, options)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(_) => span.record("rotation.outcome", "rotated"),
            Err(e) => span
                .record("rotation.outcome", "failed")
                .record("otel.status_code", "ERROR")
                .record("otel.status_description", e.to_string()),
        };
        result
    }

    async fn rotate_inner(
        &self,
        span: &tracing::Span,
        options: RotateOptions,
    ) -> Result<Rotated, RotationError> {
        // The state recovery left; begin_rotation's check-and-set catches any change since.
        let (_, state) = self.recover_then_state().await?;
        if let Some(previous) = unrevoked(&state) {
            if !self.is_due(previous) {
                return Err(RotationError::PreviousInGrace {
                    token_id: short_id(previous.token.id()),
                    revoke_after: previous.revoke_after,
                });
            }
            self.revoke_previous(previous, state.current.as_ref())
                .await?;
        }
        if !options.explicit {
            self.refuse_if_latched(&state).await?;
        }
        if let Some(current) = &state.current
            && let Some(not_after) = current.expires_at()
            && not_after <= Utc::now()
        {
            // Nothing can authenticate with it any more: an operator must bring in a new one.
            return Err(RotationError::CertificateExpired {
                integration: self.integration.name.to_string(),
                certificate_id: current.id().to_string(),
                not_after,
            });
        }
        // A store that cannot take the new token must be found before NetSuite issues one.
        self.store
            .check_writable()
            .instrument(info_span!("rotation.check_writable"))
            .await
            .map_err(|e| RotationError::Store {
                step: Step::Intent,
                source: e,
            })?;

        // 1. intent
        let rotation_id = Uuid::new_v4();
        span.record("rotation.id", rotation_id.to_string());
        let token_name = format!("{}-{rotation_id}", self.integration.token_name_prefix);
        let intent = Intent {
            rotation_id,
            token_name: token_name.clone(),
            started_at: Utc::now(),
            owner: self.owner.to_string(),
        };
        self.store
            .begin_rotation(&intent)
            .instrument(info_span!("rotation.intent"))
            .await
            .map_err(|e| self.in_progress_or(e, Step::Intent, &state))?;
        self.emit(Event::IntentRecorded {
            rotation_id,
            token_name: token_name.clone(),
        });
        failpoint::hit("after-intent");

        // 2. issue
        let record = match self
            .integration
            .kind()
            .issue(
                self.context(),
                state.current.as_ref(),
                rotation_id,
                &token_name,
            )
            .instrument(info_span!("rotation.issue"))
            .await
        {
            Ok(record) => record,
            Err(e) => return Err(self.issue_failed(rotation_id, &token_name, e).await),
        };
        self.emit(Event::TokenIssued {
            rotation_id,
            token_id: record.id().to_string(),
        });
        if let Some(tba) = self.integration.tba()
            && (state.login_latch.is_some() || tba.login_gate.latched().is_some())
        {
            self.lift_latch().await;
        }
        failpoint::hit("after-issue");

        // 3. stage
        let staged = self
            .with_store_retries(|| self.store.stage_pending(&record))
            .instrument(info_span!("rotation.stage"))
            .await;
        if let Err(e) = staged {
            let reason = format!("staging failed: {e}");
            self.discard_new_token(&record, state.current.as_ref(), false, reason)
                .await;
            return Err(RotationError::Store {
                step: Step::Stage,
                source: e,
            });
        }
        self.emit(Event::TokenStaged { rotation_id });
        failpoint::hit("after-stage");

        // 4. verify
        match self
            .verify(&record)
            .instrument(info_span!("rotation.verify"))
            .await
        {
            Ok(info) => self.emit(Event::TokenVerified {
                rotation_id,
                info,
                proof: self.integration.proof(),
            }),
            Err(e) => {
                let reason = format!("verification failed: {e}");
                self.discard_new_token(&record, state.current.as_ref(), true, reason)
                    .await;
                return Err(match e {
                    RotationError::NetSuite { source, .. }
                        if state.current.is_none()
                            && source.oauth_reason()
                                == Some(&crate::netsuite::OAuthReason::ConsumerKeyRefused) =>
                    {
                        RotationError::AwaitingApproval { source }
                    }
                    other => other,
                });
            }
        }
        failpoint::hit("after-verify");

        // 5. promote
        let previous_token_id = state.current.as_ref().map(|c| c.id().to_string());
        let grace = match options.revoke_now {
            true => Duration::ZERO,
            false => self.integration.revoke_after,
        };
        let revoke_after = self
            .promote(&record, previous_token_id.clone(), grace)
            .await?;
        failpoint::hit("after-promote");

        // 6. revoke, now if the grace window is zero
        let previous = match state.current {
            None => PreviousFate::None,
            Some(replaced) if !grace.is_zero() && revoke_after > Utc::now() => {
                PreviousFate::RevokeAt {
                    token_id: replaced.id().to_string(),
                    at: revoke_after,
                }
            }
            // Due by the configured window, so revoked now: the token this promotion replaced,
            // as read before it (the store holds it as the previous token; not read again, and
            // not checked against the store's revoke time, which a store may keep rounded up
            // a moment into the future: AWS labels hold whole seconds).
            Some(replaced) => {
                let token_id = replaced.id().to_string();
                let previous = PreviousToken {
                    token: replaced,
                    revoke_after,
                    revoked_at: None,
                };
                match self.revoke_previous(&previous, Some(&record)).await {
                    Ok(()) => PreviousFate::Revoked { token_id },
                    Err(e) => PreviousFate::RevokeFailed {
                        token_id,
                        error: e.to_string(),
                    },
                }
            }
        };
        Ok(Rotated {
            rotation_id,
            token_id: record.id().to_string(),
            previous,
        })
    }

    /// Resumes whatever a stopped process left: promotes a pending token that verifies, revokes
    /// one that does not, reports the name of a token that may have been issued unrecorded, and
    /// revokes an overdue previous token.
    pub async fn recover(&self) -> Result<Recovery, RotationError> {
        self.recover_then_state()
            .await
            .map(|(recovery, _)| recovery)
    }

    /// [`recover`](Engine::recover), and the store's state after it: read once when there was
    /// nothing to recover, so that a rotation does not read the store again before it begins.
    pub async fn recover_then_state(&self) -> Result<(Recovery, StoreState), RotationError> {
        let mut recovery = Recovery::default();
        let mut state = self.load().await?;
        let intent = match (&state.intent, &state.pending) {
            (Some(intent), _) => Some(intent.clone()),
            // The trait keeps an intent with every pending token; be lenient if a store did not.
            (None, Some(pending)) => Some(Intent {
                rotation_id: pending.rotation_id(),
                token_name: String::new(),
                started_at: pending.issued_at(),
                owner: String::new(),
            }),
            (None, None) => None,
        };
        if let Some(intent) = intent {
            self.recover_rotation(&intent, &state, &mut recovery)
                .instrument(info_span!("rotation.recover", rotation.id = %intent.rotation_id))
                .await?;
            state = self.load().await?;
        }
        if let Some(previous) = unrevoked(&state)
            && self.is_due(previous)
        {
            self.revoke_previous(previous, state.current.as_ref())
                .await?;
            recovery.previous_revoked = Some(previous.token.id().to_string());
            state = self.load().await?;
        }
        Ok((recovery, state))
    }

    async fn recover_rotation(
        &self,
        intent: &Intent,
        state: &StoreState,
        recovery: &mut Recovery,
    ) -> Result<(), RotationError> {
        let rotation_id = intent.rotation_id;
        if !owner::is_abandoned(
            &intent.owner,
            &self.owner.to_string(),
            intent.started_at,
            Utc::now(),
        ) {
            return Err(RotationError::InProgress {
                rotation_id,
                started_at: intent.started_at,
                owner: intent.owner.clone(),
            });
        }
        let pending = state
            .pending
            .as_ref()
            .filter(|p| p.rotation_id() == rotation_id);
        let already_current = state
            .current
            .as_ref()
            .is_some_and(|c| c.rotation_id() == rotation_id);
        match pending {
            _ if already_current => {
                self.emit(Event::RecoveryFound {
                    rotation_id,
                    what: "promoted, bookkeeping left over".into(),
                });
                self.abandon(rotation_id).await?;
            }
            None => {
                self.emit(Event::RecoveryFound {
                    rotation_id,
                    what: "stopped between issue and stage".into(),
                });
                if self.report_unstaged(intent, state).await {
                    recovery.orphan_reported = Some(intent.token_name.clone());
                }
                self.abandon(rotation_id).await?;
            }
            Some(pending) => {
                self.emit(Event::RecoveryFound {
                    rotation_id,
                    what: format!("pending token {} not promoted", short_id(pending.id())),
                });
                match self.verify(pending).await {
                    Ok(info) => {
                        self.emit(Event::TokenVerified {
                            rotation_id,
                            info,
                            proof: self.integration.proof(),
                        });
                        let replaced = state
                            .current
                            .as_ref()
                            .filter(|c| c.rotation_id() != rotation_id)
                            .map(|c| c.id().to_string());
                        self.promote(pending, replaced, self.integration.revoke_after)
                            .await?;
                        recovery.promoted = Some(rotation_id);
                    }
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        let reason = format!("verification failed during recovery: {e}");
                        let current = state.current.as_ref().filter(|c| c.id() != pending.id());
                        if !self.discard_new_token(pending, current, true, reason).await {
                            // Still pending and still valid: no new rotation until it is gone.
                            return Err(e);
                        }
                        recovery.discarded = Some(rotation_id);
                    }
                }
            }
        }
        Ok(())
    }

    /// A rotation stopped after its intent and before staging: whatever it made in NetSuite is
    /// unknown to the store. A TBA token is named by the name it was issued under; M2M
    /// certificates carry no name NetSuite lists, so the certificates listed now that the store
    /// does not know and that are not older than the rotation are named by ID. Returns whether
    /// anything was reported.
    async fn report_unstaged(&self, intent: &Intent, state: &StoreState) -> bool {
        let rotation_id = intent.rotation_id;
        let listed = match (self.integration.m2m(), &state.current) {
            (Some(m2m), Some(current)) => {
                let mut known = vec![current.id()];
                known.extend(state.previous.as_ref().map(|p| p.token.id()));
                Some(
                    m2m.unknown_since(self.context(), current, &known, intent.started_at)
                        .instrument(info_span!("rotation.find_orphans"))
                        .await,
                )
            }
            _ => None,
        };
        match listed {
            Some(Ok(ids)) => {
                let found = !ids.is_empty();
                for id in ids {
                    // The full ID: a certificate ID is public (every assertion's `kid`), and
                    // it is what an operator revokes by.
                    self.emit(Event::OrphanSuspected {
                        rotation_id,
                        token_name: intent.token_name.clone(),
                        reason: format!("the process stopped after uploading a certificate and before staging it; NetSuite lists active certificate {id}, which the store does not know. Revoke it unless something else uses it"),
                        token_id: Some(id),
                    });
                }
                return found;
            }
            Some(Err(e)) => self.emit(Event::OrphanSuspected {
                rotation_id,
                token_name: intent.token_name.clone(),
                token_id: None,
                reason: format!("the process stopped after recording the rotation and before staging its certificate, and the certificates could not be listed to find it ({e}); compare the integration record's certificates with the store's"),
            }),
            None => self.emit(Event::OrphanSuspected {
                rotation_id,
                token_name: intent.token_name.clone(),
                token_id: None,
                reason: "the process stopped after recording the rotation and before staging its token; NetSuite may hold a token by this name".into(),
            }),
        }
        true
    }

    /// What [`rotate`](Engine::rotate) would do with the store in `state`, decided by the rules
    /// `rotate` follows (whose rotation is abandoned, when a grace window is over); nothing is
    /// called or written. Where the outcome hangs on NetSuite's answer, the plan assumes the
    /// usual one: a staged token that recovery finds passes tokeninfo.
    pub fn plan(&self, state: &StoreState) -> Plan {
        let now = Utc::now();
        // As recovery does: a pending token without an intent is an unfinished rotation too.
        let unfinished = state.intent.clone().or_else(|| {
            state.pending.as_ref().map(|pending| Intent {
                rotation_id: pending.rotation_id(),
                token_name: String::new(),
                started_at: pending.issued_at(),
                owner: String::new(),
            })
        });
        let Some(intent) = unfinished else {
            return Plan {
                recover: None,
                then: self.plan_rotation(state),
            };
        };
        if !owner::is_abandoned(
            &intent.owner,
            &self.owner.to_string(),
            intent.started_at,
            now,
        ) {
            return Plan {
                recover: None,
                then: Err(RotationError::InProgress {
                    rotation_id: intent.rotation_id,
                    started_at: intent.started_at,
                    owner: intent.owner,
                }),
            };
        }
        let staged = state
            .pending
            .as_ref()
            .is_some_and(|p| p.rotation_id() == intent.rotation_id);
        let replaced = state
            .current
            .as_ref()
            .filter(|c| staged && c.rotation_id() != intent.rotation_id);
        let then = match replaced {
            // Promoting the staged token starts the grace window of the token it replaces.
            Some(current) if !self.integration.revoke_after.is_zero() => {
                Err(RotationError::PreviousInGrace {
                    token_id: short_id(current.id()),
                    revoke_after: now + self.integration.revoke_after,
                })
            }
            Some(current) => Ok(Planned::RevokeThenRotate {
                previous_token_id: current.id().to_string(),
                current_token_id: state.pending.as_ref().map(|p| p.id().to_string()),
            }),
            None => self.plan_rotation(state),
        };
        Plan {
            recover: Some((intent, staged)),
            then,
        }
    }

    /// [`plan`](Engine::plan) once no rotation is unfinished.
    fn plan_rotation(&self, state: &StoreState) -> Result<Planned, RotationError> {
        let current_token_id = state.current.as_ref().map(|c| c.id().to_string());
        if let Some(previous) = unrevoked(state) {
            if !self.is_due(previous) {
                return Err(RotationError::PreviousInGrace {
                    token_id: short_id(previous.token.id()),
                    revoke_after: previous.revoke_after,
                });
            }
            return Ok(Planned::RevokeThenRotate {
                previous_token_id: previous.token.id().to_string(),
                current_token_id,
            });
        }
        match (current_token_id, self.integration.m2m()) {
            (Some(current_token_id), _) => Ok(Planned::Rotate { current_token_id }),
            (None, None) => Ok(Planned::Bootstrap),
            // A certificate is only uploaded with an access token from the current one.
            (None, Some(_)) => Err(RotationError::NeedsImport {
                integration: self.integration.name.to_string(),
            }),
        }
    }

    /// Step 6 on its own: revokes the previous token if its grace window has passed (or at once
    /// with `force`).
    pub async fn revoke_due(&self, force: bool) -> Result<RevokeOutcome, RotationError> {
        let state = self.load().await?;
        let Some(previous) = unrevoked(&state) else {
            return Ok(RevokeOutcome::NothingToRevoke);
        };
        if !force && !self.is_due(previous) {
            self.emit(Event::RevokeNotDue {
                token_id: previous.token.id().to_string(),
                revoke_after: previous.revoke_after,
            });
            return Ok(RevokeOutcome::NotDue {
                token_id: previous.token.id().to_string(),
                revoke_after: previous.revoke_after,
            });
        }
        self.revoke_previous(previous, state.current.as_ref())
            .await?;
        Ok(RevokeOutcome::Revoked {
            token_id: previous.token.id().to_string(),
        })
    }

    /// `tokeninfo` with the store's current token, checked against the expectations.
    pub async fn verify_current(&self) -> Result<TokenInfo, RotationError> {
        let state = self.load().await?;
        let current = state.current.ok_or(RotationError::NoCurrentToken)?;
        match self.verify(&current).await {
            Err(RotationError::NetSuite { source, .. })
                if source.oauth_reason() == Some(&crate::netsuite::OAuthReason::TokenRejected) =>
            {
                Err(RotationError::CurrentTokenRejected {
                    integration: self.integration.name.to_string(),
                    token_id: short_id(current.id()),
                    source: Box::new(source),
                })
            }
            other => other,
        }
    }

    /// Puts a hand-made TBA token in as current (see [`Engine::import_record`]).
    pub async fn import(
        &self,
        token_id: String,
        token_secret: SecretString,
    ) -> Result<(), RotationError> {
        let tba = self.integration.tba().ok_or(RotationError::WrongKind {
            integration: self.integration.name.to_string(),
            expected: "tba",
        })?;
        let record = tba.record(self.context(), Uuid::new_v4(), token_id, token_secret);
        self.import_record(record).await
    }

    /// Puts a certificate an administrator uploaded in as current (see
    /// [`Engine::import_record`]). `certificate` (PEM), when given, must hold the key's public
    /// half; its expiry is kept for scheduling and alerts.
    pub async fn import_certificate(
        &self,
        certificate_id: String,
        private_key: SecretString,
        certificate: Option<String>,
    ) -> Result<(), RotationError> {
        use crate::netsuite::m2m;
        let integration = &self.integration;
        let settings = integration.m2m().ok_or(RotationError::WrongKind {
            integration: integration.name.to_string(),
            expected: "m2m",
        })?;
        let bad =
            |field: &'static str, problem: String| RotationError::BadImport { field, problem };
        let algorithm = m2m::algorithm_of_private_key(&private_key)
            .map_err(|problem| bad("private key", problem))?;
        let not_after = match &certificate {
            None => None,
            Some(pem) => {
                let (_, not_after) = m2m::certificate_validity(pem)
                    .map_err(|problem| bad("certificate", problem))?;
                if !m2m::certificate_matches_key(pem, &private_key)
                    .map_err(|problem| bad("certificate", problem))?
                {
                    return Err(bad(
                        "certificate",
                        "it does not hold the public key of the private key given with it".into(),
                    ));
                }
                Some(not_after)
            }
        };
        let record = settings.record(
            self.context(),
            Uuid::new_v4(),
            certificate_id,
            algorithm,
            private_key,
            certificate,
            not_after,
        );
        self.import_record(record).await
    }

    /// Puts a hand-made credential in as current after NetSuite accepted it (`tokeninfo`, or a
    /// token exchange); the next rotation replaces it and revokes it after the grace window.
    async fn import_record(&self, record: CredentialRecord) -> Result<(), RotationError> {
        let state = self.load().await?;
        if state.current.is_some() || state.intent.is_some() || state.pending.is_some() {
            return Err(RotationError::StoreNotEmpty);
        }
        let info = self.verify(&record).await?;
        self.store
            .import_current(&record)
            .await
            .map_err(|e| match e.is_conflict() {
                true => RotationError::StoreNotEmpty,
                false => RotationError::Store {
                    step: Step::Import,
                    source: e,
                },
            })?;
        self.emit(Event::TokenImported {
            token_id: record.id().to_string(),
            info,
        });
        Ok(())
    }

    /// Reads the store's state, and checks that it holds this integration's kind of
    /// credential (a TBA token where a certificate belongs is another integration's value).
    pub async fn load(&self) -> Result<StoreState, RotationError> {
        let state = self.store.load().await.map_err(|e| RotationError::Store {
            step: Step::Load,
            source: e,
        })?;
        let m2m = self.integration.m2m().is_some();
        let records = [state.current.as_ref(), state.pending.as_ref()]
            .into_iter()
            .chain([state.previous.as_ref().map(|p| &p.token)])
            .flatten();
        for record in records {
            if record.as_m2m().is_some() != m2m {
                let (holds, expected) = match m2m {
                    true => ("a TBA token", "an M2M certificate record"),
                    false => ("an M2M certificate", "a TBA token record"),
                };
                return Err(RotationError::Store {
                    step: Step::Load,
                    source: StoreError::new(
                        self.store.describe(),
                        "load",
                        crate::store::StoreErrorKind::Invalid,
                        format!(
                            "it holds {holds} ({}), but integration {} is configured for {expected}: is this another integration's store?",
                            short_id(record.id()),
                            self.integration.name
                        ),
                    ),
                });
            }
        }
        Ok(state)
    }

    /// Lifts a login latch `state` holds for another login than the one configured now: the
    /// configuration changed since NetSuite refused it, which is how an operator ends a latch
    /// (see `latch`), so that the store, `status`, `/readyz` and the metric stop calling the
    /// integration latched before its next run logs in once. The daemon calls it after each
    /// read; the CLI does not, so a one-off command run with other credentials (a `check` in
    /// another shell) never lifts the daemon's latch.
    pub async fn lift_stale_latch(&self, state: &mut StoreState) {
        if state.login_latch.is_none() || self.holding_latch(state).is_some() {
            return;
        }
        let name = &self.integration.name;
        match self
            .with_store_retries(|| self.store.set_login_latch(None))
            .await
        {
            Ok(()) => {
                info!(integration = %name, "the login configuration changed since NetSuite refused it; the lock-out latch is lifted and the next run logs in once")
            }
            Err(e) => warn!(integration = %name, error = %e,
                "the login configuration changed since NetSuite refused it, but the latch could not be cleared in the store"),
        }
        state.login_latch = None;
    }

    /// Step 5. `previous_token_id` is the current token being replaced, as the caller read it
    /// (it only names the token in the event; the store decides what becomes previous).
    async fn promote(
        &self,
        record: &CredentialRecord,
        previous_token_id: Option<String>,
        grace: Duration,
    ) -> Result<DateTime<Utc>, RotationError> {
        let rotation_id = record.rotation_id();
        let revoke_after = Utc::now() + grace;
        let promoted = self
            .store
            .promote(rotation_id, revoke_after)
            .instrument(info_span!("rotation.promote"))
            .await;
        if let Err(e) = promoted {
            if e.is_conflict() {
                // The store changed under us (an import, or a writer without check-and-set):
                // this token must not stay valid unrecorded.
                let reason = format!("promotion lost a check-and-set: {e}");
                self.discard_new_token(record, None, true, reason).await;
            } else {
                // Pending stays recorded; recovery promotes it once the store answers again.
                warn!(integration = %self.integration.name, %rotation_id, error = %e,
                      "promotion failed; the pending token stays recorded and the next run promotes it");
            }
            return Err(RotationError::Store {
                step: Step::Promote,
                source: e,
            });
        }
        self.emit(Event::TokenPromoted {
            rotation_id,
            token_id: record.id().to_string(),
            previous_token_id,
            revoke_after,
        });
        Ok(revoke_after)
    }

    /// Step 6. `current` is the store's current credential, for kinds that authorise the
    /// revocation with it (M2M).
    async fn revoke_previous(
        &self,
        previous: &PreviousToken,
        current: Option<&CredentialRecord>,
    ) -> Result<(), RotationError> {
        let token_id = &previous.token.id().to_string();
        let revoked = self
            .integration
            .kind()
            .revoke(self.context(), &previous.token, current)
            .instrument(info_span!("rotation.revoke", token = %short_id(token_id)))
            .await;
        match revoked {
            Ok(how) => {
                self.with_store_retries(|| self.store.mark_previous_revoked(token_id, Utc::now()))
                    .await
                    .map_err(|e| RotationError::Store {
                        step: Step::Revoke,
                        source: e,
                    })?;
                self.emit(Event::PreviousRevoked {
                    token_id: token_id.clone(),
                    already_invalid: how == Revoked::AlreadyInvalid,
                });
                Ok(())
            }
            Err(e) => {
                self.emit(Event::RevokeFailed {
                    token_id: token_id.clone(),
                    reason: e.to_string(),
                    transient: e.is_transient(),
                    not_confirmed: e.is_revoke_not_confirmed(),
                });
                Err(RotationError::NetSuite {
                    step: Step::Revoke,
                    source: e,
                })
            }
        }
    }

    /// Proves `record` works, the kind's way (`tokeninfo`, or a token exchange).
    async fn verify(&self, record: &CredentialRecord) -> Result<TokenInfo, RotationError> {
        self.integration.kind().verify(self.context(), record).await
    }

    /// What the kind's steps are given.
    fn context(&self) -> kind::Context<'_> {
        kind::Context {
            client: &self.client,
            integration: &self.integration,
        }
    }

    /// Issue failed: clear the intent (nothing known was issued) and report a possible orphan
    /// when the request may have been processed with its answer lost.
    async fn issue_failed(
        &self,
        rotation_id: Uuid,
        token_name: &str,
        error: IssueError,
    ) -> RotationError {
        let error = match error {
            IssueError::NetSuite(error) => error,
            IssueError::Refused(error) => {
                self.abandon_after_issue(rotation_id).await;
                return error;
            }
            IssueError::Unaccounted {
                error,
                credential_ids,
            } => {
                if credential_ids.is_empty() {
                    // Made, but which one cannot be told: named by the rotation.
                    self.emit(Event::OrphanSuspected {
                        rotation_id,
                        token_name: token_name.to_string(),
                        token_id: None,
                        reason: format!("NetSuite accepted it but its ID is unknown: {error}"),
                    });
                }
                for id in credential_ids {
                    self.emit(Event::OrphanSuspected {
                        rotation_id,
                        token_name: token_name.to_string(),
                        token_id: Some(id),
                        reason: format!("{error}"),
                    });
                }
                self.abandon_after_issue(rotation_id).await;
                return error;
            }
        };
        if error.may_have_issued() {
            self.emit(Event::OrphanSuspected {
                rotation_id,
                token_name: token_name.to_string(),
                token_id: None,
                reason: format!("NetSuite may have made it but the answer was lost: {error}"),
            });
        }
        if error.is_login_failure() && self.integration.tba().is_some() {
            self.latch_login(&error).await;
            self.emit(Event::LoginRefused {
                reason: error.to_string(),
            });
        }
        self.abandon_after_issue(rotation_id).await;
        RotationError::NetSuite {
            step: Step::Issue,
            source: error,
        }
    }

    /// Clears the intent of a rotation whose issue step failed; recovery does it if this
    /// cannot.
    async fn abandon_after_issue(&self, rotation_id: Uuid) {
        if let Err(e) = self.abandon(rotation_id).await {
            warn!(integration = %self.integration.name, %rotation_id, error = %e,
                  "could not clear the rotation's intent; recovery will");
        }
    }

    /// A new token failed staging, verification or promotion: revoke it and forget it. If
    /// NetSuite will not revoke it, it stays pending in the store (when `staged`) for a later
    /// run, or is named in an orphan report (when the store never got it). Returns whether
    /// NetSuite revoked it.
    async fn discard_new_token(
        &self,
        record: &CredentialRecord,
        current: Option<&CredentialRecord>,
        staged: bool,
        reason: String,
    ) -> bool {
        let rotation_id = record.rotation_id();
        let revoked = self
            .integration
            .kind()
            .revoke(self.context(), record, current)
            .instrument(info_span!("rotation.revoke_new", token = %short_id(record.id())))
            .await;
        match revoked {
            Ok(_) => {
                self.emit(Event::NewTokenRevoked {
                    rotation_id,
                    token_id: record.id().to_string(),
                    reason,
                });
                if let Err(e) = self.abandon(rotation_id).await {
                    warn!(integration = %self.integration.name, %rotation_id, error = %e,
                          "new token revoked but the store still lists it as pending; the next run clears it");
                }
                true
            }
            Err(e) => {
                self.emit(Event::RevokeFailed {
                    token_id: record.id().to_string(),
                    reason: format!("{reason}; revoking the new token failed too: {e}"),
                    transient: e.is_transient(),
                    not_confirmed: e.is_revoke_not_confirmed(),
                });
                if !staged {
                    self.emit(Event::OrphanSuspected {
                        rotation_id,
                        token_name: format!("{}-{rotation_id}", self.integration.token_name_prefix),
                        token_id: Some(record.id().to_string()),
                        reason: "a new token could be neither stored nor revoked".into(),
                    });
                    if let Err(e) = self.abandon(rotation_id).await {
                        warn!(integration = %self.integration.name, %rotation_id, error = %e,
                              "could not clear the rotation's intent; recovery will");
                    }
                }
                false
            }
        }
    }

    async fn abandon(&self, rotation_id: Uuid) -> Result<(), RotationError> {
        self.with_store_retries(|| self.store.abandon_rotation(rotation_id))
            .await
            .map_err(|e| RotationError::Store {
                step: Step::Recover,
                source: e,
            })
    }

    /// Refuses to log in when a refused login latched this login configuration, here (the
    /// store) or in another integration with the same login (the gate). A latch found only in
    /// the gate is copied into this store, so that it outlives the process.
    async fn refuse_if_latched(&self, state: &StoreState) -> Result<(), RotationError> {
        // Only an NLAuth login locks a user out; an M2M integration has none.
        let Some(tba) = self.integration.tba() else {
            return Ok(());
        };
        let (account, login) = (&self.integration.account, tba.login.as_ref());
        let holding = |latch: &LoginLatch| latch::holds_for(latch, account, login);
        let latch = match state.login_latch.as_ref().filter(|l| holding(l)) {
            Some(latch) => {
                tba.login_gate.set(&self.integration.name, latch.clone());
                latch.clone()
            }
            None => match tba.login_gate.latched().filter(holding) {
                Some(latch) => {
                    if let Err(e) = self.store.set_login_latch(Some(&latch)).await {
                        warn!(integration = %self.integration.name, error = %e,
                              "could not record the login latch in the store");
                    }
                    latch
                }
                None => return Ok(()),
            },
        };
        Err(RotationError::LoginLatched {
            integration: self.integration.name.to_string(),
            since: latch.at,
            reason: latch.reason,
        })
    }

    /// The latch in `state` that holds for this integration's login as configured now; a
    /// latch recorded for another login (the configuration changed since) does not.
    fn holding_latch<'s>(&self, state: &'s StoreState) -> Option<&'s LoginLatch> {
        let integration = &self.integration;
        let tba = integration.tba()?;
        state
            .login_latch
            .as_ref()
            .filter(|latch| latch::holds_for(latch, &integration.account, &tba.login))
    }

    /// Keeps the shared gate in step with what this integration's store says (see
    /// [`LoginGate::forget_if_from`]); the daemon calls it whenever it reads the store.
    pub fn observe_latch(&self, state: &StoreState) {
        let integration = &self.integration;
        let Some(tba) = integration.tba() else {
            return;
        };
        match &state.login_latch {
            None => tba.login_gate.forget_if_from(&integration.name),
            Some(latch) if latch::holds_for(latch, &integration.account, &tba.login) => {
                tba.login_gate.set(&integration.name, latch.clone())
            }
            Some(_) => {}
        }
    }

    /// NetSuite refused the login: latch it in the store and for every integration sharing it.
    async fn latch_login(&self, error: &NetSuiteError) {
        let integration = &self.integration;
        let Some(tba) = integration.tba() else {
            return;
        };
        let latch = latch::latch_for(&integration.account, &tba.login, Utc::now(), error);
        tba.login_gate.set(&integration.name, latch.clone());
        if let Err(e) = self
            .with_store_retries(|| self.store.set_login_latch(Some(&latch)))
            .await
        {
            // The gate still holds it in this process; a restart would try the login once more.
            tracing::error!(integration = %integration.name, error = %e,
                "could not record the login latch in the store; it holds only until this process stops");
        }
    }

    /// A login succeeded: the latch, if any, is lifted here and for the integrations sharing
    /// the login.
    async fn lift_latch(&self) {
        if let Some(tba) = self.integration.tba() {
            tba.login_gate.lift();
        }
        match self
            .with_store_retries(|| self.store.set_login_latch(None))
            .await
        {
            Ok(()) => {
                info!(integration = %self.integration.name, "login accepted; the lock-out latch is lifted")
            }
            Err(e) => warn!(integration = %self.integration.name, error = %e,
                "could not clear the login latch in the store; the next scheduled run will refuse to log in until `rotate --integration` clears it"),
        }
    }

    /// Retries a store write that would cost a token if it failed, for transient errors only.
    async fn with_store_retries<'a, F, Fut>(&'a self, mut op: F) -> Result<(), StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>> + 'a,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.kind.is_transient() && attempt < STORE_ATTEMPTS => {
                    warn!(integration = %self.integration.name, attempt, error = %e, "store write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A conflict at step 1 means another rotation holds the store.
    fn in_progress_or(&self, e: StoreError, step: Step, state: &StoreState) -> RotationError {
        match (&e.kind, &state.intent) {
            (crate::store::StoreErrorKind::Conflict, Some(intent)) => RotationError::InProgress {
                rotation_id: intent.rotation_id,
                started_at: intent.started_at,
                owner: intent.owner.clone(),
            },
            _ => RotationError::Store { step, source: e },
        }
    }

    /// Whether the previous token's grace window is over. With no grace window it always is,
    /// whatever the store kept: a store may round the revoke time up (AWS labels hold whole
    /// seconds), which would otherwise keep the token a moment longer and refuse the next run.
    fn is_due(&self, previous: &PreviousToken) -> bool {
        self.integration.revoke_after.is_zero() || previous.revoke_after <= Utc::now()
    }

    fn emit(&self, event: Event) {
        log_event(&self.integration.name, &event);
        self.events.event(&self.integration, &event);
    }
}

fn unrevoked(state: &StoreState) -> Option<&PreviousToken> {
    state.previous.as_ref().filter(|p| p.revoked_at.is_none())
}

/// Every event is logged at the level it deserves, with ids shortened and no secrets.
fn log_event(integration: &str, event: &Event) {
    use tracing::error;
    match event {
        Event::IntentRecorded {
            rotation_id,
            token_name,
        } => {
            info!(integration, %rotation_id, token_name, "rotation started")
        }
        Event::TokenIssued {
            rotation_id,
            token_id,
        } => {
            info!(integration, %rotation_id, token = %short_id(token_id), "token issued")
        }
        Event::TokenStaged { rotation_id } => {
            info!(integration, %rotation_id, "token staged as pending")
        }
        Event::TokenVerified {
            rotation_id,
            proof: "tokeninfo",
            info,
        } => info!(
            integration, %rotation_id, company = info.company_id.as_deref(),
            role = info.role_id.as_deref(), entity = info.entity_id.as_deref(),
            "token verified with tokeninfo"
        ),
        Event::TokenVerified {
            rotation_id, proof, ..
        } => info!(integration, %rotation_id, proof, "new credential verified"),
        Event::TokenPromoted {
            rotation_id,
            token_id,
            previous_token_id,
            revoke_after,
        } => info!(
            integration, %rotation_id, token = %short_id(token_id),
            previous = previous_token_id.as_deref().map(short_id), %revoke_after, "token promoted to current"
        ),
        Event::PreviousRevoked {
            token_id,
            already_invalid,
        } => {
            info!(integration, token = %short_id(token_id), already_invalid, "previous token revoked")
        }
        Event::RevokeNotDue {
            token_id,
            revoke_after,
        } => {
            info!(integration, token = %short_id(token_id), %revoke_after, "previous token not due for revocation yet")
        }
        Event::NewTokenRevoked {
            rotation_id,
            token_id,
            reason,
        } => warn!(
            integration, %rotation_id, token = %short_id(token_id), reason, "new token revoked; current token unchanged"
        ),
        Event::OrphanSuspected {
            rotation_id,
            token_name,
            token_id,
            reason,
        } => error!(
            integration, %rotation_id, token_name, token = token_id.as_deref().map(short_id), reason,
            "suspected orphan token: revoke it under Setup > Users/Roles > Access Tokens"
        ),
        Event::RevokeFailed {
            token_id,
            reason,
            transient,
            not_confirmed,
        } => {
            error!(integration, token = %short_id(token_id), reason, transient, not_confirmed, "revocation failed")
        }
        Event::RecoveryFound { rotation_id, what } => {
            warn!(integration, %rotation_id, what, "recovering an unfinished rotation")
        }
        Event::TokenImported { token_id, .. } => {
            info!(integration, token = %short_id(token_id), "token imported as current")
        }
        Event::LoginRefused { reason } => error!(
            integration,
            reason,
            "NLAuth login refused; not retrying: repeated failed logins lock the NetSuite user out"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_reads_as_a_sentence() {
        assert_eq!(Recovery::default().to_string(), "nothing to recover");
        let rotation_id = Uuid::nil();
        let recovery = Recovery {
            promoted: Some(rotation_id),
            previous_revoked: Some("previous-token-id-0123456789abcdef".into()),
            ..Recovery::default()
        };
        assert_eq!(
            recovery.to_string(),
            format!(
                "promoted the pending token of rotation {rotation_id}; revoked previous token {}",
                short_id("previous-token-id-0123456789abcdef")
            )
        );
        let orphan = Recovery {
            orphan_reported: Some("erp-sync-1234".into()),
            ..Recovery::default()
        };
        assert!(
            orphan
                .to_string()
                .starts_with("reported token erp-sync-1234 as a suspected orphan")
        );
    }

    /// What `log_event` writes for `events`, as text lines.
    fn logged(events: &[Event]) -> String {
        let log = crate::telemetry::CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for event in events {
                log_event("erp", event);
            }
        });
        log.text()
    }

    /// An optional field is its value or absent, never `Some("…")` or `None`.
    #[test]
    fn optional_log_fields_are_values_or_left_out() {
        let rotation_id = Uuid::nil();
        let text = logged(&[
            Event::TokenVerified {
                rotation_id,
                info: TokenInfo {
                    company_id: Some("123456_SB1".into()),
                    role_id: Some("1001".into()),
                    ..TokenInfo::default()
                },
                proof: "tokeninfo",
            },
            Event::TokenPromoted {
                rotation_id,
                token_id: "new-token-id-0123456789abcdef".into(),
                previous_token_id: None,
                revoke_after: Utc::now(),
            },
            Event::OrphanSuspected {
                rotation_id,
                token_name: "erp-x".into(),
                token_id: None,
                reason: "test".into(),
            },
            Event::OrphanSuspected {
                rotation_id,
                token_name: "erp-y".into(),
                token_id: Some("orphan-token-id-0123456789abcdef".into()),
                reason: "test".into(),
            },
        ]);
        assert!(!text.contains("Some("), "{text}");
        assert!(!text.contains("None"), "{text}");
        let verified = text.lines().find(|l| l.contains("token verified")).unwrap();
        assert!(
            verified.contains(r#"company="123456_SB1" role="1001""#),
            "{verified}"
        );
        assert!(!verified.contains("entity"), "{verified}");
        let promoted = text.lines().find(|l| l.contains("token promoted")).unwrap();
        assert!(!promoted.contains("previous="), "{promoted}");
        let orphan = text.lines().find(|l| l.contains("erp-y")).unwrap();
        assert!(
            orphan.contains(&format!(
                "token=\"{}\"",
                short_id("orphan-token-id-0123456789abcdef")
            )),
            "{orphan}"
        );
    }
}
