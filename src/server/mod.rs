//! The daemon's small HTTP surface: `/healthz` (the process answers), `/readyz` (config loaded,
//! recovery done, every store reachable at last contact, no integration latched on a refused
//! login), `/metrics` (Prometheus text) and `POST /reconcile` (read the stores again now: the
//! CLI calls it after it changed a store, so that the daemon revokes a replaced token when its
//! grace window ends and its metrics follow; `?integration=NAME` for one).
//!
//! A scrape of `/metrics` also asks for a reconciliation, at most once per `[daemon]
//! reconcile_interval`: what another replica or a hand edit changed then shows within a scrape
//! or two, and an idle daemon nobody scrapes still never wakes.
//!
//! It binds `[daemon] listen`, which should stay on loopback or a pod network: nothing here is
//! authenticated, and nothing here is secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::mpsc;

/// A request to read stores again now and act on what they say.
#[derive(Debug)]
pub enum Reconcile {
    All,
    One(String),
}

/// What the health endpoints report; shared by the daemon's jobs.
pub struct Health {
    ready: AtomicBool,
    /// Integration name -> why its store or recovery is not healthy.
    problems: Mutex<BTreeMap<String, String>>,
    /// Renders `/metrics`, told whether the daemon is ready now, so that the `ready` gauge
    /// and `/readyz` never disagree.
    metrics: Box<dyn Fn(bool) -> String + Send + Sync>,
    /// Where reconciliation requests go: the running fleet's supervisor.
    reconciler: Mutex<Option<mpsc::UnboundedSender<Reconcile>>>,
    /// Scrapes ask for a reconciliation at most this often; zero: never.
    scrape_reconcile_interval: Mutex<Duration>,
    last_scrape_reconcile: Mutex<Option<Instant>>,
}

impl Health {
    pub fn new(metrics: impl Fn(bool) -> String + Send + Sync + 'static) -> Arc<Health> {
        Arc::new(Health {
            ready: AtomicBool::new(false),
            problems: Mutex::new(BTreeMap::new()),
            metrics: Box::new(metrics),
            reconciler: Mutex::new(None),
            scrape_reconcile_interval: Mutex::new(Duration::ZERO),
            last_scrape_reconcile: Mutex::new(None),
        })
    }

    /// Recovery finished for every integration (or the config was reloaded and it finished again).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.problems.lock().unwrap().is_empty()
    }

    pub fn problem(&self, integration: &str, what: String) {
        self.problems
            .lock()
            .unwrap()
            .insert(integration.to_string(), what);
    }

    pub fn healthy(&self, integration: &str) {
        self.problems.lock().unwrap().remove(integration);
    }

    /// The integrations with a problem, and what it is.
    pub fn problems(&self) -> Vec<(String, String)> {
        let problems = self.problems.lock().unwrap();
        problems
            .iter()
            .map(|(name, what)| (name.clone(), what.clone()))
            .collect()
    }

    /// The running fleet takes reconciliation requests here (replacing the previous fleet's),
    /// and scrapes ask for one at most every `interval` (zero: never).
    pub fn set_reconciler(&self, sender: mpsc::UnboundedSender<Reconcile>, interval: Duration) {
        *self.reconciler.lock().unwrap() = Some(sender);
        *self.scrape_reconcile_interval.lock().unwrap() = interval;
    }

    /// Asks the running fleet to read stores again; false when no fleet takes requests.
    pub fn reconcile(&self, request: Reconcile) -> bool {
        let reconciler = self.reconciler.lock().unwrap();
        reconciler
            .as_ref()
            .is_some_and(|sender| sender.send(request).is_ok())
    }

    /// A scrape arrived: reconcile every store if the last scrape-driven one is old enough.
    fn scraped(&self) {
        let interval = *self.scrape_reconcile_interval.lock().unwrap();
        if interval.is_zero() {
            return;
        }
        let mut last = self.last_scrape_reconcile.lock().unwrap();
        if last.is_some_and(|at| at.elapsed() < interval) {
            return;
        }
        if self.reconcile(Reconcile::All) {
            *last = Some(Instant::now());
        }
    }

    /// Forget integrations no longer configured (after a reload).
    pub fn retain(&self, integrations: &[String]) {
        self.problems
            .lock()
            .unwrap()
            .retain(|name, _| integrations.contains(name));
    }
}

/// Binds `addr` now (so a busy port fails start-up at once) and serves until the task is dropped.
pub async fn serve(addr: SocketAddr, health: Arc<Health>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/reconcile", post(reconcile))
        .with_state(health);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(bound)
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.is_ready() {
        return (StatusCode::OK, "ready\n".to_string());
    }
    let mut body = String::new();
    if !health.ready.load(Ordering::SeqCst) {
        body.push_str("not ready: start-up recovery is still running\n");
    }
    for (integration, problem) in health.problems.lock().unwrap().iter() {
        body.push_str(&format!("not ready: {integration}: {problem}\n"));
    }
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

/// `POST /reconcile[?integration=NAME]`: 202 once the request is queued.
async fn reconcile(
    State(health): State<Arc<Health>>,
    axum::extract::Query(query): axum::extract::Query<ReconcileQuery>,
) -> impl IntoResponse {
    let request = match query.integration {
        Some(name) => Reconcile::One(name),
        None => Reconcile::All,
    };
    match health.reconcile(request) {
        true => (StatusCode::ACCEPTED, "reconciling\n"),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not running any integration yet\n",
        ),
    }
}

#[derive(serde::Deserialize)]
struct ReconcileQuery {
    integration: Option<String>,
}

/// OpenMetrics to a scraper that asks for it (Prometheus does), the Prometheus text format
/// 0.0.4 to anyone else: a client that sends `Accept: text/plain;version=0.0.4`, or `*/*`,
/// must not get a format it did not ask for.
async fn metrics(
    State(health): State<Arc<Health>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    use crate::telemetry::metrics::{CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, to_prometheus_text};
    health.scraped();
    let openmetrics = (health.metrics)(health.is_ready());
    let (content_type, body) = if wants_openmetrics(&headers) {
        (CONTENT_TYPE, openmetrics)
    } else {
        (PROMETHEUS_CONTENT_TYPE, to_prometheus_text(&openmetrics))
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::VARY, "Accept"),
        ],
        body,
    )
}

/// Whether the `Accept` header prefers OpenMetrics: an `application/openmetrics-text` range
/// (of version 1.0.0, what is served, or none) with a weight above 0 and at least the weight
/// of every range the Prometheus text format matches (`text/plain`, `text/*`, `*/*`). No
/// header, `*/*` or `text/plain` alone get the text format; Prometheus sends
/// `application/openmetrics-text;version=1.0.0;q=0.5,…,text/plain;version=0.0.4;q=0.3,*/*;q=0.2`.
fn wants_openmetrics(headers: &axum::http::HeaderMap) -> bool {
    let mut openmetrics = 0.0_f32;
    let mut text = 0.0_f32;
    let ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for range in ranges {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut weight, mut version) = (1.0_f32, None);
        for parameter in parts {
            match parameter.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some((key, value)) if key.eq_ignore_ascii_case("q") => {
                    // A weight that is not a number drops the range.
                    weight = value.parse().unwrap_or(0.0);
                }
                Some((key, value)) if key.eq_ignore_ascii_case("version") => version = Some(value),
                _ => {}
            }
        }
        match media.as_str() {
            "application/openmetrics-text" if version.is_none_or(|v| v == "1.0.0") => {
                openmetrics = openmetrics.max(weight);
            }
            "text/plain" | "text/*" | "*/*" => text = text.max(weight),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}
