//! Trace export end to end: `telemetry::init` sends the spans of real rotations (the simulator,
//! a file store, the engine) to an OTLP/HTTP receiver started by the test, and the test checks
//! the span tree, the HTTP client conventions, the error statuses, and that no secret appears
//! anywhere in what was exported.
//!
//! One test function: `init` installs the process's only subscriber, and the batch exporter
//! lives on the runtime of the test that installed it.

mod common;
#[path = "support/otlp.rs"]
mod otlp;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, demo};
use netsuite_token_rotator::config::TelemetryConfig;
use netsuite_token_rotator::secret::{ExposeSecret, SecretString};
use netsuite_token_rotator::sim::Seed;
use netsuite_token_rotator::telemetry;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use otlp::{Exported, Receiver, exported_spans};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

const NO_GRACE: Duration = Duration::ZERO;

/// The exported spans as a tree: children by parent span id.
struct Tree<'a> {
    spans: &'a [Exported],
    children: HashMap<Vec<u8>, Vec<&'a Exported>>,
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [Exported]) -> Tree<'a> {
        let mut children: HashMap<Vec<u8>, Vec<&Exported>> = HashMap::new();
        for s in spans {
            if !s.span.parent_span_id.is_empty() {
                children
                    .entry(s.span.parent_span_id.clone())
                    .or_default()
                    .push(s);
            }
        }
        for list in children.values_mut() {
            list.sort_by_key(|s| s.span.start_time_unix_nano);
        }
        Tree { spans, children }
    }

    fn roots(&self) -> Vec<&'a Exported> {
        let mut roots: Vec<&Exported> = self
            .spans
            .iter()
            .filter(|s| s.span.parent_span_id.is_empty())
            .collect();
        roots.sort_by_key(|s| s.span.start_time_unix_nano);
        roots
    }

    fn children(&self, parent: &Exported) -> Vec<&'a Exported> {
        self.children
            .get(&parent.span.span_id)
            .cloned()
            .unwrap_or_default()
    }

    fn child_names(&self, parent: &Exported) -> Vec<String> {
        self.children(parent)
            .iter()
            .map(|s| s.span.name.clone())
            .collect()
    }

    fn child(&self, parent: &Exported, name: &str) -> &'a Exported {
        let found: Vec<&Exported> = self
            .children(parent)
            .into_iter()
            .filter(|s| s.span.name == name)
            .collect();
        assert_eq!(found.len(), 1, "one {name} span under {}", parent.span.name);
        found[0]
    }
}

/// Checks the HTTP client conventions on the one `GET` span of `endpoint` under `step` and
/// returns it.
fn http_span<'a>(
    tree: &Tree<'a>,
    step: &Exported,
    endpoint: &str,
    sim: &reqwest::Url,
) -> &'a Exported {
    let gets: Vec<&Exported> = tree
        .children(step)
        .into_iter()
        .filter(|s| s.span.name == "GET" && s.attr("netsuite.call").as_deref() == Some(endpoint))
        .collect();
    assert_eq!(
        gets.len(),
        1,
        "one GET {endpoint} span under {}",
        step.span.name
    );
    let get = gets[0];
    assert_eq!(get.span.kind, SpanKind::Client as i32, "{}", step.span.name);
    assert_eq!(get.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(get.attr("server.address").as_deref(), sim.host_str());
    assert_eq!(
        get.attr("server.port"),
        sim.port_or_known_default().map(|p| p.to_string())
    );
    assert_eq!(get.attr("netsuite.call").as_deref(), Some(endpoint));
    let url_full = get.attr("url.full").expect("url.full");
    let expected_prefix = format!("{}/rest/{endpoint}", sim.as_str().trim_end_matches('/'));
    assert!(url_full.starts_with(&expected_prefix), "{url_full}");
    if let Some((_, query)) = url_full.split_once('?') {
        for pair in query.split('&') {
            let (_, value) = pair.split_once('=').expect("key=value");
            assert_eq!(value, "REDACTED", "{url_full}");
        }
    }
    assert_eq!(get.span.trace_id, step.span.trace_id);
    get
}

