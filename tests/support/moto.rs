//! Starts `moto_server` (AWS Secrets Manager stand-in, PyPI `moto[server]`) on 127.0.0.1 for
//! integration tests, and builds AWS store configs and SDK clients that talk to it.
//!
//! Include it with `#[path = "support/moto.rs"] mod moto;`. The binary comes from `$MOTO_SERVER`
//! or `<repo>/.venv/bin/moto_server` (`bash scripts/setup/moto.sh` installs it); a missing binary
//! is a panic that says so, never a skipped test.
//!
//! moto keeps its state in memory, so the server runs with moto's request recorder on: `stop`
//! kills the process (clients then get connection refused), and `restart` starts it again on the
//! same port and replays the recording, which rebuilds the state as it was when it stopped. That
//! models a store that is briefly unreachable without losing data.

#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use netsuite_token_rotator::store::aws::{AwsStore, AwsStoreConfig};

pub const REGION: &str = "us-east-1";

/// How often, and how many times, the port is polled while moto_server starts (it imports for
/// a few seconds on a slow machine). Polling, not waiting a fixed time: it returns as soon as the
/// server answers.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
const READY_POLL_ATTEMPTS: u32 = 1200;

pub struct MotoServer {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

static FAKE_CREDENTIALS: Once = Once::new();

/// Points the default AWS credential chain of this test process at fake keys, and away from
/// profiles and instance metadata (which would mean traffic off this machine).
fn use_fake_credentials() {
    FAKE_CREDENTIALS.call_once(|| {
        // SAFETY: every test that talks to moto starts with `MotoServer::start`, which runs
        // this first; tests waiting on the `Once` are blocked, so no thread reads the
        // environment while it is written.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_SESSION_TOKEN", "testing");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config");
            std::env::set_var(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            );
        }
    });
}

/// The same for a child process (the rotator binary): fake keys that moto accepts, and no
/// profile or instance metadata.
pub fn fake_credentials_for(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
}

