//! What went wrong with a file, as a store error naming the file and what to do.

use std::io;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::StoreErrorKind;

/// A failed operation, before the store and operation names are attached.
#[derive(Debug)]
pub(super) struct Fault {
    pub(super) kind: StoreErrorKind,
    pub(super) detail: String,
}

impl Fault {
    pub(super) fn serialise(target: &Path, err: &serde_json::Error) -> Fault {
        Fault {
            kind: StoreErrorKind::Failed,
            detail: format!(
                "could not serialise {}: {:?} error",
                target.display(),
                err.classify()
            ),
        }
    }

    pub(super) fn conflict(detail: String) -> Fault {
        Fault {
            kind: StoreErrorKind::Conflict,
            detail,
        }
    }

    pub(super) fn io(action: &str, path: &Path, err: &io::Error) -> Fault {
        Fault {
            kind: io_error_kind(err),
            detail: format!("{action} {}: {err}", path.display()),
        }
    }

    /// serde_json's own messages can quote the offending value (a secret), so only the position
    /// and the category are reported.
    pub(super) fn unreadable_json(path: &Path, err: &serde_json::Error) -> Fault {
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

pub(super) fn io_error_kind(err: &io::Error) -> StoreErrorKind {
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

/// Parses the bytes of the file at `path` (named in the error, which quotes no value).
pub(super) fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, Fault> {
    serde_json::from_slice(bytes).map_err(|err| Fault::unreadable_json(path, &err))
}
