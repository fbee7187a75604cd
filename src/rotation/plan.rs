//! What `rotate` would do now, without calling NetSuite or writing the store (`--dry-run`).

use chrono::Utc;

use super::error::RotationError;
use super::outcome::{Plan, Planned};
use super::{Engine, owner, unrevoked};
use crate::secret::short_id;
use crate::store::{Intent, StoreState};

impl Engine {
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
    pub(super) fn plan_rotation(&self, state: &StoreState) -> Result<Planned, RotationError> {
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
}
