//! One integration's life in the daemon: recover, then, each time the fleet's timer wakes it,
//! work out what is due (revoke the previous token, rotate, or nothing until a known time), do
//! it under the concurrency limits, and decide when to try again after a failure.
//!
//! A rotation that falls due inside a freeze window waits for the window's end (plus jitter);
//! a replaced credential's revocation does not wait (it makes nothing new).
//!
//! Retry policy, from the protocol page: transient failures back off exponentially; a login
//! failure is never retried before the next scheduled run (NetSuite locks users out); other
//! permanent failures also wait for the next scheduled run and raise an alert.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tracing::{error, info, warn};

use crate::daemon::Observer;
use crate::rotation::{Engine, RotationError};
use crate::schedule::{ActiveFreeze, Schedule};
use crate::server::Health;
use crate::store::StoreState;

/// First delay after a transient failure; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Consecutive transient failures before on-call hears about it.
pub const ALERT_AFTER_FAILURES: u32 = 3;

/// What every job of one configuration shares: the overall concurrency limit and where to
/// report. Kept once per fleet, not once per integration.
pub struct Shared {
    pub global: Arc<Semaphore>,
    pub health: Arc<Health>,
    pub observer: Arc<Observer>,
}

/// One integration: its engine, its schedule and its account's concurrency limit. A job holds
/// no task while it waits: the fleet's one timer wakes it (see `fleet`).
pub struct Job {
    pub engine: Engine,
    pub schedule: Schedule,
    pub account_limit: Arc<Semaphore>,
    pub shared: Arc<Shared>,
}

/// The retry state a job carries from one wake-up to the next.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
    hold_until: Option<DateTime<Utc>>,
    /// The kind of step that failed and is held until `hold_until`; `None` holds every step
    /// (after a panic). The other kind still runs when due: a replaced token's revocation is
    /// not put off because a rotation failed.
    held: Option<StepKind>,
}

/// The two kinds of step a job takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    Rotate,
    Revoke,
}

impl Backoff {
    /// Until when `step` is held back, if it is.
    fn holds(&self, step: StepKind, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.hold_until.filter(|t| *t > now)?;
        self.held.is_none_or(|held| held == step).then_some(until)
    }
}

/// What the loop does next.
#[derive(Debug, PartialEq)]
enum Next {
    Rotate,
    RevokePrevious,
    SleepUntil(DateTime<Utc>),
    /// A rotation is due, but a freeze window holds it until `wake`.
    Frozen {
        freeze: ActiveFreeze,
        wake: DateTime<Utc>,
    },
}

