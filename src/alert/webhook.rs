//! A generic JSON webhook, signed GitHub-style when a secret is configured.
//!
//! Body (one JSON object; `event` is `trigger` or `resolve`, `timestamp` the send time in
//! RFC 3339):
//! `{"event","kind","integration","account","summary","details","runbook","dedup_key","timestamp"}`.
//! Headers: `X-Netsuite-Rotator-Timestamp: <unix seconds>` always, and with a secret
//! `X-Signature-256: sha256=<hex HMAC-SHA256 of the exact body bytes>`. The body's `timestamp`
//! is covered by the signature, so receivers can refuse replays of old bodies. Each retry is
//! a fresh body with a fresh timestamp and signature. Any 2xx is success.

use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::http::{code_from_body, post_json, status_error};
use super::{Action, Alert, AlertChannel, AlertError};

pub const SIGNATURE_HEADER: &str = "x-signature-256";
pub const TIMESTAMP_HEADER: &str = "x-netsuite-rotator-timestamp";

pub struct WebhookChannel {
    name: String,
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Option<SecretString>,
}

impl WebhookChannel {
    pub fn new(
        name: impl Into<String>,
        client: reqwest::Client,
        url: reqwest::Url,
        secret: Option<SecretString>,
    ) -> WebhookChannel {
        WebhookChannel {
            name: name.into(),
            client,
            url,
            secret,
        }
    }

    async fn send(&self, action: Action, alert: &Alert) -> Result<(), AlertError> {
        let now = Utc::now();
        let body = serde_json::to_vec(&serde_json::json!({
            "event": action.as_str(),
            "kind": alert.kind.slug(),
            "integration": alert.integration,
            "account": alert.account,
            "summary": alert.summary,
            "details": alert.details,
            "runbook": alert.runbook,
            "dedup_key": alert.dedup_key(),
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }))
        .expect("a JSON object of strings serialises");
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(TIMESTAMP_HEADER),
            HeaderValue::from(now.timestamp()),
        );
        if let Some(secret) = &self.secret {
            let signature = format!("sha256={}", sign(secret, &body));
            let mut value = HeaderValue::from_str(&signature).expect("hex is a valid header");
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(SIGNATURE_HEADER), value);
        }
        let answer = post_json(&self.name, &self.client, self.url.as_str(), headers, body).await?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(status_error(
                &self.name,
                &answer,
                code_from_body(&answer.body),
            ))
        }
    }
}

/// Lower-case hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[async_trait::async_trait]
impl AlertChannel for WebhookChannel {
    fn resolves_by_key(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn trigger(&self, alert: &Alert) -> Result<(), AlertError> {
        self.send(Action::Trigger, alert).await
    }

    /// Sends the same body with `"event": "resolve"`.
    async fn resolve(&self, alert: &Alert) -> Result<(), AlertError> {
        self.send(Action::Resolve, alert).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_test_case_2() {
        let key = SecretString::from("Jefe");
        assert_eq!(
            sign(&key, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
