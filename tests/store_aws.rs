//! The AWS Secrets Manager store against a real moto_server, through the `SecretStore` trait:
//! bootstrap, rotations and the labels they leave, idempotent repeats, check-and-set races,
//! readers during rotations, error messages, and the server going away mid-rotation; the login
//! latch tag and `check_writable`, also with moto enforcing the IAM policy of
//! `docs/stores-aws.md` and a reader's policy.

#[path = "support/holding_proxy.rs"]
mod holding_proxy;
#[path = "support/moto.rs"]
mod moto;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use moto::MotoServer;
use netsuite_token_rotator::secret::{ExposeSecret, SecretString};
use netsuite_token_rotator::store::aws::{
    AwsStore, AwsStoreConfig, LOCK_LABEL, LOGIN_LATCH_TAG, intent_version_id, token_version_id,
};
use netsuite_token_rotator::store::{
    CredentialRecord, Intent, LoginLatch, SecretStore, StoreError, StoreErrorKind, TokenRecord,
};
use uuid::Uuid;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap()
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
        token_name: format!("erp-sync {}", t.rotation_id()),
        started_at: t.issued_at(),
        owner: String::new(),
    }
}

/// Steps 1, 3 and 5 of a rotation whose issued token is `t`.
async fn rotate(store: &AwsStore, t: &CredentialRecord, revoke_after: DateTime<Utc>) {
    store.begin_rotation(&intent_for(t)).await.expect("begin");
    store.stage_pending(t).await.expect("stage");
    store
        .promote(t.rotation_id(), revoke_after)
        .await
        .expect("promote");
}

fn version_with<'a>(labels: &'a BTreeMap<String, Vec<String>>, label: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(_, ls)| ls.iter().any(|l| l == label))
        .map(|(v, _)| v.as_str())
}

fn labels_starting(labels: &BTreeMap<String, Vec<String>>, prefix: &str) -> Vec<(String, String)> {
    labels
        .iter()
        .flat_map(|(v, ls)| {
            ls.iter()
                .filter(|l| l.starts_with(prefix))
                .map(move |l| (v.clone(), l.clone()))
        })
        .collect()
}

/// The labels a finished rotation leaves: `current` is AWSCURRENT, `previous` AWSPREVIOUS,
/// nothing pending, no intent label, and the lock on the last rotation's placeholder.
fn assert_settled(
    labels: &BTreeMap<String, Vec<String>>,
    current: &CredentialRecord,
    previous: Option<&CredentialRecord>,
) {
    let current_version = token_version_id(current.rotation_id());
    assert_eq!(
        version_with(labels, "AWSCURRENT"),
        Some(current_version.as_str()),
        "{labels:?}"
    );
    assert_eq!(
        version_with(labels, "AWSPREVIOUS"),
        previous
            .map(|p| token_version_id(p.rotation_id()))
            .as_deref(),
        "{labels:?}"
    );
    assert_eq!(version_with(labels, "AWSPENDING"), None, "{labels:?}");
    assert!(
        labels_starting(labels, "NSTR_INTENT_").is_empty(),
        "{labels:?}"
    );
    assert_eq!(
        version_with(labels, LOCK_LABEL),
        Some(intent_version_id(current.rotation_id()).as_str()),
        "{labels:?}"
    );
}

fn assert_same_token(a: &CredentialRecord, b: &CredentialRecord) {
    let (a, b) = (a.as_tba().unwrap(), b.as_tba().unwrap());
    assert_eq!(a.rotation_id, b.rotation_id);
    assert_eq!(a.token_id, b.token_id);
    assert_eq!(
        a.token_secret.expose_secret(),
        b.token_secret.expose_secret()
    );
    assert_eq!(a.issued_at, b.issued_at);
}

async fn reader_value(server: &MotoServer, secret_id: &str) -> String {
    server
        .client()
        .get_secret_value()
        .secret_id(secret_id)
        // Real Secrets Manager reads AWSCURRENT when no stage is given; moto 5.2 then returns
        // the version a PutSecretValue last made current, ignoring UpdateSecretVersionStage.
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("GetSecretValue")
        .secret_string()
        .expect("a string value")
        .to_string()
}

