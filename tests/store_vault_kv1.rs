//! The Vault store on KV v1 (a version 1 `kv` engine mounted at `kv1/`), against a real OpenBao
//! server started by each test: rotations through the `SecretStore` steps with token and AppRole
//! logins (AppRole under the KV v1 policy of `docs/stores-vault.md`, which OpenBao enforces),
//! what readers see meanwhile, refused credentials and a missing capability, and the server
//! going away mid-rotation; the login latch in `<path>.rotation` and `check_writable`.

#[path = "support/openbao.rs"]
mod openbao;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{Duration, TimeZone, Utc};
use netsuite_token_rotator::secret::{ExposeSecret, SecretRef, SecretString};
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStore, VaultStoreConfig, connect};
use netsuite_token_rotator::store::{
    CredentialRecord, Intent, LoginLatch, SecretStore, StoreErrorKind, TokenRecord,
};
use openbao::{OpenBao, POLICY, documented_policy};
use serde_json::Value;
use uuid::Uuid;

const MOUNT: &str = "kv1";
const PATH: &str = "netsuite/erp-sync";

fn config(vault: &OpenBao, auth: VaultAuth) -> VaultStoreConfig {
    VaultStoreConfig {
        address: vault.address.clone(),
        mount: MOUNT.to_string(),
        path: PATH.to_string(),
        kv_version: 1,
        namespace: None,
        ca_cert: None,
        auth,
    }
}

fn token_auth(token: &str) -> VaultAuth {
    VaultAuth::Token {
        token: SecretRef::Literal(token.into()),
    }
}

async fn started() -> OpenBao {
    let vault = OpenBao::start().await;
    vault.enable_kv1(MOUNT).await;
    vault
}

async fn root_store(vault: &OpenBao) -> VaultStore {
    connect(&config(vault, token_auth(&vault.root_token)))
        .await
        .expect("connect with the root token")
}

fn token(rotation_id: Uuid, n: u32) -> CredentialRecord {
    CredentialRecord::Tba(TokenRecord {
        account_id: "123456_SB1".into(),
        realm: "123456_SB1".into(),
        consumer_key: Some(SecretString::from(format!("ck-{n}"))),
        consumer_secret: Some(SecretString::from(format!("cs-{n}"))),
        token_id: format!("token-id-{n}"),
        token_secret: SecretString::from(format!("token-secret-{n}")),
        issued_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, n).unwrap(),
        rotation_id,
    })
}

fn intent(rotation_id: Uuid) -> Intent {
    Intent {
        rotation_id,
        token_name: format!("erp-sync {rotation_id}"),
        started_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        owner: String::new(),
    }
}

/// One rotation through begin, stage and promote, each step repeated once (as after a crash).
async fn rotate(
    store: &VaultStore,
    n: u32,
    revoke_after: chrono::DateTime<Utc>,
) -> CredentialRecord {
    let id = Uuid::new_v4();
    let new = token(id, n);
    store.begin_rotation(&intent(id)).await.expect("begin");
    store
        .begin_rotation(&intent(id))
        .await
        .expect("begin again");
    store.stage_pending(&new).await.expect("stage");
    store.stage_pending(&new).await.expect("stage again");
    store.promote(id, revoke_after).await.expect("promote");
    store
        .promote(id, revoke_after)
        .await
        .expect("promote again");
    new
}

fn assert_same(actual: &CredentialRecord, expected: &CredentialRecord) {
    assert_eq!(actual.id().to_string(), expected.id().to_string());
    assert_eq!(actual.rotation_id(), expected.rotation_id());
    assert_eq!(
        actual.as_tba().unwrap().token_secret.expose_secret(),
        expected.as_tba().unwrap().token_secret.expose_secret()
    );
    assert_eq!(actual.issued_at(), expected.issued_at());
}

