//! Alert delivery against local receivers that answer the way the three services document:
//! a webhook endpoint (any 2xx), a Slack incoming webhook (200 `ok`), PagerDuty Events API v2
//! (202 `{"status":"success"}` at `/v2/enqueue`). Plus the classification of engine events and
//! failures, and the rule that no secret reaches a payload.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use netsuite_token_rotator::alert::{
    Alert, AlertKind, Alerter, DeliveryPolicy, alert_for_event, alert_for_failure,
};
use netsuite_token_rotator::config::AlertConfig;
use netsuite_token_rotator::netsuite::{
    Call, NetSuiteDetail, NetSuiteError, OAuthReason, TransportKind,
};
use netsuite_token_rotator::rotation::{Event, RotationError, Step};
use netsuite_token_rotator::secret::SecretRef;
use netsuite_token_rotator::store::{StoreError, StoreErrorKind};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

const WEBHOOK_SECRET: &str = "whsec-correct-horse-battery-staple";
const ROUTING_KEY: &str = "R0123456789abcdefR0123456789abcd";
const SLACK_TOKEN: &str = "XoXoSlackWebhookToken24c";
/// Looks like a NetSuite token secret: 64 hex characters.
const TOKEN_SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const FLUSH: Duration = Duration::from_secs(30);

/// One request as a receiver saw it.
#[derive(Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

#[derive(Clone)]
struct Receiver {
    seen: mpsc::UnboundedSender<Received>,
    /// Answers in order; the last one repeats.
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
    /// When set, requests are recorded and then held until this is notified.
    hold: Option<Arc<Notify>>,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Registered before the request is reported, so a release right after cannot be missed.
    let mut held = receiver.hold.as_deref().map(|h| Box::pin(h.notified()));
    if let Some(held) = held.as_mut() {
        held.as_mut().enable();
    }
    let _ = receiver.seen.send(Received {
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
    });
    if let Some(held) = held {
        held.await;
    }
    let (status, body) = {
        let mut answers = receiver.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap()
        }
    };
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

/// Starts a receiver on 127.0.0.1 answering `answers` in order (the last one repeats).
async fn start_receiver(
    answers: &[(u16, &str)],
    hold: Option<Arc<Notify>>,
) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (seen, requests) = mpsc::unbounded_channel();
    let receiver = Receiver {
        seen,
        answers: Arc::new(Mutex::new(
            answers.iter().map(|(s, b)| (*s, b.to_string())).collect(),
        )),
        hold,
    };
    let app = Router::new().fallback(receive).with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, requests)
}

const PD_OK: (u16, &str) = (
    202,
    r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
);
const SLACK_OK: (u16, &str) = (200, "ok");

fn quick() -> DeliveryPolicy {
    DeliveryPolicy {
        attempts: 5,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
    }
}

fn webhook(base: &str) -> AlertConfig {
    AlertConfig::Webhook {
        url: format!("{base}/hooks/rotator"),
        secret: Some(SecretRef::Literal(WEBHOOK_SECRET.into())),
    }
}

fn slack(base: &str) -> AlertConfig {
    AlertConfig::Slack {
        webhook_url: SecretRef::Literal(format!("{base}/services/T0/B0/{SLACK_TOKEN}").into()),
    }
}

fn pagerduty(base: &str) -> AlertConfig {
    AlertConfig::Pagerduty {
        routing_key: SecretRef::Literal(ROUTING_KEY.into()),
        events_url: Some(base.to_string()),
    }
}

