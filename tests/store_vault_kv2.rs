//! The Vault store on KV v2 through the `SecretStore` trait, against a real OpenBao server
//! (`tests/support/openbao.rs`, KV v2 at `secret/`): bootstrap and rotations with the previous
//! token's bookkeeping in `custom_metadata`, revocation marks, import, conflicts, idempotent
//! repeats, the create-only (`cas=0`) race of `begin_rotation` and a promoter losing its
//! check-and-set (both put in order with a holding proxy), a refused token, the server sealed
//! and stopped mid-rotation; the login latch in `custom_metadata` and `check_writable`, also
//! under the least-privilege policy of `docs/stores-vault.md` (which OpenBao enforces); the
//! mount's `max_versions` or a soft delete taking the previous token away.

#[path = "support/holding_proxy.rs"]
mod holding_proxy;
#[path = "support/openbao.rs"]
mod openbao;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use holding_proxy::HoldingProxy;
use netsuite_token_rotator::secret::{ExposeSecret, SecretRef, SecretString};
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStore, VaultStoreConfig, connect};
use netsuite_token_rotator::store::{
    CredentialRecord, Intent, LoginLatch, SecretStore, StoreError, StoreErrorKind, TokenRecord,
};
use openbao::{OpenBao, POLICY, documented_policy};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "kv2-store-test-token";
const PATH: &str = "netsuite/erp-sync";
const SIBLING: &str = "netsuite/erp-sync.rotation";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap()
}

fn config(address: &str, token: &str) -> VaultStoreConfig {
    VaultStoreConfig {
        address: address.to_string(),
        mount: "secret".to_string(),
        path: PATH.to_string(),
        kv_version: 2,
        namespace: None,
        ca_cert: None,
        auth: VaultAuth::Token {
            token: SecretRef::Literal(token.into()),
        },
    }
}

async fn store_at(address: &str) -> VaultStore {
    connect(&config(address, TOKEN))
        .await
        .expect("connect to OpenBao")
}

/// A token whose secret is unmistakable, so tests can check it never leaks into messages.
fn token(n: i64) -> CredentialRecord {
    let rotation_id = Uuid::new_v4();
    CredentialRecord::Tba(TokenRecord {
        account_id: "123456_SB1".into(),
        realm: "123456_SB1".into(),
        consumer_key: Some(SecretString::from("ck-value")),
        consumer_secret: Some(SecretString::from("cs-value")),
        token_id: format!("token-{n}-{}", rotation_id.simple()),
        token_secret: SecretString::from(format!("TOKEN-SECRET-{}", rotation_id.simple())),
        issued_at: at(n),
        rotation_id,
    })
}

fn intent_for(t: &CredentialRecord) -> Intent {
    Intent {
        rotation_id: t.rotation_id(),
        token_name: format!("erp-sync-{}", t.rotation_id()),
        started_at: t.issued_at(),
        owner: String::new(),
    }
}

/// Steps 1, 3 and 5, each repeated once (as after a crash or a lost answer).
async fn rotate(store: &VaultStore, t: &CredentialRecord, revoke_after: DateTime<Utc>) {
    for _ in 0..2 {
        store.begin_rotation(&intent_for(t)).await.expect("begin");
    }
    for _ in 0..2 {
        store.stage_pending(t).await.expect("stage");
    }
    for _ in 0..2 {
        store
            .promote(t.rotation_id(), revoke_after)
            .await
            .expect("promote");
    }
}

fn assert_same(a: &CredentialRecord, b: &CredentialRecord) {
    let (a, b) = (a.as_tba().unwrap(), b.as_tba().unwrap());
    assert_eq!(a.rotation_id, b.rotation_id);
    assert_eq!(a.token_id, b.token_id);
    assert_eq!(
        a.token_secret.expose_secret(),
        b.token_secret.expose_secret()
    );
    assert_eq!(a.issued_at, b.issued_at);
}

/// A server for one test: a dev server (or a persistent one, which can be stopped, restarted and
/// sealed), with `TOKEN` created as a root token so that messages can be checked for it.
async fn server(persistent: bool) -> OpenBao {
    let vault = if persistent {
        OpenBao::start_persistent().await
    } else {
        OpenBao::start().await
    };
    vault.add_root_token(TOKEN).await;
    vault
}

