//! What the commands print, written so that a reader who stops reading ends nothing badly.
//!
//! `println!` panics when a write fails, and `netsuite-token-rotator demo | head -3` closes the
//! pipe after three lines: the next line met EPIPE and the process died with a panic (exit
//! 101). [`outln!`] and [`errln!`] write a line and, once a stream has failed, drop what follows
//! for it. A reader that went away (EPIPE) is not an error: the command carries on with the
//! work it was asked for (a rotation is never left half done because nobody reads its report),
//! prints nothing more, and exits with the outcome of that work, so `status | head -1` exits 0
//! when every store is readable. This is not what a C tool does (SIGPIPE kills it, 141 in the
//! shell) but what a Rust tool like ripgrep does; the exit code keeps meaning "the work
//! succeeded". Any other failure to write stdout (a full disk behind `> file`) is said on
//! stderr once and makes the command exit 1: its output is incomplete.

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU8, Ordering};

/// A stream's state: still writable, its reader gone, or failed otherwise.
const OPEN: u8 = 0;
const READER_GONE: u8 = 1;
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);
static STDERR: AtomicU8 = AtomicU8::new(OPEN);

/// Writes a line to stdout; see the module comment for what happens when that fails.
macro_rules! outln {
    () => { $crate::cli::out::stdout_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::out::stdout_line(format_args!($($arg)*)) };
}

/// Writes a line to stderr; a failure is dropped silently (there is nowhere left to say it).
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::stderr_line(format_args!($($arg)*)) };
}

pub(crate) use {errln, outln};

/// [`outln!`]'s body.
pub fn stdout_line(line: Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) != OPEN {
        return;
    }
    // Stdout is line-buffered: the write of the whole line, newline included, is what fails.
    let written = writeln!(std::io::stdout().lock(), "{line}");
    if let Err(e) = written {
        if e.kind() == ErrorKind::BrokenPipe {
            STDOUT.store(READER_GONE, Ordering::Relaxed);
        } else {
            STDOUT.store(FAILED, Ordering::Relaxed);
            stderr_line(format_args!("error: cannot write to stdout: {e}"));
        }
    }
}

/// [`errln!`]'s body.
pub fn stderr_line(line: Arguments<'_>) {
    if STDERR.load(Ordering::Relaxed) != OPEN {
        return;
    }
    if writeln!(std::io::stderr().lock(), "{line}").is_err() {
        STDERR.store(READER_GONE, Ordering::Relaxed);
    }
}

/// Whether stdout can no longer be written (its reader went away, or it failed): a command
/// that only narrates, like `demo`, stops at this point.
pub fn stdout_closed() -> bool {
    STDOUT.load(Ordering::Relaxed) != OPEN
}

/// Whether writing stdout failed for another reason than a reader that went away: the output
/// is incomplete, and the command must not exit 0.
pub fn stdout_failed() -> bool {
    STDOUT.load(Ordering::Relaxed) == FAILED
}
