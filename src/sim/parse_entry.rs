//! Entry points into the simulator's crate-private header parsers, for the property tests in
//! `tests/fuzz_parsers.rs` and the fuzz target `fuzz/fuzz_targets/sim_headers.rs` (hidden from
//! the docs; not an API). Each returns only whether the header was accepted.

use super::wire::{parse_nlauth, parse_oauth, parse_query};

/// The NLAuth `Authorization` header parser.
pub fn nlauth_header(header: &str) -> bool {
    parse_nlauth(header).is_ok()
}

/// The OAuth 1.0 `Authorization` header parser; returns how many signed parameters it read.
pub fn oauth_header(header: &str) -> Option<usize> {
    parse_oauth(header).ok().map(|h| h.signed_params.len())
}

/// The query-string parser; returns how many pairs it read.
pub fn query(query: &str) -> usize {
    parse_query(Some(query)).len()
}

/// One fuzz input: the first byte picks the parser by its value modulo 3, so the ASCII digits
/// `0`..`2` pick 0 NLAuth, 1 OAuth, 2 query string; the rest (invalid UTF-8 replaced) is the
/// header value or query. Returns whether it was accepted (a query: whether it held a pair);
/// an empty input is refused.
pub fn fuzz_input(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 3 {
        0 => nlauth_header(&text),
        1 => oauth_header(&text).is_some(),
        _ => query(&text) > 0,
    }
}
