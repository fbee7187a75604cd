//! Fuzzes the stores' reading of documents someone else may have written, through
//! `store::parse_entry`, which runs each store's own `load` code on canned documents instead of
//! files, Vault or Secrets Manager: the file store's reader file and state slots; the Vault
//! store's KV v1 and KV v2 answers (secret data, metadata with `custom_metadata`, the rotation
//! document, soft-deleted versions, error bodies); and the AWS store's versions (staging and
//! bookkeeping labels, and the JSON values of the current, previous, pending and intent
//! versions).
//!
//! Input layout (`parse_entry::fuzz_input` has it in full): the first byte picks the store,
//! ASCII `0` file, `1` Vault KV v1, `2` Vault KV v2, `3` AWS in the seeds; then the documents,
//! separated by the byte 0x1E. Seeds: `fuzz/seeds/store_documents/` (fake secrets only).
//! Nothing is printed. A refusal is a fine answer; a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsuite_token_rotator::store::parse_entry;

fuzz_target!(|data: &[u8]| {
    parse_entry::fuzz_input(data);
});
