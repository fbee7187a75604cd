//! Crash points for tests: `NETSUITE_ROTATOR_FAILPOINT=after-stage` makes the process abort
//! right after that step, exactly as a `kill -9` there would, so tests can prove that the next
//! start recovers from every point between two steps.
//!
//! Names: `after-intent`, `after-issue`, `after-stage`, `after-verify`, `after-promote`.
//! Unset (always, in production) it costs one cached environment lookup.

use std::sync::OnceLock;

pub const ENV: &str = "NETSUITE_ROTATOR_FAILPOINT";

pub fn hit(name: &str) {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var(ENV).ok());
    if chosen.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting the process as a crash would");
        std::process::abort();
    }
}
