//! No secret leaves the process: the binaries run every command (import, rotate, verify,
//! revoke, status, check, and `run` for a few rotations) at `RUST_LOG=trace` with JSON logs and
//! OTLP trace export to a receiver in this test, over three stores (file, Vault KV v2 on a real
//! OpenBao, AWS on moto_server) and an M2M integration. Every byte printed or exported is
//! scanned for every secret the run used: the NLAuth password, the consumer key and secret,
//! every token secret and M2M private key (whole and line by line) any store held, the M2M
//! client ID, the Vault token and the AWS secret key, raw and percent-encoded. Plus: `Debug` of
//! the config and token types shows no secret.
//! (tests/cli.rs has the smaller file-store-only version without OTLP and `run`.)

mod common;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/openbao.rs"]
mod openbao;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::demo;
use netsuite_token_rotator::config::Config;
use netsuite_token_rotator::netsuite::m2m::KeyKind;
use netsuite_token_rotator::netsuite::percent_encode;
use netsuite_token_rotator::secret::{ExposeSecret, SecretRef};
use netsuite_token_rotator::sim::{HandMadeToken, Seed, Simulator};
use netsuite_token_rotator::store::file::{FileStore, FileStoreConfig};
use netsuite_token_rotator::store::vault::{VaultAuth, VaultStoreConfig};
use netsuite_token_rotator::store::{CredentialRecord, SecretStore, StoreState};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");
const VAULT_TOKEN: &str = "S3cretVaultTokenForTheScan";
const AWS_ACCESS_KEY: &str = "AKIASCANTESTKEY00001";
const AWS_SECRET_KEY: &str = "aws/Secret+Key=ScanTest0123456789abcdef";
/// Bound on waiting for a log line: fails a hung daemon, not a timing check.
const LINE_BOUND: Duration = Duration::from_secs(60);

fn config_text(base_url: &str, vault: &str, mount: &str, moto: &str, otlp: &str) -> String {
    let integration = |name: &str, store: &str| {
        format!(
            r#"
[[integrations]]
name = "{name}"
account_id = "{account}"
endpoint = "{base_url}"
consumer_key = {{ env = "IT_CONSUMER_KEY" }}
consumer_secret = {{ env = "IT_CONSUMER_SECRET" }}
schedule = "* * * * * *"
revoke_after = "0s"
[integrations.login]
email = "{email}"
password = {{ env = "IT_PASSWORD" }}
role = "{role}"
[integrations.store]
{store}
"#,
            account = demo::ACCOUNT,
            email = demo::EMAIL,
            role = demo::ROLE_ID,
        )
    };
    let m2m = format!(
        r#"
[[integrations]]
name = "m2m"
account_id = "{account}"
endpoint = "{base_url}"
schedule = "* * * * * *"
revoke_after = "0s"
[integrations.m2m]
client_id = {{ env = "IT_CLIENT_ID" }}
role = "{role}"
entity = "{entity}"
[integrations.store]
kind = "file"
path = "store/m2m.json"
"#,
        account = demo::ACCOUNT,
        role = demo::ROLE_ID,
        entity = demo::ENTITY_ID,
    );
    format!(
        "[daemon]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n[telemetry]\nlog_format = \"json\"\notlp_endpoint = \"{otlp}\"\n{}{}{}{m2m}",
        integration("erp", "kind = \"file\"\npath = \"store/erp.json\""),
        integration(
            "vlt",
            &format!(
                "kind = \"vault\"\naddress = \"{vault}\"\nmount = \"{mount}\"\npath = \"netsuite/vlt\"\nkv_version = 2\nauth = {{ method = \"token\", token = {{ env = \"IT_VAULT_TOKEN\" }} }}"
            )
        ),
        integration(
            "aws",
            &format!(
                "kind = \"aws\"\nsecret_id = \"netsuite/aws\"\nregion = \"{}\"\nendpoint_url = \"{moto}\"",
                moto::REGION
            )
        ),
    )
}

