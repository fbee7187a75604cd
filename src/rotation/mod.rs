//! The rotation engine: the six-step protocol of `design.md`, recovery of rotations left half
//! done, revocation of replaced tokens, `import` and `verify`.
//!
//! One [`Engine`] serves one integration. It talks to NetSuite through the client and to the
//! store only through the [`SecretStore`] trait, so every backend gets the same protocol:
//!
//! 1. intent  — the store records rotation `R` (check-and-set: one rotation at a time);
//! 2. issue   — `issuetoken` with NLAuth; the token is named `<prefix>-<R>`;
//! 3. stage   — the new token goes into the store as pending (revoked at once if this fails);
//! 4. verify  — `tokeninfo` with the new token must match the expectations (else revoke it);
//! 5. promote — pending becomes current, the old current becomes previous with a revoke time;
//! 6. revoke  — once its grace window has passed, the previous token is revoked.
//!
//! The rule behind every error path: no token NetSuite issued for us is left valid without the
//! store knowing it (or an orphan alert naming it), and the store's current token is only ever
//! replaced by one that passed `tokeninfo`.

pub mod events;
mod failpoint;
pub mod latch;
mod owner;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::netsuite::{
    AccountId, Endpoint, NetSuiteClient, NetSuiteError, NlauthLogin, Revoked, TbaCredentials,
    TokenInfo,
};
use crate::secret::{SecretString, short_id};
use crate::store::{
    Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreState, TokenRecord,
};

pub use events::{Event, EventSink, NoEvents};
pub use failpoint::ENV as FAILPOINT_ENV;
pub use latch::LoginGate;

/// Everything the engine needs to know about one integration, secrets resolved. What several
/// integrations have in common (account, endpoint, login, expectations) is shared between
/// them (see `config::Resolver`): a daemon holds thousands of these for weeks.
#[derive(Debug)]
pub struct Integration {
    pub name: Arc<str>,
    pub account: AccountId,
    pub endpoint: Endpoint,
    pub consumer_key: SecretString,
    pub consumer_secret: SecretString,
    pub login: Arc<NlauthLogin>,
    /// The lock-out latch of `login`, shared by every integration resolved from the same login
    /// section (see `latch`).
    pub login_gate: Arc<LoginGate>,
    pub expect: Arc<Expectations>,
    /// Grace window between promotion and revocation of the replaced token.
    pub revoke_after: Duration,
    pub token_name_prefix: Arc<str>,
    /// Whether the consumer pair is written into the store beside the token.
    pub store_consumer_credentials: bool,
}

