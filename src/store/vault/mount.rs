//! Mount detection: the KV version Vault reports for the configured mount, so a wrong
//! `kv_version` fails at start instead of writing to odd paths.

use serde_json::Value;

use crate::store::vault::Reply;

/// The KV version Vault reports for a mount (`sys/internal/ui/mounts/<mount>`, readable under
/// the default policy), so a wrong `kv_version` fails at start instead of writing to odd paths.
/// `None` when the server does not say (older Vaults, compatible servers, no permission).
pub(super) fn kv_version_of_mount(reply: &Reply) -> Option<u8> {
    if reply.status != 200 || reply.body.pointer("/data/type")?.as_str()? != "kv" {
        return None;
    }
    match reply.body.pointer("/data/options/version") {
        Some(Value::String(v)) => v.parse().ok(),
        Some(Value::Null) | None => Some(1),
        Some(_) => None,
    }
}