impl Job {
    /// Does whatever is due now, one step after another, until nothing is; then returns when to
    /// wake it again. `None` once `shutdown` is seen: the job takes no new step.
    pub async fn work(
        &self,
        backoff: &mut Backoff,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<DateTime<Utc>> {
        let name = &self.engine.integration().name;
        loop {
            let now = Utc::now();
            // Every store or NetSuite step below is boxed: the steps' futures are large and
            // exist only while the step runs. The store is read at every wake, held or not:
            // another process may have changed it (see `fleet`'s reconciliation).
            let next = match Box::pin(self.next_step(now)).await {
                Next::Rotate => match backoff.holds(StepKind::Rotate, now) {
                    Some(until) => Next::SleepUntil(until),
                    None => Next::Rotate,
                },
                Next::RevokePrevious => match backoff.holds(StepKind::Revoke, now) {
                    Some(until) => Next::SleepUntil(until),
                    None => Next::RevokePrevious,
                },
                other => other,
            };
            let step = match next {
                Next::Rotate => StepKind::Rotate,
                _ => StepKind::Revoke,
            };
            let result = match next {
                Next::SleepUntil(at) => {
                    if let Some(next_rotation) = self.schedule.next_after(now) {
                        self.shared.observer.next_rotation(name, next_rotation);
                    }
                    return Some(at);
                }
                Next::Frozen { freeze, wake } => {
                    info!(integration = %name, freeze = %freeze.name, until = %freeze.until, rotation_at = %wake, "rotation due, held by a freeze window");
                    self.shared.observer.next_rotation(name, wake);
                    return Some(wake);
                }
                Next::RevokePrevious => {
                    let _permits = self.permits().await;
                    if *shutdown.borrow() {
                        return None;
                    }
                    Box::pin(self.engine.revoke_due(false)).await.map(|_| ())
                }
                Next::Rotate => {
                    let _permits = self.permits().await;
                    if *shutdown.borrow() {
                        return None;
                    }
                    if let Some(freeze) = self.schedule.freeze_at(now) {
                        warn!(integration = %name, freeze = %freeze.name, until = %freeze.until, "rotating inside a freeze window: the current certificate expires before the window ends");
                    }
                    let started = std::time::Instant::now();
                    let result = Box::pin(self.engine.rotate()).await;
                    self.shared.observer.rotation_finished(
                        &self.engine,
                        &result,
                        started.elapsed(),
                    );
                    result.map(|_| ())
                }
            };
            match &result {
                Ok(()) => *backoff = Backoff::default(),
                Err(e) => {
                    backoff.failures += 1;
                    backoff.hold_until = Some(self.retry_time(e, backoff.failures));
                    backoff.held = Some(step);
                    warn!(integration = %name, error = %e, failures = backoff.failures, retry_at = backoff.hold_until.map(tracing::field::display), "job step failed");
                    if !e.is_transient() || backoff.failures >= ALERT_AFTER_FAILURES {
                        self.shared.observer.failure_alert(&self.engine, e);
                    }
                }
            }
            self.shared
                .observer
                .consecutive_failures(name, backoff.failures);
        }
    }

    /// When to wake a job whose step panicked: a bug, not a NetSuite or store answer, so
    /// treated like a transient failure, at the first backoff, and said loudly.
    pub fn after_panic(&self, backoff: &mut Backoff) -> DateTime<Utc> {
        let name = &self.engine.integration().name;
        backoff.failures += 1;
        let at = Utc::now() + chrono::Duration::from_std(FIRST_BACKOFF).expect("small");
        error!(integration = %name, failures = backoff.failures, retry_at = %at, "job step panicked; retrying later");
        backoff.hold_until = Some(at);
        backoff.held = None;
        at
    }

    /// Start-up recovery; a store that cannot be read is reported and retried by the loop.
    pub async fn recover(&self) {
        let name = &self.engine.integration().name;
        let _permits = self.permits().await;
        match Box::pin(self.engine.recover_then_state()).await {
            Ok((recovery, mut state)) => {
                info!(integration = %name, %recovery, "recovery done");
                self.engine.lift_stale_latch(&mut state).await;
                self.observe_state(&state);
            }
            Err(RotationError::Store { source, .. }) => self.store_problem(&source),
            Err(e) => {
                warn!(integration = %name, error = %e, "recovery incomplete; the loop retries")
            }
        }
    }

    /// Reads the store and decides; says what the store holds to the health endpoint and
    /// the metrics, so that `/readyz`, the `ready` gauge and `status` agree.
    async fn next_step(&self, now: DateTime<Utc>) -> Next {
        let mut state = match self.engine.load().await {
            Ok(state) => state,
            Err(e) => {
                if let RotationError::Store { source, .. } = &e {
                    self.store_problem(source);
                }
                return Next::SleepUntil(now + chrono::Duration::from_std(FIRST_BACKOFF).unwrap());
            }
        };
        self.engine.lift_stale_latch(&mut state).await;
        self.observe_state(&state);
        let renew_before = self.engine.integration().m2m().map(|m2m| m2m.renew_before);
        decide(&self.schedule, renew_before, &state, now)
    }

    /// What the store holds, to the login gate, the health endpoint and the metrics.
    fn observe_state(&self, state: &StoreState) {
        let name = &self.engine.integration().name;
        self.engine.observe_latch(state);
        // `lift_stale_latch` lifted a latch recorded for another login: this one holds.
        match &state.login_latch {
            Some(latch) => self.shared.health.problem(
                name,
                format!(
                    "login latched since {} ({}): NetSuite refused the NLAuth login; no login is \
                     tried until the login configuration changes or an operator runs `rotate \
                     --integration {name}`",
                    latch.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    latch.reason
                ),
            ),
            None => match state.current.as_ref().and_then(|c| c.expires_at()) {
                // As `status` says `expired`: nothing can rotate it until someone imports anew.
                Some(not_after) if not_after <= Utc::now() => self.shared.health.problem(
                    name,
                    format!(
                        "the current certificate expired at {}: no rotation can replace it \
                         until a new one is uploaded and imported (docs/runbook.md#certificate-expired)",
                        not_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                ),
                _ => self.shared.health.healthy(name),
            },
        }
        self.shared.observer.store_state(&self.engine, state);
        let renew_before = self.engine.integration().m2m().map(|m2m| m2m.renew_before);
        self.shared
            .observer
            .rotation_due(name, rotation_due(&self.schedule, renew_before, state));
    }

    /// The store cannot be read or written: not ready, an ERROR line and an alert, each
    /// saying how to recover.
    fn store_problem(&self, error: &crate::store::StoreError) {
        let name = &self.engine.integration().name;
        let hint = error.hint(name);
        error!(integration = %name, error = %error, hint = %hint, "the store cannot be used");
        self.shared.health.problem(name, format!("{error}. {hint}"));
        self.shared.observer.store_problem(&self.engine, error);
    }

    async fn permits(
        &self,
    ) -> (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ) {
        let account = self
            .account_limit
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let global = self
            .shared
            .global
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        (account, global)
    }

    fn retry_time(&self, error: &RotationError, failures: u32) -> DateTime<Utc> {
        let now = Utc::now();
        let next_scheduled = self
            .schedule
            .next_after(now)
            .unwrap_or(now + chrono::Duration::hours(24));
        if let RotationError::PreviousInGrace { revoke_after, .. } = error {
            return *revoke_after;
        }
        if !error.is_transient() {
            // Login failures and other permanent errors: once per scheduled run, never a loop.
            return next_scheduled;
        }
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_BACKOFF);
        let jittered = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        (now + chrono::Duration::from_std(jittered).unwrap()).min(next_scheduled)
    }
}

/// When the current credential must be renewed because of its expiry: `renew_before` ahead of
/// it (M2M certificates that carry an expiry only).
fn renew_at(renew_before: Option<Duration>, state: &StoreState) -> Option<DateTime<Utc>> {
    let not_after = state.current.as_ref()?.expires_at()?;
    chrono::Duration::from_std(renew_before?)
        .ok()
        .map(|before| not_after - before)
}

/// When the current credential falls due for replacement, as [`decide`] judges it: the first
/// scheduled time after its issue, or its renewal time if earlier, or the end of the freeze
/// window holding that time. `None` without a current credential (its bootstrap is due at
/// once, and there is no time to report).
fn rotation_due(
    schedule: &Schedule,
    renew_before: Option<Duration>,
    state: &StoreState,
) -> Option<DateTime<Utc>> {
    let current = state.current.as_ref()?;
    let scheduled = schedule.due_after(current.issued_at());
    let due = match (scheduled, renew_at(renew_before, state)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }?;
    Some(holding_freeze(schedule, state, due).map_or(due, |freeze| freeze.until))
}

/// The freeze window that holds a rotation due at `t`, if any. Not when the current credential
/// expires before the freeze ends: a certificate left to expire breaks every reader, which is
/// worse than a change inside the freeze.
fn holding_freeze(
    schedule: &Schedule,
    state: &StoreState,
    t: DateTime<Utc>,
) -> Option<ActiveFreeze> {
    let freeze = schedule.freeze_at(t)?;
    let expires_at = state.current.as_ref().and_then(|c| c.expires_at());
    match expires_at {
        Some(not_after) if not_after <= freeze.until => None,
        _ => Some(freeze),
    }
}

/// The decision, from the store's state, the schedule and the time. `renew_before` (M2M) makes
/// a certificate due that long before it expires, whatever the schedule says.
fn decide(
    schedule: &Schedule,
    renew_before: Option<Duration>,
    state: &StoreState,
    now: DateTime<Utc>,
) -> Next {
    let unrevoked = state.previous.as_ref().filter(|p| p.revoked_at.is_none());
    if let Some(previous) = unrevoked
        && previous.revoke_after <= now
    {
        return Next::RevokePrevious;
    }
    let renew_at = renew_at(renew_before, state);
    let due = match &state.current {
        None => true,
        Some(current) => {
            schedule.is_overdue(current.issued_at(), now) || renew_at.is_some_and(|t| t <= now)
        }
    };
    let next_scheduled = schedule
        .next_after(now)
        .unwrap_or(now + chrono::Duration::days(1));
    let next_scheduled = renew_at
        .filter(|t| *t > now)
        .map_or(next_scheduled, |t| t.min(next_scheduled));
    match (due, unrevoked) {
        // A rotation now would replace the previous token before its revocation: wait for it.
        (true, Some(previous)) => Next::SleepUntil(previous.revoke_after),
        (true, None) => match holding_freeze(schedule, state, now) {
            Some(freeze) => Next::Frozen {
                wake: schedule.after_freeze(&freeze).unwrap_or(freeze.until),
                freeze,
            },
            None => Next::Rotate,
        },
        (false, Some(previous)) => Next::SleepUntil(previous.revoke_after.min(next_scheduled)),
        (false, None) => Next::SleepUntil(next_scheduled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use crate::store::{CredentialRecord, PreviousToken, TokenRecord};

    fn token(issued_at: DateTime<Utc>) -> CredentialRecord {
        CredentialRecord::Tba(TokenRecord {
            account_id: "1".into(),
            realm: "1".into(),
            consumer_key: None,
            consumer_secret: None,
            token_id: "t".into(),
            token_secret: SecretString::from("s"),
            issued_at,
            rotation_id: uuid::Uuid::new_v4(),
        })
    }

    fn hourly() -> Schedule {
        Schedule::parse("0 0 * * * *", None, Duration::ZERO).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:30:00Z".parse().unwrap()
    }

    fn certificate(issued_at: DateTime<Utc>, not_after: DateTime<Utc>) -> CredentialRecord {
        CredentialRecord::M2m(crate::store::CertificateRecord {
            account_id: "1".into(),
            client_id: None,
            certificate_id: "c".into(),
            algorithm: "ES256".into(),
            private_key: SecretString::from("k"),
            certificate: None,
            not_after: Some(not_after),
            issued_at,
            rotation_id: uuid::Uuid::new_v4(),
        })
    }

    /// `renew_before` brings a certificate's rotation forward of the schedule, to the moment
    /// it enters its renewal window; a certificate already inside it is due at once.
    #[test]
    fn a_certificate_is_renewed_before_it_expires_whatever_the_schedule() {
        let yearly = Schedule::parse("0 0 3 1 1 *", None, Duration::ZERO).unwrap();
        let thirty_days = Some(Duration::from_secs(30 * 86_400));
        let fresh = StoreState {
            current: Some(certificate(
                now() - chrono::Duration::minutes(10),
                now() + chrono::Duration::days(40),
            )),
            ..StoreState::default()
        };
        assert_eq!(
            decide(&yearly, thirty_days, &fresh, now()),
            Next::SleepUntil(now() + chrono::Duration::days(10))
        );
        // Without renew_before (a TBA integration), only the schedule counts.
        let next_year: DateTime<Utc> = "2027-01-01T03:00:00Z".parse().unwrap();
        assert_eq!(
            decide(&yearly, None, &fresh, now()),
            Next::SleepUntil(next_year)
        );
        let expiring = StoreState {
            current: Some(certificate(
                now() - chrono::Duration::minutes(10),
                now() + chrono::Duration::days(20),
            )),
            ..StoreState::default()
        };
        assert_eq!(decide(&yearly, thirty_days, &expiring, now()), Next::Rotate);
    }

    /// The exported due time is the decision's: a credential is rotated once `now` reaches it
    /// and not before, by schedule (TBA) or by renewal window (M2M), whichever comes first.
    #[test]
    fn the_rotation_due_time_is_when_decide_rotates() {
        let yearly = Schedule::parse("0 0 3 1 1 *", None, Duration::ZERO).unwrap();
        let thirty_days = Some(Duration::from_secs(30 * 86_400));
        let m2m = StoreState {
            current: Some(certificate(now(), now() + chrono::Duration::days(40))),
            ..StoreState::default()
        };
        let tba = StoreState {
            current: Some(token(now())),
            ..StoreState::default()
        };
        let cases = [
            (&hourly(), None, &tba, "2026-11-23T13:00:00Z"),
            (&yearly, None, &tba, "2027-01-01T03:00:00Z"),
            (&yearly, thirty_days, &m2m, "2026-12-03T12:30:00Z"),
            (&hourly(), thirty_days, &m2m, "2026-11-23T13:00:00Z"),
        ];
        for (schedule, renew_before, state, expected) in cases {
            let due = rotation_due(schedule, renew_before, state).unwrap();
            assert_eq!(due, expected.parse::<DateTime<Utc>>().unwrap());
            let before = due - chrono::Duration::seconds(1);
            assert_ne!(decide(schedule, renew_before, state, before), Next::Rotate);
            assert_eq!(decide(schedule, renew_before, state, due), Next::Rotate);
        }
        assert_eq!(rotation_due(&hourly(), None, &StoreState::default()), None);
    }

    /// A rotation falling due inside a freeze window waits for its end (the due time exported
    /// is that end), a revocation inside it does not wait, and a certificate that would expire
    /// inside it is renewed anyway.
    #[test]
    fn a_freeze_window_holds_rotations_but_not_revocations() {
        use crate::schedule::{FreezeWindow, Freezes};
        let window = FreezeWindow::fixed(
            "close",
            "2026-11-23T12:00:00Z",
            "2026-11-23T18:00:00Z",
            None,
        )
        .unwrap();
        let frozen = hourly().with_freezes(Freezes::with(&Freezes::default(), vec![window]));
        let end: DateTime<Utc> = "2026-11-23T18:00:00Z".parse().unwrap();
        let overdue = StoreState {
            current: Some(token(now() - chrono::Duration::hours(2))),
            ..StoreState::default()
        };
        match decide(&frozen, None, &overdue, now()) {
            Next::Frozen { freeze, wake } => {
                assert_eq!((&*freeze.name, freeze.until, wake), ("close", end, end));
            }
            other => panic!("expected the freeze to hold the rotation, got {other:?}"),
        }
        assert_eq!(decide(&frozen, None, &overdue, end), Next::Rotate);
        assert_eq!(decide(&hourly(), None, &overdue, now()), Next::Rotate);
        // An empty store's first rotation is a rotation too.
        assert!(matches!(
            decide(&frozen, None, &StoreState::default(), now()),
            Next::Frozen { .. }
        ));

        // Issued at 12:10, due at 13:00 (inside the window): due at the window's end.
        let fresh = StoreState {
            current: Some(token(now() - chrono::Duration::minutes(20))),
            ..StoreState::default()
        };
        assert_eq!(rotation_due(&frozen, None, &fresh), Some(end));
        assert_eq!(
            decide(&frozen, None, &fresh, now()),
            Next::SleepUntil(end),
            "the next scheduled time inside the window is moved to its end"
        );

        let with_previous = StoreState {
            previous: Some(PreviousToken {
                token: token(now() - chrono::Duration::hours(3)),
                revoke_after: now() - chrono::Duration::minutes(1),
                revoked_at: None,
            }),
            ..overdue
        };
        assert_eq!(
            decide(&frozen, None, &with_previous, now()),
            Next::RevokePrevious
        );

        let expiring = StoreState {
            current: Some(certificate(
                now() - chrono::Duration::minutes(20),
                now() + chrono::Duration::hours(3),
            )),
            ..StoreState::default()
        };
        let thirty_days = Some(Duration::from_secs(30 * 86_400));
        assert_eq!(decide(&frozen, thirty_days, &expiring, now()), Next::Rotate);
        assert_eq!(
            rotation_due(&frozen, thirty_days, &expiring),
            Some(now() + chrono::Duration::hours(3) - chrono::Duration::days(30))
        );
    }

    #[test]
    fn empty_store_rotates_at_once() {
        assert_eq!(
            decide(&hourly(), None, &StoreState::default(), now()),
            Next::Rotate
        );
    }

    #[test]
    fn a_fresh_token_sleeps_until_the_next_scheduled_time() {
        let state = StoreState {
            current: Some(token(now() - chrono::Duration::minutes(10))),
            ..StoreState::default()
        };
        let expected: DateTime<Utc> = "2026-11-23T13:00:00Z".parse().unwrap();
        assert_eq!(
            decide(&hourly(), None, &state, now()),
            Next::SleepUntil(expected)
        );
    }

    #[test]
    fn a_token_that_missed_its_rotation_is_rotated_at_once() {
        let state = StoreState {
            current: Some(token(now() - chrono::Duration::hours(2))),
            ..StoreState::default()
        };
        assert_eq!(decide(&hourly(), None, &state, now()), Next::Rotate);
    }

    #[test]
    fn an_overdue_previous_token_is_revoked_first_and_a_pending_one_waited_for() {
        let mut state = StoreState {
            current: Some(token(now() - chrono::Duration::hours(2))),
            previous: Some(PreviousToken {
                token: token(now() - chrono::Duration::hours(3)),
                revoke_after: now() - chrono::Duration::minutes(1),
                revoked_at: None,
            }),
            ..StoreState::default()
        };
        assert_eq!(decide(&hourly(), None, &state, now()), Next::RevokePrevious);
        let later = now() + chrono::Duration::minutes(5);
        state.previous.as_mut().unwrap().revoke_after = later;
        assert_eq!(
            decide(&hourly(), None, &state, now()),
            Next::SleepUntil(later)
        );
    }
}
