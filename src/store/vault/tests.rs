//! Unit tests of the Vault store against in-memory transports.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::TimeZone;
use serde_json::json;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::*;
use crate::secret::SecretString;
use crate::store::{
    CredentialRecord, Intent, LoginLatch, SecretStore, StoreErrorKind, TokenRecord,
};

// --- pure parts --------------------------------------------------------------------------

#[test]
fn token_is_renewed_or_replaced_in_the_last_third_of_its_ttl() {
    let now = Instant::now();
    let lease = |age_s: u64, ttl_s: u64, renewable: bool| Lease {
        obtained: now - Duration::from_secs(age_s),
        ttl: Duration::from_secs(ttl_s),
        renewable,
    };
    assert_eq!(token_action(None, now), TokenAction::Use);
    assert_eq!(
        token_action(Some(&lease(5, 0, true)), now),
        TokenAction::Use
    );
    assert_eq!(
        token_action(Some(&lease(5, 9, true)), now),
        TokenAction::Use
    );
    assert_eq!(
        token_action(Some(&lease(6, 9, true)), now),
        TokenAction::Renew
    );
    assert_eq!(
        token_action(Some(&lease(6, 9, false)), now),
        TokenAction::Login
    );
    assert_eq!(
        token_action(Some(&lease(20, 9, true)), now),
        TokenAction::Renew
    );
}

#[test]
fn refusals_are_classified_and_quote_only_vault_errors() {
    let cas = json!({"errors": ["check-and-set parameter did not match the current version"]});
    assert_eq!(kind_for(400, &vault_errors(&cas)), StoreErrorKind::Conflict);
    assert_eq!(kind_for(400, "invalid request"), StoreErrorKind::Failed);
    assert_eq!(kind_for(403, ""), StoreErrorKind::Denied);
    for status in [412, 429, 500, 502, 503] {
        assert_eq!(
            kind_for(status, ""),
            StoreErrorKind::Unavailable,
            "{status}"
        );
    }
    assert_eq!(kind_for(404, ""), StoreErrorKind::Failed);

    assert_eq!(vault_errors(&json!({"errors": ["a", "b"]})), "a; b");
    assert_eq!(
        vault_errors(&json!({"error": "Permission denied."})),
        "Permission denied."
    );
    let secretive = json!({"data": {"token_secret": "s3cr3t"}});
    assert_eq!(vault_errors(&secretive), "no error text");

    let reply = Reply {
        status: 400,
        body: cas,
    };
    let failure = rejection(
        "write current (KV v2 cas=3)",
        Method::POST,
        "secret/data/ns/x",
        &reply,
    );
    assert_eq!(failure.kind, StoreErrorKind::Conflict);
    assert_eq!(
        failure.detail,
        "write current (KV v2 cas=3): POST /v1/secret/data/ns/x: HTTP 400: \
         check-and-set parameter did not match the current version"
    );
}

#[test]
fn the_mount_s_kv_version_is_read_from_vault_s_answer() {
    let mount = |status, body| kv_version_of_mount(&Reply { status, body });
    let v2 = json!({"data": {"type": "kv", "options": {"version": "2"}, "path": "secret/"}});
    assert_eq!(mount(200, v2), Some(2));
    assert_eq!(
        mount(200, json!({"data": {"type": "kv", "options": null}})),
        Some(1)
    );
    assert_eq!(
        mount(
            200,
            json!({"data": {"type": "kv", "options": {"version": "1"}}})
        ),
        Some(1)
    );
    assert_eq!(mount(200, json!({"data": {"type": "transit"}})), None);
    assert_eq!(mount(404, json!({"errors": []})), None);
    assert_eq!(
        mount(500, json!({"error": "Logical backend path not supported."})),
        None
    );
}

#[test]
fn serde_reasons_never_quote_values() {
    let wrong_type: Result<CredentialRecord, _> = serde_json::from_value(json!({
        "account_id": "1", "realm": "1", "token_id": "t", "token_secret": ["s3cr3t"],
        "issued_at": "2026-01-01T00:00:00Z", "rotation_id": Uuid::nil()
    }));
    let reason = safe_serde_reason(&wrong_type.unwrap_err());
    assert!(!reason.contains("s3cr3t"), "{reason}");
    let missing: Result<CredentialRecord, _> = serde_json::from_value(json!({"account_id": "1"}));
    assert!(safe_serde_reason(&missing.unwrap_err()).starts_with("missing field"));
}