/// What OpenBao holds for one key, read as root from `secret/metadata/<key>`: `None` when the
/// key does not exist.
#[derive(Debug, PartialEq)]
struct Stored {
    current_version: u64,
    custom_metadata: Option<BTreeMap<String, String>>,
    /// The whole metadata answer (every version with its times, the key's `updated_time`), so
    /// two reads compare equal exactly when nothing was written.
    metadata: Value,
}

async fn secret(vault: &OpenBao, key: &str) -> Option<Stored> {
    let (status, body) = vault
        .api("GET", &format!("secret/metadata/{key}"), None)
        .await;
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "read metadata of {key}: {body}");
    let data = body["data"].clone();
    Some(Stored {
        current_version: data["current_version"].as_u64().expect("current_version"),
        custom_metadata: serde_json::from_value(data["custom_metadata"].clone())
            .expect("custom_metadata is a string map or null"),
        metadata: data,
    })
}

/// The newest version's data of `key`, as root.
async fn latest_data(vault: &OpenBao, key: &str) -> Option<Value> {
    let (status, body) = vault.api("GET", &format!("secret/data/{key}"), None).await;
    (status == 200).then(|| body["data"]["data"].clone())
}

/// Every key under `secret/` (recursively), as root.
async fn keys(vault: &OpenBao) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![String::new()];
    while let Some(folder) = folders.pop() {
        let (status, body) = vault
            .api("LIST", &format!("secret/metadata/{folder}"), None)
            .await;
        if status == 404 {
            continue;
        }
        assert_eq!(status, 200, "list {folder}: {body}");
        for key in body["data"]["keys"].as_array().expect("keys") {
            let key = format!("{folder}{}", key.as_str().expect("a key name"));
            if key.ends_with('/') {
                folders.push(key);
            } else {
                found.push(key);
            }
        }
    }
    found
}

async fn custom_metadata(vault: &OpenBao) -> BTreeMap<String, String> {
    secret(vault, PATH)
        .await
        .and_then(|s| s.custom_metadata)
        .unwrap_or_default()
}

fn assert_conflict(result: Result<(), StoreError>, what: &str) -> StoreError {
    let err = result.expect_err(what);
    assert_eq!(err.kind, StoreErrorKind::Conflict, "{what}: {err}");
    err
}