fn mismatch() -> RotationError {
    RotationError::Mismatch {
        field: "roleId",
        expected: "1001".into(),
        actual: "3".into(),
    }
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn counts_of(alerter: &Alerter, channel: &str) -> (u64, u64) {
    alerter
        .counts()
        .into_iter()
        .find(|(name, _, _)| name == channel)
        .map(|(_, sent, failed)| (sent, failed))
        .unwrap_or_else(|| panic!("no channel {channel}"))
}

fn retries_of(alerter: &Alerter, channel: &str) -> u64 {
    alerter
        .retry_counts()
        .into_iter()
        .find(|(name, _)| name == channel)
        .map(|(_, n)| n)
        .unwrap()
}

#[tokio::test]
async fn webhook_payload_is_complete_and_signed_over_the_exact_body() {
    let (base, mut requests) = start_receiver(&[(204, "")], None).await;
    let alerter = Alerter::from_config_with(&[webhook(&base)], quick()).unwrap();
    let alert = alert_for_failure("erp-sync", "123456_SB1", &mismatch());
    alerter.trigger(alert.clone());
    assert!(alerter.flush(FLUSH).await);

    let request = requests.recv().await.unwrap();
    assert_eq!(request.path, "/hooks/rotator");
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(
        header(&request, "x-signature-256"),
        format!("sha256={}", hmac_hex(WEBHOOK_SECRET, &request.body))
    );
    assert_ne!(
        header(&request, "x-signature-256"),
        format!("sha256={}", hmac_hex("another secret", &request.body))
    );
    let body = request.json();
    assert_eq!(body["event"], "trigger");
    assert_eq!(body["kind"], "tokeninfo-mismatch");
    assert_eq!(body["integration"], "erp-sync");
    assert_eq!(body["account"], "123456_SB1");
    assert_eq!(body["summary"], alert.summary.as_str());
    assert_eq!(body["details"]["field"], "roleId");
    assert_eq!(body["details"]["expected"], "1001");
    assert_eq!(body["details"]["actual"], "3");
    assert_eq!(body["runbook"], "docs/runbook.md#tokeninfo-mismatch");
    assert_eq!(
        body["dedup_key"],
        "netsuite-token-rotator/erp-sync/tokeninfo-mismatch"
    );
    let sent_at = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap())
        .expect("timestamp is RFC 3339");
    let header_seconds: i64 = header(&request, "x-netsuite-rotator-timestamp")
        .parse()
        .unwrap();
    assert_eq!(sent_at.timestamp(), header_seconds);
    assert_eq!(body.as_object().unwrap().len(), 9, "{body}");

    alerter.resolve_all("erp-sync");
    assert!(alerter.flush(FLUSH).await);
    let resolve = requests.recv().await.unwrap().json();
    assert_eq!(resolve["event"], "resolve");
    assert_eq!(resolve["dedup_key"], body["dedup_key"]);
    assert_eq!(counts_of(&alerter, "webhook"), (2, 0));
    assert!(alerter.open_alerts().is_empty());
}

#[tokio::test]
async fn webhook_without_secret_sends_no_signature() {
    let (base, mut requests) = start_receiver(&[(200, "")], None).await;
    let config = AlertConfig::Webhook {
        url: format!("{base}/h"),
        secret: None,
    };
    let alerter = Alerter::from_config_with(&[config], quick()).unwrap();
    alerter.trigger(Alert::new(AlertKind::ClockSkew, "erp", "1", "clock"));
    assert!(alerter.flush(FLUSH).await);
    let request = requests.recv().await.unwrap();
    assert!(request.headers.get("x-signature-256").is_none());
    assert!(
        request
            .headers
            .get("x-netsuite-rotator-timestamp")
            .is_some()
    );
}

#[tokio::test]
async fn slack_gets_a_text_message_and_ok_is_success() {
    let (base, mut requests) = start_receiver(&[SLACK_OK], None).await;
    let alerter = Alerter::from_config_with(&[slack(&base)], quick()).unwrap();
    let event = Event::LoginRefused {
        reason: "issuetoken refused the NLAuth login (HTTP 401)".into(),
    };
    let alert = alert_for_event("erp-sync", "123456_SB1", &event).unwrap();
    alerter.trigger(alert.clone());
    assert!(alerter.flush(FLUSH).await);

    let request = requests.recv().await.unwrap();
    assert_eq!(request.path, format!("/services/T0/B0/{SLACK_TOKEN}"));
    assert_eq!(header(&request, "content-type"), "application/json");
    let body = request.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains(AlertKind::LoginRefused.title()), "{text}");
    assert!(
        text.contains("`erp-sync`") && text.contains("123456_SB1"),
        "{text}"
    );
    assert!(text.contains("lock"), "{text}");
    assert!(text.contains("docs/runbook.md#login-refused"), "{text}");
    assert_eq!(counts_of(&alerter, "slack"), (1, 0));

    alerter.resolve("erp-sync", AlertKind::LoginRefused);
    assert!(alerter.flush(FLUSH).await);
    let resolved = requests.recv().await.unwrap().json();
    assert!(
        resolved["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: Resolved"),
        "{resolved}"
    );
    assert_eq!(counts_of(&alerter, "slack"), (2, 0));
}

