//! Revocation of the replaced credential once its grace window has passed.

use chrono::Utc;
use tracing::{Instrument, info_span};

use super::error::{RotationError, Step};
use super::events::Event;
use super::outcome::RevokeOutcome;
use super::{Engine, LOG_TARGET, unrevoked};
use crate::netsuite::Revoked;
use crate::secret::short_id;
use crate::store::{CredentialRecord, PreviousToken};

impl Engine {
    /// Step 6 on its own: revokes the previous token if its grace window has passed (or at once
    /// with `force`).
    pub async fn revoke_due(&self, force: bool) -> Result<RevokeOutcome, RotationError> {
        let _held = self.hold_store();
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

    /// Step 6. `current` is the store's current credential, for kinds that authorise the
    /// revocation with it (M2M).
    pub(super) async fn revoke_previous(
        &self,
        previous: &PreviousToken,
        current: Option<&CredentialRecord>,
    ) -> Result<(), RotationError> {
        let token_id = &previous.token.id().to_string();
        let revoked = self
            .integration
            .kind()
            .revoke(self.context(), &previous.token, current)
            .instrument(
                info_span!(target: LOG_TARGET, "rotation.revoke", token = %short_id(token_id)),
            )
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

    /// Whether the previous token's grace window is over. With no grace window it always is,
    /// whatever the store kept: a store may round the revoke time up (AWS labels hold whole
    /// seconds), which would otherwise keep the token a moment longer and refuse the next run.
    pub(super) fn is_due(&self, previous: &PreviousToken) -> bool {
        self.integration.revoke_after.is_zero() || previous.revoke_after <= Utc::now()
    }
}
