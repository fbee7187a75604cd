//! `check`: the config, every secret reference, store, NetSuite host and alert channel
//! reached without changing anything; one line per check.

use std::sync::Arc;

use crate::cli::Outcome;
use crate::cli::out::outln;
use crate::config::{AlertConfig, Config, IntegrationConfig};
use crate::netsuite::{AccountId, Endpoint, NetSuiteClient};
use crate::rotation::{Engine, NoEvents};
use crate::secret::ExposeSecret;
use crate::{plural, telemetry};

/// One line per check; exit 1 if any failed. Changes nothing: no token is issued or revoked,
/// nothing is written to a store, and alert channels are only probed (DNS and TCP), never sent
/// to.
pub(super) async fn check(config: &Config, client: &NetSuiteClient) -> Outcome {
    let mut report = CheckReport::default();
    report.ok(format!(
        "config {} parsed and valid",
        config.source.display()
    ));
    if let Some(problem) = config.exposed_secrets_problem() {
        report.fail(problem);
    }
    if let Some(problem) = telemetry::export_settings_problem(&config.telemetry) {
        report.fail(format!(
            "{problem} (see docs/observability.md; check itself sends no spans)"
        ));
    }
    for (index, integration) in config.integrations.iter().enumerate() {
        check_integration(client, index, integration, &mut report).await;
    }
    check_alert_channels(config, &mut report).await;
    if report.failed == 0 {
        outln!(
            "all checks passed ({})",
            plural::count(report.warnings, "warning")
        );
        Outcome::Ok
    } else {
        outln!(
            "{} failed, {}: fix the lines marked FAIL and run check again",
            plural::count(report.failed, "check"),
            plural::count(report.warnings, "warning")
        );
        Outcome::Failed
    }
}

/// Prints one line per check and counts failures and warnings.
#[derive(Default)]
pub(super) struct CheckReport {
    pub(super) failed: usize,
    pub(super) warnings: usize,
}

impl CheckReport {
    pub(super) fn ok(&mut self, what: String) {
        outln!("ok   {what}");
    }
    pub(super) fn fail(&mut self, what: String) {
        outln!("FAIL {what}");
        self.failed += 1;
    }
    pub(super) fn warn(&mut self, what: String) {
        outln!("warn {what}");
        self.warnings += 1;
    }
}