#[derive(Deserialize)]
struct Wrapper {
    store: VaultStoreConfig,
}

fn parse(toml_text: &str) -> Result<VaultStoreConfig, String> {
    toml::from_str::<Wrapper>(toml_text)
        .map(|w| w.store)
        .map_err(|e| e.to_string())
}

#[test]
fn config_defaults_and_auth_methods() {
    let config = parse(
        r#"[store]
address = "https://vault.internal:8200"
path = "netsuite/erp-sync"
auth = { method = "kubernetes", role = "netsuite-token-rotator" }"#,
    )
    .unwrap();
    assert_eq!(config.mount, "secret");
    assert_eq!(config.kv_version, 2);
    config.validate().unwrap();
    match &config.auth {
        VaultAuth::Kubernetes {
            role,
            jwt_path,
            mount,
        } => {
            assert_eq!(role, "netsuite-token-rotator");
            assert_eq!(
                jwt_path,
                Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token")
            );
            assert_eq!(mount, "kubernetes");
        }
        other => panic!("{other:?}"),
    }

    let approle = parse(
        r#"[store]
address = "http://127.0.0.1:8200"
path = "p"
kv_version = 1
auth = { method = "approle", role_id = { env = "ROLE_ID" }, secret_id = { file = "/run/sid" } }"#,
    )
    .unwrap();
    assert!(matches!(&approle.auth, VaultAuth::Approle { mount, .. } if mount == "approle"));
    let token = parse(
        r#"[store]
address = "http://127.0.0.1:8200"
path = "p"
auth = { method = "token", token = "literal-token-value" }"#,
    )
    .unwrap();
    assert!(!format!("{token:?}").contains("literal-token-value"));
}

#[test]
fn config_mistakes_are_named() {
    let base = |extra: &str| {
        format!(
            "[store]\naddress = \"http://127.0.0.1:8200\"\npath = \"netsuite/x\"\n{extra}\nauth = {{ method = \"token\", token = {{ env = \"T\" }} }}"
        )
    };
    let err = parse(&base("kv_version = 3"))
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("kv_version"), "{err}");
    let err = parse(&base("mount = \"a//b\""))
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().starts_with("mount = "), "{err}");
    let err = parse(&base("path_typo = \"x\"")).unwrap_err();
    assert!(err.contains("path_typo"), "{err}");
    let err = parse("[store]\naddress = \"vault:8200\"\npath = \"x\"\nauth = { method = \"token\", token = \"t\" }")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().starts_with("address = "), "{err}");
    let err = parse("[store]\naddress = \"http://v\"\npath = \"x\"\nauth = { method = \"ldap\" }")
        .unwrap_err();
    assert!(err.contains("ldap"), "{err}");
}

// --- KV v2 layout, against an in-memory KV v2 --------------------------------------------

#[derive(Default)]
struct Kv2Secret {
    versions: Vec<Value>,
    custom: Map<String, Value>,
}

/// KV v2 as Vault's API documents it, in memory, mounted at `secret`: versions, `cas`,
/// `custom_metadata`, metadata delete. Can fail one request, or let "another writer" write
/// to a path just before our next write there.
#[derive(Default)]
struct FakeKv2 {
    secrets: Mutex<HashMap<String, Kv2Secret>>,
    fail_once: Mutex<Option<(Method, String)>>,
    interfere: Mutex<Option<(String, Value)>>,
    writes: Mutex<Vec<String>>,
}

fn reply(status: u16, body: Value) -> Result<Reply, Failure> {
    Ok(Reply { status, body })
}

