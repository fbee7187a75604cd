//! An M2M integration's certificate record in each store: AWS Secrets Manager (a real
//! moto_server), Vault KV v1 and KV v2 (a real OpenBao server), each
//! bootstrapped by import and rotated twice through the engine against the simulator, with the
//! reader-facing value holding exactly the documented keys and a key that gets an access token.

mod common;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/openbao.rs"]
mod openbao;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{M2M_READER_KEYS, Recorder, test_client_options};
use netsuite_token_rotator::cli::demo::demo_m2m_integration;
use netsuite_token_rotator::netsuite::NetSuiteClient;
use netsuite_token_rotator::netsuite::m2m::KeyKind;
use netsuite_token_rotator::rotation::Engine;
use netsuite_token_rotator::secret::SecretRef;
use netsuite_token_rotator::sim::{Seed, SimHandle, Simulator};
use netsuite_token_rotator::store::SecretStore;
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStoreConfig, connect};
use serde_json::Value;

const PATH: &str = "netsuite/erp-m2m";
const KV2_TOKEN: &str = "m2m-test-token";

fn vault_config(address: &str, token: &str, mount: &str, kv_version: u8) -> VaultStoreConfig {
    VaultStoreConfig {
        address: address.to_string(),
        mount: mount.to_string(),
        path: PATH.to_string(),
        kv_version,
        namespace: None,
        ca_cert: None,
        auth: VaultAuth::Token {
            token: SecretRef::Literal(token.into()),
        },
    }
}

/// Import, two rotations, and the reader's value after each (`read` fetches it as a reader
/// would): the documented keys, and the certificate ID the store calls current.
async fn rotate_through(store: Arc<dyn SecretStore>, read: impl AsyncFn() -> Value) {
    let sim: SimHandle = Simulator::start(Seed::demo()).await.unwrap();
    let engine = Engine::new(
        Arc::new(demo_m2m_integration(&sim.base_url(), Duration::ZERO)),
        NetSuiteClient::new(test_client_options()).unwrap(),
        store.clone(),
        Arc::new(Recorder::default()),
    );
    let (id, first) = common::admin_upload(&sim, KeyKind::EcP256);
    engine
        .import_certificate(id.clone(), first.private_key, Some(first.certificate))
        .await
        .expect("import");
    assert_eq!(read().await["certificate_id"], id.as_str());
    for _ in 0..2 {
        let rotated = engine.rotate().await.expect("rotation");
        let value = read().await;
        let keys: BTreeSet<&str> = value
            .as_object()
            .expect("one JSON object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, BTreeSet::from(M2M_READER_KEYS));
        assert_eq!(value["certificate_id"], rotated.token_id.as_str());
        let active: Vec<String> = sim
            .sim()
            .inspect()
            .certificates
            .iter()
            .filter(|c| c.is_active())
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(active, vec![rotated.token_id.clone()]);
        engine.verify_current().await.expect("the stored key works");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_holds_the_certificate_record() {
    let server = moto::MotoServer::start();
    let store: Arc<dyn SecretStore> = Arc::new(server.store("netsuite/erp-m2m").await);
    let client = server.client();
    rotate_through(store, async || {
        let value = client
            .get_secret_value()
            .secret_id("netsuite/erp-m2m")
            .version_stage("AWSCURRENT")
            .send()
            .await
            .expect("GetSecretValue");
        serde_json::from_str(value.secret_string().unwrap()).unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv1_holds_the_certificate_record() {
    let vault = openbao::OpenBao::start().await;
    vault.enable_kv1("kv1").await;
    let store: Arc<dyn SecretStore> = Arc::new(
        connect(&vault_config(&vault.address, &vault.root_token, "kv1", 1))
            .await
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let url = format!("{}/v1/kv1/{PATH}", vault.address);
    let token = vault.root_token.clone();
    rotate_through(store, async || {
        let answer: Value = http
            .get(&url)
            .header("X-Vault-Token", &token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|body| serde_json::from_slice(&body).unwrap())
            .unwrap();
        answer["data"].clone()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv2_holds_the_certificate_record() {
    let vault = openbao::OpenBao::start_with_root_token(KV2_TOKEN).await;
    let store: Arc<dyn SecretStore> = Arc::new(
        connect(&vault_config(&vault.address, KV2_TOKEN, "secret", 2))
            .await
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let url = format!("{}/v1/secret/data/{PATH}", vault.address);
    rotate_through(store, async || {
        let answer: Value = http
            .get(&url)
            .header("X-Vault-Token", KV2_TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|body| serde_json::from_slice(&body).unwrap())
            .unwrap();
        answer["data"]["data"].clone()
    })
    .await;
}
