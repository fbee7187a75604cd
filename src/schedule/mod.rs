//! When each integration rotates: a cron expression with seconds, in UTC or a named time zone,
//! plus optional jitter, the freeze windows in which no rotation starts (`freeze`), and the
//! test for "this token is overdue" used at start-up.
//!
//! Times are computed, then slept until: an idle daemon makes no wake-ups between jobs.

mod freeze;

pub use freeze::{ActiveFreeze, FreezeWindow, Freezes};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// One integration's schedule. Clones share it: integrations with the same expression, time
/// zone and jitter hold one rule through a [`PatternCache`], and those with the same freeze
/// windows one list of them.
#[derive(Clone, Debug)]
pub struct Schedule {
    rule: Arc<Rule>,
    freezes: Freezes,
}

#[derive(Debug)]
struct Rule {
    /// Shared by the schedules parsed from the same expression through one [`PatternCache`].
    cron: Arc<Cron>,
    timezone: Tz,
    jitter: Duration,
}

/// Parsed schedules by expression (then by time zone and jitter). A parsed pattern takes about
/// 5 KB, so a fleet whose integrations share a few schedules keeps a few copies, not one per
/// integration.
#[derive(Default)]
pub struct PatternCache(HashMap<String, Vec<Schedule>>);

impl Schedule {
    /// Parses `expression` (6 fields: sec min hour day-of-month month day-of-week) in
    /// `timezone` (IANA name, UTC when absent). Errors say what was expected.
    pub fn parse(
        expression: &str,
        timezone: Option<&str>,
        jitter: Duration,
    ) -> Result<Schedule, String> {
        Schedule::parse_cached(expression, timezone, jitter, &mut PatternCache::default())
    }

    /// [`Schedule::parse`], reusing the pattern `cache` holds for the same expression.
    pub fn parse_cached(
        expression: &str,
        timezone: Option<&str>,
        jitter: Duration,
        cache: &mut PatternCache,
    ) -> Result<Schedule, String> {
        let cron = match cache.0.get(expression) {
            Some(same) => same[0].rule.cron.clone(),
            None => Arc::new(parse_pattern(expression)?),
        };
        let timezone = parse_timezone(timezone)?;
        let new = || Schedule {
            rule: Arc::new(Rule {
                cron,
                timezone,
                jitter,
            }),
            freezes: Freezes::default(),
        };
        let Some(same) = cache.0.get_mut(expression) else {
            let schedule = new();
            cache
                .0
                .insert(expression.to_string(), vec![schedule.clone()]);
            return Ok(schedule);
        };
        if let Some(known) = same
            .iter()
            .find(|s| s.rule.timezone == timezone && s.rule.jitter == jitter)
        {
            return Ok(known.clone());
        }
        let schedule = new();
        same.push(schedule.clone());
        Ok(schedule)
    }

    /// This schedule, with no rotation starting inside `freezes`.
    pub fn with_freezes(mut self, freezes: Freezes) -> Schedule {
        self.freezes = freezes;
        self
    }

    pub fn freezes(&self) -> &Freezes {
        &self.freezes
    }

    /// The freeze in force at `t`, if any.
    pub fn freeze_at(&self, t: DateTime<Utc>) -> Option<ActiveFreeze> {
        self.freezes.at(t)
    }

    /// The next run strictly after `now`, jitter added; a run falling inside a freeze window
    /// moves to the freeze's end, jitter added again, so a fleet held by one freeze does not
    /// start all at once when it ends.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = whole_seconds(now).with_timezone(&self.rule.timezone);
        let next = self.rule.cron.find_next_occurrence(&local, false).ok()?;
        // Checked: a jitter that does not fit before the end of representable time is no
        // reason to panic (the config refuses jitters over ten years anyway).
        let next = next
            .with_timezone(&Utc)
            .checked_add_signed(self.random_jitter())?;
        match self.freezes.at(next) {
            Some(freeze) => self.after_freeze(&freeze),
            None => Some(next),
        }
    }

    /// When a rotation held by `freeze` starts: its end, plus jitter.
    pub fn after_freeze(&self, freeze: &ActiveFreeze) -> Option<DateTime<Utc>> {
        freeze.until.checked_add_signed(self.random_jitter())
    }

    /// The latest scheduled time at or before `now` (jitter not counted).
    pub fn previous_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = whole_seconds(now).with_timezone(&self.rule.timezone);
        self.rule
            .cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// A token issued before the last scheduled time missed its rotation (the daemon was down,
    /// or the rotation failed): it is due now.
    pub fn is_overdue(&self, issued_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.previous_before(now)
            .is_some_and(|scheduled| issued_at < scheduled)
    }

    /// When a token issued at `issued_at` falls due: the first scheduled time after it (jitter
    /// and freezes not counted). [`Schedule::is_overdue`] holds from that time on.
    pub fn due_after(&self, issued_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = whole_seconds(issued_at).with_timezone(&self.rule.timezone);
        let next = self.rule.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc))
    }

    fn random_jitter(&self) -> chrono::Duration {
        if self.rule.jitter.is_zero() {
            return chrono::Duration::zero();
        }
        let max = i64::try_from(self.rule.jitter.as_millis()).unwrap_or(i64::MAX);
        chrono::Duration::milliseconds(rand::random_range(0..=max))
    }
}

