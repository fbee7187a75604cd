//! OTLP trace export: where spans go (the `[telemetry]` keys, else the `OTEL_*` variables), the
//! resource that names this process, and the exporter behind a batch processor on tokio.
//!
//! The decisions are made by [`plan`] from the config and an environment lookup, so they can be
//! tested without touching the process environment; [`tracer_provider`] only builds.

use std::collections::BTreeMap;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;

use super::config::{OtlpProtocol, TelemetryConfig};

/// `service.name` when neither the config nor `OTEL_SERVICE_NAME` sets one.
pub const DEFAULT_SERVICE_NAME: &str = "netsuite-token-rotator";

/// Looks up an environment variable (the real environment, or a table in tests).
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where and how spans are exported, and the resource they are exported with.
#[derive(Debug, PartialEq)]
pub(super) struct ExportPlan {
    /// The full URL spans are sent to (for OTLP/HTTP, ending in `/v1/traces`).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub resource: Vec<(String, String)>,
}

/// The export settings, or `None` when no collector is named (or export is switched off with
/// `OTEL_SDK_DISABLED=true` / `OTEL_TRACES_EXPORTER=none`).
///
/// Precedence: `otlp_endpoint` over `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) over
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL); `otlp_protocol` over
/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` over `OTEL_EXPORTER_OTLP_PROTOCOL`.
pub(super) fn plan(config: &TelemetryConfig, env: Env) -> Result<Option<ExportPlan>, String> {
    let set = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let no_exporter = set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if disabled || no_exporter {
        return Ok(None);
    }
    let protocol = match config.otlp_protocol {
        Some(protocol) => protocol,
        None => env_protocol(&set)?,
    };
    if protocol == OtlpProtocol::Grpc && !cfg!(feature = "otlp-grpc") {
        return Err(
            "telemetry.otlp_protocol: \"grpc\" needs a build with the `otlp-grpc` feature \
                    (cargo build --features otlp-grpc); this build exports \"http/protobuf\" only"
                .into(),
        );
    }
    let configured = config
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let (source, endpoint) = if let Some(base) = configured {
        ("telemetry.otlp_endpoint", signal_url(base, protocol))
    } else if let Some(url) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)
    } else if let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_ENDPOINT", signal_url(&base, protocol))
    } else {
        return Ok(None);
    };
    let is_http_url = ["http://", "https://"]
        .iter()
        .any(|scheme| endpoint.len() > scheme.len() && endpoint.starts_with(scheme));
    if !is_http_url {
        // The value is not quoted: an endpoint may carry credentials in its user part.
        return Err(format!(
            "{source}: expected an absolute http:// or https:// URL of an OpenTelemetry collector"
        ));
    }
    Ok(Some(ExportPlan {
        endpoint,
        protocol,
        resource: resource_attributes(config, &set)?,
    }))
}

fn env_protocol(set: &dyn Fn(&str) -> Option<String>) -> Result<OtlpProtocol, String> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        match set(name).as_deref() {
            None => continue,
            Some("http/protobuf") => return Ok(OtlpProtocol::HttpProtobuf),
            Some("grpc") => return Ok(OtlpProtocol::Grpc),
            Some(other) => {
                return Err(format!(
                    "{name}: {other:?} is not supported; expected \"http/protobuf\" or \"grpc\""
                ));
            }
        }
    }
    Ok(OtlpProtocol::HttpProtobuf)
}

/// OTLP/HTTP sends traces to `<base>/v1/traces`; gRPC uses the URL as it is.
fn signal_url(base: &str, protocol: OtlpProtocol) -> String {
    let base = base.trim_end_matches('/');
    match protocol {
        OtlpProtocol::HttpProtobuf if !base.ends_with("/v1/traces") => format!("{base}/v1/traces"),
        _ => base.to_string(),
    }
}

/// The resource: `resource_attributes`, then `service.name` (config, else default) and
/// `service.version`, then `OTEL_RESOURCE_ATTRIBUTES` key by key, then `OTEL_SERVICE_NAME`.
fn resource_attributes(
    config: &TelemetryConfig,
    set: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut attributes: BTreeMap<String, String> = config.resource_attributes.clone();
    let service_name = config
        .service_name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| attributes.get("service.name").cloned())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    attributes.insert("service.name".into(), service_name);
    attributes.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
    if let Some(raw) = set("OTEL_RESOURCE_ATTRIBUTES") {
        attributes.extend(parse_resource_attributes(&raw)?);
    }
    if let Some(name) = set("OTEL_SERVICE_NAME") {
        attributes.insert("service.name".into(), name);
    }
    Ok(attributes.into_iter().collect())
}

/// `key1=value1,key2=value2`, values percent-decoded (the W3C Baggage form the spec uses).
fn parse_resource_attributes(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(
                "OTEL_RESOURCE_ATTRIBUTES: expected key=value pairs separated by commas".into(),
            );
        };
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| {
                format!("OTEL_RESOURCE_ATTRIBUTES: the value of {key:?} is not UTF-8 once decoded")
            })?;
        pairs.push((key.trim().to_string(), value.into_owned()));
    }
    Ok(pairs)
}

/// The tracer provider: the OTLP exporter behind a batch processor running on tokio.
pub(super) fn tracer_provider(plan: &ExportPlan) -> Result<SdkTracerProvider, String> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(
            "telemetry: OTLP export runs on tokio; call telemetry::init inside the runtime".into(),
        );
    }
    let exporter = match plan.protocol {
        OtlpProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(plan.endpoint.as_str())
            .build()
            .map_err(build_failed)?,
        OtlpProtocol::Grpc => grpc_exporter(&plan.endpoint)?,
    };
    let resource = Resource::builder_empty()
        .with_attributes(
            plan.resource
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, runtime::Tokio).build())
        .with_resource(resource)
        .build())
}

fn build_failed(e: opentelemetry_otlp::ExporterBuildError) -> String {
    format!("telemetry: the OTLP exporter could not be built: {e}")
}

#[cfg(feature = "otlp-grpc")]
fn grpc_exporter(endpoint: &str) -> Result<SpanExporter, String> {
    SpanExporter::builder()
        .with_tonic()
        .with_protocol(Protocol::Grpc)
        .with_endpoint(endpoint)
        .build()
        .map_err(build_failed)
}

#[cfg(not(feature = "otlp-grpc"))]
fn grpc_exporter(_endpoint: &str) -> Result<SpanExporter, String> {
    // `plan` refuses grpc in this build; this keeps the refusal if that check ever moves.
    Err("telemetry.otlp_protocol: \"grpc\" needs a build with the `otlp-grpc` feature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let table: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| table.get(name).cloned()
    }

    fn config(endpoint: Option<&str>) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint.map(String::from),
            ..TelemetryConfig::default()
        }
    }

    fn value<'a>(plan: &'a ExportPlan, key: &str) -> Option<&'a str> {
        plan.resource
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn no_endpoint_anywhere_means_no_export() {
        assert_eq!(plan(&config(None), &env_of(&[])).unwrap(), None);
    }

    #[test]
    fn the_configured_base_url_gets_the_traces_path_once() {
        for base in [
            "http://collector:4318",
            "http://collector:4318/",
            "http://collector:4318/v1/traces",
        ] {
            let plan = plan(&config(Some(base)), &env_of(&[])).unwrap().unwrap();
            assert_eq!(plan.endpoint, "http://collector:4318/v1/traces", "{base}");
            assert_eq!(plan.protocol, OtlpProtocol::HttpProtobuf);
        }
    }

    #[test]
    fn the_config_wins_over_the_endpoint_variables() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-env:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces-env/x"),
        ]);
        let plan = plan(&config(Some("https://cfg:4318")), &env)
            .unwrap()
            .unwrap();
        assert_eq!(plan.endpoint, "https://cfg:4318/v1/traces");
    }

    #[test]
    fn the_signal_variable_is_used_as_is_and_the_base_variable_gets_the_path() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:9999/custom",
            ),
        ]);
        let planned = plan(&config(None), &env).unwrap().unwrap();
        assert_eq!(planned.endpoint, "http://traces:9999/custom");

        let env = env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318")]);
        let planned = plan(&config(None), &env).unwrap().unwrap();
        assert_eq!(planned.endpoint, "http://base:4318/v1/traces");
    }

    #[test]
    fn export_can_be_switched_off_by_the_standard_variables() {
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let planned = plan(&config(Some("http://c:4318")), &env_of(&[off])).unwrap();
            assert_eq!(planned, None, "{off:?}");
        }
    }

    #[test]
    fn an_endpoint_that_is_not_http_names_its_source_without_quoting_it() {
        let e = plan(&config(Some("collector:4318")), &env_of(&[])).unwrap_err();
        assert!(e.starts_with("telemetry.otlp_endpoint:"), "{e}");
        let env = env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://user:pw@c")]);
        let e = plan(&config(None), &env).unwrap_err();
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT:"), "{e}");
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn unsupported_protocols_are_refused_by_name() {
        let env = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        let e = plan(&config(Some("http://c:4318")), &env).unwrap_err();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && e.contains("http/json"),
            "{e}"
        );
    }

    #[cfg(not(feature = "otlp-grpc"))]
    #[test]
    fn grpc_without_the_feature_says_which_feature_is_missing() {
        let mut cfg = config(Some("http://c:4317"));
        cfg.otlp_protocol = Some(OtlpProtocol::Grpc);
        let e = plan(&cfg, &env_of(&[])).unwrap_err();
        assert!(e.contains("otlp-grpc"), "{e}");
    }

    #[cfg(feature = "otlp-grpc")]
    #[test]
    fn grpc_uses_the_endpoint_as_it_is() {
        let env = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        let planned = plan(&config(Some("http://c:4317")), &env).unwrap().unwrap();
        assert_eq!(planned.protocol, OtlpProtocol::Grpc);
        assert_eq!(planned.endpoint, "http://c:4317");
    }

    #[test]
    fn the_resource_names_the_service_and_its_version() {
        let planned = plan(&config(Some("http://c:4318")), &env_of(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(value(&planned, "service.name"), Some(DEFAULT_SERVICE_NAME));
        assert_eq!(
            value(&planned, "service.version"),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn resource_precedence_follows_the_spec() {
        let mut cfg = config(Some("http://c:4318"));
        cfg.service_name = Some("from-config".into());
        cfg.resource_attributes = BTreeMap::from([
            ("deployment.environment.name".into(), "staging".into()),
            ("team".into(), "finance".into()),
        ]);
        let planned = plan(&cfg, &env_of(&[])).unwrap().unwrap();
        assert_eq!(value(&planned, "service.name"), Some("from-config"));
        assert_eq!(value(&planned, "team"), Some("finance"));

        let env = env_of(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod%20eu, service.name=from-attributes",
        )]);
        let planned = plan(&cfg, &env).unwrap().unwrap();
        assert_eq!(
            value(&planned, "deployment.environment.name"),
            Some("prod eu")
        );
        assert_eq!(value(&planned, "service.name"), Some("from-attributes"));
        assert_eq!(value(&planned, "team"), Some("finance"));

        let env = env_of(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes"),
            ("OTEL_SERVICE_NAME", "from-service-name"),
        ]);
        let planned = plan(&cfg, &env).unwrap().unwrap();
        assert_eq!(value(&planned, "service.name"), Some("from-service-name"));
    }

    #[test]
    fn malformed_resource_attributes_are_an_error_naming_the_variable() {
        let env = env_of(&[("OTEL_RESOURCE_ATTRIBUTES", "team=finance,oops")]);
        let e = plan(&config(Some("http://c:4318")), &env).unwrap_err();
        assert!(e.starts_with("OTEL_RESOURCE_ATTRIBUTES:"), "{e}");
    }
}