#[tokio::test]
async fn token_auth_bootstrap_two_rotations_previous_and_revocation() {
    let vault = started().await;
    let store = root_store(&vault).await;
    assert!(store.is_single_writer(), "KV v1 has no check-and-set");
    assert!(store.describe().contains("kv1/netsuite/erp-sync"));

    let empty = store.load().await.expect("load empty");
    assert!(empty.current.is_none() && empty.previous.is_none() && empty.intent.is_none());

    // Bootstrap: nothing current, so nothing becomes previous.
    let first = rotate(&store, 1, Utc::now()).await;
    let state = store.load().await.expect("load");
    assert_same(state.current.as_ref().unwrap(), &first);
    assert!(state.previous.is_none() && state.intent.is_none() && state.pending.is_none());

    // Second rotation: the first token becomes previous with its revoke time.
    let revoke_after = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let second = rotate(&store, 2, revoke_after).await;
    let state = store.load().await.expect("load");
    assert_same(state.current.as_ref().unwrap(), &second);
    let previous = state.previous.expect("previous after the second rotation");
    assert_same(&previous.token, &first);
    assert_eq!(previous.revoke_after, revoke_after);
    assert!(previous.revoked_at.is_none());

    // A third promotion would overwrite an unrevoked previous token.
    let third_id = Uuid::new_v4();
    store.begin_rotation(&intent(third_id)).await.unwrap();
    store.stage_pending(&token(third_id, 3)).await.unwrap();
    let refused = store.promote(third_id, revoke_after).await.unwrap_err();
    assert_eq!(refused.kind, StoreErrorKind::Conflict, "{refused}");
    assert_same(
        store.load().await.unwrap().current.as_ref().unwrap(),
        &second,
    );

    // Marking another token revoked changes nothing; marking the previous one records it once.
    let revoked_at = Utc.with_ymd_and_hms(2026, 2, 1, 1, 0, 0).unwrap();
    store
        .mark_previous_revoked("someone-else", revoked_at)
        .await
        .unwrap();
    assert!(
        store
            .load()
            .await
            .unwrap()
            .previous
            .unwrap()
            .revoked_at
            .is_none()
    );
    store
        .mark_previous_revoked(first.id(), revoked_at)
        .await
        .unwrap();
    store
        .mark_previous_revoked(first.id(), revoked_at + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        store.load().await.unwrap().previous.unwrap().revoked_at,
        Some(revoked_at)
    );

    // Now the third rotation can be promoted; the second token becomes previous.
    store
        .promote(third_id, revoke_after)
        .await
        .expect("promote third");
    let state = store.load().await.unwrap();
    assert_eq!(state.current.unwrap().rotation_id(), third_id);
    assert_same(&state.previous.unwrap().token, &second);
}

#[tokio::test]
async fn rotation_conflicts_abandon_and_idempotent_repeats() {
    let vault = started().await;
    let store = root_store(&vault).await;
    let first = rotate(&store, 1, Utc::now()).await;

    let ours = Uuid::new_v4();
    let theirs = Uuid::new_v4();
    store.begin_rotation(&intent(ours)).await.unwrap();
    let lost = store.begin_rotation(&intent(theirs)).await.unwrap_err();
    assert_eq!(lost.kind, StoreErrorKind::Conflict, "{lost}");
    assert!(lost.to_string().contains(&ours.to_string()), "{lost}");

    // Staging for another rotation, or a second token for ours, is refused.
    let wrong = store.stage_pending(&token(theirs, 9)).await.unwrap_err();
    assert_eq!(wrong.kind, StoreErrorKind::Conflict);
    store.stage_pending(&token(ours, 2)).await.unwrap();
    let second_token = store.stage_pending(&token(ours, 3)).await.unwrap_err();
    assert_eq!(second_token.kind, StoreErrorKind::Conflict);

    // Promoting a rotation that is not the store's is refused; abandoning it is a no-op.
    assert!(
        store
            .promote(theirs, Utc::now())
            .await
            .unwrap_err()
            .is_conflict()
    );
    store.abandon_rotation(theirs).await.unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(state.intent.as_ref().unwrap().rotation_id, ours);
    assert_eq!(
        state.pending.as_ref().unwrap().id().to_string(),
        "token-id-2"
    );

    // Abandoning ours clears intent and pending, keeps current; repeating it is harmless.
    store.abandon_rotation(ours).await.unwrap();
    store.abandon_rotation(ours).await.unwrap();
    let state = store.load().await.unwrap();
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_same(state.current.as_ref().unwrap(), &first);
    let after_abandon = store.stage_pending(&token(ours, 2)).await.unwrap_err();
    assert!(after_abandon.is_conflict());

    // A new rotation can start after the abandon.
    let next = Uuid::new_v4();
    store.begin_rotation(&intent(next)).await.unwrap();
    assert_eq!(store.load().await.unwrap().intent.unwrap(), intent(next));

    // Import is only for an empty store.
    let import = store
        .import_current(&token(Uuid::new_v4(), 7))
        .await
        .unwrap_err();
    assert_eq!(import.kind, StoreErrorKind::Conflict);
}

