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

use crate::cli::{Command, Outcome, Target, status};
use crate::config::{Config, IntegrationConfig};
use crate::netsuite::{ClientOptions, NetSuiteClient};
use crate::rotation::{Engine, NoEvents, PreviousFate, RevokeOutcome};
use crate::secret::{SecretString, short_id};
use crate::telemetry;

pub async fn run(config_path: &Path, command: Command) -> Outcome {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: config: {e}");
            return Outcome::BadUsage;
        }
    };
    telemetry::init_logging(config.telemetry.log_format, "info");
    let client = match NetSuiteClient::new(client_options(&config)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot create the HTTP client: {e}");
            return Outcome::Failed;
        }
    };
    match command {
        Command::Rotate { target, dry_run } => rotate(&config, &client, &target, dry_run).await,
        Command::Verify { target } => verify(&config, &client, &target).await,
        Command::Revoke { target, force } => revoke(&config, &client, &target, force).await,
        Command::Import { integration } => import(&config, &client, &integration).await,
        Command::Status { json } => status::print(&config, json).await,
        Command::Check => check(&config, &client).await,
        Command::Demo { .. } | Command::Run => unreachable!("dispatched in cli::main"),
    }
}

pub fn client_options(config: &Config) -> ClientOptions {
    let mut options = ClientOptions::default();
    if let Some(timeout) = config.netsuite_timeout() {
        options.timeout = timeout;
    }
    if let Some(attempts) = config.netsuite.max_attempts {
        options.max_attempts = attempts;
    }
    if let Some(url) = &config.netsuite.datacenter_url {
        options.datacenter_base = url.trim_end_matches('/').to_string();
    }
    options
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
        eprintln!("error: {e}");
        Outcome::BadUsage
    })?;
    let mut engines = Vec::with_capacity(selected.len());
    for integration in selected {
        engines.push(engine(config, client, integration).await?);
    }
    Ok(engines)
}

async fn engine(
    config: &Config,
    client: &NetSuiteClient,
    integration: &IntegrationConfig,
) -> Result<Engine, Outcome> {
    let index = index_of(config, integration);
    let resolved = integration.resolve(index).map_err(|mut e| {
        e.file = config.source.display().to_string();
        eprintln!("error: config: {e}");
        Outcome::BadUsage
    })?;
    let store = crate::store::open(&integration.store).await.map_err(|e| {
        eprintln!("error: {}: {e}", integration.name);
        Outcome::Failed
    })?;
    Ok(Engine::new(
        Arc::new(resolved),
        client.clone(),
        store,
        Arc::new(NoEvents),
    ))
}

fn index_of(config: &Config, integration: &IntegrationConfig) -> usize {
    config
        .integrations
        .iter()
        .position(|i| std::ptr::eq(i, integration))
        .expect("integration comes from this config")
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
            println!("{}", report.line);
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
) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    if dry_run {
        return for_each_engine(config, engines, move |engine| async move {
            let name = &engine.integration().name;
            match engine.load().await {
                Ok(state) => Report::ok(format!("{name}: {}", status::plan(&state))),
                Err(e) => Report::failed(format!("{name}: cannot read the store: {e}")),
            }
        })
        .await;
    }
    for_each_engine(config, engines, move |engine| async move {
        let name = &engine.integration().name;
        match engine.rotate().await {
            Ok(rotated) => {
                let previous = match &rotated.previous {
                    PreviousFate::None => "no previous token".to_string(),
                    PreviousFate::Revoked { token_id } => {
                        format!("previous {} revoked", short_id(token_id))
                    }
                    PreviousFate::RevokeAt { token_id, at } => {
                        format!("previous {} revoked after {at}", short_id(token_id))
                    }
                    PreviousFate::RevokeFailed { token_id, error } => {
                        format!(
                            "previous {} not revoked yet ({error}); a later run retries",
                            short_id(token_id)
                        )
                    }
                };
                Report::ok(format!(
                    "{name}: rotated (rotation {}): current token {}; {previous}",
                    rotated.rotation_id,
                    short_id(&rotated.token_id)
                ))
            }
            Err(e) => Report::failed(format!("{name}: rotation failed: {e}")),
        }
    })
    .await
}

