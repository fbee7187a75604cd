//! Both files as read under the lock, with a crash in the middle of `promote` repaired.

use uuid::Uuid;

use super::{CredentialRecord, StoreState};
use crate::store::file::{Bookkeeping, Slot};

/// Both files as read under the lock, with a crash in the middle of `promote` repaired.
#[derive(Debug)]
pub(super) struct Snapshot {
    pub(super) current: Option<CredentialRecord>,
    pub(super) state: Bookkeeping,
    /// The slot holding the newest version, and its sequence (0 for none or a legacy file).
    pub(super) newest: Option<Slot>,
    pub(super) sequence: u64,
    /// `state` differs from the newest version on disk: a write must persist it.
    pub(super) dirty: bool,
}

impl Snapshot {
    /// Debug builds: whether `other` holds the same records, state, slot and sequence (for the
    /// memo's check in `Files::read`).
    #[cfg(debug_assertions)]
    pub(super) fn same_as(&self, other: &Snapshot) -> bool {
        let json = |snapshot: &Snapshot| {
            serde_json::to_vec(&(&snapshot.current, &snapshot.state))
                .expect("records and state serialise")
        };
        self.newest == other.newest
            && self.sequence == other.sequence
            && self.dirty == other.dirty
            && json(self) == json(other)
    }

    pub(super) fn into_store_state(self) -> StoreState {
        StoreState {
            current: self.current,
            previous: self.state.previous,
            intent: self.state.intent,
            pending: self.state.pending,
            login_latch: self.state.login_latch,
        }
    }

    /// Reads the crash states `promote` can leave (see the module doc) as what they mean.
    pub(super) fn repair_interrupted_promotion(&mut self) {
        let Some(current) = &self.current else {
            return;
        };
        // Step 2 done, step 3 not: the pending token is already current.
        if self
            .state
            .pending
            .as_ref()
            .is_some_and(|pending| pending.rotation_id() == current.rotation_id())
        {
            self.state.pending = None;
            self.dirty = true;
        }
        // A finished rotation has nothing left in progress.
        if self
            .state
            .intent
            .as_ref()
            .is_some_and(|intent| intent.rotation_id == current.rotation_id())
        {
            self.state.intent = None;
            self.dirty = true;
        }
        // Step 1 done, step 2 not: the promotion has not happened yet.
        if self
            .state
            .previous
            .as_ref()
            .is_some_and(|previous| previous.token.id() == current.id())
        {
            self.state.previous = None;
            self.dirty = true;
        }
    }

    /// The rotations that intent and pending say are in progress (normally one, or none).
    pub(super) fn rotations_in_progress(&self) -> impl Iterator<Item = Uuid> {
        let intent = self.state.intent.as_ref().map(|i| i.rotation_id);
        let pending = self.state.pending.as_ref().map(|p| p.rotation_id());
        [intent, pending].into_iter().flatten()
    }
}