#[tokio::test]
async fn approle_under_the_documented_policy_import_then_rotate() {
    let vault = started().await;
    vault
        .write_policy(POLICY, &documented_policy(1, MOUNT))
        .await;
    let (role_id, secret_id) = vault.approle("netsuite-rotator", &[POLICY]).await;
    let auth = VaultAuth::Approle {
        role_id: SecretRef::Literal(role_id.clone().into()),
        secret_id: SecretRef::Literal(secret_id.clone().into()),
        mount: "approle".into(),
    };
    let store = connect(&config(&vault, auth)).await.expect("AppRole login");

    let imported = token(Uuid::new_v4(), 1);
    store.import_current(&imported).await.expect("import");
    store.import_current(&imported).await.expect("import again");
    let other = store
        .import_current(&token(Uuid::new_v4(), 2))
        .await
        .unwrap_err();
    assert_eq!(other.kind, StoreErrorKind::Conflict);

    let revoke_after = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let rotated = rotate(&store, 2, revoke_after).await;
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &rotated);
    let previous = state.previous.unwrap();
    assert_same(&previous.token, &imported);
    assert_eq!(previous.revoke_after, revoke_after);
    store
        .mark_previous_revoked(imported.id(), Utc::now())
        .await
        .expect("mark revoked under the policy");
    store
        .set_login_latch(Some(&latch("401 under the policy")))
        .await
        .expect("latch under the policy");
    store.set_login_latch(None).await.expect("clear the latch");
    store
        .check_writable()
        .await
        .expect("check_writable under the policy");

    // The policy is enforced: the same login may not touch a path the policy does not name.
    let (status, _) = vault
        .api_as(
            Some(&role_token(&vault, &role_id, &secret_id).await),
            "GET",
            &format!("{MOUNT}/netsuite/other"),
            None,
        )
        .await;
    assert_eq!(status, 403, "a path outside the policy is refused");

    // A wrong secret_id fails at connect as denied, without quoting it.
    let bad = VaultAuth::Approle {
        role_id: SecretRef::Literal("not-a-role".into()),
        secret_id: SecretRef::Literal("wrong-secret-id-value".into()),
        mount: "approle".into(),
    };
    let err = connect(&config(&vault, bad))
        .await
        .err()
        .expect("bad AppRole login");
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(!err.to_string().contains("wrong-secret-id-value"));
    assert!(!err.to_string().contains(&secret_id));
}

