//! Every rotation event as a log line, at the level it deserves, with ids shortened and no
//! secrets.

use tracing::{info, warn};

use super::LOG_TARGET;
use super::events::Event;
use crate::secret::short_id;

/// Every event is logged at the level it deserves, with ids shortened and no secrets.
pub(super) fn log_event(integration: &str, event: &Event) {
    use tracing::error;
    match event {
        Event::IntentRecorded {
            rotation_id,
            token_name,
        } => {
            info!(target: LOG_TARGET, integration, %rotation_id, token_name, "rotation started")
        }
        Event::TokenIssued {
            rotation_id,
            token_id,
        } => {
            info!(target: LOG_TARGET, integration, %rotation_id, token = %short_id(token_id), "token issued")
        }
        Event::TokenStaged { rotation_id } => {
            info!(target: LOG_TARGET, integration, %rotation_id, "token staged as pending")
        }
        Event::TokenVerified {
            rotation_id,
            proof: "tokeninfo",
            info,
        } => info!(target: LOG_TARGET,
            integration, %rotation_id, company = info.company_id.as_deref(),
            role = info.role_id.as_deref(), entity = info.entity_id.as_deref(),
            "token verified with tokeninfo"
        ),
        Event::TokenVerified {
            rotation_id, proof, ..
        } => info!(target: LOG_TARGET, integration, %rotation_id, proof, "new credential verified"),
        Event::TokenPromoted {
            rotation_id,
            token_id,
            previous_token_id,
            revoke_after,
        } => info!(target: LOG_TARGET,
            integration, %rotation_id, token = %short_id(token_id),
            previous = previous_token_id.as_deref().map(short_id), %revoke_after, "token promoted to current"
        ),
        Event::PreviousRevoked {
            token_id,
            already_invalid,
        } => {
            info!(target: LOG_TARGET, integration, token = %short_id(token_id), already_invalid, "previous token revoked")
        }
        Event::RevokeNotDue {
            token_id,
            revoke_after,
        } => {
            info!(target: LOG_TARGET, integration, token = %short_id(token_id), %revoke_after, "previous token not due for revocation yet")
        }
        Event::NewTokenRevoked {
            rotation_id,
            token_id,
            reason,
        } => warn!(target: LOG_TARGET,
            integration, %rotation_id, token = %short_id(token_id), reason, "new token revoked; current token unchanged"
        ),
        Event::OrphanSuspected {
            rotation_id,
            token_name,
            token_id,
            reason,
        } => error!(target: LOG_TARGET,
            integration, %rotation_id, token_name, token = token_id.as_deref().map(short_id), reason,
            "suspected orphan token: revoke it under Setup > Users/Roles > Access Tokens"
        ),
        Event::RevokeFailed {
            token_id,
            reason,
            transient,
            not_confirmed,
        } => {
            error!(target: LOG_TARGET, integration, token = %short_id(token_id), reason, transient, not_confirmed, "revocation failed")
        }
        Event::RecoveryFound { rotation_id, what } => {
            warn!(target: LOG_TARGET, integration, %rotation_id, what, "recovering an unfinished rotation")
        }
        Event::TokenImported { token_id, .. } => {
            info!(target: LOG_TARGET, integration, token = %short_id(token_id), "token imported as current")
        }
        Event::LoginRefused { reason } => error!(target: LOG_TARGET,
            integration,
            reason,
            "NLAuth login refused; not retrying: repeated failed logins lock the NetSuite user out"
        ),
    }
}
