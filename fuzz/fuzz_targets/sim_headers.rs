//! Fuzzes the simulator's parsers of what clients send: the NLAuth `Authorization` header, the
//! OAuth 1.0 `Authorization` header and the query string (whose pairs enter the OAuth signature
//! base string), through `sim::parse_entry`.
//!
//! Input layout (`parse_entry::fuzz_input` has it in full): the first byte picks the parser,
//! ASCII `0` NLAuth, `1` OAuth, `2` query in the seeds; the rest is the header value or query.
//! Seeds: `fuzz/seeds/sim_headers/`. A refusal is a fine answer; a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsuite_token_rotator::sim::parse_entry;

fuzz_target!(|data: &[u8]| {
    parse_entry::fuzz_input(data);
});
