//! The running jobs of one configuration, and the one timer that wakes them.
//!
//! A job holds no task while it waits for its next scheduled time: one supervising task keeps
//! every job's wake-up time in a heap, sleeps until the earliest, and spawns a task only for
//! the jobs that are due. With thousands of integrations asleep for a week, the daemon then
//! keeps per integration little more than its resolved configuration, and wakes up only when
//! something is due.
//!
//! A sleeping job does not see a store that another process changed (the CLI's `rotate`, an
//! import, another replica): it would revoke a replaced token at its next scheduled wake, up to
//! a week late, with its metrics stale until then. So the supervisor also wakes jobs on request
//! ([`Reconcile`], from `POST /reconcile` or a scrape of `/metrics`): the job reads its store
//! again, reports what it holds and sleeps until the next due time, a revocation's included.
//! Notification plus a throttled scrape-driven read was chosen over polling every store on a
//! timer: an idle daemon nobody scrapes still never wakes, and the CLI's change is seen at once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info, warn};

use super::job::{Backoff, Job, Shared};
use super::{Observer, notify};
use crate::config::{Config, Resolver};
use crate::netsuite::NetSuiteClient;
use crate::rotation::{Engine, Integration};
use crate::schedule::{PatternCache, Schedule};
use crate::server::{Health, Reconcile};
use crate::store::SecretStore;

/// A configuration's jobs, running.
pub struct Fleet {
    shutdown: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
}

/// A configuration's integrations, resolved and with their stores open, not yet running.
pub struct Prepared {
    integrations: Vec<(Integration, Arc<dyn SecretStore>, Schedule)>,
    client: NetSuiteClient,
}

impl Fleet {
    /// Resolves every integration's secrets and opens its store, failing as a whole, so that a
    /// reload either takes effect completely or not at all.
    pub async fn prepare(config: &Config, client: &NetSuiteClient) -> Result<Prepared, String> {
        let mut prepared = Vec::with_capacity(config.integrations.len());
        let mut patterns = PatternCache::default();
        let mut resolver = Resolver::default();
        for (index, integration) in config.integrations.iter().enumerate() {
            let resolved = resolver.resolve(integration, index).map_err(|mut e| {
                e.file = config.source.display().to_string();
                format!("config: {e}")
            })?;
            let store = crate::store::open(&integration.store)
                .await
                .map_err(|e| format!("{}: {e}", integration.name))?;
            let schedule = integration
                .schedule_cached(&mut patterns, &config.freezes)
                .map_err(|(key, p)| format!("integrations[{index}].{key}: {p}"))?;
            prepared.push((resolved, store, schedule));
        }
        Ok(Prepared {
            integrations: prepared,
            client: client.clone(),
        })
    }

    /// Asks every job to stop, then waits for in-flight steps up to `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(grace, &mut self.supervisor)
            .await
            .is_err()
        {
            warn!(
                "some steps did not finish within the shutdown grace; the next start's recovery resumes them"
            );
            // Dropping the supervisor's task set aborts the steps still running.
            self.supervisor.abort();
        }
    }
}

impl Prepared {
    /// Starts the jobs; readiness follows once all have recovered.
    pub fn spawn(self, config: &Config, health: &Arc<Health>, observer: &Arc<Observer>) -> Fleet {
        let shared = Arc::new(Shared {
            global: Arc::new(Semaphore::new(config.daemon.max_concurrent_rotations)),
            health: health.clone(),
            observer: observer.clone(),
        });
        let mut per_account: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let names: Vec<String> = self
            .integrations
            .iter()
            .map(|(i, _, _)| i.name.to_string())
            .collect();
        health.set_ready(false);
        health.retain(&names);
        observer.track_integrations(self.integrations.iter().map(|(i, _, _)| i.name.clone()));

        let mut jobs = Vec::with_capacity(self.integrations.len());
        for (integration, store, schedule) in self.integrations {
            let account_limit = per_account
                .entry(integration.account.realm().to_string())
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(config.daemon.max_concurrent_per_account))
                })
                .clone();
            observer.freezes(&integration.name, schedule.freezes());
            let engine = Engine::new(
                Arc::new(integration),
                self.client.clone(),
                store,
                observer.clone(),
            );
            jobs.push(Job {
                engine,
                schedule,
                account_limit,
                shared: shared.clone(),
            });
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (recovered_tx, recovered_rx) = mpsc::channel::<()>(1);
        tokio::spawn(report_ready(
            recovered_rx,
            jobs.len(),
            health.clone(),
            observer.clone(),
        ));
        // One allocation for all jobs; a job's task holds the slice and its index.
        let (reconcile_tx, reconcile_rx) = mpsc::unbounded_channel();
        health.set_reconciler(reconcile_tx, config.reconcile_interval());
        let supervisor = tokio::spawn(supervise(
            jobs.into(),
            shutdown_rx,
            recovered_tx,
            reconcile_rx,
        ));
        Fleet {
            shutdown,
            supervisor,
        }
    }
}

/// What a job's task hands back to the supervisor.
struct Woken {
    index: usize,
    /// `None` when the step panicked; its retry state went with it, and the job starts its
    /// count of failures again at this one (see `Job::after_panic`).
    backoff: Option<Backoff>,
    /// When to wake the job again; `None` when it saw the shutdown.
    next: Option<DateTime<Utc>>,
}

