//! Hostile input for every parser that reads something from outside the process, with proptest
//! (cargo fuzz needs a nightly toolchain, which this machine does not have): the config parser,
//! NetSuite's response bodies and `WWW-Authenticate` values, the simulator's NLAuth and OAuth
//! header parsers, and the three stores reading values someone else may have written. Each
//! property is "never panics" (a panic fails the case), plus a sanity check that the parser
//! still accepts its valid seed, so a parser that refuses everything cannot pass. Inputs are
//! arbitrary bytes and mutations (insert, delete, replace) of valid inputs, so the cases reach
//! deep into each grammar. Every test prints its case count (`cargo test -- --nocapture`).
//!
//! The same parsers also have libFuzzer targets in `fuzz/` (`scripts/fuzz.sh`); the last tests
//! here check that those targets' seeds are inputs the parsers accept, and run mutations of the
//! store seeds through the stores' pure reading entry points.

mod common;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/openbao.rs"]
mod openbao;

use common::demo;
use netsuite_token_rotator::config::Config;
use netsuite_token_rotator::netsuite::parse_entry as ns;
use netsuite_token_rotator::netsuite::{TbaCredentials, authorization_header, nlauth_header};
use netsuite_token_rotator::secret::{ExposeSecret, SecretRef, SecretString};
use netsuite_token_rotator::sim::parse_entry as sim;
use netsuite_token_rotator::store::SecretStore;
use netsuite_token_rotator::store::file::{FileStore, FileStoreConfig};
use netsuite_token_rotator::store::parse_entry as store_entry;
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStoreConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Map, Value, json};

/// Cases per pure-parser property; the store properties make network calls and run fewer.
const CASES: u32 = 2_000;
const STORE_CASES: u32 = 150;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

/// One edit of a byte string: 0 insert, 1 delete, 2 replace, at a position taken modulo length.
type Edit = (u8, usize, u8);

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((0u8..3, any::<usize>(), any::<u8>()), 1..12)
}

/// Applies edits; bytes the grammars care about are favoured over uniform noise.
fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\"'=,{}[]\\%\n\r\t :#.0-\x00\xff";
    let mut bytes = seed.to_vec();
    for &(op, at, byte) in edits {
        let byte = if byte % 2 == 0 {
            INTERESTING[usize::from(byte) % INTERESTING.len()]
        } else {
            byte
        };
        match op {
            0 => bytes.insert(at % (bytes.len() + 1), byte),
            1 if !bytes.is_empty() => {
                bytes.remove(at % bytes.len());
            }
            _ if !bytes.is_empty() => {
                let i = at % bytes.len();
                bytes[i] = byte;
            }
            _ => bytes.push(byte),
        }
    }
    bytes
}

fn mutated_text(seed: &'static str) -> impl Strategy<Value = String> {
    edits().prop_map(move |e| String::from_utf8_lossy(&mutate(seed.as_bytes(), &e)).into_owned())
}

/// Arbitrary JSON, with keys drawn mostly from the names the parsers look for.
fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(keys).prop_map(str::to_string),
            1 => ".{0,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/json".to_string()),
        Just("application/json; charset=utf-8".to_string()),
        Just("text/html".to_string()),
        Just(String::new()),
        ".{0,30}",
    ]
}