pub(super) async fn check_integration(
    client: &NetSuiteClient,
    index: usize,
    integration: &IntegrationConfig,
    report: &mut CheckReport,
) {
    let name = &integration.name;
    for field in integration.literal_secrets(index) {
        report.warn(format!(
            "{name}: {field} is a literal in the config file; prefer {{ env = .. }}, {{ file = .. }} or {{ credential = .. }}"
        ));
    }
    if let crate::config::StoreConfig::Vault(v) = &integration.store
        && v.kv_version == 1
    {
        report.warn(format!(
            "{name}: Vault KV v1 has no check-and-set: run only one rotator against this store (KV v2 is safe with several)"
        ));
    }
    // Each check runs even when an earlier one failed, so one run lists every problem: every
    // reference is read on its own, where resolving stops at the first that fails.
    let mut unresolved = 0;
    for (field, reference) in integration.secret_refs(index) {
        if let Err(problem) = reference.resolve() {
            unresolved += 1;
            report.fail(format!(
                "{name}: {field}: {problem}; set it (see docs/configuration.md#secret-references)"
            ));
        }
    }
    let resolved = match integration.resolve(index) {
        Ok(r) => {
            report.ok(format!("{name}: secret references resolved"));
            Some(r)
        }
        // A reference read above can still fail now (a file removed meanwhile).
        Err(e) if unresolved == 0 => {
            report.fail(format!(
                "{name}: {}: {}; set it (see docs/configuration.md#secret-references)",
                e.field, e.problem
            ));
            None
        }
        Err(_) => None,
    };
    check_netsuite_host(client, integration, report).await;
    let store = match crate::store::open(&integration.store).await {
        Ok(s) => s,
        Err(e) => {
            report.fail(format!(
                "{name}: store cannot be opened: {e} (see docs/configuration.md#store)"
            ));
            return;
        }
    };
    let state = match store.load().await {
        Ok(state) => {
            report.ok(format!("{name}: store {} readable", store.describe()));
            state
        }
        Err(e) => {
            report.fail(format!(
                "{name}: store {}: {e}; check the store's address, credentials and permissions",
                store.describe()
            ));
            return;
        }
    };
    // Before NetSuite is asked for anything: a store that cannot take a new token would make
    // `rotate` issue one and then fail to promote it.
    match store.check_writable().await {
        Ok(()) => report.ok(format!(
            "{name}: store {} writable (checked without changing what readers see)",
            store.describe()
        )),
        Err(e) => report.fail(format!("{name}: store not writable: {e}. {}", e.hint(name))),
    }
    let still_latched = |latch: &crate::store::LoginLatch| {
        resolved.as_ref().is_none_or(|r| match r.tba() {
            Some(tba) => crate::rotation::latch::holds_for(latch, &r.account, &tba.login),
            None => false,
        })
    };
    if let Some(latch) = state.login_latch.as_ref().filter(|l| !still_latched(l)) {
        report.warn(format!(
            "{name}: a login latch from {} ({}) is for another login configuration; the configured login will be tried once at the next rotation",
            latch.at, latch.reason
        ));
    }
    if let Some(latch) = state.login_latch.as_ref().filter(|l| still_latched(l)) {
        report.fail(format!(
            "{name}: login latched since {} ({}): NetSuite refused the NLAuth login, so no login is tried until the login configuration changes or `rotate --integration {name}` (docs/runbook.md#login-refused)",
            latch.at, latch.reason
        ));
    }
    if let Some(intent) = &state.intent {
        report.warn(format!(
            "{name}: rotation {} is in progress or was interrupted ({}); `rotate` or `run` resumes it",
            intent.rotation_id,
            if state.pending.is_some() {
                "new token staged"
            } else {
                "no token staged yet"
            }
        ));
    }
    if state.current.is_none() {
        report.warn(match integration.m2m {
            None => format!(
                "{name}: the store holds no current token yet; `rotate --integration {name}` bootstraps one, `import --integration {name}` brings in a hand-made one"
            ),
            Some(_) => format!(
                "{name}: the store holds no current certificate yet; `import --integration {name}` brings in the one an administrator uploaded (docs/netsuite-setup.md#m2m-oauth-20-client-credentials)"
            ),
        });
        return;
    }
    if let Some(not_after) = state.current.as_ref().and_then(|c| c.expires_at()) {
        if not_after <= chrono::Utc::now() {
            report.fail(format!(
                "{name}: the current certificate expired at {not_after}; no rotation can replace it (docs/runbook.md#certificate-expired)"
            ));
            return;
        }
        report.ok(format!(
            "{name}: the current certificate expires at {not_after}"
        ));
    }
    let (what, proof) = match integration.m2m {
        None => ("token", "tokeninfo"),
        Some(_) => ("certificate", "a token exchange"),
    };
    let Some(resolved) = resolved else {
        report.fail(format!(
            "{name}: {proof} not tried: the integration's secrets are needed for it"
        ));
        return;
    };
    let engine = Engine::new(
        Arc::new(resolved),
        client.clone(),
        store,
        Arc::new(NoEvents),
    );
    match engine.verify_current().await {
        Ok(_) => report.ok(format!(
            "{name}: NetSuite accepted the current {what} ({proof})"
        )),
        Err(e) => report.fail(format!(
            "{name}: {proof} with the current {what}: {e} (see docs/runbook.md#tokeninfo-mismatch)"
        )),
    }
}