fn moto_binary() -> PathBuf {
    let binary = match std::env::var_os("MOTO_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
    };
    assert!(
        binary.is_file(),
        "moto_server not found at {}: run `bash scripts/setup/moto.sh` (or set MOTO_SERVER)",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind a port on 127.0.0.1")
        .port()
}

impl MotoServer {
    /// Starts a fresh moto_server on a free port and waits until it answers.
    pub fn start() -> MotoServer {
        use_fake_credentials();
        let mut server = MotoServer {
            child: None,
            port: free_port(),
            binary: moto_binary(),
            dir: tempfile::tempdir().expect("cannot create a temp dir for moto"),
        };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A store config for `secret_id` on this server (created on first write).
    pub fn store_config(&self, secret_id: &str) -> AwsStoreConfig {
        AwsStoreConfig {
            secret_id: secret_id.to_string(),
            region: Some(REGION.to_string()),
            endpoint_url: Some(self.endpoint_url()),
            kms_key_id: None,
            tags: Default::default(),
            create_if_missing: true,
        }
    }

    /// A store through `AwsStore::connect`, i.e. the default credential chain.
    pub async fn store(&self, secret_id: &str) -> AwsStore {
        AwsStore::connect(&self.store_config(secret_id))
            .await
            .expect("connect to moto_server")
    }

    /// Creates `secret_id` with no value, as Terraform and CloudFormation usually leave it.
    pub async fn create_empty_secret(&self, secret_id: &str) {
        self.client()
            .create_secret()
            .name(secret_id)
            .send()
            .await
            .expect("CreateSecret without a value");
    }

    /// A raw SDK client for arranging and inspecting state behind the store's back.
    pub fn client(&self) -> Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint_url())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .build();
        Client::from_conf(config)
    }

    /// Creates IAM user `name` with an inline policy that allows `actions` (e.g.
    /// `secretsmanager:GetSecretValue`) on every resource, and returns a Secrets Manager client
    /// signed with the user's new access key. Policies only count once [`MotoServer::enforce_iam`]
    /// is called; call this before (until then IAM calls need no valid signature).
    pub async fn iam_user_client(&self, name: &str, actions: &[&str]) -> Client {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        })
        .to_string();
        self.iam_call(&[("Action", "CreateUser"), ("UserName", name)])
            .await;
        self.iam_call(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "netsuite-token-rotator-test"),
            ("PolicyDocument", &policy),
        ])
        .await;
        let answer = self
            .iam_call(&[("Action", "CreateAccessKey"), ("UserName", name)])
            .await;
        let field = |tag: &str| {
            answer
                .split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|rest| rest.split(&format!("</{tag}>")).next())
                .unwrap_or_else(|| panic!("no {tag} in moto's CreateAccessKey answer: {answer}"))
                .to_string()
        };
        let credentials = Credentials::new(
            field("AccessKeyId"),
            field("SecretAccessKey"),
            None,
            None,
            "moto-iam-user",
        );
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint_url())
            .credentials_provider(credentials)
            .build();
        Client::from_conf(config)
    }

    /// From now on moto checks every request's signature and the caller's IAM policies (its
    /// `INITIAL_NO_AUTH_ACTION_COUNT`, set to 0 through `/moto-api/reset-auth`); the `testing`
    /// keys of [`MotoServer::client`] and [`MotoServer::store`] are then refused.
    pub async fn enforce_iam(&self) {
        let answer = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint_url()))
            .body("0")
            .send()
            .await
            .expect("moto_server answers reset-auth");
        assert_eq!(
            answer.status().as_u16(),
            200,
            "moto_server refused reset-auth"
        );
    }

    /// One IAM query-API call, unsigned (accepted while IAM is not enforced); the answer's XML.
    async fn iam_call(&self, params: &[(&str, &str)]) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let mut form = String::from("Version=2010-05-08");
        for (key, value) in params {
            form.push_str(&format!(
                "&{key}={}",
                utf8_percent_encode(value, NON_ALPHANUMERIC)
            ));
        }
        let answer = reqwest::Client::new()
            .post(format!("{}/", self.endpoint_url()))
            .header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
            // moto routes by the credential scope's service name.
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/iam/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .body(form)
            .send()
            .await
            .expect("moto_server answers IAM calls");
        let status = answer.status().as_u16();
        let bytes = answer.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert_eq!(status, 200, "IAM {params:?}: {text}");
        text
    }

    /// Kills the server; requests fail with connection refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with the state it had when it stopped.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        let answer = self.http("POST", "/moto-api/recorder/replay-recording");
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "moto_server did not replay its recording: {}; the end of its log:\n{}",
            answer.lines().next().unwrap_or("(no answer)"),
            self.log_tail(40)
        );
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto_server.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("cannot open the moto_server log");
        let child = Command::new(&self.binary)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "true")
            .env(
                "MOTO_RECORDER_FILEPATH",
                self.dir.path().join("recording.jsonl"),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..READY_POLL_ATTEMPTS {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "moto_server exited ({status}) while starting; its log:\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            if TcpStream::connect_timeout(&addr, READY_POLL_INTERVAL).is_ok()
                && self
                    .http("GET", "/moto-api/data.json")
                    .starts_with("HTTP/1.1 200")
            {
                return;
            }
            std::thread::sleep(READY_POLL_INTERVAL);
        }
        panic!(
            "moto_server did not answer on port {} after {READY_POLL_ATTEMPTS} polls; its log:\n{}",
            self.port,
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
    }

    /// One plain HTTP/1.1 request to moto's own API; the whole answer, or "" if none.
    fn http(&self, method: &str, path: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        // Only a guard against a hung server: replaying the recording takes longer the more the
        // test wrote (a soak's recording holds thousands of requests; it took over 60 s).
        let _ = stream.set_read_timeout(Some(Duration::from_secs(600)));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
