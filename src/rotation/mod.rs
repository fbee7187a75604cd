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

mod error;
pub mod events;
mod failpoint;
mod import;
mod integration;
pub mod kind;
pub mod latch;
mod latch_steps;
mod log;
mod outcome;
mod owner;
mod plan;
mod recover;
mod revoke;
mod rotate;

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::netsuite::NetSuiteClient;
use crate::secret::short_id;
use crate::store::{PreviousToken, SecretStore, StoreError, StoreState};

pub use error::{RotationError, Step};
pub use events::{Event, EventSink, NoEvents};
pub use failpoint::ENV as FAILPOINT_ENV;
pub use integration::{Credential, Integration};
pub use kind::m2m::M2m;
pub use kind::tba::{Expectations, Tba};
pub use kind::{CredentialKind, IssueError};
pub use latch::LoginGate;
use log::log_event;
pub use outcome::{Plan, Planned, PreviousFate, Recovery, RevokeOutcome, RotateOptions, Rotated};

/// The target of the engine's log lines and spans, the same from every file of this module
/// (log filters and searches name it, e.g. `RUST_LOG=netsuite_token_rotator::rotation=debug`).
const LOG_TARGET: &str = "netsuite_token_rotator::rotation";

/// Runs the protocol for one integration.
pub struct Engine {
    integration: Arc<Integration>,
    client: NetSuiteClient,
    store: Arc<dyn SecretStore>,
    events: Arc<dyn EventSink>,
    /// Names this engine in the intents it writes (see `owner`).
    owner: owner::Owner,
}

/// Releases a [`SecretStore::hold`] when dropped, however the steps ended.
struct StoreHold<'a>(&'a dyn SecretStore);

impl Drop for StoreHold<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
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

    /// Holds the store for a run of steps ([`SecretStore::hold`]) until the guard is dropped.
    fn hold_store(&self) -> StoreHold<'_> {
        self.store.hold();
        StoreHold(self.store.as_ref())
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

    /// What the kind's steps are given.
    fn context(&self) -> kind::Context<'_> {
        kind::Context {
            client: &self.client,
            name: &self.integration.name,
            account: &self.integration.account,
            endpoint: &self.integration.endpoint,
            store_consumer_credentials: self.integration.store_consumer_credentials,
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

    fn emit(&self, event: Event) {
        log_event(&self.integration.name, &event);
        self.events.event(&self.integration, &event);
    }
}

pub(super) fn unrevoked(state: &StoreState) -> Option<&PreviousToken> {
    state.previous.as_ref().filter(|p| p.revoked_at.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netsuite::TokenInfo;
    use chrono::Utc;
    use uuid::Uuid;

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
