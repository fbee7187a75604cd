//! A real Prometheus (and its promtool) for the tests of the shipped alert rules and dashboard:
//! the binaries from Debian's `prometheus` package, which `scripts/setup/prometheus.sh`
//! installs. A test that needs them fails, naming that script, when they are missing: the
//! rules and the dashboard are untested otherwise, and a skip would pass silently.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netsuite_token_rotator::netsuite::encode::percent_encode;

/// Longest wait for Prometheus to start, scrape or evaluate: it scrapes and evaluates every
/// second here, so this is a bound against a hang on a loaded machine, not a timing assertion.
pub const PROMETHEUS_BOUND: Duration = Duration::from_secs(120);

/// The repository's root, where the shipped files are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of `name` (`promtool`, `prometheus`): `$PROMTOOL` / `$PROMETHEUS` when set, else
/// from `PATH`. Panics with what to run when it is missing.
pub fn binary(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(name.to_uppercase()).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is missing: run `bash scripts/setup/prometheus.sh` (installs Debian's \
                 prometheus package), or set ${} to the binary",
                name.to_uppercase()
            )
        })
}

/// Runs promtool with `args`, `stdin` fed to it; returns whether it succeeded and its output.
pub fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(binary("promtool"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A Prometheus server on a free port, scraping one target every second as the job
/// `netsuite-token-rotator` and evaluating `rule_files` every second, its data in a temporary
/// folder. Stopped when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(target: &str, rule_files: &[&Path]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut rules: String = rule_files
            .iter()
            .map(|p| format!("  - {:?}\n", p.display().to_string()))
            .collect();
        if !rules.is_empty() {
            rules.insert_str(0, "rule_files:\n");
        }
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             {rules}\
             scrape_configs:\n  - job_name: netsuite-token-rotator\n    static_configs:\n      - targets: [{target:?}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let listen = format!("127.0.0.1:{}", crate::rotator::free_port());
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus {
            child,
            url: format!("http://{listen}"),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", prometheus.url);
        poll("Prometheus answering /-/ready", async || {
            let response = reqwest::get(&ready).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        prometheus
    }

    /// `GET /api/v1/<path>` as JSON; panics unless Prometheus answers `status: success`.
    pub async fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.api_answer(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "success", "{path}: {body}");
        json["data"].clone()
    }

    /// `GET /api/v1/<path>`: status code and body.
    pub async fn api_answer(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}/api/v1/{path}", self.url))
            .await
            .expect("Prometheus answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// The result vector of an instant query.
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let data = self
            .api(&format!("query?query={}", percent_encode(promql)))
            .await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The alerts pending or firing now.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        self.api("alerts").await["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Returns once every rule group has been evaluated after this call began: what the rules
    /// say from then on reflects the samples scraped before it.
    pub async fn evaluated_since_now(&self) {
        let since = chrono::Utc::now();
        poll("a rule evaluation after now", async || {
            let groups = self.api("rules").await["groups"].as_array().cloned()?;
            groups
                .iter()
                .all(|g| {
                    g["lastEvaluation"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t > since)
                })
                .then_some(())
        })
        .await
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value, pausing briefly between tries; panics after
/// [`PROMETHEUS_BOUND`]. Only for an external process's progress (Prometheus scraping and
/// evaluating on its own clock), which no event of ours announces.
pub async fn poll<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PROMETHEUS_BOUND;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "waited {PROMETHEUS_BOUND:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
