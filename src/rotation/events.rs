//! What the rotation engine reports as it goes: one [`Event`] per step taken or problem found.
//!
//! The engine logs every event through `tracing` itself; an [`EventSink`] is for whoever else
//! wants them (the demo prints them for people, the daemon turns some into alerts). Events carry
//! token ids (shortened when displayed) and names, never secret values.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::netsuite::TokenInfo;
use crate::rotation::Integration;

/// One step or finding of a rotation, recovery, revocation or import.
#[derive(Clone, Debug)]
pub enum Event {
    /// Step 1: the store recorded that rotation `rotation_id` started.
    IntentRecorded {
        rotation_id: Uuid,
        token_name: String,
    },
    /// Step 2: NetSuite issued a token.
    TokenIssued { rotation_id: Uuid, token_id: String },
    /// Step 3: the new token is in the store as pending.
    TokenStaged { rotation_id: Uuid },
    /// Step 4: `tokeninfo` accepted the new token and matched the expectations, or (M2M) a
    /// token exchange with the new certificate succeeded.
    TokenVerified {
        rotation_id: Uuid,
        info: TokenInfo,
        /// How: `tokeninfo` or `a token exchange`.
        proof: &'static str,
    },
    /// Step 5: the new token is current; the old one (if any) waits for its revocation.
    TokenPromoted {
        rotation_id: Uuid,
        token_id: String,
        previous_token_id: Option<String>,
        revoke_after: DateTime<Utc>,
    },
    /// Step 6: the previous token is revoked (or NetSuite already did not accept it).
    PreviousRevoked {
        token_id: String,
        already_invalid: bool,
    },
    /// Step 6 not yet: the previous token stays valid until its grace window ends.
    RevokeNotDue {
        token_id: String,
        revoke_after: DateTime<Utc>,
    },
    /// A new token failed staging or verification and was revoked; current is unchanged.
    NewTokenRevoked {
        rotation_id: Uuid,
        token_id: String,
        reason: String,
    },
    /// A token may exist in NetSuite that no store knows: revoke it by hand by this name.
    OrphanSuspected {
        rotation_id: Uuid,
        token_name: String,
        token_id: Option<String>,
        reason: String,
    },
    /// Revoking a token failed; it stays recorded so a later run tries again.
    RevokeFailed {
        token_id: String,
        reason: String,
        transient: bool,
        /// `revoketoken` answered 2xx with a page or fault instead of NetSuite's answer: the
        /// token may well still be valid. Retried like a transient failure, and alerted.
        not_confirmed: bool,
    },
    /// Recovery found a rotation left half done by a process that stopped.
    RecoveryFound { rotation_id: Uuid, what: String },
    /// A hand-made token was verified and imported as current.
    TokenImported { token_id: String, info: TokenInfo },
    /// The NLAuth login was refused: no retry until someone fixes it.
    LoginRefused { reason: String },
}

impl Event {
    /// Events that need a person: the daemon sends these to the alert channels.
    pub fn needs_attention(&self) -> bool {
        matches!(
            self,
            Event::OrphanSuspected { .. } | Event::RevokeFailed { .. } | Event::LoginRefused { .. }
        )
    }
}

/// Receives the engine's events for one integration (its name and account, for alerts).
pub trait EventSink: Send + Sync {
    fn event(&self, integration: &Integration, event: &Event);
}

/// A sink that drops everything (the engine still logs).
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _integration: &Integration, _event: &Event) {}
}