#[tokio::test]
async fn slack_errors_are_permanent_and_a_2xx_without_ok_is_a_failure() {
    for answer in [(404, "channel_not_found"), (200, "<html>not slack</html>")] {
        let (base, mut requests) = start_receiver(&[answer], None).await;
        let alerter = Alerter::from_config_with(&[slack(&base)], quick()).unwrap();
        alerter.trigger(Alert::new(AlertKind::RotationFailed, "erp", "1", "failed"));
        assert!(alerter.flush(FLUSH).await);
        assert!(requests.recv().await.is_some());
        assert!(requests.try_recv().is_err(), "{answer:?} was retried");
        assert_eq!(counts_of(&alerter, "slack"), (0, 1), "{answer:?}");
    }
}

#[tokio::test]
async fn pagerduty_trigger_then_resolve_share_the_dedup_key() {
    let (base, mut requests) = start_receiver(&[PD_OK], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&base)], quick())
        .unwrap()
        .with_runbook_base_url("https://git.example.invalid/rotator/");
    let orphan = Event::OrphanSuspected {
        rotation_id: Uuid::nil(),
        token_name: "erp-sync-00000000-0000-0000-0000-000000000000".into(),
        token_id: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()),
        reason: "a new token could be neither stored nor revoked".into(),
    };
    let alert = alert_for_event("erp-sync", "123456_SB1", &orphan).unwrap();
    alerter.trigger(alert.clone());
    assert!(alerter.flush(FLUSH).await);

    let request = requests.recv().await.unwrap();
    assert_eq!(request.path, "/v2/enqueue");
    assert_eq!(header(&request, "content-type"), "application/json");
    let event = request.json();
    assert_eq!(event["routing_key"], ROUTING_KEY);
    assert_eq!(event["event_action"], "trigger");
    let dedup_key = "netsuite-token-rotator/erp-sync/orphan-suspected";
    assert_eq!(event["dedup_key"], dedup_key);
    assert_eq!(event["client"], "netsuite-token-rotator");
    let payload = &event["payload"];
    assert_eq!(payload["summary"], alert.summary.as_str());
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .contains("Setup > Users/Roles > Access Tokens")
    );
    assert_eq!(payload["source"], "netsuite:123456_SB1");
    assert_eq!(payload["severity"], "warning");
    assert_eq!(payload["component"], "erp-sync");
    assert_eq!(payload["group"], "netsuite-token-rotator");
    assert_eq!(payload["class"], "orphan-suspected");
    chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).unwrap();
    let details = &payload["custom_details"];
    assert_eq!(
        details["token_name"],
        "erp-sync-00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(details["token_id"], "0123…cdef");
    assert_eq!(details["integration"], "erp-sync");
    let runbook = "https://git.example.invalid/rotator/docs/runbook.md#orphan-suspected";
    assert_eq!(details["runbook"], runbook);
    assert_eq!(event["links"][0]["href"], runbook);
    assert!(event["links"][0]["text"].as_str().is_some());

    alerter.resolve_all("erp-sync");
    assert!(alerter.flush(FLUSH).await);
    let resolve = requests.recv().await.unwrap();
    assert_eq!(resolve.path, "/v2/enqueue");
    assert_eq!(
        resolve.json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": dedup_key})
    );
    assert_eq!(counts_of(&alerter, "pagerduty"), (2, 0));
}

#[tokio::test]
async fn pagerduty_without_an_absolute_runbook_sends_no_links() {
    let (base, mut requests) = start_receiver(&[PD_OK], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&base)], quick()).unwrap();
    alerter.trigger(Alert::new(AlertKind::RevokeOverdue, "erp", "1", "overdue"));
    assert!(alerter.flush(FLUSH).await);
    let event = requests.recv().await.unwrap().json();
    assert!(event.get("links").is_none(), "{event}");
    assert_eq!(
        event["payload"]["custom_details"]["runbook"],
        "docs/runbook.md#revoke-overdue"
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered_once() {
    let (base, mut requests) = start_receiver(&[(500, ""), (503, ""), PD_OK], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&base)], quick()).unwrap();
    alerter.trigger(Alert::new(AlertKind::RotationFailed, "erp", "1", "failed"));
    assert!(alerter.flush(FLUSH).await);
    for _ in 0..3 {
        assert_eq!(
            requests.recv().await.unwrap().json()["event_action"],
            "trigger"
        );
    }
    assert!(requests.try_recv().is_err());
    assert_eq!(counts_of(&alerter, "pagerduty"), (1, 0));
    assert_eq!(retries_of(&alerter, "pagerduty"), 2);
}