/// Runs a property and prints how many cases it took.
fn check<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let mut runner = runner(cases);
    runner
        .run(&strategy, |input| {
            test(input);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    println!("fuzz {name}: {cases} cases, no panic");
}

const VALID_CONFIG: &str = r#"
[daemon]
listen = "127.0.0.1:9464"
max_concurrent_rotations = 4
[telemetry]
log_format = "json"
[[alerts]]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
secret = { env = "HOOK_SECRET" }
[[integrations]]
name = "erp-sync"
account_id = "123456_SB1"
endpoint = "http://127.0.0.1:8700"
consumer_key = { env = "CK" }
consumer_secret = { credential = "cs" }
schedule = "0 0 3 * * Sun"
revoke_after = "1h"
token_name_prefix = "erp"
[integrations.login]
email = "integration@example.com"
password = { file = "/run/pw" }
role = "1001"
totp_secret = { env = "TOTP" }
[integrations.expect]
role_id = "1001"
[integrations.store]
kind = "vault"
address = "https://vault.internal:8200"
mount = "secret"
path = "netsuite/erp-sync"
kv_version = 2
auth = { method = "approle", role_id = { env = "R" }, secret_id = { env = "S" } }
"#;

#[test]
fn config_parser_never_panics() {
    assert!(Config::parse(VALID_CONFIG, "seed.toml").is_ok());
    let example = include_str!("../config/example.toml");
    assert!(Config::parse(example, "example.toml").is_ok());
    check("config: arbitrary text", CASES, ".{0,400}", |text| {
        let _ = Config::parse(&text, "fuzz.toml");
    });
    check(
        "config: mutated valid config",
        CASES,
        mutated_text(VALID_CONFIG),
        |text| {
            let _ = Config::parse(&text, "fuzz.toml");
        },
    );
    check(
        "config: mutated config/example.toml",
        CASES,
        mutated_text(include_str!("../config/example.toml")),
        |text| {
            let _ = Config::parse(&text, "fuzz.toml");
        },
    );
}

const ISSUED: &str = r#"{"tokenId":"0123456789abcdef","tokenSecret":"fedcba9876543210"}"#;
const INFO: &str = r#"{"companyName":"Demo","companyId":"123456_SB1","roleName":"Admin","roleId":1001,"entityId":"-5"}"#;
const DC_URLS: &str = r#"{"restDomain":"https://x.restlets.api.netsuite.com","webservicesDomain":"https://x","systemDomain":"https://x"}"#;
const ERROR_BODY: &str =
    r#"{"error":{"code":"INVALID_LOGIN_ATTEMPT","message":"Invalid login attempt."}}"#;
const RESPONSE_KEYS: &[&str] = &[
    "tokenId",
    "tokenSecret",
    "TokenId",
    "companyName",
    "companyId",
    "roleName",
    "roleId",
    "entityId",
    "restDomain",
    "webservicesDomain",
    "systemDomain",
    "error",
    "code",
    "message",
    "o:errorCode",
    "detail",
    "o:errorDetails",
];

#[test]
fn netsuite_response_parsers_never_panic() {
    assert!(ns::issued_token(ISSUED.as_bytes(), "application/json"));
    assert!(ns::token_info(INFO.as_bytes(), "application/json"));
    assert!(ns::datacenter_urls(DC_URLS.as_bytes(), "application/json"));
    assert!(ns::error_detail(ERROR_BODY.as_bytes()));
    assert!(ns::revocation_body(b"", "application/json"));
    assert!(!ns::revocation_body(b"<html>", "text/html"));
    let all = |body: &[u8], ct: &str| {
        let _ = ns::revocation_body(body, ct);
        let _ = ns::issued_token(body, ct);
        let _ = ns::token_info(body, ct);
        let _ = ns::datacenter_urls(body, ct);
        let _ = ns::error_detail(body);
    };
    check(
        "responses: arbitrary bytes",
        CASES,
        (prop::collection::vec(any::<u8>(), 0..300), content_type()),
        |(body, ct)| all(&body, &ct),
    );
    check(
        "responses: arbitrary JSON with NetSuite keys",
        CASES,
        (json_value(RESPONSE_KEYS), content_type()),
        |(value, ct)| all(value.to_string().as_bytes(), &ct),
    );
    for seed in [ISSUED, INFO, DC_URLS, ERROR_BODY] {
        check(
            "responses: mutated valid body",
            CASES / 2,
            (edits(), content_type()),
            |(e, ct)| all(&mutate(seed.as_bytes(), &e), &ct),
        );
    }
    // Deep nesting must not overflow the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    all(deep.as_bytes(), "application/json");
    let deep_objects = "{\"error\":".repeat(50_000);
    all(deep_objects.as_bytes(), "application/json");
}

const CHALLENGE: &str = r#"OAuth realm="123456_SB1", error="token_rejected", error_description="Invalid login attempt.""#;

#[test]
fn www_authenticate_and_failed_answer_classification_never_panic() {
    assert_eq!(
        ns::www_authenticate_error(CHALLENGE).as_deref(),
        Some("token_rejected")
    );
    check("www-authenticate: arbitrary", CASES, ".{0,200}", |value| {
        let _ = ns::www_authenticate_error(&value);
    });
    check(
        "www-authenticate: mutated challenge",
        CASES,
        mutated_text(CHALLENGE),
        |value| {
            let _ = ns::www_authenticate_error(&value);
        },
    );
    check(
        "failed answers: status, headers and body",
        CASES,
        (
            0u16..1100,
            prop::option::of(prop_oneof![mutated_text(CHALLENGE), ".{0,60}"]),
            prop::option::of(prop_oneof![
                "[0-9]{0,25}",
                ".{0,20}",
                Just("18446744073709551616".to_string())
            ]),
            prop::option::of(prop_oneof![
                json_value(RESPONSE_KEYS).prop_map(|v| v.to_string().into_bytes()),
                prop::collection::vec(any::<u8>(), 0..100),
            ]),
        ),
        |(status, www, retry, body)| {
            let _ = ns::classify_failed_answer(
                status,
                www.as_deref(),
                retry.as_deref(),
                body.as_deref(),
            );
        },
    );
}

fn valid_nlauth() -> &'static str {
    let login = netsuite_token_rotator::netsuite::NlauthLogin {
        email: "it+fuzz@example.com".into(),
        password: SecretString::from("p@ss, \"word\"=%"),
        role: demo::ROLE_ID.into(),
        totp_secret: None,
    };
    let account = netsuite_token_rotator::netsuite::AccountId::parse(demo::ACCOUNT).unwrap();
    let header = nlauth_header(&account, &login, Some("123456"));
    Box::leak(header.expose_secret().to_string().into_boxed_str())
}

