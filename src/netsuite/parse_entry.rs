//! Entry points into the crate-private NetSuite response parsers, for the property tests in
//! `tests/fuzz_parsers.rs` and the fuzz target `fuzz/fuzz_targets/netsuite_responses.rs` (hidden
//! from the docs; not an API). Each returns only whether the input was accepted, so a test can
//! run them on hostile input without touching secrets.

use reqwest::StatusCode;

use super::Call;
use super::error::{FailedAnswer, classify_status, error_detail_from_body, oauth_error_param};
use super::response::{
    check_revocation_body, parse_datacenter_urls, parse_issued_token, parse_token_info,
};

/// `issuetoken`'s body parser (`tokenId`, `tokenSecret`).
pub fn issued_token(body: &[u8], content_type: &str) -> bool {
    parse_issued_token(body, content_type).is_ok()
}

/// `tokeninfo`'s body parser.
pub fn token_info(body: &[u8], content_type: &str) -> bool {
    parse_token_info(body, content_type).is_ok()
}

/// The judgement of a `revoketoken` 2xx body (true: taken as revoked).
pub fn revocation_body(body: &[u8], content_type: &str) -> bool {
    check_revocation_body(body, content_type).is_ok()
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

/// Separates the fields of one [`fuzz_input`] (ASCII record separator).
pub const SEPARATOR: u8 = 0x1E;

/// One fuzz input: the first byte picks the parser by its value modulo 6, so the ASCII digits
/// `0`..`5` pick 0 `issuetoken` (and the `revoketoken` 2xx body check), 1 `tokeninfo`, 2 `datacenterurls` (the rest is the body; a
/// Content-Type may come first, ended by [`SEPARATOR`]; `application/json` otherwise),
/// 3 the error-code finder (the rest is the body), 4 `WWW-Authenticate` (the rest is the value),
/// 5 a failed answer (fields separated by [`SEPARATOR`]: the status in decimal, then
/// `WWW-Authenticate`, `Retry-After` and the body, each absent when not given; always accepted).
/// Returns whether the parser accepted it; an empty input is refused.
pub fn fuzz_input(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    match selector % 6 {
        parser @ 0..=2 => {
            let (content_type, body) = match rest.iter().position(|&b| b == SEPARATOR) {
                Some(at) => (String::from_utf8_lossy(&rest[..at]), &rest[at + 1..]),
                None => ("application/json".into(), rest),
            };
            match parser {
                0 => revocation_body(body, &content_type) & issued_token(body, &content_type),
                1 => token_info(body, &content_type),
                _ => datacenter_urls(body, &content_type),
            }
        }
        3 => error_detail(rest),
        4 => www_authenticate_error(&String::from_utf8_lossy(rest)).is_some(),
        _ => {
            let mut fields = rest.split(|&b| b == SEPARATOR);
            let status = fields
                .next()
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.trim().parse::<u16>().ok())
                .unwrap_or(500);
            let www_authenticate = fields.next().map(String::from_utf8_lossy);
            let retry_after = fields.next().map(String::from_utf8_lossy);
            let body = fields.next();
            classify_failed_answer(
                status,
                www_authenticate.as_deref(),
                retry_after.as_deref(),
                body,
            );
            true
        }
    }
}