fn command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("IT_CONSUMER_KEY", demo::CONSUMER_KEY)
        .env("IT_CONSUMER_SECRET", demo::CONSUMER_SECRET)
        .env("IT_PASSWORD", demo::PASSWORD)
        .env("IT_VAULT_TOKEN", VAULT_TOKEN)
        .env("IT_CLIENT_ID", demo::M2M_CLIENT_ID)
        .env("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("RUST_LOG", "trace")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = command(config, args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("binary starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// An OTLP/HTTP trace receiver: keeps every request body as received.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<u8>>>) {
    use axum::{Router, body::Bytes, routing::post};
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().extend_from_slice(&body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// The base64 lines of a PEM block (not its BEGIN and END lines, which every key shares).
fn pem_lines(pem: &str, into: &mut BTreeSet<String>) {
    into.extend(
        pem.lines()
            .filter(|line| !line.starts_with("-----") && line.len() >= 16)
            .map(str::to_string),
    );
}

fn token_secrets(state: &StoreState, into: &mut BTreeSet<String>) {
    for record in state
        .current
        .iter()
        .chain(state.pending.iter())
        .chain(state.previous.iter().map(|p| &p.token))
    {
        let secret = match record {
            CredentialRecord::Tba(token) => &token.token_secret,
            CredentialRecord::M2m(certificate) => {
                // A key leaks by any of its lines, not only whole.
                pem_lines(certificate.private_key.expose_secret(), into);
                &certificate.private_key
            }
        };
        into.insert(secret.expose_secret().to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_or_export_at_trace_level() {
    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let vault = openbao::OpenBao::start_with_root_token(VAULT_TOKEN).await;
    let moto = moto::MotoServer::start();
    let (otlp, exported) = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_text(
            &sim.base_url(),
            &vault.address,
            "secret",
            &moto.endpoint_url(),
            &otlp,
        ),
    )
    .unwrap();
    let stores: Vec<Box<dyn SecretStore>> = vec![
        Box::new(FileStore::new(&FileStoreConfig {
            path: dir.path().join("store/erp.json"),
        })),
        Box::new(
            netsuite_token_rotator::store::vault::connect(&VaultStoreConfig {
                address: vault.address.clone(),
                mount: "secret".to_string(),
                path: "netsuite/vlt".into(),
                kv_version: 2,
                namespace: None,
                ca_cert: None,
                auth: VaultAuth::Token {
                    token: SecretRef::Literal(VAULT_TOKEN.into()),
                },
            })
            .await
            .unwrap(),
        ),
        Box::new(moto.store("netsuite/aws").await),
        Box::new(FileStore::new(&FileStoreConfig {
            path: dir.path().join("store/m2m.json"),
        })),
    ];
    let mut secrets = BTreeSet::new();
    let mut printed: Vec<u8> = Vec::new();
    let collect = async |secrets: &mut BTreeSet<String>| {
        for store in &stores {
            if let Ok(state) = store.load().await {
                token_secrets(&state, secrets);
            }
        }
    };

    let (token_id, token_secret) = sim
        .sim()
        .create_token(&HandMadeToken {
            account: demo::ACCOUNT.into(),
            email: demo::EMAIL.into(),
            role: demo::ROLE_ID.into(),
            consumer_key: demo::CONSUMER_KEY.into(),
            name: "by hand".into(),
        })
        .unwrap();
    secrets.insert(token_secret.expose_secret().to_string());
    let input = format!("{token_id}\n{}\n", token_secret.expose_secret());
    let mut commands = 0;
    let out = run(&config, &["import", "--integration", "erp"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed.extend(out.stdout.iter().chain(&out.stderr));
    commands += 1;
    // The M2M integration's first certificate, uploaded "by an administrator" and imported.
    let (certificate_id, first) = common::admin_upload(&sim, KeyKind::EcP256);
    secrets.insert(first.private_key.expose_secret().to_string());
    pem_lines(first.private_key.expose_secret(), &mut secrets);
    let input = format!(
        "{certificate_id}\n{}{}",
        first.private_key.expose_secret(),
        first.certificate
    );
    let out = run(&config, &["import", "--integration", "m2m"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed.extend(out.stdout.iter().chain(&out.stderr));
    commands += 1;
    for args in [
        &["rotate", "--all"][..],
        &["rotate", "--all"][..],
        &["verify", "--all"][..],
        &["revoke", "--all", "--force"][..],
        &["status"][..],
        &["status", "--json"][..],
        &["check"][..],
    ] {
        let out = run(&config, args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.extend(out.stdout.iter().chain(&out.stderr));
        commands += 1;
        collect(&mut secrets).await;
    }

    // The daemon, until every integration rotated twice, then SIGTERM.
    let mut daemon = command(&config, &["run"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = daemon.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut promotions = 0;
    while promotions < 6 {
        let line = lines.recv_timeout(LINE_BOUND).expect("the daemon rotates");
        if line.contains("token promoted to current") {
            promotions += 1;
            collect(&mut secrets).await;
        }
        printed.extend(line.as_bytes());
        printed.push(b'\n');
    }
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    while let Ok(line) = lines.recv_timeout(LINE_BOUND) {
        printed.extend(line.as_bytes());
        printed.push(b'\n');
    }
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
    commands += 1;
    collect(&mut secrets).await;

    let printed_text = String::from_utf8_lossy(&printed);
    assert!(printed_text.contains("TRACE"), "trace logging was on");
    // Every command and `run` export their spans: the scan below must have spans to read.
    let exported = exported.lock().unwrap().clone();
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for span_name in ["rotation.issue", "rotation.promote", "tokeninfo"] {
        assert!(
            has(&exported, span_name.as_bytes()),
            "no {span_name:?} in the {} bytes exported over OTLP",
            exported.len()
        );
    }
    let token_secret_count = secrets.len();
    assert!(
        token_secret_count >= 10,
        "{token_secret_count} token secrets"
    );
    secrets.extend(
        [
            demo::PASSWORD,
            demo::CONSUMER_SECRET,
            demo::CONSUMER_KEY,
            VAULT_TOKEN,
            AWS_SECRET_KEY,
            demo::M2M_CLIENT_ID,
        ]
        .map(str::to_string),
    );
    let mut forms = 0;
    for secret in &secrets {
        for form in [secret.clone(), percent_encode(secret).to_string()] {
            forms += 1;
            let needle = form.as_bytes();
            assert!(
                !has(&printed, needle),
                "a secret (or its encoding) was printed"
            );
            assert!(
                !has(&exported, needle),
                "a secret (or its encoding) was exported"
            );
        }
    }
    println!(
        "secrets scan: {commands} commands, {} bytes printed, {} bytes exported over OTLP, {} secrets ({token_secret_count} token secrets) in {forms} forms, 0 hits",
        printed.len(),
        exported.len(),
        secrets.len()
    );
}

/// `Debug` of the config (with literal secrets in it) and of the token types redacts.
#[test]
fn debug_output_of_config_and_token_types_is_redacted() {
    let literal_password = "L1teral-Passw0rd-Value";
    let literal_secret = "L1teral-Consumer-Secret";
    let text = format!(
        r#"
[[alerts]]
kind = "pagerduty"
routing_key = "L1teral-Routing-Key"
[[integrations]]
name = "erp"
account_id = "123456_SB1"
consumer_key = "L1teral-Consumer-Key"
consumer_secret = "{literal_secret}"
revoke_after = "0s"
[integrations.login]
email = "i@example.com"
password = "{literal_password}"
role = "1001"
totp_secret = "L1TERALTOTPSEEDAAAAAAAAAAAAAAAA"
[integrations.store]
kind = "vault"
address = "http://127.0.0.1:8200"
path = "netsuite/erp"
auth = {{ method = "approle", role_id = "L1teral-Role-Id", secret_id = "L1teral-Secret-Id" }}
"#
    );
    let config = Config::parse(&text, "debug.toml").unwrap();
    let resolved = config.integrations[0].resolve(0).unwrap();
    let record = netsuite_token_rotator::store::TokenRecord {
        account_id: "123456_SB1".into(),
        realm: "123456_SB1".into(),
        consumer_key: Some("L1teral-Consumer-Key".into()),
        consumer_secret: Some(literal_secret.into()),
        token_id: "tid".into(),
        token_secret: "L1teral-Token-Secret".into(),
        issued_at: chrono::Utc::now(),
        rotation_id: uuid::Uuid::nil(),
    };
    let shown = format!("{config:?}\n{resolved:?}\n{record:?}");
    for secret in [
        literal_password,
        literal_secret,
        "L1teral-Routing-Key",
        "L1TERALTOTPSEED",
        "L1teral-Secret-Id",
        "L1teral-Token-Secret",
    ] {
        assert!(!shown.contains(secret), "Debug shows {secret}:\n{shown}");
    }
    assert!(
        shown.contains("tid"),
        "Debug still shows what is not secret"
    );
}
