//! The HTTP side of the simulator: one task per TCP connection served by hyper's HTTP/1
//! connection, so that a fault can drop a connection without answering (a reset sets
//! `SO_LINGER` to zero on a duplicate of the socket before both are closed).
//!
//! Routes: `/rest/*` (the NetSuite TBA endpoints, GET only), `/services/rest/auth/oauth2/v1/*`
//! (the M2M endpoints, [`super::m2m`]) and `/sim/*` (inspection and control). A NetSuite
//! request first takes a slot of its account ([`super::Limits`]), then waits out the service
//! time, then is processed under the state's lock.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use super::Simulator;
use super::faults::{Faults, RestEndpoint};
use super::inspection::HandMadeToken;
use super::limits::{Limits, Slot};
use super::m2m::{self, AdminCertificate, M2mAnswers, M2mCall};
use super::reply::{Action, Admission, Reply};
use super::request::{Authorization, RestCall};
use super::seed::IntegrationState;
use super::wire;

/// Control bodies are small JSON objects.
const MAX_CONTROL_BODY: usize = 64 * 1024;

/// Lets a request ask its connection to end without an answer.
struct ConnectionControl {
    abort: Notify,
    reset: AtomicBool,
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    sim: Simulator,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve_connection(stream, sim.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "netsuite-sim: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn serve_connection(stream: TcpStream, sim: Simulator, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let duplicate: Option<OwnedFd> = stream.as_fd().try_clone_to_owned().ok();
    let control = Arc::new(ConnectionControl {
        abort: Notify::new(),
        reset: AtomicBool::new(false),
    });
    let service_control = control.clone();
    let service = service_fn(move |request| {
        let sim = sim.clone();
        let control = service_control.clone();
        async move { Ok::<_, Infallible>(route(&sim, &control, local, request).await) }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "netsuite-sim: connection ended with an error");
            }
        }
        _ = control.abort.notified() => {
            if control.reset.load(Ordering::SeqCst) {
                reset_on_close(duplicate);
            }
        }
        _ = shutdown.changed() => {}
    }
}

/// Sets `SO_LINGER` to zero on the socket, so that closing its last descriptor sends a reset.
fn reset_on_close(duplicate: Option<OwnedFd>) {
    let Some(fd) = duplicate else { return };
    let std_stream = std::net::TcpStream::from(fd);
    match TcpStream::from_std(std_stream) {
        Ok(stream) => {
            if let Err(error) = stream.set_zero_linger() {
                tracing::debug!(%error, "netsuite-sim: cannot set SO_LINGER for a reset fault");
            }
        }
        Err(error) => tracing::debug!(%error, "netsuite-sim: cannot reuse socket for a reset"),
    }
}

async fn route(
    sim: &Simulator,
    control: &ConnectionControl,
    local: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    tracing::debug!(method = %request.method(), path = %path, "netsuite-sim: request");
    if let Some(name) = path.strip_prefix("/rest/")
        && let Some(endpoint) = RestEndpoint::from_rest_path(name)
    {
        if request.method() != Method::GET {
            sim.lock().count_request("method_not_allowed");
            return method_not_allowed("GET");
        }
        let scheme = sim.lock().public_scheme();
        let call = rest_call(&request, endpoint, local, scheme);
        let account = call.account();
        return admit_and_process(sim, control, endpoint, account, |state| {
            state.handle_rest(&call)
        })
        .await;
    }
    if let Some(m2m_route) = m2m::route(request.method(), &path) {
        let (endpoint, client_id, certificate_id) = match m2m_route {
            m2m::Route::MethodNotAllowed(allow) => {
                sim.lock().count_request("method_not_allowed");
                return method_not_allowed(allow);
            }
            m2m::Route::Endpoint {
                endpoint,
                client_id,
                certificate_id,
            } => (endpoint, client_id, certificate_id),
        };
        let scheme = sim.lock().public_scheme();
        let call = match m2m_call(request, endpoint, client_id, certificate_id, local, scheme).await
        {
            Ok(call) => call,
            Err(response) => return response,
        };
        let account = sim.lock().m2m_account(&call);
        return admit_and_process(sim, control, endpoint, account, |state| {
            state.handle_m2m(&call)
        })
        .await;
    }
    if let Some(rest) = path.strip_prefix("/sim/") {
        sim.lock().count_request("sim");
        return control_route(sim, rest, request).await;
    }
    sim.lock().count_request("not_found");
    respond(Reply::error(404, "NOT_FOUND", "No such endpoint."))
}

