//! Alerts to on-call: what is worth waking someone for, and the channels that carry it
//! (a signed JSON webhook, a Slack incoming webhook, PagerDuty Events API v2).
//!
//! The shape follows vector's sinks: a small [`AlertChannel`] trait per destination, and an
//! [`Alerter`] in front of them that never blocks or fails a rotation. The daemon turns engine
//! events and rotation failures into [`Alert`]s with [`alert_for_event`] and
//! [`alert_for_failure`], hands them to [`Alerter::trigger`], and calls
//! [`Alerter::resolve_all`] after a successful rotation. Payloads, headers and dedup keys are
//! documented in `docs/alerts.md`.
//!
//! An alert never carries a secret: its texts come from the Display of our error and event
//! types (secret-free by design), token ids are shortened, and [`scrub`] replaces anything
//! that still looks like a key or token secret before an alert leaves the process.

mod alerter;
mod classify;
pub mod config;
mod http;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use alerter::{Alerter, DeliveryPolicy};
pub use classify::{alert_for_event, alert_for_failure, alert_for_store_problem};
pub use pagerduty::PagerDutyChannel;
pub use slack::SlackChannel;
pub use webhook::WebhookChannel;

/// Names this tool in payloads and dedup keys.
pub const SOURCE_NAME: &str = "netsuite-token-rotator";

/// The problems that raise an alert. Each has a stable slug (payloads, dedup keys, runbook
/// anchors): renaming one breaks dedup keys of open incidents and operators' filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    RotationFailed,
    OrphanSuspected,
    RevokeOverdue,
    TokenInfoMismatch,
    ClockSkew,
    LoginRefused,
    /// The daemon cannot read (or write) the integration's store.
    StoreUnreadable,
    /// An M2M integration's current certificate has expired: no rotation can replace it.
    CertificateExpired,
}

impl AlertKind {
    pub const ALL: [AlertKind; 8] = [
        AlertKind::RotationFailed,
        AlertKind::OrphanSuspected,
        AlertKind::RevokeOverdue,
        AlertKind::TokenInfoMismatch,
        AlertKind::ClockSkew,
        AlertKind::LoginRefused,
        AlertKind::StoreUnreadable,
        AlertKind::CertificateExpired,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            AlertKind::RotationFailed => "rotation-failed",
            AlertKind::OrphanSuspected => "orphan-suspected",
            AlertKind::RevokeOverdue => "revoke-overdue",
            AlertKind::TokenInfoMismatch => "tokeninfo-mismatch",
            AlertKind::ClockSkew => "clock-skew",
            AlertKind::LoginRefused => "login-refused",
            AlertKind::StoreUnreadable => "store-unreadable",
            AlertKind::CertificateExpired => "certificate-expired",
        }
    }

    /// A short human title, for message headlines.
    pub fn title(self) -> &'static str {
        match self {
            AlertKind::RotationFailed => "Token rotation failed",
            AlertKind::OrphanSuspected => "Suspected orphan token",
            AlertKind::RevokeOverdue => "Replaced token not revoked",
            AlertKind::TokenInfoMismatch => "New token reports the wrong account, role or entity",
            AlertKind::ClockSkew => "Clock skew: NetSuite refused the timestamp",
            AlertKind::LoginRefused => "NetSuite refused the NLAuth login: latched",
            AlertKind::StoreUnreadable => "The daemon cannot read the integration's store",
            AlertKind::CertificateExpired => "M2M certificate expired: rotation cannot continue",
        }
    }

    /// The runbook section for this problem, relative to the repository root.
    pub fn runbook(self) -> String {
        format!("docs/runbook.md#{}", self.slug())
    }

    /// PagerDuty's severity scale (`critical`, `error`, `warning`, `info`). A refused login
    /// stops rotation until a person acts; an orphan or an overdue revocation leaves an extra
    /// valid token but breaks nothing.
    pub fn severity(self) -> &'static str {
        match self {
            AlertKind::LoginRefused | AlertKind::CertificateExpired => "critical",
            AlertKind::RotationFailed
            | AlertKind::TokenInfoMismatch
            | AlertKind::ClockSkew
            | AlertKind::StoreUnreadable => "error",
            AlertKind::OrphanSuspected | AlertKind::RevokeOverdue => "warning",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// One problem of one integration, ready for any channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub integration: String,
    /// The NetSuite account id (realm), e.g. `123456_SB1`.
    pub account: String,
    /// One line, no secrets.
    pub summary: String,
    pub details: BTreeMap<String, String>,
    /// `docs/runbook.md#<slug>`, or an absolute URL once [`Alerter::with_runbook_base_url`]
    /// is set.
    pub runbook: String,
    pub raised_at: DateTime<Utc>,
}

