//! The commands that work from a config file: rotate, verify, revoke, import, status, check.
//!
//! Each loads the config (exit 2 on any problem, naming the field), builds one NetSuite client
//! and one engine per selected integration, does its work, prints a line per integration on
//! stdout in config order, and returns the exit outcome. `rotate`, `verify` and `revoke` work on
//! integrations concurrently under the daemon's limits (`[daemon] max_concurrent_rotations`
//! and `max_concurrent_per_account`): a fleet of thousands would otherwise wait on one round
//! trip at a time.

use std::collections::HashMap;
use std::future::Future;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::daemon_link::DaemonLink;
use crate::cli::out::{errln, outln};
use crate::cli::{Command, Outcome, Target, status};
use crate::config::{AlertConfig, Config, IntegrationConfig, Resolver};
use crate::netsuite::{AccountId, Endpoint, NetSuiteClient};
use crate::plural;
use crate::rotation::{Engine, NoEvents, PreviousFate, RevokeOutcome, RotateOptions};
use crate::schedule::{ActiveFreeze, PatternCache};
use crate::secret::{ExposeSecret, SecretString, short_id};
use crate::telemetry;

pub async fn run(config_path: &Path, command: Command) -> Outcome {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: config: {e}");
            return Outcome::BadUsage;
        }
    };
    // The same logs and OTLP export as `run`: a `rotate --all` from a systemd timer is traced
    // like a scheduled rotation of the daemon. Not `check`: a one-shot probe sends no spans
    // (it reports whether the export settings are valid), so a collector that is down does
    // not add an export error to its report at exit.
    let telemetry = if matches!(command, Command::Check) {
        telemetry::init_logging(config.telemetry.log_format, "info");
        None
    } else {
        match telemetry::init(&config.telemetry, "info") {
            Ok(guard) => Some(guard),
            Err(e) => {
                errln!("error: {e}");
                return Outcome::BadUsage;
            }
        }
    };
    let client = match NetSuiteClient::new(config.netsuite_client_options()) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: cannot create the HTTP client: {e}");
            return Outcome::Failed;
        }
    };
    let outcome = dispatch(&config, &client, command).await;
    if let Some(telemetry) = telemetry
        && let Err(e) = telemetry.shutdown().await
    {
        errln!("warning: {e}");
    }
    outcome
}

async fn dispatch(config: &Config, client: &NetSuiteClient, command: Command) -> Outcome {
    match command {
        Command::Rotate {
            target,
            dry_run,
            revoke_now,
            force,
        } => rotate(config, client, &target, dry_run, revoke_now, force).await,
        Command::Verify { target } => verify(config, client, &target).await,
        Command::Revoke { target, force } => revoke(config, client, &target, force).await,
        Command::Import { integration } => import(config, client, &integration).await,
        Command::Status { json } => status::print(config, json).await,
        Command::Check => check(config, client).await,
        Command::Demo { .. } | Command::Run | Command::ConfigSchema { .. } => {
            unreachable!("dispatched in cli::main")
        }
    }
}

/// The engines for the selected integrations, or the outcome to exit with.
async fn engines(
    config: &Config,
    client: &NetSuiteClient,
    target: &Target,
) -> Result<Vec<Engine>, Outcome> {
    let names = if target.all {
        Vec::new()
    } else {
        target.integrations.clone()
    };
    let selected = config.select(&names).map_err(|e| {
        errln!("error: {e}");
        Outcome::BadUsage
    })?;
    let mut engines = Vec::with_capacity(selected.len());
    let mut resolver = Resolver::default();
    for (index, integration) in selected {
        let resolved = resolver.resolve(integration, index).map_err(|mut e| {
            e.file = config.source.display().to_string();
            errln!("error: config: {e}");
            Outcome::BadUsage
        })?;
        let store = crate::store::open(&integration.store).await.map_err(|e| {
            errln!("error: {}: {e}", integration.name);
            Outcome::Failed
        })?;
        engines.push(Engine::new(
            Arc::new(resolved),
            client.clone(),
            store,
            Arc::new(NoEvents),
        ));
    }
    Ok(engines)
}

/// What one integration's work printed and whether it failed.
struct Report {
    line: String,
    failed: bool,
}

