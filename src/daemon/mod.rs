//! `run`: the long-running service.
//!
//! Start-up reads the config (exit 2 if it is bad), binds the health server, builds one job per
//! integration (see `job`), lets every job recover what a previous process left, then reports
//! ready (to `/readyz` and to systemd). After that it only waits for signals:
//! - SIGTERM / SIGINT: stop taking new work, let in-flight steps finish within
//!   `[daemon] shutdown_grace`, exit 0. A step cut off there is resumed by the next start's
//!   recovery, like a crash.
//! - SIGHUP: read the config again; an invalid one is refused with a log line and the running
//!   configuration stays. A valid one replaces the jobs once their in-flight steps are done.
//!
//! An operator's `rotate` while the daemon runs is safe: the store's check-and-set lets one
//! rotation through and the other reports that a rotation is in progress.

mod job;
mod notify;
mod observer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::cli::Outcome;
use crate::config::Config;
use crate::netsuite::NetSuiteClient;
use crate::rotation::{Engine, Integration};
use crate::schedule::{PatternCache, Schedule};
use crate::server::{self, Health};
use crate::store::SecretStore;

pub use observer::Observer;

pub async fn run(config_path: &Path) -> Outcome {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: config: {e}");
            return Outcome::BadUsage;
        }
    };
    if let Some(problem) = config.exposed_secrets_problem() {
        eprintln!("error: config: {problem}");
        return Outcome::BadUsage;
    }
    let telemetry = match crate::telemetry::init(&config.telemetry, "info") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: telemetry: {e}");
            return Outcome::BadUsage;
        }
    };
    let client = match NetSuiteClient::new(crate::cli::client_options(&config)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot create the HTTP client: {e}");
            return Outcome::Failed;
        }
    };
    let observer = match Observer::new(&config) {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("error: config: {e}");
            return Outcome::BadUsage;
        }
    };
    let health = Health::new({
        let observer = observer.clone();
        move || observer.render_metrics()
    });
    let listen = config.daemon.listen.parse().expect("validated");
    match server::serve(listen, health.clone()).await {
        Ok(bound) => info!(address = %bound, "serving /healthz, /readyz and /metrics"),
        Err(e) => {
            eprintln!("error: cannot listen on {listen} ([daemon] listen): {e}");
            return Outcome::Failed;
        }
    }
    notify::spawn_watchdog();

    let mut fleet = match Fleet::prepare(&config, &client).await {
        Ok(prepared) => prepared.spawn(&config, &health, &observer),
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Failed;
        }
    };
    let mut running = Running::of(config);
    let (mut sigterm, mut sigint, mut sighup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            eprintln!("error: cannot install signal handlers");
            return Outcome::Failed;
        }
    };
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                notify::reloading();
                match Config::load(config_path).and_then(refuse_exposed_secrets) {
                    Err(e) => {
                        error!(error = %e, "configuration reload refused; the running configuration stays");
                        notify::ready("reload refused: invalid configuration (see the log)");
                    }
                    Ok(new) => {
                        if new.daemon.listen != running.listen || new.telemetry.otlp_endpoint != running.otlp_endpoint {
                            warn!("[daemon] listen and [telemetry] changes take effect at the next restart");
                        }
                        if new.alerts != running.alerts {
                            warn!("[[alerts]] changes take effect at the next restart; alerts still go to the channels the daemon started with");
                        }
                        match Fleet::prepare(&new, &client).await {
                            Ok(prepared) => {
                                // Old jobs end before new ones start: one engine per store.
                                fleet.stop(running.shutdown_grace).await;
                                observer.set_accounts(&new);
                                fleet = prepared.spawn(&new, &health, &observer);
                                running = Running::of(new);
                                info!("configuration reloaded");
                            }
                            Err(e) => {
                                error!(error = %e, "configuration reload refused; the running configuration stays");
                                notify::ready("reload refused (see the log)");
                            }
                        }
                    }
                }
            }
        }
    }
    info!(
        "stopping: no new work; in-flight steps get {:?}",
        running.shutdown_grace
    );
    notify::stopping();
    fleet.stop(running.shutdown_grace).await;
    observer.flush(Duration::from_secs(10)).await;
    if let Err(e) = telemetry.shutdown().await {
        warn!(error = %e, "could not flush the last traces");
    }
    Outcome::Ok
}

/// What `run` keeps of the configuration its jobs started from: what a reload compares and
/// what shutdown needs. The integration tables are not kept (each job owns its own part); with
/// thousands of integrations they would hold kilobytes each for the life of the process.
struct Running {
    listen: String,
    otlp_endpoint: Option<String>,
    alerts: Vec<crate::config::AlertConfig>,
    shutdown_grace: Duration,
}