fn assert_no_secret(message: &str, secrets: &[&CredentialRecord]) {
    for t in secrets {
        assert!(
            !message.contains(t.as_tba().unwrap().token_secret.expose_secret()),
            "{message}"
        );
    }
    assert!(!message.contains("cs-value"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
}

#[tokio::test]
async fn bootstrap_two_rotations_and_the_previous_tokens_bookkeeping() {
    let double = server(false).await;
    let store = store_at(&double.address).await;
    let empty = store.load().await.expect("an empty path loads");
    assert!(empty.current.is_none() && empty.previous.is_none() && empty.intent.is_none());

    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t1);
    assert!(state.previous.is_none() && state.intent.is_none() && state.pending.is_none());
    assert_eq!(secret(&double, PATH).await.unwrap().current_version, 1);
    assert!(
        secret(&double, SIBLING).await.is_none(),
        "no rotation left over"
    );
    assert!(
        !custom_metadata(&double)
            .await
            .contains_key("previous_version")
    );

    // Another tool's custom_metadata key must survive the store's bookkeeping.
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/secret/metadata/{PATH}", double.address))
        .header("X-Vault-Token", TOKEN)
        .body(json!({"custom_metadata": {"owner": "erp-team"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 204);

    let t2 = token(2);
    rotate(&store, &t2, at(200)).await;
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t2);
    let previous = state.previous.as_ref().expect("previous after the second");
    assert_same(&previous.token, &t1);
    assert_eq!(previous.revoke_after, at(200));
    assert_eq!(previous.revoked_at, None);
    let custom = custom_metadata(&double).await;
    assert_eq!(
        custom.get("previous_version").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        custom.get("previous_revoke_after"),
        Some(&at(200).to_rfc3339())
    );
    assert!(!custom.contains_key("previous_revoked_at"), "{custom:?}");
    assert_eq!(custom.get("owner").map(String::as_str), Some("erp-team"));
    assert!(secret(&double, SIBLING).await.is_none());
    assert_eq!(
        latest_data(&double, PATH).await.unwrap()["token_id"],
        json!(t2.id().to_string()),
        "readers see the new token at the data path"
    );

    // A third promotion would drop the unrevoked previous token: refused, current unchanged.
    let t3 = token(3);
    store.begin_rotation(&intent_for(&t3)).await.unwrap();
    store.stage_pending(&t3).await.unwrap();
    let err = assert_conflict(
        store.promote(t3.rotation_id(), at(300)).await,
        "promote over an unrevoked previous",
    );
    assert!(err.to_string().contains("not been revoked"), "{err}");
    assert_same(store.load().await.unwrap().current.as_ref().unwrap(), &t2);

    // Marking another token is a no-op; marking the previous one records it, once.
    store
        .mark_previous_revoked("someone-else", at(240))
        .await
        .unwrap();
    assert!(
        !custom_metadata(&double)
            .await
            .contains_key("previous_revoked_at")
    );
    store.mark_previous_revoked(t1.id(), at(250)).await.unwrap();
    store
        .mark_previous_revoked(t1.id(), at(260))
        .await
        .expect("mark again");
    let custom = custom_metadata(&double).await;
    assert_eq!(
        custom.get("previous_revoked_at"),
        Some(&at(250).to_rfc3339())
    );
    assert_eq!(
        store.load().await.unwrap().previous.unwrap().revoked_at,
        Some(at(250))
    );

    store.promote(t3.rotation_id(), at(300)).await.unwrap();
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t3);
    assert_same(&state.previous.as_ref().unwrap().token, &t2);
    let custom = custom_metadata(&double).await;
    assert_eq!(
        custom.get("previous_version").map(String::as_str),
        Some("2")
    );
    assert!(!custom.contains_key("previous_revoked_at"), "{custom:?}");
    assert_eq!(custom.get("owner").map(String::as_str), Some("erp-team"));
    assert_eq!(secret(&double, PATH).await.unwrap().current_version, 3);
}

#[tokio::test]
async fn import_conflicts_and_repeated_steps() {
    let double = server(false).await;
    let store = store_at(&double.address).await;

    let t0 = token(0);
    store.import_current(&t0).await.unwrap();
    store
        .import_current(&t0)
        .await
        .expect("the same import again");
    assert_conflict(store.import_current(&token(9)).await, "a different import");
    assert_eq!(secret(&double, PATH).await.unwrap().current_version, 1);

    let t1 = token(1);
    store.begin_rotation(&intent_for(&t1)).await.unwrap();
    store
        .begin_rotation(&intent_for(&t1))
        .await
        .expect("begin again");
    let t2 = token(2);
    let err = assert_conflict(
        store.begin_rotation(&intent_for(&t2)).await,
        "a second rotation",
    );
    let message = err.to_string();
    assert!(message.contains(PATH), "{message}");
    assert!(message.contains("begin_rotation"), "{message}");
    assert!(
        message.contains(&t1.rotation_id().to_string()),
        "names the rotation holding the store: {message}"
    );
    assert_no_secret(&message, &[&t0, &t1, &t2]);
    assert_conflict(
        store.stage_pending(&t2).await,
        "staging for another rotation",
    );
    assert_conflict(
        store.import_current(&t2).await,
        "import while a rotation runs",
    );

    store.stage_pending(&t1).await.unwrap();
    store.stage_pending(&t1).await.expect("stage again");
    let mut other = t1.as_tba().unwrap().clone();
    other.token_id = "another-token".into();
    other.token_secret = SecretString::from("ANOTHER-SECRET");
    let other = CredentialRecord::from(other);
    let err = assert_conflict(
        store.stage_pending(&other).await,
        "another token for the same rotation",
    );
    assert!(!err.to_string().contains("ANOTHER-SECRET"), "{err}");
    assert_conflict(
        store.promote(t2.rotation_id(), at(100)).await,
        "promote of a rotation that has no pending token",
    );

    // Abandon: another rotation's is a no-op; this one's, twice, leaves current alone.
    store.abandon_rotation(t2.rotation_id()).await.unwrap();
    assert!(store.load().await.unwrap().pending.is_some());
    store.abandon_rotation(t1.rotation_id()).await.unwrap();
    store
        .abandon_rotation(t1.rotation_id())
        .await
        .expect("abandon again");
    let state = store.load().await.unwrap();
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_same(state.current.as_ref().unwrap(), &t0);
    assert!(secret(&double, SIBLING).await.is_none());

    // The imported token becomes previous on the next rotation.
    rotate(&store, &t2, at(200)).await;
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t2);
    assert_same(&state.previous.unwrap().token, &t0);
    assert_eq!(secret(&double, PATH).await.unwrap().current_version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_rotation_is_create_only_so_one_of_two_wins() {
    let double = server(false).await;
    let proxy = HoldingProxy::start(&double.address).await;
    let slow = Arc::new(store_at(&proxy.address()).await);
    let fast = store_at(&double.address).await;
    slow.import_current(&token(0)).await.unwrap();

    // The slow store has read the path (no rotation) and sends its cas=0 create; the fast store
    // begins in between. The slow create must lose.
    let (ts, tf) = (token(1), token(2));
    let mut held = proxy.hold(Method::POST, &format!("/v1/secret/data/{SIBLING}"));
    let slow_begin = {
        let (slow, intent) = (slow.clone(), intent_for(&ts));
        tokio::spawn(async move { slow.begin_rotation(&intent).await })
    };
    held.arrived().await;
    fast.begin_rotation(&intent_for(&tf))
        .await
        .expect("the fast store begins");
    held.release();
    let err = assert_conflict(slow_begin.await.unwrap(), "the slow create");
    assert!(
        err.to_string().contains(&tf.rotation_id().to_string()),
        "{err}"
    );
    assert_eq!(
        secret(&double, SIBLING).await.unwrap().current_version,
        1,
        "one create, no overwrite"
    );
    let state = fast.load().await.unwrap();
    assert_eq!(state.intent, Some(intent_for(&tf)));
    fast.abandon_rotation(tf.rotation_id()).await.unwrap();

    // Unordered races: whoever is first, exactly one wins each round.
    for round in 0..5 {
        let (ta, tb) = (token(10 + round), token(20 + round));
        let (ia, ib) = (intent_for(&ta), intent_for(&tb));
        let (ra, rb) = tokio::join!(slow.begin_rotation(&ia), fast.begin_rotation(&ib));
        let winner = match (&ra, &rb) {
            (Ok(()), Err(e)) if e.kind == StoreErrorKind::Conflict => &ta,
            (Err(e), Ok(())) if e.kind == StoreErrorKind::Conflict => &tb,
            _ => panic!("round {round}: expected one winner, got {ra:?} and {rb:?}"),
        };
        let state = fast.load().await.unwrap();
        assert_eq!(
            state.intent.map(|i| i.rotation_id),
            Some(winner.rotation_id())
        );
        slow.abandon_rotation(winner.rotation_id()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_promoter_loses_its_check_and_set() {
    let double = server(false).await;
    let proxy = HoldingProxy::start(&double.address).await;
    let slow = Arc::new(store_at(&proxy.address()).await);
    let fast = store_at(&double.address).await;
    let t0 = token(0);
    fast.import_current(&t0).await.unwrap();
    let t1 = token(1);
    fast.begin_rotation(&intent_for(&t1)).await.unwrap();
    fast.stage_pending(&t1).await.unwrap();

    // The slow promoter read version 1 and is about to write version 2 with cas=1; the fast
    // one promotes in between.
    let mut held = proxy.hold(Method::POST, &format!("/v1/secret/data/{PATH}"));
    let slow_promote = {
        let slow = slow.clone();
        let id = t1.rotation_id();
        tokio::spawn(async move { slow.promote(id, at(100)).await })
    };
    held.arrived().await;
    fast.promote(t1.rotation_id(), at(100))
        .await
        .expect("the fast promoter");
    held.release();
    let err = assert_conflict(slow_promote.await.unwrap(), "the slow promoter");
    let message = err.to_string();
    assert!(
        message.contains(PATH) && message.contains("promote"),
        "{message}"
    );
    assert!(message.contains("check-and-set"), "{message}");
    assert_no_secret(&message, &[&t0, &t1]);

    assert_eq!(
        secret(&double, PATH).await.unwrap().current_version,
        2,
        "the token was written once"
    );
    let state = fast.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t1);
    assert_same(&state.previous.as_ref().unwrap().token, &t0);
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_eq!(
        custom_metadata(&double)
            .await
            .get("previous_version")
            .map(String::as_str),
        Some("1")
    );
    // The loser, asked again, finds its rotation promoted.
    slow.promote(t1.rotation_id(), at(100))
        .await
        .expect("a repeated promote");
}

#[tokio::test]
async fn a_refused_token_is_denied_and_never_quoted() {
    let double = server(false).await;
    let err = connect(&config(&double.address.clone(), "hvs.not-the-token"))
        .await
        .err()
        .expect("a wrong token is refused at connect");
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("connect") && message.contains(PATH),
        "{message}"
    );
    assert!(message.contains("403"), "{message}");
    assert!(!message.contains("hvs.not-the-token"), "{message}");

    // A token revoked while the store runs.
    let store = store_at(&double.address).await;
    let t0 = token(0);
    store.import_current(&t0).await.unwrap();
    double.revoke_token(TOKEN).await;
    let err = store.load().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("load") && message.contains(PATH),
        "{message}"
    );
    assert_no_secret(&message, &[&t0]);
    let err = store
        .begin_rotation(&intent_for(&token(1)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(!err.kind.is_transient());
}

#[tokio::test]
async fn a_server_stopped_mid_rotation_is_unavailable_and_keeps_its_state() {
    let mut double = server(true).await;
    let store = store_at(&double.address).await;
    let t0 = token(0);
    store.import_current(&t0).await.unwrap();
    let t1 = token(1);
    store.begin_rotation(&intent_for(&t1)).await.unwrap();
    store.stage_pending(&t1).await.unwrap();

    double.stop();
    let err = store.promote(t1.rotation_id(), at(100)).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    assert!(err.kind.is_transient());
    let message = err.to_string();
    assert!(
        message.contains(PATH) && message.contains("promote"),
        "{message}"
    );
    assert_no_secret(&message, &[&t0, &t1]);
    assert_eq!(
        store.load().await.unwrap_err().kind,
        StoreErrorKind::Unavailable
    );

    double.restart().await;
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t0);
    assert_eq!(state.intent, Some(intent_for(&t1)));
    assert_same(state.pending.as_ref().unwrap(), &t1);
    store.promote(t1.rotation_id(), at(100)).await.unwrap();
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t1);
    assert_same(&state.previous.unwrap().token, &t0);

    // Stopped before mark_previous_revoked, then back: the mark lands once it answers.
    double.stop();
    let err = store
        .mark_previous_revoked(t0.id(), at(150))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    double.restart().await;
    assert_eq!(
        store.load().await.unwrap().previous.unwrap().revoked_at,
        None
    );
    store.mark_previous_revoked(t0.id(), at(150)).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().previous.unwrap().revoked_at,
        Some(at(150))
    );
}

/// Marks `previous` revoked (at `at(250)`), then begins, stages and abandons a rotation.
async fn revoke_previous_then_abandon_a_rotation(store: &VaultStore, previous: &CredentialRecord) {
    store
        .mark_previous_revoked(previous.id(), at(250))
        .await
        .unwrap();
    let t = token(3);
    store.begin_rotation(&intent_for(&t)).await.unwrap();
    store.stage_pending(&t).await.unwrap();
    store.abandon_rotation(t.rotation_id()).await.unwrap();
}

fn latch(reason: &str) -> LoginLatch {
    LoginLatch {
        at: at(42),
        login: "k9Xw+fingerprint/=".into(),
        reason: reason.into(),
    }
}

/// What a reader of the data path parses: `data.data` of `GET /v1/secret/data/<path>`.
async fn reader_json(double: &OpenBao) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/secret/data/{PATH}", double.address))
        .header("X-Vault-Token", TOKEN)
        .send()
        .await
        .expect("OpenBao answers the reader");
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.bytes().await.expect("a body");
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    body["data"]["data"].clone()
}

/// Everything OpenBao holds for the token key and the rotation sibling.
async fn stored(vault: &OpenBao) -> (Option<Stored>, Option<Stored>) {
    (secret(vault, PATH).await, secret(vault, SIBLING).await)
}

#[tokio::test]
async fn the_login_latch_is_kept_in_custom_metadata_through_rotations_and_never_read_by_readers() {
    let double = server(false).await;
    let store = store_at(&double.address).await;

    // A bootstrap whose first login is refused: the path has no version yet.
    store
        .set_login_latch(Some(&latch("401 INVALID_LOGIN_CREDENTIALS")))
        .await
        .unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(
        state.login_latch,
        Some(latch("401 INVALID_LOGIN_CREDENTIALS"))
    );
    assert!(state.current.is_none() && state.intent.is_none());
    let key = secret(&double, PATH)
        .await
        .expect("metadata without a version");
    assert_eq!(key.current_version, 0);
    assert_eq!(
        custom_metadata(&double)
            .await
            .get("login_latch")
            .map(String::as_str),
        Some("2025-06-15T15:07:22Z 18:k9Xw+fingerprint/= 401 INVALID_LOGIN_CREDENTIALS")
    );
    store.set_login_latch(None).await.unwrap();
    assert_eq!(store.load().await.unwrap().login_latch, None);

    // Then the bootstrap rotation, with cas=0 on a key that has metadata only.
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let readers_saw = reader_json(&double).await;
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    assert_eq!(
        reader_json(&double).await,
        readers_saw,
        "the value readers parse is unchanged"
    );
    assert!(readers_saw.get("login_latch").is_none());
    assert_eq!(
        secret(&double, PATH).await.unwrap().current_version,
        1,
        "no version written"
    );

    // A rotation (begin, stage, promote) and an abandon leave it in place.
    let t2 = token(2);
    rotate(&store, &t2, at(200)).await;
    assert_eq!(
        store.load().await.unwrap().login_latch,
        Some(latch("401 A"))
    );
    revoke_previous_then_abandon_a_rotation(&store, &t1).await;
    let state = store.load().await.unwrap();
    assert_eq!(state.login_latch, Some(latch("401 A")));
    assert_same(state.current.as_ref().unwrap(), &t2);
    assert_eq!(state.previous.as_ref().unwrap().revoked_at, Some(at(250)));

    // Another process (a restart, a replica, the CLI) sees it; the last writer wins.
    let other = store_at(&double.address).await;
    assert_eq!(
        other.load().await.unwrap().login_latch,
        Some(latch("401 A"))
    );
    other
        .set_login_latch(Some(&latch("403 ACCOUNT_LOCKED")))
        .await
        .unwrap();
    assert_eq!(
        store.load().await.unwrap().login_latch,
        Some(latch("403 ACCOUNT_LOCKED"))
    );

    // Clearing removes only its key: the previous token's bookkeeping stays.
    store.set_login_latch(None).await.unwrap();
    let custom = custom_metadata(&double).await;
    assert!(!custom.contains_key("login_latch"), "{custom:?}");
    assert_eq!(
        custom.get("previous_version").map(String::as_str),
        Some("1")
    );
    let state = store.load().await.unwrap();
    assert_eq!(state.login_latch, None);
    assert_same(&state.previous.unwrap().token, &t1);
    assert_eq!(
        reader_json(&double).await["token_id"],
        json!(t2.id().to_string())
    );
}

#[tokio::test]
async fn check_writable_proves_write_access_and_changes_nothing() {
    let double = server(false).await;
    let store = store_at(&double.address).await;
    store
        .check_writable()
        .await
        .expect("an empty store is writable");
    assert!(
        keys(&double).await.is_empty(),
        "nothing created: {:?}",
        keys(&double).await
    );

    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let t2 = token(2);
    store.begin_rotation(&intent_for(&t2)).await.unwrap();
    store.stage_pending(&t2).await.unwrap();
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    let before = stored(&double).await;
    let readers_saw = reader_json(&double).await;
    store.check_writable().await.expect("writable mid-rotation");
    assert_eq!(
        stored(&double).await,
        before,
        "no version, metadata or sibling changed"
    );
    assert_eq!(reader_json(&double).await, readers_saw);

    // The rotation goes on as if nothing happened.
    store.promote(t2.rotation_id(), at(200)).await.unwrap();
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t2);
    assert_eq!(state.login_latch, Some(latch("401 A")));
}

