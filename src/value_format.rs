//! The formats of configuration values that several parts share, whichever part's config type
//! holds them: durations, base URLs, and the patterns the configuration's JSON schema gives
//! them (`config::schema`). At the bottom: it knows none of the parts.

use std::time::Duration;

/// The longest duration the config accepts. Durations are added to the present (a revoke time,
/// a scheduled time plus jitter), and times past year 262143 cannot be represented: without a
/// bound, `revoke_after = "1000000y"` passed validation and the first promotion panicked (the
/// `config` fuzz target, which also uses what it accepts, panics on such a config).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);

/// Parses `"1h"`, `"90s"`, `"0s"`; at most [`MAX_DURATION`] (`"10y"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?}: {e}; expected a duration like \"0s\", \"90s\", \"1h\""))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "{text:?}: longer than 10 years; expected a duration like \"0s\", \"90s\", \"1h\""
        ));
    }
    Ok(duration)
}

/// An `http://` or `https://` base URL with a host and no query or fragment.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?}: expected an http:// or https:// base URL"))?;
    if rest.is_empty() || rest.starts_with('/') || url.contains('?') || url.contains('#') {
        return Err(format!(
            "{url:?}: expected a base URL with a host and no query, e.g. https://proxy.internal:8443"
        ));
    }
    Ok(())
}

/// Regular expressions for the JSON schema, each standing for a check above or in a part's
/// `validate` (the tests in `config::schema` hold each to the parser it stands for).
pub mod pattern {
    /// A duration as `parse_duration` (humantime) reads it, as a wider net: numbers (with a
    /// fraction, spaces) each followed by a unit word, or `0`. The unit's name and the 10-year
    /// bound are the loader's to check.
    pub const DURATION: &str =
        r"^(0|\s*[0-9][0-9.\s]*[A-Za-zµ]+(\s*[0-9][0-9.\s]*[A-Za-zµ]+)*\s*)$";
    /// `check_base_url`: http(s), a host, no query or fragment.
    pub const BASE_URL: &str = r"^https?://[^/?#][^?#]*$";
    /// An integration's name.
    pub const NAME: &str = r"^[A-Za-z0-9_-]+$";
    /// `AccountId::parse`: letters and digits, then optionally `_` or `-` and letters and digits.
    pub const ACCOUNT_ID: &str = r"^\s*[A-Za-z0-9]+([_-][A-Za-z0-9]+)?\s*$";
    /// A cron expression with seconds: six fields (what each field holds is the loader's to check).
    pub const CRON: &str = r"^\s*\S+(\s+\S+){5}\s*$";
    /// What the loader takes for an email address: something with an `@`.
    pub const EMAIL: &str = "@";
    /// Not empty and not only white space.
    pub const NOT_BLANK: &str = r"\S";
}