#[async_trait::async_trait]
impl Transport for FakeKv2 {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        if self.fail_once.lock().unwrap().as_ref() == Some(&(method.clone(), path.to_string())) {
            *self.fail_once.lock().unwrap() = None;
            return reply(503, json!({"errors": ["Vault is sealed"]}));
        }
        let body: Value = body
            .map(|b| serde_json::from_slice(b).unwrap())
            .unwrap_or(Value::Null);
        let (path, version) = match path.split_once("?version=") {
            Some((p, v)) => (p, Some(v.parse::<usize>().unwrap())),
            None => (path, None),
        };
        let rest = path.strip_prefix("secret/").expect("mount secret");
        let mut secrets = self.secrets.lock().unwrap();
        if let Some(key) = rest.strip_prefix("data/") {
            if method == Method::GET {
                let Some(secret) = secrets.get(key) else {
                    return reply(404, json!({"errors": []}));
                };
                let n = version.unwrap_or(secret.versions.len());
                return match secret.versions.get(n.wrapping_sub(1)) {
                    Some(data) => reply(
                        200,
                        json!({"data": {"data": data, "metadata": {"version": n}}}),
                    ),
                    None => reply(404, json!({"errors": []})),
                };
            }
            assert_eq!(method, Method::POST);
            self.writes
                .lock()
                .unwrap()
                .push(format!("{key} cas={}", body["options"]["cas"]));
            if body.get("data").is_none_or(Value::is_null) {
                return reply(400, json!({"errors": ["no data provided"]}));
            }
            let interference = self.interfere.lock().unwrap().take_if(|(p, _)| p == key);
            if let Some((_, other)) = interference {
                secrets
                    .entry(key.to_string())
                    .or_default()
                    .versions
                    .push(other);
            }
            let secret = secrets.entry(key.to_string()).or_default();
            if let Some(cas) = body["options"]["cas"].as_u64()
                && cas as usize != secret.versions.len()
            {
                return reply(
                    400,
                    json!({"errors": ["check-and-set parameter did not match the current version"]}),
                );
            }
            secret.versions.push(body["data"].clone());
            return reply(200, json!({"data": {"version": secret.versions.len()}}));
        }
        let key = rest.strip_prefix("metadata/").expect("data/ or metadata/");
        match method {
            Method::GET => match secrets.get(key) {
                Some(s) => reply(
                    200,
                    json!({"data": {"current_version": s.versions.len(), "custom_metadata": s.custom}}),
                ),
                None => reply(404, json!({"errors": []})),
            },
            Method::POST => {
                self.writes.lock().unwrap().push(format!("{key} metadata"));
                // Vault's "fast path": a write that names no field changes nothing.
                let Some(custom) = body.get("custom_metadata").and_then(Value::as_object) else {
                    return reply(204, Value::Null);
                };
                let custom = custom.clone();
                assert!(
                    custom.values().all(Value::is_string),
                    "custom_metadata values are strings"
                );
                secrets.entry(key.to_string()).or_default().custom = custom;
                reply(204, Value::Null)
            }
            Method::DELETE => {
                secrets.remove(key);
                reply(204, Value::Null)
            }
            other => panic!("unexpected {other}"),
        }
    }
}

fn kv2_store(fake: &Arc<FakeKv2>) -> VaultStore {
    VaultStore {
        description: "vault http://fake secret/ns/x (KV v2)".into(),
        layout: Layout {
            mount: "secret".into(),
            path: "ns/x".into(),
            kv_version: 2,
        },
        transport: fake.clone(),
    }
}

fn record(rotation_id: Uuid, n: u32) -> CredentialRecord {
    CredentialRecord::Tba(TokenRecord {
        account_id: "123456_SB1".into(),
        realm: "123456_SB1".into(),
        consumer_key: None,
        consumer_secret: None,
        token_id: format!("tid-{n}"),
        token_secret: SecretString::from(format!("ts-{n}")),
        issued_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, n).unwrap(),
        rotation_id,
    })
}

fn intent(rotation_id: Uuid) -> Intent {
    Intent {
        rotation_id,
        token_name: format!("x {rotation_id}"),
        started_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        owner: String::new(),
    }
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, hour, 0, 0).unwrap()
}

async fn staged(store: &VaultStore, n: u32) -> Uuid {
    let id = Uuid::new_v4();
    store.begin_rotation(&intent(id)).await.unwrap();
    store.stage_pending(&record(id, n)).await.unwrap();
    id
}

