//! `[telemetry]`: where log lines and traces go, as the configuration gives it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// `[telemetry]`: log lines and OpenTelemetry trace export.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `json` or `text`; `text` when absent.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Where traces go: the collector's base URL (`/v1/traces` is appended for OTLP/HTTP).
    /// No export when absent, unless `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` is set.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` or `grpc` (needs the `otlp-grpc` build feature). When absent,
    /// `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` decides, else `http/protobuf`.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// The resource's `service.name`; `netsuite-token-rotator` when absent.
    /// `OTEL_SERVICE_NAME` wins over it.
    pub service_name: Option<String>,
    /// Extra resource attributes, e.g. `{ "deployment.environment.name" = "prod" }`.
    /// `OTEL_RESOURCE_ATTRIBUTES` wins over them key by key.
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
}

/// The OTLP transport for traces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "grpc")]
    Grpc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
