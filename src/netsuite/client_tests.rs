//! HTTP behaviour of [`NetSuiteClient`] against small servers started by each test on
//! 127.0.0.1 (axum for scripted answers, raw TCP where a broken answer is the point).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::netsuite::{BodyProblem, OAuthReason};

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Recorded {
    path_and_query: String,
    authorization: Option<String>,
    user_agent: Option<String>,
}

/// Builds the answer to request number `n` (1-based); `None` never answers.
type Script = dyn Fn(usize) -> Option<Response> + Send + Sync;

struct ServerState {
    script: Box<Script>,
    log: Mutex<Vec<Recorded>>,
}

struct TestServer {
    base: String,
    state: Arc<ServerState>,
}

impl TestServer {
    async fn start(
        script: impl Fn(usize) -> Option<Response> + Send + Sync + 'static,
    ) -> TestServer {
        let state = Arc::new(ServerState {
            script: Box::new(script),
            log: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        TestServer { base, state }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.log.lock().unwrap().clone()
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            base_url: self.base.as_str().into(),
        }
    }
}

async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let recorded = record(&request);
    drop(request);
    let number = {
        let mut log = state.log.lock().unwrap();
        log.push(recorded);
        log.len()
    };
    match (state.script)(number) {
        Some(response) => response,
        None => std::future::pending().await,
    }
}

fn record(request: &Request) -> Recorded {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Recorded {
        path_and_query: request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_default(),
        authorization: header("authorization"),
        user_agent: header("user-agent"),
    }
}

fn reply(status: u16, content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

fn json(status: u16, body: &'static str) -> Response {
    reply(status, "application/json", body)
}

fn oauth_refusal(reason: &str) -> Response {
    Response::builder()
        .status(401)
        .header("content-type", "application/json")
        .header(
            "www-authenticate",
            format!("OAuth realm=\"123456_SB1\", error=\"{reason}\""),
        )
        .body(Body::from(
            r#"{"error":{"code":"INVALID_LOGIN_ATTEMPT","message":"Invalid login attempt."}}"#,
        ))
        .unwrap()
}

fn redirect_to(location: &str) -> Response {
    Response::builder()
        .status(302)
        .header("location", location)
        .body(Body::empty())
        .unwrap()
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..ClientOptions::default()
    }
}

fn client() -> NetSuiteClient {
    NetSuiteClient::new(options()).unwrap()
}

fn account() -> AccountId {
    AccountId::parse("123456_sb1").unwrap()
}

const CONSUMER_KEY: &str = "ck +1/consumer";
const TOKEN_SECRET_IN_BODY: &str = "s3cr3t-token-secret-value";

fn login(totp_secret: Option<&str>) -> NlauthLogin {
    NlauthLogin {
        email: "ops+ns@example.com".to_string(),
        password: SecretString::from("p, a&s=s\"w%rd ü"),
        role: "1001".to_string(),
        totp_secret: totp_secret.map(SecretString::from),
    }
}

fn creds() -> TbaCredentials {
    TbaCredentials {
        consumer_key: SecretString::from(CONSUMER_KEY),
        consumer_secret: SecretString::from("consumer secret"),
        token_id: "tok id/1".to_string(),
        token_secret: SecretString::from("token secret"),
    }
}

async fn issue(server: &TestServer) -> Result<IssuedToken, NetSuiteError> {
    client()
        .issue_token(
            &server.endpoint(),
            &account(),
            &login(None),
            &SecretString::from(CONSUMER_KEY),
            "rotation 1",
        )
        .await
}