#[tokio::test]
async fn kv2_previous_is_the_prior_version_with_bookkeeping_in_custom_metadata() {
    let fake = Arc::new(FakeKv2::default());
    fake.secrets
        .lock()
        .unwrap()
        .entry("ns/x".into())
        .or_default()
        .custom = json!({"owner": "team-erp"}).as_object().cloned().unwrap();
    let store = kv2_store(&fake);
    assert!(!store.is_single_writer());

    let first = staged(&store, 1).await;
    store.promote(first, at(0)).await.unwrap();
    let second = staged(&store, 2).await;
    store.promote(second, at(1)).await.unwrap();
    store.promote(second, at(1)).await.unwrap();

    let state = store.load().await.unwrap();
    assert_eq!(state.current.unwrap().id(), "tid-2");
    let previous = state.previous.unwrap();
    assert_eq!(previous.token.id(), "tid-1");
    assert_eq!(previous.revoke_after, at(1));
    assert!(previous.revoked_at.is_none() && state.intent.is_none() && state.pending.is_none());
    {
        let secrets = fake.secrets.lock().unwrap();
        assert!(
            !secrets.contains_key("ns/x.rotation"),
            "rotation state deleted after promote"
        );
        let custom = &secrets["ns/x"].custom;
        assert_eq!(custom["previous_version"], "1");
        assert_eq!(custom["owner"], "team-erp", "foreign custom_metadata kept");
    }
    assert_eq!(
        fake.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.starts_with("ns/x cas"))
            .collect::<Vec<_>>(),
        ["ns/x cas=0", "ns/x cas=1"],
        "current written with cas = the version read"
    );

    store.mark_previous_revoked("tid-1", at(2)).await.unwrap();
    store.mark_previous_revoked("tid-1", at(3)).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().previous.unwrap().revoked_at,
        Some(at(2))
    );
    let third = staged(&store, 3).await;
    store.promote(third, at(4)).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().previous.unwrap().token.id(),
        "tid-2"
    );
}

#[tokio::test]
async fn kv2_begin_rotation_is_create_only() {
    let fake = Arc::new(FakeKv2::default());
    let (a, b) = (kv2_store(&fake), kv2_store(&fake));
    let (ra, rb) = (Uuid::new_v4(), Uuid::new_v4());
    a.begin_rotation(&intent(ra)).await.unwrap();
    assert!(
        b.begin_rotation(&intent(rb))
            .await
            .unwrap_err()
            .is_conflict()
    );
    a.abandon_rotation(ra).await.unwrap();

    // B reads an empty sibling, but A's intent lands before B's create-only write.
    let doc = serde_json::to_value(RotationDoc {
        intent: Some(intent(ra)),
        ..RotationDoc::default()
    })
    .unwrap();
    *fake.interfere.lock().unwrap() = Some(("ns/x.rotation".into(), doc));
    let lost = b.begin_rotation(&intent(rb)).await.unwrap_err();
    assert!(lost.is_conflict(), "{lost}");
    assert!(lost.to_string().contains(&ra.to_string()), "{lost}");
    assert_eq!(a.load().await.unwrap().intent.unwrap().rotation_id, ra);
}

#[tokio::test]
async fn kv2_concurrent_promoter_loses_the_cas() {
    let fake = Arc::new(FakeKv2::default());
    let store = kv2_store(&fake);
    let first = staged(&store, 1).await;
    store.promote(first, at(0)).await.unwrap();
    let second = staged(&store, 2).await;

    let intruder = serde_json::to_value(record(Uuid::new_v4(), 9)).unwrap();
    *fake.interfere.lock().unwrap() = Some(("ns/x".into(), intruder));
    let lost = store.promote(second, at(1)).await.unwrap_err();
    assert!(lost.is_conflict(), "{lost}");
    assert!(
        lost.detail.contains("write current (KV v2 cas=1)"),
        "{lost}"
    );
    assert!(
        lost.detail
            .contains("check-and-set parameter did not match"),
        "{lost}"
    );
    assert_eq!(store.load().await.unwrap().current.unwrap().id(), "tid-9");
}

#[tokio::test]
async fn kv2_promotion_interrupted_after_the_current_write_is_finished_by_a_repeat() {
    let fake = Arc::new(FakeKv2::default());
    let store = kv2_store(&fake);
    let first = staged(&store, 1).await;
    store.promote(first, at(0)).await.unwrap();
    let second = staged(&store, 2).await;

    *fake.fail_once.lock().unwrap() = Some((Method::POST, "secret/metadata/ns/x".into()));
    let err = store.promote(second, at(5)).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");

    // The new token is current; the old one is already reported as previous.
    let state = store.load().await.unwrap();
    assert_eq!(state.current.unwrap().id(), "tid-2");
    let previous = state.previous.unwrap();
    assert_eq!(
        (previous.token.id(), previous.revoke_after),
        ("tid-1", at(5))
    );
    assert_eq!(state.pending.unwrap().rotation_id(), second);

    store.promote(second, at(6)).await.unwrap();
    let state = store.load().await.unwrap();
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_eq!(
        state.previous.unwrap().revoke_after,
        at(5),
        "the plan's time is kept"
    );
    assert!(!fake.secrets.lock().unwrap().contains_key("ns/x.rotation"));
}