impl Report {
    fn ok(line: String) -> Report {
        Report {
            line,
            failed: false,
        }
    }

    fn failed(line: String) -> Report {
        Report { line, failed: true }
    }
}

/// Runs `work` for every engine, at most `max_concurrent_rotations` at once and at most
/// `max_concurrent_per_account` per NetSuite account, and prints each report in config order
/// as soon as every report before it is in. Exit 1 when any failed.
async fn for_each_engine<F, Fut>(config: &Config, engines: Vec<Engine>, work: F) -> Outcome
where
    F: Fn(Engine) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Report> + Send + 'static,
{
    let global = Arc::new(Semaphore::new(config.daemon.max_concurrent_rotations));
    let mut per_account: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let count = engines.len();
    for (index, engine) in engines.into_iter().enumerate() {
        let account = per_account
            .entry(engine.integration().account.realm().to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(config.daemon.max_concurrent_per_account)))
            .clone();
        let global = global.clone();
        let work = work.clone();
        tasks.spawn(async move {
            // Per account first: a task waiting on a busy account holds no global slot.
            let _account = account
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let _global = global
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            // Boxed and made only now: a rotation's future is kilobytes, and thousands of
            // waiting tasks would each carry one inline.
            (index, Box::pin(work(engine)).await)
        });
    }

    let mut reports: Vec<Option<Report>> = (0..count).map(|_| None).collect();
    let mut next_to_print = 0;
    let mut outcome = Outcome::Ok;
    while let Some(joined) = tasks.join_next().await {
        let (index, report) = match joined {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if report.failed {
            outcome = Outcome::Failed;
        }
        reports[index] = Some(report);
        while let Some(Some(report)) = reports.get(next_to_print) {
            outln!("{}", report.line);
            next_to_print += 1;
        }
    }
    outcome
}

async fn rotate(
    config: &Config,
    client: &NetSuiteClient,
    target: &Target,
    dry_run: bool,
    revoke_now: bool,
    force: bool,
) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    let frozen = Arc::new(if force {
        HashMap::new()
    } else {
        frozen_integrations(config)
    });
    if dry_run {
        return for_each_engine(config, engines, move |engine| {
            let frozen = frozen.clone();
            async move {
                let name = &engine.integration().name;
                if let Some(freeze) = frozen.get(&**name) {
                    return Report::failed(format!(
                        "{name}: would refuse: {}",
                        frozen_refusal(name, freeze)
                    ));
                }
                // Exits as `rotate` would: a refusal fails the dry run too.
                match engine.load().await {
                    Ok(state) => match status::plan(&engine.plan(&state)) {
                        (line, false) => Report::ok(format!("{name}: {line}")),
                        (line, true) => Report::failed(format!("{name}: {line}")),
                    },
                    Err(e) => Report::failed(format!("{name}: cannot read the store: {e}")),
                }
            }
        })
        .await;
    }
    let options = RotateOptions {
        // Naming an integration is an operator asking: it lifts a login latch for one try.
        explicit: !target.all,
        revoke_now,
    };
    let daemon = DaemonLink::new(config);
    for_each_engine(config, engines, move |engine| {
        let daemon = daemon.clone();
        let frozen = frozen.clone();
        async move {
            let name = &engine.integration().name;
            let noun = engine.integration().noun();
            if let Some(freeze) = frozen.get(&**name) {
                return Report::failed(format!(
                    "{name}: not rotated: {}",
                    frozen_refusal(name, freeze)
                ));
            }
            let rotated = match engine.rotate_with(options).await {
                Ok(rotated) => rotated,
                Err(e) => return Report::failed(format!("{name}: rotation failed: {e}")),
            };
            let told = match &daemon {
                Some(daemon) => daemon.changed(name).await,
                None => false,
            };
            let previous = match &rotated.previous {
                PreviousFate::None => format!("no previous {noun}"),
                PreviousFate::Revoked { token_id } => {
                    format!("previous {noun} {} revoked", short_id(token_id))
                }
                PreviousFate::RevokeAt { token_id, at } if told => format!(
                    "previous {noun} {} stays valid for readers until {at}, then the running \
                     daemon revokes it",
                    short_id(token_id)
                ),
                PreviousFate::RevokeAt { token_id, at } => format!(
                    "previous {noun} {} stays valid until {at}; no running daemon answered at \
                     {}, so revoke it then with `netsuite-token-rotator revoke --integration \
                     {name}` (or start the daemon: it revokes it when due)",
                    short_id(token_id),
                    daemon.as_ref().map_or("[daemon] listen", |d| d.address()),
                ),
                PreviousFate::RevokeFailed { token_id, error } => format!(
                    "previous {noun} {} NOT revoked yet ({error}); {} retries",
                    short_id(token_id),
                    if told {
                        "the running daemon"
                    } else {
                        "`netsuite-token-rotator revoke --integration NAME`"
                    }
                ),
            };
            Report::ok(format!(
                "{name}: rotated (rotation {}): current {noun} {}; {previous}",
                rotated.rotation_id,
                short_id(&rotated.token_id)
            ))
        }
    })
    .await
}

