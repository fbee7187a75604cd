//! Recovery of a rotation a stopped process left half done: a staged credential that verifies
//! is promoted, one that does not is revoked, and one never staged is reported as a suspected
//! orphan by name.

use chrono::Utc;
use tracing::{Instrument, info_span};

use super::error::RotationError;
use super::events::Event;
use super::outcome::Recovery;
use super::{Engine, LOG_TARGET, owner, unrevoked};
use crate::secret::short_id;
use crate::store::{Intent, StoreState};

impl Engine {
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
    /// Not a hold of the store by itself (see `Engine::hold_store`): with nothing to recover,
    /// which is nearly always, it reads the store once, and the daemon's start-up runs it for
    /// every integration at once, whose memos would all be made for nothing.
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
                .instrument(info_span!(target: LOG_TARGET, "rotation.recover", rotation.id = %intent.rotation_id))
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

    pub(super) async fn recover_rotation(
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
    pub(super) async fn report_unstaged(&self, intent: &Intent, state: &StoreState) -> bool {
        let rotation_id = intent.rotation_id;
        let listed = match (self.integration.m2m(), &state.current) {
            (Some(m2m), Some(current)) => {
                let mut known = vec![current.id()];
                known.extend(state.previous.as_ref().map(|p| p.token.id()));
                Some(
                    m2m.unknown_since(self.context(), current, &known, intent.started_at)
                        .instrument(info_span!(target: LOG_TARGET, "rotation.find_orphans"))
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
}
