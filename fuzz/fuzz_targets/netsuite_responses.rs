//! Fuzzes every parser of what NetSuite answers: the bodies of `issuetoken`, `tokeninfo` and
//! `datacenterurls`, the error-code finder for JSON error bodies, the `error` auth-param of
//! `WWW-Authenticate`, and the classification of a failed answer (status, `WWW-Authenticate`,
//! `Retry-After` and body together) for every call, all through `netsuite::parse_entry`.
//!
//! Input layout (`parse_entry::fuzz_input` has it in full): the first byte picks the parser,
//! ASCII `0`..`5` in the seeds; then the body or header value, with fields separated by the byte
//! 0x1E where a parser takes several. Seeds: `fuzz/seeds/netsuite_responses/`. A refusal is a
//! fine answer; a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsuite_token_rotator::netsuite::parse_entry;

fuzz_target!(|data: &[u8]| {
    parse_entry::fuzz_input(data);
});