fn valid_oauth() -> &'static str {
    let creds = TbaCredentials {
        consumer_key: SecretString::from(demo::CONSUMER_KEY),
        consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
        token_id: "0123456789abcdef".into(),
        token_secret: SecretString::from("fedcba9876543210"),
    };
    let header = authorization_header(
        "GET",
        "https://123456-sb1.restlets.api.netsuite.com/rest/tokeninfo?a=b%20c",
        "123456_SB1",
        &creds,
        1_700_000_000,
        "n0nce",
    )
    .expect("OAuth header");
    Box::leak(header.into_boxed_str())
}

#[test]
fn simulator_header_parsers_never_panic() {
    let nlauth = valid_nlauth();
    let oauth = valid_oauth();
    assert!(sim::nlauth_header(nlauth), "{nlauth}");
    assert!(sim::oauth_header(oauth).is_some());
    check("sim NLAuth: arbitrary", CASES, ".{0,200}", |h| {
        let _ = sim::nlauth_header(&h);
    });
    check(
        "sim NLAuth: mutated valid",
        CASES,
        mutated_text(nlauth),
        |h| {
            let _ = sim::nlauth_header(&h);
        },
    );
    check("sim OAuth: arbitrary", CASES, ".{0,200}", |h| {
        let _ = sim::oauth_header(&h);
    });
    check(
        "sim OAuth: mutated valid",
        CASES,
        mutated_text(oauth),
        |h| {
            let _ = sim::oauth_header(&h);
        },
    );
    check(
        "sim query string: arbitrary",
        CASES,
        "[a-z=&%0-9A-F+.]{0,80}|.{0,80}",
        |q| {
            let _ = sim::query(&q);
        },
    );
}

const STORE_KEYS: &[&str] = &[
    "account_id",
    "realm",
    "consumer_key",
    "consumer_secret",
    "token_id",
    "token_secret",
    "issued_at",
    "rotation_id",
    "current",
    "previous",
    "pending",
    "intent",
    "revoke_after",
    "revoked_at",
    "token",
    "started_at",
    "token_name",
    "netsuite_token_rotator",
    "netsuite_token_rotator_intent",
];

fn valid_record() -> Value {
    json!({
        "account_id": demo::ACCOUNT, "realm": demo::ACCOUNT,
        "consumer_key": "ck", "consumer_secret": "cs",
        "token_id": "0123456789abcdef", "token_secret": "fedcba9876543210",
        "issued_at": "2026-11-23T10:00:00Z",
        "rotation_id": "7f1c1a0e-6d1f-4a43-9d1c-0e7a3c3b9a11"
    })
}

