//! The [`Alerter`]: fans alerts out to every channel in the background, retries each delivery
//! with exponential backoff and jitter, counts outcomes per channel, and remembers which
//! problems are open so a successful rotation resolves exactly those.
//!
//! Nothing here can block or fail a rotation: `trigger` and `resolve` only record and spawn.
//! Deliveries of one problem to one channel run in order (a resolve never overtakes its
//! trigger); different problems and different channels run independently, so a dead channel
//! delays nobody else.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, oneshot};
use tracing::{debug, error, info, warn};

use super::config::AlertConfig;
use super::{
    Action, Alert, AlertChannel, AlertKind, PagerDutyChannel, SlackChannel, WebhookChannel, http,
};
use crate::secret::SecretRef;

/// How deliveries are attempted. The default makes 5 attempts over about a minute.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// Attempts per delivery, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one, up to `max_backoff`.
    /// Each wait is drawn between half and all of that (jitter), unless the receiver's
    /// `Retry-After` asks for longer (still capped at `max_backoff`).
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Whole-request timeout of one attempt.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(4),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl DeliveryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .first_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_backoff);
        let jittered = doubled.mul_f64(rand::rng().random_range(0.5..=1.0));
        retry_after
            .map_or(jittered, |asked| asked.max(jittered))
            .min(self.max_backoff)
    }
}

/// Sends alerts to every configured channel. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Alerter {
    shared: Arc<Shared>,
}

struct Shared {
    slots: Vec<Slot>,
    policy: DeliveryPolicy,
    runbook_base_url: Option<String>,
    /// Problems triggered and not yet resolved.
    open: Mutex<BTreeMap<(String, AlertKind), OpenAlert>>,
    /// Integrations that have had a success since this process started: problems raised by a
    /// process before it (a deploy, a crash) are resolved at the first one (see `resolve_all`).
    healed_since_start: Mutex<std::collections::HashSet<String>>,
    /// Per channel and dedup key, the completion of the latest delivery, so the next one waits
    /// for it. The number is a generation, to let a finished delivery remove its own entry.
    chains: Mutex<HashMap<ChainKey, (u64, oneshot::Receiver<()>)>>,
    generation: AtomicU64,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// A channel (by index) and a dedup key.
type ChainKey = (usize, String);

struct Slot {
    channel: Box<dyn AlertChannel>,
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

struct OpenAlert {
    alert: Alert,
    /// Set when a channel gave up on the trigger, so a repeat trigger is sent again.
    undelivered: Arc<AtomicBool>,
}

impl Alerter {
    /// Channels from the `[[alerts]]` entries, secrets resolved now, default delivery policy.
    /// Errors name the field (`alerts[1].routing_key`), never a value.
    pub fn from_config(alerts: &[AlertConfig]) -> Result<Alerter, String> {
        Alerter::from_config_with(alerts, DeliveryPolicy::default())
    }

