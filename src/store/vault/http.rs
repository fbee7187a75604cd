//! One Vault API call as the store sees it: what Vault answered ([`Reply`]), a call that got
//! no answer ([`Failure`]), the [`Transport`] that sends it, and how Vault's refusals become
//! [`StoreError`] kinds without quoting anything but Vault's own error text.

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::store::StoreErrorKind;

/// What Vault answered: the status and the JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Value,
}

impl Reply {
    pub(super) fn new(status: u16, bytes: &[u8]) -> Reply {
        let body = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }
}

/// A call that got no answer from Vault (or could not be authenticated).
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) kind: StoreErrorKind,
    pub(super) detail: String,
}

/// Sends requests to `/v1/<path>`; authentication is the transport's business. The HTTP
/// transport is [`VaultHttp`]; unit tests use an in-memory KV v2.
#[async_trait::async_trait]
pub(super) trait Transport: Send + Sync {
    async fn send(&self, method: Method, path: &str, body: Option<&[u8]>)
    -> Result<Reply, Failure>;
}

pub(super) fn to_json_bytes<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(value).expect("serialising to JSON in memory cannot fail"))
}

pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Vault's error text: the `errors` array (Vault), or `error` (some compatible servers), each
/// entry cut short. The rest of the body is never quoted.
pub(super) fn vault_errors(body: &Value) -> String {
    const MAX: usize = 300;
    let cut = |s: &str| s.chars().take(MAX).collect::<String>();
    let texts: Vec<String> = match (body.get("errors"), body.get("error")) {
        (Some(Value::Array(errors)), _) => {
            errors.iter().filter_map(Value::as_str).map(cut).collect()
        }
        (_, Some(Value::String(error))) => vec![cut(error)],
        _ => Vec::new(),
    };
    if texts.is_empty() {
        "no error text".to_string()
    } else {
        texts.join("; ")
    }
}

/// Maps a refusal to a kind: a lost check-and-set is a conflict, 403 is denied, the temporary
/// ones (412 from a lagging standby, 429, 5xx including 503 sealed) are unavailable.
pub(super) fn kind_for(status: u16, errors: &str) -> StoreErrorKind {
    match status {
        400 if errors.contains("check-and-set") => StoreErrorKind::Conflict,
        401 | 403 => StoreErrorKind::Denied,
        412 | 429 | 500..=599 => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Failed,
    }
}

pub(super) fn rejection(step: &str, method: Method, path: &str, reply: &Reply) -> Failure {
    let errors = vault_errors(&reply.body);
    Failure {
        kind: kind_for(reply.status, &errors),
        detail: format!(
            "{step}: {method} /v1/{path}: HTTP {}: {errors}",
            reply.status
        ),
    }
}