/// Mutated JSON text of a valid record, arbitrary JSON, or arbitrary bytes.
fn store_value() -> impl Strategy<Value = Vec<u8>> {
    let record = valid_record().to_string();
    let seed: &'static str = Box::leak(record.into_boxed_str());
    prop_oneof![
        edits().prop_map(move |e| mutate(seed.as_bytes(), &e)),
        json_value(STORE_KEYS).prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

#[test]
fn file_store_reading_hostile_files_never_panics() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let state_path = dir.path().join("token.json.state.json");
    let store = FileStore::new(&FileStoreConfig { path: path.clone() });
    // The seed: a real store after a real import, so mutations start from real files.
    rt.block_on(async {
        let record: netsuite_token_rotator::store::TokenRecord =
            serde_json::from_value(valid_record()).unwrap();
        store.import_current(&record.clone().into()).await.unwrap();
        // One promotion and one staged rotation fill every part of the state file.
        for n in 1..=2u128 {
            let rotation_id = uuid::Uuid::from_u128(n);
            let intent = netsuite_token_rotator::store::Intent {
                rotation_id,
                token_name: format!("fuzz-{rotation_id}"),
                started_at: chrono::Utc::now(),
                owner: "host/1/0".into(),
            };
            store.begin_rotation(&intent).await.unwrap();
            let mut next = record.clone();
            next.rotation_id = rotation_id;
            next.token_id = format!("token-{n}");
            store.stage_pending(&next.into()).await.unwrap();
            if n == 1 {
                store
                    .promote(rotation_id, chrono::Utc::now())
                    .await
                    .unwrap();
            }
        }
        let state = store.load().await.unwrap();
        assert!(state.current.is_some() && state.previous.is_some() && state.pending.is_some());
    });
    let real_state = std::fs::read(&state_path).unwrap();
    let real_reader = std::fs::read(&path).unwrap();
    let state_seed: &'static [u8] = Box::leak(real_state.into_boxed_slice());
    check(
        "file store: hostile reader and state files",
        STORE_CASES * 4,
        (
            prop_oneof![
                edits().prop_map(move |e| mutate(state_seed, &e)),
                json_value(STORE_KEYS).prop_map(|v| v.to_string().into_bytes()),
            ],
            prop_oneof![Just(real_reader.clone()), store_value()],
        ),
        |(state, reader)| {
            std::fs::write(&state_path, &state).unwrap();
            std::fs::write(&path, &reader).unwrap();
            rt.block_on(async {
                let _ = store.load().await;
                let _ = store.abandon_rotation(uuid::Uuid::from_u128(7)).await;
            });
        },
    );
}

#[test]
fn vault_store_reading_hostile_secrets_never_panics() {
    const TOKEN: &str = "fuzz-token";
    const PATH: &str = "netsuite/fuzz";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (vault, store) = rt.block_on(async {
        let vault = openbao::OpenBao::start_with_root_token(TOKEN).await;
        let config = VaultStoreConfig {
            address: vault.address.clone(),
            mount: "secret".to_string(),
            path: PATH.to_string(),
            kv_version: 2,
            namespace: None,
            ca_cert: None,
            auth: VaultAuth::Token {
                token: SecretRef::Literal(TOKEN.into()),
            },
        };
        let store = netsuite_token_rotator::store::vault::connect(&config)
            .await
            .expect("connect to OpenBao");
        (vault, store)
    });
    let as_map = |bytes: &[u8]| match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => map,
        Ok(other) => Map::from_iter([("value".to_string(), other)]),
        Err(_) => Map::from_iter([(
            "token_id".to_string(),
            Value::String(String::from_utf8_lossy(bytes).into_owned()),
        )]),
    };
    check(
        "vault store: hostile current and rotation documents",
        STORE_CASES,
        (store_value(), prop::option::of(json_value(STORE_KEYS))),
        |(current, rotation)| {
            rt.block_on(async {
                // Written as another client would; whatever OpenBao takes, the store reads.
                let body = json!({"data": as_map(&current)});
                vault
                    .api("POST", &format!("secret/data/{PATH}"), Some(body))
                    .await;
                if let Some(Value::Object(rotation)) = rotation {
                    let body = json!({"data": rotation});
                    let path = format!("secret/data/{PATH}.rotation");
                    vault.api("POST", &path, Some(body)).await;
                }
                let _ = store.load().await;
            });
        },
    );
}