#[tokio::test]
async fn a_bad_request_is_not_retried_and_attempts_are_bounded() {
    let invalid =
        r#"{"status":"invalid event","message":"Event object is invalid","errors":["x"]}"#;
    let (base, mut requests) = start_receiver(&[(400, invalid)], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&base)], quick()).unwrap();
    alerter.trigger(Alert::new(AlertKind::RotationFailed, "erp", "1", "failed"));
    assert!(alerter.flush(FLUSH).await);
    assert!(requests.recv().await.is_some());
    assert!(requests.try_recv().is_err());
    assert_eq!(counts_of(&alerter, "pagerduty"), (0, 1));

    let (base, mut requests) = start_receiver(&[(500, "")], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&base)], quick()).unwrap();
    alerter.trigger(Alert::new(AlertKind::RotationFailed, "erp", "1", "failed"));
    assert!(alerter.flush(FLUSH).await);
    let mut attempts = 0;
    while requests.try_recv().is_ok() {
        attempts += 1;
    }
    assert_eq!(attempts, quick().attempts);
    assert_eq!(counts_of(&alerter, "pagerduty"), (0, 1));
    assert_eq!(retries_of(&alerter, "pagerduty"), 4);
}

#[tokio::test]
async fn a_resolve_never_overtakes_its_trigger() {
    let (base, mut requests) = start_receiver(&[(500, ""), PD_OK], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&base)], quick()).unwrap();
    alerter.trigger(Alert::new(AlertKind::ClockSkew, "erp", "1", "skew"));
    alerter.resolve("erp", AlertKind::ClockSkew);
    assert!(alerter.flush(FLUSH).await);
    let actions: Vec<String> = std::iter::from_fn(|| requests.try_recv().ok())
        .map(|r| r.json()["event_action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);
    assert_eq!(counts_of(&alerter, "pagerduty"), (2, 0));
}

#[tokio::test]
async fn a_dead_channel_delays_neither_trigger_nor_other_channels() {
    let hold = Arc::new(Notify::new());
    let (dead, mut dead_requests) = start_receiver(&[(200, "")], Some(hold.clone())).await;
    let (live, mut live_requests) = start_receiver(&[SLACK_OK], None).await;
    let alerter = Alerter::from_config_with(&[webhook(&dead), slack(&live)], quick()).unwrap();

    alerter.trigger(Alert::new(AlertKind::RotationFailed, "erp", "1", "failed"));
    // `trigger` has returned while the webhook receiver holds its request unanswered.
    assert!(dead_requests.recv().await.is_some());
    assert!(live_requests.recv().await.is_some());
    assert_eq!(counts_of(&alerter, "webhook"), (0, 0));

    hold.notify_waiters();
    assert!(alerter.flush(FLUSH).await);
    assert_eq!(counts_of(&alerter, "webhook"), (1, 0));
    assert_eq!(counts_of(&alerter, "slack"), (1, 0));
}

#[tokio::test]
async fn a_repeat_of_an_open_alert_is_not_sent_again() {
    let (base, mut requests) = start_receiver(&[SLACK_OK], None).await;
    let alerter = Alerter::from_config_with(&[slack(&base)], quick()).unwrap();
    let alert = || Alert::new(AlertKind::RotationFailed, "erp", "1", "failed");
    alerter.trigger(alert());
    alerter.trigger(alert());
    assert!(alerter.flush(FLUSH).await);
    assert!(requests.recv().await.is_some());
    assert!(requests.try_recv().is_err());
    alerter.trigger(Alert::new(
        AlertKind::RotationFailed,
        "erp",
        "1",
        "failed differently",
    ));
    assert!(alerter.flush(FLUSH).await);
    assert!(requests.recv().await.is_some());
    assert_eq!(
        alerter.open_alerts(),
        [("erp".to_string(), AlertKind::RotationFailed)]
    );
}

#[tokio::test]
async fn resolve_all_resolves_exactly_the_open_alerts_of_that_integration() {
    let (base, mut requests) = start_receiver(&[PD_OK], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&base)], quick()).unwrap();
    alerter.trigger(Alert::new(AlertKind::RotationFailed, "erp", "1", "a"));
    alerter.trigger(Alert::new(AlertKind::RevokeOverdue, "erp", "1", "b"));
    alerter.trigger(Alert::new(AlertKind::RotationFailed, "crm", "1", "c"));
    assert!(alerter.flush(FLUSH).await);
    while requests.try_recv().is_ok() {}

    alerter.resolve_all("erp");
    alerter.resolve_all("erp");
    alerter.resolve("crm", AlertKind::ClockSkew);
    assert!(alerter.flush(FLUSH).await);
    let mut resolved: Vec<String> = std::iter::from_fn(|| requests.try_recv().ok())
        .map(|r| {
            let event = r.json();
            assert_eq!(event["event_action"], "resolve");
            event["dedup_key"].as_str().unwrap().to_string()
        })
        .collect();
    resolved.sort();
    assert_eq!(
        resolved,
        [
            "netsuite-token-rotator/erp/revoke-overdue",
            "netsuite-token-rotator/erp/rotation-failed"
        ]
    );
    assert_eq!(
        alerter.open_alerts(),
        [("crm".to_string(), AlertKind::RotationFailed)]
    );
}