/// The KV v2 policy of `docs/stores-vault.md` (its first `hcl` block), as double rules.
fn documented_kv2_policy() -> Vec<(String, Vec<String>)> {
    let block = documented_policy(2, "secret");
    block
        .lines()
        .filter_map(|line| {
            let path = line.split('"').nth(1)?;
            let capabilities = line.split('[').nth(1)?.split(']').next()?;
            let capabilities = capabilities
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_string())
                .collect();
            Some((path.to_string(), capabilities))
        })
        .collect()
}

/// Writes `rules` as the HCL policy `POLICY`; tokens holding it see the change at once.
async fn set_policy(vault: &OpenBao, rules: &[(String, Vec<String>)]) {
    let hcl: String = rules
        .iter()
        .map(|(path, caps)| {
            let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
            format!(
                "path \"{path}\" {{ capabilities = [{}] }}\n",
                caps.join(", ")
            )
        })
        .collect();
    vault.write_policy(POLICY, &hcl).await;
}

/// A store whose token has only the policy `POLICY` (and OpenBao's `default`).
async fn policy_store(vault: &OpenBao) -> VaultStore {
    let token = vault.create_token(&[POLICY], "1h").await;
    connect(&config(&vault.address, &token))
        .await
        .expect("connect with a policy token")
}

