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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::netsuite::m2m::KeyKind;
use crate::netsuite::{AccountId, ClientOptions, Endpoint, NlauthLogin};
use crate::rotation::{Credential, Expectations, Integration, LoginGate, M2m, Tba};
use crate::schedule::{FreezeWindow, Freezes, PatternCache, Schedule};
use crate::secret::{SecretRef, SecretRefError};
use crate::store::vault::VaultAuth;
use crate::value_format::check_base_url;

pub(crate) mod schema;
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = schema::one_credential_kind)]
pub struct IntegrationConfig {
    /// Unique name: letters, digits, '-' and '_'.
    #[schemars(pattern(schema::NAME))]
    pub name: String,
    /// NetSuite account id; sandboxes as `123456_SB1` (`123456-sb1` is accepted too).
    #[schemars(pattern(schema::ACCOUNT_ID))]
    pub account_id: String,
    /// Base URL replacing `https://<account>.restlets.api.netsuite.com` (TBA) or
    /// `https://<account>.suitetalk.api.netsuite.com` (M2M).
    #[schemars(pattern(schema::BASE_URL))]
    pub endpoint: Option<String>,
    /// TBA only.
    pub consumer_key: Option<SecretRef>,
    /// TBA only.
    pub consumer_secret: Option<SecretRef>,
    /// Cron expression with seconds, e.g. `"0 0 3 * * Sun"`.
    #[serde(default = "default_schedule")]
    #[schemars(pattern(schema::CRON))]
    pub schedule: String,
    /// IANA time zone of `schedule`; UTC when absent.
    pub timezone: Option<String>,
    /// Random delay up to this long added to each scheduled time, e.g. `"5m"` (and to the end
    /// of a freeze window that held a rotation).
    #[schemars(pattern(schema::DURATION))]
    pub jitter: Option<String>,
    /// `[[integrations.freeze]]`: this integration's own freeze windows, beside the
    /// daemon-wide `[[freeze]]` ones.
    #[serde(default)]
    pub freeze: Vec<FreezeConfig>,
    /// Grace window before the replaced token is revoked, e.g. `"1h"` or `"0s"`.
    #[serde(default = "default_revoke_after")]
    #[schemars(pattern(schema::DURATION))]
    pub revoke_after: String,
    /// Tokens are named `<prefix>-<rotation id>`; the integration name when absent.
    #[schemars(length(min = 1, max = 40))]
    pub token_name_prefix: Option<String>,
    /// Write `consumer_key` and `consumer_secret` (TBA) or the client ID (M2M) into the store
    /// beside the credential.
    #[serde(default = "yes")]
    pub store_consumer_credentials: bool,
    /// A TBA integration: the NLAuth login that issues its tokens. Exactly one of `login` and
    /// `m2m`.
    pub login: Option<LoginConfig>,
    /// An OAuth 2.0 client-credentials (M2M) integration: its mapping and certificates.
    pub m2m: Option<M2mConfig>,
    /// TBA only: what `tokeninfo` must report.
    pub expect: Option<ExpectConfig>,
    pub store: StoreConfig,
}

/// `[[freeze]]` and `[[integrations.freeze]]`: a window in which no rotation starts (revocations
/// of replaced credentials still happen). Either `start` and `duration` (recurring) or `from`
/// and `until` (fixed).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    /// Shown by `status`, the metrics and the logs; `freeze[N]` when absent.
    pub name: Option<String>,
    /// A recurring window opens whenever this cron expression (with seconds) matches, e.g.
    /// `"0 0 0 L * *"` (midnight on the last day of each month).
    #[schemars(pattern(schema::CRON))]
    pub start: Option<String>,
    /// How long a recurring window lasts, e.g. `"72h"`.
    #[schemars(pattern(schema::DURATION))]
    pub duration: Option<String>,
    /// A fixed window's first moment: `"2026-12-24"`, `"2026-12-24T18:00:00"` (both in
    /// `timezone`) or an RFC 3339 time; a TOML date or date-time works too.
    #[serde(default, deserialize_with = "date_or_text")]
    pub from: Option<String>,
    /// A fixed window's end (not included), in the same forms as `from`.
    #[serde(default, deserialize_with = "date_or_text")]
    pub until: Option<String>,
    /// IANA time zone of `start`, `from` and `until`; UTC when absent.
    pub timezone: Option<String>,
}

