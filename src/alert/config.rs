//! `[[alerts]]`: the alert channels, as the configuration gives them.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::secret::SecretRef;

/// Where alerts go. Sending is done by the daemon's alert module.
#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AlertConfig {
    /// A JSON POST to a URL of yours.
    Webhook {
        /// Where the alert is posted.
        url: String,
        /// Shared secret for the `X-Signature-256` HMAC header.
        secret: Option<SecretRef>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook's URL: a secret, as it lets anyone post.
        webhook_url: SecretRef,
    },
    /// A PagerDuty Events API v2 event.
    Pagerduty {
        /// The service integration's routing key.
        routing_key: SecretRef,
        /// Events API v2 base URL (for proxies and tests).
        events_url: Option<String>,
    },
}
