//! Fuzzes config parsing: the input, as TOML text (invalid UTF-8 replaced), goes through
//! `Config::parse`, which deserialises it and validates formats, ranges, schedules, durations,
//! store settings and cross-references, as `Config::load` does with a file's text. An error is
//! a fine answer, and its message is built (never printed).
//!
//! An accepted config must also be usable: what the daemon computes from it without reading
//! secrets must not panic either (the durations it reads back as "validated", each schedule's
//! next and previous run with jitter, and a promotion's revoke time, now plus `revoke_after`).
//! Resolving secret references (environment, files) is not reached: that reads the machine, not
//! the input.
//!
//! Seeds: `fuzz/seeds/config/` (the example config and small variants).
#![no_main]

use std::hint::black_box;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use netsuite_token_rotator::config::{Config, parse_duration};
use netsuite_token_rotator::schedule::PatternCache;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, "fuzz.toml") {
        Ok(config) => use_accepted(&config),
        Err(error) => {
            black_box(error.to_string());
        }
    }
});

fn use_accepted(config: &Config) {
    let now = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).expect("a 2026 time");
    black_box(config.shutdown_grace());
    black_box(config.netsuite_timeout());
    black_box(config.literal_secret_fields());
    black_box(config.exposed_secrets_problem());
    let mut patterns = PatternCache::default();
    for integration in &config.integrations {
        let schedule = integration
            .schedule_cached(&mut patterns, &config.freezes)
            .expect("validated");
        black_box(schedule.next_after(now));
        black_box(schedule.freeze_at(now));
        black_box(schedule.due_after(now));
        black_box(schedule.is_overdue(now, now));
        let grace = parse_duration(&integration.revoke_after).expect("validated");
        black_box(now + grace);
    }
}
