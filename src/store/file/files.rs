//! The files of one store (the reader file, the two state slots, the lock) and how they are
//! opened, locked, read and written: modes tightened, writes synced where crash safety needs it.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::fault::parse_json;
use super::memo::Memo;
use super::{CredentialRecord, StoreErrorKind, StoreState};
use crate::store::file::{
    Bookkeeping, CREATED_DIR_MODE, Fault, FormatOnly, GROUP_OTHER_BITS, LEGACY_STATE_FORMAT,
    LegacyStateFile, SECRET_FILE_MODE, SERIALISE_CAPACITY, SHA256_STATE_FORMAT, STATE_FORMAT, Slot,
    SlotBytes, SlotContent, SlotDocument, Snapshot, Wiped, check_slot_document, overwrite_slot,
    probe_sequence, without_padding,
};

/// What reading does about a secret file that group or others may read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Looseness {
    /// `load` changes nothing on disk.
    Warn,
    /// Writing operations fix the mode at once.
    Tighten,
}

/// The paths of one store; clones share the path (each blocking operation takes one). An
/// operation's `Files` may also carry the store's [`Memo`].
#[derive(Debug)]
pub(super) struct Files {
    /// The reader-facing file; the others are named after it, beside it. Only this path is
    /// kept, in one allocation: a daemon holds thousands of stores for weeks, and the rest are
    /// cheap to derive.
    pub(super) reader: Arc<Path>,
    /// What this operation's reads and writes left, when `remember`.
    pub(super) memo: Option<Box<Memo>>,
    /// Whether a read that misses the memo makes one (the engine holds the store).
    pub(super) remember: bool,
}

impl Clone for Files {
    /// The path only: a memo belongs to one operation at a time.
    fn clone(&self) -> Files {
        Files {
            reader: self.reader.clone(),
            memo: None,
            remember: false,
        }
    }
}

impl Files {
    pub(super) fn new(reader: &Path) -> Files {
        Files {
            reader: Arc::from(reader),
            memo: None,
            remember: false,
        }
    }

    pub(super) fn slot_path(&self, slot: Slot) -> PathBuf {
        with_suffix(&self.reader, slot.suffix())
    }

    pub(super) fn lock_path(&self) -> PathBuf {
        with_suffix(&self.reader, ".lock")
    }

