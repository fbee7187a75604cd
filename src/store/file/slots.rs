//! The state slots: the rotation's bookkeeping written into one of two slot files in turn,
//! each with its sequence and a checksum, so a slot a crash tore is told from a whole one and
//! the other slot still holds the last whole state; the formats read (3: CRC-32, 2: SHA-256,
//! 1: the one legacy state file).

use std::fs::{File, Permissions};
use std::io;
use std::io::{IoSlice, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::fault::{Fault, parse_json};
use super::{CredentialRecord, Intent, LoginLatch, PreviousToken, StoreErrorKind};

/// The `format` of the state slots this code writes: a CRC-32 over the sequence and the state.
pub(super) const STATE_FORMAT: u32 = 3;
/// Slots written by earlier versions, with a SHA-256 instead of the CRC-32; still read.
pub(super) const SHA256_STATE_FORMAT: u32 = 2;
/// A single state file replaced by rename, written by earlier versions; still read.
pub(super) const LEGACY_STATE_FORMAT: u32 = 1;
/// A state slot is padded with spaces to at least this many bytes, and grows in steps of
/// [`STATE_SLOT_STEP`]; it keeps its length while its content fits (see [`slot_length`]), so that
/// rewriting it in place leaves `fdatasync` no inode change to commit.
pub(super) const STATE_SLOT_MIN: usize = 2048;
pub(super) const STATE_SLOT_STEP: usize = 1024;
/// What a store file's JSON is serialised into up front: more than any of them needs, so that
/// the buffer holding secrets is not reallocated (leaving copies behind).
pub(super) const SERIALISE_CAPACITY: usize = 4096;
pub(super) const SECRET_FILE_MODE: u32 = 0o600;
pub(super) const CREATED_DIR_MODE: u32 = 0o700;
/// Permission bits that let anyone but the owner near a secret file.
pub(super) const GROUP_OTHER_BITS: u32 = 0o077;

/// The rotation's bookkeeping: everything but the current token.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Bookkeeping {
    pub(super) intent: Option<Intent>,
    pub(super) pending: Option<CredentialRecord>,
    pub(super) previous: Option<PreviousToken>,
    /// Absent in files written before the latch existed, and while it is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) login_latch: Option<LoginLatch>,
}

/// A state slot as written: `crc32` (format 3) or `sha256` (format 2, earlier versions) covers
/// `sequence` and the exact bytes of `state` (see [`slot_crc32`] and [`slot_sha256`]), so a
/// slot torn by a crash in the middle of its write is told from a whole one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SlotDocument<'a> {
    pub(super) format: u32,
    pub(super) sequence: u64,
    #[serde(default)]
    pub(super) crc32: Option<u32>,
    #[serde(default, borrow)]
    pub(super) sha256: Option<&'a str>,
    #[serde(borrow)]
    pub(super) state: &'a serde_json::value::RawValue,
}

impl SlotDocument<'_> {
    /// A format whose checksum this program checks.
    pub(super) fn is_checked_format(format: u32) -> bool {
        format == STATE_FORMAT || format == SHA256_STATE_FORMAT
    }
}

/// A state file of [`LEGACY_STATE_FORMAT`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LegacyStateFile {
    #[serde(rename = "format")]
    pub(super) _format: u32,
    pub(super) intent: Option<Intent>,
    pub(super) pending: Option<CredentialRecord>,
    pub(super) previous: Option<PreviousToken>,
}

/// Only the `format` of a state slot, to tell which layout the rest has.
#[derive(Debug, Deserialize)]
pub(super) struct FormatOnly {
    pub(super) format: u32,
}

/// One of the two files the state is written to, in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// `<path>.state.json`, also the name of a [`LEGACY_STATE_FORMAT`] state file.
    First,
    /// `<path>.state.swap`, where a [`LEGACY_STATE_FORMAT`] writer kept the version before.
    Second,
}