fn assert_conflict(result: Result<(), StoreError>, what: &str) -> StoreError {
    let err = result.expect_err(what);
    assert_eq!(err.kind, StoreErrorKind::Conflict, "{what}: {err}");
    err
}

#[tokio::test]
async fn bootstraps_a_missing_secret_then_rotates_twice() {
    let server = MotoServer::start();
    let mut config = server.store_config("netsuite/erp-sync");
    config.kms_key_id = Some("alias/netsuite".into());
    config.tags = BTreeMap::from([("team".to_string(), "erp".to_string())]);
    let store = AwsStore::connect(&config).await.unwrap();

    let empty = store.load().await.expect("a missing secret loads as empty");
    assert!(empty.current.is_none() && empty.intent.is_none() && empty.pending.is_none());

    let t1 = token(1);
    store.begin_rotation(&intent_for(&t1)).await.unwrap();
    let described = server
        .client()
        .describe_secret()
        .secret_id("netsuite/erp-sync")
        .send()
        .await
        .unwrap();
    assert_eq!(described.kms_key_id(), Some("alias/netsuite"));
    assert!(
        described
            .tags()
            .iter()
            .any(|t| t.key() == Some("team") && t.value() == Some("erp"))
    );

    store.stage_pending(&t1).await.unwrap();
    let staged = store.load().await.unwrap();
    assert!(staged.current.is_none());
    assert_eq!(staged.intent, Some(intent_for(&t1)));
    assert_same_token(staged.pending.as_ref().unwrap(), &t1);
    // Before the first promotion readers get the lock version's marker, never the intent.
    let before = reader_value(&server, "netsuite/erp-sync").await;
    assert!(before.contains("no token has been promoted"), "{before}");

    store.promote(t1.rotation_id(), at(100)).await.unwrap();
    let labels = store.staging_labels().await.unwrap();
    assert_settled(&labels, &t1, None);
    let state = store.load().await.unwrap();
    assert_same_token(state.current.as_ref().unwrap(), &t1);
    assert!(state.previous.is_none() && state.intent.is_none() && state.pending.is_none());
    let read: CredentialRecord =
        serde_json::from_str(&reader_value(&server, "netsuite/erp-sync").await).unwrap();
    assert_same_token(&read, &t1);

    let t2 = token(2);
    rotate(&store, &t2, at(200)).await;
    let labels = store.staging_labels().await.unwrap();
    assert_settled(&labels, &t2, Some(&t1));
    let revoke_labels = labels_starting(&labels, "NSTR_REVOKE_AFTER_");
    assert_eq!(revoke_labels.len(), 1, "{labels:?}");
    assert_eq!(revoke_labels[0].0, token_version_id(t1.rotation_id()));
    let state = store.load().await.unwrap();
    let previous = state.previous.unwrap();
    assert_same_token(&previous.token, &t1);
    assert_eq!(previous.revoke_after, at(200));
    assert_eq!(previous.revoked_at, None);

    // The previous token is not revoked yet: a third promotion must not drop it.
    let t3 = token(3);
    store.begin_rotation(&intent_for(&t3)).await.unwrap();
    store.stage_pending(&t3).await.unwrap();
    let err = assert_conflict(
        store.promote(t3.rotation_id(), at(300)).await,
        "promote over an unrevoked previous",
    );
    assert!(err.to_string().contains("not revoked"), "{err}");

    store.mark_previous_revoked(t1.id(), at(250)).await.unwrap();
    let revoked = store.load().await.unwrap().previous.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(250)));
    assert_eq!(revoked.revoke_after, at(200));

    store.promote(t3.rotation_id(), at(300)).await.unwrap();
    let labels = store.staging_labels().await.unwrap();
    assert_settled(&labels, &t3, Some(&t2));
    assert!(
        !labels.contains_key(&token_version_id(t1.rotation_id())),
        "the twice-replaced token keeps no labels: {labels:?}"
    );
    assert_eq!(labels_starting(&labels, "NSTR_REVOKED_"), vec![]);
    let after = labels_starting(&labels, "NSTR_REVOKE_AFTER_");
    assert_eq!(after.len(), 1, "{labels:?}");
    assert_eq!(after[0].0, token_version_id(t2.rotation_id()));
    let state = store.load().await.unwrap();
    assert_same_token(state.current.as_ref().unwrap(), &t3);
    assert_eq!(state.previous.unwrap().revoke_after, at(300));
}