#[tokio::test]
async fn the_documented_policy_allows_every_step_the_latch_and_the_check() {
    let double = server(false).await;
    let policy = documented_kv2_policy();
    assert_eq!(policy.len(), 4, "{policy:?}");
    set_policy(&double, &policy).await;
    let store = policy_store(&double).await;

    store
        .check_writable()
        .await
        .expect("check on an empty store");
    store
        .set_login_latch(Some(&latch("401 A")))
        .await
        .expect("latch before any version");
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    store
        .check_writable()
        .await
        .expect("check after the first rotation");
    let t2 = token(2);
    rotate(&store, &t2, at(200)).await;
    revoke_previous_then_abandon_a_rotation(&store, &t1).await;
    store.set_login_latch(None).await.unwrap();
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t2);
    assert_eq!(state.login_latch, None);
}

#[tokio::test]
async fn check_writable_is_denied_where_the_policy_leaves_out_a_write() {
    let double = server(false).await;
    let store = store_at(&double.address).await;
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let before = stored(&double).await;
    let root_store = store;
    let store = policy_store(&double).await;

    // Each write right of the documented policy, taken away in turn, fails the check and names
    // the path it is missing on.
    let documented = documented_kv2_policy();
    for (path, capability) in [
        ("secret/data/netsuite/erp-sync", "update"),
        ("secret/data/netsuite/erp-sync.rotation", "create"),
        ("secret/metadata/netsuite/erp-sync", "update"),
    ] {
        let reduced: Vec<(String, Vec<String>)> = documented
            .iter()
            .map(|(p, caps)| {
                let caps = caps
                    .iter()
                    .filter(|c| !(p == path && *c == capability))
                    .cloned();
                (p.clone(), caps.collect())
            })
            .collect();
        set_policy(&double, &reduced).await;
        let err = store.check_writable().await.expect_err(path);
        assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
        let message = err.to_string();
        assert!(
            message.contains("check_writable: access denied"),
            "{message}"
        );
        assert!(
            message.contains(&format!("/v1/{path}: HTTP 403")),
            "{message}"
        );
        assert_no_secret(&message, &[&t1]);
        assert_eq!(
            root_store
                .load()
                .await
                .unwrap()
                .current
                .unwrap()
                .id()
                .to_string(),
            t1.id().to_string()
        );
    }

    // A reader's policy: reading works, the check says the store cannot be written.
    set_policy(
        &double,
        &[(
            "secret/*".to_string(),
            vec!["read".to_string(), "list".to_string()],
        )],
    )
    .await;
    let err = store.check_writable().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let err = store
        .set_login_latch(Some(&latch("401 A")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(err.to_string().contains("set_login_latch"), "{err}");
    assert_eq!(stored(&double).await, before);
}

#[tokio::test]
async fn a_sealed_server_is_unavailable_mid_rotation_and_the_rotation_goes_on_once_unsealed() {
    let mut vault = server(true).await;
    let store = store_at(&vault.address).await;
    let t0 = token(0);
    store.import_current(&t0).await.unwrap();
    let t1 = token(1);
    store.begin_rotation(&intent_for(&t1)).await.unwrap();
    store.stage_pending(&t1).await.unwrap();

    vault.seal().await;
    let err = store.promote(t1.rotation_id(), at(100)).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    assert!(err.kind.is_transient());
    let message = err.to_string();
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(
        message.contains("sealed"),
        "OpenBao's errors text: {message}"
    );
    assert_no_secret(&message, &[&t0, &t1]);
    assert_eq!(
        store.check_writable().await.unwrap_err().kind,
        StoreErrorKind::Unavailable
    );

    vault.unseal().await;
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t0);
    assert_same(state.pending.as_ref().unwrap(), &t1);
    store.promote(t1.rotation_id(), at(100)).await.unwrap();
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &t1);
    assert_same(&state.previous.unwrap().token, &t0);
}

