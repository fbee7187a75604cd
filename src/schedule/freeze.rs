//! Freeze windows: spans of time in which no rotation starts, because ERP teams freeze changes
//! around month-end and quarter-close. A window recurs (a cron start plus a duration) or is
//! fixed (a date range), in a time zone. Revocations of replaced credentials are not frozen:
//! they make nothing new.
//!
//! Like schedules, windows are worked out from the clock when asked: the daemon's decision,
//! `rotate`'s refusal, `status` and the metrics (computed at scrape time) read the same windows
//! and so agree, and nothing wakes at a window's edges.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// Windows that overlap or touch are one freeze; a chain longer than this (a recurring window
/// longer than its period is a freeze without end) is cut here, and is asked again at its end.
const MAX_CHAINED: usize = 64;

/// Longest window a recurring start may open.
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// One freeze window, as configured.
#[derive(Debug)]
pub struct FreezeWindow {
    name: Arc<str>,
    span: Span,
}

#[derive(Debug)]
enum Span {
    /// From each time the cron expression matches, for `duration`. (A parsed pattern is
    /// kilobytes; boxed so that a fixed window does not take as much.)
    Recurring {
        cron: Box<Cron>,
        timezone: Tz,
        duration: chrono::Duration,
    },
    /// From `from` (included) until `until` (excluded).
    Fixed {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

/// A freeze in force: the name of the window holding it and when the freeze ends (with the
/// windows that continue it without a gap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveFreeze {
    pub name: Arc<str>,
    pub until: DateTime<Utc>,
}

/// The windows that apply to one integration: the daemon-wide ones and its own. Clones share
/// them, so a fleet whose integrations have no windows of their own holds one list.
#[derive(Clone, Debug, Default)]
pub struct Freezes(Option<Arc<[Arc<FreezeWindow>]>>);

impl FreezeWindow {
    /// A window opening whenever `start` (a cron expression with seconds) matches in
    /// `timezone` (UTC when absent) and lasting `duration`. Errors are (key, problem).
    pub fn recurring(
        name: &str,
        start: &str,
        duration: Duration,
        timezone: Option<&str>,
    ) -> Result<FreezeWindow, (&'static str, String)> {
        let cron = super::parse_pattern(start).map_err(|p| ("start", p))?;
        let timezone = super::parse_timezone(timezone).map_err(|p| ("timezone", p))?;
        if duration.is_zero() || duration > MAX_DURATION {
            return Err((
                "duration",
                "expected a duration from 1s to 366d, e.g. \"72h\"".into(),
            ));
        }
        let duration = chrono::Duration::from_std(duration).expect("at most 366 days");
        Ok(FreezeWindow {
            name: name.into(),
            span: Span::Recurring {
                cron: Box::new(cron),
                timezone,
                duration,
            },
        })
    }

    /// A window from `from` until `until` (excluded): RFC 3339 times (`2026-12-24T00:00:00Z`),
    /// or dates and times without an offset (`2026-12-24`, `2026-12-24T18:00:00`) read in
    /// `timezone` (UTC when absent). Errors are (key, problem).
    pub fn fixed(
        name: &str,
        from: &str,
        until: &str,
        timezone: Option<&str>,
    ) -> Result<FreezeWindow, (&'static str, String)> {
        let zone = super::parse_timezone(timezone).map_err(|p| ("timezone", p))?;
        let from_time = parse_time(from, zone).map_err(|p| ("from", p))?;
        let until_time = parse_time(until, zone).map_err(|p| ("until", p))?;
        if until_time <= from_time {
            return Err((
                "until",
                format!("{until:?} is not after from ({from:?}); expected the end of the window"),
            ));
        }
        Ok(FreezeWindow {
            name: name.into(),
            span: Span::Fixed {
                from: from_time,
                until: until_time,
            },
        })
    }

