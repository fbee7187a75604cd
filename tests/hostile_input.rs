//! Hostile servers the NetSuite client must survive, each started by the test on 127.0.0.1:
//! a 100 MB answer (refused at the body cap, never held in memory), slow-loris servers that
//! trickle one byte a second in the headers or the body (ended by the client's timeout), and an
//! `https` endpoint whose server speaks plain HTTP (refused in the TLS handshake, nothing sent).
//! Assertions are on the error kind, never on timings. Redirects to other hosts, 10 MB bodies
//! (streamed and announced) and cut bodies are covered in src/netsuite/client_tests.rs.
//!
//! Also: `https` endpoints whose certificate must not be trusted (self-signed, issued for
//! another name, expired), refused in the handshake with nothing sent and no retry, by the
//! client and through the binary; and the real daemon under a wrong password and under clock
//! skew, counting NetSuite requests and alerts over several scheduled runs.

#[path = "support/rotator.rs"]
mod rotator;
#[path = "support/tls_server.rs"]
mod tls_server;

use std::time::Duration;

use netsuite_token_rotator::netsuite::{
    AccountId, BodyProblem, ClientOptions, Endpoint, NetSuiteClient, NetSuiteError, TbaCredentials,
    TransportKind,
};
use netsuite_token_rotator::secret::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client() -> NetSuiteClient {
    NetSuiteClient::new(ClientOptions {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        max_attempts: 1,
        ..ClientOptions::default()
    })
    .unwrap()
}

fn creds() -> TbaCredentials {
    TbaCredentials {
        consumer_key: SecretString::from("ck"),
        consumer_secret: SecretString::from("cs"),
        token_id: "tid".into(),
        token_secret: SecretString::from("ts"),
    }
}

async fn token_info(base_url: &str) -> Result<(), NetSuiteError> {
    let account = AccountId::parse("123456_SB1").unwrap();
    let endpoint = Endpoint {
        base_url: base_url.into(),
    };
    client()
        .token_info(&endpoint, &account, &creds())
        .await
        .map(|_| ())
}