    /// Like [`Alerter::from_config`] with a delivery policy (tests use short waits).
    pub fn from_config_with(
        alerts: &[AlertConfig],
        policy: DeliveryPolicy,
    ) -> Result<Alerter, String> {
        if alerts.is_empty() {
            // No channel, no client: building one loads and parses the system's root
            // certificates, and the daemon would keep them for nothing.
            return Ok(Alerter::with_channels(Vec::new(), policy));
        }
        let client = http::client(policy.request_timeout, policy.connect_timeout)?;
        let kind_of = |config: &AlertConfig| match config {
            AlertConfig::Webhook { .. } => "webhook",
            AlertConfig::Slack { .. } => "slack",
            AlertConfig::Pagerduty { .. } => "pagerduty",
        };
        let mut channels: Vec<Box<dyn AlertChannel>> = Vec::new();
        for (i, config) in alerts.iter().enumerate() {
            let kind = kind_of(config);
            let same_kind = alerts.iter().filter(|c| kind_of(c) == kind).count();
            let name = if same_kind > 1 {
                format!("{kind}[{i}]")
            } else {
                kind.to_string()
            };
            let field = |key: &str| format!("alerts[{i}].{key}");
            let resolve = |key: &str, secret: &SecretRef| {
                secret.resolve().map_err(|e| format!("{}: {e}", field(key)))
            };
            let channel: Box<dyn AlertChannel> = match config {
                AlertConfig::Webhook { url, secret } => {
                    let url = http_url(url).map_err(|p| format!("{}: {p}", field("url")))?;
                    let secret = secret.as_ref().map(|s| resolve("secret", s)).transpose()?;
                    Box::new(WebhookChannel::new(name, client.clone(), url, secret))
                }
                AlertConfig::Slack { webhook_url } => {
                    let secret = resolve("webhook_url", webhook_url)?;
                    http_url(secrecy::ExposeSecret::expose_secret(&secret))
                        .map_err(|p| format!("{}: {p}", field("webhook_url")))?;
                    Box::new(SlackChannel::new(name, client.clone(), secret))
                }
                AlertConfig::Pagerduty {
                    routing_key,
                    events_url,
                } => {
                    let key = resolve("routing_key", routing_key)?;
                    if let Some(url) = events_url {
                        http_url(url).map_err(|p| format!("{}: {p}", field("events_url")))?;
                    }
                    Box::new(PagerDutyChannel::new(
                        name,
                        client.clone(),
                        key,
                        events_url.as_deref(),
                    ))
                }
            };
            channels.push(channel);
        }
        Ok(Alerter::with_channels(channels, policy))
    }