/// The first success of an integration after a start resolves every kind of problem of it on
/// the channels that close by dedup key (a problem a process before a restart raised would
/// otherwise stay open); Slack, which has no keys, hears nothing; a later success resolves
/// only what this process raised.
#[tokio::test]
async fn the_first_success_after_a_start_resolves_every_kind_by_key_and_only_then() {
    let (pd, mut pd_requests) = start_receiver(&[PD_OK], None).await;
    let (sl, mut sl_requests) = start_receiver(&[SLACK_OK], None).await;
    let alerter = Alerter::from_config_with(&[pagerduty(&pd), slack(&sl)], quick()).unwrap();

    alerter.healed("erp", "1");
    assert!(alerter.flush(FLUSH).await);
    let mut resolved: Vec<String> = std::iter::from_fn(|| pd_requests.try_recv().ok())
        .map(|r| {
            let event = r.json();
            assert_eq!(event["event_action"], "resolve", "{event}");
            event["dedup_key"].as_str().unwrap().to_string()
        })
        .collect();
    resolved.sort();
    let mut every_kind: Vec<String> = AlertKind::ALL
        .iter()
        .map(|kind| format!("netsuite-token-rotator/erp/{}", kind.slug()))
        .collect();
    every_kind.sort();
    assert_eq!(resolved, every_kind);
    assert!(sl_requests.try_recv().is_err(), "Slack gets no resolve");

    // Later: only what this process raised is resolved, on every channel.
    alerter.trigger(Alert::new(AlertKind::ClockSkew, "erp", "1", "skew"));
    assert!(alerter.flush(FLUSH).await);
    while pd_requests.try_recv().is_ok() {}
    while sl_requests.try_recv().is_ok() {}
    alerter.healed("erp", "1");
    assert!(alerter.flush(FLUSH).await);
    let resolved: Vec<Value> = std::iter::from_fn(|| pd_requests.try_recv().ok())
        .map(|r| r.json())
        .collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(
        resolved[0]["dedup_key"],
        "netsuite-token-rotator/erp/clock-skew"
    );
    assert!(
        sl_requests.try_recv().is_ok(),
        "Slack hears of what it was told"
    );
}