/// A raw TCP server: reads a request head, then runs `answer` on the connection.
async fn raw_server<F, Fut>(answer: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(stream).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_100_mb_answer_is_refused_at_the_body_cap() {
    let address = raw_server(|mut stream| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 64 * 1024];
        let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
        // 1,600 chunks of 64 KiB: 100 MiB, unless the client hangs up first.
        for _ in 0..1_600 {
            if stream.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let err = token_info(&format!("http://{address}")).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::BadResponse {
                problem: BodyProblem::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_trickling_its_headers_is_ended_by_the_timeout() {
    let address = raw_server(|mut stream| async move {
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            .iter()
            .cycle()
        {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await; // the attack itself, not a wait
        }
    })
    .await;
    let err = token_info(&format!("http://{address}")).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_trickling_its_body_is_ended_by_the_timeout() {
    let address = raw_server(|mut stream| async move {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            if stream.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await; // the attack itself, not a wait
        }
    })
    .await;
    let err = token_info(&format!("http://{address}")).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::Transport {
                kind: TransportKind::Timeout | TransportKind::ConnectionLost,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_https_endpoint_served_in_plain_http_is_refused() {
    // A plain HTTP server answers the TLS ClientHello with an HTTP response.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let err = token_info(&format!("https://{address}")).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A config file holding literal secrets that its group or others can read: `check` fails
/// naming the file and the fix, `run` refuses to start with exit 2. The same file with mode
/// 0600 passes that check.
#[test]
fn literal_secrets_in_a_readable_config_are_refused_by_check_and_run() {
    use std::os::unix::fs::PermissionsExt;
    const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        r#"
[daemon]
listen = "127.0.0.1:0"
[[integrations]]
name = "erp"
account_id = "123456_SB1"
endpoint = "http://127.0.0.1:9"
consumer_key = "literal-consumer-key"
consumer_secret = "literal-consumer-secret"
revoke_after = "0s"
[integrations.login]
email = "i@example.com"
password = "literal-password-value"
role = "1001"
[integrations.store]
kind = "file"
path = "store/erp.json"
"#,
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = |command: &str| {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg(command)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap()
    };

    let check = output("check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("chmod 600"))
        .unwrap_or_else(|| panic!("no FAIL line naming chmod 600:\n{stdout}"));
    assert!(fail.contains(&config.display().to_string()), "{fail}");
    assert!(fail.contains("integrations[0].login.password"), "{fail}");
    assert!(!stdout.contains("literal-password-value"));

    let run = output("run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");

    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = output("check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(!stdout.contains("chmod 600"), "{stdout}");
    assert!(
        stdout.contains("is a literal in the config file"),
        "{stdout}"
    );
}

/// A wrong NLAuth password: one issuetoken request in all, however many scheduled runs
/// follow (the login latches; a retry loop would lock the NetSuite user out), and alerts that
/// say so without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_makes_one_login_attempt_in_all_and_warns_of_lock_out() {
    use netsuite_token_rotator::sim::{Seed, Simulator};

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let mut scheduled = rotator::Scheduled::new(&sim.base_url()).await;
    let failed_runs = scheduled
        .run_until_failed("not-the-password", 3)
        .failed_runs;

    let inspection = sim.sim().inspect();
    let issue_requests = inspection.requests("issuetoken");
    assert!(failed_runs >= 3);
    assert_eq!(issue_requests, 1, "one login in all: {inspection:?}");
    assert_eq!(inspection.failed_login_count, 1);
    let alerts = scheduled.alerts();
    assert!(!alerts.is_empty(), "an alert was sent");
    assert!(
        alerts
            .iter()
            .all(|a| a.contains("lock") && a.contains("latched")),
        "every alert says the login is latched and why: {alerts:?}"
    );
    assert!(!alerts.iter().any(|a| a.contains("not-the-password")));
    println!(
        "wrong password: {failed_runs} scheduled runs, {issue_requests} issuetoken requests, {} alert deliveries",
        alerts.len()
    );
}

/// Secret values the TLS tests give the client: none may reach the server or an error message.
const TLS_SECRETS: [&str; 4] = [
    "ck-tls-4711-consumer-key",
    "cs-tls-4711-consumer-secret",
    "ts-tls-4711-token-secret",
    "pw-tls-4711-password",
];

/// An `https` endpoint whose certificate must not be trusted: issuetoken, tokeninfo and
/// revoketoken each fail with `Transport { TlsCertificate }`, permanent, after one TLS attempt
/// (no retry although the client may make three), with no handshake completed and no byte of
/// a request (NLAuth password, OAuth header) received, and no secret in the error. The test
/// process trusts only the system's CAs, so all three certificates fail as unknown issuers
/// here; the binary test below tells the name and expiry failures apart by trusting the CA.
#[tokio::test]
async fn untrusted_tls_certificates_are_refused_in_the_handshake_with_nothing_sent() {
    use netsuite_token_rotator::netsuite::NlauthLogin;
    use netsuite_token_rotator::sim::{Seed, Simulator, demo};
    use tls_server::{Presented, TestCa, TlsServer};

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let ca = TestCa::new();
    let client = NetSuiteClient::new(ClientOptions {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(10),
        max_attempts: rotator::MAX_ATTEMPTS,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..ClientOptions::default()
    })
    .unwrap();
    let account = AccountId::parse(demo::ACCOUNT).unwrap();
    let creds = TbaCredentials {
        consumer_key: SecretString::from(TLS_SECRETS[0]),
        consumer_secret: SecretString::from(TLS_SECRETS[1]),
        token_id: "tid".into(),
        token_secret: SecretString::from(TLS_SECRETS[2]),
    };
    let login = NlauthLogin {
        email: demo::EMAIL.into(),
        password: SecretString::from(TLS_SECRETS[3]),
        role: demo::ROLE_ID.into(),
        totp_secret: None,
    };
    for presented in [
        Presented::SelfSigned,
        Presented::OtherName,
        Presented::Expired,
    ] {
        let server = TlsServer::start(&ca, presented, sim.local_addr()).await;
        let endpoint = Endpoint {
            base_url: server.base_url().into(),
        };
        let consumer_key = &creds.consumer_key;
        let errors = [
            client
                .issue_token(&endpoint, &account, &login, consumer_key, "it-tls")
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .token_info(&endpoint, &account, &creds)
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .revoke_token(&endpoint, &account, &creds)
                .await
                .map(|_| ())
                .unwrap_err(),
        ];
        for err in &errors {
            assert!(
                matches!(
                    err,
                    NetSuiteError::Transport {
                        kind: TransportKind::TlsCertificate,
                        ..
                    }
                ),
                "{presented:?}: {err:?}"
            );
            assert!(!err.is_transient() && !err.may_have_issued(), "{err:?}");
            let (display, debug) = (err.to_string(), format!("{err:?}"));
            assert!(display.contains("TLS certificate not trusted"), "{display}");
            assert!(display.contains("SSL_CERT_FILE"), "{display}");
            for secret in TLS_SECRETS {
                assert!(
                    !display.contains(secret) && !debug.contains(secret),
                    "{secret}"
                );
            }
        }
        let calls = errors.len() as u64;
        assert_eq!(
            server.seen.connections(),
            calls,
            "{presented:?}: one TLS attempt per call, not retried"
        );
        assert_eq!(server.seen.handshakes(), 0, "{presented:?}");
        assert_eq!(server.seen.application_bytes(), 0, "{presented:?}");
        println!(
            "{presented:?}: {calls} calls, {} TLS attempts (max_attempts {}), {} handshakes, {} request bytes: {}",
            server.seen.connections(),
            rotator::MAX_ATTEMPTS,
            server.seen.handshakes(),
            server.seen.application_bytes(),
            errors[1]
        );
    }
    let inspection = sim.sim().inspect();
    assert!(
        ["issuetoken", "tokeninfo", "revoketoken"]
            .iter()
            .all(|e| inspection.requests(e) == 0),
        "nothing reached NetSuite: {:?}",
        inspection.requests
    );
}

/// Through the binary: `rotate` and `check` against an `https` endpoint with an untrusted
/// certificate exit 1 with a line naming the TLS certificate, the reason and the remedy, after
/// one TLS attempt each and with nothing sent. The remedy they name works: with the test CA in
/// `SSL_CERT_FILE`, the valid certificate is accepted and the rotation completes through the
/// TLS server (the control that shows the server's counters count), while the certificate for
/// another name and the expired one are still refused, each for its own reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_against_an_untrusted_tls_endpoint_fails_naming_the_certificate() {
    use netsuite_token_rotator::sim::{Seed, Simulator, demo};
    use tls_server::{Presented, TestCa, TlsServer};

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    // Clients reach it only through the TLS servers, and sign `https://` URLs.
    sim.sim().set_behind_tls(true);
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    // What the server presents, whether the test CA is trusted, and the reason to be named.
    let cases = [
        (
            Presented::SelfSigned,
            true,
            "not issued by a certificate authority",
        ),
        (
            Presented::Valid,
            false,
            "not issued by a certificate authority",
        ),
        (Presented::OtherName, true, "not valid for name"),
        (Presented::Expired, true, "certificate expired"),
        (Presented::Valid, true, ""),
    ];
    for (i, (presented, trust_test_ca, reason)) in cases.into_iter().enumerate() {
        let server = TlsServer::start(&ca, presented, sim.local_addr()).await;
        let case_dir = dir.path().join(format!("case-{i}"));
        std::fs::create_dir(&case_dir).unwrap();
        let config = rotator::write_config(&case_dir, &rotator::Setup::new(&server.base_url()));
        let run = |args: &[&str]| {
            let mut command = rotator::command(&config, demo::PASSWORD);
            if trust_test_ca {
                command.env("SSL_CERT_FILE", &ca_file);
            }
            let output = command.args(args).output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!stdout.contains(demo::PASSWORD) && !stderr.contains(demo::PASSWORD));
            (output.status.code(), format!("{stdout}{stderr}"))
        };
        let case = format!("{presented:?}, test CA trusted: {trust_test_ca}");
        if reason.is_empty() {
            for args in [&["rotate", "--all"][..], &["check"]] {
                let (code, output) = run(args);
                assert_eq!(code, Some(0), "{case}, {args:?}: {output}");
            }
            assert!(server.seen.handshakes() >= 1, "{case}");
            assert!(server.seen.application_bytes() > 0, "{case}");
            println!(
                "{case}: rotate and check exit 0, {} handshakes, {} request bytes relayed",
                server.seen.handshakes(),
                server.seen.application_bytes()
            );
            continue;
        }
        // `rotate` makes one TLS attempt; `check` a TCP probe (no TLS) and one TLS attempt.
        for (args, attempts) in [(&["rotate", "--all"][..], 1), (&["check"], 2)] {
            let connections = server.seen.connections();
            let (code, output) = run(args);
            assert_eq!(code, Some(1), "{case}, {args:?}: {output}");
            let line = output
                .lines()
                .find(|l| l.contains("TLS certificate not trusted"))
                .unwrap_or_else(|| panic!("{case}, {args:?}: no line names it:\n{output}"));
            assert!(line.contains(reason), "{case}: {line}");
            assert!(line.contains("SSL_CERT_FILE"), "{case}: {line}");
            assert_eq!(server.seen.connections() - connections, attempts, "{case}");
            println!("{case}, {args:?}: exit 1, {attempts} connection(s): {line}");
        }
        assert_eq!(server.seen.handshakes(), 0, "{case}");
        assert_eq!(server.seen.application_bytes(), 0, "{case}");
    }
}

/// Clock skew over several scheduled runs of the real daemon. NetSuite's clock is ten minutes
/// off, so every OAuth-signed request (tokeninfo, revoketoken) is refused with
/// `timestamp_refused`, while NLAuth (issuetoken) still works. The first run issues a token,
/// cannot verify it and cannot revoke it: it stays recorded as pending, and that unfinished
/// rotation holds every later run to recovery (one tokeninfo and one revoketoken of that
/// token), so no further token is issued and none is left valid and unknown. `timestamp_refused`
/// is not retried, one clock-skew alert is delivered over all runs, and the original token stays
/// current and works once the clocks agree; the next rotation then deals with the stranded one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_raises_one_alert_issues_one_token_and_retries_nothing_over_scheduled_runs() {
    use netsuite_token_rotator::sim::{Faults, Seed, Simulator, TokenStatus, demo, reason};
    use netsuite_token_rotator::store::SecretStore;
    use netsuite_token_rotator::store::file::{FileStore, FileStoreConfig};

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let mut scheduled = rotator::Scheduled::new(&sim.base_url()).await;
    let store = FileStore::new(&FileStoreConfig {
        path: scheduled.dir.path().join("store/erp.json"),
    });
    let config = scheduled.config.clone();
    let rotate =
        || rotator::succeed(rotator::command(&config, demo::PASSWORD).args(["rotate", "--all"]));

    // The original token, issued and verified while the clocks agree.
    rotate();
    let original = store.load().await.unwrap().current.expect("bootstrapped");
    let before = sim.sim().inspect();

    sim.sim()
        .set_faults(Faults {
            clock_skew_secs: 600,
            ..Faults::default()
        })
        .unwrap();
    let stopped = scheduled.run_until_failed(demo::PASSWORD, 3);
    let (lines, runs) = (stopped.lines, stopped.failed_runs);

    // Requests: one token issued in all; one tokeninfo and one revoketoken per run, each
    // refused once and not retried (the client could make MAX_ATTEMPTS of each).
    let after = sim.sim().inspect();
    let delta = |endpoint: &str| after.requests(endpoint) - before.requests(endpoint);
    let (issues, infos, revokes) = (
        delta("issuetoken"),
        delta("tokeninfo"),
        delta("revoketoken"),
    );
    let refused =
        after.refused(reason::TIMESTAMP_REFUSED) - before.refused(reason::TIMESTAMP_REFUSED);
    let runs = runs as u64;
    let story = || lines.join("\n");
    assert_eq!(issues, 1, "one issuetoken over {runs} runs:\n{}", story());
    assert_eq!(infos, runs, "one tokeninfo per run:\n{}", story());
    assert_eq!(revokes, runs, "one revoketoken per run:\n{}", story());
    assert_eq!(refused, infos + revokes, "every signed request was refused");
    assert_eq!(after.tokens.len() - before.tokens.len(), 1);

    // Alerts: one clock-skew alert and one naming the token that cannot be revoked, whatever
    // the number of runs.
    let alerts: Vec<serde_json::Value> = scheduled
        .alerts()
        .iter()
        .inspect(|body| assert!(!body.contains(demo::PASSWORD)))
        .map(|body| serde_json::from_str(body).unwrap())
        .collect();
    let triggered = |kind: &str| {
        alerts
            .iter()
            .filter(|a| a["event"] == "trigger" && a["kind"] == kind)
            .count()
    };
    assert_eq!(triggered("clock-skew"), 1, "{alerts:#?}");
    assert_eq!(triggered("revoke-overdue"), 1, "{alerts:#?}");
    assert_eq!(alerts.len(), 2, "no other alert: {alerts:#?}");

    // Tokens: the original is still current, the one issued under skew is recorded as
    // pending, and nothing live is unaccounted for.
    let state = store.load().await.unwrap();
    assert_eq!(state.current.as_ref().map(|c| c.id()), Some(original.id()));
    let stranded = state
        .pending
        .clone()
        .expect("the token issued under skew stays recorded");
    let orphans = rotator::orphan_names(&lines);
    let unaccounted = rotator::unaccounted(&after, &state, &orphans);
    assert!(unaccounted.is_empty(), "{unaccounted:?}");

    // The clocks agree again: the original token works, and the next rotation promotes the
    // stranded token (it verifies now), replaces it and revokes both.
    sim.sim().set_faults(Faults::default()).unwrap();
    let client = NetSuiteClient::new(ClientOptions::default()).unwrap();
    let creds = TbaCredentials {
        consumer_key: SecretString::from(demo::CONSUMER_KEY),
        consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
        token_id: original.id().to_string(),
        token_secret: original.as_tba().unwrap().token_secret.clone(),
    };
    let account = AccountId::parse(demo::ACCOUNT).unwrap();
    let endpoint = Endpoint {
        base_url: sim.base_url().into(),
    };
    client
        .token_info(&endpoint, &account, &creds)
        .await
        .expect("the original token works once the clocks agree");
    rotate();
    let healed = sim.sim().inspect();
    let state = store.load().await.unwrap();
    for token in [original.id(), stranded.id()] {
        assert_eq!(
            healed.token(token).map(|t| t.status),
            Some(TokenStatus::Revoked)
        );
    }
    let active: Vec<_> = healed.active_tokens().map(|t| &t.token_id).collect();
    assert_eq!(active, vec![state.current.unwrap().id()]);
    println!(
        "clock skew: {runs} scheduled runs; issuetoken {issues}, tokeninfo {infos}, revoketoken \
         {revokes} ({refused} refused with timestamp_refused, max_attempts {}); alerts: {} \
         clock-skew, {} revoke-overdue, {} in all; tokens issued under skew 1, unaccounted 0",
        rotator::MAX_ATTEMPTS,
        triggered("clock-skew"),
        triggered("revoke-overdue"),
        alerts.len()
    );
}