/// Recovers every job, then wakes each when it is due, until `shutdown`; then waits for the
/// steps in flight (the caller bounds that wait by aborting this task).
async fn supervise(
    jobs: Arc<[Job]>,
    mut shutdown: watch::Receiver<bool>,
    recovered: mpsc::Sender<()>,
    mut reconcile: mpsc::UnboundedReceiver<Reconcile>,
) {
    let mut backoffs: Vec<Backoff> = Vec::with_capacity(jobs.len());
    let mut due: BinaryHeap<Reverse<(DateTime<Utc>, usize)>> =
        BinaryHeap::with_capacity(jobs.len());
    // The one wake-up time of each job that is waiting (`None` while its task runs): a heap
    // entry that differs is stale, left by a reconciliation that woke the job early.
    let mut waiting: Vec<Option<DateTime<Utc>>> = vec![None; jobs.len()];
    // Jobs asked to reconcile while their task ran: woken again as soon as it ends.
    let mut again: Vec<bool> = vec![false; jobs.len()];
    let mut in_flight: JoinSet<Woken> = JoinSet::new();
    let by_name: HashMap<Arc<str>, usize> = jobs
        .iter()
        .enumerate()
        .map(|(index, job)| (job.engine.integration().name.clone(), index))
        .collect();

    for index in 0..jobs.len() {
        backoffs.push(Backoff::default());
        let (jobs, recovered, shutdown) = (jobs.clone(), recovered.clone(), shutdown.clone());
        in_flight.spawn(catching_panics(index, async move {
            let job = &jobs[index];
            job.recover().await;
            let _ = recovered.send(()).await;
            drop(recovered);
            let mut backoff = Backoff::default();
            let next = job.work(&mut backoff, &shutdown).await;
            Woken {
                index,
                backoff: Some(backoff),
                next,
            }
        }));
    }
    drop(recovered);

    loop {
        let wait = due
            .peek()
            .map(|Reverse((at, _))| (*at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(finished) = in_flight.join_next() => {
                // Tasks are aborted only with the supervisor, and panics are caught inside.
                let Ok(Woken { index, backoff, next }) = finished else { continue };
                let next = match backoff {
                    Some(backoff) => {
                        backoffs[index] = backoff;
                        next
                    }
                    None => Some(jobs[index].after_panic(&mut backoffs[index])),
                };
                if let Some(mut at) = next {
                    if std::mem::take(&mut again[index]) {
                        at = Utc::now();
                    }
                    waiting[index] = Some(at);
                    due.push(Reverse((at, index)));
                }
            }
            Some(request) = reconcile.recv() => {
                let now = Utc::now();
                let indexes: Vec<usize> = match &request {
                    Reconcile::All => (0..jobs.len()).collect(),
                    Reconcile::One(name) => by_name.get(name.as_str()).copied().into_iter().collect(),
                };
                for index in indexes {
                    match waiting[index] {
                        // Woken now: the heap entry at its old time becomes stale.
                        Some(_) => {
                            waiting[index] = Some(now);
                            due.push(Reverse((now, index)));
                        }
                        None => again[index] = true,
                    }
                }
            }
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {
                let now = Utc::now();
                while let Some(Reverse((at, index))) = due.peek().copied()
                    && at <= now
                {
                    due.pop();
                    if waiting[index] != Some(at) {
                        continue;
                    }
                    waiting[index] = None;
                    let jobs = jobs.clone();
                    let mut backoff = std::mem::take(&mut backoffs[index]);
                    let shutdown = shutdown.clone();
                    in_flight.spawn(catching_panics(index, async move {
                        let next = jobs[index].work(&mut backoff, &shutdown).await;
                        Woken { index, backoff: Some(backoff), next }
                    }));
                }
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// A job's step with its panic caught: the supervisor then still knows which job it was, and
/// schedules it again (see `Job::after_panic`).
async fn catching_panics(index: usize, step: impl Future<Output = Woken>) -> Woken {
    match std::panic::AssertUnwindSafe(step).catch_unwind().await {
        Ok(woken) => woken,
        Err(_) => Woken {
            index,
            backoff: None,
            next: None,
        },
    }
}

/// Reports ready once every job has recovered (the channel closes when all have).
async fn report_ready(
    mut recovered: mpsc::Receiver<()>,
    count: usize,
    health: Arc<Health>,
    observer: Arc<Observer>,
) {
    let mut done = 0;
    while recovered.recv().await.is_some() {
        done += 1;
    }
    if done == count {
        release_freed_memory();
        health.set_ready(true);
        observer.set_ready(health.is_ready());
        let problems = health.problems();
        if problems.is_empty() {
            let status = format!(
                "{} recovered and scheduled",
                crate::plural::count(count, "integration")
            );
            info!("{status}");
            notify::ready(&status);
        } else {
            // Up and serving, but not ready: the log says what `/readyz` and the gauge say.
            let names: Vec<&str> = problems.iter().map(|(name, _)| name.as_str()).collect();
            let status = format!(
                "not ready: {} of {count} have a problem ({}); see /readyz",
                crate::plural::count(problems.len(), "integration"),
                names.join(", ")
            );
            error!("{status}");
            notify::ready(&status);
        }
    } else {
        error!(
            recovered = done,
            integrations = count,
            "not every job finished its recovery; not ready"
        );
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