#[test]
fn aws_store_reading_hostile_versions_never_panics() {
    let moto = moto::MotoServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = moto.client();
    let secret_id = "netsuite/fuzz";
    let store = rt.block_on(async {
        client
            .create_secret()
            .name(secret_id)
            .secret_string(valid_record().to_string())
            .send()
            .await
            .unwrap();
        let store = moto.store(secret_id).await;
        assert!(store.load().await.unwrap().current.is_some());
        store
    });
    let label = prop_oneof![
        Just("AWSCURRENT".to_string()),
        Just("AWSPENDING".to_string()),
        Just("AWSPREVIOUS".to_string()),
        "NSTR_INTENT_[0-9a-f]{0,32}",
        "NSTR_REVOKE_AFTER_-?[0-9]{0,22}_[a-z0-9]{0,8}",
        "NSTR_REVOKED_-?[0-9]{0,22}_[a-z0-9]{0,8}",
        "NSTR_LOCK",
        "[A-Za-z0-9_]{1,20}",
    ];
    let version_id = prop_oneof![
        Just(None),
        "nstr-intent-[0-9a-f]{32}".prop_map(Some),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}".prop_map(Some),
        "[A-Za-z0-9-]{32,40}".prop_map(Some),
    ];
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    check(
        "aws store: hostile versions, values and labels",
        STORE_CASES,
        (
            store_value(),
            prop::collection::vec(label, 1..3),
            version_id,
        ),
        |(value, labels, version_id)| {
            rt.block_on(async {
                let value = String::from_utf8_lossy(&value).into_owned();
                let value = if value.is_empty() { " ".into() } else { value };
                let put = client
                    .put_secret_value()
                    .secret_id(secret_id)
                    .secret_string(value)
                    .set_client_request_token(version_id)
                    .set_version_stages(Some(labels))
                    .send()
                    .await;
                if put.is_ok() {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = store.load().await;
            });
        },
    );
    let accepted = accepted.into_inner();
    println!("fuzz aws store: moto accepted {accepted} of the hostile versions");
    assert!(accepted > 0, "no hostile version reached the store");
}

/// The seeds of one fuzz target, `fuzz/seeds/<target>/`, by file name.
fn fuzz_seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 3, "{}: too few seeds", dir.display());
    seeds
}

/// Every seed is accepted (but those named `refused-*`, there for the error paths), so fuzzing
/// starts deep inside each grammar rather than at its first refusal, and a format change that
/// leaves the seeds behind fails here.
#[test]
fn fuzz_seeds_are_accepted_by_their_parsers() {
    for (name, text) in fuzz_seeds("config") {
        let text = String::from_utf8(text).expect("config seeds are UTF-8");
        match Config::parse(&text, &name) {
            Ok(_) if name.starts_with("refused-") => {
                panic!("fuzz/seeds/config/{name} is accepted")
            }
            Err(e) if !name.starts_with("refused-") => {
                panic!("fuzz/seeds/config/{name} is refused: {e}")
            }
            _ => {}
        }
    }
    type Accepts = fn(&[u8]) -> bool;
    let targets: [(&str, Accepts); 3] = [
        ("netsuite_responses", ns::fuzz_input),
        ("sim_headers", sim::fuzz_input),
        ("store_documents", store_entry::fuzz_input),
    ];
    for (target, accepts) in targets {
        for (name, data) in fuzz_seeds(target) {
            let expected = !name.starts_with("refused-");
            assert_eq!(
                accepts(&data),
                expected,
                "fuzz/seeds/{target}/{name}: accepted is not {expected}"
            );
        }
    }
}

#[test]
fn store_document_readers_never_panic() {
    let seeds: Vec<Vec<u8>> = fuzz_seeds("store_documents")
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    check(
        "store documents: mutated seeds",
        CASES,
        (prop::sample::select(seeds), edits()),
        |(seed, e)| {
            let _ = store_entry::fuzz_input(&mutate(&seed, &e));
        },
    );
    check(
        "store documents: arbitrary bytes",
        CASES,
        prop::collection::vec(any::<u8>(), 0..300),
        |data| {
            let _ = store_entry::fuzz_input(&data);
        },
    );
}
