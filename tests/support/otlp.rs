//! An OTLP/HTTP trace receiver for tests: accepts `POST /v1/traces`, decodes the protobuf
//! export requests, and flattens them into spans with their resource attributes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// What the OTLP receiver got: every request body, raw and decoded.
#[derive(Default)]
pub struct Received {
    pub bodies: Vec<Vec<u8>>,
    pub requests: Vec<ExportTraceServiceRequest>,
}

/// An OTLP/HTTP trace receiver on a loopback port.
pub struct Receiver {
    pub base_url: String,
    pub received: Arc<Mutex<Received>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(accept))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { base_url, received }
    }
}

async fn accept(
    State(received): State<Arc<Mutex<Received>>>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("an OTLP protobuf body");
    let mut received = received.lock().unwrap();
    received.bodies.push(body.to_vec());
    received.requests.push(request);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    ([("content-type", "application/x-protobuf")], answer)
}

/// An exported span with its resource's attributes.
pub struct Exported {
    pub span: Span,
    pub resource: BTreeMap<String, String>,
}

impl Exported {
    pub fn attr(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
    pub fn status_code(&self) -> i32 {
        self.span.status.as_ref().map_or(0, |s| s.code)
    }
    pub fn status_message(&self) -> String {
        self.span
            .status
            .as_ref()
            .map_or(String::new(), |s| s.message.clone())
    }
}

pub fn text(value: &Option<AnyValue>) -> Option<String> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(&kv.value))
}

pub fn exported_spans(received: &Received) -> Vec<Exported> {
    let mut spans = Vec::new();
    for request in &received.requests {
        for resource_spans in &request.resource_spans {
            let resource: BTreeMap<String, String> = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .filter_map(|kv| Some((kv.key.clone(), text(&kv.value)?)))
                .collect();
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    spans.push(Exported {
                        span: span.clone(),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    spans
}