/// Longest summary kept; PagerDuty allows 1024, chat messages want less.
const SUMMARY_LIMIT: usize = 300;

impl Alert {
    /// An alert with the kind's runbook, no details, raised now. The summary is made one line,
    /// bounded and scrubbed.
    pub fn new(
        kind: AlertKind,
        integration: impl Into<String>,
        account: impl Into<String>,
        summary: impl AsRef<str>,
    ) -> Alert {
        Alert {
            kind,
            integration: integration.into(),
            account: account.into(),
            summary: one_line(&scrub(summary.as_ref()), SUMMARY_LIMIT),
            details: BTreeMap::new(),
            runbook: kind.runbook(),
            raised_at: Utc::now(),
        }
    }

    /// Adds a detail (scrubbed).
    pub fn with_detail(mut self, key: &str, value: impl AsRef<str>) -> Alert {
        self.details
            .insert(key.to_string(), scrub(value.as_ref()).into_owned());
        self
    }

    /// Stable per integration and problem, so a resolve finds its trigger (PagerDuty) and
    /// receivers can group repeats: `netsuite-token-rotator/<integration>/<slug>`.
    pub fn dedup_key(&self) -> String {
        dedup_key(&self.integration, self.kind)
    }

    /// Scrubs every text again: for alerts built by hand rather than through [`Alert::new`].
    pub(crate) fn scrubbed(mut self) -> Alert {
        self.summary = one_line(&scrub(&self.summary), SUMMARY_LIMIT);
        for value in self.details.values_mut() {
            if let std::borrow::Cow::Owned(clean) = scrub(value) {
                *value = clean;
            }
        }
        self
    }
}

/// The dedup key of `kind` for `integration`; see [`Alert::dedup_key`].
pub fn dedup_key(integration: &str, kind: AlertKind) -> String {
    format!("{SOURCE_NAME}/{integration}/{}", kind.slug())
}

/// Whether the alert is being raised or cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Resolve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Resolve => "resolve",
        }
    }
}

/// A destination for alerts. Implementations send once; the [`Alerter`] retries.
#[async_trait::async_trait]
pub trait AlertChannel: Send + Sync {
    /// Names the channel in logs and metrics (`webhook`, `slack`, `pagerduty`, or with the
    /// config index when a kind is configured twice, e.g. `slack[2]`).
    fn name(&self) -> &str;
    async fn trigger(&self, alert: &Alert) -> Result<(), AlertError>;
    /// Clears what `trigger` raised (PagerDuty resolves the incident by its dedup key; the
    /// webhook and Slack send a "resolved" message).
    async fn resolve(&self, alert: &Alert) -> Result<(), AlertError>;
    /// Whether a resolve for a problem this process never raised is harmless here: true where
    /// the receiver closes problems by dedup key and ignores unknown keys (PagerDuty, and the
    /// webhook's receivers by contract); false for Slack, where it would be a message about
    /// nothing. Such resolves close what a process before a restart raised.
    fn resolves_by_key(&self) -> bool {
        false
    }
}

/// How a request below HTTP failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    Connect,
    Timeout,
    Other,
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportFailure::Connect => "could not connect",
            TransportFailure::Timeout => "timed out",
            TransportFailure::Other => "the request failed",
        })
    }
}

/// A failed delivery. Messages name the channel and never a URL, key or response body (only a
/// short, sanitised error code from it).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{channel}: {kind} ({cause})")]
    Transport {
        channel: String,
        kind: TransportFailure,
        /// The HTTP library's description, without the URL.
        cause: String,
    },
    #[error("{channel}: answered HTTP {status}{}: {}", code_suffix(.code), status_meaning(*.status))]
    Status {
        channel: String,
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error("{channel}: answered HTTP {status} but {problem}")]
    UnexpectedAnswer {
        channel: String,
        status: u16,
        problem: String,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

fn status_meaning(status: u16) -> &'static str {
    match status {
        400 => "the receiver refused the payload; not retried",
        401 | 403 => "refused: check the key or URL in the [[alerts]] entry; not retried",
        404 | 410 => "no such endpoint (a removed webhook?); not retried",
        408 | 429 => "asked to slow down; retried",
        500..=599 => "the receiver failed; retried",
        _ => "an answer this channel does not expect; not retried",
    }
}

