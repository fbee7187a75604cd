//! A real RustyVault server (crate `rusty_vault`, binary `rvault`) for the Vault store tests:
//! file storage in a temp dir, plain HTTP on a free 127.0.0.1 port, initialised with one key
//! share and unsealed through the HTTP API. Killed on drop; can be stopped and restarted (and is
//! unsealed again) to test a store that goes away.
//!
//! Install the binary with `scripts/setup/rvault.sh`.

#![allow(dead_code)] // each test binary uses a different part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub struct RustyVault {
    pub address: String,
    pub root_token: String,
    unseal_key: String,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

/// Where `scripts/setup/rvault.sh` puts the binary, or `rvault` on PATH.
fn find_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rvault"))
            .find(|candidate| candidate.is_file())
    });
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin").join("rvault"))
        .filter(|candidate| candidate.is_file());
    on_path.or(in_cargo_home).unwrap_or_else(|| {
        panic!(
            "RustyVault's `rvault` binary is not installed (not on PATH, not in ~/.cargo/bin): \
             run scripts/setup/rvault.sh first"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

impl RustyVault {
    /// Starts a fresh server, initialises it (1 share, threshold 1) and unseals it.
    pub async fn start() -> RustyVault {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir for RustyVault");
        let config = format!(
            r#"storage "file" {{
  path = "{data}"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
log_level = "warn"
work_dir = "{work}"
"#,
            data = dir.path().join("data").display(),
            work = dir.path().join("work").display(),
        );
        std::fs::write(dir.path().join("config.hcl"), config).expect("write RustyVault config");

        let mut vault = RustyVault {
            address: format!("http://127.0.0.1:{port}"),
            root_token: String::new(),
            unseal_key: String::new(),
            port,
            binary: find_binary(),
            dir,
            child: None,
            http: reqwest::Client::new(),
        };
        vault.spawn().await;
        let (status, init) = vault
            .api_as(
                None,
                "PUT",
                "sys/init",
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await;
        assert_eq!(status, 200, "RustyVault init failed: {init}");
        vault.unseal_key = init["keys"][0].as_str().expect("init keys").to_string();
        vault.root_token = init["root_token"].as_str().expect("root_token").to_string();
        vault.unseal().await;
        vault
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = Command::new(&self.binary)
            .arg("server")
            .arg("--config")
            .arg(self.dir.path().join("config.hcl"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_until_listening().await;
    }

    /// Polls the listener (bounded) until the freshly spawned server answers.
    async fn wait_until_listening(&mut self) {
        let url = format!("{}/v1/sys/seal-status", self.address);
        for _ in 0..200 {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
                panic!("rvault server exited with {status}: {log}");
            }
            if self.http.get(&url).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "rvault server did not listen on {} within 10 s",
            self.address
        );
    }

    async fn unseal(&self) {
        let (status, body) = self
            .api_as(
                None,
                "PUT",
                "sys/unseal",
                Some(json!({"key": self.unseal_key})),
            )
            .await;
        assert_eq!(status, 200, "unseal failed: {body}");
        assert_eq!(body["sealed"], json!(false), "still sealed: {body}");
    }

    /// Kills the server; its storage stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and storage, and unseals it.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
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
        let response = request.send().await.expect("RustyVault answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("RustyVault body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Mounts a KV (v1: RustyVault's `kv` engine) at `mount`.
    pub async fn enable_kv1(&self, mount: &str) {
        let (status, body) = self
            .api(
                "POST",
                &format!("sys/mounts/{mount}"),
                Some(json!({"type": "kv"})),
            )
            .await;
        assert!(
            status == 200 || status == 204,
            "mount {mount}: {status} {body}"
        );
    }

    /// Enables AppRole at `auth/approle` (once) and creates `role`; returns its role_id and a
    /// new secret_id.
    pub async fn approle(&self, role: &str) -> (String, String) {
        let (status, auths) = self.api("GET", "sys/auth", None).await;
        assert_eq!(status, 200, "list auth methods: {auths}");
        if auths.pointer("/data/approle~1").is_none() && auths.get("approle/").is_none() {
            let (status, body) = self
                .api("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
                .await;
            assert!(
                status == 200 || status == 204,
                "enable approle: {status} {body}"
            );
        }
        let (status, body) = self
            .api(
                "POST",
                &format!("auth/approle/role/{role}"),
                Some(json!({"token_ttl": "1h", "token_policies": ["netsuite-token-rotator"]})),
            )
            .await;
        assert!(
            status == 200 || status == 204,
            "create role: {status} {body}"
        );
        let (status, body) = self
            .api("GET", &format!("auth/approle/role/{role}/role-id"), None)
            .await;
        assert_eq!(status, 200, "read role-id: {body}");
        let role_id = body["data"]["role_id"]
            .as_str()
            .expect("role_id")
            .to_string();
        let (status, body) = self
            .api(
                "POST",
                &format!("auth/approle/role/{role}/secret-id"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 200, "new secret-id: {body}");
        let secret_id = body["data"]["secret_id"]
            .as_str()
            .expect("secret_id")
            .to_string();
        (role_id, secret_id)
    }

    /// A new child token of root.
    pub async fn create_token(&self) -> String {
        let (status, body) = self
            .api(
                "POST",
                "auth/token/create",
                Some(json!({"ttl": "1h", "policies": ["netsuite-token-rotator"]})),
            )
            .await;
        assert_eq!(status, 200, "create token: {body}");
        body["auth"]["client_token"]
            .as_str()
            .expect("client_token")
            .to_string()
    }

    pub async fn revoke_token(&self, token: &str) {
        let (status, body) = self
            .api(
                "POST",
                &format!("auth/token/revoke/{token}"),
                Some(json!({})),
            )
            .await;
        assert!(
            status == 200 || status == 204,
            "revoke token: {status} {body}"
        );
    }
}

impl Drop for RustyVault {
    fn drop(&mut self) {
        self.stop();
    }
}
