//! Entry points into the stores' reading code, for the fuzz target
//! `fuzz/fuzz_targets/store_documents.rs` and the tests in `tests/fuzz_parsers.rs` (hidden from
//! the docs; not an API). Each runs the code a store's `load` runs on documents given as bytes,
//! with no file system, Vault or AWS behind it, and returns only whether they were accepted, so
//! hostile input can be tried without touching secrets. The error message is still built (and
//! dropped): making it must not panic either.

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::{SecretStore, StoreState, aws, file, vault};

/// The file store: a reader file and its two state slots (`<path>.state.json`,
/// `<path>.state.swap`) with these bytes (`None`: no such file).
pub fn file_documents(reader: Option<&[u8]>, slots: [Option<&[u8]>; 2]) -> bool {
    accepted(file::parse_files(reader, slots))
}

/// The Vault store (`kv_version` 1 or 2): each GET `load` makes is answered by the next of
/// `replies` (HTTP status and body bytes), in the order the store asks; 404 once they run out.
/// KV v1 reads `<path>`, then `<path>.rotation`; KV v2 reads the metadata of `<path>`, the current
/// version, `<path>.rotation`, then the previous version.
pub fn vault_replies(kv_version: u8, replies: &[(u16, &[u8])]) -> bool {
    let store = vault::canned(kv_version, replies);
    accepted(ready(store.load()).map_err(|e| e.to_string()))
}

/// The AWS Secrets Manager store: a secret whose versions carry `stages` (version id to staging
/// labels, as `DescribeSecret` answers) and hold `values` (version id to `SecretString`; `None`
/// is a binary value).
pub fn aws_versions(
    stages: &HashMap<String, Vec<String>>,
    values: &HashMap<String, Option<String>>,
) -> bool {
    accepted(ready(aws::load_canned(stages, values)).map_err(|e| e.to_string()))
}

/// Separates the parts of one [`fuzz_input`] (ASCII record separator).
pub const SEPARATOR: u8 = 0x1E;

/// One fuzz input: the first byte picks the store by its value modulo 4, so the ASCII digits
/// `0`..`3` pick
/// - 0 file: the reader file, then the two state slots (an empty or missing part: no such
///   file);
/// - 1 Vault KV v1, 2 Vault KV v2: the answers to the store's GETs in the order it makes them
///   (see [`vault_replies`]), each `NNN ` (an HTTP status and a space) then the body, or just
///   the body for 200;
/// - 3 AWS: `VersionIdsToStages` as a JSON object, then the values of those versions in the
///   order of their ids (a missing part: a binary value).
///
/// Parts are separated by [`SEPARATOR`]. Returns whether the store read the documents; an empty
/// input, or AWS stages that are not a JSON object of string arrays, are refused.
pub fn fuzz_input(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == SEPARATOR).collect();
    match selector % 4 {
        0 => {
            let file = |i: usize| parts.get(i).copied().filter(|part| !part.is_empty());
            file_documents(file(0), [file(1), file(2)])
        }
        kv @ 1..=2 => {
            let replies: Vec<(u16, &[u8])> = parts.iter().map(|part| reply(part)).collect();
            vault_replies(kv, &replies)
        }
        _ => {
            // Sorted, so that which value goes with which version does not depend on hashing.
            let Ok(stages) = serde_json::from_slice::<BTreeMap<String, Vec<String>>>(parts[0])
            else {
                return false;
            };
            let values: HashMap<String, Option<String>> = stages
                .keys()
                .enumerate()
                .map(|(i, version)| {
                    let value = parts
                        .get(i + 1)
                        .map(|part| String::from_utf8_lossy(part).into_owned());
                    (version.clone(), value)
                })
                .collect();
            aws_versions(&stages.into_iter().collect(), &values)
        }
    }
}

/// `NNN body` -> (NNN, body); anything else is a 200 with the whole part as its body.
fn reply(part: &[u8]) -> (u16, &[u8]) {
    match part {
        [a, b, c, b' ', body @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            let status = [a, b, c]
                .iter()
                .fold(0u16, |n, &&d| n * 10 + u16::from(d - b'0'));
            (status, body)
        }
        _ => (200, part),
    }
}

fn accepted(outcome: Result<StoreState, String>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(message) => {
            std::hint::black_box(message);
            false
        }
    }
}

/// Runs a future whose I/O is all canned, so it finishes on its first poll.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a store reading canned documents waited for something"),
    }
}
