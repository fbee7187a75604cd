//! File store: the current token in one JSON file that applications read, and the rotation's
//! bookkeeping in a state file beside it. The embedded default for `demo` and for trying the tool
//! without infrastructure.
//!
//! Layout, for `path = /var/lib/rotator/erp.json`:
//! - `erp.json`: exactly the reader-facing [`CredentialRecord`] of the current token, nothing else.
//!   Absent until the first promote or import.
//! - `erp.json.state.json` and `erp.json.state.swap`: two slots for the rotation's bookkeeping
//!   (intent, pending and previous, which carry token secrets, so they get the same protection
//!   as the reader file). Each holds `{"format":3,"sequence":N,"crc32":..,"state":{..}}`; the
//!   valid one with the higher sequence is the state, the other the version before it. Slots
//!   of format 2 (a `sha256` where format 3 has its `crc32`), written by earlier versions, are
//!   still read; the next write replaces them slot by slot. The checksum only tells a whole
//!   slot from a torn one (see [`slot_crc32`]).
//! - `erp.json.lock`: empty. Every operation, `load` included, holds an exclusive `flock` on it
//!   for its whole read-check-write, so processes (and several [`FileStore`] values in one
//!   process) take turns; that is what makes the check-and-set operations exact. It is never
//!   deleted: a deleted and re-created lock file would let two processes lock different inodes.
//!
//! The reader file is replaced atomically: the whole new file is written beside it with mode
//! 0600 before any byte, fsynced, renamed over it, and the directory fsynced, so a reader sees
//! the old file or the new one, never a mix, and an application may keep the old one open.
//!
//! The state, which only this store reads (under the lock), is written in place into the slot
//! that does not hold the newest version, padded with spaces so that its length does not change
//! from one version to the next, then `fdatasync`ed: no inode is made or freed, no name changes,
//! and the file system has only data to flush, where a rename would cost two fsyncs and a
//! journal commit per write (see `docs/performance.md`). A crash in the middle of that write
//! leaves the slot torn; its checksum then fails, and `read` uses the other slot, which still
//! holds the version before the unfinished write. A slot file is created only once, whole,
//! through a temp file and a rename. A state file of format 1 (one file, replaced by rename,
//! from earlier versions) is read as the oldest version, and the first write goes to the other
//! slot. A missing parent directory is created with mode 0700. A writing operation also tightens
//! an existing file that is readable by group or others (left so by hand); `load` only warns
//! about it.
//!
//! Crash consistency. Only `promote` changes both files, in this order:
//! 1. state file: `previous` := the old current (with its `revoke_after`); intent and pending stay;
//! 2. reader file := the pending token;
//! 3. state file: intent and pending are dropped.
//!
//! A crash after 1 leaves a previous whose token id is the current's. The promotion has not
//! happened (readers still read that token), so that previous is read as absent; before step 1
//! it was absent or revoked, so nothing that needs revoking is lost, and a repeated `promote`
//! does the promotion again. A crash after 2 leaves a pending token whose rotation is the
//! current's: the promotion has happened, so pending and its intent are read as absent. `load`
//! only reads and reports the repaired state; the next writing operation persists it. Every
//! other operation writes a single file, whole or (a torn slot) not at all.
//!
//! Step 3 is therefore not written by `promote` at all: the state after step 2 already reads
//! as the promoted one, and the next writing operation (the revocation's
//! `mark_previous_revoked`, at once with a zero grace window, or the next rotation's intent)
//! persists the repair with its own write. That saves a write and its `fdatasync` per rotation;
//! until then the newest slot keeps the promoted token as `pending`, a copy of what the reader
//! file holds, under the same protection.
//!
//! Durability: each write is on disk before the operation returns, because the rotation's next
//! step depends on it: the intent before `issuetoken` (else a token could be issued that no
//! record names), pending before `tokeninfo` and everything after (else a crash loses a valid
//! token), promote's step 1 before its step 2 (else a crash after the rename loses the old
//! token, which then is never revoked), the reader file's data before its rename and the
//! rename before the old token is revoked (else a crash leaves readers a revoked token or an
//! empty file), and the revocation's record (else the next run revokes it again, harmless
//! but a call). `docs/performance.md` counts them.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, IoSlice, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

use super::{
    CredentialRecord, Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreErrorKind,
    StoreState,
};
use crate::secret::short_id;

/// The `format` of the state slots this code writes: a CRC-32 over the sequence and the state.
const STATE_FORMAT: u32 = 3;
/// Slots written by earlier versions, with a SHA-256 instead of the CRC-32; still read.
const SHA256_STATE_FORMAT: u32 = 2;
/// A single state file replaced by rename, written by earlier versions; still read.
const LEGACY_STATE_FORMAT: u32 = 1;
/// A state slot is padded with spaces to at least this many bytes, and grows in steps of
/// [`STATE_SLOT_STEP`]; it keeps its length while its content fits (see [`slot_length`]), so that
/// rewriting it in place leaves `fdatasync` no inode change to commit.
const STATE_SLOT_MIN: usize = 2048;
const STATE_SLOT_STEP: usize = 1024;
/// What a store file's JSON is serialised into up front: more than any of them needs, so that
/// the buffer holding secrets is not reallocated (leaving copies behind).
const SERIALISE_CAPACITY: usize = 4096;
const SECRET_FILE_MODE: u32 = 0o600;
const CREATED_DIR_MODE: u32 = 0o700;
/// Permission bits that let anyone but the owner near a secret file.
const GROUP_OTHER_BITS: u32 = 0o077;

/// `[integrations.store]` with `kind = "file"`.
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// The file applications read: the current token as a [`CredentialRecord`] JSON object.
    #[schemars(length(min = 1))]
    pub path: PathBuf,
}

/// A [`SecretStore`] kept in files on the local file system.
#[derive(Debug)]
pub struct FileStore {
    files: Files,
}

impl FileStore {
    /// Touches no file: the directory and files appear with the first write.
    pub fn new(config: &FileStoreConfig) -> FileStore {
        FileStore {
            files: Files::new(&config.path),
        }
    }

    /// Runs one blocking operation on the files off the async runtime and names its failure.
    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Files) -> Result<T, Fault> + Send + 'static,
    {
        let files = self.files.clone();
        let outcome = tokio::task::spawn_blocking(move || work(&files)).await;
        let fault = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(fault)) => fault,
            Err(join) => Fault {
                kind: StoreErrorKind::Failed,
                detail: if join.is_panic() {
                    "the file operation panicked".to_string()
                } else {
                    "the file operation was cancelled".to_string()
                },
            },
        };
        Err(StoreError::new(
            self.describe(),
            operation,
            fault.kind,
            fault.detail,
        ))
    }
}

#[async_trait::async_trait]
impl SecretStore for FileStore {
    fn describe(&self) -> String {
        format!("file {}", self.files.reader.display())
    }

    async fn load(&self) -> Result<StoreState, StoreError> {
        self.run("load", load).await
    }

    async fn begin_rotation(&self, intent: &Intent) -> Result<(), StoreError> {
        let intent = intent.clone();
        self.run("begin_rotation", move |files| {
            begin_rotation(files, &intent)
        })
        .await
    }

    async fn stage_pending(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.run("stage_pending", move |files| stage_pending(files, &token))
            .await
    }

    async fn promote(
        &self,
        rotation_id: Uuid,
        revoke_previous_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run("promote", move |files| {
            promote(files, rotation_id, revoke_previous_after, usize::MAX)
        })
        .await
    }

    async fn abandon_rotation(&self, rotation_id: Uuid) -> Result<(), StoreError> {
        self.run("abandon_rotation", move |files| {
            abandon_rotation(files, rotation_id)
        })
        .await
    }

    async fn mark_previous_revoked(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let token_id = token_id.to_string();
        self.run("mark_previous_revoked", move |files| {
            mark_previous_revoked(files, &token_id, at)
        })
        .await
    }

    async fn import_current(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.run("import_current", move |files| import_current(files, &token))
            .await
    }

    async fn set_login_latch(&self, latch: Option<&LoginLatch>) -> Result<(), StoreError> {
        let latch = latch.cloned();
        self.run("set_login_latch", move |files| {
            set_login_latch(files, latch)
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.run("check_writable", check_writable).await
    }
}

/// The rotation's bookkeeping: everything but the current token.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bookkeeping {
    intent: Option<Intent>,
    pending: Option<CredentialRecord>,
    previous: Option<PreviousToken>,
    /// Absent in files written before the latch existed, and while it is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_latch: Option<LoginLatch>,
}

/// A state slot as written: `crc32` (format 3) or `sha256` (format 2, earlier versions) covers
/// `sequence` and the exact bytes of `state` (see [`slot_crc32`] and [`slot_sha256`]), so a
/// slot torn by a crash in the middle of its write is told from a whole one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotDocument<'a> {
    format: u32,
    sequence: u64,
    #[serde(default)]
    crc32: Option<u32>,
    #[serde(default, borrow)]
    sha256: Option<&'a str>,
    #[serde(borrow)]
    state: &'a serde_json::value::RawValue,
}

