//! The store scenarios again, against the real `hashicorp/vault` (KV v2, dev mode) and
//! `motoserver/moto` images, through testcontainers. They need a Docker engine, so they build
//! only with `--features docker-tests`; `scripts/test.sh` turns the feature on when `docker info`
//! answers and otherwise prints that these were skipped, and why (they are never counted as
//! passed without running).
#![cfg(feature = "docker-tests")]

mod common;
#[path = "support/rotation_rig.rs"]
mod rotation_rig;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use netsuite_token_rotator::rotation::{Engine, PreviousFate};
use netsuite_token_rotator::secret::SecretRef;
use netsuite_token_rotator::store::SecretStore;
use netsuite_token_rotator::store::aws::{AwsStore, AwsStoreConfig};
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStoreConfig, connect};
use rotation_rig::{HookedStore, Rendezvous, Rig, race_round};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const NO_GRACE: Duration = Duration::ZERO;
const ROOT_TOKEN: &str = "docker-tests-root";

async fn vault() -> (ContainerAsync<GenericImage>, String) {
    let container = GenericImage::new("hashicorp/vault", "1.17")
        .with_exposed_port(8200.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Vault server started!"))
        .with_env_var("VAULT_DEV_ROOT_TOKEN_ID", ROOT_TOKEN)
        .with_env_var("VAULT_DEV_LISTEN_ADDRESS", "0.0.0.0:8200")
        .start()
        .await
        .expect("the hashicorp/vault image starts");
    let port = container.get_host_port_ipv4(8200).await.unwrap();
    (container, format!("http://127.0.0.1:{port}"))
}

async fn vault_store(address: &str) -> Arc<dyn SecretStore> {
    // Dev mode mounts KV v2 at `secret/`.
    let config = VaultStoreConfig {
        address: address.to_string(),
        mount: "secret".into(),
        path: "netsuite/erp-sync".into(),
        kv_version: 2,
        namespace: None,
        ca_cert: None,
        auth: VaultAuth::Token {
            token: SecretRef::Literal(ROOT_TOKEN.into()),
        },
    };
    Arc::new(connect(&config).await.expect("connect to Vault"))
}

async fn moto() -> (ContainerAsync<GenericImage>, String) {
    let container = GenericImage::new("motoserver/moto", "5.1.4")
        .with_exposed_port(5000.tcp())
        .with_wait_for(WaitFor::message_on_stderr("Running on"))
        .start()
        .await
        .expect("the motoserver/moto image starts");
    let port = container.get_host_port_ipv4(5000).await.unwrap();
    (container, format!("http://127.0.0.1:{port}"))
}

fn aws_store(endpoint: &str, secret_id: &str) -> Arc<dyn SecretStore> {
    let sdk = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "docker-tests",
        ))
        .build();
    let config = AwsStoreConfig {
        secret_id: secret_id.into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
        kms_key_id: None,
        tags: Default::default(),
        create_if_missing: true,
    };
    Arc::new(AwsStore::with_client(
        aws_sdk_secretsmanager::Client::from_conf(sdk),
        &config,
    ))
}

/// Bootstrap and two rotations: after each, the current token works and is the only live one.
async fn bootstrap_and_two_rotations(rig: &Rig, engine: &Engine, store: &dyn SecretStore) {
    let first = engine.rotate().await.expect("bootstrap");
    assert!(matches!(first.previous, PreviousFate::None));
    let mut previous = first.token_id;
    for round in 1..=2 {
        let rotated = engine.rotate().await.expect("rotation");
        assert!(
            matches!(&rotated.previous, PreviousFate::Revoked { token_id } if *token_id == previous),
            "round {round}: {:?}",
            rotated.previous
        );
        let state = store.load().await.unwrap();
        assert_eq!(state.current.as_ref().unwrap().id(), rotated.token_id);
        rig.assert_only_current_live(&state).await;
        previous = rotated.token_id;
    }
}

/// Two engines on one store, meeting at the check-and-set: exactly one wins each round.
async fn two_engines_race(rig: &Rig, a: Arc<dyn SecretStore>, b: Arc<dyn SecretStore>) {
    let a = Arc::new(HookedStore::new(a));
    let b = Arc::new(HookedStore::new(b));
    let (engine_a, engine_b) = (rig.engine(a.clone()), rig.engine(b.clone()));
    engine_a.rotate().await.expect("bootstrap");
    let meeting = Rendezvous::new(2);
    a.meet_before_begin(meeting.clone());
    b.meet_before_begin(meeting.clone());
    for round in 0..3 {
        race_round(rig, (&engine_a, &engine_b), a.as_ref(), &meeting, round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_vault_kv2_bootstrap_then_two_rotations() {
    let (_container, address) = vault().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = vault_store(&address).await;
    let engine = rig.engine(store.clone());
    bootstrap_and_two_rotations(&rig, &engine, store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_vault_kv2_two_engines_never_both_win() {
    let (_container, address) = vault().await;
    let rig = Rig::start(NO_GRACE).await;
    two_engines_race(
        &rig,
        vault_store(&address).await,
        vault_store(&address).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_moto_image_bootstrap_then_two_rotations() {
    let (_container, endpoint) = moto().await;
    let rig = Rig::start(NO_GRACE).await;
    let store = aws_store(&endpoint, "netsuite/erp-sync");
    let engine = rig.engine(store.clone());
    bootstrap_and_two_rotations(&rig, &engine, store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_moto_image_two_engines_never_both_win() {
    let (_container, endpoint) = moto().await;
    let rig = Rig::start(NO_GRACE).await;
    let secret = "netsuite/race";
    two_engines_race(
        &rig,
        aws_store(&endpoint, secret),
        aws_store(&endpoint, secret),
    )
    .await;
}
