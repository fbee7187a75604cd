//! The store's steps, each under the lock: load, begin a rotation, stage, promote, abandon,
//! mark the previous revoked, import, the login latch, and the writability check.

use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CredentialRecord, Intent, LoginLatch, PreviousToken, StoreState};
use crate::secret::short_id;
use crate::store::file::{Fault, Files, Looseness, Slot};

pub(super) fn load(files: &mut Files) -> Result<StoreState, Fault> {
    let Some(_lock) = files.lock_existing()? else {
        return Ok(StoreState::default());
    };
    Ok(files.read(Looseness::Warn)?.into_store_state())
}

pub(super) fn begin_rotation(files: &mut Files, intent: &Intent) -> Result<(), Fault> {
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

pub(super) fn stage_pending(files: &mut Files, token: &CredentialRecord) -> Result<(), Fault> {
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
pub(super) fn promote(
    files: &mut Files,
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

pub(super) fn abandon_rotation(files: &mut Files, rotation_id: Uuid) -> Result<(), Fault> {
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

pub(super) fn mark_previous_revoked(
    files: &mut Files,
    token_id: &str,
    at: DateTime<Utc>,
) -> Result<(), Fault> {
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

pub(super) fn import_current(files: &mut Files, token: &CredentialRecord) -> Result<(), Fault> {
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

pub(super) fn set_login_latch(files: &mut Files, latch: Option<LoginLatch>) -> Result<(), Fault> {
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
pub(super) fn check_writable(files: &Files) -> Result<(), Fault> {
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
pub(super) fn may_write(path: &Path, search: bool) -> io::Result<()> {
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