impl AlertError {
    /// Worth another attempt: transport failures, 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            AlertError::Transport { .. } => true,
            AlertError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            AlertError::UnexpectedAnswer { .. } => false,
        }
    }

    /// What the receiver asked us to wait (`Retry-After`), if anything.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AlertError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Replaces every run of 32 or more key-like characters (`A-Z a-z 0-9 + / =`) with
/// `[redacted]`. NetSuite consumer keys, token ids and token secrets are 64 hex characters;
/// routing keys 32. Rotation ids and token names are hyphenated UUIDs (runs of at most 12), and
/// token ids in alerts are shortened, so nothing an operator needs matches.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    const RUN: usize = 32;
    let key_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    let mut run = 0;
    let mut found = false;
    for c in text.chars() {
        run = if key_like(c) { run + 1 } else { 0 };
        if run >= RUN {
            found = true;
            break;
        }
    }
    if !found {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut pending = String::new();
    let flush = |pending: &mut String, out: &mut String| {
        if pending.chars().count() >= RUN {
            out.push_str("[redacted]");
        } else {
            out.push_str(pending);
        }
        pending.clear();
    };
    for c in text.chars() {
        if key_like(c) {
            pending.push(c);
        } else {
            flush(&mut pending, &mut out);
            out.push(c);
        }
    }
    flush(&mut pending, &mut out);
    std::borrow::Cow::Owned(out)
}

/// Control characters become spaces, runs of spaces collapse, and the text is cut at `limit`
/// characters (with `…`).
fn one_line(text: &str, limit: usize) -> String {
    let mut line = String::with_capacity(text.len().min(limit + 3));
    let mut count = 0;
    let mut last_space = false;
    for c in text.trim().chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if count == limit {
            line.push('…');
            break;
        }
        line.push(c);
        count += 1;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_distinct_and_anchor_the_runbook() {
        let slugs: std::collections::HashSet<_> = AlertKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), AlertKind::ALL.len());
        for kind in AlertKind::ALL {
            assert_eq!(kind.runbook(), format!("docs/runbook.md#{}", kind.slug()));
            assert!(
                kind.slug()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            );
        }
    }

    #[test]
    fn dedup_key_depends_on_integration_and_kind_only() {
        let a = Alert::new(AlertKind::ClockSkew, "erp", "1", "one");
        let b = Alert::new(AlertKind::ClockSkew, "erp", "2", "two").with_detail("x", "y");
        assert_eq!(a.dedup_key(), "netsuite-token-rotator/erp/clock-skew");
        assert_eq!(a.dedup_key(), b.dedup_key());
        assert_ne!(
            a.dedup_key(),
            Alert::new(AlertKind::LoginRefused, "erp", "1", "one").dedup_key()
        );
        assert_ne!(
            a.dedup_key(),
            Alert::new(AlertKind::ClockSkew, "crm", "1", "one").dedup_key()
        );
    }

    #[test]
    fn scrub_removes_key_like_runs_and_keeps_ids_people_need() {
        let secret = "a".repeat(20) + &"0123456789abcdef".repeat(3);
        let text = format!("secret {secret}, token erp-4b0f7c1e-9d2a-4c43-8f6e-1a2b3c4d5e6f ok");
        let clean = scrub(&text);
        assert!(!clean.contains(&secret));
        assert!(clean.contains("[redacted]"));
        assert!(clean.contains("erp-4b0f7c1e-9d2a-4c43-8f6e-1a2b3c4d5e6f"));
        assert!(matches!(scrub("abcd…wxyz"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn summaries_are_one_bounded_line() {
        let alert = Alert::new(
            AlertKind::RotationFailed,
            "erp",
            "1",
            format!("first\nsecond\r\n{}", "word ".repeat(200)),
        );
        assert!(!alert.summary.contains('\n') && !alert.summary.contains('\r'));
        assert!(alert.summary.starts_with("first second "));
        assert_eq!(alert.summary.chars().count(), SUMMARY_LIMIT + 1);
    }

    #[test]
    fn retryable_statuses() {
        let status = |status| AlertError::Status {
            channel: "c".into(),
            status,
            code: None,
            retry_after: None,
        };
        for s in [408, 429, 500, 502, 503] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 302] {
            assert!(!status(s).is_retryable(), "{s}");
        }
    }
}