/// The integrations a freeze window holds now, by name.
fn frozen_integrations(config: &Config) -> HashMap<String, ActiveFreeze> {
    let now = chrono::Utc::now();
    let mut patterns = PatternCache::default();
    config
        .integrations
        .iter()
        .filter_map(|integration| {
            let schedule = integration
                .schedule_cached(&mut patterns, &config.freezes)
                .ok()?;
            Some((integration.name.clone(), schedule.freeze_at(now)?))
        })
        .collect()
}

fn frozen_refusal(name: &str, freeze: &ActiveFreeze) -> String {
    format!(
        "freeze window {:?} is in force until {}, and no rotation starts inside one; to rotate \
         anyway: `netsuite-token-rotator rotate --force --integration {name}`",
        &*freeze.name,
        freeze
            .until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

async fn verify(config: &Config, client: &NetSuiteClient, target: &Target) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    for_each_engine(config, engines, move |engine| async move {
        let name = &engine.integration().name;
        match engine.verify_current().await {
            Ok(_) if engine.integration().m2m().is_some() => Report::ok(format!(
                "{name}: current certificate verified: NetSuite granted an access token for it"
            )),
            Ok(info) => Report::ok(format!(
                "{name}: current token verified: company {}, role {}, entity {}",
                info.company_id.as_deref().unwrap_or("?"),
                info.role_id.as_deref().unwrap_or("?"),
                info.entity_id.as_deref().unwrap_or("?"),
            )),
            Err(e) => Report::failed(format!("{name}: verification failed: {e}")),
        }
    })
    .await
}

async fn revoke(config: &Config, client: &NetSuiteClient, target: &Target, force: bool) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    let daemon = DaemonLink::new(config);
    for_each_engine(config, engines, move |engine| {
        let daemon = daemon.clone();
        async move {
            let name = &engine.integration().name;
            let noun = engine.integration().noun();
            let revoked = engine.revoke_due(force).await;
            if let (Ok(RevokeOutcome::Revoked { .. }), Some(daemon)) = (&revoked, &daemon) {
                daemon.changed(name).await;
            }
            match revoked {
                Ok(RevokeOutcome::NothingToRevoke) => {
                    Report::ok(format!("{name}: no previous {noun} to revoke"))
                }
                Ok(RevokeOutcome::NotDue {
                    token_id,
                    revoke_after,
                }) => Report::ok(format!(
                    "{name}: previous {noun} {} is due for revocation after {revoke_after}",
                    short_id(&token_id)
                )),
                Ok(RevokeOutcome::Revoked { token_id }) => Report::ok(format!(
                    "{name}: previous {noun} {} revoked",
                    short_id(&token_id)
                )),
                Err(e) => Report::failed(format!("{name}: revocation failed: {e}")),
            }
        }
    })
    .await
}

