//! A store whose Vault answers come from a list: for the fuzz target and
//! `store::parse_entry`, which run the store's reading code on documents no Vault served.

use std::sync::Arc;

use reqwest::Method;

use crate::store::vault::{Failure, Layout, Reply, Transport, VaultStore};

/// Answers each GET with the next of a list of canned replies (404 once they run out) and every
/// write with 204, at once: for [`canned`], which lets [`super::parse_entry`] run the store's
/// reading code on documents that no Vault served.
pub(super) struct CannedReplies {
    pub(super) replies: std::sync::Mutex<std::collections::VecDeque<Reply>>,
}

#[async_trait::async_trait]
impl Transport for CannedReplies {
    async fn send(
        &self,
        method: Method,
        _path: &str,
        _body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        if method != Method::GET {
            return Ok(Reply::new(204, b""));
        }
        let next = self
            .replies
            .lock()
            .map(|mut q| q.pop_front())
            .ok()
            .flatten();
        Ok(next.unwrap_or_else(|| Reply::new(404, b"{\"errors\":[]}")))
    }
}

/// A KV `kv_version` store at `secret/fuzz` whose GETs are answered, in the order the store
/// makes them, by `replies` (status and body bytes, as they would come over HTTP). Its futures
/// never wait.
pub(in crate::store) fn canned(kv_version: u8, replies: &[(u16, &[u8])]) -> VaultStore {
    let replies = replies
        .iter()
        .map(|&(status, bytes)| Reply::new(status, bytes))
        .collect();
    VaultStore {
        description: format!("vault (canned replies) secret/fuzz (KV v{kv_version})"),
        layout: Layout {
            mount: "secret".into(),
            path: "fuzz".into(),
            kv_version,
        },
        transport: Arc::new(CannedReplies {
            replies: std::sync::Mutex::new(replies),
        }),
    }
}
