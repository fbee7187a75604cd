//! Slack through an incoming webhook: a POST of `{"text": …}` to the webhook URL, which is
//! itself the credential (held as a secret, never logged). Slack answers HTTP 200 with the
//! body `ok`; errors are a 4xx/5xx with a short code such as `invalid_payload` or
//! `channel_is_archived` in the body. `&`, `<` and `>` in our texts are escaped as Slack's
//! message formatting requires. A resolve posts a short "resolved" message.

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use super::http::{code_from_body, post_json, status_error};
use super::{Alert, AlertChannel, AlertError};

pub struct SlackChannel {
    name: String,
    client: reqwest::Client,
    webhook_url: SecretString,
}

impl SlackChannel {
    pub fn new(
        name: impl Into<String>,
        client: reqwest::Client,
        webhook_url: SecretString,
    ) -> SlackChannel {
        SlackChannel {
            name: name.into(),
            client,
            webhook_url,
        }
    }

    async fn post(&self, text: String) -> Result<(), AlertError> {
        let body = serde_json::to_vec(&serde_json::json!({ "text": text }))
            .expect("a JSON object of strings serialises");
        let answer = post_json(
            &self.name,
            &self.client,
            self.webhook_url.expose_secret(),
            HeaderMap::new(),
            body,
        )
        .await?;
        let code = code_from_body(&answer.body);
        match answer.status {
            200..=299 if code.as_deref() == Some("ok") => Ok(()),
            200..=299 => Err(AlertError::UnexpectedAnswer {
                channel: self.name.clone(),
                status: answer.status,
                problem: "the body is not `ok` (is this a Slack incoming-webhook URL?)".into(),
            }),
            _ => Err(status_error(&self.name, &answer, code)),
        }
    }
}

/// The trigger message: headline, summary, runbook.
pub fn trigger_text(alert: &Alert) -> String {
    format!(
        ":rotating_light: *{}* for `{}` (account {})\n{}\nRunbook: {}",
        escape(alert.kind.title()),
        escape(&alert.integration),
        escape(&alert.account),
        escape(&alert.summary),
        escape(&alert.runbook),
    )
}

/// The resolve message.
pub fn resolve_text(alert: &Alert) -> String {
    format!(
        ":white_check_mark: Resolved: *{}* for `{}` (account {})",
        escape(alert.kind.title()),
        escape(&alert.integration),
        escape(&alert.account),
    )
}

/// Slack's three control characters in message text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[async_trait::async_trait]
impl AlertChannel for SlackChannel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn trigger(&self, alert: &Alert) -> Result<(), AlertError> {
        self.post(trigger_text(alert)).await
    }

    async fn resolve(&self, alert: &Alert) -> Result<(), AlertError> {
        self.post(resolve_text(alert)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;

    #[test]
    fn texts_are_escaped() {
        let alert = Alert::new(AlertKind::RotationFailed, "erp", "1", "a <b> & c");
        let text = trigger_text(&alert);
        assert!(text.contains("a &lt;b&gt; &amp; c"), "{text}");
        assert!(text.contains("docs/runbook.md#rotation-failed"), "{text}");
    }
}
