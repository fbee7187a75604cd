//! What the engine's operations report: a rotation and its previous credential's fate, a
//! recovery, a revocation, a plan.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::RotationError;
use crate::secret::short_id;
use crate::store::Intent;

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
