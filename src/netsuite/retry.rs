//! Bounded retries with exponential backoff and full jitter, for transient failures only.
//!
//! `issuetoken` is special: a retry after an answer was lost could issue a second token while
//! the first stays valid and unknown, and a retried login failure walks towards a lockout. So
//! an `issuetoken` failure is retried only when it certainly issued nothing. A certificate add
//! likewise: a second add could take a second of the five active slots.

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;

use super::ClientOptions;
use super::calls::{CallCounts, CallResult};
use super::error::{Call, NetSuiteError};

/// Whether `err`, from `call`, may be retried at all (the attempt budget aside). A failure
/// that may have issued a token or added a certificate is not: the caller finds out first.
pub(crate) fn is_retryable(call: Call, err: &NetSuiteError) -> bool {
    if !err.is_transient() || err.may_have_issued() {
        return false;
    }
    call != Call::IssueToken || !err.is_login_failure()
}

/// The pause before attempt `failed_attempt + 1`: uniform in `[0, min(max, initial * 2^(n-1))]`
/// ("full jitter"), but never shorter than a `Retry-After` NetSuite asked for (itself capped at
/// the maximum backoff).
pub(crate) fn backoff_delay(
    options: &ClientOptions,
    failed_attempt: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = failed_attempt.saturating_sub(1).min(30);
    let ceiling = options
        .initial_backoff
        .saturating_mul(1u32 << exponent)
        .min(options.max_backoff);
    let jittered = if ceiling.is_zero() {
        Duration::ZERO
    } else {
        rand::rng().random_range(Duration::ZERO..=ceiling)
    };
    let asked = retry_after.unwrap_or_default().min(options.max_backoff);
    jittered.max(asked)
}

/// Runs `attempt(n)` for n = 1, 2, … until it succeeds, fails for good, or its budget is
/// spent: `options.max_attempts` for transient failures, plus
/// `options.max_rate_limited_attempts` for answers of the account's concurrency limit, which
/// back off on their own count. Each attempt's result is counted in `counts`; each retry is
/// logged at warn with the call, the attempt and the error (whose messages carry no query
/// values and no headers).
pub(crate) async fn with_retries<T, F, Fut>(
    options: &ClientOptions,
    counts: &CallCounts,
    call: Call,
    mut attempt: F,
) -> Result<T, NetSuiteError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, NetSuiteError>>,
{
    let max_attempts = options.max_attempts.max(1);
    let mut number = 1;
    // Failures that count against each budget so far.
    let (mut failures, mut rate_limited) = (0u32, 0u32);
    loop {
        let result = attempt(number).await;
        let counted = match &result {
            Ok(_) => Some(CallResult::Ok),
            Err(err) => CallResult::of_error(err),
        };
        if let Some(counted) = counted {
            counts.record(call, counted);
        }
        let err = match result {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let (spent, budget) = if err.is_rate_limited() {
            rate_limited += 1;
            (rate_limited, options.max_rate_limited_attempts)
        } else {
            failures += 1;
            (failures, max_attempts - 1)
        };
        if spent > budget || !is_retryable(call, &err) {
            return Err(err);
        }
        let delay = backoff_delay(options, spent, err.retry_after());
        tracing::warn!(
            endpoint = %call,
            attempt = number,
            retries_left = budget - spent,
            rate_limited = err.is_rate_limited(),
            delay_ms = delay.as_millis() as u64,
            error = %err,
            "NetSuite call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netsuite::error::TransportKind;

    fn backoff_options(initial_ms: u64, max_ms: u64) -> ClientOptions {
        ClientOptions {
            initial_backoff: Duration::from_millis(initial_ms),
            max_backoff: Duration::from_millis(max_ms),
            ..ClientOptions::default()
        }
    }

    #[test]
    fn backoff_stays_within_the_exponential_ceiling() {
        let options = backoff_options(100, 1000);
        for attempt in 1..=8 {
            let ceiling = Duration::from_millis((100u64 << (attempt - 1)).min(1000));
            for _ in 0..50 {
                assert!(
                    backoff_delay(&options, attempt, None) <= ceiling,
                    "attempt {attempt}"
                );
            }
        }
        assert_eq!(
            backoff_delay(&backoff_options(0, 0), 3, None),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_maximum() {
        let options = backoff_options(1, 2000);
        assert!(backoff_delay(&options, 1, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        assert_eq!(
            backoff_delay(&options, 1, Some(Duration::from_secs(3600))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn issuetoken_is_retried_only_when_nothing_was_issued() {
        let transport = |call, kind| NetSuiteError::Transport {
            call,
            kind,
            cause: String::new(),
        };
        assert!(is_retryable(
            Call::IssueToken,
            &transport(Call::IssueToken, TransportKind::Connect)
        ));
        assert!(!is_retryable(
            Call::IssueToken,
            &transport(Call::IssueToken, TransportKind::Timeout)
        ));
        assert!(is_retryable(
            Call::TokenInfo,
            &transport(Call::TokenInfo, TransportKind::Timeout)
        ));
        let login = NetSuiteError::LoginFailed {
            call: Call::IssueToken,
            status: 401,
            detail: Default::default(),
        };
        assert!(!is_retryable(Call::IssueToken, &login));
    }

    #[test]
    fn a_certificate_add_is_retried_only_when_it_did_nothing() {
        let call = Call::AddCertificate;
        let transport = |kind| NetSuiteError::Transport {
            call,
            kind,
            cause: String::new(),
        };
        assert!(is_retryable(call, &transport(TransportKind::Connect)));
        assert!(!is_retryable(call, &transport(TransportKind::Timeout)));
        assert!(!is_retryable(
            call,
            &transport(TransportKind::ConnectionLost)
        ));
        let server = NetSuiteError::ServerError {
            call,
            status: 503,
            detail: Default::default(),
            retry_after: None,
        };
        assert!(!is_retryable(call, &server));
        let limited = NetSuiteError::RateLimited {
            call,
            status: 429,
            detail: Default::default(),
            retry_after: None,
        };
        assert!(is_retryable(call, &limited));
        let token_server = NetSuiteError::ServerError {
            call: Call::M2mToken,
            status: 503,
            detail: Default::default(),
            retry_after: None,
        };
        assert!(is_retryable(Call::M2mToken, &token_server));
    }
}