#[tokio::test]
async fn a_mount_keeping_one_version_loses_the_previous_token_and_the_store_names_it() {
    let vault = server(false).await;
    vault
        .configure_kv2("secret", json!({"max_versions": 1}))
        .await;
    let store = store_at(&vault.address).await;
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let t2 = token(2);
    store.begin_rotation(&intent_for(&t2)).await.unwrap();
    store.stage_pending(&t2).await.unwrap();
    store.promote(t2.rotation_id(), at(200)).await.unwrap();

    // OpenBao trimmed version 1 when version 2 was written: the previous token is gone before
    // anyone revoked it, and the store says so instead of forgetting it.
    let metadata = secret(&vault, PATH).await.unwrap().metadata;
    assert_eq!(metadata["oldest_version"], json!(2), "{metadata}");
    let err = store.load().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("version 1 of") && message.contains("never revoked"),
        "{message}"
    );
    assert!(message.contains("max_versions"), "{message}");
    assert_no_secret(&message, &[&t1, &t2]);

    // With the default (10 versions) the same rotations keep it.
    let vault = server(false).await;
    let store = store_at(&vault.address).await;
    rotate(&store, &t1, at(100)).await;
    rotate(&store, &t2, at(200)).await;
    assert_same(&store.load().await.unwrap().previous.unwrap().token, &t1);
}

