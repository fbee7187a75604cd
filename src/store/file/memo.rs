//! What the store's files held when this process last read or wrote them, kept between the
//! steps of one rotation (while the engine holds the store: [`super::SecretStore::hold`]) so
//! that a step does not parse again what the step before it read or wrote.
//!
//! Every step still reads all three files under the lock. The memo is used only when those
//! bytes are exactly the bytes it remembers, so a write by another process (or a crash, or a
//! hand edit) is always seen; what is skipped is parsing bytes already parsed: about 90 K
//! instructions of JSON, timestamps and checksums per step (docs/performance.md, change 20).
//! It holds what `read` makes of the files before [`Snapshot::repair_interrupted_promotion`],
//! which is applied to it as to a parse, so a hit returns what a parse would have.
//! Debug builds parse the files on every hit anyway and panic if the two differ, so the test
//! suite checks the memo against the files at every step it runs.

use super::{Bookkeeping, CredentialRecord, Slot, Snapshot, Wiped};

/// The three files' bytes (`None`: no such file) and what they parse to.
pub(super) struct Memo {
    reader: Option<Wiped>,
    slots: [Option<Wiped>; 2],
    /// The reader file's record.
    current: Option<CredentialRecord>,
    /// The newest whole slot's state, which slot it is and its sequence.
    state: Bookkeeping,
    newest: Option<Slot>,
    sequence: u64,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("newest", &self.newest)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

impl Memo {
    /// Remembers `parsed`, a snapshot as parsed from these bytes and not yet repaired.
    pub(super) fn new(reader: Option<Wiped>, slots: [Option<Wiped>; 2], parsed: &Snapshot) -> Memo {
        Memo {
            reader,
            slots,
            current: parsed.current.clone(),
            state: parsed.state.clone(),
            newest: parsed.newest,
            sequence: parsed.sequence,
        }
    }

    /// What the files parse to, not yet repaired, if they hold exactly the remembered bytes.
    pub(super) fn recall(
        &self,
        reader: Option<&[u8]>,
        slots: [Option<&[u8]>; 2],
    ) -> Option<Snapshot> {
        let same = |remembered: &Option<Wiped>, read: Option<&[u8]>| {
            remembered.as_deref().map(Vec::as_slice) == read
        };
        if !(same(&self.reader, reader)
            && same(&self.slots[0], slots[0])
            && same(&self.slots[1], slots[1]))
        {
            return None;
        }
        Some(Snapshot {
            current: self.current.clone(),
            state: self.state.clone(),
            newest: self.newest,
            sequence: self.sequence,
            dirty: false,
        })
    }

    /// `slot` now holds `bytes`, the whole version `sequence` of `state`; `other_created`:
    /// the other slot was just made, empty.
    pub(super) fn wrote_slot(
        &mut self,
        slot: Slot,
        bytes: Wiped,
        sequence: u64,
        state: &Bookkeeping,
        other_created: bool,
    ) {
        self.slots[slot.index()] = Some(bytes);
        if other_created && self.slots[slot.other().index()].is_none() {
            self.slots[slot.other().index()] = Some(Wiped(Vec::new()));
        }
        self.state = state.clone();
        self.newest = Some(slot);
        self.sequence = sequence;
    }

    /// The reader file now holds `bytes`, the record `current`.
    pub(super) fn wrote_reader(&mut self, bytes: Wiped, current: &CredentialRecord) {
        self.reader = Some(bytes);
        self.current = Some(current.clone());
    }
}
