//! The per-account request concurrency limit that NetSuite's RESTlet domains enforce, and a
//! service time that lets tests make requests overlap.
//!
//! Every `/rest/*` request whose account can be read (the NLAuth header's `nlauth_account`, the
//! OAuth header's `realm`, or datacenterurls' `account` query value, uppercased as the
//! simulator keys accounts) holds one of that account's slots from its arrival until its answer
//! is produced. A request that finds `concurrency_limit` requests of its account in flight is
//! answered at once with `400 SSS_REQUEST_LIMIT_EXCEEDED`, as the protocol page says RESTlet
//! domains answer (not 429). A request with no readable account is not limited.
//!
//! Slots are counted whether or not a limit is set, so that a limit set while requests are in
//! flight counts them, and [`Inspection::in_flight`](super::Inspection::in_flight) always shows
//! them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Simulator;

/// The limit settings, as `PUT /sim/limits` takes them and `GET /sim/limits` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests of one account that may be in flight at once; `None` (the default) for no
    /// limit. The protocol page says real accounts have single digits unless licences are
    /// bought, shared by every integration of the account.
    pub concurrency_limit: Option<u32>,
    /// Service time of every admitted `/rest/*` request, in milliseconds: slept while the
    /// request holds its slot, before the simulator processes it. With 0 (the default) a slot
    /// is held only while the request is processed.
    pub latency_ms: u64,
}

/// Why a limit setting was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("limits.concurrency_limit must be at least 1; leave it out for no limit")]
    ZeroConcurrency,
}

impl Limits {
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.concurrency_limit == Some(0) {
            return Err(LimitsError::ZeroConcurrency);
        }
        Ok(())
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

/// Requests in flight by account (uppercase id); accounts with none are not kept, so the map
/// stays as small as the number of accounts busy at once.
#[derive(Default)]
pub(crate) struct InFlight {
    by_account: HashMap<String, u32>,
}

impl InFlight {
    /// Takes a slot of `account` unless `limit` are taken already; says whether it did.
    pub fn try_take(&mut self, account: &str, limit: Option<u32>) -> bool {
        let held = self.by_account.get(account).copied().unwrap_or(0);
        if limit.is_some_and(|limit| held >= limit) {
            return false;
        }
        *self.by_account.entry(account.to_string()).or_default() += 1;
        true
    }

    pub fn give_back(&mut self, account: &str) {
        if let Some(held) = self.by_account.get_mut(account) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.by_account.remove(account);
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u32> {
        self.by_account
            .iter()
            .map(|(account, held)| (account.clone(), *held))
            .collect()
    }
}

/// One slot of an account, held by a request. It is given back when dropped, so that every end
/// of a request frees it: an answer, a fault's answer, a reset, a held connection being closed,
/// the client hanging up, a connection dropped at shutdown.
pub(crate) struct Slot {
    sim: Simulator,
    account: String,
}

impl Slot {
    /// Wraps a slot already taken in `sim`'s state. Must not be made, nor dropped, while the
    /// state's lock is held by the caller: dropping it takes that lock.
    pub fn taken(sim: &Simulator, account: String) -> Slot {
        Slot {
            sim: sim.clone(),
            account,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.sim.lock().give_back_slot(&self.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_refused_at_the_limit_per_account_and_freed_when_given_back() {
        let mut in_flight = InFlight::default();
        assert!(in_flight.try_take("A", Some(2)));
        assert!(in_flight.try_take("A", Some(2)));
        assert!(!in_flight.try_take("A", Some(2)));
        assert!(in_flight.try_take("B", Some(2)));
        in_flight.give_back("A");
        assert!(in_flight.try_take("A", Some(2)));
        assert_eq!(
            in_flight.snapshot(),
            BTreeMap::from([("A".to_string(), 2), ("B".to_string(), 1)])
        );
        in_flight.give_back("B");
        assert_eq!(in_flight.snapshot().get("B"), None);
    }

    #[test]
    fn slots_are_counted_without_a_limit_and_a_lowered_limit_counts_them() {
        let mut in_flight = InFlight::default();
        for _ in 0..3 {
            assert!(in_flight.try_take("A", None));
        }
        assert!(!in_flight.try_take("A", Some(3)));
        in_flight.give_back("A");
        assert!(!in_flight.try_take("A", Some(2)));
        in_flight.give_back("A");
        assert!(in_flight.try_take("A", Some(2)));
        // Giving back more than was taken (never done) does not wrap around.
        let mut empty = InFlight::default();
        empty.give_back("A");
        assert!(empty.snapshot().is_empty());
    }

    #[test]
    fn zero_is_not_a_limit() {
        let zero = Limits {
            concurrency_limit: Some(0),
            ..Limits::default()
        };
        assert_eq!(zero.validate(), Err(LimitsError::ZeroConcurrency));
        assert_eq!(Limits::default().validate(), Ok(()));
    }
}
