//! `run`: the long-running service.
//!
//! Start-up reads the config (exit 2 if it is bad), binds the health server, builds one job per
//! integration (see `job`; `fleet` wakes them from one timer), lets every job recover what a previous process left, then reports
//! ready (to `/readyz` and to systemd). After that it only waits for signals:
//! - SIGTERM / SIGINT: stop taking new work, let in-flight steps finish within
//!   `[daemon] shutdown_grace`, exit 0. A step cut off there is resumed by the next start's
//!   recovery, like a crash.
//! - SIGHUP: read the config again; an invalid one is refused with a log line and the running
//!   configuration stays. A valid one replaces the jobs once their in-flight steps are done.
//!
//! An operator's `rotate` while the daemon runs is safe: the store's check-and-set lets one
//! rotation through and the other reports that a rotation is in progress.

mod fleet;
mod job;
mod notify;
mod observer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::netsuite::NetSuiteClient;
use crate::outcome::Outcome;
use crate::server::{self, Health};
use fleet::Fleet;

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
    let client = match NetSuiteClient::new(config.netsuite_client_options()) {
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
    observer.observe_netsuite_calls(&client);
    let health = Health::new({
        let observer = observer.clone();
        move |ready| {
            observer.set_ready(ready);
            observer.render_metrics()
        }
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
                        observer.reload_failed();
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
                                fleet = prepared.spawn(&new, &health, &observer);
                                running = Running::of(new);
                                info!("configuration reloaded");
                            }
                            Err(e) => {
                                error!(error = %e, "configuration reload refused; the running configuration stays");
                                observer.reload_failed();
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
