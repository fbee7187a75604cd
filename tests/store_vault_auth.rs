//! The Vault store's logins against a real OpenBao dev server (KV v2 at `secret/`): a token
//! checked with `lookup-self`, an AppRole token whose short TTL makes the store call
//! `renew-self` (and keep the same token rather than log in again), and Kubernetes auth through
//! OpenBao's `kubernetes` method pointed at a TokenReview endpoint this test serves. Each login
//! works under the KV v2 policy of `docs/stores-vault.md`, which OpenBao enforces.

#[path = "support/openbao.rs"]
mod openbao;

use chrono::{TimeZone, Utc};
use netsuite_token_rotator::secret::{SecretRef, SecretString};
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStore, VaultStoreConfig, connect};
use netsuite_token_rotator::store::{CredentialRecord, SecretStore, StoreErrorKind, TokenRecord};
use openbao::{OpenBao, POLICY, TokenReviewer, documented_policy};
use serde_json::Value;
use uuid::Uuid;

const PATH: &str = "netsuite/erp-sync";

fn config(vault: &OpenBao, auth: VaultAuth) -> VaultStoreConfig {
    VaultStoreConfig {
        address: vault.address.clone(),
        mount: "secret".to_string(),
        path: PATH.to_string(),
        kv_version: 2,
        namespace: None,
        ca_cert: None,
        auth,
    }
}

fn record(n: u32) -> CredentialRecord {
    CredentialRecord::Tba(TokenRecord {
        account_id: "123456_SB1".into(),
        realm: "123456_SB1".into(),
        consumer_key: None,
        consumer_secret: None,
        token_id: format!("token-id-{n}"),
        token_secret: SecretString::from(format!("token-secret-{n}")),
        issued_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, n).unwrap(),
        rotation_id: Uuid::new_v4(),
    })
}

async fn with_documented_policy() -> OpenBao {
    let vault = OpenBao::start().await;
    vault
        .write_policy(POLICY, &documented_policy(2, "secret"))
        .await;
    vault
}

/// The lookups (as root) of every token OpenBao holds that carries the daemon's policy.
async fn daemon_tokens(vault: &OpenBao) -> Vec<Value> {
    let (status, body) = vault.api("LIST", "auth/token/accessors", None).await;
    assert_eq!(status, 200, "list accessors: {body}");
    let mut tokens = Vec::new();
    for accessor in body["data"]["keys"].as_array().expect("accessor keys") {
        let (status, lookup) = vault
            .api(
                "POST",
                "auth/token/lookup-accessor",
                Some(serde_json::json!({"accessor": accessor})),
            )
            .await;
        assert_eq!(status, 200, "lookup-accessor: {lookup}");
        let policies = lookup["data"]["policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if policies.iter().any(|p| p == POLICY) {
            tokens.push(lookup["data"].clone());
        }
    }
    tokens
}

#[tokio::test]
async fn a_token_is_checked_with_lookup_self_and_works_under_the_policy() {
    let vault = with_documented_policy().await;
    let token = vault.create_token(&[POLICY], "1h").await;
    let store = connect(&config(
        &vault,
        VaultAuth::Token {
            token: SecretRef::Literal(token.clone().into()),
        },
    ))
    .await
    .expect("connect with a policy token");
    store.import_current(&record(1)).await.expect("import");
    store.check_writable().await.expect("check_writable");
    assert_eq!(
        store
            .load()
            .await
            .unwrap()
            .current
            .unwrap()
            .id()
            .to_string(),
        "token-id-1"
    );

    // A token that has expired or was revoked fails at connect: lookup-self is refused.
    vault.revoke_token(&token).await;
    let err = connect(&config(
        &vault,
        VaultAuth::Token {
            token: SecretRef::Literal(token.clone().into()),
        },
    ))
    .await
    .err()
    .expect("a revoked token fails at connect");
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(err.to_string().contains("lookup-self"), "{err}");
    assert!(!err.to_string().contains(&token), "{err}");
}