#[tokio::test]
async fn no_secret_reaches_any_payload() {
    let (wh, mut wh_requests) = start_receiver(&[(200, "")], None).await;
    let (sl, mut sl_requests) = start_receiver(&[SLACK_OK], None).await;
    let (pd, mut pd_requests) = start_receiver(&[PD_OK], None).await;
    let alerter =
        Alerter::from_config_with(&[webhook(&wh), slack(&sl), pagerduty(&pd)], quick()).unwrap();

    // A token secret planted where an error's text would carry it.
    let planted = RotationError::NetSuite {
        step: Step::Verify,
        source: NetSuiteError::Transport {
            call: Call::TokenInfo,
            kind: TransportKind::Timeout,
            cause: format!("secret was {TOKEN_SECRET}"),
        },
    };
    alerter.trigger(alert_for_failure("erp", "123456_SB1", &planted));
    let revoke = Event::RevokeFailed {
        token_id: "feedface".repeat(8),
        reason: format!("answer held {TOKEN_SECRET}"),
        transient: false,
        not_confirmed: false,
    };
    alerter.trigger(alert_for_event("erp", "123456_SB1", &revoke).unwrap());
    alerter.resolve_all("erp");
    assert!(alerter.flush(FLUSH).await);

    let mut seen = 0;
    for (requests, channel) in [
        (&mut wh_requests, "webhook"),
        (&mut sl_requests, "slack"),
        (&mut pd_requests, "pagerduty"),
    ] {
        while let Ok(request) = requests.try_recv() {
            seen += 1;
            let mut body = request.json();
            if channel == "pagerduty" {
                assert_eq!(body["routing_key"], ROUTING_KEY);
                body.as_object_mut().unwrap().remove("routing_key");
            }
            let mut text = body.to_string();
            for (name, value) in &request.headers {
                text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("")));
            }
            for secret in [TOKEN_SECRET, WEBHOOK_SECRET, ROUTING_KEY, SLACK_TOKEN] {
                assert!(!text.contains(secret), "{channel} carried {secret}: {text}");
            }
            assert!(!text.contains(&"feedface".repeat(8)), "{channel}: {text}");
        }
    }
    assert_eq!(seen, 12, "2 triggers and 2 resolves on 3 channels");
}

#[test]
fn config_errors_name_the_field_and_never_the_value() {
    let bad_url = "not-a-url-SLACKSECRETVALUE";
    let Err(err) = Alerter::from_config(&[
        pagerduty("http://127.0.0.1:9"),
        AlertConfig::Slack {
            webhook_url: SecretRef::Literal(bad_url.into()),
        },
    ]) else {
        panic!("a bad Slack URL was accepted");
    };
    assert!(err.starts_with("alerts[1].webhook_url: "), "{err}");
    assert!(!err.contains("SLACKSECRETVALUE"), "{err}");

    let Err(err) = Alerter::from_config(&[AlertConfig::Pagerduty {
        routing_key: SecretRef::Env {
            env: "NETSUITE_ROTATOR_TEST_UNSET_ROUTING_KEY".into(),
        },
        events_url: None,
    }]) else {
        panic!("an unset routing key was accepted");
    };
    assert!(err.starts_with("alerts[0].routing_key: "), "{err}");
    assert!(
        err.contains("NETSUITE_ROTATOR_TEST_UNSET_ROUTING_KEY"),
        "{err}"
    );
}

#[test]
fn channels_of_one_kind_are_told_apart_by_index() {
    let alerter = Alerter::from_config(&[
        slack("http://127.0.0.1:9"),
        pagerduty("http://127.0.0.1:9"),
        slack("http://127.0.0.1:9"),
    ])
    .unwrap();
    let names: Vec<String> = alerter.counts().into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(names, ["slack[0]", "pagerduty", "slack[2]"]);
}

fn netsuite(source: NetSuiteError) -> RotationError {
    RotationError::NetSuite {
        step: Step::Issue,
        source,
    }
}