/// Accounts without an `endpoint` override: ask the datacenterurls service where the account
/// lives and compare with the RESTlet domain the client will call. With an override, probe the
/// override's host over TCP and, for `https`, its TLS certificate (its token endpoints are only
/// called by `rotate`, `verify` and `revoke`).
pub(super) async fn check_netsuite_host(
    client: &NetSuiteClient,
    integration: &IntegrationConfig,
    report: &mut CheckReport,
) {
    let name = &integration.name;
    let account = AccountId::parse(&integration.account_id).expect("validated by Config::load");
    let m2m = integration.m2m.is_some();
    let endpoint = match m2m {
        true => Endpoint::m2m_for_account(&account, integration.endpoint.as_deref()),
        false => Endpoint::for_account(&account, integration.endpoint.as_deref()),
    };
    if integration.endpoint.is_some() {
        match probe_url(&endpoint.base_url).await {
            Ok(host)
                if !reqwest::Url::parse(&endpoint.base_url)
                    .is_ok_and(|u| u.scheme() == "https") =>
            {
                report.ok(format!("{name}: endpoint {host} reachable (TCP)"))
            }
            Ok(host) => match client.probe(&endpoint).await {
                Ok(()) => report.ok(format!(
                    "{name}: endpoint {host} reachable (TCP; TLS certificate verified)"
                )),
                Err(e) => report.fail(format!("{name}: endpoint {host}: {e}")),
            },
            Err(problem) => report.fail(format!(
                "{name}: endpoint {}: {problem}; check `endpoint` in the config",
                endpoint.base_url
            )),
        }
        return;
    }
    match client.datacenter_urls(&account).await {
        Ok(urls) => {
            let expected = endpoint.base_url.trim_end_matches('/');
            // M2M calls go to the SuiteTalk (REST web services) domain.
            let found = match (m2m, &urls.webservices_domain) {
                (true, Some(webservices)) => webservices.trim_end_matches('/'),
                _ => urls.rest_domain.trim_end_matches('/'),
            };
            if found.eq_ignore_ascii_case(expected) {
                report.ok(format!(
                    "{name}: datacenterurls: account {} lives at {found}",
                    account.realm()
                ));
            } else {
                report.warn(format!(
                    "{name}: datacenterurls says account {} has restDomain {found}, the client calls {expected}; NetSuite may redirect, or set `endpoint = \"{found}\"`",
                    account.realm()
                ));
            }
        }
        Err(e) => report.fail(format!(
            "{name}: datacenterurls for account {}: {e}; check account_id, the network path to NetSuite, or [netsuite] datacenter_url",
            account.realm()
        )),
    }
}

/// Alert channels are not sent to (that would page someone): their secrets are resolved and
/// each destination's host is looked up and connected to over TCP.
pub(super) async fn check_alert_channels(config: &Config, report: &mut CheckReport) {
    if config.alerts.is_empty() {
        report.warn(
            "no [[alerts]] channel configured: failures are only logged and counted in /metrics"
                .into(),
        );
        return;
    }
    if let Err(problem) = crate::alert::Alerter::from_config(&config.alerts) {
        report.fail(format!(
            "alerts: {problem} (see docs/configuration.md#alerts)"
        ));
        return;
    }
    for (i, alert) in config.alerts.iter().enumerate() {
        let (kind, url) = match alert {
            AlertConfig::Webhook { url, .. } => ("webhook", url.clone()),
            AlertConfig::Slack { webhook_url } => match webhook_url.resolve() {
                Ok(url) => ("slack", url.expose_secret().to_string()),
                Err(e) => {
                    report.fail(format!("alerts[{i}].webhook_url: {e}"));
                    continue;
                }
            },
            AlertConfig::Pagerduty { events_url, .. } => (
                "pagerduty",
                events_url
                    .clone()
                    .unwrap_or_else(|| crate::alert::pagerduty::DEFAULT_EVENTS_URL.to_string()),
            ),
        };
        // Only the host is printed: a Slack webhook URL's path is its secret.
        match probe_url(&url).await {
            Ok(host) => report.ok(format!(
                "alerts[{i}] {kind}: {host} reachable (TCP; no alert sent, so the key or URL path is not proven)"
            )),
            Err(problem) => report.fail(format!(
                "alerts[{i}] {kind}: {problem}; check the URL and the egress path (proxy, firewall)"
            )),
        }
    }
}

/// Resolves the URL's host and opens a TCP connection to it; sends nothing. Returns
/// `host:port`, or a problem that names the host (never the path or query).
pub(super) async fn probe_url(url: &str) -> Result<String, String> {
    const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    let parsed = reqwest::Url::parse(url).map_err(|_| "not an absolute http(s) URL".to_string())?;
    let host = parsed
        .host_str()
        .ok_or_else(|| "the URL has no host".to_string())?
        .to_string();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("{host}: no port for scheme {}", parsed.scheme()))?;
    let target = format!("{host}:{port}");
    let connect = tokio::net::TcpStream::connect(target.as_str());
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(target),
        Ok(Err(e)) => Err(format!("{target}: cannot connect: {e}")),
        Err(_) => Err(format!(
            "{target}: no TCP answer within {}s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}