    /// When this window, if it holds `t`, ends.
    fn end_if_holds(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.span {
            Span::Fixed { from, until } => (*from <= t && t < *until).then_some(*until),
            Span::Recurring {
                cron,
                timezone,
                duration,
            } => {
                // The latest start at or before `t` reaches furthest: every start opens a
                // window of the same length.
                let local = super::whole_seconds(t).with_timezone(timezone);
                let start = cron.find_previous_occurrence(&local, true).ok()?;
                let end = start.with_timezone(&Utc).checked_add_signed(*duration)?;
                (t < end).then_some(end)
            }
        }
    }
}

impl Freezes {
    /// `shared` (the daemon-wide windows) followed by `own`; shares `shared` when `own` is empty.
    pub fn with(shared: &Freezes, own: Vec<FreezeWindow>) -> Freezes {
        if own.is_empty() {
            return shared.clone();
        }
        let all: Vec<Arc<FreezeWindow>> = shared
            .windows()
            .iter()
            .cloned()
            .chain(own.into_iter().map(Arc::new))
            .collect();
        Freezes(Some(all.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.windows().is_empty()
    }

    fn windows(&self) -> &[Arc<FreezeWindow>] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// The freeze in force at `t`, if any: the window holding `t` and the end of the windows
    /// that follow on from it without a gap.
    pub fn at(&self, t: DateTime<Utc>) -> Option<ActiveFreeze> {
        let mut freeze: Option<ActiveFreeze> = None;
        let mut probe = t;
        for _ in 0..MAX_CHAINED {
            let furthest = self
                .windows()
                .iter()
                .filter_map(|w| w.end_if_holds(probe).map(|end| (w, end)))
                .max_by_key(|(_, end)| *end);
            let Some((window, end)) = furthest else { break };
            let name = freeze.map_or_else(|| window.name.clone(), |f| f.name);
            freeze = Some(ActiveFreeze { name, until: end });
            probe = end;
        }
        freeze
    }
}

/// An RFC 3339 time, or a local date or date-time read in `zone`.
fn parse_time(text: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    let expected = "expected an RFC 3339 time (\"2026-12-24T00:00:00Z\"), a date (\"2026-12-24\") \
                    or a local date-time (\"2026-12-24T18:00:00\") read in the window's timezone";
    if let Ok(exact) = DateTime::parse_from_rfc3339(text) {
        return Ok(exact.with_timezone(&Utc));
    }
    let local = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
        .map_err(|_| format!("{text:?}: {expected}"))?;
    // A time repeated when clocks go back is its first occurrence.
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            format!(
                "{text:?} does not exist in {zone} (clocks skip it for daylight saving); expected \
                 a time that does"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn freezes(windows: Vec<FreezeWindow>) -> Freezes {
        Freezes::with(&Freezes::default(), windows)
    }

    /// Month-end: from midnight on the last day of each month, for three days, in New York.
    #[test]
    fn a_recurring_window_holds_from_each_start_for_its_duration() {
        let month_end = FreezeWindow::recurring(
            "month-end",
            "0 0 0 L * *",
            Duration::from_secs(72 * 3600),
            Some("America/New_York"),
        )
        .unwrap();
        let f = freezes(vec![month_end]);
        // 2026-11-30 00:00 in New York (UTC-5) is 05:00 UTC.
        let start = at("2026-11-30T05:00:00Z");
        let end = at("2026-12-03T05:00:00Z");
        assert_eq!(f.at(start - chrono::Duration::seconds(1)), None);
        for inside in [
            start,
            at("2026-12-01T12:00:00Z"),
            end - chrono::Duration::seconds(1),
        ] {
            let freeze = f.at(inside).unwrap();
            assert_eq!((&*freeze.name, freeze.until), ("month-end", end));
        }
        assert_eq!(f.at(end), None);
    }

    #[test]
    fn a_fixed_window_holds_from_its_start_until_its_end_in_its_time_zone() {
        let holidays = FreezeWindow::fixed(
            "holidays",
            "2026-12-24",
            "2027-01-02",
            Some("Europe/Berlin"),
        )
        .unwrap();
        let f = freezes(vec![holidays]);
        // Midnight in Berlin in winter (UTC+1).
        assert_eq!(f.at(at("2026-12-23T22:59:59Z")), None);
        let freeze = f.at(at("2026-12-23T23:00:00Z")).unwrap();
        assert_eq!(freeze.until, at("2027-01-01T23:00:00Z"));
        assert_eq!(f.at(at("2027-01-01T23:00:00Z")), None);
        let exact = FreezeWindow::fixed(
            "x",
            "2026-12-24T00:00:00Z",
            "2026-12-24T18:30",
            Some("Europe/Berlin"),
        )
        .unwrap();
        let f = freezes(vec![exact]);
        assert_eq!(
            f.at(at("2026-12-24T00:00:00Z")).unwrap().until,
            at("2026-12-24T17:30:00Z")
        );
    }

    /// Windows that overlap or touch are one freeze: a rotation falling due in the first does
    /// not start in the gap-less hand-over to the second.
    #[test]
    fn windows_that_follow_on_without_a_gap_are_one_freeze() {
        let first = FreezeWindow::fixed("close", "2026-12-30", "2027-01-02", None).unwrap();
        let second = FreezeWindow::fixed("audit", "2027-01-02", "2027-01-05", None).unwrap();
        let f = freezes(vec![first, second]);
        let freeze = f.at(at("2026-12-31T00:00:00Z")).unwrap();
        assert_eq!(
            (&*freeze.name, freeze.until),
            ("close", at("2027-01-05T00:00:00Z"))
        );
        // A window longer than its period never ends: cut, and asked again at the cut.
        let always = FreezeWindow::recurring(
            "always",
            "0 0 0 * * *",
            Duration::from_secs(2 * 86_400),
            None,
        )
        .unwrap();
        let f = freezes(vec![always]);
        let now = at("2026-12-31T12:00:00Z");
        let cut = f.at(now).unwrap().until;
        assert!(cut > now + chrono::Duration::days(60));
        assert!(f.at(cut).is_some());
    }

    #[test]
    fn the_daemon_wide_list_is_shared_when_an_integration_has_none_of_its_own() {
        let shared = freezes(vec![
            FreezeWindow::fixed("a", "2026-12-24", "2026-12-26", None).unwrap(),
        ]);
        let same = Freezes::with(&shared, Vec::new());
        assert!(Arc::ptr_eq(
            shared.0.as_ref().unwrap(),
            same.0.as_ref().unwrap()
        ));
        let more = Freezes::with(
            &shared,
            vec![FreezeWindow::fixed("b", "2027-01-01", "2027-01-02", None).unwrap()],
        );
        assert_eq!(&*more.at(at("2026-12-25T00:00:00Z")).unwrap().name, "a");
        assert_eq!(&*more.at(at("2027-01-01T00:00:00Z")).unwrap().name, "b");
        assert!(
            Freezes::default().is_empty()
                && Freezes::default().at(at("2027-01-01T00:00:00Z")).is_none()
        );
    }

    #[test]
    fn bad_windows_say_which_key_and_what_was_expected() {
        let e = FreezeWindow::fixed("x", "2027-01-02", "2027-01-01", None).unwrap_err();
        assert_eq!(e.0, "until");
        assert!(e.1.contains("not after from"), "{}", e.1);
        let e = FreezeWindow::fixed("x", "24.12.2026", "2027-01-01", None).unwrap_err();
        assert_eq!(e.0, "from");
        assert!(e.1.contains("RFC 3339"), "{}", e.1);
        // 02:30 on 2027-03-28 does not exist in Berlin.
        let e = FreezeWindow::fixed(
            "x",
            "2027-03-28T02:30:00",
            "2027-04-01",
            Some("Europe/Berlin"),
        )
        .unwrap_err();
        assert!(e.1.contains("daylight saving"), "{}", e.1);
        let e =
            FreezeWindow::fixed("x", "2027-01-01", "2027-01-02", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e.0, "timezone");
        let e =
            FreezeWindow::recurring("x", "0 0 L * *", Duration::from_secs(60), None).unwrap_err();
        assert_eq!(e.0, "start");
        assert!(e.1.contains("6 fields"), "{}", e.1);
        for bad in [Duration::ZERO, Duration::from_secs(367 * 86_400)] {
            let e = FreezeWindow::recurring("x", "0 0 0 L * *", bad, None).unwrap_err();
            assert_eq!(e.0, "duration");
        }
    }
}
