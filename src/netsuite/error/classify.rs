//! Reading a failed answer into the error it means: the status, `WWW-Authenticate`, an OAuth
//! 2.0 error body, NetSuite's error object, `Retry-After`; never quoting a body.

use std::time::Duration;

use reqwest::StatusCode;

use super::parts::sanitize_token;
use super::{Call, NetSuiteError};
use crate::netsuite::{NetSuiteDetail, OAuthReason};

/// The parts of a non-2xx answer that classification looks at.
pub(crate) struct FailedAnswer<'a> {
    pub status: StatusCode,
    pub www_authenticate: Option<&'a str>,
    pub retry_after: Option<&'a str>,
    /// The body when it could be read within the size cap.
    pub body: Option<&'a [u8]>,
}

/// Turns a non-2xx answer into the error it means for `call`.
pub(crate) fn classify_status(call: Call, answer: &FailedAnswer<'_>) -> NetSuiteError {
    let status = answer.status.as_u16();
    let detail = answer.body.map(error_detail_from_body).unwrap_or_default();
    let retry_after = answer.retry_after.and_then(parse_retry_after);
    let code_says_login = detail
        .code
        .as_deref()
        .is_some_and(|code| code.to_ascii_uppercase().contains("LOGIN"));

    if status == 429 || (status < 500 && detail.code.as_deref().is_some_and(is_request_limit_code))
    {
        return NetSuiteError::RateLimited {
            call,
            status,
            detail,
            retry_after,
        };
    }
    let m2m_certificates = matches!(
        call,
        Call::ListCertificates | Call::AddCertificate | Call::RevokeCertificate
    );
    if call == Call::M2mToken
        && (400..500).contains(&status)
        && let Some((error, description)) = answer.body.and_then(oauth2_error_from_body)
    {
        if is_request_limit_code(&error) {
            return NetSuiteError::RateLimited {
                call,
                status,
                detail: NetSuiteDetail {
                    code: Some(error),
                    message: description,
                },
                retry_after,
            };
        }
        return NetSuiteError::OAuth2Rejected {
            call,
            status,
            error,
            description,
        };
    }
    if m2m_certificates && status == 401 {
        return NetSuiteError::AccessTokenRefused {
            call,
            status,
            detail,
        };
    }
    if call == Call::IssueToken && (status == 401 || (code_says_login && status < 500)) {
        return NetSuiteError::LoginFailed {
            call,
            status,
            detail,
        };
    }
    match status {
        // OAuth 1.0 reasons mean nothing to the token endpoint: a 401 without an OAuth 2.0
        // error is a plain refusal there.
        401 if call == Call::M2mToken => NetSuiteError::Rejected {
            call,
            status,
            detail,
        },
        401 => NetSuiteError::OAuthRejected {
            call,
            status,
            reason: answer
                .www_authenticate
                .and_then(oauth_error_param)
                .map(|reason| OAuthReason::parse(&reason))
                .unwrap_or(OAuthReason::Unspecified),
            detail,
        },
        500..=599 => NetSuiteError::ServerError {
            call,
            status,
            detail,
            retry_after,
        },
        _ => NetSuiteError::Rejected {
            call,
            status,
            detail,
        },
    }
}

/// The `error` auth-param of an `OAuth` challenge in a `WWW-Authenticate` value such as
/// `OAuth realm="123456", error="token_rejected"`. Tolerates unquoted values, odd spacing and
/// other challenges before the OAuth one.
pub(crate) fn oauth_error_param(www_authenticate: &str) -> Option<String> {
    let start = find_ascii_case_insensitive(www_authenticate, "oauth")?;
    let params = &www_authenticate[start + "oauth".len()..];
    parse_auth_params(params)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("error"))
        .map(|(_, value)| value)
}

/// The RFC 6749 section 5.2 error of a token endpoint answer: `{"error": "<code>",
/// "error_description": "<text>"}`, sanitised. `None` when `error` is not a string (NetSuite's
/// own `{"error": {"code", …}}` objects go through [`error_detail_from_body`]).
pub(crate) fn oauth2_error_from_body(body: &[u8]) -> Option<(String, Option<String>)> {
    let value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let error = sanitize_token(value.get("error")?.as_str()?, 64);
    if error.is_empty() {
        return None;
    }
    let description = value
        .get("error_description")
        .and_then(serde_json::Value::as_str)
        .map(sanitize_message)
        .filter(|d| !d.is_empty());
    Some((error, description))
}

pub(super) fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `SSS_REQUEST_LIMIT_EXCEEDED`, the code of the account concurrency limit (RESTlet domains
/// send it with status 400). Public clients key on the code, not the status; so does this.
pub(super) fn is_request_limit_code(code: &str) -> bool {
    code.eq_ignore_ascii_case("SSS_REQUEST_LIMIT_EXCEEDED")
}

/// `name=value` / `name="quoted \" value"` pairs separated by commas (RFC 7235 auth-params).
pub(super) fn parse_auth_params(input: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let name: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if name.is_empty() {
            return params;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    _ => value.push(c),
                }
            }
            chars.by_ref().take_while(|c| *c != ',').for_each(drop);
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
            value = value.trim().to_string();
        }
        params.push((name, value));
    }
}

pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Finds NetSuite's error code and message in a JSON error body: `{"error":{"code","message"}}`
/// at the top or nested inside another object, or REST-style `o:errorCode`/`detail`. Anything
/// else (HTML, empty, other JSON) gives an empty detail.
pub(crate) fn error_detail_from_body(body: &[u8]) -> NetSuiteDetail {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return NetSuiteDetail::default();
    };
    find_error_object(&value, 0).unwrap_or_default()
}

pub(super) fn find_error_object(value: &serde_json::Value, depth: usize) -> Option<NetSuiteDetail> {
    const MAX_DEPTH: usize = 6;
    if depth > MAX_DEPTH {
        return None;
    }
    match value {
        serde_json::Value::Object(map) => {
            let field = |names: &[&str]| {
                map.iter()
                    .find(|(key, _)| names.iter().any(|name| key.eq_ignore_ascii_case(name)))
                    .and_then(|(_, value)| value.as_str())
            };
            let code = field(&["code", "o:errorCode"]).map(|code| sanitize_token(code, 64));
            let message = field(&["message", "detail"]).map(sanitize_message);
            if code.is_some() {
                return Some(NetSuiteDetail { code, message });
            }
            // Prefer an `error` member, then any other nested object.
            let error_first = map
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case("error"))
                .chain(
                    map.iter()
                        .filter(|(key, _)| !key.eq_ignore_ascii_case("error")),
                );
            error_first
                .filter_map(|(_, nested)| find_error_object(nested, depth + 1))
                .next()
        }
        serde_json::Value::Array(items) => items
            .iter()
            .take(8)
            .find_map(|item| find_error_object(item, depth + 1)),
        _ => None,
    }
}

/// Keeps an error message on one line and at most 200 characters.
pub(super) fn sanitize_message(raw: &str) -> String {
    const LIMIT: usize = 200;
    let mut message: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(LIMIT)
        .collect();
    if raw.chars().count() > LIMIT {
        message.push('…');
    }
    message.trim().to_string()
}