impl FreezeConfig {
    /// The window; errors are (key, problem), the key relative to this table.
    fn window(&self, index: usize) -> Result<FreezeWindow, (String, String)> {
        let default_name = format!("freeze[{index}]");
        let name = self.name.as_deref().unwrap_or(&default_name);
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(field_err(
                "name",
                "expected a name without control characters",
            ));
        }
        let tz = self.timezone.as_deref();
        let keyed = |(key, problem): (&str, String)| (key.to_string(), problem);
        match (&self.start, &self.duration, &self.from, &self.until) {
            (Some(start), Some(duration), None, None) => {
                let duration = parse_duration(duration).map_err(|p| ("duration".into(), p))?;
                FreezeWindow::recurring(name, start, duration, tz).map_err(keyed)
            }
            (None, None, Some(from), Some(until)) => {
                FreezeWindow::fixed(name, from, until, tz).map_err(keyed)
            }
            (Some(_), None, None, None) => Err(field_err(
                "duration",
                "expected how long each window lasts beside start, e.g. \"72h\"",
            )),
            (None, Some(_), None, None) => Err(field_err(
                "start",
                "expected a cron expression with seconds beside duration, e.g. \"0 0 0 L * *\"",
            )),
            (None, None, Some(_), None) => Err(field_err(
                "until",
                "expected the end of the window beside from, e.g. \"2027-01-02\"",
            )),
            (None, None, None, Some(_)) => Err(field_err(
                "from",
                "expected the start of the window beside until, e.g. \"2026-12-24\"",
            )),
            (None, None, None, None) => Err(field_err(
                "start",
                "expected start and duration (a recurring window) or from and until (a fixed one)",
            )),
            _ => Err(field_err(
                "start",
                "expected either start and duration (a recurring window) or from and until (a \
                 fixed one), not both",
            )),
        }
    }
}

/// Parses a list of freeze tables whose path is `prefix` (`freeze`, `integrations[2].freeze`).
fn parse_freezes(
    tables: &[FreezeConfig],
    shared: &Freezes,
    prefix: &str,
) -> Result<Freezes, (String, String)> {
    let windows = tables
        .iter()
        .enumerate()
        .map(|(i, table)| {
            table
                .window(i)
                .map_err(|(key, p)| (format!("{prefix}[{i}].{key}"), p))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Freezes::with(shared, windows))
}

/// A string, or a TOML date or date-time written without quotes (kept as its RFC 3339 text).
fn date_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::String(text) => Ok(Some(text)),
        toml::Value::Datetime(datetime) => Ok(Some(datetime.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "invalid type: {}, expected a date such as \"2026-12-24\" or a date-time",
            other.type_str()
        ))),
    }
}

/// `[integrations.m2m]`: the mapping whose certificates are rotated, and how they are made.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct M2mConfig {
    /// The integration record's client ID.
    pub client_id: SecretRef,
    /// Internal id of the mapping's role.
    #[schemars(pattern(schema::NOT_BLANK))]
    pub role: String,
    /// Internal id of the mapping's entity (the user).
    #[schemars(pattern(schema::NOT_BLANK))]
    pub entity: String,
    /// `ec-p256` (ES256), `ec-p384` (ES384), `rsa-3072` or `rsa-4096` (PS256).
    #[serde(default = "default_key")]
    #[schemars(transform = schema::key_kinds)]
    pub key: String,
    /// How long a new certificate is valid; at most `730d` (NetSuite's cap).
    #[serde(default = "default_certificate_validity")]
    #[schemars(pattern(schema::DURATION))]
    pub certificate_validity: String,
    /// Rotate before the schedule when the current certificate expires sooner than this.
    #[serde(default = "default_renew_before")]
    #[schemars(pattern(schema::DURATION))]
    pub renew_before: String,
    /// What the rotator's own access tokens ask for; must include `rest_webservices`.
    #[serde(default = "default_scopes")]
    #[schemars(transform = schema::m2m_scopes)]
    pub scopes: Vec<String>,
}

/// NetSuite shortens longer certificates to two years; a longer setting would mislead.
const MAX_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(730 * 86_400);
/// The scopes a client-credentials assertion may ask for.
const M2M_SCOPES: [&str; 3] = ["restlets", "rest_webservices", "suite_analytics"];

fn default_key() -> String {
    "ec-p256".into()
}
fn default_certificate_validity() -> String {
    "365d".into()
}
fn default_renew_before() -> String {
    "30d".into()
}
fn default_scopes() -> Vec<String> {
    vec!["rest_webservices".into()]
}

