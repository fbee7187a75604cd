//! The TOML configuration: its shape, its validation, and the resolution of secret references.
//!
//! Loading happens in two stages, so that every mistake is reported with the path of the field
//! that holds it (`integrations[1].store.kind`) and what was expected there:
//! 1. [`Config::load`] parses and checks the file (types, unknown keys, value formats, names).
//! 2. [`IntegrationConfig::resolve`] reads the secret references of one integration, when a
//!    command needs them, and yields the engine's [`Integration`]; a [`Resolver`] does that for
//!    many, sharing what they have in common.
//!
//! The keys are the contract documented in `config/example.toml` and `docs/configuration.md`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::netsuite::{AccountId, ClientOptions};
use crate::schedule::{Freezes, PatternCache};
use crate::secret::SecretRef;
use crate::value_format::check_base_url;

mod freeze;
mod integration;
mod resolve;
pub(crate) mod schema;

pub use freeze::FreezeConfig;
use freeze::*;
use integration::*;
pub use integration::{ExpectConfig, IntegrationConfig, LoginConfig, M2mConfig};
pub use resolve::Resolver;
pub use schema::{chart_config_schema, config_schema};

// The config types of the parts, each beside the part it configures; named here too, as the
// file's tables.
pub use crate::alert::config::AlertConfig;
pub use crate::store::config::StoreConfig;
pub use crate::telemetry::config::{LogFormat, OtlpProtocol, TelemetryConfig};
pub use crate::value_format::{MAX_DURATION, parse_duration};

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/netsuite-token-rotator/config.toml";

/// A configuration problem: the file, the field path, and what was wrong. Exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {problem}")]
pub struct ConfigError {
    pub file: String,
    /// Dotted path of the offending key, e.g. `integrations[0].revoke_after`; `(file)` for
    /// problems with the file as a whole.
    pub field: String,
    pub problem: String,
}

/// The whole file: `config/example.toml` shows every key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub netsuite: NetSuiteConfig,
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
    #[schemars(length(min = 1))]
    pub integrations: Vec<IntegrationConfig>,
    /// `[[freeze]]`: windows in which no integration's rotation starts.
    #[serde(default)]
    pub freeze: Vec<FreezeConfig>,
    /// The `[[freeze]]` windows, parsed (not a TOML key; set by [`Config::parse`]).
    #[serde(skip)]
    pub freezes: Freezes,
    /// The file this was read from (not a TOML key).
    #[serde(skip)]
    pub source: PathBuf,
    /// Whether the file's mode lets its group or others read it (not a TOML key; set by
    /// [`Config::load`]).
    #[serde(skip)]
    pub readable_by_others: bool,
}

/// `[daemon]`: the process's listener, how much runs at once, shutdown and store re-reads.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Rotations running at once across all integrations.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1))]
    pub max_concurrent_rotations: usize,
    /// NetSuite calls at once per account (NetSuite's concurrency limit is per account and
    /// shared with every other integration in it).
    #[serde(default = "default_max_per_account")]
    #[schemars(range(min = 1))]
    pub max_concurrent_per_account: usize,
    /// How long an in-flight step may run on at shutdown, e.g. `"30s"`.
    #[serde(default = "default_shutdown_grace")]
    #[schemars(pattern(schema::DURATION))]
    pub shutdown_grace: String,
    /// A scrape of `/metrics` re-reads every store at most this often (`"0s"`: never), so
    /// that what another process changed shows and is acted on (see `server`).
    #[serde(default = "default_reconcile_interval")]
    #[schemars(pattern(schema::DURATION))]
    pub reconcile_interval: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: default_listen(),
            max_concurrent_rotations: default_max_concurrent(),
            max_concurrent_per_account: default_max_per_account(),
            shutdown_grace: default_shutdown_grace(),
            reconcile_interval: default_reconcile_interval(),
        }
    }
}

/// How the NetSuite client behaves; the defaults suit production.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetSuiteConfig {
    /// Whole-request timeout, e.g. `"30s"`.
    #[schemars(pattern(schema::DURATION))]
    pub timeout: Option<String>,
    /// Attempts for transient failures, including the first.
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// Base URL of the `datacenterurls` service (for proxies and simulators).
    #[schemars(pattern(schema::BASE_URL))]
    pub datacenter_url: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_max_concurrent() -> usize {
    4
}
fn default_max_per_account() -> usize {
    2
}
fn default_reconcile_interval() -> String {
    "60s".into()
}