async fn verify(config: &Config, client: &NetSuiteClient, target: &Target) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    for_each_engine(config, engines, move |engine| async move {
        let name = &engine.integration().name;
        match engine.verify_current().await {
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
    for_each_engine(config, engines, move |engine| async move {
        let name = &engine.integration().name;
        match engine.revoke_due(force).await {
            Ok(RevokeOutcome::NothingToRevoke) => {
                Report::ok(format!("{name}: no previous token to revoke"))
            }
            Ok(RevokeOutcome::NotDue {
                token_id,
                revoke_after,
            }) => Report::ok(format!(
                "{name}: previous token {} is due for revocation after {revoke_after}",
                short_id(&token_id)
            )),
            Ok(RevokeOutcome::Revoked { token_id }) => Report::ok(format!(
                "{name}: previous token {} revoked",
                short_id(&token_id)
            )),
            Err(e) => Report::failed(format!("{name}: revocation failed: {e}")),
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
    let (token_id, token_secret) = match read_token_from_stdin() {
        Ok(t) => t,
        Err(problem) => {
            eprintln!("error: import: {problem}");
            return Outcome::BadUsage;
        }
    };
    match engine.import(token_id.clone(), token_secret).await {
        Ok(()) => {
            println!(
                "{name}: token {} imported as current; the next rotation replaces and revokes it",
                short_id(&token_id)
            );
            Outcome::Ok
        }
        Err(e) => {
            println!("{name}: import failed: {e}");
            Outcome::Failed
        }
    }
}

/// Token id on the first line, token secret on the second.
fn read_token_from_stdin() -> Result<(String, SecretString), String> {
    let stdin = std::io::stdin();
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

/// One line per check; exit 1 if any failed. Changes nothing (no token is issued).
async fn check(config: &Config, client: &NetSuiteClient) -> Outcome {
    let mut failed = false;
    let mut line = |ok: bool, what: String| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        failed |= !ok;
    };
    line(
        true,
        format!("config {} parsed and valid", config.source.display()),
    );
    for (index, integration) in config.integrations.iter().enumerate() {
        let name = &integration.name;
        for field in integration.literal_secrets(index) {
            println!(
                "warn {name}: {field} is a literal in the config file; prefer {{ env = .. }}, {{ file = .. }} or {{ credential = .. }}"
            );
        }
        if let crate::config::StoreConfig::Vault(v) = &integration.store
            && v.kv_version == 1
        {
            println!(
                "warn {name}: Vault KV v1 has no check-and-set: run only one rotator against this store"
            );
        }
        let engine = match engine(config, client, integration).await {
            Ok(e) => e,
            Err(_) => {
                line(
                    false,
                    format!("{name}: secrets or store could not be set up (see above)"),
                );
                continue;
            }
        };
        line(true, format!("{name}: secret references resolved"));
        match engine.load().await {
            Ok(state) => {
                line(
                    true,
                    format!("{name}: store {} readable", engine.store().describe()),
                );
                if state.current.is_none() {
                    println!(
                        "warn {name}: the store holds no current token yet; `rotate` bootstraps one, `import` brings one in"
                    );
                    continue;
                }
                match engine.verify_current().await {
                    Ok(_) => line(
                        true,
                        format!("{name}: NetSuite accepted the current token (tokeninfo)"),
                    ),
                    Err(e) => line(
                        false,
                        format!("{name}: tokeninfo with the current token: {e}"),
                    ),
                }
            }
            Err(e) => line(false, format!("{name}: {e}")),
        }
    }
    if failed { Outcome::Failed } else { Outcome::Ok }
}
