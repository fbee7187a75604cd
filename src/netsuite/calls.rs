//! How NetSuite answered, counted per call and kind of result, for the metrics.
//!
//! The client counts every attempt (each HTTP exchange a retry makes counts again), so the
//! rate at which the account's concurrency limit pushes back is visible beside the rotations
//! it slowed down. The counts live here, next to the calls, and `telemetry::metrics` reads
//! them at scrape time: the client knows nothing of the registry.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{Call, NetSuiteError};

/// What one attempt of a call came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// A usable answer.
    Ok,
    /// The account's concurrency limit (`400 SSS_REQUEST_LIMIT_EXCEEDED` or `429`).
    RateLimited,
    /// An NLAuth login refused.
    LoginFailed,
    /// A refused OAuth request (1.0 or 2.0), a refused access token or another 4xx.
    Refused,
    /// 5xx: NetSuite's server error or maintenance.
    ServerError,
    /// An answer that is not the service's (a page, a fault, broken JSON).
    BadResponse,
    /// No complete answer: connection, TLS, timeout.
    Transport,
}

impl CallResult {
    pub const ALL: [CallResult; 7] = [
        CallResult::Ok,
        CallResult::RateLimited,
        CallResult::LoginFailed,
        CallResult::Refused,
        CallResult::ServerError,
        CallResult::BadResponse,
        CallResult::Transport,
    ];

    /// The metric label value.
    pub fn name(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::RateLimited => "rate_limited",
            CallResult::LoginFailed => "login_failed",
            CallResult::Refused => "refused",
            CallResult::ServerError => "server_error",
            CallResult::BadResponse => "bad_response",
            CallResult::Transport => "transport_error",
        }
    }

    /// The result an error stands for; `None` when nothing was sent (the request could not
    /// be built, no TOTP code), which is not an attempt and is counted nowhere.
    pub fn of_error(error: &NetSuiteError) -> Option<CallResult> {
        Some(match error {
            NetSuiteError::RateLimited { .. } => CallResult::RateLimited,
            NetSuiteError::LoginFailed { .. } => CallResult::LoginFailed,
            NetSuiteError::OAuthRejected { .. }
            | NetSuiteError::OAuth2Rejected { .. }
            | NetSuiteError::AccessTokenRefused { .. }
            | NetSuiteError::Rejected { .. }
            | NetSuiteError::RedirectRefused { .. } => CallResult::Refused,
            NetSuiteError::ServerError { .. } => CallResult::ServerError,
            NetSuiteError::BadResponse { .. } | NetSuiteError::RevokeNotConfirmed { .. } => {
                CallResult::BadResponse
            }
            NetSuiteError::Transport { .. } => CallResult::Transport,
            NetSuiteError::ClientBuild(_)
            | NetSuiteError::InvalidRequest { .. }
            | NetSuiteError::Totp(_) => return None,
        })
    }
}

/// The calls that are counted (the unauthenticated `check` probe is not).
pub const COUNTED_CALLS: [Call; 8] = [
    Call::IssueToken,
    Call::TokenInfo,
    Call::RevokeToken,
    Call::DataCenterUrls,
    Call::M2mToken,
    Call::ListCertificates,
    Call::AddCertificate,
    Call::RevokeCertificate,
];

/// Attempts by call and result. Shared by every clone of a client.
#[derive(Debug, Default)]
pub struct CallCounts {
    counts: [[AtomicU64; CallResult::ALL.len()]; COUNTED_CALLS.len()],
}

impl CallCounts {
    pub(crate) fn record(&self, call: Call, result: CallResult) {
        if let Some(row) = COUNTED_CALLS.iter().position(|c| *c == call) {
            let column = CallResult::ALL.iter().position(|r| *r == result);
            if let Some(column) = column {
                self.counts[row][column].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The attempts of `call` that came to `result` so far.
    pub fn get(&self, call: Call, result: CallResult) -> u64 {
        let row = COUNTED_CALLS.iter().position(|c| *c == call);
        let column = CallResult::ALL.iter().position(|r| *r == result);
        match (row, column) {
            (Some(row), Some(column)) => self.counts[row][column].load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Every (call, result, count), zeros included, in a fixed order.
    pub fn snapshot(&self) -> impl Iterator<Item = (Call, CallResult, u64)> + '_ {
        COUNTED_CALLS.iter().flat_map(move |call| {
            CallResult::ALL
                .iter()
                .map(move |result| (*call, *result, self.get(*call, *result)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_by_call_and_result() {
        let counts = CallCounts::default();
        counts.record(Call::IssueToken, CallResult::RateLimited);
        counts.record(Call::IssueToken, CallResult::RateLimited);
        counts.record(Call::IssueToken, CallResult::Ok);
        counts.record(Call::Probe, CallResult::Ok);
        assert_eq!(counts.get(Call::IssueToken, CallResult::RateLimited), 2);
        assert_eq!(counts.get(Call::IssueToken, CallResult::Ok), 1);
        assert_eq!(counts.get(Call::TokenInfo, CallResult::Ok), 0);
        assert_eq!(counts.snapshot().count(), 56);
        assert_eq!(counts.snapshot().map(|(_, _, n)| n).sum::<u64>(), 3);
    }
}
