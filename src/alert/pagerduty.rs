//! PagerDuty through the Events API v2: `POST <base>/v2/enqueue`, base
//! `https://events.pagerduty.com` unless `events_url` says otherwise.
//!
//! Trigger: `{"routing_key","event_action":"trigger","dedup_key","client","payload":{"summary",
//! "source","severity","timestamp","component","group","class","custom_details"},"links"}`;
//! resolve: `{"routing_key","event_action":"resolve","dedup_key"}`. The dedup key is the
//! alert's ([`Alert::dedup_key`]) so a resolve finds its trigger; PagerDuty only applies it
//! when it comes with the same routing key. PagerDuty answers 202 with
//! `{"status":"success","message":"Event processed","dedup_key":…}`; 400 (invalid event) is
//! permanent; 429, 5xx and network errors are worth retrying.
//!
//! `links[].href` must be a URL, so the runbook goes into `links` only when it is absolute
//! (see `Alerter::with_runbook_base_url`); it is always in `custom_details.runbook`.

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use super::http::{post_json, status_error};
use super::{Alert, AlertChannel, AlertError, SOURCE_NAME};

pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com";

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_LIMIT: usize = 1024;

pub struct PagerDutyChannel {
    name: String,
    client: reqwest::Client,
    routing_key: SecretString,
    enqueue_url: String,
}

impl PagerDutyChannel {
    /// `events_url` is the base (scheme, host, optional path prefix); `/v2/enqueue` is added.
    pub fn new(
        name: impl Into<String>,
        client: reqwest::Client,
        routing_key: SecretString,
        events_url: Option<&str>,
    ) -> PagerDutyChannel {
        let base = events_url
            .unwrap_or(DEFAULT_EVENTS_URL)
            .trim_end_matches('/');
        PagerDutyChannel {
            name: name.into(),
            client,
            routing_key,
            enqueue_url: format!("{base}/v2/enqueue"),
        }
    }

    async fn enqueue(&self, event: serde_json::Value) -> Result<(), AlertError> {
        let body = serde_json::to_vec(&event).expect("a JSON object serialises");
        let answer = post_json(
            &self.name,
            &self.client,
            &self.enqueue_url,
            HeaderMap::new(),
            body,
        )
        .await?;
        let reply: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
        let field = |name: &str| {
            reply
                .as_ref()
                .and_then(|r| r.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        match answer.status {
            200..=299 if field("status").as_deref() == Some("success") => Ok(()),
            200..=299 => Err(AlertError::UnexpectedAnswer {
                channel: self.name.clone(),
                status: answer.status,
                problem:
                    "the body lacks {\"status\":\"success\"} (is events_url the Events API v2?)"
                        .into(),
            }),
            // PagerDuty's `message` (e.g. "Event object is invalid") names the problem; its
            // `errors` list is not shown, as it describes our fields and could quote one.
            _ => Err(status_error(
                &self.name,
                &answer,
                field("message").and_then(|m| super::http::code_from_body(m.as_bytes())),
            )),
        }
    }
}

/// The trigger event, routing key included (PagerDuty requires it in the body).
pub fn trigger_event(routing_key: &SecretString, alert: &Alert) -> serde_json::Value {
    let mut details = serde_json::Map::new();
    for (key, value) in &alert.details {
        details.insert(key.clone(), value.clone().into());
    }
    details.insert("integration".into(), alert.integration.clone().into());
    details.insert("account".into(), alert.account.clone().into());
    details.insert("runbook".into(), alert.runbook.clone().into());
    let summary: String = alert.summary.chars().take(SUMMARY_LIMIT).collect();
    let mut event = serde_json::json!({
        "routing_key": routing_key.expose_secret(),
        "event_action": "trigger",
        "dedup_key": alert.dedup_key(),
        "client": SOURCE_NAME,
        "payload": {
            "summary": summary,
            "source": format!("netsuite:{}", alert.account),
            "severity": alert.kind.severity(),
            "timestamp": alert.raised_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "component": alert.integration,
            "group": SOURCE_NAME,
            "class": alert.kind.slug(),
            "custom_details": details,
        },
    });
    if alert.runbook.starts_with("https://") || alert.runbook.starts_with("http://") {
        event["links"] = serde_json::json!([{
            "href": alert.runbook,
            "text": format!("Runbook: {}", alert.kind.title()),
        }]);
    }
    event
}

/// The resolve event for `alert`'s dedup key.
pub fn resolve_event(routing_key: &SecretString, alert: &Alert) -> serde_json::Value {
    serde_json::json!({
        "routing_key": routing_key.expose_secret(),
        "event_action": "resolve",
        "dedup_key": alert.dedup_key(),
    })
}

#[async_trait::async_trait]
impl AlertChannel for PagerDutyChannel {
    fn resolves_by_key(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn trigger(&self, alert: &Alert) -> Result<(), AlertError> {
        self.enqueue(trigger_event(&self.routing_key, alert)).await
    }

    async fn resolve(&self, alert: &Alert) -> Result<(), AlertError> {
        self.enqueue(resolve_event(&self.routing_key, alert)).await
    }
}