/// Logs in with AppRole directly (as a second client would) and returns the token.
async fn role_token(vault: &OpenBao, role_id: &str, secret_id: &str) -> String {
    let (status, body) = vault
        .api_as(
            None,
            "POST",
            "auth/approle/login",
            Some(serde_json::json!({"role_id": role_id, "secret_id": secret_id})),
        )
        .await;
    assert_eq!(status, 200, "AppRole login: {body}");
    body["auth"]["client_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_capability_the_policy_leaves_out_is_access_denied_naming_the_path() {
    let vault = started().await;
    // The documented KV v1 policy without its `.rotation` line: the token may read and write
    // the current token but not the rotation document.
    let policy: String = documented_policy(1, MOUNT)
        .lines()
        .filter(|line| !line.contains("erp-sync.rotation"))
        .collect::<Vec<_>>()
        .join("\n");
    vault.write_policy(POLICY, &policy).await;
    let child = vault.create_token(&[POLICY], "1h").await;
    let store = connect(&config(&vault, token_auth(&child))).await.unwrap();
    let id = Uuid::new_v4();
    let err = store.begin_rotation(&intent(id)).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let text = err.to_string();
    assert!(text.contains("access denied"), "{text}");
    assert!(text.contains("kv1/netsuite/erp-sync.rotation"), "{text}");
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(!text.contains(&child), "{text}");
}

#[tokio::test]
async fn readers_always_see_a_whole_token_during_rotations() {
    let vault = Arc::new(started().await);
    let store = root_store(&vault).await;
    rotate(&store, 0, Utc::now()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (vault, stop) = (vault.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) && reads < 100_000 {
                let (status, body) = vault.api("GET", &format!("{MOUNT}/{PATH}"), None).await;
                assert_eq!(status, 200, "reader got {status}");
                let record: CredentialRecord = serde_json::from_value(body["data"].clone())
                    .expect("a reader always gets a whole CredentialRecord");
                assert!(record.id().to_string().starts_with("token-id-"));
                reads += 1;
            }
            reads
        })
    };

    for n in 1..=5 {
        let previous = store.load().await.unwrap().current.unwrap();
        rotate(&store, n, Utc::now()).await;
        store
            .mark_previous_revoked(previous.id(), Utc::now())
            .await
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.expect("reader task");
    assert!(reads > 0, "the reader read at least once");
    assert_eq!(
        store
            .load()
            .await
            .unwrap()
            .current
            .unwrap()
            .id()
            .to_string(),
        "token-id-5"
    );
}

#[tokio::test]
async fn refused_token_is_denied_naming_the_path_not_the_token() {
    let vault = started().await;

    let err = connect(&config(&vault, token_auth("not-a-real-token-value")))
        .await
        .err()
        .expect("an unknown token fails at connect");
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(!err.to_string().contains("not-a-real-token-value"), "{err}");

    // A token revoked after connect: the operation is denied, the message names the store
    // (address, mount and path) and the step, never the token.
    let child = vault.root_child_token().await;
    let store = connect(&config(&vault, token_auth(&child))).await.unwrap();
    store.load().await.expect("the child token works");
    vault.revoke_token(&child).await;
    let err = store.load().await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{text}");
    assert!(text.contains(&vault.address), "{text}");
    assert!(text.contains("kv1/netsuite/erp-sync"), "{text}");
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(!text.contains(&child), "{text}");
}

#[tokio::test]
async fn server_down_mid_rotation_then_back_with_state_intact() {
    let mut vault = OpenBao::start_persistent().await;
    vault.enable_kv1(MOUNT).await;
    let store = root_store(&vault).await;
    let first = rotate(&store, 1, Utc::now()).await;

    let id = Uuid::new_v4();
    let second = token(id, 2);
    store.begin_rotation(&intent(id)).await.unwrap();
    store.stage_pending(&second).await.unwrap();

    vault.stop();
    let err = store.promote(id, Utc::now()).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    assert!(err.kind.is_transient());
    let text = err.to_string();
    assert!(text.contains(&vault.address), "{text}");
    assert!(
        text.contains(
            "promote: unavailable: read current (KV v1): GET /v1/kv1/netsuite/erp-sync: no answer"
        ),
        "{text}"
    );

    vault.restart().await;
    let state = store.load().await.expect("load after restart");
    assert_same(state.current.as_ref().unwrap(), &first);
    assert_eq!(state.intent.unwrap().rotation_id, id);
    assert_same(state.pending.as_ref().unwrap(), &second);

    let revoke_after = Utc::now() + Duration::hours(1);
    store
        .promote(id, revoke_after)
        .await
        .expect("promote after restart");
    let state = store.load().await.unwrap();
    assert_same(state.current.as_ref().unwrap(), &second);
    assert_same(&state.previous.unwrap().token, &first);
}

fn latch(reason: &str) -> LoginLatch {
    LoginLatch {
        at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        login: "k9Xw+fingerprint/=".into(),
        reason: reason.into(),
    }
}

/// `GET /v1/kv1/<key>` as root: the status and the document (`data`).
async fn document(vault: &OpenBao, key: &str) -> (u16, Value) {
    let (status, body) = vault.api("GET", &format!("{MOUNT}/{key}"), None).await;
    (status, body["data"].clone())
}

