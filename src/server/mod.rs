//! The daemon's small HTTP surface: `/healthz` (the process answers), `/readyz` (config loaded,
//! recovery done, every store reachable at last contact) and `/metrics` (Prometheus text).
//!
//! It binds `[daemon] listen`, which should stay on loopback or a pod network: nothing here is
//! authenticated, and nothing here is secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// What the health endpoints report; shared by the daemon's jobs.
pub struct Health {
    ready: AtomicBool,
    /// Integration name -> why its store or recovery is not healthy.
    problems: Mutex<BTreeMap<String, String>>,
    /// Renders `/metrics`, told whether the daemon is ready now, so that the `ready` gauge
    /// and `/readyz` never disagree.
    metrics: Box<dyn Fn(bool) -> String + Send + Sync>,
}

impl Health {
    pub fn new(metrics: impl Fn(bool) -> String + Send + Sync + 'static) -> Arc<Health> {
        Arc::new(Health {
            ready: AtomicBool::new(false),
            problems: Mutex::new(BTreeMap::new()),
            metrics: Box::new(metrics),
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

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            crate::telemetry::metrics::CONTENT_TYPE,
        )],
        (health.metrics)(health.is_ready()),
    )
}