/// What `tokeninfo` must report for a token to be promoted (or imported). `None` = not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Expectations {
    pub company_id: Option<String>,
    pub role_id: Option<String>,
    pub entity_id: Option<String>,
    /// The company id was not written in `[integrations.expect]` but implied by the account
    /// id: checked when `tokeninfo` reports it, not missed when it does not (the answer's key
    /// names are unpublished, and the config asked for nothing).
    pub company_id_implied: bool,
    /// The same for the role id, implied by the login role.
    pub role_id_implied: bool,
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
                    token_id: short_id(&previous.token.token_id),
                    revoke_after: previous.revoke_after,
                });
            }
            self.revoke_previous(previous).await?;
        }
        if !options.explicit {
            self.refuse_if_latched(&state).await?;
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
        let issued = match self
            .client
            .issue_token(
                &self.integration.endpoint,
                &self.integration.account,
                &self.integration.login,
                &self.integration.consumer_key,
                &token_name,
            )
            .instrument(info_span!("rotation.issue"))
            .await
        {
            Ok(issued) => issued,
            Err(e) => return Err(self.issue_failed(rotation_id, &token_name, e).await),
        };
        self.emit(Event::TokenIssued {
            rotation_id,
            token_id: issued.token_id.clone(),
        });
        if state.login_latch.is_some() || self.integration.login_gate.latched().is_some() {
            self.lift_latch().await;
        }
        failpoint::hit("after-issue");

        // 3. stage
        let record = self.record_for(rotation_id, issued.token_id, issued.token_secret);
        let staged = self
            .with_store_retries(|| self.store.stage_pending(&record))
            .instrument(info_span!("rotation.stage"))
            .await;
        if let Err(e) = staged {
            let reason = format!("staging failed: {e}");
            self.discard_new_token(&record, false, reason).await;
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
            Ok(info) => self.emit(Event::TokenVerified { rotation_id, info }),
            Err(e) => {
                self.discard_new_token(&record, true, format!("verification failed: {e}"))
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
        let previous_token_id = state.current.as_ref().map(|c| c.token_id.clone());
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
                    token_id: replaced.token_id,
                    at: revoke_after,
                }
            }
            // Due by the configured window, so revoked now: the token this promotion replaced,
            // as read before it (the store holds it as the previous token; not read again, and
            // not checked against the store's revoke time, which a store may keep rounded up
            // a moment into the future: AWS labels hold whole seconds).
            Some(replaced) => {
                let token_id = replaced.token_id.clone();
                let previous = PreviousToken {
                    token: replaced,
                    revoke_after,
                    revoked_at: None,
                };
                match self.revoke_previous(&previous).await {
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
            token_id: record.token_id,
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
                rotation_id: pending.rotation_id,
                token_name: String::new(),
                started_at: pending.issued_at,
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
            self.revoke_previous(previous).await?;
            recovery.previous_revoked = Some(previous.token.token_id.clone());
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
            .filter(|p| p.rotation_id == rotation_id);
        let already_current = state
            .current
            .as_ref()
            .is_some_and(|c| c.rotation_id == rotation_id);
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
                self.emit(Event::OrphanSuspected {
                    rotation_id,
                    token_name: intent.token_name.clone(),
                    token_id: None,
                    reason: "the process stopped after recording the rotation and before staging its token; NetSuite may hold a token by this name".into(),
                });
                recovery.orphan_reported = Some(intent.token_name.clone());
                self.abandon(rotation_id).await?;
            }
            Some(pending) => {
                self.emit(Event::RecoveryFound {
                    rotation_id,
                    what: format!("pending token {} not promoted", short_id(&pending.token_id)),
                });
                match self.verify(pending).await {
                    Ok(info) => {
                        self.emit(Event::TokenVerified { rotation_id, info });
                        let replaced = state
                            .current
                            .as_ref()
                            .filter(|c| c.rotation_id != rotation_id)
                            .map(|c| c.token_id.clone());
                        self.promote(pending, replaced, self.integration.revoke_after)
                            .await?;
                        recovery.promoted = Some(rotation_id);
                    }
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        let reason = format!("verification failed during recovery: {e}");
                        if !self.discard_new_token(pending, true, reason).await {
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

    /// What [`rotate`](Engine::rotate) would do with the store in `state`, decided by the rules
    /// `rotate` follows (whose rotation is abandoned, when a grace window is over); nothing is
    /// called or written. Where the outcome hangs on NetSuite's answer, the plan assumes the
    /// usual one: a staged token that recovery finds passes tokeninfo.
    pub fn plan(&self, state: &StoreState) -> Plan {
        let now = Utc::now();
        // As recovery does: a pending token without an intent is an unfinished rotation too.
        let unfinished = state.intent.clone().or_else(|| {
            state.pending.as_ref().map(|pending| Intent {
                rotation_id: pending.rotation_id,
                token_name: String::new(),
                started_at: pending.issued_at,
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
            .is_some_and(|p| p.rotation_id == intent.rotation_id);
        let replaced = state
            .current
            .as_ref()
            .filter(|c| staged && c.rotation_id != intent.rotation_id);
        let then = match replaced {
            // Promoting the staged token starts the grace window of the token it replaces.
            Some(current) if !self.integration.revoke_after.is_zero() => {
                Err(RotationError::PreviousInGrace {
                    token_id: short_id(&current.token_id),
                    revoke_after: now + self.integration.revoke_after,
                })
            }
            Some(current) => Ok(Planned::RevokeThenRotate {
                previous_token_id: current.token_id.clone(),
                current_token_id: state.pending.as_ref().map(|p| p.token_id.clone()),
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
        let current_token_id = state.current.as_ref().map(|c| c.token_id.clone());
        if let Some(previous) = unrevoked(state) {
            if !self.is_due(previous) {
                return Err(RotationError::PreviousInGrace {
                    token_id: short_id(&previous.token.token_id),
                    revoke_after: previous.revoke_after,
                });
            }
            return Ok(Planned::RevokeThenRotate {
                previous_token_id: previous.token.token_id.clone(),
                current_token_id,
            });
        }
        Ok(match current_token_id {
            Some(current_token_id) => Planned::Rotate { current_token_id },
            None => Planned::Bootstrap,
        })
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
                token_id: previous.token.token_id.clone(),
                revoke_after: previous.revoke_after,
            });
            return Ok(RevokeOutcome::NotDue {
                token_id: previous.token.token_id.clone(),
                revoke_after: previous.revoke_after,
            });
        }
        self.revoke_previous(previous).await?;
        Ok(RevokeOutcome::Revoked {
            token_id: previous.token.token_id.clone(),
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
                    token_id: short_id(&current.token_id),
                    source: Box::new(source),
                })
            }
            other => other,
        }
    }

    /// Puts a hand-made token in as current after `tokeninfo` accepted it; the next rotation
    /// replaces it and revokes it after the grace window.
    pub async fn import(
        &self,
        token_id: String,
        token_secret: SecretString,
    ) -> Result<(), RotationError> {
        let state = self.load().await?;
        if state.current.is_some() || state.intent.is_some() || state.pending.is_some() {
            return Err(RotationError::StoreNotEmpty);
        }
        let record = self.record_for(Uuid::new_v4(), token_id, token_secret);
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
            token_id: record.token_id.clone(),
            info,
        });
        Ok(())
    }

    /// Reads the store's state.
    pub async fn load(&self) -> Result<StoreState, RotationError> {
        self.store.load().await.map_err(|e| RotationError::Store {
            step: Step::Load,
            source: e,
        })
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
        record: &TokenRecord,
        previous_token_id: Option<String>,
        grace: Duration,
    ) -> Result<DateTime<Utc>, RotationError> {
        let rotation_id = record.rotation_id;
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
                self.discard_new_token(record, true, reason).await;
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
            token_id: record.token_id.clone(),
            previous_token_id,
            revoke_after,
        });
        Ok(revoke_after)
    }

    async fn revoke_previous(&self, previous: &PreviousToken) -> Result<(), RotationError> {
        let token_id = &previous.token.token_id;
        let creds = self.credentials_for(&previous.token);
        let revoked = self
            .client
            .revoke_token(
                &self.integration.endpoint,
                &self.integration.account,
                &creds,
            )
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

    /// `tokeninfo` signed with `record`'s token, checked against the expectations.
    async fn verify(&self, record: &TokenRecord) -> Result<TokenInfo, RotationError> {
        let info = self
            .client
            .token_info(
                &self.integration.endpoint,
                &self.integration.account,
                &self.credentials_for(record),
            )
            .await
            .map_err(|e| RotationError::NetSuite {
                step: Step::Verify,
                source: e,
            })?;
        check_expectations(&self.integration.expect, &info)?;
        Ok(info)
    }

    /// Issue failed: clear the intent (nothing known was issued) and report a possible orphan
    /// when the request may have been processed with its answer lost.
    async fn issue_failed(
        &self,
        rotation_id: Uuid,
        token_name: &str,
        error: NetSuiteError,
    ) -> RotationError {
        if error.may_have_issued() {
            self.emit(Event::OrphanSuspected {
                rotation_id,
                token_name: token_name.to_string(),
                token_id: None,
                reason: format!("issuetoken may have succeeded but its answer was lost: {error}"),
            });
        }
        if error.is_login_failure() {
            self.latch_login(&error).await;
            self.emit(Event::LoginRefused {
                reason: error.to_string(),
            });
        }
        if let Err(e) = self.abandon(rotation_id).await {
            warn!(integration = %self.integration.name, %rotation_id, error = %e,
                  "could not clear the rotation's intent; recovery will");
        }
        RotationError::NetSuite {
            step: Step::Issue,
            source: error,
        }
    }

    /// A new token failed staging, verification or promotion: revoke it and forget it. If
    /// NetSuite will not revoke it, it stays pending in the store (when `staged`) for a later
    /// run, or is named in an orphan report (when the store never got it). Returns whether
    /// NetSuite revoked it.
    async fn discard_new_token(&self, record: &TokenRecord, staged: bool, reason: String) -> bool {
        let rotation_id = record.rotation_id;
        let creds = self.credentials_for(record);
        let revoked = self
            .client
            .revoke_token(
                &self.integration.endpoint,
                &self.integration.account,
                &creds,
            )
            .instrument(info_span!("rotation.revoke_new", token = %short_id(&record.token_id)))
            .await;
        match revoked {
            Ok(_) => {
                self.emit(Event::NewTokenRevoked {
                    rotation_id,
                    token_id: record.token_id.clone(),
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
                    token_id: record.token_id.clone(),
                    reason: format!("{reason}; revoking the new token failed too: {e}"),
                    transient: e.is_transient(),
                    not_confirmed: e.is_revoke_not_confirmed(),
                });
                if !staged {
                    self.emit(Event::OrphanSuspected {
                        rotation_id,
                        token_name: format!("{}-{rotation_id}", self.integration.token_name_prefix),
                        token_id: Some(record.token_id.clone()),
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
        let (account, login) = (&self.integration.account, self.integration.login.as_ref());
        let holding = |latch: &LoginLatch| latch::holds_for(latch, account, login);
        let latch = match state.login_latch.as_ref().filter(|l| holding(l)) {
            Some(latch) => {
                let gate = &self.integration.login_gate;
                gate.set(&self.integration.name, latch.clone());
                latch.clone()
            }
            None => match self.integration.login_gate.latched().filter(holding) {
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
        state
            .login_latch
            .as_ref()
            .filter(|latch| latch::holds_for(latch, &integration.account, &integration.login))
    }

    /// Keeps the shared gate in step with what this integration's store says (see
    /// [`LoginGate::forget_if_from`]); the daemon calls it whenever it reads the store.
    pub fn observe_latch(&self, state: &StoreState) {
        let integration = &self.integration;
        match &state.login_latch {
            None => integration.login_gate.forget_if_from(&integration.name),
            Some(latch) if latch::holds_for(latch, &integration.account, &integration.login) => {
                integration.login_gate.set(&integration.name, latch.clone())
            }
            Some(_) => {}
        }
    }

    /// NetSuite refused the login: latch it in the store and for every integration sharing it.
    async fn latch_login(&self, error: &NetSuiteError) {
        let integration = &self.integration;
        let latch = latch::latch_for(&integration.account, &integration.login, Utc::now(), error);
        integration.login_gate.set(&integration.name, latch.clone());
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
        self.integration.login_gate.lift();
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

    fn record_for(
        &self,
        rotation_id: Uuid,
        token_id: String,
        token_secret: SecretString,
    ) -> TokenRecord {
        let integration = &self.integration;
        let consumer = integration.store_consumer_credentials;
        TokenRecord {
            account_id: integration.account.realm().to_string(),
            realm: integration.account.realm().to_string(),
            consumer_key: consumer.then(|| integration.consumer_key.clone()),
            consumer_secret: consumer.then(|| integration.consumer_secret.clone()),
            token_id,
            token_secret,
            issued_at: Utc::now(),
            rotation_id,
        }
    }

    /// The consumer pair stored with a token, else the configured one.
    fn credentials_for(&self, record: &TokenRecord) -> TbaCredentials {
        TbaCredentials {
            consumer_key: record
                .consumer_key
                .clone()
                .unwrap_or_else(|| self.integration.consumer_key.clone()),
            consumer_secret: record
                .consumer_secret
                .clone()
                .unwrap_or_else(|| self.integration.consumer_secret.clone()),
            token_id: record.token_id.clone(),
            token_secret: record.token_secret.clone(),
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

/// Compares `tokeninfo`'s answer with the expectations. Account ids compare in their canonical
/// form (`123456-sb1` is `123456_SB1`); other ids exactly. An expected field the answer does
/// not carry is [`RotationError::ExpectedFieldMissing`], not a mismatch.
fn check_expectations(expect: &Expectations, info: &TokenInfo) -> Result<(), RotationError> {
    let canonical = |s: &str| s.trim().replace('-', "_").to_ascii_uppercase();
    let keys = &crate::netsuite::TOKEN_INFO_KEYS;
    let checks = [
        ExpectedField {
            field: "companyId",
            what: "company (account) id",
            config_key: "company_id",
            keys: keys.company_id,
            is_account: true,
        },
        ExpectedField {
            field: "roleId",
            what: "role id",
            config_key: "role_id",
            keys: keys.role_id,
            is_account: false,
        },
        ExpectedField {
            field: "entityId",
            what: "entity id",
            config_key: "entity_id",
            keys: keys.entity_id,
            is_account: false,
        },
    ];
    let values = [
        (
            &expect.company_id,
            &info.company_id,
            expect.company_id_implied,
        ),
        (&expect.role_id, &info.role_id, expect.role_id_implied),
        (&expect.entity_id, &info.entity_id, false),
    ];
    for (check, (expected, actual, implied)) in checks.iter().zip(values) {
        let Some(expected) = expected else { continue };
        let Some(actual) = actual else {
            if implied {
                continue;
            }
            return Err(RotationError::ExpectedFieldMissing {
                what: check.what,
                config_key: check.config_key,
                keys: check.keys.join(", "),
            });
        };
        let same = if check.is_account {
            canonical(expected) == canonical(actual)
        } else {
            expected.trim() == actual.trim()
        };
        if !same {
            return Err(RotationError::Mismatch {
                field: check.field,
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    Ok(())
}

/// One field `[integrations.expect]` can check, and how to talk about it.
struct ExpectedField {
    /// The field's name in `tokeninfo` (its documented spelling).
    field: &'static str,
    what: &'static str,
    config_key: &'static str,
    keys: &'static [&'static str],
    is_account: bool,
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
        Event::TokenVerified { rotation_id, info } => info!(
            integration, %rotation_id, company = info.company_id.as_deref(),
            role = info.role_id.as_deref(), entity = info.entity_id.as_deref(),
            "token verified with tokeninfo"
        ),
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

    fn info(company: &str, role: &str) -> TokenInfo {
        TokenInfo {
            company_id: Some(company.into()),
            role_id: Some(role.into()),
            entity_id: Some("42".into()),
            ..TokenInfo::default()
        }
    }

    #[test]
    fn account_ids_compare_in_canonical_form() {
        let expect = Expectations {
            company_id: Some("123456_SB1".into()),
            role_id: Some("1001".into()),
            entity_id: None,
            ..Expectations::default()
        };
        assert!(check_expectations(&expect, &info("123456-sb1", "1001")).is_ok());
        let err = check_expectations(&expect, &info("123456_SB1", "3")).unwrap_err();
        assert!(err.to_string().contains("roleId"), "{err}");
        let err = check_expectations(&expect, &info("999", "1001")).unwrap_err();
        assert!(err.to_string().contains("companyId"), "{err}");
    }

    #[test]
    fn a_missing_expected_field_says_so_instead_of_a_mismatch() {
        let expect = Expectations {
            entity_id: Some("42".into()),
            ..Expectations::default()
        };
        let err = check_expectations(&expect, &TokenInfo::default()).unwrap_err();
        assert!(
            matches!(
                err,
                RotationError::ExpectedFieldMissing {
                    config_key: "entity_id",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("verify: tokeninfo did not report the entity id"),
            "{message}"
        );
        assert!(message.contains("remove `expect.entity_id`"), "{message}");
        assert!(message.contains("entityId, entity"), "{message}");
        // A field that is there but different is still a mismatch.
        let mut other = info("123456_SB1", "1001");
        other.entity_id = Some("7".into());
        let err = check_expectations(&expect, &other).unwrap_err();
        assert!(matches!(err, RotationError::Mismatch { .. }), "{err:?}");
        let mut right = info("123456_SB1", "1001");
        right.entity_id = Some("42".into());
        assert!(check_expectations(&expect, &right).is_ok());
    }

    /// The company and role checks the config implies (from the account id and the login
    /// role) hold when tokeninfo reports the fields and are not missed when it does not;
    /// written in `[integrations.expect]`, a missing field fails.
    #[test]
    fn implied_expectations_are_not_missed_but_written_ones_are() {
        let mut expect = Expectations {
            company_id: Some("123456_SB1".into()),
            role_id: Some("1001".into()),
            entity_id: None,
            company_id_implied: true,
            role_id_implied: true,
        };
        assert!(check_expectations(&expect, &TokenInfo::default()).is_ok());
        assert!(matches!(
            check_expectations(&expect, &info("123456_SB1", "3")),
            Err(RotationError::Mismatch {
                field: "roleId",
                ..
            })
        ));
        expect.company_id_implied = false;
        let err = check_expectations(&expect, &TokenInfo::default()).unwrap_err();
        assert!(
            err.to_string().contains("remove `expect.company_id`"),
            "{err}"
        );
    }
}
