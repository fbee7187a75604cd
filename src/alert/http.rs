//! The HTTP plumbing the channels share: one client, one way to send a JSON body and read a
//! short answer, one mapping of failures to [`AlertError`] that never shows a URL or a body.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::{AlertError, TransportFailure};

/// Answers longer than this are not read further: the channels only look for `ok` or a status.
const ANSWER_LIMIT: usize = 4096;

/// The client every channel shares. Redirects are not followed: a redirect would carry a
/// signed body or a routing key to a host nobody configured.
pub(crate) fn client(
    request_timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "netsuite-token-rotator/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| format!("alerts: cannot build the HTTP client: {}", e.without_url()))
}

/// A received answer: status and at most [`ANSWER_LIMIT`] bytes of body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub retry_after: Option<Duration>,
}

/// POSTs `body` as JSON with the extra `headers`.
pub(crate) async fn post_json(
    channel: &str,
    client: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Answer, AlertError> {
    let transport = |e: reqwest::Error| {
        let kind = if e.is_timeout() {
            TransportFailure::Timeout
        } else if e.is_connect() {
            TransportFailure::Connect
        } else {
            TransportFailure::Other
        };
        AlertError::Transport {
            channel: channel.to_string(),
            kind,
            cause: cause_without_url(e),
        }
    };
    let mut response = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = Vec::new();
    while body.len() < ANSWER_LIMIT {
        match response.chunk().await.map_err(transport)? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(ANSWER_LIMIT);
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

/// The error for a non-success status, with an optional sanitised code from the body.
pub(crate) fn status_error(channel: &str, answer: &Answer, code: Option<String>) -> AlertError {
    AlertError::Status {
        channel: channel.to_string(),
        status: answer.status,
        code,
        retry_after: answer.retry_after,
    }
}

/// Keeps a code-like answer (`invalid_payload`, `channel_not_found`) if the body is one:
/// letters, digits, `_ -.` and spaces, at most 64 characters. Anything else is not shown.
pub(crate) fn code_from_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let plain = !text.is_empty()
        && text.chars().count() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    plain.then(|| text.to_string())
}

/// The library's description of a transport failure, URL removed, source chain included.
fn cause_without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        source = s.source();
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_codes_are_kept_from_bodies() {
        assert_eq!(
            code_from_body(b"invalid_payload\n").as_deref(),
            Some("invalid_payload")
        );
        assert_eq!(code_from_body(b"{\"routing_key\":\"x\"}"), None);
        assert_eq!(code_from_body(&[b'a'; 65]), None);
        assert_eq!(code_from_body(b""), None);
    }
}