/// The `oauth_*` parameters of an OAuth header, decoded.
fn oauth_params(header: &str) -> Vec<(String, String)> {
    let params = header.strip_prefix("OAuth ").expect("an OAuth header");
    params
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            let value = value.trim_matches('"');
            let decoded = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .unwrap()
                .into_owned();
            (name.to_string(), decoded)
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    &params.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn default_options_are_the_production_ones() {
    let defaults = ClientOptions::default();
    assert_eq!(defaults.timeout, Duration::from_secs(30));
    assert_eq!(defaults.connect_timeout, Duration::from_secs(10));
    assert_eq!(defaults.max_body_bytes, 1_048_576);
    assert_eq!(defaults.max_attempts, 4);
    assert_eq!(defaults.initial_backoff, Duration::from_millis(500));
    assert_eq!(defaults.max_backoff, Duration::from_secs(8));
    assert_eq!(defaults.datacenter_base, "https://rest.netsuite.com");
}

#[tokio::test]
async fn issue_token_sends_nlauth_with_otp_and_an_encoded_query() {
    let server = TestServer::start(|_| {
        Some(json(
            200,
            r#"{"tokenId":"TID1","tokenSecret":"s3cr3t-token-secret-value"}"#,
        ))
    })
    .await;
    let totp_secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let issued = client()
        .issue_token(
            &server.endpoint(),
            &account(),
            &login(Some(totp_secret)),
            &SecretString::from(CONSUMER_KEY),
            "erp sync/2024 ü",
        )
        .await
        .unwrap();
    assert_eq!(issued.token_id, "TID1");
    assert_eq!(issued.token_secret.expose_secret(), TOKEN_SECRET_IN_BODY);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.path_and_query,
        "/rest/issuetoken?consumerKey=ck%20%2B1%2Fconsumer&name=erp%20sync%2F2024%20%C3%BC"
    );
    assert_eq!(
        request.user_agent.as_deref(),
        Some(concat!(
            "netsuite-token-rotator/",
            env!("CARGO_PKG_VERSION")
        ))
    );
    let authorization = request.authorization.as_deref().unwrap();
    let (before_otp, otp) = authorization.split_once(", nlauth_otp=").unwrap();
    assert_eq!(
        before_otp,
        "NLAuth nlauth_account=123456_SB1, nlauth_email=ops%2Bns%40example.com, \
         nlauth_signature=p%2C%20a%26s%3Ds%22w%25rd%20%C3%BC, nlauth_role=1001"
    );
    // The code was computed at request time: it is one of the codes around now.
    let now = oauth1::unix_now();
    let secret = SecretString::from(totp_secret);
    let around_now: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp::totp_code(&secret, *t).unwrap())
        .collect();
    assert!(
        around_now.iter().any(|code| code == otp),
        "{otp} not in {around_now:?}"
    );
}

