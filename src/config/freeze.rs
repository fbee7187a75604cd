//! `[[freeze]]` and `[[integrations.freeze]]`: windows in which no rotation starts, as the
//! file gives them (`schedule::freeze` works them out).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{field_err, schema};
use crate::schedule::{FreezeWindow, Freezes};
use crate::value_format::parse_duration;

/// `[[freeze]]` and `[[integrations.freeze]]`: a window in which no rotation starts (revocations
/// of replaced credentials still happen). Either `start` and `duration` (recurring) or `from`
/// and `until` (fixed).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    /// Shown by `status`, the metrics and the logs; `freeze[N]` when absent.
    pub name: Option<String>,
    /// A recurring window opens whenever this cron expression (with seconds) matches, e.g.
    /// `"0 0 0 L * *"` (midnight on the last day of each month).
    #[schemars(pattern(schema::CRON))]
    pub start: Option<String>,
    /// How long a recurring window lasts, e.g. `"72h"`.
    #[schemars(pattern(schema::DURATION))]
    pub duration: Option<String>,
    /// A fixed window's first moment: `"2026-12-24"`, `"2026-12-24T18:00:00"` (both in
    /// `timezone`) or an RFC 3339 time; a TOML date or date-time works too.
    #[serde(default, deserialize_with = "date_or_text")]
    pub from: Option<String>,
    /// A fixed window's end (not included), in the same forms as `from`.
    #[serde(default, deserialize_with = "date_or_text")]
    pub until: Option<String>,
    /// IANA time zone of `start`, `from` and `until`; UTC when absent.
    pub timezone: Option<String>,
}

impl FreezeConfig {
    /// The window; errors are (key, problem), the key relative to this table.
    pub(super) fn window(&self, index: usize) -> Result<FreezeWindow, (String, String)> {
        let default_name = format!("freeze[{index}]");
        let name = self.name.as_deref().unwrap_or(&default_name);
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(field_err(
                "name",
                "expected a name without control characters",
            ));
        }
        let tz = self.timezone.as_deref();
        let keyed = |(key, problem): (&str, String)| (key.to_string(), problem);
        match (&self.start, &self.duration, &self.from, &self.until) {
            (Some(start), Some(duration), None, None) => {
                let duration = parse_duration(duration).map_err(|p| ("duration".into(), p))?;
                FreezeWindow::recurring(name, start, duration, tz).map_err(keyed)
            }
            (None, None, Some(from), Some(until)) => {
                FreezeWindow::fixed(name, from, until, tz).map_err(keyed)
            }
            (Some(_), None, None, None) => Err(field_err(
                "duration",
                "expected how long each window lasts beside start, e.g. \"72h\"",
            )),
            (None, Some(_), None, None) => Err(field_err(
                "start",
                "expected a cron expression with seconds beside duration, e.g. \"0 0 0 L * *\"",
            )),
            (None, None, Some(_), None) => Err(field_err(
                "until",
                "expected the end of the window beside from, e.g. \"2027-01-02\"",
            )),
            (None, None, None, Some(_)) => Err(field_err(
                "from",
                "expected the start of the window beside until, e.g. \"2026-12-24\"",
            )),
            (None, None, None, None) => Err(field_err(
                "start",
                "expected start and duration (a recurring window) or from and until (a fixed one)",
            )),
            _ => Err(field_err(
                "start",
                "expected either start and duration (a recurring window) or from and until (a \
                 fixed one), not both",
            )),
        }
    }
}

/// Parses a list of freeze tables whose path is `prefix` (`freeze`, `integrations[2].freeze`).
pub(super) fn parse_freezes(
    tables: &[FreezeConfig],
    shared: &Freezes,
    prefix: &str,
) -> Result<Freezes, (String, String)> {
    let windows = tables
        .iter()
        .enumerate()
        .map(|(i, table)| {
            table
                .window(i)
                .map_err(|(key, p)| (format!("{prefix}[{i}].{key}"), p))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Freezes::with(shared, windows))
}

/// A string, or a TOML date or date-time written without quotes (kept as its RFC 3339 text).
pub(super) fn date_or_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::String(text) => Ok(Some(text)),
        toml::Value::Datetime(datetime) => Ok(Some(datetime.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "invalid type: {}, expected a date such as \"2026-12-24\" or a date-time",
            other.type_str()
        ))),
    }
}
