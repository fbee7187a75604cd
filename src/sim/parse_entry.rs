//! Entry points into the simulator's crate-private header parsers, for the property tests in
//! `tests/fuzz_parsers.rs` (hidden from the docs; not an API). Each returns only whether the
//! header was accepted.

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