impl SlotDocument<'_> {
    /// A format whose checksum this program checks.
    fn is_checked_format(format: u32) -> bool {
        format == STATE_FORMAT || format == SHA256_STATE_FORMAT
    }
}

/// A state file of [`LEGACY_STATE_FORMAT`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyStateFile {
    #[serde(rename = "format")]
    _format: u32,
    intent: Option<Intent>,
    pending: Option<CredentialRecord>,
    previous: Option<PreviousToken>,
}

/// Only the `format` of a state slot, to tell which layout the rest has.
#[derive(Debug, Deserialize)]
struct FormatOnly {
    format: u32,
}

/// One of the two files the state is written to, in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// `<path>.state.json`, also the name of a [`LEGACY_STATE_FORMAT`] state file.
    First,
    /// `<path>.state.swap`, where a [`LEGACY_STATE_FORMAT`] writer kept the version before.
    Second,
}

impl Slot {
    fn suffix(self) -> &'static str {
        match self {
            Slot::First => ".state.json",
            Slot::Second => ".state.swap",
        }
    }

    fn other(self) -> Slot {
        match self {
            Slot::First => Slot::Second,
            Slot::Second => Slot::First,
        }
    }
}

/// What one slot holds, read as far as choosing between the two needs: only the newer
/// slot's checksum is checked and its state parsed, unless it turns out torn.
enum SlotContent<'a> {
    /// No such file, an empty one, or a legacy writer's older version: nothing to read.
    Empty,
    /// A slot whose head says [`STATE_FORMAT`] and `sequence` (see [`probe_sequence`]), not
    /// yet parsed: parsed only if it turns out to be the slot to read.
    Probed { sequence: u64, bytes: &'a [u8] },
    /// A slot of [`STATE_FORMAT`], not yet checked.
    Unchecked(SlotDocument<'a>),
    /// A whole version (boxed: it is large and the other variants are small).
    Version {
        sequence: u64,
        bookkeeping: Box<Bookkeeping>,
    },
    /// Not a whole version (why, naming the file): a write that a crash interrupted, or damage.
    Torn(Fault),
}

impl SlotContent<'_> {
    /// The sequence the slot claims, if it may hold a version.
    fn sequence(&self) -> Option<u64> {
        match self {
            SlotContent::Probed { sequence, .. } => Some(*sequence),
            SlotContent::Unchecked(document) => Some(document.sequence),
            SlotContent::Version { sequence, .. } => Some(*sequence),
            SlotContent::Empty | SlotContent::Torn(_) => None,
        }
    }
}

/// Both files as read under the lock, with a crash in the middle of `promote` repaired.
#[derive(Debug)]
struct Snapshot {
    current: Option<CredentialRecord>,
    state: Bookkeeping,
    /// The slot holding the newest version, and its sequence (0 for none or a legacy file).
    newest: Option<Slot>,
    sequence: u64,
    /// `state` differs from the newest version on disk: a write must persist it.
    dirty: bool,
}

impl Snapshot {
    fn into_store_state(self) -> StoreState {
        StoreState {
            current: self.current,
            previous: self.state.previous,
            intent: self.state.intent,
            pending: self.state.pending,
            login_latch: self.state.login_latch,
        }
    }

    /// Reads the crash states `promote` can leave (see the module doc) as what they mean.
    fn repair_interrupted_promotion(&mut self) {
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
    fn rotations_in_progress(&self) -> impl Iterator<Item = Uuid> {
        let intent = self.state.intent.as_ref().map(|i| i.rotation_id);
        let pending = self.state.pending.as_ref().map(|p| p.rotation_id());
        [intent, pending].into_iter().flatten()
    }
}

fn load(files: &Files) -> Result<StoreState, Fault> {
    let Some(_lock) = files.lock_existing()? else {
        return Ok(StoreState::default());
    };
    Ok(files.read(Looseness::Warn)?.into_store_state())
}

fn begin_rotation(files: &Files, intent: &Intent) -> Result<(), Fault> {
    let _lock = files.lock_creating()?;
    let mut snapshot = files.read(Looseness::Tighten)?;
    if let Some(current) = &snapshot.current
        && current.rotation_id() == intent.rotation_id
    {
        return Err(Fault::conflict(format!(
            "rotation {} is already current; a finished rotation cannot begin again",
            intent.rotation_id
        )));
    }
    if let Some(other) = snapshot
        .rotations_in_progress()
        .find(|&rotation| rotation != intent.rotation_id)
    {
        return Err(Fault::conflict(format!(
            "rotation {other} is in progress; refusing to begin rotation {}",
            intent.rotation_id
        )));
    }
    if snapshot.state.intent.is_none() {
        snapshot.state.intent = Some(intent.clone());
        snapshot.dirty = true;
    }
    files.save_state_if_dirty(&mut snapshot)
}

fn stage_pending(files: &Files, token: &CredentialRecord) -> Result<(), Fault> {
    let _lock = files.lock_creating()?;
    let mut snapshot = files.read(Looseness::Tighten)?;
    match &snapshot.state.intent {
        Some(intent) if intent.rotation_id == token.rotation_id() => {}
        Some(intent) => {
            return Err(Fault::conflict(format!(
                "the recorded intent belongs to rotation {}, not to rotation {}",
                intent.rotation_id,
                token.rotation_id()
            )));
        }
        None => {
            return Err(Fault::conflict(format!(
                "no intent is recorded for rotation {}",
                token.rotation_id()
            )));
        }
    }
    if let Some(pending) = &snapshot.state.pending
        && pending.rotation_id() == token.rotation_id()
        && pending.id() != token.id()
    {
        // Replacing it would leave a valid token that nothing remembers.
        return Err(Fault::conflict(format!(
            "rotation {} already staged token {}; refusing to replace it with token {}",
            token.rotation_id(),
            short_id(pending.id()),
            short_id(token.id())
        )));
    }
    snapshot.state.pending = Some(token.clone());
    files.write_state(&mut snapshot)
}

/// `promote` with a simulated crash: stops, as if killed, once `writes_allowed` files were
/// written (1: after step 1). Production passes `usize::MAX`.
fn promote(
    files: &Files,
    rotation_id: Uuid,
    revoke_previous_after: DateTime<Utc>,
    writes_allowed: usize,
) -> Result<(), Fault> {
    let _lock = files.lock_creating()?;
    let mut snapshot = files.read(Looseness::Tighten)?;
    if snapshot
        .current
        .as_ref()
        .is_some_and(|current| current.rotation_id() == rotation_id)
    {
        return files.save_state_if_dirty(&mut snapshot);
    }
    let pending = match &snapshot.state.pending {
        Some(pending) if pending.rotation_id() == rotation_id => pending.clone(),
        Some(pending) => {
            return Err(Fault::conflict(format!(
                "the pending token belongs to rotation {}, not to rotation {rotation_id}",
                pending.rotation_id()
            )));
        }
        None => {
            return Err(Fault::conflict(format!(
                "no token is pending for rotation {rotation_id}"
            )));
        }
    };
    if snapshot.current.is_some()
        && let Some(previous) = &snapshot.state.previous
        && previous.revoked_at.is_none()
    {
        return Err(Fault::conflict(format!(
            "previous token {} is not revoked yet (revoke after {}); promoting rotation \
             {rotation_id} would lose track of it",
            short_id(previous.token.id()),
            previous.revoke_after.to_rfc3339()
        )));
    }

    // Step 1.
    if let Some(old_current) = snapshot.current.take() {
        snapshot.state.previous = Some(PreviousToken {
            token: old_current,
            revoke_after: revoke_previous_after,
            revoked_at: None,
        });
        files.write_state(&mut snapshot)?;
        if writes_allowed == 1 {
            return Ok(());
        }
    }
    // Step 2. Step 3 is left to the next write (see the module doc): no write of its own.
    files.write_reader(&pending)
}

fn abandon_rotation(files: &Files, rotation_id: Uuid) -> Result<(), Fault> {
    let _lock = files.lock_creating()?;
    let mut snapshot = files.read(Looseness::Tighten)?;
    if snapshot
        .state
        .intent
        .as_ref()
        .is_some_and(|intent| intent.rotation_id == rotation_id)
    {
        snapshot.state.intent = None;
        snapshot.dirty = true;
    }
    if snapshot
        .state
        .pending
        .as_ref()
        .is_some_and(|pending| pending.rotation_id() == rotation_id)
    {
        snapshot.state.pending = None;
        snapshot.dirty = true;
    }
    files.save_state_if_dirty(&mut snapshot)
}

fn mark_previous_revoked(files: &Files, token_id: &str, at: DateTime<Utc>) -> Result<(), Fault> {
    let _lock = files.lock_creating()?;
    let mut snapshot = files.read(Looseness::Tighten)?;
    if let Some(previous) = &mut snapshot.state.previous
        && previous.token.id() == token_id
        && previous.revoked_at.is_none()
    {
        previous.revoked_at = Some(at);
        snapshot.dirty = true;
    }
    files.save_state_if_dirty(&mut snapshot)
}

fn import_current(files: &Files, token: &CredentialRecord) -> Result<(), Fault> {
    let _lock = files.lock_creating()?;
    let mut snapshot = files.read(Looseness::Tighten)?;
    if let Some(current) = &snapshot.current {
        if current.rotation_id() == token.rotation_id() && current.id() == token.id() {
            // A repeated import of the token that is already current.
            return files.save_state_if_dirty(&mut snapshot);
        }
        return Err(Fault::conflict(format!(
            "the store already has a current token ({}); import only fills an empty store",
            short_id(current.id())
        )));
    }
    if let Some(rotation) = snapshot.rotations_in_progress().next() {
        return Err(Fault::conflict(format!(
            "rotation {rotation} is in progress; import only fills an empty store"
        )));
    }
    files.write_reader(token)
}

fn set_login_latch(files: &Files, latch: Option<LoginLatch>) -> Result<(), Fault> {
    let _lock = files.lock_creating()?;
    let mut snapshot = files.read(Looseness::Tighten)?;
    if snapshot.state.login_latch != latch {
        snapshot.state.login_latch = latch;
        snapshot.dirty = true;
    }
    files.save_state_if_dirty(&mut snapshot)
}

/// Proves every write a rotation makes may happen, changing nothing: the files that exist may
/// be opened for writing (the lock, the state slots, the reader file), and the directory may
/// have a temp file made and renamed in it (or, before the first write, the nearest directory
/// that exists, where the store's directory would be created). Asked of the kernel with
/// `faccessat(AT_EACCESS)`, which answers for this process's effective ids as `open` would:
/// mode bits, ACLs, security modules, a read-only mount, an immutable file. What it cannot
/// foresee is a file system out of inodes; creating and deleting a temp file here would, at
/// the cost of an inode allocated and freed per rotation (a sixth of the rotator's CPU on
/// ext4: docs/performance.md), and a promotion that then fails leaves the verified token
/// pending, which the next run promotes.
fn check_writable(files: &Files) -> Result<(), Fault> {
    let existing = [
        files.lock_path(),
        files.slot_path(Slot::First),
        files.slot_path(Slot::Second),
        files.reader.to_path_buf(),
    ];
    for path in &existing {
        match may_write(path, false) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            checked => checked.map_err(|err| Fault::io("opening for writing", path, &err))?,
        }
    }
    let dir = files
        .dir()
        .ancestors()
        .find(|dir| dir.is_dir())
        .unwrap_or(Path::new("."));
    may_write(dir, true).map_err(|err| Fault::io("creating a temp file in", dir, &err))
}

