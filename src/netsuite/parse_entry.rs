//! Entry points into the crate-private NetSuite response parsers, for the property tests in
//! `tests/fuzz_parsers.rs` (hidden from the docs; not an API). Each returns only whether the
//! input was accepted, so a test can run them on hostile input without touching secrets.

use reqwest::StatusCode;

use super::Call;
use super::error::{FailedAnswer, classify_status, error_detail_from_body, oauth_error_param};
use super::response::{parse_datacenter_urls, parse_issued_token, parse_token_info};

/// `issuetoken`'s body parser (`tokenId`, `tokenSecret`).
pub fn issued_token(body: &[u8], content_type: &str) -> bool {
    parse_issued_token(body, content_type).is_ok()
}

/// `tokeninfo`'s body parser.
pub fn token_info(body: &[u8], content_type: &str) -> bool {
    parse_token_info(body, content_type).is_ok()
}

/// `datacenterurls`' body parser.
pub fn datacenter_urls(body: &[u8], content_type: &str) -> bool {
    parse_datacenter_urls(body, content_type).is_ok()
}

/// The error-code finder for JSON error bodies; true when it found a code.
pub fn error_detail(body: &[u8]) -> bool {
    error_detail_from_body(body).code.is_some()
}

/// The `error` auth-param of a `WWW-Authenticate` value.
pub fn www_authenticate_error(value: &str) -> Option<String> {
    oauth_error_param(value)
}

/// The whole classification of a failed answer (status, headers, body); returns whether the
/// error would be retried. A status outside 100..=999 is taken as 500.
pub fn classify_failed_answer(
    status: u16,
    www_authenticate: Option<&str>,
    retry_after: Option<&str>,
    body: Option<&[u8]>,
) -> bool {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let answer = FailedAnswer {
        status,
        www_authenticate,
        retry_after,
        body,
    };
    [
        Call::IssueToken,
        Call::RevokeToken,
        Call::TokenInfo,
        Call::DataCenterUrls,
    ]
    .into_iter()
    .map(|call| classify_status(call, &answer).is_transient())
    .fold(false, |any, transient| any | transient)
}
