//! Which engine events and rotation failures deserve an alert, and of which kind. Texts come
//! from the Display of our event and error types (secret-free by design), never from Debug.

use crate::netsuite::OAuthReason;
use crate::rotation::{Event, RotationError};
use crate::secret::short_id;

use super::{Alert, AlertKind};

/// Where a suspected orphan is revoked by hand.
const REVOKE_BY_HAND: &str = "revoke it under Setup > Users/Roles > Access Tokens (a TBA token) \
     or with the integration record's OAuth 2.0 Client Credentials (M2M) Setup (an M2M \
     certificate)";

/// The alert an engine event calls for, if any: a suspected orphan, a refused login, or a
/// revocation that failed for good (a transient one is retried by the next run).
pub fn alert_for_event(integration: &str, account: &str, event: &Event) -> Option<Alert> {
    match event {
        Event::OrphanSuspected {
            rotation_id,
            token_name,
            token_id,
            reason,
        } => {
            let token = match token_id {
                Some(id) => format!("{token_name} (token id {})", short_id(id)),
                None => token_name.clone(),
            };
            let alert = Alert::new(
                AlertKind::OrphanSuspected,
                integration,
                account,
                format!(
                    "A token NetSuite may have issued is not in the store: {token}; if it \
                     exists, {REVOKE_BY_HAND}"
                ),
            )
            .with_detail("rotation_id", rotation_id.to_string())
            .with_detail("token_name", token_name)
            .with_detail("reason", reason)
            .with_detail(
                "action",
                format!(
                    "In NetSuite, find the access token named {token_name} and {REVOKE_BY_HAND}"
                ),
            );
            Some(match token_id {
                Some(id) => alert.with_detail("token_id", short_id(id)),
                None => alert,
            })
        }
        Event::LoginRefused { reason } => Some(login_refused(integration, account, reason)),
        Event::RevokeFailed {
            token_id,
            reason,
            transient,
            not_confirmed,
        } => {
            let token = short_id(token_id);
            let summary = if *not_confirmed {
                // A page answered: alerted at once, though retried like a transient failure.
                format!(
                    "revoketoken answered with a page, not NetSuite's answer: revoking token \
                     {token} is not confirmed, so it is treated as still valid and retried; \
                     check for a maintenance window or a proxy in between"
                )
            } else if !transient {
                format!(
                    "Token {token} could not be revoked and stays valid; the next run retries, \
                     or revoke it by hand"
                )
            } else {
                return None;
            };
            Some(
                Alert::new(AlertKind::RevokeOverdue, integration, account, summary)
                    .with_detail("token_id", token)
                    .with_detail("reason", reason),
            )
        }
        _ => None,
    }
}

/// The alert for a rotation (or recovery, revocation, verification) that failed.
pub fn alert_for_failure(integration: &str, account: &str, error: &RotationError) -> Alert {
    let message = error.to_string();
    let alert = match error {
        RotationError::Mismatch {
            field,
            expected,
            actual,
        } => Alert::new(
            AlertKind::TokenInfoMismatch,
            integration,
            account,
            format!(
                "tokeninfo reports {field} {actual:?} for the new token, expected {expected:?}; \
                 the new token was revoked and the current one is unchanged"
            ),
        )
        .with_detail("field", *field)
        .with_detail("expected", expected)
        .with_detail("actual", actual),
        RotationError::NetSuite { step, source }
            if source.oauth_reason() == Some(&OAuthReason::TimestampRefused) =>
        {
            Alert::new(
                AlertKind::ClockSkew,
                integration,
                account,
                "NetSuite refused the OAuth timestamp: this machine's clock is more than 5 \
                 minutes off; fix time sync (NTP), retrying will not help",
            )
            .with_detail("step", step.to_string())
        }
        RotationError::NetSuite { step, source } if source.is_login_failure() => {
            login_refused(integration, account, &message).with_detail("step", step.to_string())
        }
        RotationError::LoginLatched { .. } => login_refused(integration, account, &message),
        RotationError::CertificateExpired {
            certificate_id,
            not_after,
            ..
        } => Alert::new(
            AlertKind::CertificateExpired,
            integration,
            account,
            format!(
                "The current certificate {certificate_id} of {integration} expired at \
                 {not_after}: NetSuite refuses its assertions and no rotation can replace it. \
                 Readers using it fail; an administrator must upload a new certificate and \
                 import it"
            ),
        )
        .with_detail("certificate_id", certificate_id)
        .with_detail("not_after", not_after.to_rfc3339())
        .with_detail("action", message.clone()),
        RotationError::NetSuite { step, .. } | RotationError::Store { step, .. } => Alert::new(
            AlertKind::RotationFailed,
            integration,
            account,
            format!("Rotation of {integration} failed: {message}"),
        )
        .with_detail("step", step.to_string()),
        _ => Alert::new(
            AlertKind::RotationFailed,
            integration,
            account,
            format!("Rotation of {integration} failed: {message}"),
        ),
    };
    alert
        .with_detail("error", &message)
        .with_detail("transient", error.is_transient().to_string())
}

fn login_refused(integration: &str, account: &str, reason: &str) -> Alert {
    Alert::new(
        AlertKind::LoginRefused,
        integration,
        account,
        format!(
            "NetSuite refused the NLAuth login of {integration}; latched: no login is tried \
             again (each failed login counts toward locking the user out) until its login \
             configuration changes and is reloaded, or an operator runs `rotate --integration \
             {integration}`. The current token stays in use"
        ),
    )
    .with_detail(
        "action",
        "fix the login (email, password, role, TOTP secret) in the configuration or its secret \
         source, then reload the daemon (SIGHUP or restart): a changed login lifts the latch. \
         Or run `rotate --integration` once the login is known to work. See the runbook",
    )
    .with_detail("reason", reason)
}

/// The alert for a store the daemon cannot read or write, with how to recover.
pub fn alert_for_store_problem(
    integration: &str,
    account: &str,
    error: &crate::store::StoreError,
) -> Alert {
    Alert::new(
        AlertKind::StoreUnreadable,
        integration,
        account,
        format!(
            "The daemon cannot use the store of {integration} ({}): {}",
            error.store, error.kind
        ),
    )
    .with_detail("error", error.to_string())
    .with_detail("action", error.hint(integration))
}
