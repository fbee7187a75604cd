//! One rotation, step by step: intent, issue, stage, verify, promote, and the revocation of
//! what it replaced when that is due; what is undone when a step fails, so that nothing
//! NetSuite made is left valid and unknown.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{Instrument, info_span, warn};
use uuid::Uuid;

use super::error::{RotationError, Step};
use super::events::Event;
use super::kind::IssueError;
use super::outcome::{PreviousFate, RotateOptions, Rotated};
use super::{Engine, LOG_TARGET, failpoint, unrevoked};
use crate::netsuite::TokenInfo;
use crate::secret::short_id;
use crate::store::{CredentialRecord, Intent, PreviousToken};

impl Engine {
    /// One whole rotation, as the schedule asks for it (see [`Engine::rotate_with`]).
    pub async fn rotate(&self) -> Result<Rotated, RotationError> {
        self.rotate_with(RotateOptions::default()).await
    }

    /// One whole rotation: recovery first, then the due revocation, then steps 1 to 5, then
    /// step 6 at once when the grace window is zero (or `options.revoke_now`).
    pub async fn rotate_with(&self, options: RotateOptions) -> Result<Rotated, RotationError> {
        let span = info_span!(target: LOG_TARGET,
            "rotation",
            integration = %self.integration.name,
            netsuite.account = %self.integration.account,
            rotation.id = tracing::field::Empty,
            rotation.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        );
        let _held = self.hold_store();
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

    pub(super) async fn rotate_inner(
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
            .instrument(info_span!(target: LOG_TARGET, "rotation.check_writable"))
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
            .instrument(info_span!(target: LOG_TARGET, "rotation.intent"))
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
            .instrument(info_span!(target: LOG_TARGET, "rotation.issue"))
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
            .instrument(info_span!(target: LOG_TARGET, "rotation.stage"))
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
            .instrument(info_span!(target: LOG_TARGET, "rotation.verify"))
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

    /// Step 5. `previous_token_id` is the current token being replaced, as the caller read it
    /// (it only names the token in the event; the store decides what becomes previous).
    pub(super) async fn promote(
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
            .instrument(info_span!(target: LOG_TARGET, "rotation.promote"))
            .await;
        if let Err(e) = promoted {
            if e.is_conflict() {
                // The store changed under us (an import, or a writer without check-and-set):
                // this token must not stay valid unrecorded.
                let reason = format!("promotion lost a check-and-set: {e}");
                self.discard_new_token(record, None, true, reason).await;
            } else {
                // Pending stays recorded; recovery promotes it once the store answers again.
                warn!(target: LOG_TARGET, integration = %self.integration.name, %rotation_id, error = %e,
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

    /// Proves `record` works, the kind's way (`tokeninfo`, or a token exchange).
    pub(super) async fn verify(
        &self,
        record: &CredentialRecord,
    ) -> Result<TokenInfo, RotationError> {
        self.integration.kind().verify(self.context(), record).await
    }

    /// Issue failed: clear the intent (nothing known was issued) and report a possible orphan
    /// when the request may have been processed with its answer lost.
    pub(super) async fn issue_failed(
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
    pub(super) async fn abandon_after_issue(&self, rotation_id: Uuid) {
        if let Err(e) = self.abandon(rotation_id).await {
            warn!(target: LOG_TARGET, integration = %self.integration.name, %rotation_id, error = %e,
                  "could not clear the rotation's intent; recovery will");
        }
    }

    /// A new token failed staging, verification or promotion: revoke it and forget it. If
    /// NetSuite will not revoke it, it stays pending in the store (when `staged`) for a later
    /// run, or is named in an orphan report (when the store never got it). Returns whether
    /// NetSuite revoked it.
    pub(super) async fn discard_new_token(
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
            .instrument(info_span!(target: LOG_TARGET, "rotation.revoke_new", token = %short_id(record.id())))
            .await;
        match revoked {
            Ok(_) => {
                self.emit(Event::NewTokenRevoked {
                    rotation_id,
                    token_id: record.id().to_string(),
                    reason,
                });
                if let Err(e) = self.abandon(rotation_id).await {
                    warn!(target: LOG_TARGET, integration = %self.integration.name, %rotation_id, error = %e,
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
                        warn!(target: LOG_TARGET, integration = %self.integration.name, %rotation_id, error = %e,
                              "could not clear the rotation's intent; recovery will");
                    }
                }
                false
            }
        }
    }

    pub(super) async fn abandon(&self, rotation_id: Uuid) -> Result<(), RotationError> {
        self.with_store_retries(|| self.store.abandon_rotation(rotation_id))
            .await
            .map_err(|e| RotationError::Store {
                step: Step::Recover,
                source: e,
            })
    }
}