impl Running {
    fn of(config: Config) -> Running {
        let shutdown_grace = config.shutdown_grace();
        Running {
            listen: config.daemon.listen,
            otlp_endpoint: config.telemetry.otlp_endpoint,
            alerts: config.alerts,
            shutdown_grace,
        }
    }
}

/// The running jobs of one configuration.
struct Fleet {
    shutdown: watch::Sender<bool>,
    jobs: JoinSet<()>,
}

/// A configuration's integrations, resolved and with their stores open, not yet running.
struct Prepared {
    integrations: Vec<(Integration, Arc<dyn SecretStore>, Schedule)>,
    client: NetSuiteClient,
}

impl Fleet {
    /// Resolves every integration's secrets and opens its store, failing as a whole, so that a
    /// reload either takes effect completely or not at all.
    async fn prepare(config: &Config, client: &NetSuiteClient) -> Result<Prepared, String> {
        let mut prepared = Vec::with_capacity(config.integrations.len());
        let mut patterns = PatternCache::default();
        for (index, integration) in config.integrations.iter().enumerate() {
            let resolved = integration.resolve(index).map_err(|mut e| {
                e.file = config.source.display().to_string();
                format!("config: {e}")
            })?;
            let store = crate::store::open(&integration.store)
                .await
                .map_err(|e| format!("{}: {e}", integration.name))?;
            let schedule = integration
                .schedule_cached(&mut patterns)
                .map_err(|(key, p)| format!("integrations[{index}].{key}: {p}"))?;
            prepared.push((resolved, store, schedule));
        }
        Ok(Prepared {
            integrations: prepared,
            client: client.clone(),
        })
    }

    /// Asks every job to stop, then waits for in-flight steps up to `grace`.
    async fn stop(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(grace, async {
            while self.jobs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                "some steps did not finish within the shutdown grace; the next start's recovery resumes them"
            );
            self.jobs.abort_all();
        }
    }
}

impl Prepared {
    /// Starts one job per integration; readiness follows once all have recovered.
    fn spawn(self, config: &Config, health: &Arc<Health>, observer: &Arc<Observer>) -> Fleet {
        let prepared = self.integrations;
        let client = self.client;
        let global = Arc::new(Semaphore::new(config.daemon.max_concurrent_rotations));
        let mut per_account: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (recovered_tx, mut recovered_rx) = mpsc::channel::<()>(1);
        let names: Vec<String> = prepared.iter().map(|(i, _, _)| i.name.clone()).collect();
        health.set_ready(false);
        health.retain(&names);

        let mut jobs = JoinSet::new();
        for (integration, store, schedule) in prepared {
            let account = per_account
                .entry(integration.account.realm().to_string())
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(config.daemon.max_concurrent_per_account))
                })
                .clone();
            let engine = Engine::new(
                Arc::new(integration),
                client.clone(),
                store,
                observer.clone(),
            );
            let job = job::Job {
                engine,
                schedule,
                limits: job::Limits {
                    global: global.clone(),
                    account,
                },
                health: health.clone(),
                observer: observer.clone(),
            };
            jobs.spawn(job.run(shutdown_rx.clone(), recovered_tx.clone()));
        }
        drop(recovered_tx);

        // Ready once every job has reported its recovery (the channel closes when all have).
        let count = names.len();
        let ready_health = health.clone();
        let ready_observer = observer.clone();
        tokio::spawn(async move {
            let mut done = 0;
            while recovered_rx.recv().await.is_some() {
                done += 1;
            }
            if done == count {
                release_freed_memory();
                ready_health.set_ready(true);
                ready_observer.set_ready(true);
                let status = format!("{count} integrations recovered and scheduled");
                info!("{status}");
                notify::ready(&status);
            }
        });
        Fleet { shutdown, jobs }
    }
}

/// Hands the memory start-up freed back to the kernel. Parsing the config and recovering every
/// store peaks at several times what the idle daemon keeps (about 90 MB with 10,000
/// integrations), and glibc keeps freed heap pages mapped, fragmented between the long-lived
/// allocations, for the weeks the daemon then sleeps.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only returns whole free pages of the heap to
    // the kernel (madvise); it is thread-safe and every allocation stays valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A reloaded config that exposes literal secrets is refused like an invalid one.
fn refuse_exposed_secrets(config: Config) -> Result<Config, crate::config::ConfigError> {
    match config.exposed_secrets_problem() {
        None => Ok(config),
        Some(problem) => Err(crate::config::ConfigError {
            file: config.source.display().to_string(),
            field: "(file mode)".into(),
            problem,
        }),
    }
}