/// Takes a slot of the account, waits out the service time, processes the request under the
/// lock and performs what that decided.
async fn admit_and_process(
    sim: &Simulator,
    control: &ConnectionControl,
    endpoint: RestEndpoint,
    account: Option<String>,
    process: impl FnOnce(&mut super::state::State) -> Action,
) -> Response<Body> {
    let admission = sim.lock().admit(endpoint, account.as_deref());
    // Made only now that the lock is released: dropping a slot takes the lock.
    let (latency, slot) = match admission {
        Admission::Refused(reply) => return respond(reply),
        Admission::Admitted {
            latency,
            slot_taken,
        } => (
            latency,
            account
                .filter(|_| slot_taken)
                .map(|account| Slot::taken(sim, account)),
        ),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let action = process(&mut sim.lock());
    // The slot is held until the answer is produced. A connection held by a `timeout` fault
    // keeps its slot while held, as a slow request keeps its slot in NetSuite. Whatever
    // ends a connection without an answer (a reset, the end of a hold, the client hanging
    // up, which hyper notices even mid-request, or shutdown) drops this future, and the
    // slot with it.
    let response = perform(action, control).await;
    drop(slot);
    response
}

/// Reads an M2M request (its body included) before any lock is taken.
async fn m2m_call(
    request: Request<Incoming>,
    endpoint: RestEndpoint,
    client_id: Option<String>,
    certificate_id: Option<String>,
    local: SocketAddr,
    scheme: &str,
) -> Result<M2mCall, Response<Body>> {
    let header = |name| {
        request
            .headers()
            .get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let authorization = header(hyper::header::AUTHORIZATION);
    let content_type = header(CONTENT_TYPE);
    let authority = header(HOST).unwrap_or_else(|| local.to_string());
    let query = wire::parse_query(request.uri().query());
    let account_param = wire::query_value(&query, "c").filter(|c| !c.is_empty());
    let body = axum::body::to_bytes(Body::new(request.into_body()), MAX_CONTROL_BODY)
        .await
        .map_err(|_| {
            respond(Reply::error(
                400,
                "INVALID_REQUEST",
                "Cannot read the request body (at most 64 KiB).",
            ))
        })?;
    Ok(M2mCall {
        endpoint,
        client_id,
        certificate_id,
        account_param,
        authorization,
        content_type,
        body: body.to_vec(),
        token_url: format!("{scheme}://{authority}{}", m2m::TOKEN_PATH),
    })
}

fn rest_call(
    request: &Request<Incoming>,
    endpoint: RestEndpoint,
    local: SocketAddr,
    scheme: &str,
) -> RestCall {
    let query = wire::parse_query(request.uri().query());
    // Header bytes outside visible ASCII survive as U+FFFD, which the NLAuth rules refuse.
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let authority = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| local.to_string());
    let base_uri = wire::base_uri(scheme, &authority, request.uri().path());
    let auth = Authorization::read(
        authorization.as_deref(),
        request.method().as_str(),
        &base_uri,
        &query,
    );
    RestCall {
        endpoint,
        auth,
        query,
        base_url: format!("http://{local}"),
    }
}

async fn perform(action: Action, control: &ConnectionControl) -> Response<Body> {
    match action {
        Action::Answer(reply) => respond(reply),
        Action::HoldThenClose(hold) => {
            tokio::time::sleep(hold).await;
            control.abort.notify_one();
            std::future::pending().await
        }
        Action::Reset => {
            control.reset.store(true, Ordering::SeqCst);
            control.abort.notify_one();
            std::future::pending().await
        }
    }
}

fn respond(reply: Reply) -> Response<Body> {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Some(value) = reply
        .www_authenticate
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = respond(Reply::error(
        405,
        "METHOD_NOT_ALLOWED",
        "Method not allowed.",
    ));
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn json_response(status: u16, value: &serde_json::Value) -> Response<Body> {
    respond(Reply::json(status, value))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = axum::body::to_bytes(Body::new(request.into_body()), MAX_CONTROL_BODY)
        .await
        .map_err(|_| {
            respond(Reply::error(
                400,
                "INVALID_REQUEST",
                "Cannot read the request body.",
            ))
        })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        respond(Reply::error(
            400,
            "INVALID_REQUEST",
            &format!("The body is not the expected JSON: {error}"),
        ))
    })
}