impl Slot {
    pub(super) fn suffix(self) -> &'static str {
        match self {
            Slot::First => ".state.json",
            Slot::Second => ".state.swap",
        }
    }

    pub(super) fn other(self) -> Slot {
        match self {
            Slot::First => Slot::Second,
            Slot::Second => Slot::First,
        }
    }

    /// Where the slot's bytes go in a `[_; 2]` of both.
    pub(super) fn index(self) -> usize {
        match self {
            Slot::First => 0,
            Slot::Second => 1,
        }
    }
}

/// What one slot holds, read as far as choosing between the two needs: only the newer
/// slot's checksum is checked and its state parsed, unless it turns out torn.
pub(super) enum SlotContent<'a> {
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
    pub(super) fn sequence(&self) -> Option<u64> {
        match self {
            SlotContent::Probed { sequence, .. } => Some(*sequence),
            SlotContent::Unchecked(document) => Some(document.sequence),
            SlotContent::Version { sequence, .. } => Some(*sequence),
            SlotContent::Empty | SlotContent::Torn(_) => None,
        }
    }
}

/// Rewrites an existing slot in place (see the module doc for why a crash in the middle of it
/// loses nothing); returns the slot's length.
pub(super) fn overwrite_slot(
    file: &File,
    path: &Path,
    content: &SlotBytes,
) -> Result<usize, Fault> {
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
        .map_err(|err| Fault::io("syncing", path, &err))?;
    Ok(length)
}

/// A state slot's [`SlotDocument`] before padding.
pub(super) struct SlotBytes {
    pub(super) head: String,
    /// The state, compact: it is read by this store alone.
    pub(super) body: Wiped,
}

/// Spaces to pad a slot with, written from here instead of from a buffer of the slot's size.
pub(super) static PADDING: [u8; 1024] = [b' '; 1024];

impl SlotBytes {
    pub(super) fn new(target: &Path, sequence: u64, state: &Bookkeeping) -> Result<Self, Fault> {
        let mut body = Wiped(Vec::with_capacity(SERIALISE_CAPACITY));
        serde_json::to_writer(&mut *body, state).map_err(|err| Fault::serialise(target, &err))?;
        let head = format!(
            "{{\"format\":{STATE_FORMAT},\"sequence\":{sequence},\"crc32\":{},\"state\":",
            slot_crc32(sequence, &body)
        );
        Ok(SlotBytes { head, body })
    }

    /// The slot's bytes before padding and its final newline.
    pub(super) fn len(&self) -> usize {
        self.head.len() + self.body.len() + 1
    }

    /// The parts of the whole slot, padded with spaces to `length` and ending in a newline.
    pub(super) fn parts(&self, length: usize) -> Vec<IoSlice<'_>> {
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
    pub(super) fn padded(&self, current: Option<u64>) -> Wiped {
        self.padded_to(slot_length(self.len(), current))
    }

    /// The whole slot, `length` bytes, in a buffer wiped when dropped.
    pub(super) fn padded_to(&self, length: usize) -> Wiped {
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
    pub(super) fn write_at_start(&self, mut file: &File, length: usize) -> io::Result<()> {
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
pub(super) struct Wiped(pub(super) Vec<u8>);

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
pub(super) fn slot_length(content: usize, current: Option<u64>) -> usize {
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
pub(super) fn probe_sequence(bytes: &[u8]) -> Option<u64> {
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
pub(super) fn without_padding(bytes: &[u8]) -> &[u8] {
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
pub(super) fn check_slot_document(path: &Path, document: &SlotDocument) -> SlotContent<'static> {
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
pub(super) fn slot_crc32(sequence: u64, state: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    hasher.update(state);
    hasher.finalize()
}

/// A format-2 slot's `sha256`: of its sequence in decimal, a newline and the exact bytes of its
/// state, in lowercase hex. Only read: slots are written in format 3.
pub(super) fn slot_sha256(sequence: u64, state: &[u8]) -> String {
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