#[tokio::test]
async fn an_approle_token_near_the_end_of_its_ttl_is_renewed_with_renew_self() {
    let vault = with_documented_policy().await;
    let (role_id, secret_id) = vault.approle("netsuite-rotator", &[POLICY]).await;
    // A 2 s TTL (with a long max TTL, so renew-self may extend it): the store renews once a
    // third of it is left, so the loop below sees a renewal after about a second and a half.
    let (status, body) = vault
        .api(
            "POST",
            "auth/approle/role/netsuite-rotator",
            Some(serde_json::json!({
                "token_ttl": "2s",
                "token_max_ttl": "1h",
                "token_policies": [POLICY],
            })),
        )
        .await;
    assert!((200..300).contains(&status), "shorten the TTL: {body}");
    let store: VaultStore = connect(&config(
        &vault,
        VaultAuth::Approle {
            role_id: SecretRef::Literal(role_id.into()),
            secret_id: SecretRef::Literal(secret_id.into()),
            mount: "approle".into(),
        },
    ))
    .await
    .expect("AppRole login");
    store.import_current(&record(1)).await.expect("import");

    let logins = daemon_tokens(&vault).await;
    assert_eq!(logins.len(), 1, "one login: {logins:?}");
    assert!(logins[0]["last_renewal_time"].is_null() || logins[0]["last_renewal_time"] == 0);
    let accessor = logins[0]["accessor"].clone();

    // Use the store until OpenBao reports the token renewed. Bounded: the TTL is 2 s, so a
    // store that never renews fails on the expired token long before the bound.
    let mut renewed = None;
    for _ in 0..20_000 {
        store
            .load()
            .await
            .expect("every call works: the token never expires");
        let tokens = daemon_tokens(&vault).await;
        if let Some(token) = tokens
            .iter()
            .find(|t| t["accessor"] == accessor && t["last_renewal_time"].as_i64().unwrap_or(0) > 0)
        {
            renewed = Some((token.clone(), tokens.len()));
            break;
        }
    }
    let (token, live) = renewed.expect("the store renewed its token with renew-self");
    assert_eq!(live, 1, "renewed, not replaced by a second login");
    assert!(token["renewable"].as_bool().unwrap_or(false), "{token}");
    store
        .check_writable()
        .await
        .expect("still allowed after renewal");
}

#[tokio::test]
async fn kubernetes_auth_through_a_token_review_endpoint() {
    let vault = with_documented_policy().await;
    let reviewer = TokenReviewer::start("netsuite-token-rotator", "netsuite").await;
    vault
        .enable_kubernetes(&reviewer, "netsuite-token-rotator", &[POLICY])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let jwt_path = dir.path().join("token");
    let jwt = reviewer.service_account_jwt();
    std::fs::write(&jwt_path, &jwt).unwrap();

    let auth = VaultAuth::Kubernetes {
        role: "netsuite-token-rotator".into(),
        jwt_path: jwt_path.clone(),
        mount: "kubernetes".into(),
    };
    let store = match connect(&config(&vault, auth.clone())).await {
        Ok(store) => store,
        Err(err) => panic!(
            "Kubernetes login: {err}; reviews asked: {}; OpenBao's log:\n{}",
            reviewer.reviewed().len(),
            vault.log()
        ),
    };
    store.import_current(&record(1)).await.expect("import");
    store.check_writable().await.expect("check_writable");
    assert_eq!(
        reviewer.reviewed(),
        vec![jwt.clone()],
        "OpenBao asked the TokenReview API"
    );
    let logins = daemon_tokens(&vault).await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(
        logins[0]["meta"]["service_account_name"], "netsuite-token-rotator",
        "{}",
        logins[0]
    );

    // A JWT the cluster does not accept is denied at connect, and never quoted.
    let stranger = TokenReviewer::start("netsuite-token-rotator", "netsuite").await;
    let unknown = stranger.service_account_jwt();
    std::fs::write(&jwt_path, &unknown).unwrap();
    let err = connect(&config(&vault, auth))
        .await
        .err()
        .expect("a JWT the TokenReview refuses");
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(!err.to_string().contains(&unknown), "{err}");
}
