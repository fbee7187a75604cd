//! Fuzzes config parsing: the input, as TOML text (invalid UTF-8 replaced), goes through
//! `Config::parse`, which deserialises it and validates formats, ranges, schedules, durations,
//! store settings and cross-references, as `Config::load` does with a file's text. Resolving
//! secret references (environment, files) is not reached: that reads the machine, not the
//! input. An error is a fine answer, and its message is built (never printed); a panic is a bug.
//!
//! Seeds: `fuzz/seeds/config/` (the example config and small variants).
#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use netsuite_token_rotator::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, "fuzz.toml") {
        Ok(config) => {
            black_box(config);
        }
        Err(error) => {
            black_box(error.to_string());
        }
    }
});