/// `/sim/*`: inspection and control.
async fn control_route(sim: &Simulator, rest: &str, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let segments: Vec<&str> = rest.split('/').collect();
    match (segments.as_slice(), &method) {
        (["inspect"], &Method::GET) => json_response(
            200,
            &serde_json::to_value(sim.inspect()).unwrap_or_default(),
        ),
        (["inspect"], _) => method_not_allowed("GET"),
        (["faults"], &Method::GET) => {
            json_response(200, &serde_json::to_value(sim.faults()).unwrap_or_default())
        }
        (["faults"], &Method::PUT) => {
            let faults: Faults = match read_json(request).await {
                Ok(faults) => faults,
                Err(response) => return response,
            };
            match sim.set_faults(faults) {
                Ok(()) => {
                    json_response(200, &serde_json::to_value(sim.faults()).unwrap_or_default())
                }
                Err(error) => respond(Reply::error(400, "INVALID_REQUEST", &error.to_string())),
            }
        }
        (["faults"], _) => method_not_allowed("GET, PUT"),
        (["limits"], &Method::GET) => {
            json_response(200, &serde_json::to_value(sim.limits()).unwrap_or_default())
        }
        (["limits"], &Method::PUT) => {
            let limits: Limits = match read_json(request).await {
                Ok(limits) => limits,
                Err(response) => return response,
            };
            match sim.set_limits(limits) {
                Ok(()) => {
                    json_response(200, &serde_json::to_value(sim.limits()).unwrap_or_default())
                }
                Err(error) => respond(Reply::error(400, "INVALID_REQUEST", &error.to_string())),
            }
        }
        (["limits"], _) => method_not_allowed("GET, PUT"),
        (["integrations", key, action @ ("approve" | "block")], &Method::POST) => {
            let consumer_key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .into_owned();
            let result = if *action == "approve" {
                sim.approve(&consumer_key)
            } else {
                sim.block(&consumer_key)
            };
            let state = if *action == "approve" {
                IntegrationState::Enabled
            } else {
                IntegrationState::Blocked
            };
            match result {
                Ok(()) => json_response(200, &json!({ "state": state })),
                Err(error) => respond(Reply::error(404, "NOT_FOUND", &error.to_string())),
            }
        }
        (["integrations", _, "approve" | "block"], _) => method_not_allowed("POST"),
        (["tokens"], &Method::POST) => {
            let hand_made: HandMadeToken = match read_json(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            match sim.create_token(&hand_made) {
                Ok((token_id, secret)) => json_response(
                    200,
                    &json!({"tokenId": token_id, "tokenSecret": secret.expose_secret()}),
                ),
                Err(error) => respond(Reply::error(400, "INVALID_REQUEST", &error.to_string())),
            }
        }
        (["tokens"], _) => method_not_allowed("POST"),
        (["m2m", "certificates"], &Method::POST) => {
            let upload: AdminCertificate = match read_json(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            match sim.upload_certificate(&upload) {
                Ok(id) => json_response(200, &json!({ "id": id })),
                Err(error) => respond(Reply::error(400, "INVALID_REQUEST", &error.to_string())),
            }
        }
        (["m2m", "certificates"], _) => method_not_allowed("POST"),
        (["m2m", "answers"], &Method::GET) => json_response(
            200,
            &serde_json::to_value(sim.m2m_answers()).unwrap_or_default(),
        ),
        (["m2m", "answers"], &Method::PUT) => {
            let answers: M2mAnswers = match read_json(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            sim.set_m2m_answers(answers);
            json_response(
                200,
                &serde_json::to_value(sim.m2m_answers()).unwrap_or_default(),
            )
        }
        (["m2m", "answers"], _) => method_not_allowed("GET, PUT"),
        _ => respond(Reply::error(404, "NOT_FOUND", "No such endpoint.")),
    }
}