#[test]
fn failures_map_to_alert_kinds() {
    let oauth = |reason| NetSuiteError::OAuthRejected {
        call: Call::TokenInfo,
        status: 401,
        reason,
        detail: NetSuiteDetail::default(),
    };
    let cases = [
        (mismatch(), AlertKind::TokenInfoMismatch),
        (
            netsuite(oauth(OAuthReason::TimestampRefused)),
            AlertKind::ClockSkew,
        ),
        (
            netsuite(oauth(OAuthReason::TokenRejected)),
            AlertKind::RotationFailed,
        ),
        (
            netsuite(NetSuiteError::LoginFailed {
                call: Call::IssueToken,
                status: 401,
                detail: NetSuiteDetail::default(),
            }),
            AlertKind::LoginRefused,
        ),
        (
            netsuite(NetSuiteError::ServerError {
                call: Call::IssueToken,
                status: 503,
                detail: NetSuiteDetail::default(),
                retry_after: None,
            }),
            AlertKind::RotationFailed,
        ),
        (
            RotationError::Store {
                step: Step::Stage,
                source: StoreError::new("file /x", "stage_pending", StoreErrorKind::Denied, "no"),
            },
            AlertKind::RotationFailed,
        ),
        (RotationError::NoCurrentToken, AlertKind::RotationFailed),
    ];
    for (error, kind) in cases {
        let alert = alert_for_failure("erp", "123456_SB1", &error);
        assert_eq!(alert.kind, kind, "{error}");
        assert_eq!(alert.integration, "erp");
        assert_eq!(alert.account, "123456_SB1");
        assert_eq!(alert.runbook, kind.runbook());
        assert!(!alert.summary.contains('\n'), "{}", alert.summary);
        assert_eq!(alert.details["error"], error.to_string());
    }
    let login = alert_for_failure(
        "erp",
        "1",
        &netsuite(NetSuiteError::LoginFailed {
            call: Call::IssueToken,
            status: 401,
            detail: NetSuiteDetail::default(),
        }),
    );
    assert!(login.summary.contains("lock"), "{}", login.summary);
    let skew = alert_for_failure("erp", "1", &netsuite(oauth(OAuthReason::TimestampRefused)));
    assert!(skew.summary.contains("clock"), "{}", skew.summary);
}

#[test]
fn events_map_to_alert_kinds() {
    let orphan = |token_id: Option<&str>| Event::OrphanSuspected {
        rotation_id: Uuid::nil(),
        token_name: "erp-00000000-0000-0000-0000-000000000000".into(),
        token_id: token_id.map(str::to_string),
        reason: "issuetoken may have succeeded but its answer was lost".into(),
    };
    let named = alert_for_event("erp", "1", &orphan(None)).unwrap();
    assert_eq!(named.kind, AlertKind::OrphanSuspected);
    assert!(
        named
            .summary
            .contains("erp-00000000-0000-0000-0000-000000000000")
    );
    assert!(
        named.details["action"].contains("Setup > Users/Roles > Access Tokens"),
        "{:?}",
        named.details
    );
    assert!(!named.details.contains_key("token_id"));
    let with_id = alert_for_event("erp", "1", &orphan(Some(&"ab".repeat(32)))).unwrap();
    assert_eq!(with_id.details["token_id"], "abab…abab");
    assert!(with_id.summary.contains("abab…abab"), "{}", with_id.summary);

    let login = alert_for_event(
        "erp",
        "1",
        &Event::LoginRefused {
            reason: "refused".into(),
        },
    )
    .unwrap();
    assert_eq!(login.kind, AlertKind::LoginRefused);
    assert!(login.summary.contains("lock"));

    let revoke = |transient, not_confirmed| Event::RevokeFailed {
        token_id: "cd".repeat(32),
        reason: "revoketoken answered HTTP 400".into(),
        transient,
        not_confirmed,
    };
    let overdue = alert_for_event("erp", "1", &revoke(false, false)).unwrap();
    assert_eq!(overdue.kind, AlertKind::RevokeOverdue);
    assert_eq!(overdue.details["token_id"], "cdcd…cdcd");
    assert!(alert_for_event("erp", "1", &revoke(true, false)).is_none());
    // A 200 page instead of NetSuite's answer: retried, and someone is told at once.
    let unconfirmed = alert_for_event("erp", "1", &revoke(true, true)).unwrap();
    assert_eq!(unconfirmed.kind, AlertKind::RevokeOverdue);
    assert!(
        unconfirmed.summary.contains("not confirmed"),
        "{}",
        unconfirmed.summary
    );

    for quiet in [
        Event::TokenStaged {
            rotation_id: Uuid::nil(),
        },
        Event::RecoveryFound {
            rotation_id: Uuid::nil(),
            what: "stopped".into(),
        },
        Event::NewTokenRevoked {
            rotation_id: Uuid::nil(),
            token_id: "x".into(),
            reason: "verification failed".into(),
        },
    ] {
        assert!(alert_for_event("erp", "1", &quiet).is_none(), "{quiet:?}");
    }
}

#[test]
fn every_runbook_anchor_is_listed_in_the_alerts_doc() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.md"))
        .expect("docs/alerts.md");
    for kind in AlertKind::ALL {
        assert!(doc.contains(&kind.runbook()), "{} missing", kind.runbook());
    }
}
