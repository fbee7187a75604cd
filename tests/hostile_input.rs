//! Hostile servers the NetSuite client must survive, each started by the test on 127.0.0.1:
//! a 100 MB answer (refused at the body cap, never held in memory), slow-loris servers that
//! trickle one byte a second in the headers or the body (ended by the client's timeout), and an
//! `https` endpoint whose server speaks plain HTTP (refused in the TLS handshake, nothing sent).
//! Assertions are on the error kind, never on timings. Redirects to other hosts, 10 MB bodies
//! (streamed and announced) and cut bodies are covered in src/netsuite/client_tests.rs.

#[path = "support/rotator.rs"]
mod rotator;

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
        base_url: base_url.to_string(),
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

/// A wrong NLAuth password: exactly one issuetoken request per scheduled run (never a retry
/// loop, which would lock the NetSuite user out), and alerts that say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_makes_one_login_attempt_per_scheduled_run_and_warns_of_lock_out() {
    use netsuite_token_rotator::sim::{Seed, Simulator};

    let sim = Simulator::start(Seed::demo()).await.unwrap();
    let mut scheduled = rotator::Scheduled::new(&sim.base_url()).await;
    let failed_runs = scheduled
        .run_until_failed("not-the-password", 3)
        .failed_runs;

    let inspection = sim.sim().inspect();
    let issue_requests = inspection.requests("issuetoken");
    assert_eq!(
        issue_requests, failed_runs as u64,
        "one issuetoken request per scheduled run: {inspection:?}"
    );
    let alerts = scheduled.alerts();
    assert!(!alerts.is_empty(), "an alert was sent");
    assert!(
        alerts.iter().all(|a| a.contains("lock")),
        "every alert warns of the lock-out: {alerts:?}"
    );
    assert!(!alerts.iter().any(|a| a.contains("not-the-password")));
    println!(
        "wrong password: {failed_runs} scheduled runs, {issue_requests} issuetoken requests, {} alert deliveries",
        alerts.len()
    );
}