#[tokio::test]
async fn kv2_import_is_create_only_and_foreign_data_is_invalid() {
    let fake = Arc::new(FakeKv2::default());
    let store = kv2_store(&fake);
    let imported = record(Uuid::new_v4(), 1);
    store.import_current(&imported).await.unwrap();
    store.import_current(&imported).await.unwrap();
    assert!(
        store
            .import_current(&record(Uuid::new_v4(), 2))
            .await
            .unwrap_err()
            .is_conflict()
    );

    fake.secrets
        .lock()
        .unwrap()
        .get_mut("ns/x")
        .unwrap()
        .versions
        .push(json!({"password": "hunter2"}));
    let err = store.load().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

fn latch(reason: &str) -> LoginLatch {
    LoginLatch {
        at: at(7),
        login: "q3Rk+9/xZw=".into(),
        reason: reason.into(),
    }
}

/// Another tool's write of one `custom_metadata` key of `ns/x`.
fn set_custom(fake: &FakeKv2, key: &str, value: &str) {
    let mut secrets = fake.secrets.lock().unwrap();
    let secret = secrets.get_mut("ns/x").expect("the key exists");
    secret.custom.insert(key.into(), json!(value));
}

#[tokio::test]
async fn kv2_login_latch_is_a_custom_metadata_key_that_rotations_keep() {
    let fake = Arc::new(FakeKv2::default());
    let store = kv2_store(&fake);

    // A bootstrap whose first login was refused: no version of <path> exists yet.
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().login_latch,
        Some(latch("401 A"))
    );
    {
        let secrets = fake.secrets.lock().unwrap();
        assert!(secrets["ns/x"].versions.is_empty(), "no version written");
        assert_eq!(
            secrets["ns/x"].custom["login_latch"],
            "2026-02-01T07:00:00Z 11:q3Rk+9/xZw= 401 A"
        );
    }

    // Rotations (promote rewrites custom_metadata) and an abandon keep it.
    let first = staged(&store, 1).await;
    store.promote(first, at(0)).await.unwrap();
    let second = staged(&store, 2).await;
    store.abandon_rotation(second).await.unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(state.login_latch, Some(latch("401 A")));
    assert_eq!(state.current.unwrap().id(), "tid-1");

    // Setting it again changes nothing and writes nothing; clearing removes only the key.
    fake.writes.lock().unwrap().clear();
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    assert!(fake.writes.lock().unwrap().is_empty());
    set_custom(&fake, "owner", "team-erp");
    store.set_login_latch(None).await.unwrap();
    store.set_login_latch(None).await.unwrap();
    assert_eq!(store.load().await.unwrap().login_latch, None);
    let custom = fake.secrets.lock().unwrap()["ns/x"].custom.clone();
    assert_eq!(custom.get("owner"), Some(&json!("team-erp")));
    assert!(!custom.contains_key("login_latch"));

    // Something else under the key is reported, and can be cleared.
    set_custom(&fake, "login_latch", "yes");
    let err = store.load().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
    assert!(err.detail.contains("login_latch"), "{err}");
    store.set_login_latch(None).await.unwrap();
    assert_eq!(store.load().await.unwrap().login_latch, None);
}

