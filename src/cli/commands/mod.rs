//! The commands that work from a config file: rotate, verify, revoke, import, status, check.
//!
//! Each loads the config (exit 2 on any problem, naming the field), builds one NetSuite client
//! and one engine per selected integration, does its work, prints a line per integration on
//! stdout in config order, and returns the exit outcome. `rotate`, `verify` and `revoke` work on
//! integrations concurrently under the daemon's limits (`[daemon] max_concurrent_rotations`
//! and `max_concurrent_per_account`): a fleet of thousands would otherwise wait on one round
//! trip at a time.

mod check;
mod import;
mod revoke;
mod rotate;
mod verify;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::out::{errln, outln};
use crate::cli::{Command, Outcome, Target, status};
use crate::config::{Config, Resolver};
use crate::netsuite::NetSuiteClient;
use crate::rotation::{Engine, NoEvents};
use crate::telemetry;

use check::*;
use import::*;
use revoke::*;
use rotate::*;
use verify::*;

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