#[tokio::test]
async fn bootstraps_an_existing_secret_that_has_no_value() {
    let server = MotoServer::start();
    for name in ["tf/imported", "tf/rotated"] {
        server.create_empty_secret(name).await;
    }
    let store_for = |name: &str| {
        let mut config = server.store_config(name);
        config.create_if_missing = false;
        config
    };

    // Import into it, then rotate: the imported token becomes previous.
    let imported = AwsStore::connect(&store_for("tf/imported")).await.unwrap();
    assert!(imported.load().await.unwrap().current.is_none());
    let t0 = token(0);
    imported.import_current(&t0).await.unwrap();
    assert_settled(&imported.staging_labels().await.unwrap(), &t0, None);
    assert_same_token(
        imported.load().await.unwrap().current.as_ref().unwrap(),
        &t0,
    );
    let t1 = token(1);
    rotate(&imported, &t1, at(100)).await;
    assert_settled(&imported.staging_labels().await.unwrap(), &t1, Some(&t0));
    let state = imported.load().await.unwrap();
    assert_same_token(&state.previous.as_ref().unwrap().token, &t0);

    // Or rotate straight into it.
    let rotated = AwsStore::connect(&store_for("tf/rotated")).await.unwrap();
    let t1 = token(1);
    rotate(&rotated, &t1, at(100)).await;
    assert_settled(&rotated.staging_labels().await.unwrap(), &t1, None);
    let read: CredentialRecord =
        serde_json::from_str(&reader_value(&server, "tf/rotated").await).unwrap();
    assert_same_token(&read, &t1);
}