impl M2mConfig {
    /// Checks the table; the error's key is relative to it (`key`, `scopes`, ...).
    fn validate(&self) -> Result<(), (String, String)> {
        for (key, value) in [("role", &self.role), ("entity", &self.entity)] {
            if value.trim().is_empty() {
                return Err(field_err(key, "expected an internal id, e.g. \"1001\""));
            }
        }
        crate::netsuite::m2m::KeyKind::parse(&self.key).map_err(|p| ("key".to_string(), p))?;
        let validity = parse_duration(&self.certificate_validity)
            .map_err(|p| ("certificate_validity".to_string(), p))?;
        if validity > MAX_CERTIFICATE_VALIDITY || validity < Duration::from_secs(86_400) {
            return Err(field_err(
                "certificate_validity",
                "expected between 1d and 730d (NetSuite caps certificates at two years)",
            ));
        }
        let renew_before =
            parse_duration(&self.renew_before).map_err(|p| ("renew_before".to_string(), p))?;
        if renew_before >= validity {
            return Err(field_err(
                "renew_before",
                "expected less than certificate_validity (else every certificate is due as soon as it is made)",
            ));
        }
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| !M2M_SCOPES.contains(&s.as_str()))
        {
            return Err((
                "scopes".into(),
                format!("{bad:?}: expected restlets, rest_webservices or suite_analytics"),
            ));
        }
        if !self.scopes.iter().any(|s| s == "rest_webservices") {
            return Err(field_err(
                "scopes",
                "expected rest_webservices among them: the certificate rotation endpoint needs it",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The NetSuite user's email address.
    #[schemars(pattern(schema::EMAIL))]
    pub email: String,
    pub password: SecretRef,
    /// Internal id of the role the tokens are issued for.
    #[schemars(pattern(schema::NOT_BLANK))]
    pub role: String,
    /// Base32 TOTP secret for roles that require 2FA.
    pub totp_secret: Option<SecretRef>,
}

/// What `tokeninfo` must say about a new token before it is promoted.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectConfig {
    /// Defaults to the login role.
    pub role_id: Option<String>,
    /// Defaults to the account id.
    pub company_id: Option<String>,
    /// The user's internal id; not checked when absent.
    pub entity_id: Option<String>,
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
fn default_schedule() -> String {
    "0 0 3 * * Sun".into()
}
fn default_revoke_after() -> String {
    "1h".into()
}
fn yes() -> bool {
    true
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
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| err(locate(text, e.span()), redact_values(e.message())))?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let field = if field == "." {
                locate(text, inner.span())
            } else {
                field
            };
            err(field, redact_values(inner.message()))
        })?;
        config.freezes = parse_freezes(&config.freeze, &Freezes::default(), "freeze")
            .map_err(|(field, problem)| err(field, problem))?;
        config
            .validate()
            .map_err(|(field, problem)| err(field, problem))?;
        Ok(config)
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

impl IntegrationConfig {
    /// Exactly one of `[integrations.login]` (TBA) and `[integrations.m2m]`, with the keys that
    /// kind needs and none of the other's. The error's key is relative to the integration.
    fn validate_kind(&self) -> Result<(), (String, String)> {
        match (&self.login, &self.m2m) {
            (Some(_), Some(_)) => Err(field_err(
                "m2m",
                "an integration has either [integrations.login] (TBA tokens) or [integrations.m2m] (M2M certificates), not both",
            )),
            (None, None) => Err(field_err(
                "login",
                "missing: expected [integrations.login] (TBA tokens through issuetoken) or [integrations.m2m] (OAuth 2.0 client-credentials certificates)",
            )),
            (Some(login), None) => {
                for (key, present) in [
                    ("consumer_key", self.consumer_key.is_some()),
                    ("consumer_secret", self.consumer_secret.is_some()),
                ] {
                    if !present {
                        return Err(field_err(
                            key,
                            "missing: a TBA integration ([integrations.login]) needs the integration record's consumer key and secret",
                        ));
                    }
                }
                if login.email.trim().is_empty() || !login.email.contains('@') {
                    return Err(field_err("login.email", "expected an email address"));
                }
                if login.role.trim().is_empty() {
                    return Err(field_err("login.role", "expected a role internal id"));
                }
                Ok(())
            }
            (None, Some(m2m)) => {
                for (key, present) in [
                    ("consumer_key", self.consumer_key.is_some()),
                    ("consumer_secret", self.consumer_secret.is_some()),
                    ("expect", self.expect.is_some()),
                ] {
                    if present {
                        return Err(field_err(
                            key,
                            "belongs to TBA integrations; an M2M integration ([integrations.m2m]) has a client_id and a certificate instead",
                        ));
                    }
                }
                m2m.validate().map_err(|(key, p)| (format!("m2m.{key}"), p))
            }
        }
    }