#[tokio::test]
async fn the_login_latch_lives_in_the_rotation_document_and_outlasts_rotations() {
    let vault = started().await;
    let store = root_store(&vault).await;
    let sibling = format!("{PATH}.rotation");

    // Before any token: the rotation document holds only the latch.
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().login_latch,
        Some(latch("401 A"))
    );
    let (status, doc) = document(&vault, &sibling).await;
    assert_eq!(status, 200);
    assert_eq!(doc["login_latch"]["reason"], "401 A", "{doc}");

    // A rotation and an abandon keep it; readers' document is only ever the token.
    let first = rotate(&store, 1, Utc::now()).await;
    let (_, readers_saw) = document(&vault, PATH).await;
    assert!(readers_saw.get("login_latch").is_none(), "{readers_saw}");
    let id = Uuid::new_v4();
    store.begin_rotation(&intent(id)).await.unwrap();
    store.stage_pending(&token(id, 2)).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().login_latch,
        Some(latch("401 A"))
    );
    store.abandon_rotation(id).await.unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(state.login_latch, Some(latch("401 A")));
    assert!(state.intent.is_none() && state.pending.is_none() && state.previous.is_none());
    assert_same(state.current.as_ref().unwrap(), &first);
    assert_eq!(document(&vault, PATH).await.1, readers_saw);
    assert_eq!(
        document(&vault, &sibling).await.0,
        200,
        "kept for the latch alone"
    );

    // Another process sees it; a second rotation with a previous token keeps it too.
    let other = root_store(&vault).await;
    other.set_login_latch(Some(&latch("403 B"))).await.unwrap();
    rotate(&store, 3, Utc::now()).await;
    let state = store.load().await.unwrap();
    assert_eq!(state.login_latch, Some(latch("403 B")));
    assert_same(&state.previous.unwrap().token, &first);

    // Cleared, the document keeps the previous token; once that is gone too, nothing is left.
    store.set_login_latch(None).await.unwrap();
    let (status, doc) = document(&vault, &sibling).await;
    assert_eq!(status, 200);
    assert!(
        doc.get("login_latch").is_none() && doc.get("previous").is_some(),
        "{doc}"
    );
    assert_eq!(store.load().await.unwrap().login_latch, None);

    let fresh = started().await;
    let store = root_store(&fresh).await;
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    store.set_login_latch(None).await.unwrap();
    store.set_login_latch(None).await.unwrap();
    assert_eq!(
        document(&fresh, &sibling).await.0,
        404,
        "an empty document is deleted"
    );
}

#[tokio::test]
async fn check_writable_writes_and_removes_its_own_sibling_only() {
    let mut vault = started().await;
    let store = root_store(&vault).await;
    store
        .check_writable()
        .await
        .expect("an empty store is writable");

    rotate(&store, 1, Utc::now()).await;
    let id = Uuid::new_v4();
    store.begin_rotation(&intent(id)).await.unwrap();
    store.stage_pending(&token(id, 2)).await.unwrap();
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    let sibling = format!("{PATH}.rotation");
    let before = (
        document(&vault, PATH).await,
        document(&vault, &sibling).await,
    );
    store.check_writable().await.expect("writable mid-rotation");
    assert_eq!(
        (
            document(&vault, PATH).await,
            document(&vault, &sibling).await
        ),
        before,
        "neither the token nor the rotation changed"
    );
    assert_eq!(
        document(&vault, &format!("{PATH}.write-check")).await.0,
        404
    );
    store
        .promote(id, Utc::now())
        .await
        .expect("the rotation goes on");

    // A token whose policy leaves out the `.write-check` path may not write there.
    let policy: String = documented_policy(1, MOUNT)
        .lines()
        .filter(|line| !line.contains("erp-sync.write-check"))
        .collect::<Vec<_>>()
        .join("\n");
    vault.write_policy(POLICY, &policy).await;
    let child = vault.create_token(&[POLICY], "1h").await;
    let limited = connect(&config(&vault, token_auth(&child))).await.unwrap();
    limited.load().await.expect("the policy allows reading");
    let err = limited.check_writable().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("check_writable: access denied"),
        "{message}"
    );
    assert!(
        message.contains("kv1/netsuite/erp-sync.write-check"),
        "{message}"
    );
    assert!(!message.contains(&child), "{message}");

    vault.stop();
    let err = store.check_writable().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
}