#[tokio::test]
async fn a_missing_secret_is_not_created_when_the_config_says_so() {
    let server = MotoServer::start();
    let mut config = server.store_config("netsuite/absent");
    config.create_if_missing = false;
    let store = AwsStore::connect(&config).await.unwrap();
    let err = store
        .begin_rotation(&intent_for(&token(1)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Failed);
    let message = err.to_string();
    assert!(message.contains("netsuite/absent"), "{message}");
    assert!(message.contains("begin_rotation"), "{message}");
    assert!(message.contains("create_if_missing"), "{message}");
}

#[tokio::test]
async fn every_step_can_be_repeated() {
    let server = MotoServer::start();
    let store = server.store("netsuite/repeat").await;

    let t0 = token(0);
    store.import_current(&t0).await.unwrap();
    store
        .import_current(&t0)
        .await
        .expect("the same import again");
    assert_conflict(
        store.import_current(&token(9)).await,
        "a second, different import",
    );

    let t1 = token(1);
    store.begin_rotation(&intent_for(&t1)).await.unwrap();
    store
        .begin_rotation(&intent_for(&t1))
        .await
        .expect("begin again");
    store.stage_pending(&t1).await.unwrap();
    store.stage_pending(&t1).await.expect("stage again");
    let mut other = t1.as_tba().unwrap().clone();
    other.token_secret = SecretString::from("ANOTHER-SECRET");
    let other = CredentialRecord::from(other);
    let err = assert_conflict(
        store.stage_pending(&other).await,
        "another token, same rotation",
    );
    assert!(!err.to_string().contains("ANOTHER-SECRET"), "{err}");
    store.promote(t1.rotation_id(), at(100)).await.unwrap();
    store
        .promote(t1.rotation_id(), at(100))
        .await
        .expect("promote again");
    assert_settled(&store.staging_labels().await.unwrap(), &t1, Some(&t0));

    store.mark_previous_revoked(t0.id(), at(150)).await.unwrap();
    store
        .mark_previous_revoked(t0.id(), at(160))
        .await
        .expect("mark again");
    store
        .mark_previous_revoked("not-the-previous", at(170))
        .await
        .expect("another token: no-op");
    let labels = store.staging_labels().await.unwrap();
    let revoked = labels_starting(&labels, "NSTR_REVOKED_");
    assert_eq!(revoked.len(), 1, "{labels:?}");
    assert_eq!(
        store.load().await.unwrap().previous.unwrap().revoked_at,
        Some(at(150))
    );

    // Abandon, twice, leaves current and previous alone and frees the store.
    let t2 = token(2);
    store.begin_rotation(&intent_for(&t2)).await.unwrap();
    store.stage_pending(&t2).await.unwrap();
    store.abandon_rotation(t2.rotation_id()).await.unwrap();
    store
        .abandon_rotation(t2.rotation_id())
        .await
        .expect("abandon again");
    store
        .abandon_rotation(Uuid::new_v4())
        .await
        .expect("another rotation: no-op");
    let labels = store.staging_labels().await.unwrap();
    assert_eq!(version_with(&labels, "AWSPENDING"), None, "{labels:?}");
    assert!(
        labels_starting(&labels, "NSTR_INTENT_").is_empty(),
        "{labels:?}"
    );
    let state = store.load().await.unwrap();
    assert_same_token(state.current.as_ref().unwrap(), &t1);
    assert_same_token(&state.previous.as_ref().unwrap().token, &t0);
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_conflict(
        store.begin_rotation(&intent_for(&t1)).await,
        "restarting a promoted rotation",
    );

    let t3 = token(3);
    rotate(&store, &t3, at(300)).await;
    assert_settled(&store.staging_labels().await.unwrap(), &t3, Some(&t1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_daemons_beginning_at_once_exactly_one_wins() {
    let server = MotoServer::start();
    for (secret, import_first) in [("race/fresh", false), ("race/imported", true)] {
        let a = server.store(secret).await;
        let b = server.store(secret).await;
        if import_first {
            a.import_current(&token(0)).await.unwrap();
        }
        for round in 0..5 {
            let (ta, tb) = (token(round), token(round));
            let (ia, ib) = (intent_for(&ta), intent_for(&tb));
            let (ra, rb) = tokio::join!(a.begin_rotation(&ia), b.begin_rotation(&ib));
            let winner = match (&ra, &rb) {
                (Ok(()), Err(e)) if e.kind == StoreErrorKind::Conflict => &ta,
                (Err(e), Ok(())) if e.kind == StoreErrorKind::Conflict => &tb,
                _ => panic!("{secret} round {round}: expected one winner, got {ra:?} and {rb:?}"),
            };
            let state = a.load().await.unwrap();
            assert_eq!(
                state.intent.as_ref().map(|i| i.rotation_id),
                Some(winner.rotation_id())
            );
            // The loser can no longer stage; the winner can.
            let loser = if winner.rotation_id() == ta.rotation_id() {
                &tb
            } else {
                &ta
            };
            assert_conflict(a.stage_pending(loser).await, "the loser stages");
            a.stage_pending(winner).await.unwrap();
            b.abandon_rotation(winner.rotation_id()).await.unwrap();
        }
        let labels = a.staging_labels().await.unwrap();
        assert!(
            labels_starting(&labels, "NSTR_INTENT_").is_empty(),
            "{labels:?}"
        );
        assert_eq!(version_with(&labels, "AWSPENDING"), None);
    }
}

#[tokio::test]
async fn a_promotion_from_a_stale_read_loses() {
    let server = MotoServer::start();
    let store = server.store("netsuite/stale").await;
    let t0 = token(0);
    store.import_current(&t0).await.unwrap();
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    store.mark_previous_revoked(t0.id(), at(150)).await.unwrap();

    let t2 = token(2);
    store.begin_rotation(&intent_for(&t2)).await.unwrap();
    store.stage_pending(&t2).await.unwrap();
    let stale = token_version_id(t0.rotation_id());
    let err = assert_conflict(
        store
            .promote_expecting_current(t2.rotation_id(), Some(&stale), at(200))
            .await,
        "promote expecting the old current",
    );
    let message = err.to_string();
    assert!(
        message.contains("netsuite/stale") && message.contains("AWSCURRENT"),
        "{message}"
    );
    assert_same_token(store.load().await.unwrap().current.as_ref().unwrap(), &t1);

    assert_conflict(
        store.promote(Uuid::new_v4(), at(200)).await,
        "promote of a rotation that does not hold the lock",
    );
    store.promote(t2.rotation_id(), at(200)).await.unwrap();
    assert_settled(&store.staging_labels().await.unwrap(), &t2, Some(&t1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_always_see_a_whole_token() {
    let server = MotoServer::start();
    let store = server.store("netsuite/readers").await;
    let t0 = token(0);
    store.import_current(&t0).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let client = server.client();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for reads in 0..100_000u32 {
                let finished = done.load(Ordering::SeqCst);
                let value = client
                    .get_secret_value()
                    .secret_id("netsuite/readers")
                    .version_stage("AWSCURRENT")
                    .send()
                    .await
                    .expect("GetSecretValue during rotations");
                let token: CredentialRecord = serde_json::from_str(value.secret_string().unwrap())
                    .expect("AWSCURRENT is always a whole token");
                seen.push(token.id().to_string());
                if finished && reads >= 20 {
                    return seen;
                }
            }
            panic!("the rotations did not finish within the reader's bound");
        })
    };

    let mut issued = vec![t0.clone()];
    for n in 1..=4 {
        let t = token(n);
        rotate(&store, &t, at(n * 100)).await;
        let previous = &issued[issued.len() - 1];
        store
            .mark_previous_revoked(previous.id(), at(n * 100))
            .await
            .unwrap();
        issued.push(t);
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let issued_ids: BTreeSet<_> = issued.iter().map(|t| t.id().to_string().clone()).collect();
    assert!(seen.iter().all(|id| issued_ids.contains(id)), "{seen:?}");
    assert_eq!(seen.last(), Some(&issued[4].id().to_string()));
}

#[tokio::test]
async fn errors_name_the_secret_and_the_operation_but_never_a_value() {
    let server = MotoServer::start();
    server
        .client()
        .create_secret()
        .name("netsuite/foreign")
        .secret_string("hunter2-not-our-json")
        .send()
        .await
        .unwrap();
    let store = server.store("netsuite/foreign").await;
    let err = store.load().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid);
    let message = err.to_string();
    assert!(message.contains("netsuite/foreign"), "{message}");
    assert!(message.contains("GetSecretValue"), "{message}");
    assert!(
        message
            .contains("the secret's AWSCURRENT value is not a netsuite-token-rotator token object"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let store = server.store("netsuite/errors").await;
    let t0 = token(0);
    store.import_current(&t0).await.unwrap();
    let t1 = token(1);
    store.begin_rotation(&intent_for(&t1)).await.unwrap();
    let err = assert_conflict(
        store.begin_rotation(&intent_for(&token(2))).await,
        "second begin",
    );
    let message = err.to_string();
    assert!(
        message.contains("netsuite/errors") && message.contains("begin_rotation"),
        "{message}"
    );
    assert!(
        message.contains(&t1.rotation_id().to_string()),
        "names the holder: {message}"
    );
    for secret in [
        &t0.as_tba().unwrap().token_secret,
        &t1.as_tba().unwrap().token_secret,
    ] {
        assert!(!message.contains(secret.expose_secret()));
    }
}

#[tokio::test]
async fn a_store_that_goes_away_mid_rotation_keeps_its_state() {
    let mut server = MotoServer::start();
    let store = server.store("netsuite/outage").await;
    let t0 = token(0);
    store.import_current(&t0).await.unwrap();

    // Promote while the server is down, then finish after it is back.
    let t1 = token(1);
    store.begin_rotation(&intent_for(&t1)).await.unwrap();
    store.stage_pending(&t1).await.unwrap();
    server.stop();
    let err = store.promote(t1.rotation_id(), at(100)).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    assert!(err.kind.is_transient());
    let message = err.to_string();
    assert!(
        message.contains("netsuite/outage") && message.contains("DescribeSecret"),
        "{message}"
    );
    assert!(!message.contains(t1.as_tba().unwrap().token_secret.expose_secret()));
    assert_eq!(
        store.load().await.unwrap_err().kind,
        StoreErrorKind::Unavailable
    );

    server.restart();
    let state = store.load().await.unwrap();
    assert_same_token(state.current.as_ref().unwrap(), &t0);
    assert_eq!(state.intent, Some(intent_for(&t1)));
    assert_same_token(state.pending.as_ref().unwrap(), &t1);
    store.promote(t1.rotation_id(), at(100)).await.unwrap();
    assert_settled(&store.staging_labels().await.unwrap(), &t1, Some(&t0));
    store.mark_previous_revoked(t0.id(), at(150)).await.unwrap();

    // Abandon while it is down, then after it is back.
    let t2 = token(2);
    store.begin_rotation(&intent_for(&t2)).await.unwrap();
    store.stage_pending(&t2).await.unwrap();
    server.stop();
    let err = store.abandon_rotation(t2.rotation_id()).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    server.restart();
    assert_eq!(store.load().await.unwrap().intent, Some(intent_for(&t2)));
    store.abandon_rotation(t2.rotation_id()).await.unwrap();
    let state = store.load().await.unwrap();
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_same_token(state.current.as_ref().unwrap(), &t1);
    assert_eq!(state.previous.unwrap().revoked_at, Some(at(150)));
}

/// The race CI once caught: daemon B reads an empty secret, then daemon A begins, creates the
/// lock and moves it to its intent, all before B's PutSecretValue of the lock version arrives.
/// B then finds the lock version without the lock; it must lose, not attach the lock again
/// (AWS would refuse that, but moto_server attaches it, and both rotations went on).
/// B talks to moto through a proxy that holds its second request (the lock's PutSecretValue)
/// until A is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_lock_creation_arrives_after_anothers_begin_loses() {
    let server = MotoServer::start();
    let secret = "race/stale-lock";
    server.create_empty_secret(secret).await;
    let a = server.store(secret).await;
    let proxy = holding_proxy::HoldingProxy::start(&server.endpoint_url()).await;
    let b = AwsStore::connect(&AwsStoreConfig {
        endpoint_url: Some(proxy.address()),
        ..server.store_config(secret)
    })
    .await
    .unwrap();

    let (ta, tb) = (token(1), token(2));
    let mut describe = proxy.hold(axum::http::Method::POST, "/");
    let b_begins = tokio::spawn({
        let intent = intent_for(&tb);
        async move { b.begin_rotation(&intent).await }
    });
    describe.arrived().await;
    let mut put_lock = proxy.hold(axum::http::Method::POST, "/");
    describe.release();
    put_lock.arrived().await;

    a.begin_rotation(&intent_for(&ta))
        .await
        .expect("A begins while B waits");
    put_lock.release();
    let b_result = b_begins.await.unwrap();
    match &b_result {
        Err(e) if e.kind == StoreErrorKind::Conflict => {}
        other => panic!("B must lose to A's rotation, got {other:?}"),
    }
    let state = a.load().await.unwrap();
    assert_eq!(
        state.intent.as_ref().map(|i| i.rotation_id),
        Some(ta.rotation_id())
    );
}

fn latch(reason: &str) -> LoginLatch {
    LoginLatch {
        at: at(42),
        login: "k9Xw+fingerprint/=".into(),
        reason: reason.into(),
    }
}

/// The secret's tags as `DescribeSecret` gives them, or `None` for a missing secret.
async fn tags(server: &MotoServer, secret_id: &str) -> Option<BTreeMap<String, String>> {
    let described = server
        .client()
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .ok()?;
    Some(
        described
            .tags()
            .iter()
            .map(|t| {
                let key = t.key().unwrap_or_default().to_string();
                (key, t.value().unwrap_or_default().to_string())
            })
            .collect(),
    )
}

#[tokio::test]
async fn the_login_latch_is_a_tag_that_rotations_keep_and_readers_never_see() {
    let server = MotoServer::start();
    let secret = "netsuite/latched";
    let mut config = server.store_config(secret);
    config.tags = BTreeMap::from([("team".to_string(), "erp".to_string())]);
    let store = AwsStore::connect(&config).await.unwrap();

    // Clearing on a missing secret does nothing; setting creates it (no value) and tags it.
    store.set_login_latch(None).await.unwrap();
    assert_eq!(tags(&server, secret).await, None, "still no secret");
    store.set_login_latch(Some(&latch("401 A"))).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().login_latch,
        Some(latch("401 A"))
    );
    assert!(
        store.staging_labels().await.unwrap().is_empty(),
        "no version"
    );
    let expected_tags = BTreeMap::from([
        ("team".to_string(), "erp".to_string()),
        (
            LOGIN_LATCH_TAG.to_string(),
            "2025-06-15T15:07:22Z 18:k9Xw+fingerprint/= 401 A".to_string(),
        ),
    ]);
    assert_eq!(tags(&server, secret).await, Some(expected_tags.clone()));

    // A rotation (begin, stage, promote) and an abandon keep it; labels and the value readers
    // read do not change with it.
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let readers_saw = reader_value(&server, secret).await;
    let labels = store.staging_labels().await.unwrap();
    store.set_login_latch(Some(&latch("403 B"))).await.unwrap();
    assert_eq!(reader_value(&server, secret).await, readers_saw);
    assert!(!readers_saw.contains("403 B"), "{readers_saw}");
    assert_eq!(store.staging_labels().await.unwrap(), labels);
    let t2 = token(2);
    store.begin_rotation(&intent_for(&t2)).await.unwrap();
    store.stage_pending(&t2).await.unwrap();
    store.abandon_rotation(t2.rotation_id()).await.unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(state.login_latch, Some(latch("403 B")));
    assert_same_token(state.current.as_ref().unwrap(), &t1);
    assert!(state.intent.is_none() && state.pending.is_none());

    // Another process sees it and clears it; the secret's other tags stay.
    let other = server.store(secret).await;
    assert_eq!(
        other.load().await.unwrap().login_latch,
        Some(latch("403 B"))
    );
    other.set_login_latch(None).await.unwrap();
    other.set_login_latch(None).await.unwrap();
    assert_eq!(store.load().await.unwrap().login_latch, None);
    assert_eq!(
        tags(&server, secret).await,
        Some(BTreeMap::from([("team".to_string(), "erp".to_string())]))
    );

    // A tag value this program did not write is reported, and can be cleared.
    server
        .client()
        .tag_resource()
        .secret_id(secret)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(LOGIN_LATCH_TAG)
                .value("yes")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let err = store.load().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains(LOGIN_LATCH_TAG), "{err}");
    store.set_login_latch(None).await.unwrap();
    assert_eq!(store.load().await.unwrap().login_latch, None);

    // Where this store may not create the secret, a latch on a missing one fails as begin would.
    let mut config = server.store_config("netsuite/absent");
    config.create_if_missing = false;
    let absent = AwsStore::connect(&config).await.unwrap();
    let err = absent
        .set_login_latch(Some(&latch("401 A")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Failed, "{err}");
    assert!(err.to_string().contains("create_if_missing"), "{err}");
}

#[tokio::test]
async fn check_writable_moves_no_label_and_reports_a_secret_it_may_not_create() {
    let server = MotoServer::start();

    // Missing secret: nothing to move and nothing created; refused where it cannot be created.
    let store = server.store("netsuite/checked").await;
    store.check_writable().await.unwrap();
    assert_eq!(tags(&server, "netsuite/checked").await, None, "not created");
    let mut config = server.store_config("netsuite/absent");
    config.create_if_missing = false;
    let absent = AwsStore::connect(&config).await.unwrap();
    let err = absent.check_writable().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Failed, "{err}");
    assert!(err.to_string().contains("check_writable"), "{err}");
    assert!(err.to_string().contains("create_if_missing"), "{err}");

    // A secret with no value and no lock yet.
    server.create_empty_secret("tf/empty").await;
    server
        .store("tf/empty")
        .await
        .check_writable()
        .await
        .unwrap();

    // Settled, and in the middle of a rotation (the lock on the intent): nothing moves.
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let labels = store.staging_labels().await.unwrap();
    store.check_writable().await.unwrap();
    assert_eq!(store.staging_labels().await.unwrap(), labels);
    let t2 = token(2);
    store.begin_rotation(&intent_for(&t2)).await.unwrap();
    store.stage_pending(&t2).await.unwrap();
    let labels = store.staging_labels().await.unwrap();
    let readers_saw = reader_value(&server, "netsuite/checked").await;
    store.check_writable().await.unwrap();
    assert_eq!(store.staging_labels().await.unwrap(), labels);
    assert_eq!(reader_value(&server, "netsuite/checked").await, readers_saw);
    store.promote(t2.rotation_id(), at(200)).await.unwrap();
    assert_settled(&store.staging_labels().await.unwrap(), &t2, Some(&t1));
}

/// The `secretsmanager:` actions `docs/stores-aws.md` lists under "IAM permissions".
fn as_strs(actions: &[String]) -> Vec<&str> {
    actions.iter().map(String::as_str).collect()
}

fn documented_actions() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/stores-aws.md"))
        .expect("docs/stores-aws.md");
    let section = doc
        .split("## IAM permissions")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("an IAM permissions section");
    let mut actions: Vec<String> = section
        .split('`')
        .filter(|word| {
            word.strip_prefix("secretsmanager:")
                .is_some_and(|action| action.chars().all(|c| c.is_ascii_alphabetic()))
        })
        .map(str::to_string)
        .collect();
    actions.sort();
    actions.dedup();
    actions
}

#[tokio::test]
async fn with_iam_enforced_the_documented_policy_suffices_and_a_readers_policy_is_denied() {
    let server = MotoServer::start();
    let secret = "netsuite/iam";
    let documented = documented_actions();
    for action in [
        "TagResource",
        "UntagResource",
        "UpdateSecretVersionStage",
        "CreateSecret",
    ] {
        assert!(
            documented.contains(&format!("secretsmanager:{action}")),
            "{documented:?}"
        );
    }
    let rotator = server
        .iam_user_client("rotator", &as_strs(&documented))
        .await;
    let no_tags: Vec<String> = documented
        .iter()
        .filter(|a| !a.ends_with("TagResource"))
        .cloned()
        .collect();
    let untagged = server.iam_user_client("no-tags", &as_strs(&no_tags)).await;
    let reader = server
        .iam_user_client(
            "reader",
            &[
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
            ],
        )
        .await;
    server.enforce_iam().await;
    let config = server.store_config(secret);
    let store = AwsStore::with_client(rotator, &config);

    // Everything the rotator does works under the documented policy.
    store
        .check_writable()
        .await
        .expect("check of a missing secret");
    store
        .set_login_latch(Some(&latch("401 A")))
        .await
        .expect("latch creates the secret");
    let t1 = token(1);
    rotate(&store, &t1, at(100)).await;
    let t2 = token(2);
    rotate(&store, &t2, at(200)).await;
    store.check_writable().await.expect("check after rotations");
    store.mark_previous_revoked(t1.id(), at(250)).await.unwrap();
    store.set_login_latch(None).await.unwrap();
    let state = store.load().await.unwrap();
    assert_same_token(state.current.as_ref().unwrap(), &t2);
    assert_eq!(state.login_latch, None);
    let labels = store.staging_labels().await.unwrap();

    // A reader's policy reads, and is told the store cannot be written; nothing moved.
    let read_only = AwsStore::with_client(reader, &config);
    assert_same_token(
        read_only.load().await.unwrap().current.as_ref().unwrap(),
        &t2,
    );
    let err = read_only.check_writable().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("check_writable: UpdateSecretVersionStage"),
        "{message}"
    );
    assert!(message.contains(secret), "{message}");
    assert!(
        !message.contains(t2.as_tba().unwrap().token_secret.expose_secret()),
        "{message}"
    );
    let err = read_only
        .set_login_latch(Some(&latch("401 A")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert_eq!(store.staging_labels().await.unwrap(), labels);

    // Without the tag actions the latch cannot be kept, which is why the policy lists them.
    let no_tag_store = AwsStore::with_client(untagged, &config);
    let err = no_tag_store
        .set_login_latch(Some(&latch("401 A")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
    assert!(
        err.to_string().contains("set_login_latch: TagResource"),
        "{err}"
    );
}
