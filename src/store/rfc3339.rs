//! Timestamps as the stores write them: RFC 3339 in UTC with `Z` and as many fraction digits
//! as needed (none, 3, 6 or 9), exactly chrono's own serde form, but handed to the serializer
//! in one piece. chrono's `Serialize` passes its text a few characters at a time, and
//! serde_json escapes each piece on its own: that was about a twentieth of a rotation's
//! instructions (docs/performance.md, change 23).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// For `#[serde(serialize_with = "rfc3339::serialize")]`.
pub(crate) fn serialize<S: Serializer>(
    at: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// For `#[serde(serialize_with = "rfc3339::serialize_opt")]`.
pub(crate) fn serialize_opt<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Rfc3339<'a>(&'a DateTime<Utc>);
    impl Serialize for Rfc3339<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }
    match at {
        Some(at) => serializer.serialize_some(&Rfc3339(at)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "serialize_opt")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chronos {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn both(at: DateTime<Utc>, maybe: Option<DateTime<Utc>>) -> (String, String) {
        (
            serde_json::to_string(&Ours { at, maybe }).unwrap(),
            serde_json::to_string(&Chronos { at, maybe }).unwrap(),
        )
    }

    #[test]
    fn each_fraction_length_is_written_as_chrono_writes_it() {
        let second = Utc.with_ymd_and_hms(2026, 12, 7, 3, 4, 5).unwrap();
        for (nanos, text) in [
            (0, "2026-12-07T03:04:05Z"),
            (120_000_000, "2026-12-07T03:04:05.120Z"),
            (123_456_000, "2026-12-07T03:04:05.123456Z"),
            (123_456_789, "2026-12-07T03:04:05.123456789Z"),
        ] {
            let at = second + chrono::Duration::nanoseconds(nanos);
            let (ours, chronos) = both(at, None);
            assert_eq!(ours, format!(r#"{{"at":"{text}","maybe":null}}"#));
            assert_eq!(ours, chronos);
        }
    }

    proptest! {
        #[test]
        fn any_timestamp_is_written_as_chrono_writes_it(
            seconds in -62_135_596_800i64..253_402_300_800i64,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000, (0u32..1000).prop_map(|m| m * 1_000_000)],
            present: bool,
        ) {
            let at = Utc.timestamp_opt(seconds, nanos).unwrap();
            let (ours, chronos) = both(at, present.then_some(at));
            prop_assert_eq!(ours, chronos);
        }
    }
}