async fn import(config: &Config, client: &NetSuiteClient, name: &str) -> Outcome {
    let target = Target {
        integrations: vec![name.to_string()],
        all: false,
    };
    let engine = match engines(config, client, &target).await {
        Ok(mut e) => e.remove(0),
        Err(o) => return o,
    };
    let imported = match engine.integration().m2m() {
        None => {
            let (token_id, token_secret) = match read_token_from_stdin() {
                Ok(t) => t,
                Err(problem) => {
                    errln!("error: import: {problem}");
                    return Outcome::BadUsage;
                }
            };
            let what = format!("token {}", short_id(&token_id));
            engine.import(token_id, token_secret).await.map(|()| what)
        }
        Some(_) => {
            let input = match super::import_input::read_certificate(std::io::stdin().lock()) {
                Ok(input) => input,
                Err(problem) => {
                    errln!("error: import: {problem}");
                    return Outcome::BadUsage;
                }
            };
            let what = format!("certificate {}", input.certificate_id);
            engine
                .import_certificate(input.certificate_id, input.private_key, input.certificate)
                .await
                .map(|()| what)
        }
    };
    match imported {
        Ok(what) => {
            if let Some(daemon) = DaemonLink::new(config) {
                daemon.changed(name).await;
            }
            outln!("{name}: {what} imported as current; the next rotation replaces and revokes it");
            Outcome::Ok
        }
        Err(e) => {
            outln!("{name}: import failed: {e}");
            Outcome::Failed
        }
    }
}

/// Token id on the first line, token secret on the second.
fn read_token_from_stdin() -> Result<(String, SecretString), String> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // Someone typing: say what is awaited, since nothing else would.
        errln!(
            "reading the token id (line 1), then the token secret (line 2) from stdin; the \
             secret echoes here, so prefer a pipe: printf '%s\\n%s\\n' \"$TOKEN_ID\" \"$TOKEN_SECRET\" | ..."
        );
    }
    let mut lines = stdin.lock().lines();
    let mut next = |what: &str| -> Result<zeroize::Zeroizing<String>, String> {
        let line = lines
            .next()
            .ok_or_else(|| format!("expected the {what} on stdin, got end of input"))?
            .map_err(|e| format!("cannot read the {what} from stdin: {e}"))?;
        let line = zeroize::Zeroizing::new(line);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Err(format!("the {what} line is empty"));
        }
        Ok(zeroize::Zeroizing::new(trimmed.to_string()))
    };
    let token_id = next("token id (line 1)")?;
    let token_secret = next("token secret (line 2)")?;
    if token_id.chars().any(char::is_whitespace) {
        return Err("the token id (line 1) contains white space".into());
    }
    Ok((
        token_id.to_string(),
        SecretString::from(token_secret.as_str()),
    ))
}

/// One line per check; exit 1 if any failed. Changes nothing: no token is issued or revoked,
/// nothing is written to a store, and alert channels are only probed (DNS and TCP), never sent
/// to.
async fn check(config: &Config, client: &NetSuiteClient) -> Outcome {
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
struct CheckReport {
    failed: usize,
    warnings: usize,
}

impl CheckReport {
    fn ok(&mut self, what: String) {
        outln!("ok   {what}");
    }
    fn fail(&mut self, what: String) {
        outln!("FAIL {what}");
        self.failed += 1;
    }
    fn warn(&mut self, what: String) {
        outln!("warn {what}");
        self.warnings += 1;
    }
}

async fn check_integration(
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
async fn check_netsuite_host(
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
async fn check_alert_channels(config: &Config, report: &mut CheckReport) {
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
async fn probe_url(url: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_connects_without_sending_and_names_only_the_host() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/services/T000/B000/secret-path");
        let probe = tokio::spawn(async move { probe_url(&url).await });
        let (mut accepted, _) = listener.accept().await.unwrap();
        assert_eq!(probe.await.unwrap(), Ok(format!("127.0.0.1:{port}")));
        // The probe closed the connection without writing a byte.
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut accepted, &mut buf)
            .await
            .unwrap();
        assert!(buf.is_empty(), "the probe sent {} bytes", buf.len());

        drop(listener);
        let closed = format!("https://127.0.0.1:{port}/services/T000/B000/secret-path");
        let problem = probe_url(&closed)
            .await
            .expect_err("nothing listens any more");
        assert!(problem.contains(&format!("127.0.0.1:{port}")), "{problem}");
        assert!(!problem.contains("secret-path"), "{problem}");
        assert!(probe_url("not a url").await.is_err());
    }
}