fn assert_ok_http(get: &Exported) {
    assert_eq!(
        get.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(get.attr("error.type"), None);
    assert_ne!(get.status_code(), StatusCode::Error as i32);
}

/// Every form a secret could take in an attribute: raw, percent-encoded two ways.
fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        netsuite_token_rotator::netsuite::percent_encode(secret).into_owned(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_export_a_span_tree_without_secrets() {
    let receiver = Receiver::start().await;
    // An M2M integration, imported before tracing starts (an import is not a rotation: its
    // spans would be roots of their own).
    let m2m = common::M2mFixture::imported().await;
    let config = TelemetryConfig {
        otlp_endpoint: Some(receiver.base_url.clone()),
        service_name: Some("rotator-under-test".into()),
        resource_attributes: BTreeMap::from([(
            "deployment.environment.name".to_string(),
            "test".to_string(),
        )]),
        ..TelemetryConfig::default()
    };
    let guard = telemetry::init(&config, "warn").expect("telemetry starts");
    assert!(guard.exporting());

    // Two good rotations; the second revokes the first token at once.
    let good = Fixture::new(NO_GRACE).await;
    let first = good.engine.rotate().await.expect("first rotation");
    let second = good.engine.rotate().await.expect("second rotation");
    let state = good.state().await;
    let mut secrets: Vec<String> = vec![
        demo::PASSWORD.into(),
        demo::CONSUMER_SECRET.into(),
        demo::CONSUMER_KEY.into(),
    ];
    secrets.push(
        state
            .current
            .as_ref()
            .unwrap()
            .as_tba()
            .unwrap()
            .token_secret
            .expose_secret()
            .into(),
    );
    let previous = state.previous.as_ref().expect("the first token, revoked");
    secrets.push(
        previous
            .token
            .as_tba()
            .unwrap()
            .token_secret
            .expose_secret()
            .into(),
    );
    let full_token_ids = [first.token_id.clone(), second.token_id.clone()];

    // A token that tokeninfo describes otherwise than expected: verify fails, it is revoked.
    let mismatch = Fixture::with(Seed::demo(), NO_GRACE, |i| {
        i.name = "it-mismatch".into();
        Arc::make_mut(&mut i.tba_mut().unwrap().expect).role_id = Some("999".into());
    })
    .await;
    let mismatch_error = mismatch.engine.rotate().await.unwrap_err();

    // A refused NLAuth login: issuetoken answers 401.
    let refused = Fixture::with(Seed::demo(), NO_GRACE, |i| {
        i.name = "it-refused".into();
        Arc::make_mut(&mut i.tba_mut().unwrap().login).password =
            SecretString::from("not the password");
    })
    .await;
    refused.engine.rotate().await.unwrap_err();

    // One M2M rotation: the certificate calls are spans like the TBA ones.
    let m2m_rotated = m2m.engine.rotate().await.expect("M2M rotation");
    let m2m_state = m2m.state().await;
    for record in [
        m2m_state.current.as_ref().unwrap(),
        &m2m_state.previous.as_ref().unwrap().token,
    ] {
        let key = record.as_m2m().unwrap().private_key.expose_secret();
        secrets.extend(
            key.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string),
        );
    }
    secrets.push(demo::M2M_CLIENT_ID.into());

    guard.shutdown().await.expect("the last spans are exported");

    let received = receiver.received.lock().unwrap();
    let spans = exported_spans(&received);
    let tree = Tree::new(&spans);
    let sim_url = |f: &Fixture| reqwest::Url::parse(&f.sim.base_url()).unwrap();

    // Resource.
    let expected_service =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "rotator-under-test".into());
    for s in &spans {
        assert_eq!(s.resource.get("service.name"), Some(&expected_service));
        assert_eq!(
            s.resource.get("service.version").map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }
    assert_eq!(
        spans[0]
            .resource
            .get("deployment.environment.name")
            .map(String::as_str),
        Some("test")
    );

    // Every span belongs to its root's trace, and every parent was exported.
    let ids: HashMap<&[u8], &Exported> = spans
        .iter()
        .map(|s| (s.span.span_id.as_slice(), s))
        .collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    for s in &spans {
        if !s.span.parent_span_id.is_empty() {
            let parent = ids
                .get(s.span.parent_span_id.as_slice())
                .unwrap_or_else(|| panic!("the parent of {} was exported", s.span.name));
            assert_eq!(parent.span.trace_id, s.span.trace_id, "{}", s.span.name);
        }
    }

    let roots = tree.roots();
    assert!(
        roots.iter().all(|r| r.span.name == "rotation"),
        "only rotations are roots"
    );
    let of = |integration: &str| -> Vec<&Exported> {
        roots
            .iter()
            .copied()
            .filter(|r| r.attr("integration").as_deref() == Some(integration))
            .collect()
    };

    // The two good rotations.
    let good_roots = of("it");
    assert_eq!(good_roots.len(), 2, "one root span per rotation");
    let good_url = sim_url(&good);
    for (n, root) in good_roots.iter().enumerate() {
        assert_eq!(
            root.attr("netsuite.account").as_deref(),
            Some(demo::ACCOUNT)
        );
        assert_eq!(root.attr("rotation.outcome").as_deref(), Some("rotated"));
        assert_ne!(root.status_code(), StatusCode::Error as i32);
        let rotation_id = root.attr("rotation.id").expect("rotation.id");
        assert_eq!(rotation_id.len(), 36, "a UUID: {rotation_id}");
        let mut expected = vec![
            "rotation.check_writable",
            "rotation.intent",
            "rotation.issue",
            "rotation.stage",
            "rotation.verify",
            "rotation.promote",
        ];
        if n == 1 {
            expected.push("rotation.revoke");
        }
        assert_eq!(tree.child_names(root), expected, "rotation {n}");

        let issue = tree.child(root, "rotation.issue");
        assert_ok_http(http_span(&tree, issue, "issuetoken", &good_url));
        let verify = tree.child(root, "rotation.verify");
        let get = http_span(&tree, verify, "tokeninfo", &good_url);
        assert_ok_http(get);
        assert!(!get.attr("url.full").unwrap().contains('?'));
        for step in ["rotation.intent", "rotation.stage", "rotation.promote"] {
            assert!(
                tree.child_names(tree.child(root, step)).is_empty(),
                "{step}"
            );
        }
    }
    let revoke = tree.child(good_roots[1], "rotation.revoke");
    let get = http_span(&tree, revoke, "revoketoken", &good_url);
    assert_ok_http(get);
    assert!(
        get.attr("url.full")
            .unwrap()
            .ends_with("/rest/revoketoken?consumerKey=REDACTED&token=REDACTED")
    );
    assert_ne!(good_roots[0].span.trace_id, good_roots[1].span.trace_id);

    // The mismatch: an ERROR root with the error as its message, the new token revoked.
    let mismatch_roots = of("it-mismatch");
    assert_eq!(mismatch_roots.len(), 1);
    let root = mismatch_roots[0];
    assert_eq!(root.attr("rotation.outcome").as_deref(), Some("failed"));
    assert_eq!(root.status_code(), StatusCode::Error as i32);
    assert_eq!(root.status_message(), mismatch_error.to_string());
    assert_eq!(
        tree.child_names(root),
        [
            "rotation.check_writable",
            "rotation.intent",
            "rotation.issue",
            "rotation.stage",
            "rotation.verify",
            "rotation.revoke_new"
        ]
    );
    let mismatch_url = sim_url(&mismatch);
    let revoke_new = tree.child(root, "rotation.revoke_new");
    assert_ok_http(http_span(&tree, revoke_new, "revoketoken", &mismatch_url));

    // The refused login: the HTTP span carries the status as error.type and is an error.
    let refused_roots = of("it-refused");
    assert_eq!(refused_roots.len(), 1);
    let root = refused_roots[0];
    assert_eq!(root.status_code(), StatusCode::Error as i32);
    assert_eq!(root.attr("rotation.outcome").as_deref(), Some("failed"));
    let issue = tree.child(root, "rotation.issue");
    let get = http_span(&tree, issue, "issuetoken", &sim_url(&refused));
    assert_eq!(
        get.attr("http.response.status_code").as_deref(),
        Some("401")
    );
    assert_eq!(get.attr("error.type").as_deref(), Some("401"));
    assert_eq!(get.status_code(), StatusCode::Error as i32);

    // The M2M rotation: the same steps; an HTTP span per call, named by the method, the
    // client id redacted from the certificate paths.
    let m2m_roots = of("demo-m2m-integration");
    assert_eq!(m2m_roots.len(), 1);
    let root = m2m_roots[0];
    assert_eq!(root.attr("rotation.outcome").as_deref(), Some("rotated"));
    assert_eq!(
        tree.child_names(root),
        [
            "rotation.check_writable",
            "rotation.intent",
            "rotation.issue",
            "rotation.stage",
            "rotation.verify",
            "rotation.promote",
            "rotation.revoke"
        ]
    );
    let calls = |step: &str| -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut stack = vec![tree.child(root, step)];
        while let Some(span) = stack.pop() {
            for child in tree.children(span) {
                if let Some(call) = child.attr("netsuite.call") {
                    assert_eq!(child.span.kind, SpanKind::Client as i32);
                    assert_ok_http(child);
                    let url = child.attr("url.full").expect("url.full");
                    assert!(!url.contains(demo::M2M_CLIENT_ID), "{url}");
                    found.push((child.span.name.clone(), call));
                } else {
                    stack.push(child);
                }
            }
        }
        found.sort_by_key(|(_, call)| call.clone());
        found
    };
    let pair = |method: &str, call: &str| (method.to_string(), call.to_string());
    assert_eq!(
        calls("rotation.issue"),
        [
            pair("POST", "certificate add"),
            pair("GET", "certificates"),
            pair("POST", "token")
        ]
    );
    assert_eq!(calls("rotation.verify"), [pair("POST", "token")]);
    assert_eq!(
        calls("rotation.revoke"),
        [pair("POST", "certificate revoke"), pair("POST", "token")]
    );
    assert!(!m2m_rotated.token_id.is_empty());

    assert_eq!(roots.len(), 5, "no other root spans");

    // No secret, in any form, anywhere in what was exported (attributes, events, names,
    // resource); and token ids only shortened.
    let mut needles: Vec<String> = secrets.iter().flat_map(|s| forms(s)).collect();
    needles.extend(full_token_ids.iter().cloned());
    needles.push("not the password".into());
    for body in &received.bodies {
        for needle in &needles {
            assert!(
                !contains(body, needle.as_bytes()),
                "an exported span carries a secret or a full token id"
            );
        }
    }
}