/// An IANA time zone name; UTC when absent.
fn parse_timezone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None => Ok(Tz::UTC),
        Some(name) => name.parse::<Tz>().map_err(|_| {
            format!(
                "{name:?}: expected an IANA time zone name such as \"Europe/Berlin\" or \"UTC\""
            )
        }),
    }
}

fn parse_pattern(expression: &str) -> Result<Cron, String> {
    if expression.split_whitespace().count() != 6 {
        return Err(format!(
            "{expression:?}: expected a cron expression with seconds: 6 fields (sec min hour day-of-month month day-of-week), e.g. \"0 0 3 * * Sun\""
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .build()
        .parse(expression)
        .map_err(|e| format!("{expression:?}: {e}"))
}

/// croner keeps the fraction of a second it is given (`00:00:01.5` -> previous `00:00:00.5`);
/// schedules are in whole seconds.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_parsed_through_one_cache_share_their_pattern() {
        let mut cache = PatternCache::default();
        let a = Schedule::parse_cached("0 0 3 * * Sun", None, Duration::ZERO, &mut cache).unwrap();
        let b = Schedule::parse_cached(
            "0 0 3 * * Sun",
            Some("Europe/Berlin"),
            Duration::ZERO,
            &mut cache,
        )
        .unwrap();
        let c = Schedule::parse_cached("0 0 4 * * Sun", None, Duration::ZERO, &mut cache).unwrap();
        let d = Schedule::parse_cached("0 0 3 * * Sun", None, Duration::ZERO, &mut cache).unwrap();
        let e = Schedule::parse_cached("0 0 3 * * Sun", None, Duration::from_secs(60), &mut cache)
            .unwrap();
        assert!(Arc::ptr_eq(&a.rule.cron, &b.rule.cron));
        assert!(!Arc::ptr_eq(&a.rule.cron, &c.rule.cron));
        assert!(
            Arc::ptr_eq(&a.rule, &d.rule),
            "the same schedule again is one copy"
        );
        assert!(!Arc::ptr_eq(&a.rule, &e.rule) && Arc::ptr_eq(&a.rule.cron, &e.rule.cron));
        // Sharing the pattern keeps each schedule's own time zone.
        let sunday = at(2026, 11, 22, 0, 0, 0);
        assert_eq!(a.next_after(sunday), Some(at(2026, 11, 22, 3, 0, 0)));
        assert_eq!(b.next_after(sunday), Some(at(2026, 11, 22, 2, 0, 0)));
        assert!(Schedule::parse_cached("0 0 25 * * *", None, Duration::ZERO, &mut cache).is_err());
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    /// `due_after` is the moment `is_overdue` turns true: not a second before, and from then on,
    /// whatever fraction of a second the token was issued at, and whatever the jitter.
    #[test]
    fn a_token_is_overdue_from_its_due_time_on() {
        let s = Schedule::parse(
            "0 0 * * * *",
            Some("Europe/Berlin"),
            Duration::from_secs(600),
        )
        .unwrap();
        for issued_at in [
            at(2026, 11, 23, 10, 0, 0),
            at(2026, 11, 23, 10, 0, 0) + chrono::Duration::milliseconds(500),
            at(2026, 11, 23, 10, 59, 59) + chrono::Duration::milliseconds(999),
        ] {
            let due = s.due_after(issued_at).unwrap();
            assert_eq!(due, at(2026, 11, 23, 11, 0, 0), "issued {issued_at}");
            assert!(!s.is_overdue(issued_at, due - chrono::Duration::milliseconds(1)));
            assert!(s.is_overdue(issued_at, due));
            assert!(s.is_overdue(issued_at, due + chrono::Duration::hours(5)));
        }
    }

    /// Regression (the `config` fuzz target panics on it): a jitter reaching past the last
    /// representable time made `next_after` panic; it is now no next run at all.
    #[test]
    fn a_jitter_past_the_end_of_time_does_not_panic() {
        let now = at(2026, 11, 23, 12, 0, 0);
        let s = Schedule::parse("0 0 3 * * Sun", None, Duration::MAX).unwrap();
        for _ in 0..100 {
            let _ = s.next_after(now);
        }
        let years = Duration::from_secs(1_000_000 * 31_557_600);
        let s = Schedule::parse("0 0 3 * * Sun", None, years).unwrap();
        assert!((0..100).any(|_| s.next_after(now).is_none()));
        let s = Schedule::parse("0 0 3 * * Sun", None, Duration::from_secs(60)).unwrap();
        let next = s.next_after(now).unwrap();
        assert!(next >= at(2026, 11, 29, 3, 0, 0) && next <= at(2026, 11, 29, 3, 1, 0));
    }

    /// A scheduled run inside a freeze window moves to the window's end, jitter added; the due
    /// time and the overdue test stay the schedule's own.
    #[test]
    fn a_run_inside_a_freeze_window_moves_to_its_end() {
        let window = FreezeWindow::recurring(
            "month-end",
            "0 0 0 L * *",
            Duration::from_secs(72 * 3600),
            None,
        )
        .unwrap();
        let freezes = Freezes::with(&Freezes::default(), vec![window]);
        let daily = Schedule::parse("0 0 3 * * *", None, Duration::from_secs(60))
            .unwrap()
            .with_freezes(freezes);
        let end = at(2026, 12, 3, 0, 0, 0);
        for _ in 0..20 {
            let next = daily.next_after(at(2026, 11, 30, 12, 0, 0)).unwrap();
            assert!(
                next >= end && next <= end + chrono::Duration::seconds(60),
                "{next}"
            );
        }
        // Before the window: the schedule's own time.
        let next = daily.next_after(at(2026, 11, 28, 12, 0, 0)).unwrap();
        assert!(next >= at(2026, 11, 29, 3, 0, 0) && next <= at(2026, 11, 29, 3, 1, 0));
        assert_eq!(
            daily.due_after(at(2026, 11, 30, 1, 0, 0)),
            Some(at(2026, 11, 30, 3, 0, 0))
        );
        assert_eq!(
            daily.freeze_at(at(2026, 12, 1, 0, 0, 0)).map(|f| f.until),
            Some(end)
        );
    }

    #[test]
    fn weekly_schedule_in_utc() {
        let s = Schedule::parse("0 0 3 * * Sun", None, Duration::ZERO).unwrap();
        // 2026-11-23 is a Monday; the next Sunday is the 29th.
        assert_eq!(
            s.next_after(at(2026, 11, 23, 12, 0, 0)),
            Some(at(2026, 11, 29, 3, 0, 0))
        );
        assert_eq!(
            s.previous_before(at(2026, 11, 23, 12, 0, 0)),
            Some(at(2026, 11, 22, 3, 0, 0))
        );
    }

    #[test]
    fn time_zone_shifts_the_schedule() {
        let s = Schedule::parse("0 0 3 * * *", Some("Europe/Berlin"), Duration::ZERO).unwrap();
        // 03:00 in Berlin in November (UTC+1) is 02:00 UTC.
        assert_eq!(
            s.next_after(at(2026, 11, 23, 12, 0, 0)),
            Some(at(2026, 11, 24, 2, 0, 0))
        );
    }

    #[test]
    fn every_few_seconds() {
        let s = Schedule::parse("*/5 * * * * *", None, Duration::ZERO).unwrap();
        assert_eq!(
            s.next_after(at(2026, 1, 1, 0, 0, 0)),
            Some(at(2026, 1, 1, 0, 0, 5))
        );
    }

    #[test]
    fn fractions_of_a_second_do_not_shift_the_schedule() {
        let s = Schedule::parse("*/3 * * * * *", None, Duration::ZERO).unwrap();
        let now: DateTime<Utc> = "2026-11-23T11:16:01.457Z".parse().unwrap();
        assert_eq!(s.previous_before(now), Some(at(2026, 11, 23, 11, 16, 0)));
        assert_eq!(s.next_after(now), Some(at(2026, 11, 23, 11, 16, 3)));
        let issued: DateTime<Utc> = "2026-11-23T11:16:00.2Z".parse().unwrap();
        assert!(!s.is_overdue(issued, now));
    }

    #[test]
    fn overdue_when_issued_before_the_last_scheduled_time() {
        let s = Schedule::parse("0 0 3 * * Sun", None, Duration::ZERO).unwrap();
        let now = at(2026, 11, 23, 12, 0, 0);
        assert!(s.is_overdue(at(2026, 11, 20, 0, 0, 0), now));
        assert!(!s.is_overdue(at(2026, 11, 22, 3, 0, 1), now));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let s = Schedule::parse("0 0 3 * * *", None, Duration::from_secs(60)).unwrap();
        let base = at(2026, 11, 24, 3, 0, 0);
        for _ in 0..100 {
            let next = s.next_after(at(2026, 11, 23, 12, 0, 0)).unwrap();
            assert!(next >= base && next <= base + chrono::Duration::seconds(60));
        }
    }

    #[test]
    fn bad_input_says_what_was_expected() {
        assert!(
            Schedule::parse("0 3 * * Sun", None, Duration::ZERO)
                .unwrap_err()
                .contains("6 fields")
        );
        assert!(Schedule::parse("0 0 25 * * *", None, Duration::ZERO).is_err());
        assert!(
            Schedule::parse("0 0 3 * * *", Some("Mars/Olympus"), Duration::ZERO)
                .unwrap_err()
                .contains("IANA")
        );
    }
}