#[tokio::test]
async fn a_soft_deleted_previous_version_is_reported_until_it_is_marked_revoked() {
    let vault = server(false).await;
    let store = store_at(&vault.address).await;
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let t2 = token(2);
    rotate(&store, &t2, at(200)).await;
    assert_same(&store.load().await.unwrap().previous.unwrap().token, &t1);

    // Soft-delete version 1 (a deletion time set, the data kept), which is also what a mount's
    // `delete_version_after` does to a version once it is due.
    let (status, body) = vault
        .api(
            "POST",
            &format!("secret/delete/{PATH}"),
            Some(json!({"versions": [1]})),
        )
        .await;
    assert!(
        (200..300).contains(&status),
        "delete version 1: {status} {body}"
    );
    let err = store.load().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains("version 1 of"), "{err}");

    // Once the previous token is marked revoked, its version being gone is no error.
    let (status, body) = vault
        .api(
            "POST",
            &format!("secret/undelete/{PATH}"),
            Some(json!({"versions": [1]})),
        )
        .await;
    assert!((200..300).contains(&status), "undelete: {status} {body}");
    store.mark_previous_revoked(t1.id(), at(250)).await.unwrap();
    vault
        .api(
            "POST",
            &format!("secret/delete/{PATH}"),
            Some(json!({"versions": [1]})),
        )
        .await;
    let state = store.load().await.expect("a revoked previous may be gone");
    assert_same(state.current.as_ref().unwrap(), &t2);
    assert!(state.previous.is_none());
}