/// Whether this process may write `path` (and, for a directory, `search` it), by `faccessat`
/// with the effective ids.
fn may_write(path: &Path, search: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mode = libc::W_OK | if search { libc::X_OK } else { 0 };
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, which only reads it.
    let answer =
        unsafe { libc::faccessat(libc::AT_FDCWD, c_path.as_ptr(), mode, libc::AT_EACCESS) };
    if answer == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What reading does about a secret file that group or others may read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Looseness {
    /// `load` changes nothing on disk.
    Warn,
    /// Writing operations fix the mode at once.
    Tighten,
}

/// The paths of one store; clones share the path (each blocking operation takes one).
#[derive(Clone, Debug)]
struct Files {
    /// The reader-facing file; the others are named after it, beside it. Only this path is
    /// kept, in one allocation: a daemon holds thousands of stores for weeks, and the rest are
    /// cheap to derive.
    reader: Arc<Path>,
}

impl Files {
    fn new(reader: &Path) -> Files {
        Files {
            reader: Arc::from(reader),
        }
    }

    fn slot_path(&self, slot: Slot) -> PathBuf {
        with_suffix(&self.reader, slot.suffix())
    }

    fn lock_path(&self) -> PathBuf {
        with_suffix(&self.reader, ".lock")
    }

    fn dir(&self) -> &Path {
        match self.reader.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        }
    }

    /// Locks the store for a writing operation, creating the directory and lock file if needed.
    /// The lock is released when the returned file is closed.
    fn lock_creating(&self) -> Result<File, Fault> {
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
    fn lock_existing(&self) -> Result<Option<File>, Fault> {
        match self.open_lock_file() {
            Ok(file) => Self::lock(file, &self.lock_path()).map(Some),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Fault::io("opening lock file", &self.lock_path(), &err)),
        }
    }

    fn open_lock_file(&self) -> io::Result<File> {
        open_or_create(&self.lock_path())
    }

    /// Blocks until this process holds the exclusive lock.
    fn lock(file: File, path: &Path) -> Result<File, Fault> {
        file.lock()
            .map_err(|err| Fault::io("locking", path, &err))?;
        Ok(file)
    }

    fn read(&self, looseness: Looseness) -> Result<Snapshot, Fault> {
        let reader = self.read_bytes(&self.reader, looseness)?;
        let first = self.read_bytes(&self.slot_path(Slot::First), looseness)?;
        let second = self.read_bytes(&self.slot_path(Slot::Second), looseness)?;
        self.parse(
            reader.as_deref().map(Vec::as_slice),
            [first.as_deref(), second.as_deref()].map(|bytes| bytes.map(Vec::as_slice)),
        )
    }

    /// Parses the reader file's and the two state slots' bytes (`None`: the file does not
    /// exist), picks the newest whole version of the state and repairs an interrupted
    /// promotion. Touches no file.
    fn parse(&self, reader: Option<&[u8]>, slots: [Option<&[u8]>; 2]) -> Result<Snapshot, Fault> {
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
        let mut snapshot = Snapshot {
            current,
            state,
            newest,
            sequence,
            dirty: false,
        };
        snapshot.repair_interrupted_promotion();
        Ok(snapshot)
    }

    /// Reads one state slot. A format this program does not know is an error, not a torn slot:
    /// a newer version of it wrote the store, and reading around that could lose a token.
    fn parse_slot<'a>(
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
    fn parse_slot_bytes<'a>(&self, slot: Slot, bytes: &'a [u8]) -> Result<SlotContent<'a>, Fault> {
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
    fn read_bytes(&self, path: &Path, looseness: Looseness) -> Result<Option<Wiped>, Fault> {
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

    fn save_state_if_dirty(&self, snapshot: &mut Snapshot) -> Result<(), Fault> {
        if snapshot.dirty {
            self.write_state(snapshot)
        } else {
            Ok(())
        }
    }

    /// Writes `snapshot.state` as the next version, into the slot that does not hold the newest
    /// one (see the module doc), and makes that slot the newest.
    fn write_state(&self, snapshot: &mut Snapshot) -> Result<(), Fault> {
        let slot = snapshot.newest.map_or(Slot::First, Slot::other);
        let sequence = snapshot.sequence + 1;
        let path = self.slot_path(slot);
        let content = SlotBytes::new(&path, sequence, &snapshot.state)?;
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => overwrite_slot(&file, &path, &content)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.create_slot(slot, &content.padded(None))?;
            }
            Err(err) => return Err(Fault::io("opening", &path, &err)),
        }
        snapshot.newest = Some(slot);
        snapshot.sequence = sequence;
        snapshot.dirty = false;
        Ok(())
    }

    /// Creates `slot` holding `bytes`, whole (a fresh temp file renamed into place), and the
    /// other slot empty if it is missing, so that the next write finds it and needs no
    /// directory fsync.
    fn create_slot(&self, slot: Slot, bytes: &[u8]) -> Result<(), Fault> {
        self.write_whole(&self.slot_path(slot), bytes, false)?;
        let other = self.slot_path(slot.other());
        open_or_create(&other).map_err(|err| Fault::io("creating", &other, &err))?;
        self.sync_dir()
    }

    /// Replaces the reader file atomically through a fresh temp file (see the module doc).
    fn write_reader(&self, token: &CredentialRecord) -> Result<(), Fault> {
        let bytes = to_json(&self.reader, token)?;
        self.write_whole(&self.reader, &bytes, true)
    }

    /// Puts `bytes` at `target` atomically: a fresh temp file, fsynced, renamed over it; then
    /// the directory is fsynced if `sync_dir`.
    fn write_whole(&self, target: &Path, bytes: &[u8], sync_dir: bool) -> Result<(), Fault> {
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
    fn sync_dir(&self) -> Result<(), Fault> {
        File::open(self.dir())
            .and_then(|dir| dir.sync_all())
            .map_err(|err| Fault::io("syncing directory", self.dir(), &err))
    }
}

