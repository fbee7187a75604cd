//! Who owns an in-flight rotation, and whether that owner is still alive.
//!
//! An intent left in a store means either a rotation is running right now (in this or another
//! process, maybe on another host) or its process died. Recovery must resume the second and
//! leave the first alone. The owner string `host/pid/start-time` lets a process on the same host
//! see at once that the owner is gone (pid absent, or reused by a younger process); for other
//! hosts recovery waits until the intent is older than the stale limit. A fourth part names the
//! engine instance, so that two engines in one process (tests, or a daemon beside an operator's
//! command in one binary) do not take each other's rotations for leftovers.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// An intent older than this is treated as abandoned whoever owns it: far longer than any
/// rotation takes, retries included.
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// An engine instance in this process, as an intent owner. Only the instance number is kept
/// per engine (a daemon holds thousands for weeks); the process part is read once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    instance: u32,
}

impl Owner {
    /// A new engine instance in this process.
    pub fn new_instance() -> Owner {
        Owner {
            instance: rand::random::<u32>(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let process = PROCESS.get_or_init(|| {
            let pid = std::process::id();
            format!("{}/{pid}/{}", hostname(), start_ticks(pid).unwrap_or(0))
        });
        write!(f, "{process}/{:08x}", self.instance)
    }
}

/// Whether the rotation recorded with `owner` at `started_at` can no longer be running, as seen
/// by the engine instance `me`.
pub fn is_abandoned(owner: &str, me: &str, started_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    if owner == me {
        // Our own leftover (a step that failed earlier): nothing else is running it.
        return true;
    }
    if let Some(dead) = owner_is_dead_here(owner) {
        return dead;
    }
    let age = now.signed_duration_since(started_at);
    age.to_std().is_ok_and(|age| age > STALE_AFTER)
}

/// `Some(true)` if the owner ran on this host and is gone, `Some(false)` if it still runs here,
/// `None` if it ran elsewhere (or the owner string is not ours).
fn owner_is_dead_here(owner: &str) -> Option<bool> {
    let mut parts = owner.rsplitn(4, '/');
    let _instance = parts.next()?;
    let ticks: u64 = parts.next()?.parse().ok()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    if host != hostname() {
        return None;
    }
    Some(start_ticks(pid) != Some(ticks))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot. With the
/// pid it names one process even when pids are reused.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_dead() {
        let me = Owner::new_instance().to_string();
        assert_eq!(owner_is_dead_here(&me), Some(false));
        let sibling = Owner::new_instance().to_string();
        assert!(!is_abandoned(&sibling, &me, Utc::now(), Utc::now()));
        assert!(is_abandoned(&me, &me, Utc::now(), Utc::now()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let ticks = start_ticks(pid).unwrap_or(1);
        child.wait().unwrap();
        let gone = format!("{}/{pid}/{ticks}/0", hostname());
        assert_eq!(owner_is_dead_here(&gone), Some(true));
    }

    #[test]
    fn other_hosts_wait_for_the_stale_limit() {
        let now = Utc::now();
        let owner = "some-other-host/1/1/0";
        let me = Owner::new_instance().to_string();
        assert!(!is_abandoned(owner, &me, now, now));
        let old =
            now - chrono::Duration::from_std(STALE_AFTER).unwrap() - chrono::Duration::seconds(1);
        assert!(is_abandoned(owner, &me, old, now));
    }
}