    /// An alerter over the given channels (custom channels, tests).
    pub fn with_channels(channels: Vec<Box<dyn AlertChannel>>, policy: DeliveryPolicy) -> Alerter {
        let slots = channels
            .into_iter()
            .map(|channel| Slot {
                channel,
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                retried: AtomicU64::new(0),
            })
            .collect();
        Alerter {
            shared: Arc::new(Shared {
                slots,
                policy,
                runbook_base_url: None,
                open: Mutex::new(BTreeMap::new()),
                healed_since_start: Mutex::default(),
                chains: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Makes runbook links absolute: `<base>/docs/runbook.md#<slug>` (e.g. the repository's
    /// web address), so chat messages and PagerDuty `links` can be clicked. Call before use.
    pub fn with_runbook_base_url(mut self, base: &str) -> Alerter {
        let shared = Arc::get_mut(&mut self.shared)
            .expect("with_runbook_base_url before the alerter is shared");
        shared.runbook_base_url = Some(base.trim_end_matches('/').to_string());
        self
    }

    /// Whether any channel is configured.
    pub fn is_empty(&self) -> bool {
        self.shared.slots.is_empty()
    }

    /// Raises `alert` on every channel and returns at once. A repeat of an open problem with
    /// the same summary is not sent again unless a channel gave up on the earlier one.
    /// Needs a Tokio runtime; without one the alert is logged and dropped.
    pub fn trigger(&self, alert: Alert) {
        let mut alert = alert.scrubbed();
        if let Some(base) = &self.shared.runbook_base_url
            && !alert.runbook.contains("://")
        {
            alert.runbook = format!("{base}/{}", alert.runbook);
        }
        let key = (alert.integration.clone(), alert.kind);
        let undelivered = Arc::new(AtomicBool::new(false));
        {
            let mut open = self.shared.open.lock().expect("alert state poisoned");
            if let Some(previous) = open.get(&key)
                && previous.alert.summary == alert.summary
                && !previous.undelivered.load(Ordering::SeqCst)
            {
                debug!(alert = %alert.dedup_key(), "alert already open; not sent again");
                return;
            }
            open.insert(
                key,
                OpenAlert {
                    alert: alert.clone(),
                    undelivered: undelivered.clone(),
                },
            );
        }
        self.dispatch(Action::Trigger, alert, Some(undelivered));
    }

    /// Clears the open `kind` problem of `integration`, if this process raised it.
    pub fn resolve(&self, integration: &str, kind: AlertKind) {
        let opened = self
            .shared
            .open
            .lock()
            .expect("alert state poisoned")
            .remove(&(integration.to_string(), kind));
        if let Some(opened) = opened {
            self.dispatch(Action::Resolve, opened.alert, None);
        }
    }

    /// `integration` rotated successfully: clears its open problems ([`resolve_all`]), and,
    /// the first time since this process started, every other kind of problem of it on the
    /// channels that close problems by dedup key. Open problems live in memory only, and one
    /// that a process before a restart raised would otherwise stay open forever (PagerDuty
    /// accepts a resolve for a key it has no incident for).
    ///
    /// [`resolve_all`]: Alerter::resolve_all
    pub fn healed(&self, integration: &str, account: &str) {
        let raised_here = self.resolve_all(integration);
        let first_since_start = self
            .shared
            .healed_since_start
            .lock()
            .expect("alert state poisoned")
            .insert(integration.to_string());
        if !first_since_start {
            return;
        }
        for kind in AlertKind::ALL {
            if !raised_here.contains(&kind) {
                let alert = Alert::new(
                    kind,
                    integration,
                    account,
                    format!("{integration} rotated successfully"),
                );
                self.dispatch_to(Action::Resolve, alert, None, |c| c.resolves_by_key());
            }
        }
    }

    /// Clears every open problem of `integration` this process raised; returns their kinds.
    pub fn resolve_all(&self, integration: &str) -> Vec<AlertKind> {
        let resolved: Vec<Alert> = {
            let mut open = self.shared.open.lock().expect("alert state poisoned");
            let keys: Vec<_> = open
                .keys()
                .filter(|(name, _)| name == integration)
                .cloned()
                .collect();
            keys.iter()
                .filter_map(|key| open.remove(key).map(|o| o.alert))
                .collect()
        };
        let kinds = resolved.iter().map(|a| a.kind).collect();
        for alert in resolved {
            self.dispatch(Action::Resolve, alert, None);
        }
        kinds
    }

    /// The open problems, as (integration, kind).
    pub fn open_alerts(&self) -> Vec<(String, AlertKind)> {
        let open = self.shared.open.lock().expect("alert state poisoned");
        open.keys().cloned().collect()
    }

    /// Per channel: (name, deliveries sent, deliveries given up), for the metrics.
    pub fn counts(&self) -> Vec<(String, u64, u64)> {
        self.shared
            .slots
            .iter()
            .map(|slot| {
                (
                    slot.channel.name().to_string(),
                    slot.sent.load(Ordering::Relaxed),
                    slot.failed.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Per channel: (name, attempts that failed and were retried).
    pub fn retry_counts(&self) -> Vec<(String, u64)> {
        self.shared
            .slots
            .iter()
            .map(|slot| {
                (
                    slot.channel.name().to_string(),
                    slot.retried.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Waits until no delivery is in flight, or `timeout`; `true` when all finished.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let drained = async {
            loop {
                let notified = self.shared.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.shared.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, drained).await.is_ok()
    }

    /// Spawns one delivery per channel.
    fn dispatch(&self, action: Action, alert: Alert, undelivered: Option<Arc<AtomicBool>>) {
        self.dispatch_to(action, alert, undelivered, |_| true)
    }

    /// [`dispatch`](Alerter::dispatch) to the channels `wanted` picks.
    fn dispatch_to(
        &self,
        action: Action,
        alert: Alert,
        undelivered: Option<Arc<AtomicBool>>,
        wanted: impl Fn(&dyn AlertChannel) -> bool,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            error!(alert = %alert.dedup_key(), action = action.as_str(),
                   "no async runtime to send the alert from; dropped");
            return;
        };
        let alert = Arc::new(alert);
        let dedup_key = alert.dedup_key();
        for index in 0..self.shared.slots.len() {
            if !wanted(self.shared.slots[index].channel.as_ref()) {
                continue;
            }
            let (done, previous, generation) = self.chain(index, &dedup_key);
            let guard = InFlight::new(self.shared.clone());
            let shared = self.shared.clone();
            let alert = alert.clone();
            let undelivered = undelivered.clone();
            let dedup_key = dedup_key.clone();
            runtime.spawn(async move {
                let _guard = guard;
                if let Some(previous) = previous {
                    // Either outcome means the earlier delivery is over.
                    let _ = previous.await;
                }
                shared.deliver(index, action, &alert, undelivered).await;
                drop(done);
                let mut chains = shared.chains.lock().expect("alert state poisoned");
                if chains
                    .get(&(index, dedup_key.clone()))
                    .is_some_and(|(g, _)| *g == generation)
                {
                    chains.remove(&(index, dedup_key));
                }
            });
        }
    }

    /// Registers a new delivery for (channel, dedup key): its completion signal, the earlier
    /// delivery's to wait for, and its generation.
    fn chain(
        &self,
        index: usize,
        dedup_key: &str,
    ) -> (oneshot::Sender<()>, Option<oneshot::Receiver<()>>, u64) {
        let (done, finished) = oneshot::channel();
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed);
        let previous = self
            .shared
            .chains
            .lock()
            .expect("alert state poisoned")
            .insert((index, dedup_key.to_string()), (generation, finished))
            .map(|(_, rx)| rx);
        (done, previous, generation)
    }
}

impl Shared {
    /// One delivery to one channel, with retries; counts and logs the outcome.
    async fn deliver(
        &self,
        index: usize,
        action: Action,
        alert: &Alert,
        undelivered: Option<Arc<AtomicBool>>,
    ) {
        let slot = &self.slots[index];
        let channel = slot.channel.name();
        let dedup_key = alert.dedup_key();
        let mut attempt = 1;
        loop {
            let result = match action {
                Action::Trigger => slot.channel.trigger(alert).await,
                Action::Resolve => slot.channel.resolve(alert).await,
            };
            match result {
                Ok(()) => {
                    slot.sent.fetch_add(1, Ordering::Relaxed);
                    info!(channel, alert = %dedup_key, action = action.as_str(), attempt, "alert delivered");
                    return;
                }
                Err(e) if e.is_retryable() && attempt < self.policy.attempts => {
                    slot.retried.fetch_add(1, Ordering::Relaxed);
                    let wait = self.policy.backoff(attempt, e.retry_after());
                    warn!(channel, alert = %dedup_key, action = action.as_str(), attempt,
                          error = %e, wait = ?wait, "alert delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => {
                    slot.failed.fetch_add(1, Ordering::Relaxed);
                    if let Some(flag) = &undelivered {
                        flag.store(true, Ordering::SeqCst);
                    }
                    error!(channel, alert = %dedup_key, action = action.as_str(), attempt,
                           error = %e, "alert delivery failed; giving up");
                    return;
                }
            }
        }
    }
}

/// Counts a delivery in flight from dispatch to its end (even if its task is dropped).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: Arc<Shared>) -> InFlight {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Checks that a configured URL is http(s); the message never quotes it (a webhook URL can
/// be a credential).
fn http_url(text: &str) -> Result<reqwest::Url, String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err("expected an http:// or https:// URL (value not shown)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let policy = DeliveryPolicy {
            first_backoff: Duration::from_secs(4),
            max_backoff: Duration::from_secs(30),
            ..DeliveryPolicy::default()
        };
        for (attempt, full) in [(1, 4), (2, 8), (3, 16), (4, 30), (9, 30)] {
            let wait = policy.backoff(attempt, None);
            let full = Duration::from_secs(full);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(20))),
            Duration::from_secs(20)
        );
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(600))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn urls_must_be_http() {
        assert!(http_url("https://example.invalid/hook").is_ok());
        for bad in ["ftp://x/secret-path", "not a url", "https://?token=abc"] {
            let err = http_url(bad).unwrap_err();
            assert!(!err.contains(bad), "{err}");
        }
    }
}