/// `value` as the JSON a store file holds (indented, for the reader file), in a buffer wiped
/// when dropped.
fn to_json<T: Serialize>(target: &Path, value: &T) -> Result<Wiped, Fault> {
    let mut bytes = Wiped(Vec::with_capacity(SERIALISE_CAPACITY));
    serde_json::to_writer_pretty(&mut *bytes, value)
        .map_err(|err| Fault::serialise(target, &err))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Opens a store file for writing, creating it (mode 0600) only if it is missing: opening with
/// `O_CREAT` takes the directory's lock exclusively even when the file exists, and thousands of
/// stores in one directory then queue on it.
fn open_or_create(path: &Path) -> io::Result<File> {
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

/// Rewrites an existing slot in place (see the module doc for why a crash in the middle of it
/// loses nothing).
fn overwrite_slot(file: &File, path: &Path, content: &SlotBytes) -> Result<(), Fault> {
    let metadata = file
        .metadata()
        .map_err(|err| Fault::io("reading metadata of", path, &err))?;
    // Made exact before the secret goes in: someone may have loosened it by hand.
    if metadata.permissions().mode() & 0o777 != SECRET_FILE_MODE {
        file.set_permissions(Permissions::from_mode(SECRET_FILE_MODE))
            .map_err(|err| Fault::io("setting permissions of", path, &err))?;
    }
    let length = slot_length(content.len(), Some(metadata.len()));
    content
        .write_at_start(file, length)
        .and_then(|()| {
            if metadata.len() == length as u64 {
                Ok(())
            } else {
                file.set_len(length as u64)
            }
        })
        .map_err(|err| Fault::io("writing", path, &err))?;
    // Data only: the slot's name and, nearly always, its length are what they were.
    file.sync_data()
        .map_err(|err| Fault::io("syncing", path, &err))
}

/// A state slot's [`SlotDocument`] before padding.
struct SlotBytes {
    head: String,
    /// The state, compact: it is read by this store alone.
    body: Wiped,
}

/// Spaces to pad a slot with, written from here instead of from a buffer of the slot's size.
static PADDING: [u8; 1024] = [b' '; 1024];

impl SlotBytes {
    fn new(target: &Path, sequence: u64, state: &Bookkeeping) -> Result<Self, Fault> {
        let mut body = Wiped(Vec::with_capacity(SERIALISE_CAPACITY));
        serde_json::to_writer(&mut *body, state).map_err(|err| Fault::serialise(target, &err))?;
        let head = format!(
            "{{\"format\":{STATE_FORMAT},\"sequence\":{sequence},\"crc32\":{},\"state\":",
            slot_crc32(sequence, &body)
        );
        Ok(SlotBytes { head, body })
    }

    /// The slot's bytes before padding and its final newline.
    fn len(&self) -> usize {
        self.head.len() + self.body.len() + 1
    }

    /// The parts of the whole slot, padded with spaces to `length` and ending in a newline.
    fn parts(&self, length: usize) -> Vec<IoSlice<'_>> {
        let mut padding = length - self.len() - 1;
        let mut parts = Vec::with_capacity(5 + padding / PADDING.len());
        parts.extend([
            IoSlice::new(self.head.as_bytes()),
            IoSlice::new(&self.body),
            IoSlice::new(b"}"),
        ]);
        while padding > 0 {
            let step = padding.min(PADDING.len());
            parts.push(IoSlice::new(&PADDING[..step]));
            padding -= step;
        }
        parts.push(IoSlice::new(b"\n"));
        parts
    }

    /// The whole slot at [`slot_length`] (`current`: the slot's length now), in a buffer wiped
    /// when dropped: for a slot file created through a temp file.
    fn padded(&self, current: Option<u64>) -> Wiped {
        let length = slot_length(self.len(), current);
        // Sized up front so the buffer holding secrets is not reallocated (leaving copies).
        let mut bytes = Wiped(Vec::with_capacity(length));
        for part in self.parts(length) {
            bytes.extend_from_slice(&part);
        }
        bytes
    }

    /// Writes the whole slot, `length` bytes, at the start of `file`, which must be positioned
    /// there (just opened): one `writev` from the parts, so that no buffer of the slot's size is
    /// filled with padding and wiped again.
    fn write_at_start(&self, mut file: &File, length: usize) -> io::Result<()> {
        let mut parts = self.parts(length);
        let mut parts = &mut parts[..];
        while !parts.is_empty() {
            match file.write_vectored(parts) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut parts, written),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// Bytes that held a secret (a store file as read, or as serialised for writing), zeroed when
/// dropped up to their last byte that is not white space: the spaces a slot is padded with
/// (most of it) and spare capacity never written hold nothing secret, and wiping them was a
/// tenth of a rotation's instructions.
struct Wiped(Vec<u8>);

impl std::ops::Deref for Wiped {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Wiped {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        let end = without_padding(&self.0).len();
        self.0[..end].zeroize();
    }
}

/// The length to write a slot with `content` bytes at (a newline is added): its length now
/// while the content fits and it is no more than twice what is needed, so that the length does
/// not change from one version to the next; else the least multiple of [`STATE_SLOT_STEP`], at
/// least [`STATE_SLOT_MIN`].
fn slot_length(content: usize, current: Option<u64>) -> usize {
    let needed = (content + 1)
        .next_multiple_of(STATE_SLOT_STEP)
        .max(STATE_SLOT_MIN);
    match current.and_then(|length| usize::try_from(length).ok()) {
        Some(length) if (needed..=2 * needed).contains(&length) => length,
        _ => needed,
    }
}

/// The sequence a slot claims in the head this program writes, `{"format":3,"sequence":N,`,
/// read without parsing the rest: of the two slots only the newer is parsed (and checked), and
/// the older only when the newer is torn. `None` for any other head (an older format, damage):
/// such a slot is parsed as a whole. A torn slot can claim a sequence here and still fail its
/// parse or checksum, which then passes it over as before.
fn probe_sequence(bytes: &[u8]) -> Option<u64> {
    const HEAD: &[u8] = b"{\"format\":3,\"sequence\":";
    const _: () = assert!(STATE_FORMAT == 3, "HEAD names the format written");
    let rest = bytes.strip_prefix(HEAD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || rest.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// `bytes` without the spaces and newline a slot is padded with. Eight bytes at a step: the
/// padding can be most of the slot, and every operation reads both slots.
fn without_padding(bytes: &[u8]) -> &[u8] {
    const SPACES: [u8; 8] = [b' '; 8];
    let mut end = bytes.len();
    if bytes.last() == Some(&b'\n') {
        end -= 1;
    }
    while end >= 8 && bytes[end - 8..end] == SPACES {
        end -= 8;
    }
    bytes[..end].trim_ascii_end()
}

/// A parsed slot of [`STATE_FORMAT`]: a whole version, or torn if its checksum does not match
/// or its state does not parse.
fn check_slot_document(path: &Path, document: &SlotDocument) -> SlotContent<'static> {
    let body = document.state.get().as_bytes();
    let (name, whole) = match (document.format, document.crc32, document.sha256) {
        (STATE_FORMAT, Some(crc32), None) => {
            ("crc32", slot_crc32(document.sequence, body) == crc32)
        }
        (SHA256_STATE_FORMAT, None, Some(sha256)) => {
            ("sha256", slot_sha256(document.sequence, body) == sha256)
        }
        _ => ("checksum", false),
    };
    if !whole {
        return SlotContent::Torn(Fault {
            kind: StoreErrorKind::Invalid,
            detail: format!(
                "{}: the state does not match its {name} (a write that did not finish, or damage)",
                path.display()
            ),
        });
    }
    match parse_json::<Bookkeeping>(path, body) {
        Ok(bookkeeping) => SlotContent::Version {
            sequence: document.sequence,
            bookkeeping: Box::new(bookkeeping),
        },
        Err(fault) => SlotContent::Torn(fault),
    }
}

/// A slot's `crc32` (format 3): the CRC-32 (IEEE) of its sequence as eight little-endian bytes
/// followed by the exact bytes of its state. The sequence is covered too, or a slot torn
/// between its header and its state could pass an older state off under the newer sequence.
///
/// A CRC, not a cryptographic hash: the checksum tells a whole slot from one a crash tore
/// (the new version written over part of an older one), which a CRC-32 detects but for a
/// chance of 2^-32 per torn slot, and a torn slot is only ever passed over for the other one.
/// It is no defence against someone who can write the file: they could as well write a
/// valid slot, whatever the checksum (the file is the owner's alone, mode 0600).
fn slot_crc32(sequence: u64, state: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    hasher.update(state);
    hasher.finalize()
}

/// A format-2 slot's `sha256`: of its sequence in decimal, a newline and the exact bytes of its
/// state, in lowercase hex. Only read: slots are written in format 3.
fn slot_sha256(sequence: u64, state: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let digest = Sha256::new()
        .chain_update(format!("{sequence}\n"))
        .chain_update(state)
        .finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Parses the bytes of the file at `path` (named in the error, which quotes no value).
fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, Fault> {
    serde_json::from_slice(bytes).map_err(|err| Fault::unreadable_json(path, &err))
}

/// What `load` makes of a reader file and two state slots with these contents (`None`: no
/// such file), without touching the file system: for [`super::parse_entry`]. The error is the detail
/// `load` would report.
pub(super) fn parse_files(
    reader: Option<&[u8]>,
    slots: [Option<&[u8]>; 2],
) -> Result<StoreState, String> {
    Files::new(Path::new("token.json"))
        .parse(reader, slots)
        .map(Snapshot::into_store_state)
        .map_err(|fault| fault.detail)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A failed operation, before the store and operation names are attached.
#[derive(Debug)]
struct Fault {
    kind: StoreErrorKind,
    detail: String,
}

impl Fault {
    fn serialise(target: &Path, err: &serde_json::Error) -> Fault {
        Fault {
            kind: StoreErrorKind::Failed,
            detail: format!(
                "could not serialise {}: {:?} error",
                target.display(),
                err.classify()
            ),
        }
    }

    fn conflict(detail: String) -> Fault {
        Fault {
            kind: StoreErrorKind::Conflict,
            detail,
        }
    }

    fn io(action: &str, path: &Path, err: &io::Error) -> Fault {
        Fault {
            kind: io_error_kind(err),
            detail: format!("{action} {}: {err}", path.display()),
        }
    }

    /// serde_json's own messages can quote the offending value (a secret), so only the position
    /// and the category are reported.
    fn unreadable_json(path: &Path, err: &serde_json::Error) -> Fault {
        let what = match err.classify() {
            serde_json::error::Category::Io => "could not be read",
            serde_json::error::Category::Syntax => "is not valid JSON",
            serde_json::error::Category::Data => "does not have the expected fields and types",
            serde_json::error::Category::Eof => "ends before the JSON is complete",
        };
        Fault {
            kind: StoreErrorKind::Invalid,
            detail: format!(
                "{} {what} (line {}, column {})",
                path.display(),
                err.line(),
                err.column()
            ),
        }
    }
}

fn io_error_kind(err: &io::Error) -> StoreErrorKind {
    match err.kind() {
        io::ErrorKind::PermissionDenied => StoreErrorKind::Denied,
        io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut
        | io::ErrorKind::ResourceBusy
        | io::ErrorKind::StorageFull
        | io::ErrorKind::QuotaExceeded => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use chrono::TimeZone;
    use serde_json::{Value, json};
    use tempfile::TempDir;

    use super::*;
    use crate::secret::SecretString;
    use crate::store::TokenRecord;

    /// Marks every secret the fixtures plant, so a test can look for any of them in output.
    const SECRET_MARK: &str = "s3cr3t";

    fn at(offset_secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + offset_secs, 0).unwrap()
    }

    fn token(rotation_id: Uuid, n: i64) -> CredentialRecord {
        CredentialRecord::Tba(TokenRecord {
            account_id: "123456_SB1".to_string(),
            realm: "123456_SB1".to_string(),
            consumer_key: Some(SecretString::from(format!("ck-{SECRET_MARK}-{n}"))),
            consumer_secret: Some(SecretString::from(format!("cs-{SECRET_MARK}-{n}"))),
            token_id: format!("tokenid-{n:04}-abcdef"),
            token_secret: SecretString::from(format!("ts-{SECRET_MARK}-{n}")),
            issued_at: at(n),
            rotation_id,
        })
    }

    fn intent(rotation_id: Uuid) -> Intent {
        Intent {
            rotation_id,
            token_name: format!("erp-sync-{rotation_id}"),
            started_at: at(0),
            owner: String::new(),
        }
    }

    struct Fixture {
        _dir: TempDir,
        path: PathBuf,
        store: FileStore,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("erp.json");
            let store = FileStore::new(&FileStoreConfig { path: path.clone() });
            Fixture {
                _dir: dir,
                path,
                store,
            }
        }

        /// Another `FileStore` value on the same files, as a second process would have.
        fn other_store(&self) -> FileStore {
            FileStore::new(&FileStoreConfig {
                path: self.path.clone(),
            })
        }

        fn slot_path(&self, slot: Slot) -> PathBuf {
            with_suffix(&self.path, slot.suffix())
        }

        /// The first slot, which is also where a legacy state file lives.
        fn state_path(&self) -> PathBuf {
            self.slot_path(Slot::First)
        }

        fn reader_json(&self) -> Value {
            serde_json::from_slice(&fs::read(&self.path).unwrap()).unwrap()
        }

        /// The state as on disk: the `state` of the slot with the higher sequence.
        fn state_json(&self) -> Value {
            [Slot::First, Slot::Second]
                .into_iter()
                .filter_map(|slot| fs::read(self.slot_path(slot)).ok())
                .filter(|bytes| !bytes.is_empty())
                .map(|bytes| serde_json::from_slice::<Value>(&bytes).unwrap())
                // A legacy state file has no sequence: it is the oldest version.
                .max_by_key(|slot| slot["sequence"].as_u64().unwrap_or(0))
                .expect("a state slot")["state"]
                .clone()
        }

        /// Begins and stages rotation number `n`, returning its id.
        async fn stage(&self, n: i64) -> Uuid {
            let rotation_id = Uuid::new_v4();
            self.store
                .begin_rotation(&intent(rotation_id))
                .await
                .unwrap();
            self.store
                .stage_pending(&token(rotation_id, n))
                .await
                .unwrap();
            rotation_id
        }

        /// A whole rotation number `n`, its previous due at `at(n)`.
        async fn rotate(&self, n: i64) -> Uuid {
            let rotation_id = self.stage(n).await;
            self.store.promote(rotation_id, at(n)).await.unwrap();
            rotation_id
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn assert_conflict(result: Result<(), StoreError>) {
        let err = result.expect_err("expected a conflict");
        assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
    }

    /// The invariant every crash repair must keep.
    fn assert_previous_is_not_current(state: &StoreState) {
        if let (Some(current), Some(previous)) = (&state.current, &state.previous) {
            assert_ne!(current.id(), previous.token.id());
        }
    }

    #[tokio::test]
    async fn full_cycle_leaves_exactly_the_reader_record_in_the_reader_file() {
        let f = Fixture::new();
        let rotation_id = Uuid::new_v4();

        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent, Some(intent(rotation_id)));
        assert!(state.current.is_none() && state.pending.is_none());

        f.store.stage_pending(&token(rotation_id, 1)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.pending.unwrap().id(), "tokenid-0001-abcdef");
        assert!(!f.path.exists(), "nothing is current before promote");

        f.store.promote(rotation_id, at(3600)).await.unwrap();
        assert_eq!(
            f.reader_json(),
            json!({
                "account_id": "123456_SB1",
                "realm": "123456_SB1",
                "consumer_key": "ck-s3cr3t-1",
                "consumer_secret": "cs-s3cr3t-1",
                "token_id": "tokenid-0001-abcdef",
                "token_secret": "ts-s3cr3t-1",
                "issued_at": "2023-11-14T22:13:21Z",
                "rotation_id": rotation_id.to_string(),
            })
        );
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert!(state.intent.is_none() && state.pending.is_none() && state.previous.is_none());
        // Promote leaves dropping intent and pending to the next write (see the module doc).
        assert_eq!(
            f.state_json()["pending"]["rotation_id"],
            rotation_id.to_string()
        );
        f.store
            .mark_previous_revoked("no-such-token", at(0))
            .await
            .unwrap();
        assert_eq!(
            f.state_json(),
            json!({"intent": null, "pending": null, "previous": null})
        );
    }

    #[tokio::test]
    async fn consumer_pair_is_left_out_of_the_reader_file_when_absent() {
        let f = Fixture::new();
        let CredentialRecord::Tba(mut record) = token(Uuid::new_v4(), 1) else {
            unreachable!("token() makes TBA records")
        };
        record.consumer_key = None;
        record.consumer_secret = None;
        f.store.import_current(&record.into()).await.unwrap();

        let reader = f.reader_json();
        let mut keys: Vec<&str> = reader
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "account_id",
                "issued_at",
                "realm",
                "rotation_id",
                "token_id",
                "token_secret"
            ]
        );
        assert!(
            !f.state_path().exists(),
            "import writes only the reader file"
        );
    }

    #[tokio::test]
    async fn old_current_stays_previous_until_revoked() {
        let f = Fixture::new();
        f.rotate(1).await;
        let second = f.rotate(2).await;

        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.as_ref().unwrap().rotation_id(), second);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.id(), "tokenid-0001-abcdef");
        assert_eq!(previous.revoke_after, at(2));
        assert_eq!(previous.revoked_at, None);

        let third = f.stage(3).await;
        assert_conflict(f.store.promote(third, at(3)).await);
        assert_eq!(f.reader_json()["rotation_id"], second.to_string());

        f.store
            .mark_previous_revoked("tokenid-0001-abcdef", at(100))
            .await
            .unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.previous.unwrap().revoked_at, Some(at(100)));

        f.store.promote(third, at(3)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), third);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.rotation_id(), second);
        assert_eq!(previous.revoked_at, None);
    }

    #[tokio::test]
    async fn import_fills_only_an_empty_store() {
        let f = Fixture::new();
        let imported = token(Uuid::new_v4(), 1);
        f.store.import_current(&imported).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().id(), imported.id());

        // A repeated import of the same token changes nothing; another token is refused.
        f.store.import_current(&imported).await.unwrap();
        assert_conflict(f.store.import_current(&token(Uuid::new_v4(), 2)).await);
        assert_eq!(f.reader_json()["token_id"], imported.id());

        // The first rotation after an import makes the imported token previous.
        f.rotate(3).await;
        let previous = f.store.load().await.unwrap().previous.unwrap();
        assert_eq!(previous.token.id(), imported.id());
    }

    #[tokio::test]
    async fn import_refuses_a_store_with_a_rotation_in_progress() {
        let f = Fixture::new();
        let rotation_id = Uuid::new_v4();
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        assert_conflict(f.store.import_current(&token(Uuid::new_v4(), 1)).await);

        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_conflict(f.store.import_current(&token(Uuid::new_v4(), 1)).await);

        f.store.abandon_rotation(rotation_id).await.unwrap();
        f.store
            .import_current(&token(Uuid::new_v4(), 1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn begin_rotation_refuses_while_another_rotation_is_in_progress() {
        let f = Fixture::new();
        let first = Uuid::new_v4();
        f.store.begin_rotation(&intent(first)).await.unwrap();
        assert_conflict(f.store.begin_rotation(&intent(Uuid::new_v4())).await);

        f.store.stage_pending(&token(first, 1)).await.unwrap();
        assert_conflict(f.store.begin_rotation(&intent(Uuid::new_v4())).await);
        assert_eq!(f.store.load().await.unwrap().intent, Some(intent(first)));
    }

    #[tokio::test]
    async fn begin_rotation_refuses_a_rotation_that_is_already_current() {
        let f = Fixture::new();
        let done = f.rotate(1).await;
        assert_conflict(f.store.begin_rotation(&intent(done)).await);
        assert!(f.store.load().await.unwrap().intent.is_none());
    }

    #[tokio::test]
    async fn stage_pending_refuses_without_this_rotations_intent() {
        let f = Fixture::new();
        let rotation_id = Uuid::new_v4();
        assert_conflict(f.store.stage_pending(&token(rotation_id, 1)).await);

        f.store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap();
        assert_conflict(f.store.stage_pending(&token(rotation_id, 1)).await);
        assert!(f.store.load().await.unwrap().pending.is_none());
    }

    #[tokio::test]
    async fn stage_pending_refuses_to_replace_a_staged_token_with_another() {
        let f = Fixture::new();
        let rotation_id = f.stage(1).await;
        assert_conflict(f.store.stage_pending(&token(rotation_id, 2)).await);
        let pending = f.store.load().await.unwrap().pending.unwrap();
        assert_eq!(pending.id(), "tokenid-0001-abcdef");
    }

    #[tokio::test]
    async fn promote_refuses_without_this_rotations_pending_token() {
        let f = Fixture::new();
        let current = f.rotate(1).await;
        let before = fs::read(&f.path).unwrap();

        let rotation_id = Uuid::new_v4();
        assert_conflict(f.store.promote(rotation_id, at(9)).await);
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        assert_conflict(f.store.promote(rotation_id, at(9)).await);

        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_conflict(f.store.promote(Uuid::new_v4(), at(9)).await);

        assert_eq!(fs::read(&f.path).unwrap(), before);
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), current);
        assert_eq!(state.pending.unwrap().rotation_id(), rotation_id);
    }

    #[tokio::test]
    async fn repeated_steps_are_harmless() {
        let f = Fixture::new();
        f.rotate(1).await;
        let rotation_id = Uuid::new_v4();
        for _ in 0..2 {
            f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        }
        for _ in 0..2 {
            f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        }
        // A late begin for the same rotation keeps the staged token.
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        assert!(f.store.load().await.unwrap().pending.is_some());
        for _ in 0..2 {
            f.store.promote(rotation_id, at(50)).await.unwrap();
        }
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert_eq!(state.previous.as_ref().unwrap().revoke_after, at(50));

        // Revoking another token, or revoking twice, keeps the first record.
        f.store
            .mark_previous_revoked("tokenid-9999-other", at(60))
            .await
            .unwrap();
        assert_eq!(
            f.store.load().await.unwrap().previous.unwrap().revoked_at,
            None
        );
        for when in [at(70), at(80)] {
            f.store
                .mark_previous_revoked("tokenid-0001-abcdef", when)
                .await
                .unwrap();
        }
        assert_eq!(
            f.store.load().await.unwrap().previous.unwrap().revoked_at,
            Some(at(70))
        );
    }

    #[tokio::test]
    async fn abandon_drops_only_its_own_rotation() {
        let f = Fixture::new();
        let current = f.rotate(1).await;
        let rotation_id = f.stage(2).await;

        f.store.abandon_rotation(Uuid::new_v4()).await.unwrap();
        f.store.abandon_rotation(current).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
        assert_eq!(state.pending.unwrap().rotation_id(), rotation_id);

        for _ in 0..2 {
            f.store.abandon_rotation(rotation_id).await.unwrap();
        }
        let state = f.store.load().await.unwrap();
        assert!(state.intent.is_none() && state.pending.is_none());
        assert_eq!(state.current.unwrap().rotation_id(), current);
    }

    #[tokio::test]
    async fn files_are_owner_only_and_created_directories_are_0700() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a").join("b").join("erp.json");
        let f = Fixture {
            store: FileStore::new(&FileStoreConfig { path: path.clone() }),
            path,
            _dir: root,
        };
        f.rotate(1).await;
        f.stage(2).await;

        let dir_b = f.path.parent().unwrap();
        assert_eq!(mode(dir_b), 0o700);
        assert_eq!(mode(dir_b.parent().unwrap()), 0o700);
        assert_eq!(mode(&f.path), 0o600);
        assert_eq!(mode(&f.state_path()), 0o600);
        assert_eq!(mode(&with_suffix(&f.path, ".lock")), 0o600);
        assert_eq!(mode(&with_suffix(&f.path, ".state.swap")), 0o600);
        let mut names: Vec<_> = fs::read_dir(dir_b)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "erp.json",
                "erp.json.lock",
                "erp.json.state.json",
                "erp.json.state.swap"
            ],
            "no temp file is left behind"
        );
    }

    #[tokio::test]
    async fn a_writing_operation_tightens_loose_permissions() {
        let f = Fixture::new();
        f.rotate(1).await;
        let staged = f.stage(2).await;
        for path in [f.path.clone(), f.state_path()] {
            fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        }

        f.store.load().await.unwrap();
        assert_eq!(mode(&f.path), 0o644, "load changes nothing on disk");

        // Even an operation with nothing to change fixes the modes.
        f.store.abandon_rotation(Uuid::new_v4()).await.unwrap();
        assert_eq!(mode(&f.path), 0o600);
        assert_eq!(mode(&f.state_path()), 0o600);

        // Both slots, whichever the next version goes to.
        let swap = f.slot_path(Slot::Second);
        fs::set_permissions(&swap, Permissions::from_mode(0o644)).unwrap();
        f.store.abandon_rotation(staged).await.unwrap();
        assert_eq!(mode(&f.state_path()), 0o600);
        assert_eq!(mode(&swap), 0o600);
    }

    /// (inode, length) of each slot.
    fn slot_files(f: &Fixture) -> Vec<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        [Slot::First, Slot::Second]
            .map(|slot| {
                let metadata = fs::metadata(f.slot_path(slot)).unwrap();
                (metadata.ino(), metadata.len())
            })
            .to_vec()
    }

    #[tokio::test]
    async fn state_versions_alternate_between_two_slots_rewritten_in_place() {
        let f = Fixture::new();
        f.rotate(1).await;
        let files = slot_files(&f);
        for (_, length) in &files {
            assert_eq!(length % STATE_SLOT_STEP as u64, 0, "padded to whole blocks");
        }
        let mut sequences = Vec::new();
        for n in 2..=4 {
            f.rotate(n).await;
            f.store
                .mark_previous_revoked(token(Uuid::nil(), n - 1).id(), at(n))
                .await
                .unwrap();
            let staged = f.stage(n + 10).await;
            f.store.abandon_rotation(staged).await.unwrap();
            assert_eq!(slot_files(&f), files, "same inodes, same sizes");
            let mut pair: Vec<u64> = [Slot::First, Slot::Second]
                .map(|slot| {
                    let bytes = fs::read(f.slot_path(slot)).unwrap();
                    serde_json::from_slice::<Value>(&bytes).unwrap()["sequence"]
                        .as_u64()
                        .unwrap()
                })
                .to_vec();
            pair.sort_unstable();
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "the other slot keeps the version before"
            );
            sequences.push(pair[1]);
        }
        assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().id(), token(Uuid::nil(), 4).id());
        assert!(state.intent.is_none() && state.pending.is_none());
    }

    /// A crash in the middle of rewriting a slot can leave any mix of its old and new bytes.
    /// Every mix reads as the version before the write, or (when the mix holds all of the
    /// new version's text) the new one; none is an error.
    #[tokio::test]
    async fn a_torn_state_slot_reads_as_the_version_before_it() {
        let f = Fixture::new();
        f.rotate(1).await;
        let rotation_id = Uuid::new_v4();
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        let before = [Slot::First, Slot::Second].map(|slot| fs::read(f.slot_path(slot)).unwrap());
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        let after = [Slot::First, Slot::Second].map(|slot| fs::read(f.slot_path(slot)).unwrap());
        let written = (0..2).find(|&i| before[i] != after[i]).unwrap();
        let slot = [Slot::First, Slot::Second][written];
        let (old, new) = (&before[written], &after[written]);
        assert_eq!(old.len(), new.len());

        let mut tears = 0;
        // Every split in the header and the start of the state, then a sample.
        for split in (1..new.len()).filter(|split| *split < 256 || split % 17 == 0) {
            for torn in [
                [&new[..split], &old[split..]].concat(),
                [&old[..split], &new[split..]].concat(),
            ] {
                fs::write(f.slot_path(slot), &torn).unwrap();
                let state = f.store.load().await.unwrap();
                let whole_new = torn
                    .iter()
                    .zip(new.iter())
                    .all(|(a, b)| a == b || (a.is_ascii_whitespace() && b.is_ascii_whitespace()));
                assert_eq!(state.pending.is_some(), whole_new, "split at {split}");
                assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
                tears += usize::from(!whole_new);
            }
        }
        assert!(tears > 100, "only {tears} torn mixes were tried");

        // The next write goes into the torn slot, not over the version read.
        let mut torn = new.clone();
        torn[100] ^= 1;
        fs::write(f.slot_path(slot), &torn).unwrap();
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_eq!(
            fs::read(f.slot_path(slot.other())).unwrap(),
            before[1 - written]
        );
        assert!(f.store.load().await.unwrap().pending.is_some());
    }

    #[tokio::test]
    async fn a_legacy_state_file_is_read_and_the_next_version_goes_to_the_other_slot() {
        let f = Fixture::new();
        let (current, rotation_id) = (Uuid::new_v4(), Uuid::new_v4());
        f.store.import_current(&token(current, 1)).await.unwrap();
        let legacy = json!({
            "format": 1,
            "intent": intent(rotation_id),
            "pending": null,
            "previous": null,
        })
        .to_string();
        fs::write(f.state_path(), &legacy).unwrap();
        // A format-1 writer left the version before in the swap file: never read.
        fs::write(
            f.slot_path(Slot::Second),
            json!({"format": 1, "intent": intent(Uuid::new_v4()), "pending": null, "previous": null})
                .to_string(),
        )
        .unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_eq!(fs::read_to_string(f.state_path()).unwrap(), legacy);
        assert_eq!(
            f.state_json()["pending"]["token_id"],
            token(rotation_id, 2).id()
        );
        f.store.promote(rotation_id, at(9)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert_eq!(state.previous.unwrap().token.rotation_id(), current);
    }

    #[test]
    fn only_the_head_this_program_writes_is_probed_for_its_sequence() {
        let probe = |text: &str| probe_sequence(text.as_bytes());
        assert_eq!(
            probe(r#"{"format":3,"sequence":42,"crc32":1,"state":{}}"#),
            Some(42)
        );
        assert_eq!(
            probe(r#"{"format":2,"sequence":42,"sha256":"","state":{}}"#),
            None
        );
        assert_eq!(probe(r#"{"format": 3, "sequence": 42, "crc32": 1}"#), None);
        assert_eq!(probe(r#"{"format":3,"sequence":,"#), None);
        assert_eq!(probe(r#"{"format":3,"sequence":42"#), None);
        assert_eq!(
            probe(r#"{"format":3,"sequence":99999999999999999999,"#),
            None
        );
    }

    /// A slot of format 2 (SHA-256), as versions before format 3 wrote it.
    fn format_2_slot(sequence: u64, state: &Value) -> String {
        let state = state.to_string();
        let slot = format!(
            "{{\"format\":2,\"sequence\":{sequence},\"sha256\":\"{}\",\"state\":{state}}}",
            slot_sha256(sequence, state.as_bytes())
        );
        format!("{slot:<2047}\n")
    }

    #[tokio::test]
    async fn a_format_2_slot_is_read_and_the_next_version_goes_to_the_other_slot_in_format_3() {
        let f = Fixture::new();
        let (current, rotation_id) = (Uuid::new_v4(), Uuid::new_v4());
        f.store.import_current(&token(current, 1)).await.unwrap();
        let old = format_2_slot(
            7,
            &json!({"intent": intent(rotation_id), "pending": null, "previous": null}),
        );
        fs::write(f.state_path(), &old).unwrap();
        fs::write(f.slot_path(Slot::Second), "").unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_eq!(fs::read_to_string(f.state_path()).unwrap(), old);
        let new: Value =
            serde_json::from_slice(&fs::read(f.slot_path(Slot::Second)).unwrap()).unwrap();
        assert_eq!(
            (new["format"].as_u64(), new["sequence"].as_u64()),
            (Some(3), Some(8))
        );
        assert!(
            new["crc32"].is_u64() && new.get("sha256").is_none(),
            "{new}"
        );
        assert_eq!(
            f.state_json()["pending"]["token_id"],
            token(rotation_id, 2).id()
        );

        // A format-2 slot whose sha256 does not match is torn, like a format-3 one whose
        // crc32 does not: the other slot is read.
        let damaged = old.replacen("\"sequence\":7", "\"sequence\":9", 1);
        fs::write(f.state_path(), &damaged).unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.pending.unwrap().id(), token(rotation_id, 2).id());
        fs::write(f.slot_path(Slot::Second), "").unwrap();
        let err = f.store.load().await.unwrap_err();
        assert!(
            err.to_string().contains("does not match its sha256"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn load_of_a_missing_store_is_empty_and_creates_nothing() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("not-yet");
        let store = FileStore::new(&FileStoreConfig {
            path: dir.join("erp.json"),
        });
        let state = store.load().await.unwrap();
        assert!(state.current.is_none() && state.intent.is_none());
        assert!(!dir.exists());
    }

    /// Runs rotation 1, stages rotation 2, then promotes it stopping after `writes` writes.
    async fn promote_interrupted(f: &Fixture, writes: usize) -> (Uuid, Uuid) {
        let first = f.rotate(1).await;
        let second = f.stage(2).await;
        promote(&f.store.files, second, at(500), writes).unwrap();
        (first, second)
    }

    #[tokio::test]
    async fn crash_after_promote_step_1_reads_as_not_yet_promoted() {
        let f = Fixture::new();
        let (first, second) = promote_interrupted(&f, 1).await;
        assert_eq!(
            f.state_json()["previous"]["token"]["token_id"],
            f.reader_json()["token_id"],
            "the simulated crash left step 1's state"
        );

        let state = f.store.load().await.unwrap();
        assert_previous_is_not_current(&state);
        assert_eq!(state.current.unwrap().rotation_id(), first);
        assert!(state.previous.is_none());
        assert_eq!(state.intent.unwrap().rotation_id, second);
        assert_eq!(state.pending.unwrap().rotation_id(), second);

        f.store.promote(second, at(600)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), second);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.rotation_id(), first);
        assert_eq!(previous.revoke_after, at(600));
        assert!(state.intent.is_none() && state.pending.is_none());
    }

    #[tokio::test]
    async fn crash_after_promote_step_1_can_be_abandoned_instead() {
        let f = Fixture::new();
        let (first, second) = promote_interrupted(&f, 1).await;
        f.store.abandon_rotation(second).await.unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), first);
        assert!(state.previous.is_none() && state.intent.is_none() && state.pending.is_none());
        assert_eq!(f.state_json()["previous"], Value::Null);
    }

    #[tokio::test]
    async fn crash_after_promote_step_2_reads_as_promoted_and_the_next_write_finishes_it() {
        let f = Fixture::new();
        let (first, second) = promote_interrupted(&f, 2).await;
        assert_eq!(
            f.state_json()["pending"]["rotation_id"],
            second.to_string(),
            "the simulated crash left step 2's state"
        );

        let state = f.store.load().await.unwrap();
        assert_previous_is_not_current(&state);
        assert_eq!(state.current.unwrap().rotation_id(), second);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.rotation_id(), first);
        assert_eq!(previous.revoke_after, at(500));
        assert!(state.intent.is_none() && state.pending.is_none());
        assert!(f.state_json()["pending"].is_object(), "load only reads");

        // A repeated promote is a no-op that persists the repair.
        f.store.promote(second, at(600)).await.unwrap();
        let on_disk = f.state_json();
        assert_eq!(on_disk["pending"], Value::Null);
        assert_eq!(on_disk["intent"], Value::Null);
        assert_eq!(on_disk["previous"]["revoke_after"], "2023-11-14T22:21:40Z");
    }

    #[tokio::test]
    async fn crash_during_a_first_promote_is_repaired_by_load() {
        let f = Fixture::new();
        let rotation_id = f.stage(1).await;
        // With no old current there is no step 1: the first write is the reader file.
        promote(&f.store.files, rotation_id, at(500), 1).unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert!(state.previous.is_none() && state.intent.is_none() && state.pending.is_none());
        f.store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap();
        assert_eq!(f.state_json()["pending"], Value::Null);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_begin_rotation_lets_exactly_one_win() {
        const RACERS: usize = 8;
        let f = Fixture::new();
        let start = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let store = f.other_store();
                let start = Arc::clone(&start);
                let intent = intent(Uuid::new_v4());
                tokio::spawn(async move {
                    start.wait().await;
                    (intent.clone(), store.begin_rotation(&intent).await)
                })
            })
            .collect();

        let mut winners = Vec::new();
        for racer in racers {
            let (intent, result) = racer.await.unwrap();
            match result {
                Ok(()) => winners.push(intent),
                Err(err) => assert!(err.is_conflict(), "{err}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(
            f.store.load().await.unwrap().intent.as_ref(),
            winners.first()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_import_lets_exactly_one_win() {
        const RACERS: i64 = 8;
        let f = Fixture::new();
        let start = Arc::new(tokio::sync::Barrier::new(RACERS as usize));
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let store = f.other_store();
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    let record = token(Uuid::new_v4(), n);
                    start.wait().await;
                    (record.id().to_string(), store.import_current(&record).await)
                })
            })
            .collect();

        let mut winners = Vec::new();
        for racer in racers {
            let (token_id, result) = racer.await.unwrap();
            match result {
                Ok(()) => winners.push(token_id),
                Err(err) => assert!(err.is_conflict(), "{err}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(f.reader_json()["token_id"], winners[0]);
    }

    #[tokio::test]
    async fn corrupt_state_file_is_invalid_and_the_error_quotes_no_value() {
        let f = Fixture::new();
        let planted = format!("ts-{SECRET_MARK}-planted");
        let corrupt = format!(r#"{{"format": "{planted}", "intent": null}}"#);
        fs::write(f.state_path(), &corrupt).unwrap();
        let naive = serde_json::from_str::<FormatOnly>(&corrupt).unwrap_err();
        assert!(
            naive.to_string().contains(&planted),
            "serde_json would have quoted the planted value"
        );

        let err = f.store.load().await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        assert_eq!(err.operation, "load");
        let message = err.to_string();
        assert!(
            message.contains(&f.state_path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("line 1"), "{message}");
        assert!(!message.contains(SECRET_MARK), "{message}");

        // Writing operations refuse too, and leave the file for a person to look at.
        let err = f
            .store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        assert_eq!(fs::read_to_string(f.state_path()).unwrap(), corrupt);
    }

    #[tokio::test]
    async fn corrupt_reader_file_is_invalid_and_names_the_file() {
        let f = Fixture::new();
        fs::write(
            &f.path,
            format!(r#"{{"token_secret": "ts-{SECRET_MARK}-x", "#),
        )
        .unwrap();
        let err = f.store.load().await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        let message = err.to_string();
        assert!(message.contains(&f.path.display().to_string()), "{message}");
        assert!(!message.contains(SECRET_MARK), "{message}");
    }

    #[tokio::test]
    async fn a_state_slot_of_an_unknown_format_is_invalid_even_beside_a_good_one() {
        let f = Fixture::new();
        f.rotate(1).await;
        f.stage(2).await;
        for slot in [Slot::First, Slot::Second] {
            let good = fs::read(f.slot_path(slot)).unwrap();
            fs::write(f.slot_path(slot), r#"{"format": 4}"#).unwrap();
            let err = f.store.load().await.unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::Invalid);
            assert!(err.detail.contains("format 4"), "{err}");
            assert!(
                err.detail
                    .contains(&f.slot_path(slot).display().to_string()),
                "{err}"
            );
            fs::write(f.slot_path(slot), good).unwrap();
        }
        assert!(f.store.load().await.unwrap().pending.is_some());
    }

    #[tokio::test]
    async fn errors_name_the_store_and_the_operation() {
        let f = Fixture::new();
        assert_eq!(f.store.describe(), format!("file {}", f.path.display()));
        f.store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap();
        let err = f
            .store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.store, f.store.describe());
        assert_eq!(err.operation, "begin_rotation");

        // A parent "directory" that is a file: the file system's own words reach the message.
        let blocker = f.path.with_file_name("blocker");
        fs::write(&blocker, "").unwrap();
        let store = FileStore::new(&FileStoreConfig {
            path: blocker.join("erp.json"),
        });
        let err = store
            .import_current(&token(Uuid::new_v4(), 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Failed);
        assert!(err.detail.contains(&blocker.display().to_string()), "{err}");
    }

    #[test]
    fn refused_permissions_are_denied_and_a_full_disk_is_temporary() {
        let kind = |errno| io_error_kind(&io::Error::from_raw_os_error(errno));
        const EPERM: i32 = 1;
        const ENOENT: i32 = 2;
        const EACCES: i32 = 13;
        const ENOSPC: i32 = 28;
        assert_eq!(kind(EACCES), StoreErrorKind::Denied);
        assert_eq!(kind(EPERM), StoreErrorKind::Denied);
        assert_eq!(kind(ENOSPC), StoreErrorKind::Unavailable);
        assert_eq!(kind(ENOENT), StoreErrorKind::Failed);
    }

    #[tokio::test]
    async fn debug_output_never_shows_secrets() {
        let f = Fixture::new();
        f.rotate(1).await;
        f.rotate(2).await;
        f.stage(3).await;
        assert!(
            f.state_json().to_string().contains(SECRET_MARK),
            "the state does hold secrets, so the check below can fail"
        );

        let state = f.store.load().await.unwrap();
        let snapshot = f.store.files.read(Looseness::Warn).unwrap();
        for debug in [
            format!("{state:?}"),
            format!("{snapshot:?}"),
            format!("{:?}", f.store),
        ] {
            assert!(!debug.contains(SECRET_MARK), "{debug}");
        }
    }
}