    pub(super) fn dir(&self) -> &Path {
        match self.reader.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        }
    }

    /// Locks the store for a writing operation, creating the directory and lock file if needed.
    /// The lock is released when the returned file is closed.
    pub(super) fn lock_creating(&self) -> Result<File, Fault> {
        // The directory exists after the first write: try the lock file first, so that a
        // rotation's writes do not each pay for a `mkdir` that fails.
        let file = match self.open_lock_file() {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(CREATED_DIR_MODE)
                    .create(self.dir())
                    .map_err(|err| Fault::io("creating directory", self.dir(), &err))?;
                self.open_lock_file()
            }
            opened => opened,
        }
        .map_err(|err| Fault::io("opening lock file", &self.lock_path(), &err))?;
        Self::lock(file, &self.lock_path())
    }

    /// Locks the store for `load`; `None` if its directory does not exist, so that there is
    /// nothing to read and nothing is created.
    pub(super) fn lock_existing(&self) -> Result<Option<File>, Fault> {
        match self.open_lock_file() {
            Ok(file) => Self::lock(file, &self.lock_path()).map(Some),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Fault::io("opening lock file", &self.lock_path(), &err)),
        }
    }

    pub(super) fn open_lock_file(&self) -> io::Result<File> {
        open_or_create(&self.lock_path())
    }

    /// Blocks until this process holds the exclusive lock.
    pub(super) fn lock(file: File, path: &Path) -> Result<File, Fault> {
        file.lock()
            .map_err(|err| Fault::io("locking", path, &err))?;
        Ok(file)
    }

    /// Reads the three files and makes of them what [`Self::parse`] does, from the memo when
    /// they hold exactly the bytes it remembers.
    pub(super) fn read(&mut self, looseness: Looseness) -> Result<Snapshot, Fault> {
        let reader = self.read_bytes(&self.reader, looseness)?;
        let first = self.read_bytes(&self.slot_path(Slot::First), looseness)?;
        let second = self.read_bytes(&self.slot_path(Slot::Second), looseness)?;
        let (reader_bytes, slot_bytes) = (as_read(&reader), [as_read(&first), as_read(&second)]);
        let recalled = self
            .memo
            .as_ref()
            .and_then(|memo| memo.recall(reader_bytes, slot_bytes));
        let mut snapshot = match recalled {
            Some(snapshot) => {
                #[cfg(debug_assertions)]
                self.check_recalled(&snapshot, reader_bytes, slot_bytes);
                snapshot
            }
            None => {
                let parsed = self.parse_unrepaired(reader_bytes, slot_bytes)?;
                self.memo = self
                    .remember
                    .then(|| Box::new(Memo::new(reader, [first, second], &parsed)));
                parsed
            }
        };
        snapshot.repair_interrupted_promotion();
        Ok(snapshot)
    }

    /// Debug builds: a memo's snapshot is what parsing the same bytes gives (see memo.rs).
    #[cfg(debug_assertions)]
    fn check_recalled(
        &self,
        recalled: &Snapshot,
        reader: Option<&[u8]>,
        slots: [Option<&[u8]>; 2],
    ) {
        let parsed = self
            .parse_unrepaired(reader, slots)
            .unwrap_or_else(|fault| {
                panic!("bytes the memo holds no longer parse: {}", fault.detail)
            });
        assert!(
            parsed.same_as(recalled),
            "the file store's memo of {} differs from what its files parse to",
            self.reader.display()
        );
    }

    /// Parses the reader file's and the two state slots' bytes (`None`: the file does not
    /// exist), picks the newest whole version of the state and repairs an interrupted
    /// promotion. Touches no file.
    pub(super) fn parse(
        &self,
        reader: Option<&[u8]>,
        slots: [Option<&[u8]>; 2],
    ) -> Result<Snapshot, Fault> {
        let mut snapshot = self.parse_unrepaired(reader, slots)?;
        snapshot.repair_interrupted_promotion();
        Ok(snapshot)
    }

    /// [`Self::parse`] before the repair of an interrupted promotion.
    fn parse_unrepaired(
        &self,
        reader: Option<&[u8]>,
        slots: [Option<&[u8]>; 2],
    ) -> Result<Snapshot, Fault> {
        let current = reader
            .map(|bytes| parse_json::<CredentialRecord>(&self.reader, bytes))
            .transpose()?;
        let [first, second] = slots;
        let mut slots = [
            (Slot::First, self.parse_slot(Slot::First, first)?),
            (Slot::Second, self.parse_slot(Slot::Second, second)?),
        ];
        // The higher sequence first; on a tie (never written so), the first slot.
        slots.sort_by_key(|(_, content)| std::cmp::Reverse(content.sequence()));
        let mut torn = None;
        let mut newest = None;
        for (slot, content) in slots {
            // The older slot is left unparsed and unchecked once the newer one holds a whole
            // version.
            let content = match content {
                SlotContent::Probed { bytes, .. } if newest.is_none() => {
                    self.parse_slot_bytes(slot, bytes)?
                }
                content => content,
            };
            let content = match content {
                SlotContent::Unchecked(document) if newest.is_none() => {
                    check_slot_document(&self.slot_path(slot), &document)
                }
                content => content,
            };
            match content {
                SlotContent::Version {
                    sequence,
                    bookkeeping,
                } if newest.is_none() => newest = Some((slot, sequence, bookkeeping)),
                SlotContent::Torn(fault) if torn.is_none() => torn = Some(fault),
                _ => {}
            }
        }
        let (newest, sequence, state) = match (newest, torn) {
            (Some((slot, sequence, bookkeeping)), torn) => {
                if let Some(fault) = torn {
                    tracing::warn!(
                        detail = %fault.detail,
                        "a state slot holds no whole version and is passed over; the other \
                         slot is used, and the next write replaces this one"
                    );
                }
                (Some(slot), sequence, *bookkeeping)
            }
            // No whole version: a torn slot is damage, not an interrupted write (slots are
            // created whole), and a person has to look at it.
            (None, Some(fault)) => return Err(fault),
            (None, None) => (None, 0, Bookkeeping::default()),
        };
        Ok(Snapshot {
            current,
            state,
            newest,
            sequence,
            dirty: false,
        })
    }

    /// Reads one state slot. A format this program does not know is an error, not a torn slot:
    /// a newer version of it wrote the store, and reading around that could lose a token.
    pub(super) fn parse_slot<'a>(
        &self,
        slot: Slot,
        bytes: Option<&'a [u8]>,
    ) -> Result<SlotContent<'a>, Fault> {
        let Some(bytes) = bytes.filter(|bytes| !bytes.is_empty()) else {
            return Ok(SlotContent::Empty);
        };
        // serde_json would step through the padding a byte at a time.
        let bytes = without_padding(bytes);
        match probe_sequence(bytes) {
            Some(sequence) => Ok(SlotContent::Probed { sequence, bytes }),
            None => self.parse_slot_bytes(slot, bytes),
        }
    }

    /// [`Self::parse_slot`] past the probe: `bytes` without their padding.
    pub(super) fn parse_slot_bytes<'a>(
        &self,
        slot: Slot,
        bytes: &'a [u8],
    ) -> Result<SlotContent<'a>, Fault> {
        // Nearly always a slot this program wrote, parsed once here. Anything else is read
        // again below for its format, and a damaged slot of this format a third time for the
        // error: rare, so kept simple.
        if let Ok(document) = serde_json::from_slice::<SlotDocument>(bytes)
            && SlotDocument::is_checked_format(document.format)
        {
            return Ok(SlotContent::Unchecked(document));
        }
        let path = self.slot_path(slot);
        let format = match serde_json::from_slice::<FormatOnly>(bytes) {
            Ok(probe) => probe.format,
            Err(err) => return Ok(SlotContent::Torn(Fault::unreadable_json(&path, &err))),
        };
        match format {
            STATE_FORMAT | SHA256_STATE_FORMAT => {
                Ok(match serde_json::from_slice::<SlotDocument>(bytes) {
                    Ok(document) => SlotContent::Unchecked(document),
                    Err(err) => SlotContent::Torn(Fault::unreadable_json(&path, &err)),
                })
            }
            LEGACY_STATE_FORMAT if slot == Slot::Second => Ok(SlotContent::Empty),
            LEGACY_STATE_FORMAT => match parse_json::<LegacyStateFile>(&path, bytes) {
                Ok(legacy) => Ok(SlotContent::Version {
                    sequence: 0,
                    bookkeeping: Box::new(Bookkeeping {
                        intent: legacy.intent,
                        pending: legacy.pending,
                        previous: legacy.previous,
                        login_latch: None,
                    }),
                }),
                Err(fault) => Ok(SlotContent::Torn(fault)),
            },
            other => Err(Fault {
                kind: StoreErrorKind::Invalid,
                detail: format!(
                    "{} has format {other}, this program reads formats \
                     {LEGACY_STATE_FORMAT} to {STATE_FORMAT}",
                    path.display(),
                ),
            }),
        }
    }

    /// Reads `path`; `None` if it does not exist.
    pub(super) fn read_bytes(
        &self,
        path: &Path,
        looseness: Looseness,
    ) -> Result<Option<Wiped>, Fault> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Fault::io("opening", path, &err)),
        };
        let metadata = file
            .metadata()
            .map_err(|err| Fault::io("reading metadata of", path, &err))?;
        if metadata.permissions().mode() & GROUP_OTHER_BITS != 0 {
            match looseness {
                Looseness::Warn => tracing::warn!(
                    path = %path.display(),
                    "secret file is readable by group or others; the next write makes it 0600"
                ),
                Looseness::Tighten => file
                    .set_permissions(Permissions::from_mode(SECRET_FILE_MODE))
                    .map_err(|err| Fault::io("restricting permissions of", path, &err))?,
            }
        }
        // Sized up front so the buffer holding secrets is not reallocated (leaving copies), and
        // read with plain reads: `read_to_end` would ask for the metadata and position again.
        let mut bytes = Wiped(vec![0; metadata.len() as usize + 1]);
        let mut filled = 0;
        loop {
            match file.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Fault::io("reading", path, &err)),
            }
            if filled == bytes.len() {
                // It grew since its metadata was read (someone else wrote it without the lock).
                file.read_to_end(&mut bytes)
                    .map_err(|err| Fault::io("reading", path, &err))?;
                filled = bytes.len();
                break;
            }
        }
        bytes.truncate(filled);
        Ok(Some(bytes))
    }

    pub(super) fn save_state_if_dirty(&mut self, snapshot: &mut Snapshot) -> Result<(), Fault> {
        if snapshot.dirty {
            self.write_state(snapshot)
        } else {
            Ok(())
        }
    }

    /// Writes `snapshot.state` as the next version, into the slot that does not hold the newest
    /// one (see the module doc), and makes that slot the newest.
    pub(super) fn write_state(&mut self, snapshot: &mut Snapshot) -> Result<(), Fault> {
        let slot = snapshot.newest.map_or(Slot::First, Slot::other);
        let sequence = snapshot.sequence + 1;
        let path = self.slot_path(slot);
        let content = SlotBytes::new(&path, sequence, &snapshot.state)?;
        let (written, created) = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => {
                let length = overwrite_slot(&file, &path, &content)?;
                // Only a memo needs the slot's bytes whole.
                (
                    self.memo.is_some().then(|| content.padded_to(length)),
                    false,
                )
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let bytes = content.padded(None);
                self.create_slot(slot, &bytes)?;
                (Some(bytes), true)
            }
            Err(err) => return Err(Fault::io("opening", &path, &err)),
        };
        if let (Some(memo), Some(bytes)) = (&mut self.memo, written) {
            memo.wrote_slot(slot, bytes, sequence, &snapshot.state, created);
        }
        snapshot.newest = Some(slot);
        snapshot.sequence = sequence;
        snapshot.dirty = false;
        Ok(())
    }

    /// Creates `slot` holding `bytes`, whole (a fresh temp file renamed into place), and the
    /// other slot empty if it is missing, so that the next write finds it and needs no
    /// directory fsync.
    pub(super) fn create_slot(&self, slot: Slot, bytes: &[u8]) -> Result<(), Fault> {
        self.write_whole(&self.slot_path(slot), bytes, false)?;
        let other = self.slot_path(slot.other());
        open_or_create(&other).map_err(|err| Fault::io("creating", &other, &err))?;
        self.sync_dir()
    }

    /// Replaces the reader file atomically through a fresh temp file (see the module doc).
    pub(super) fn write_reader(&mut self, token: &CredentialRecord) -> Result<(), Fault> {
        let bytes = to_json(&self.reader, token)?;
        self.write_whole(&self.reader, &bytes, true)?;
        if let Some(memo) = &mut self.memo {
            memo.wrote_reader(bytes, token);
        }
        Ok(())
    }

    /// Puts `bytes` at `target` atomically: a fresh temp file, fsynced, renamed over it; then
    /// the directory is fsynced if `sync_dir`.
    pub(super) fn write_whole(
        &self,
        target: &Path,
        bytes: &[u8],
        sync_dir: bool,
    ) -> Result<(), Fault> {
        let prefix = format!(
            ".{}.",
            target
                .file_name()
                .map(|name| name.to_string_lossy())
                .unwrap_or_default()
        );
        let mut temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .permissions(Permissions::from_mode(SECRET_FILE_MODE))
            .tempfile_in(self.dir())
            .map_err(|err| Fault::io("creating a temp file in", self.dir(), &err))?;
        // The umask may have narrowed the create mode; make it exact before the secret goes in.
        temp.as_file()
            .set_permissions(Permissions::from_mode(SECRET_FILE_MODE))
            .map_err(|err| Fault::io("setting permissions of", temp.path(), &err))?;
        temp.write_all(bytes)
            .map_err(|err| Fault::io("writing", temp.path(), &err))?;
        temp.as_file()
            .sync_all()
            .map_err(|err| Fault::io("syncing", temp.path(), &err))?;
        temp.persist(target)
            .map_err(|err| Fault::io("renaming a temp file over", target, &err.error))?;
        if sync_dir {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Makes the renames in the directory durable.
    pub(super) fn sync_dir(&self) -> Result<(), Fault> {
        File::open(self.dir())
            .and_then(|dir| dir.sync_all())
            .map_err(|err| Fault::io("syncing directory", self.dir(), &err))
    }
}

/// `value` as the JSON a store file holds (indented, for the reader file), in a buffer wiped
/// when dropped.
pub(super) fn to_json<T: Serialize>(target: &Path, value: &T) -> Result<Wiped, Fault> {
    let mut bytes = Wiped(Vec::with_capacity(SERIALISE_CAPACITY));
    serde_json::to_writer_pretty(&mut *bytes, value)
        .map_err(|err| Fault::serialise(target, &err))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Opens a store file for writing, creating it (mode 0600) only if it is missing: opening with
/// `O_CREAT` takes the directory's lock exclusively even when the file exists, and thousands of
/// stores in one directory then queue on it.
pub(super) fn open_or_create(path: &Path) -> io::Result<File> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(SECRET_FILE_MODE)
            .open(path),
        opened => opened,
    }
}

/// What `load` makes of a reader file and two state slots with these contents (`None`: no
/// such file), without touching the file system: for [`super::parse_entry`]. The error is the detail
/// `load` would report.
pub(crate) fn parse_files(
    reader: Option<&[u8]>,
    slots: [Option<&[u8]>; 2],
) -> Result<StoreState, String> {
    Files::new(Path::new("token.json"))
        .parse(reader, slots)
        .map(Snapshot::into_store_state)
        .map_err(|fault| fault.detail)
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A file's bytes as read (`None`: no such file), borrowed.
fn as_read(bytes: &Option<Wiped>) -> Option<&[u8]> {
    bytes.as_deref().map(Vec::as_slice)
}