fn default_shutdown_grace() -> String {
    "30s".into()
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            field: "(file)".into(),
            problem: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text, &path.display().to_string())?;
        config.source = path.to_path_buf();
        config.readable_by_others = readable_by_group_or_others(path);
        config.anchor_relative_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let err = |field: String, problem: String| ConfigError {
            file: file.to_string(),
            field,
            problem,
        };
        let parse = || {
            toml::Deserializer::parse(text)
                .map_err(|e| err(locate(text, e.span()), redact_values(e.message())))
        };
        // Tracking the path of every value slows every parse down; it is only needed to name
        // the key of an error, so a config that fails is read a second time with it.
        let mut config = match Config::deserialize(parse()?) {
            Ok(config) => config,
            Err(_) => Self::deserialize_naming_the_key(text, parse()?, &err)?,
        };
        config.freezes = parse_freezes(&config.freeze, &Freezes::default(), "freeze")
            .map_err(|(field, problem)| err(field, problem))?;
        config
            .validate()
            .map_err(|(field, problem)| err(field, problem))?;
        Ok(config)
    }

    /// Deserialises a config that failed to, this time tracking the path of each value, for an
    /// error that names the key (`integrations[2].store.kind`).
    fn deserialize_naming_the_key(
        text: &str,
        deserializer: toml::Deserializer<'_>,
        err: &dyn Fn(String, String) -> ConfigError,
    ) -> Result<Config, ConfigError> {
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let field = if field == "." {
                locate(text, inner.span())
            } else {
                field
            };
            err(field, redact_values(inner.message()))
        })
    }

    /// Checks what serde cannot: formats, ranges, uniqueness.
    fn validate(&self) -> Result<(), (String, String)> {
        self.daemon
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| field_err("daemon.listen", "expected an address like 127.0.0.1:9464"))?;
        parse_duration(&self.daemon.shutdown_grace)
            .map_err(|p| ("daemon.shutdown_grace".into(), p))?;
        parse_duration(&self.daemon.reconcile_interval)
            .map_err(|p| ("daemon.reconcile_interval".into(), p))?;
        if self.daemon.max_concurrent_per_account == 0 {
            return Err(field_err(
                "daemon.max_concurrent_per_account",
                "expected a number of at least 1",
            ));
        }
        if self.daemon.max_concurrent_rotations == 0 {
            return Err(field_err(
                "daemon.max_concurrent_rotations",
                "expected a number of at least 1",
            ));
        }
        if let Some(t) = &self.netsuite.timeout {
            parse_duration(t).map_err(|p| ("netsuite.timeout".into(), p))?;
        }
        if let Some(0) = self.netsuite.max_attempts {
            return Err(field_err("netsuite.max_attempts", "expected at least 1"));
        }
        if let Some(url) = &self.netsuite.datacenter_url {
            check_base_url(url).map_err(|p| ("netsuite.datacenter_url".into(), p))?;
        }
        if self.integrations.is_empty() {
            return Err(field_err(
                "integrations",
                "expected at least one [[integrations]] table",
            ));
        }
        let mut names = HashSet::new();
        let mut locations = BTreeMap::new();
        // Fleets share a few schedules: each expression is parsed once.
        let mut patterns = PatternCache::default();
        for (i, integration) in self.integrations.iter().enumerate() {
            let at = |key: &str| format!("integrations[{i}].{key}");
            let name = &integration.name;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err((
                    at("name"),
                    format!("{name:?}: expected letters, digits, '-' or '_' only"),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err((at("name"), format!("{name:?} is used by two integrations")));
            }
            AccountId::parse(&integration.account_id).map_err(|p| (at("account_id"), p))?;
            if let Some(url) = &integration.endpoint {
                check_base_url(url).map_err(|p| (at("endpoint"), p))?;
            }
            parse_duration(&integration.revoke_after).map_err(|p| (at("revoke_after"), p))?;
            integration
                .schedule_cached(&mut patterns, &self.freezes)
                .map_err(|(key, p)| (at(&key), p))?;
            if let Some(prefix) = &integration.token_name_prefix
                && (prefix.is_empty() || prefix.len() > 40)
            {
                return Err((
                    at("token_name_prefix"),
                    "expected 1 to 40 characters".into(),
                ));
            }
            integration
                .validate_kind()
                .map_err(|(key, p)| (at(&key), p))?;
            integration
                .store
                .validate()
                .map_err(|(key, problem)| (at(&format!("store.{key}")), problem))?;
            let location = integration.store.location();
            if let Some(other) = locations.insert(location.clone(), name.clone()) {
                return Err((
                    at("store"),
                    format!("{location} is already the store of integration {other:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Every secret written as a literal string in the file, by field path.
    pub fn literal_secret_fields(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (i, alert) in self.alerts.iter().enumerate() {
            let (key, secret) = match alert {
                AlertConfig::Webhook { secret, .. } => ("secret", secret.as_ref()),
                AlertConfig::Slack { webhook_url } => ("webhook_url", Some(webhook_url)),
                AlertConfig::Pagerduty { routing_key, .. } => ("routing_key", Some(routing_key)),
            };
            if secret.is_some_and(SecretRef::is_literal) {
                found.push(format!("alerts[{i}].{key}"));
            }
        }
        for (i, integration) in self.integrations.iter().enumerate() {
            found.extend(integration.literal_secrets(i));
        }
        found
    }

    /// Why this config must not be used: it holds literal secrets in a file its group or other
    /// users can read. `None` when the file is private or holds only references.
    pub fn exposed_secrets_problem(&self) -> Option<String> {
        if !self.readable_by_others {
            return None;
        }
        let fields = self.literal_secret_fields();
        if fields.is_empty() {
            return None;
        }
        // Name a few fields, not hundreds: enough to find them in the file.
        const NAMED: usize = 5;
        let mut named = fields
            .iter()
            .take(NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if fields.len() > NAMED {
            named.push_str(&format!(" and {} more", fields.len() - NAMED));
        }
        Some(format!(
            "{} holds literal secrets ({named}) and its group or other users can read it; run `chmod 600 {}` (or move the secrets to {{ env = .. }}, {{ file = .. }} or {{ credential = .. }} references)",
            self.source.display(),
            self.source.display()
        ))
    }

    /// File-store paths in the config are relative to the config file's folder.
    fn anchor_relative_paths(&mut self, base: &Path) {
        for integration in &mut self.integrations {
            match &mut integration.store {
                StoreConfig::File(f) if f.path.is_relative() => f.path = base.join(&f.path),
                _ => {}
            }
        }
    }

    /// The integrations named, or all of them; an unknown name is an error naming it.
    pub fn select(&self, names: &[String]) -> Result<Vec<(usize, &IntegrationConfig)>, String> {
        if names.is_empty() {
            return Ok(self.integrations.iter().enumerate().collect());
        }
        names
            .iter()
            .map(|n| {
                self.integrations
                    .iter()
                    .enumerate()
                    .find(|(_, i)| &i.name == n)
                    .ok_or_else(|| {
                        let known: Vec<_> = self.integrations.iter().map(|i| &i.name).collect();
                        format!("no integration named {n:?} in the config (known: {known:?})")
                    })
            })
            .collect()
    }

    pub fn shutdown_grace(&self) -> Duration {
        parse_duration(&self.daemon.shutdown_grace).expect("validated")
    }

    pub fn reconcile_interval(&self) -> Duration {
        parse_duration(&self.daemon.reconcile_interval).expect("validated")
    }

    /// Whole-request timeout for NetSuite calls.
    pub fn netsuite_timeout(&self) -> Option<Duration> {
        self.netsuite
            .timeout
            .as_deref()
            .map(|t| parse_duration(t).expect("validated"))
    }

    /// The NetSuite client's options from `[netsuite]`.
    pub fn netsuite_client_options(&self) -> ClientOptions {
        let mut options = ClientOptions::default();
        if let Some(timeout) = self.netsuite_timeout() {
            options.timeout = timeout;
        }
        if let Some(attempts) = self.netsuite.max_attempts {
            options.max_attempts = attempts;
        }
        if let Some(url) = &self.netsuite.datacenter_url {
            options.datacenter_base = url.trim_end_matches('/').to_string();
        }
        options
    }
}

/// True when the file's permission bits grant read to its group or to others.
#[cfg(unix)]
fn readable_by_group_or_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
fn readable_by_group_or_others(_path: &Path) -> bool {
    false
}

fn field_err(field: &str, problem: &str) -> (String, String) {
    (field.to_string(), problem.to_string())
}

/// Describes where a byte span of the file lies, for errors serde could not attach to a key.
fn locate(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}")
        }
        None => "(file)".into(),
    }
}

/// serde messages quote the offending value (`invalid type: string "hunter2"`); a misplaced
/// secret must not be echoed, so quoted strings in messages become `a string`.
fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("string \"") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "string \"".len()..];
        match after.find('"') {
            Some(end) => {
                out.push_str("a string");
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("a string");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::sync::Arc;

    const MINIMAL: &str = r#"
[[integrations]]
name = "erp-sync"
account_id = "123456_SB1"
consumer_key = { env = "CK" }
consumer_secret = { credential = "cs" }
revoke_after = "0s"
[integrations.login]
email = "i@example.com"
password = { file = "/run/pw" }
role = "1001"
[integrations.store]
kind = "file"
path = "/tmp/erp.json"
"#;

    fn parse_err(text: &str) -> ConfigError {
        Config::parse(text, "test.toml").expect_err("config should be refused")
    }

    #[cfg(unix)]
    #[test]
    fn literal_secrets_in_a_file_others_can_read_are_a_problem_naming_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let with_literals = format!(
            "[[alerts]]\nkind = \"pagerduty\"\nrouting_key = \"literal-routing-key\"\n{}",
            MINIMAL.replace(r#"{ file = "/run/pw" }"#, r#""hunter2-literal""#)
        );
        std::fs::write(&path, &with_literals).unwrap();

        for (mode, exposed) in [(0o644, true), (0o640, true), (0o604, true), (0o600, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let config = Config::load(&path).unwrap();
            let problem = config.exposed_secrets_problem();
            assert_eq!(problem.is_some(), exposed, "mode {mode:o}: {problem:?}");
            if let Some(problem) = problem {
                assert!(problem.contains(&path.display().to_string()), "{problem}");
                assert!(problem.contains("chmod 600"), "{problem}");
                assert!(
                    problem.contains("integrations[0].login.password"),
                    "{problem}"
                );
                assert!(problem.contains("alerts[0].routing_key"), "{problem}");
                assert!(!problem.contains("hunter2-literal"), "{problem}");
                assert!(!problem.contains("literal-routing-key"), "{problem}");
            }
        }

        // References only: a readable file holds nothing secret.
        std::fs::write(&path, MINIMAL).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Config::load(&path).unwrap().exposed_secrets_problem(), None);
    }

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = Config::parse(MINIMAL, "t").unwrap();
        assert_eq!(c.daemon.listen, "127.0.0.1:9464");
        assert_eq!(c.integrations[0].schedule, "0 0 3 * * Sun");
        assert!(matches!(
            c.integrations[0].consumer_secret,
            Some(SecretRef::Credential { .. })
        ));
    }

    /// Daemon-wide and per-integration freeze windows, recurring and fixed, with TOML dates
    /// written with or without quotes; each mistake named by its key.
    #[test]
    fn freeze_windows_parse_and_their_mistakes_are_named() {
        let text = format!(
            r#"
[[freeze]]
name = "month-end"
start = "0 0 0 L * *"
duration = "72h"
timezone = "America/New_York"

[[freeze]]
from = 2026-12-24
until = "2027-01-02T00:00:00"
timezone = "Europe/Berlin"
{MINIMAL}
[[integrations.freeze]]
name = "audit"
from = 2027-02-10T00:00:00Z
until = 2027-02-12T00:00:00Z
"#
        );
        let c = Config::parse(&text, "t").unwrap();
        let schedule = c.integrations[0]
            .schedule_cached(&mut PatternCache::default(), &c.freezes)
            .unwrap();
        let at = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let freeze = |t: &str| {
            schedule
                .freeze_at(at(t))
                .map(|f| (f.name.to_string(), f.until))
        };
        assert_eq!(
            freeze("2026-12-01T00:00:00Z"),
            Some(("month-end".into(), at("2026-12-03T05:00:00Z")))
        );
        assert_eq!(
            freeze("2026-12-25T00:00:00Z"),
            // The holidays run into December's month-end window: one freeze.
            Some(("freeze[1]".into(), at("2027-01-03T05:00:00Z")))
        );
        assert_eq!(
            freeze("2027-02-11T00:00:00Z"),
            Some(("audit".into(), at("2027-02-12T00:00:00Z")))
        );
        assert_eq!(freeze("2027-01-15T00:00:00Z"), None);

        let cases = [
            (
                "[[freeze]]\nstart = \"0 0 0 L * *\"\n",
                "freeze[0].duration",
                "beside start",
            ),
            ("[[freeze]]\nduration = \"1h\"\n", "freeze[0].start", "cron"),
            (
                "[[freeze]]\nfrom = \"2027-01-01\"\n",
                "freeze[0].until",
                "end of the window",
            ),
            (
                "[[freeze]]\nname = \"x\"\n",
                "freeze[0].start",
                "from and until",
            ),
            (
                "[[freeze]]\nstart = \"0 0 0 L * *\"\nduration = \"1h\"\nfrom = \"2027-01-01\"\nuntil = \"2027-01-02\"\n",
                "freeze[0].start",
                "not both",
            ),
            (
                "[[freeze]]\nfrom = 12\nuntil = \"2027-01-02\"\n",
                "freeze[0].from",
                "expected a date",
            ),
            (
                "[[freeze]]\nfrom = \"2027-01-03\"\nuntil = \"2027-01-02\"\n",
                "freeze[0].until",
                "not after",
            ),
            (
                "[[freeze]]\nstart = \"0 0 0 L * *\"\nduration = \"0s\"\n",
                "freeze[0].duration",
                "1s to 366d",
            ),
            (
                "[[freeze]]\nstart = \"0 0 0 L * *\"\nduration = \"1h\"\nzone = \"UTC\"\n",
                "freeze[0]",
                "zone",
            ),
        ];
        for (freeze, field, says) in cases {
            let e = parse_err(&format!("{freeze}{MINIMAL}"));
            assert!(e.field.starts_with(field), "{freeze}: {e}");
            assert!(e.problem.contains(says), "{freeze}: {e}");
        }
        let e = parse_err(&format!(
            "{MINIMAL}[[integrations.freeze]]\nstart = \"0 0 0 L * *\"\nduration = \"1h\"\ntimezone = \"Mars/Olympus\"\n"
        ));
        assert_eq!(e.field, "integrations[0].freeze[0].timezone", "{e}");
    }

    #[test]
    fn unknown_store_kind_names_the_field() {
        let e = parse_err(&MINIMAL.replace("kind = \"file\"", "kind = \"s3\""));
        assert_eq!(e.field, "integrations[0].store.kind");
        assert!(e.problem.contains("s3"), "{e}");
        assert!(e.problem.contains("file"), "{e}");
    }

    /// A misspelt key inside `[integrations.store]` is named, with the table and the keys that
    /// the store's kind accepts, wherever `kind` stands; not "missing field `kind`".
    #[test]
    fn a_misspelt_store_key_is_named_with_the_keys_its_kind_accepts() {
        let file_store = "kind = \"file\"\npath = \"/tmp/erp.json\"";
        for (store, misspelt, kind, accepted) in [
            (
                "kind = \"file\"\npathh = \"/tmp/erp.json\"",
                "pathh",
                "file",
                "kind, path",
            ),
            (
                "pathh = \"/tmp/erp.json\"\nkind = \"file\"",
                "pathh",
                "file",
                "kind, path",
            ),
            (
                "kind = \"vault\"\naddress = \"http://v:8200\"\nmountt = \"kv\"\n\
                 path = \"erp\"\nauth = { method = \"token\", token = { env = \"T\" } }",
                "mountt",
                "vault",
                "kind, address, mount, path, kv_version, namespace, ca_cert, auth",
            ),
            (
                "kind = \"aws\"\nsecret_idd = \"erp\"",
                "secret_idd",
                "aws",
                "kind, secret_id, region, endpoint_url, kms_key_id, tags, create_if_missing",
            ),
        ] {
            let e = parse_err(&MINIMAL.replace(file_store, store));
            assert_eq!(e.field, "integrations[0].store", "{e}");
            assert!(
                e.problem.contains(&format!("unknown key `{misspelt}`")),
                "{e}"
            );
            assert!(e.problem.contains(&format!("kind = \"{kind}\"")), "{e}");
            assert!(e.problem.contains(accepted), "{e}");
        }

        // A misspelt `kind` is the unknown key, and the kinds there are are named.
        let e = parse_err(&MINIMAL.replace("kind = \"file\"", "kindd = \"file\""));
        assert_eq!(e.field, "integrations[0].store", "{e}");
        assert!(e.problem.contains("unknown key `kindd`"), "{e}");
        assert!(e.problem.contains("missing key `kind`"), "{e}");
        assert!(e.problem.contains("\"file\", \"vault\" or \"aws\""), "{e}");

        // Keys of the right names keep their own messages and paths.
        let e = parse_err(&MINIMAL.replace(file_store, "kind = \"file\""));
        assert!(e.problem.contains("path"), "{e}");
        let e = parse_err(&MINIMAL.replace(file_store, "kind = 3\npath = \"/x\""));
        assert_eq!(e.field, "integrations[0].store.kind", "{e}");
        assert!(e.problem.contains("expected a string"), "{e}");
    }

    #[test]
    fn bad_duration_names_the_field_and_the_expected_form() {
        let e = parse_err(&MINIMAL.replace("\"0s\"", "\"soon\""));
        assert_eq!(e.field, "integrations[0].revoke_after");
        assert!(e.problem.contains("expected a duration"), "{e}");
    }

    /// Regression: these passed validation, then the first promotion (`now + revoke_after`) and
    /// every scheduled run (`next + jitter`) panicked on a date past year 262143.
    #[test]
    fn durations_longer_than_ten_years_are_refused() {
        let e = parse_err(&MINIMAL.replace("\"0s\"", "\"1000000y\""));
        assert_eq!(e.field, "integrations[0].revoke_after");
        assert!(e.problem.contains("longer than 10 years"), "{e}");
        let e = parse_err(&MINIMAL.replace(
            "revoke_after = \"0s\"",
            "revoke_after = \"0s\"\njitter = \"1000000y\"",
        ));
        assert_eq!(e.field, "integrations[0].jitter");
        assert!(e.problem.contains("longer than 10 years"), "{e}");
        let c = Config::parse(&MINIMAL.replace("\"0s\"", "\"10y\""), "t").unwrap();
        let grace = parse_duration(&c.integrations[0].revoke_after).unwrap();
        assert!(chrono::Utc::now() + grace > chrono::Utc::now());
    }

    #[test]
    fn unknown_key_is_refused_with_its_path() {
        let e = parse_err(&MINIMAL.replace("role = \"1001\"", "role = \"1001\"\nrol = 3"));
        assert_eq!(e.field, "integrations[0].login.rol");
        assert!(e.problem.contains("rol"), "{e}");
    }

    #[test]
    fn malformed_secret_reference_says_which_forms_are_accepted() {
        let e = parse_err(&MINIMAL.replace("{ env = \"CK\" }", "{ vault = \"x\" }"));
        assert_eq!(e.field, "integrations[0].consumer_key");
        assert!(e.problem.contains("{ env = \"NAME\" }"), "{e}");
    }

    #[test]
    fn syntax_error_gives_line_and_column() {
        let e = parse_err("[[integrations]\nname = 1");
        assert!(e.field.starts_with("line 1"), "{e}");
    }

    #[test]
    fn misplaced_literal_secret_is_not_echoed() {
        let e = parse_err(&MINIMAL.replace("role = \"1001\"", "role = { x = \"hunter2-secret\" }"));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = parse_err(&MINIMAL.replace("\"i@example.com\"", "[\"hunter2-secret\"]"));
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn duplicate_names_and_shared_stores_are_refused() {
        let twice = format!("{MINIMAL}{MINIMAL}");
        let e = parse_err(&twice);
        assert_eq!(e.field, "integrations[1].name");
        let e = parse_err(&format!(
            "{MINIMAL}{}",
            MINIMAL.replace("erp-sync", "other")
        ));
        assert_eq!(e.field, "integrations[1].store");
    }

    #[test]
    fn bad_account_id_names_the_field() {
        let e = parse_err(&MINIMAL.replace("123456_SB1", "not an account"));
        assert_eq!(e.field, "integrations[0].account_id");
    }

    #[test]
    fn resolve_reads_references_and_names_missing_ones() {
        let c = Config::parse(MINIMAL, "t").unwrap();
        let e = c.integrations[0].resolve(0).expect_err("env CK is unset");
        assert_eq!(e.field, "integrations[0].consumer_key");
        assert!(e.problem.contains("CK"), "{e}");
    }

    #[test]
    fn secret_refs_name_every_reference_the_store_login_included() {
        let fields = |text: &str| -> Vec<String> {
            let c = Config::parse(text, "t").unwrap();
            let refs = c.integrations[0].secret_refs(0);
            refs.into_iter().map(|(field, _)| field).collect()
        };
        assert_eq!(
            fields(MINIMAL),
            [
                "integrations[0].consumer_key",
                "integrations[0].consumer_secret",
                "integrations[0].login.password"
            ]
        );
        let vault = MINIMAL.replace(
            "kind = \"file\"\npath = \"/tmp/erp.json\"",
            "kind = \"vault\"\naddress = \"http://v:8200\"\npath = \"erp\"\n\
             auth = { method = \"approle\", role_id = { env = \"R\" }, secret_id = { env = \"S\" } }",
        );
        let vault_fields = fields(&vault);
        assert!(
            vault_fields.ends_with(&[
                "integrations[0].store.auth.role_id".to_string(),
                "integrations[0].store.auth.secret_id".to_string()
            ]),
            "{vault_fields:?}"
        );
    }

    #[test]
    fn a_resolver_shares_accounts_logins_and_expectations_but_not_different_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let (pw1, pw2) = (dir.path().join("pw1"), dir.path().join("pw2"));
        std::fs::write(&pw1, "first password\n").unwrap();
        std::fs::write(&pw2, "second password\n").unwrap();
        let integration = |name: &str, account: &str, pw: &Path| {
            format!(
                r#"
[[integrations]]
name = "{name}"
account_id = "{account}"
consumer_key = "ck-{name}"
consumer_secret = "cs-{name}"
revoke_after = "0s"
[integrations.login]
email = "i@example.com"
password = {{ file = "{}" }}
role = "1001"
[integrations.store]
kind = "file"
path = "/tmp/{name}.json"
"#,
                pw.display()
            )
        };
        let text = [
            integration("a", "123456_SB1", &pw1),
            integration("b", "123456-sb1", &pw1),
            integration("c", "123456_SB1", &pw2),
            integration("d", "654321", &pw1),
        ]
        .concat();
        let config = Config::parse(&text, "t").unwrap();
        let mut resolver = Resolver::default();
        let [a, b, c, d] =
            [0, 1, 2, 3].map(|i| resolver.resolve(&config.integrations[i], i).unwrap());

        let [ta, tb, tc, td] = [&a, &b, &c, &d].map(|i| i.tba().expect("TBA integrations"));
        assert!(Arc::ptr_eq(&ta.login, &tb.login), "one login, one copy");
        assert!(Arc::ptr_eq(&ta.expect, &tb.expect));
        assert!(Arc::ptr_eq(&a.endpoint.base_url, &c.endpoint.base_url));
        assert_eq!(a.account, b.account);
        assert!(
            !Arc::ptr_eq(&ta.login, &tc.login),
            "another password is another login"
        );
        assert_eq!(ta.login.password.expose_secret(), "first password");
        assert_eq!(tc.login.password.expose_secret(), "second password");
        assert!(
            !Arc::ptr_eq(&ta.expect, &td.expect),
            "another account, another company id"
        );
        assert_eq!(td.expect.company_id.as_deref(), Some("654321"));
        assert_eq!(
            d.endpoint.base_url.as_ref(),
            "https://654321.restlets.api.netsuite.com"
        );
        assert_eq!(tb.consumer_key.expose_secret(), "ck-b");
        assert_eq!((&*a.name, &*a.token_name_prefix), ("a", "a"));
    }

    #[test]
    fn redact_values_drops_quoted_strings() {
        assert_eq!(
            redact_values("invalid type: string \"pw\", expected u32"),
            "invalid type: a string, expected u32"
        );
    }

    #[test]
    fn telemetry_keys_parse_and_a_wrong_protocol_names_the_field() {
        let text = format!(
            "[telemetry]\notlp_endpoint = \"http://c:4318\"\notlp_protocol = \"grpc\"\n\
             service_name = \"rotator\"\nresource_attributes = {{ team = \"erp\" }}\n{MINIMAL}"
        );
        let c = Config::parse(&text, "t").unwrap();
        assert_eq!(c.telemetry.otlp_protocol, Some(OtlpProtocol::Grpc));
        assert_eq!(c.telemetry.service_name.as_deref(), Some("rotator"));
        assert_eq!(c.telemetry.resource_attributes["team"], "erp");

        let e = parse_err(&text.replace("\"grpc\"", "\"http/json\""));
        assert_eq!(e.field, "telemetry.otlp_protocol");
    }
}
