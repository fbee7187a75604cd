//! An HTTP proxy on 127.0.0.1 that forwards every request to an upstream server and can hold
//! one chosen request until the test releases it. Put between a client and a server, it makes a
//! race happen in the order a test names (one client's write arrives after another's), without
//! sleeps.
//!
//! Include it with `#[path = "support/holding_proxy.rs"] mod holding_proxy;`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::sync::oneshot;

pub struct HoldingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    holds: Mutex<Vec<Hold>>,
}

struct Hold {
    method: Method,
    path: String,
    arrived: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// A request the proxy holds (or will hold, once it arrives).
pub struct Held {
    arrived: Option<oneshot::Receiver<()>>,
    release: oneshot::Sender<()>,
}

impl Held {
    /// Waits until the request reached the proxy and is being held.
    pub async fn arrived(&mut self) {
        if let Some(arrived) = self.arrived.take() {
            arrived
                .await
                .expect("the proxy dropped a held request before it arrived");
        }
    }

    /// Lets the request go on to the upstream server.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl HoldingProxy {
    /// Starts a proxy in front of `upstream` (a base URL such as `http://127.0.0.1:8200`).
    pub async fn start(upstream: &str) -> HoldingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            holds: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(forward).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("the proxy serves");
        });
        HoldingProxy { addr, shared, task }
    }

    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Holds the next request with this method whose path (without the query) is `path`.
    pub fn hold(&self, method: Method, path: &str) -> Held {
        let (arrived_tx, arrived_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.shared.holds.lock().unwrap().push(Hold {
            method,
            path: path.to_string(),
            arrived: arrived_tx,
            release: release_rx,
        });
        Held {
            arrived: Some(arrived_rx),
            release: release_tx,
        }
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hold = {
        let mut holds = shared.holds.lock().unwrap();
        let found = holds
            .iter()
            .position(|h| h.method == method && h.path == uri.path());
        found.map(|i| holds.remove(i))
    };
    if let Some(hold) = hold {
        let _ = hold.arrived.send(());
        // A dropped `Held` lets the request through.
        let _ = hold.release.await;
    }

    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = shared
        .http
        .request(method, format!("{}{path_and_query}", shared.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::builder().status(status);
            if let Some(content_type) = content_type {
                response = response.header(header::CONTENT_TYPE, content_type);
            }
            response.body(Body::from(bytes)).expect("a response")
        }
        Err(_) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .expect("a response"),
    }
}