    /// The parsed schedule, sharing parsed patterns through `cache`, with the daemon-wide
    /// freeze windows `shared` ([`Config::freezes`]) and this integration's own; errors as
    /// (key, problem).
    pub fn schedule_cached(
        &self,
        cache: &mut PatternCache,
        shared: &Freezes,
    ) -> Result<Schedule, (String, String)> {
        let jitter = match &self.jitter {
            Some(j) => parse_duration(j).map_err(|p| ("jitter".to_string(), p))?,
            None => Duration::ZERO,
        };
        let schedule =
            Schedule::parse_cached(&self.schedule, self.timezone.as_deref(), jitter, cache)
                .map_err(|p| {
                    let key = if p.contains("IANA") {
                        "timezone"
                    } else {
                        "schedule"
                    };
                    (key.to_string(), p)
                })?;
        let freezes = parse_freezes(&self.freeze, shared, "freeze")?;
        Ok(schedule.with_freezes(freezes))
    }

    /// Reads the secret references and builds what the rotation engine needs. Errors name the
    /// field of the reference that could not be read.
    pub fn resolve(&self, index: usize) -> Result<Integration, ConfigError> {
        Resolver::default().resolve(self, index)
    }

    /// Secret references written as literal strings, by field path (for `check`'s warnings).
    pub fn literal_secrets(&self, index: usize) -> Vec<String> {
        self.secret_refs(index)
            .into_iter()
            .filter(|(_, r)| r.is_literal())
            .map(|(field, _)| field)
            .collect()
    }

    /// Every secret reference of the integration, with its field path
    /// (`integrations[0].login.password`), the store's login included: for `check`, which reads
    /// each on its own so that one run names every one that cannot be read.
    pub fn secret_refs(&self, index: usize) -> Vec<(String, &SecretRef)> {
        let mut refs = Vec::new();
        refs.extend(self.consumer_key.as_ref().map(|r| ("consumer_key", r)));
        refs.extend(
            self.consumer_secret
                .as_ref()
                .map(|r| ("consumer_secret", r)),
        );
        if let Some(login) = &self.login {
            refs.push(("login.password", &login.password));
            refs.extend(login.totp_secret.as_ref().map(|r| ("login.totp_secret", r)));
        }
        if let Some(m2m) = &self.m2m {
            refs.push(("m2m.client_id", &m2m.client_id));
        }
        if let StoreConfig::Vault(vault) = &self.store {
            match &vault.auth {
                VaultAuth::Token { token } => refs.push(("store.auth.token", token)),
                VaultAuth::Approle {
                    role_id, secret_id, ..
                } => {
                    refs.push(("store.auth.role_id", role_id));
                    refs.push(("store.auth.secret_id", secret_id));
                }
                _ => {}
            }
        }
        refs.into_iter()
            .map(|(key, r)| (format!("integrations[{index}].{key}"), r))
            .collect()
    }
}

/// Resolves integrations one after another, sharing what they have in common: integrations of
/// one account keep one copy of its id and endpoint, those with one login one copy of it (its
/// secrets read once), and equal expectations one copy. A daemon holds thousands of resolved
/// integrations for weeks, mostly a few accounts' and logins' worth of repetition.
#[derive(Default)]
pub struct Resolver<'c> {
    /// By account id, endpoint override and whether the kind is M2M (another default host).
    accounts: HashMap<(&'c str, Option<&'c str>, bool), (AccountId, Endpoint)>,
    /// By email and role; then the whole login section must match.
    logins: HashMap<(&'c str, &'c str), Vec<ResolvedLogin<'c>>>,
    expectations: HashSet<Arc<Expectations>>,
}

/// A login section and what it resolved to.
type ResolvedLogin<'c> = (&'c LoginConfig, Arc<NlauthLogin>, Arc<LoginGate>);