#[tokio::test]
async fn kv2_check_writable_writes_nothing() {
    let fake = Arc::new(FakeKv2::default());
    let store = kv2_store(&fake);
    store.check_writable().await.unwrap();
    assert!(fake.secrets.lock().unwrap().is_empty(), "nothing created");

    let first = staged(&store, 1).await;
    store.promote(first, at(0)).await.unwrap();
    let second = staged(&store, 2).await;
    let before = store.load().await.unwrap();
    fake.writes.lock().unwrap().clear();
    store.check_writable().await.unwrap();
    assert_eq!(
        *fake.writes.lock().unwrap(),
        [
            "ns/x cas=9223372036854775807",
            "ns/x.rotation cas=9223372036854775807",
            "ns/x metadata"
        ]
    );
    let after = store.load().await.unwrap();
    assert_eq!(after.current.unwrap().id(), before.current.unwrap().id());
    assert_eq!(after.pending.unwrap().id(), "tid-2");
    assert_eq!(after.intent.unwrap().rotation_id, second);
    {
        let secrets = fake.secrets.lock().unwrap();
        assert_eq!(secrets["ns/x"].versions.len(), 1);
        assert_eq!(secrets["ns/x.rotation"].versions.len(), 2);
    }

    *fake.fail_once.lock().unwrap() = Some((Method::POST, "secret/data/ns/x.rotation".into()));
    let err = store.check_writable().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    assert!(err.detail.contains("rotation state"), "{err}");
}

// --- the HTTP client's token handling, against a small Vault stand-in --------------------

#[derive(Default)]
struct AuthServer {
    logins: AtomicU32,
    renewals: AtomicU32,
}

async fn auth_server() -> (String, Arc<AuthServer>) {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    let state = Arc::new(AuthServer::default());
    let login = |axum::extract::State(s): axum::extract::State<Arc<AuthServer>>| async move {
        let n = s.logins.fetch_add(1, Ordering::SeqCst) + 1;
        json!({"auth": {"client_token": format!("t{n}"), "lease_duration": 60, "renewable": true}})
            .to_string()
    };
    let renew = |axum::extract::State(s): axum::extract::State<Arc<AuthServer>>| async move {
        s.renewals.fetch_add(1, Ordering::SeqCst);
        json!({"auth": {"client_token": "unchanged", "lease_duration": 60, "renewable": true}})
            .to_string()
    };
    // Only the token of the second login is accepted: the first "expired".
    let read = |headers: HeaderMap| async move {
        match headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
            Some("t2") => (StatusCode::OK, json!({"data": {"ok": true}}).to_string()),
            _ => (
                StatusCode::FORBIDDEN,
                json!({"errors": ["permission denied"]}).to_string(),
            ),
        }
    };
    let app = axum::Router::new()
        .route("/v1/auth/approle/login", post(login))
        .route("/v1/auth/token/renew-self", post(renew))
        .route("/v1/secret/data/x", get(read))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, state)
}

async fn approle_http(address: &str) -> VaultHttp {
    let mut http = VaultHttp {
        client: reqwest::Client::new(),
        address: address.to_string(),
        namespace: None,
        login: Some(Login::AppRole {
            mount: "approle".into(),
            role_id: SecretString::from("rid"),
            secret_id: SecretString::from("sid"),
        }),
        session: tokio::sync::Mutex::new(Session {
            token: SecretString::from(""),
            lease: None,
        }),
    };
    let session = http.log_in().await.map_err(|f| f.detail).unwrap();
    http.session = tokio::sync::Mutex::new(session);
    http
}

#[tokio::test]
async fn a_refused_token_is_replaced_by_one_new_login_and_the_call_retried() {
    let (address, server) = auth_server().await;
    let http = approle_http(&address).await;
    let reply = http
        .send(Method::GET, "secret/data/x", None)
        .await
        .map_err(|f| f.detail)
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(server.logins.load(Ordering::SeqCst), 2);

    // Still refused after the new login (t3 is not accepted either): no third login.
    let http = approle_http(&address).await;
    let reply = http
        .send(Method::GET, "secret/data/x", None)
        .await
        .map_err(|f| f.detail)
        .unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(server.logins.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_token_near_expiry_is_renewed_before_the_call() {
    let (address, server) = auth_server().await;
    let http = approle_http(&address).await;
    {
        let mut session = http.session.lock().await;
        let lease = session.lease.as_mut().unwrap();
        lease.obtained = Instant::now() - Duration::from_secs(50);
    }
    http.fresh_token().await.map_err(|f| f.detail).unwrap();
    assert_eq!(server.renewals.load(Ordering::SeqCst), 1);
    assert_eq!(server.logins.load(Ordering::SeqCst), 1);
    http.fresh_token().await.map_err(|f| f.detail).unwrap();
    assert_eq!(
        server.renewals.load(Ordering::SeqCst),
        1,
        "fresh again after renewal"
    );
}