#[tokio::test]
async fn issue_token_without_totp_sends_no_otp() {
    let server =
        TestServer::start(|_| Some(json(200, r#"{"TokenId":"T","TokenSecret":"S"}"#))).await;
    issue(&server).await.unwrap();
    let authorization = server.requests()[0].authorization.clone().unwrap();
    assert!(!authorization.contains("nlauth_otp"), "{authorization}");
}

#[tokio::test]
async fn bad_totp_secret_fails_before_any_request() {
    let server = TestServer::start(|_| Some(json(200, "{}"))).await;
    let err = client()
        .issue_token(
            &server.endpoint(),
            &account(),
            &login(Some("not base32!")),
            &SecretString::from(CONSUMER_KEY),
            "n",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("totp_secret"), "{err}");
    assert!(!err.to_string().contains("not base32!"), "{err}");
    assert!(!err.is_transient());
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn html_answer_to_issuetoken_is_named_and_not_retried() {
    let server = TestServer::start(|_| {
        Some(reply(
            200,
            "text/html; charset=utf-8",
            "<html><body>Down for upkeep, ref 7f3a9</body></html>",
        ))
    })
    .await;
    let err = issue(&server).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("issuetoken"), "{message}");
    assert!(message.contains("HTTP 200"), "{message}");
    assert!(message.contains("text/html; charset=utf-8"), "{message}");
    assert!(
        message.contains("answered with an HTML page where JSON was expected"),
        "{message}"
    );
    assert!(!message.contains("7f3a9"), "{message}");
    assert!(err.may_have_issued());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn empty_tokeninfo_answer_is_named() {
    let server = TestServer::start(|_| Some(reply(200, "application/json", ""))).await;
    let err = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("tokeninfo response (HTTP 200, content type application/json)"),
        "{message}"
    );
    assert!(message.contains("empty body"), "{message}");
    assert!(!err.is_transient());
    assert!(!err.may_have_issued());
}

#[tokio::test]
async fn truncated_json_reports_the_position_and_never_the_secret() {
    let server = TestServer::start(|_| {
        Some(json(
            200,
            r#"{"tokenId":"TID1","tokenSecret":"s3cr3t-token-secr"#,
        ))
    })
    .await;
    let err = issue(&server).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("JSON ended early at line 1 column"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
    assert!(!format!("{err:?}").contains("s3cr3t"));
    assert!(err.may_have_issued());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn streamed_10_mb_body_is_refused_at_the_cap() {
    let server = TestServer::start(|_| {
        let chunks = futures_util::stream::iter(
            (0..160).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024]))),
        );
        Some(reply(200, "application/json", Body::from_stream(chunks)))
    })
    .await;
    let err = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::BadResponse {
                problem: BodyProblem::TooLarge { limit: 1_048_576 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("body larger than 1048576 bytes"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn announced_10_mb_body_is_refused_without_reading() {
    let server =
        TestServer::start(|_| Some(reply(200, "application/json", vec![b' '; 10 * 1024 * 1024])))
            .await;
    let client = NetSuiteClient::new(ClientOptions {
        datacenter_base: server.base.clone(),
        ..options()
    })
    .unwrap();
    let err = client.datacenter_urls(&account()).await.unwrap_err();
    assert!(
        err.to_string().contains("body larger than 1048576 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn rate_limit_then_success_is_retried_with_a_fresh_nonce() {
    let server = TestServer::start(|n| {
        Some(match n {
            1 => json(
                429,
                r#"{"error":{"code":"SSS_REQUEST_LIMIT_EXCEEDED","message":"Request limit exceeded."}}"#,
            ),
            _ => json(200, r#"{"companyId":"123456_SB1","roleId":1001}"#),
        })
    })
    .await;
    let info = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap();
    assert_eq!(info.company_id.as_deref(), Some("123456_SB1"));
    assert_eq!(info.role_id.as_deref(), Some("1001"));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let nonce = |r: &Recorded| {
        param(
            &oauth_params(r.authorization.as_deref().unwrap()),
            "oauth_nonce",
        )
        .to_string()
    };
    assert_ne!(nonce(&requests[0]), nonce(&requests[1]));
}

#[tokio::test]
async fn persistent_503_gives_up_after_max_attempts() {
    let server =
        TestServer::start(|_| Some(reply(503, "text/html", "<html>maintenance</html>"))).await;
    let err = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetSuiteError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn issuetoken_503_is_retried_because_nothing_was_issued() {
    let server =
        TestServer::start(|_| Some(reply(503, "text/html", "<html>maintenance</html>"))).await;
    let err = issue(&server).await.unwrap_err();
    assert!(!err.may_have_issued());
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn login_failure_is_made_exactly_once() {
    let server = TestServer::start(|_| {
        Some(json(
            401,
            r#"{"error":{"code":"INVALID_LOGIN_ATTEMPT","message":"Invalid login attempt."}}"#,
        ))
    })
    .await;
    let err = issue(&server).await.unwrap_err();
    assert!(err.is_login_failure());
    assert!(!err.is_transient());
    assert!(!err.may_have_issued());
    let message = err.to_string();
    assert!(message.contains("INVALID_LOGIN_ATTEMPT"), "{message}");
    assert!(message.contains("lock"), "{message}");
    assert!(!message.contains("w%rd"), "{message}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn oauth_reasons_from_www_authenticate_are_mapped() {
    for (reason, expected, requests) in [
        ("token_rejected", OAuthReason::TokenRejected, 1),
        ("consumer_key_refused", OAuthReason::ConsumerKeyRefused, 1),
        ("consumer_key_unknown", OAuthReason::ConsumerKeyUnknown, 1),
        ("timestamp_refused", OAuthReason::TimestampRefused, 1),
        ("FeatureDisabled", OAuthReason::FeatureDisabled, 1),
        ("nonce_rejected", OAuthReason::NonceRejected, 1),
        ("nonce_used", OAuthReason::NonceUsed, 4),
    ] {
        let server = TestServer::start(move |_| Some(oauth_refusal(reason))).await;
        let err = client()
            .token_info(&server.endpoint(), &account(), &creds())
            .await
            .unwrap_err();
        assert_eq!(err.oauth_reason(), Some(&expected), "{reason}");
        assert_eq!(server.requests().len(), requests, "{reason}");
    }
}

#[tokio::test]
async fn nonce_used_then_success_is_retried() {
    let server = TestServer::start(|n| {
        Some(match n {
            1 => oauth_refusal("nonce_used"),
            _ => json(200, r#"{"entityId":"42"}"#),
        })
    })
    .await;
    let info = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap();
    assert_eq!(info.entity_id.as_deref(), Some("42"));
    assert_eq!(server.requests().len(), 2);
}

/// The signature the server receives verifies over the URL it actually received, so the URL
/// signed and the URL sent agree (query encoding included).
#[tokio::test]
async fn revoke_signs_the_url_it_sends() {
    // The revoke, then the tokeninfo check that confirms the token is dead.
    let server = TestServer::start(|n| {
        Some(match n {
            1 => reply(200, "text/plain", "anything at all"),
            _ => oauth_refusal("token_rejected"),
        })
    })
    .await;
    let revoked = client()
        .revoke_token(&server.endpoint(), &account(), &creds())
        .await
        .unwrap();
    assert_eq!(revoked, Revoked::Now);

    let request = &server.requests()[0];
    assert_eq!(
        request.path_and_query,
        "/rest/revoketoken?consumerKey=ck%20%2B1%2Fconsumer&token=tok%20id%2F1"
    );
    let header = request.authorization.as_deref().unwrap();
    assert!(
        header.starts_with("OAuth realm=\"123456_SB1\", "),
        "{header}"
    );
    let params = oauth_params(header);
    assert_eq!(param(&params, "oauth_consumer_key"), CONSUMER_KEY);
    assert_eq!(param(&params, "oauth_token"), "tok id/1");
    assert_eq!(param(&params, "oauth_signature_method"), "HMAC-SHA256");
    assert_eq!(param(&params, "oauth_version"), "1.0");
    assert!(param(&params, "oauth_nonce").len() >= 20);
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let received_url = format!("{}{}", server.base, request.path_and_query);
    let base = oauth1::signature_base_string("GET", &received_url, &pairs).unwrap();
    assert!(
        base.contains("consumerKey%3Dck%2520%252B1%252Fconsumer"),
        "{base}"
    );
    assert_eq!(
        oauth1::hmac_sha256_signature(&base, "consumer secret", "token secret"),
        param(&params, "oauth_signature")
    );
}

/// A 200 maintenance page is not a revocation (found by tests/chaos.rs: the token stayed live
/// while the engine recorded it as revoked): the revoke is a transient failure, retried. And
/// nothing probes the token with tokeninfo: a call made to fail is a failed login in the
/// account's Login Audit Trail.
#[tokio::test]
async fn a_page_answering_revoketoken_is_not_a_revocation_and_nothing_probes_the_token() {
    let server = TestServer::start(|_| {
        Some(reply(
            200,
            "text/html",
            "<html>Scheduled maintenance</html>",
        ))
    })
    .await;
    let err = client()
        .revoke_token(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetSuiteError::RevokeNotConfirmed { .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(message.contains("revocation is not confirmed"), "{message}");
    assert!(message.contains("HTTP 200"), "{message}");
    assert!(message.contains("text/html"), "{message}");
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path_and_query.split('?').next().unwrap().to_string())
        .collect();
    assert_eq!(paths, ["/rest/revoketoken"; 4], "retried, never probed");
}

/// A 2xx whose body is anything NetSuite might send is a revocation, in one call.
#[tokio::test]
async fn a_plain_2xx_revokes_in_exactly_one_call() {
    for body in ["", r#"{"message":"Token revoked."}"#] {
        let server = TestServer::start(move |_| Some(json(200, body))).await;
        let client = client();
        let revoked = client
            .revoke_token(&server.endpoint(), &account(), &creds())
            .await
            .unwrap();
        assert_eq!(revoked, Revoked::Now);
        assert_eq!(server.requests().len(), 1);
        assert_eq!(
            client
                .call_counts()
                .get(Call::RevokeToken, crate::netsuite::CallResult::Ok),
            1
        );
    }
}

/// RESTlet domains answer the account's concurrency limit with 400, not 429; public clients
/// key on the code. It is retried like a 429, honouring Retry-After, even on issuetoken (where
/// a 400 never issued anything), on its own budget, and never taken for a login failure.
#[tokio::test]
async fn a_400_request_limit_is_retried_on_every_call_and_never_a_login_failure() {
    const LIMITED: &str =
        r#"{"error" : {"code" : "SSS_REQUEST_LIMIT_EXCEEDED","message" : "Concurrency limit."}}"#;
    let server = TestServer::start(|n| {
        Some(match n {
            // More than max_attempts (4) in a row: the limit has a budget of its own.
            1..=6 => json(400, LIMITED),
            _ => json(200, r#"{"tokenId":"tid","tokenSecret":"tsecret"}"#),
        })
    })
    .await;
    let client = client();
    let issued = client
        .issue_token(
            &server.endpoint(),
            &account(),
            &login(None),
            &SecretString::from(CONSUMER_KEY),
            "rotator-test",
        )
        .await
        .unwrap();
    assert_eq!(issued.token_id, "tid");
    assert_eq!(server.requests().len(), 7);
    let counts = client.call_counts();
    use crate::netsuite::CallResult;
    assert_eq!(counts.get(Call::IssueToken, CallResult::RateLimited), 6);
    assert_eq!(counts.get(Call::IssueToken, CallResult::Ok), 1);
    assert_eq!(counts.get(Call::IssueToken, CallResult::LoginFailed), 0);

    for call in [Call::IssueToken, Call::TokenInfo, Call::RevokeToken] {
        let err = crate::netsuite::error::classify_status(
            call,
            &crate::netsuite::error::FailedAnswer {
                status: reqwest::StatusCode::BAD_REQUEST,
                www_authenticate: None,
                retry_after: Some("2"),
                body: Some(LIMITED.as_bytes()),
            },
        );
        assert!(err.is_rate_limited(), "{call}: {err:?}");
        assert!(err.is_transient(), "{call}");
        assert!(!err.is_login_failure(), "{call}");
        assert_eq!(err.status(), Some(400));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert!(
            err.to_string().contains("concurrency limit"),
            "{call}: {err}"
        );
    }
}

/// The budget for the limit ends too: then the error says what happened.
#[tokio::test]
async fn a_request_limit_that_never_lifts_fails_after_its_budget() {
    let server = TestServer::start(|_| {
        Some(json(
            400,
            r#"{"error":{"code":"SSS_REQUEST_LIMIT_EXCEEDED","message":"x"}}"#,
        ))
    })
    .await;
    let client = NetSuiteClient::new(ClientOptions {
        max_rate_limited_attempts: 3,
        ..options()
    })
    .unwrap();
    let err = client
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    assert!(err.is_rate_limited(), "{err:?}");
    assert_eq!(server.requests().len(), 4);
}

/// datacenterurls answers a plain-text "Service Unavailable" when it wants `c`: asked once
/// more with `&c=<account>`, the account always in its underscore, uppercase form.
#[tokio::test]
async fn datacenterurls_asks_again_with_c_after_a_plain_text_service_unavailable() {
    let server = TestServer::start(|n| {
        Some(match n {
            1 => reply(503, "text/plain", "Service Unavailable"),
            _ => json(
                200,
                r#"{"restDomain":"https://123456-sb1.restlets.api.netsuite.com"}"#,
            ),
        })
    })
    .await;
    let client = NetSuiteClient::new(ClientOptions {
        datacenter_base: server.base.clone(),
        ..options()
    })
    .unwrap();
    let account = AccountId::parse("123456-sb1").unwrap();
    let urls = client.datacenter_urls(&account).await.unwrap();
    assert_eq!(
        urls.rest_domain,
        "https://123456-sb1.restlets.api.netsuite.com"
    );
    let queries: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        queries,
        [
            "/rest/datacenterurls?account=123456_SB1",
            "/rest/datacenterurls?account=123456_SB1&c=123456_SB1"
        ]
    );

    // Only once: a second "Service Unavailable" is the answer.
    let always = TestServer::start(|_| Some(reply(200, "text/plain", "Service Unavailable"))).await;
    let client = NetSuiteClient::new(ClientOptions {
        datacenter_base: always.base.clone(),
        ..options()
    })
    .unwrap();
    let err = client.datacenter_urls(&account).await.unwrap_err();
    assert!(err.to_string().contains("Service Unavailable"), "{err}");
    assert_eq!(always.requests().len(), 2);
}

/// Each non-JSON 200 fails the call that got it, naming call, status, content type and the
/// likely meaning.
#[tokio::test]
async fn soap_faults_and_login_pages_fail_every_call_with_their_meaning() {
    const SOAP: &str = r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Server.userException</faultcode><faultstring>Incorrect data center requested!</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
    const LOGIN: &str = r#"<!DOCTYPE html><html><head><title>NetSuite Login</title></head><body><form method="post" action="/app/login/secure/enterpriselogin.nl"><input name="email"><input type="password" name="password"></form></body></html>"#;
    for (content_type, body, meaning) in [
        ("text/xml; charset=utf-8", SOAP, "another data center"),
        ("text/html; charset=utf-8", LOGIN, "login page"),
    ] {
        let server = TestServer::start(move |_| Some(reply(200, content_type, body))).await;
        let client = client();
        let issued = client
            .issue_token(
                &server.endpoint(),
                &account(),
                &login(None),
                &SecretString::from(CONSUMER_KEY),
                "rotator-test",
            )
            .await
            .map(drop);
        let info = client
            .token_info(&server.endpoint(), &account(), &creds())
            .await
            .map(drop);
        let revoked = client
            .revoke_token(&server.endpoint(), &account(), &creds())
            .await
            .map(drop);
        for (call, result) in [
            ("issuetoken", issued),
            ("tokeninfo", info),
            ("revoketoken", revoked),
        ] {
            let message = result.unwrap_err().to_string();
            assert!(message.starts_with(call), "{message}");
            assert!(message.contains("HTTP 200"), "{message}");
            assert!(message.contains(content_type), "{message}");
            assert!(message.contains(meaning), "{message}");
        }
    }
}

#[tokio::test]
async fn revoking_a_rejected_token_is_harmless() {
    let server = TestServer::start(|_| Some(oauth_refusal("token_rejected"))).await;
    let revoked = client()
        .revoke_token(&server.endpoint(), &account(), &creds())
        .await
        .unwrap();
    assert_eq!(revoked, Revoked::AlreadyInvalid);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn revoke_refused_for_the_consumer_key_is_an_error() {
    let server = TestServer::start(|_| Some(oauth_refusal("consumer_key_refused"))).await;
    let err = client()
        .revoke_token(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    assert!(err.token_refused());
    assert!(err.to_string().contains("approve"), "{err}");
}

#[tokio::test]
async fn issuetoken_timeout_is_not_retried_and_may_have_issued() {
    let server = TestServer::start(|_| None).await;
    let client = NetSuiteClient::new(ClientOptions {
        timeout: Duration::from_millis(300),
        ..options()
    })
    .unwrap();
    let err = client
        .issue_token(
            &server.endpoint(),
            &account(),
            &login(None),
            &SecretString::from(CONSUMER_KEY),
            "n",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.may_have_issued());
    assert!(err.is_transient());
    // The client returned only after its single request timed out; a second attempt would
    // have been sent (and recorded) at least one timeout earlier.
    assert_eq!(server.requests().len(), 1);
    assert!(!err.to_string().contains("consumerKey"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_transient_and_issued_nothing() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client()
        .issue_token(
            &Endpoint {
                base_url: base.into(),
            },
            &account(),
            &login(None),
            &SecretString::from(CONSUMER_KEY),
            "n",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(!err.may_have_issued());
    let message = err.to_string();
    assert!(
        !message.contains("consumer") && !message.contains("127.0.0.1"),
        "{message}"
    );
}

/// A raw server that announces 100 bytes, sends 20 and hangs up.
#[tokio::test]
async fn body_cut_mid_answer_may_have_issued() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(0usize));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            *counter.lock().unwrap() += 1;
            let mut request = vec![0u8; 8192];
            let mut read = 0;
            while !request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                read += socket.read(&mut request[read..]).await.unwrap();
            }
            socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"tokenId\":\"T\",\"to",
                )
                .await
                .unwrap();
            drop(socket);
        }
    });
    let err = client()
        .issue_token(
            &Endpoint {
                base_url: base.into(),
            },
            &account(),
            &login(None),
            &SecretString::from(CONSUMER_KEY),
            "n",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::Transport {
                kind: TransportKind::ConnectionLost,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.may_have_issued());
    assert_eq!(*accepted.lock().unwrap(), 1);
}

#[tokio::test]
async fn redirect_to_a_foreign_host_is_refused() {
    for location in [
        "https://collector.example.org/rest/tokeninfo",
        "http://123456-sb1.restlets.api.netsuite.com/rest/tokeninfo",
        "https://netsuite.com.example.org/rest/tokeninfo",
    ] {
        let server = TestServer::start(move |_| Some(redirect_to(location))).await;
        let err = client()
            .token_info(&server.endpoint(), &account(), &creds())
            .await
            .unwrap_err();
        let host = reqwest::Url::parse(location)
            .unwrap()
            .host_str()
            .unwrap()
            .to_string();
        match &err {
            NetSuiteError::RedirectRefused { target_host, .. } => assert_eq!(target_host, &host),
            other => panic!("{location}: {other:?}"),
        }
        assert!(err.to_string().contains(&host), "{err}");
        assert!(!err.is_transient());
        assert_eq!(server.requests().len(), 1, "{location}");
    }
}

#[tokio::test]
async fn redirect_on_the_same_host_is_followed() {
    let server = TestServer::start(|n| {
        Some(match n {
            1 => redirect_to("/elsewhere/rest/tokeninfo"),
            _ => json(200, r#"{"companyName":"Acme"}"#),
        })
    })
    .await;
    let info = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap();
    assert_eq!(info.company_name.as_deref(), Some("Acme"));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path_and_query, "/elsewhere/rest/tokeninfo");
    // The hop is signed anew, for the URL it goes to.
    let header = requests[1]
        .authorization
        .as_deref()
        .expect("hop is authorised");
    let params = oauth_params(header);
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let hop_url = format!("{}{}", server.base, requests[1].path_and_query);
    let base = oauth1::signature_base_string("GET", &hop_url, &pairs).unwrap();
    assert_eq!(
        oauth1::hmac_sha256_signature(&base, "consumer secret", "token secret"),
        param(&params, "oauth_signature")
    );
}

#[tokio::test]
async fn issuetoken_redirect_keeps_the_nlauth_header() {
    let server = TestServer::start(|n| {
        Some(match n {
            1 => redirect_to("/moved/rest/issuetoken?consumerKey=x&name=y"),
            _ => json(200, r#"{"tokenId":"T","tokenSecret":"S"}"#),
        })
    })
    .await;
    issue(&server).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].authorization, requests[1].authorization);
}

/// The rotation engine runs these calls on a multi-threaded runtime.
#[test]
fn client_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let client = client();
    let endpoint = Endpoint {
        base_url: "http://127.0.0.1:9".into(),
    };
    let key = SecretString::from("k");
    let (account, login, creds) = (account(), login(None), creds());
    assert_send(client.issue_token(&endpoint, &account, &login, &key, "n"));
    assert_send(client.revoke_token(&endpoint, &account, &creds));
    assert_send(client.token_info(&endpoint, &account, &creds));
    assert_send(client.datacenter_urls(&account));
}

#[tokio::test]
async fn redirects_stop_after_three_hops() {
    let server = TestServer::start(|n| Some(redirect_to(&format!("/hop/{n}")))).await;
    let err = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetSuiteError::RedirectRefused { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn datacenter_urls_asks_without_authentication() {
    let server = TestServer::start(|_| {
        Some(json(
            200,
            r#"{"restDomain":"https://123456-sb1.restlets.api.netsuite.com","webservicesDomain":"https://123456-sb1.suitetalk.api.netsuite.com","systemDomain":"https://123456-sb1.app.netsuite.com"}"#,
        ))
    })
    .await;
    let client = NetSuiteClient::new(ClientOptions {
        datacenter_base: format!("{}/", server.base),
        ..options()
    })
    .unwrap();
    let urls = client.datacenter_urls(&account()).await.unwrap();
    assert_eq!(
        urls.rest_domain,
        "https://123456-sb1.restlets.api.netsuite.com"
    );
    assert_eq!(
        urls.system_domain.as_deref(),
        Some("https://123456-sb1.app.netsuite.com")
    );
    let request = &server.requests()[0];
    assert_eq!(
        request.path_and_query,
        "/rest/datacenterurls?account=123456_SB1"
    );
    assert_eq!(request.authorization, None);
}

#[tokio::test]
async fn forbidden_answers_carry_netsuite_code_and_are_permanent() {
    let server = TestServer::start(|_| {
        Some(json(
            403,
            r#"{"error":{"code":"INVALID_HOST","message":"Use the account-specific domain."}}"#,
        ))
    })
    .await;
    let err = client()
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("HTTP 403"), "{message}");
    assert!(
        message.contains("INVALID_HOST: Use the account-specific domain."),
        "{message}"
    );
    assert!(!err.is_transient());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn invalid_endpoint_is_reported_before_sending() {
    let err = client()
        .token_info(
            &Endpoint {
                base_url: "not a url".into(),
            },
            &account(),
            &creds(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetSuiteError::InvalidRequest { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a url"), "{err}");
}

/// Everything the client traces (spans, retries, and whatever its HTTP stack emits as tracing
/// events), captured at TRACE, holds none of the secrets or query values it handled.
///
/// `tracing` caches per-callsite interest for the whole process, so a scoped subscriber in one
/// test thread can miss spans first hit by tests running in other threads. The check therefore
/// runs alone, in a child process of this test binary.
#[test]
fn traces_carry_no_secrets_or_query_values() {
    let child = "netsuite::client::tests::trace_check_alone";
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            child,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{child} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "{child} did not run:\n{stdout}"
    );
}

#[tokio::test]
#[ignore = "run by traces_carry_no_secrets_or_query_values in a process of its own"]
async fn trace_check_alone() {
    let captured = crate::telemetry::CapturedLog::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::start(|n| {
        Some(match n {
            1 => json(
                429,
                r#"{"error":{"code":"SSS_REQUEST_LIMIT_EXCEEDED","message":"x"}}"#,
            ),
            2 => json(
                200,
                r#"{"tokenId":"TID1","tokenSecret":"s3cr3t-token-secret-value"}"#,
            ),
            3 => reply(503, "text/html", "<html>maintenance</html>"),
            4 => json(200, r#"{"roleId":"1001"}"#),
            5 => reply(200, "text/plain", ""),
            _ => oauth_refusal("token_rejected"),
        })
    })
    .await;
    let client = client();
    client
        .issue_token(
            &server.endpoint(),
            &account(),
            &login(Some("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")),
            &SecretString::from(CONSUMER_KEY),
            "rotation 1",
        )
        .await
        .unwrap();
    client
        .token_info(&server.endpoint(), &account(), &creds())
        .await
        .unwrap();
    client
        .revoke_token(&server.endpoint(), &account(), &creds())
        .await
        .unwrap();

    let logs = captured.text();
    assert!(logs.contains("retrying"), "{logs}");
    assert!(logs.contains("netsuite.call=issuetoken"), "{logs}");
    assert!(
        logs.contains("/rest/revoketoken?consumerKey=REDACTED&token=REDACTED"),
        "{logs}"
    );
    assert!(logs.contains("http.response.status_code=429"), "{logs}");
    // Query keys stay in `url.full`; every value is redacted.
    let query_values = logs.split("consumerKey=").skip(1);
    assert!(
        query_values.clone().count() > 0
            && query_values.into_iter().all(|v| v.starts_with("REDACTED")),
        "{logs}"
    );
    for forbidden in [
        "p, a&s=s",
        "p%2C%20a",
        CONSUMER_KEY,
        "ck%20%2B1",
        "consumer secret",
        "token secret",
        TOKEN_SECRET_IN_BODY,
        "GEZDGNBV",
        "nlauth_signature",
        "oauth_signature",
        "tok%20id",
        "rotation%201",
    ] {
        assert!(!logs.contains(forbidden), "{forbidden:?} in:\n{logs}");
    }
}