impl<'c> Resolver<'c> {
    /// [`IntegrationConfig::resolve`] for the `index`th integration of a configuration.
    pub fn resolve(
        &mut self,
        integration: &'c IntegrationConfig,
        index: usize,
    ) -> Result<Integration, ConfigError> {
        let at = |key: &str| format!("integrations[{index}].{key}");
        let read = |key: &str, r: &SecretRef| {
            r.resolve().map_err(|e: SecretRefError| ConfigError {
                file: "config".into(),
                field: at(key),
                problem: e.to_string(),
            })
        };
        let endpoint_for = match integration.m2m {
            Some(_) => Endpoint::m2m_for_account,
            None => Endpoint::for_account,
        };
        let (account, endpoint) = self
            .accounts
            .entry((
                &integration.account_id,
                integration.endpoint.as_deref(),
                integration.m2m.is_some(),
            ))
            .or_insert_with(|| {
                let account = AccountId::parse(&integration.account_id).expect("validated");
                let endpoint = endpoint_for(&account, integration.endpoint.as_deref());
                (account, endpoint)
            })
            .clone();
        let credential = match (&integration.login, &integration.m2m) {
            (_, Some(m2m)) => Credential::M2m(M2m {
                client_id: read("m2m.client_id", &m2m.client_id)?,
                role: m2m.role.trim().to_string(),
                entity: m2m.entity.trim().to_string(),
                key: KeyKind::parse(&m2m.key).expect("validated"),
                certificate_validity: parse_duration(&m2m.certificate_validity).expect("validated"),
                renew_before: parse_duration(&m2m.renew_before).expect("validated"),
                scopes: m2m.scopes.clone(),
            }),
            (Some(login), None) => {
                let tba = self.resolve_tba(integration, login, &account, &read)?;
                Credential::Tba(tba)
            }
            (None, None) => unreachable!("validated: exactly one of login and m2m"),
        };
        let name: Arc<str> = integration.name.as_str().into();
        Ok(Integration {
            token_name_prefix: match &integration.token_name_prefix {
                Some(prefix) => prefix.as_str().into(),
                None => name.clone(),
            },
            name,
            account,
            endpoint,
            credential,
            revoke_after: parse_duration(&integration.revoke_after).expect("validated"),
            store_consumer_credentials: integration.store_consumer_credentials,
        })
    }

    /// The TBA half of [`Resolver::resolve`]: the consumer pair, the shared login and its
    /// latch, the shared expectations.
    fn resolve_tba(
        &mut self,
        integration: &'c IntegrationConfig,
        login: &'c LoginConfig,
        account: &AccountId,
        read: &dyn Fn(&str, &SecretRef) -> Result<crate::secret::SecretString, ConfigError>,
    ) -> Result<Tba, ConfigError> {
        let required = |key: &str, r: &Option<SecretRef>| match r {
            Some(r) => read(key, r),
            None => unreachable!("validated: a TBA integration has {key}"),
        };
        let consumer_key = required("consumer_key", &integration.consumer_key)?;
        let consumer_secret = required("consumer_secret", &integration.consumer_secret)?;
        let same_login = self.logins.entry((&login.email, &login.role)).or_default();
        let (resolved_login, login_gate) =
            match same_login.iter().find(|(config, ..)| *config == login) {
                Some((_, resolved, gate)) => (resolved.clone(), gate.clone()),
                None => {
                    let totp_secret = match &login.totp_secret {
                        Some(r) => Some(read("login.totp_secret", r)?),
                        None => None,
                    };
                    let resolved = Arc::new(NlauthLogin {
                        email: login.email.clone(),
                        password: read("login.password", &login.password)?,
                        role: login.role.clone(),
                        totp_secret,
                    });
                    let gate = Arc::<LoginGate>::default();
                    same_login.push((login, resolved.clone(), gate.clone()));
                    (resolved, gate)
                }
            };
        let no_expectations = ExpectConfig::default();
        let expect = integration.expect.as_ref().unwrap_or(&no_expectations);
        let expect = Expectations {
            company_id: Some(
                expect
                    .company_id
                    .clone()
                    .unwrap_or_else(|| account.realm().to_string()),
            ),
            role_id: Some(expect.role_id.clone().unwrap_or_else(|| login.role.clone())),
            entity_id: expect.entity_id.clone(),
            company_id_implied: expect.company_id.is_none(),
            role_id_implied: expect.role_id.is_none(),
        };
        let expect = match self.expectations.get(&expect) {
            Some(shared) => shared.clone(),
            None => {
                let shared = Arc::new(expect);
                self.expectations.insert(shared.clone());
                shared
            }
        };
        Ok(Tba {
            consumer_key,
            consumer_secret,
            login: resolved_login,
            login_gate,
            expect,
        })
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
