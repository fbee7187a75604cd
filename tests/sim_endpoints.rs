//! The simulator's endpoints, driven over HTTP with requests built here by hand from the
//! protocol page (own NLAuth and OAuth 1.0 signing code, nothing from `crate::netsuite`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use netsuite_token_rotator::sim::{
    Faults, Inspection, IntegrationState, Limits, Seed, SimHandle, Simulator, TokenStatus, demo,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// A tiny client, per the protocol page

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn nlauth(account: &str, email: &str, password: &str, role: &str, otp: Option<&str>) -> String {
    let mut header = format!(
        "NLAuth nlauth_account={}, nlauth_email={}, nlauth_signature={}, nlauth_role={}",
        enc(account),
        enc(email),
        enc(password),
        enc(role)
    );
    if let Some(otp) = otp {
        header.push_str(&format!(", nlauth_otp={otp}"));
    }
    header
}

#[derive(Clone)]
struct Creds {
    realm: String,
    consumer_key: String,
    consumer_secret: String,
    token_id: String,
    token_secret: String,
}

struct Signing {
    method: &'static str,
    timestamp: i64,
    nonce: String,
    tamper: bool,
}

impl Default for Signing {
    fn default() -> Signing {
        Signing {
            method: "HMAC-SHA256",
            timestamp: unix_now(),
            nonce: format!("{:020}", rand::random::<u64>()),
            tamper: false,
        }
    }
}

fn url(base: &str, path: &str, query: &[(&str, &str)]) -> String {
    let query: Vec<String> = query
        .iter()
        .map(|(n, v)| format!("{}={}", enc(n), enc(v)))
        .collect();
    if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{}", query.join("&"))
    }
}

/// RFC 5849 header for `GET base+path?query`.
fn oauth(base: &str, path: &str, query: &[(&str, &str)], c: &Creds, s: &Signing) -> String {
    let timestamp = s.timestamp.to_string();
    let oauth_params = [
        ("oauth_consumer_key", c.consumer_key.as_str()),
        ("oauth_token", c.token_id.as_str()),
        ("oauth_signature_method", s.method),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_nonce", s.nonce.as_str()),
        ("oauth_version", "1.0"),
    ];
    let mut pairs: Vec<(String, String)> = oauth_params
        .iter()
        .chain(query.iter())
        .map(|(n, v)| (enc(n), enc(v)))
        .collect();
    pairs.sort();
    let normalized: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let base_string = format!(
        "GET&{}&{}",
        enc(&format!("{base}{path}")),
        enc(&normalized.join("&"))
    );
    let key = format!("{}&{}", enc(&c.consumer_secret), enc(&c.token_secret));
    let mut digest = if s.method == "HMAC-SHA1" {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(base_string.as_bytes());
        mac.finalize().into_bytes().to_vec()
    } else {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(base_string.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    if s.tamper {
        digest[0] ^= 1;
    }
    let signature = base64::engine::general_purpose::STANDARD.encode(digest);
    let mut header = format!(r#"OAuth realm="{}""#, c.realm);
    for (n, v) in oauth_params {
        header.push_str(&format!(r#", {n}="{}""#, enc(v)));
    }
    header.push_str(&format!(r#", oauth_signature="{}""#, enc(&signature)));
    header
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap().to_string()
    }
    /// Asserts a 401 whose `WWW-Authenticate` names `reason`.
    fn assert_refused(&self, reason: &str) {
        assert_eq!(self.status, 401, "{reason}");
        assert_eq!(self.error_code(), "INVALID_LOGIN_ATTEMPT");
        let header = self.www_authenticate.as_deref().unwrap_or_default();
        assert!(header.starts_with("OAuth realm="), "{header}");
        assert!(
            header.ends_with(&format!(r#"error="{reason}""#)),
            "expected {reason}, got {header}"
        );
    }
}

async fn get(url: &str, authorization: Option<HeaderValue>) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    let response = request.send().await.expect("an HTTP answer");
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap().to_string())
    };
    Answer {
        status: response.status().as_u16(),
        www_authenticate: header(WWW_AUTHENTICATE),
        content_type: header(CONTENT_TYPE),
        retry_after: header(RETRY_AFTER),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// NetSuite's RESTlet-domain body for `SSS_REQUEST_LIMIT_EXCEEDED`, spaces included.
fn request_limit_body(limit: u32) -> String {
    format!(
        r#"{{"error" : {{"code" : "SSS_REQUEST_LIMIT_EXCEEDED","message" : "Request limit exceeded. Concurrency limit for this account is {limit}."}}}}"#
    )
}

fn header(value: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(value).unwrap())
}

// ---------------------------------------------------------------------------------------------
// The world the tests run in

const OTHER_ACCOUNT: &str = "7654321";
const APPROVAL_ACCOUNT: &str = "5550001_SB1";
const NO_TBA_ACCOUNT: &str = "5550002";
const TWO_FA_EMAIL: &str = "twofa@demo.example";
const TWO_FA_PASSWORD: &str = "second-factor-pw";
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const OTHER_USER_EMAIL: &str = "colleague@demo.example";
const BLOCKED_KEY: &str = "blocked-consumer-key-0000000000000000000000000000000000000000000";
const WAITING_KEY: &str = "waiting-consumer-key-0000000000000000000000000000000000000000000";
const APPROVAL_KEY: &str = "approval-consumer-key-000000000000000000000000000000000000000000";
const SECRET: &str = "some consumer secret";
const SEEDED_TOKEN_SECRET: &str = "seeded token secret";
/// Tokens the seed starts with (`seeded-blocked`, `seeded-waiting`), all active.
const SEEDED_TOKENS: usize = 2;

/// Passwords with one special character each, escaped in the header they work, raw they fail.
const SPECIAL_PASSWORDS: [&str; 7] = ["a,b", "a&b", "a=b", "a\"b", "a%b", "a b", "aüb"];

fn seed() -> Seed {
    let mut seed = Seed::demo();
    let toml = format!(
        r#"
        [[accounts]]
        id = "{OTHER_ACCOUNT}"
        company_name = "Other"
        [[accounts.roles]]
        id = 3
        name = "Other role"
        [[accounts.users]]
        entity_id = 9
        email = "{email}"
        password = "x"
        roles = [3]
        [[accounts.integrations]]
        name = "other"
        consumer_key = "other-account-consumer-key"
        consumer_secret = "{SECRET}"

        [[accounts]]
        id = "{APPROVAL_ACCOUNT}"
        company_name = "Approving"
        require_approval = true
        [[accounts.roles]]
        id = 3
        name = "R"
        [[accounts.users]]
        entity_id = 10
        email = "{email}"
        password = "x"
        roles = [3]
        [[accounts.integrations]]
        name = "new-integration"
        consumer_key = "{APPROVAL_KEY}"
        consumer_secret = "{SECRET}"
        installed = false

        [[accounts]]
        id = "{NO_TBA_ACCOUNT}"
        company_name = "No TBA"
        tba_enabled = false
        [[accounts.roles]]
        id = 3
        name = "R"
        [[accounts.users]]
        entity_id = 11
        email = "{email}"
        password = "x"
        roles = [3]
        "#,
        email = demo::EMAIL
    );
    seed.accounts
        .extend(Seed::from_toml(&toml, "test").unwrap().accounts);

    // Parts for the demo account, read without validation (they refer to its role) and merged.
    let extra: Seed = toml::from_str(&format!(
        r#"
            [[accounts]]
            id = "scratch"
            company_name = "scratch"
            [[accounts.roles]]
            id = 1002
            name = "Uses tokens only"
            permissions = ["log_in_using_access_tokens"]
            [[accounts.roles]]
            id = 1003
            name = "Web services only"
            web_services_only = true
            [[accounts.roles]]
            id = 1004
            name = "Needs 2FA"
            require_2fa = true
            [[accounts.users]]
            entity_id = 50
            email = "{TWO_FA_EMAIL}"
            password = "{TWO_FA_PASSWORD}"
            roles = [1004]
            totp_secret = "{TOTP_SECRET}"
            [[accounts.users]]
            entity_id = 43
            email = "{OTHER_USER_EMAIL}"
            password = "x"
            roles = [{role}]
            [[accounts.integrations]]
            name = "blocked"
            consumer_key = "{BLOCKED_KEY}"
            consumer_secret = "{SECRET}"
            state = "blocked"
            [[accounts.integrations]]
            name = "waiting"
            consumer_key = "{WAITING_KEY}"
            consumer_secret = "{SECRET}"
            state = "waiting_for_approval"
            [[accounts.tokens]]
            token_id = "seeded-blocked"
            token_secret = "{SEEDED_TOKEN_SECRET}"
            user = "{email}"
            role = "{role}"
            consumer_key = "{BLOCKED_KEY}"
            name = "seeded"
            [[accounts.tokens]]
            token_id = "seeded-waiting"
            token_secret = "{SEEDED_TOKEN_SECRET}"
            user = "{email}"
            role = "{role}"
            consumer_key = "{WAITING_KEY}"
            name = "seeded"
            "#,
        role = demo::ROLE_ID,
        email = demo::EMAIL,
    ))
    .unwrap();
    let scratch = extra.accounts.into_iter().next().unwrap();
    let demo_account = &mut seed.accounts[0];
    demo_account.roles.extend(scratch.roles);
    demo_account.users[0]
        .roles
        .extend(["1002".to_string(), "1003".to_string()]);
    demo_account.users.extend(scratch.users);
    demo_account.integrations.extend(scratch.integrations);
    demo_account.tokens.extend(scratch.tokens);
    for (i, password) in SPECIAL_PASSWORDS.iter().enumerate() {
        let mut user = demo_account.users[0].clone();
        user.email = format!("special{i}@demo.example");
        user.entity_id = format!("{}", 100 + i);
        user.password = (*password).into();
        demo_account.users.push(user);
    }
    seed.validate().unwrap();
    seed
}

async fn start() -> SimHandle {
    Simulator::start(seed()).await.unwrap()
}

fn demo_login(otp: Option<&str>) -> String {
    nlauth(
        demo::ACCOUNT,
        demo::EMAIL,
        demo::PASSWORD,
        demo::ROLE_ID,
        otp,
    )
}

fn issue_url(sim: &SimHandle, consumer_key: &str, name: &str) -> String {
    url(
        &sim.base_url(),
        "/rest/issuetoken",
        &[("consumerKey", consumer_key), ("name", name)],
    )
}

/// Issues a demo token and returns the credentials that sign with it.
async fn issue(sim: &SimHandle) -> Creds {
    let answer = get(
        &issue_url(sim, demo::CONSUMER_KEY, "rotation 1"),
        header(&demo_login(None)),
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    Creds {
        realm: demo::ACCOUNT.to_string(),
        consumer_key: demo::CONSUMER_KEY.to_string(),
        consumer_secret: demo::CONSUMER_SECRET.to_string(),
        token_id: body["tokenId"].as_str().unwrap().to_string(),
        token_secret: body["tokenSecret"].as_str().unwrap().to_string(),
    }
}

async fn token_info(sim: &SimHandle, creds: &Creds, signing: &Signing) -> Answer {
    let base = sim.base_url();
    get(
        &url(&base, "/rest/tokeninfo", &[]),
        header(&oauth(&base, "/rest/tokeninfo", &[], creds, signing)),
    )
    .await
}

async fn revoke_oauth(sim: &SimHandle, signer: &Creds, target: &str) -> Answer {
    let base = sim.base_url();
    let query = [
        ("consumerKey", signer.consumer_key.as_str()),
        ("token", target),
    ];
    get(
        &url(&base, "/rest/revoketoken", &query),
        header(&oauth(
            &base,
            "/rest/revoketoken",
            &query,
            signer,
            &Signing::default(),
        )),
    )
    .await
}

fn is_hex_64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------
// issuetoken

#[tokio::test]
async fn issued_token_passes_tokeninfo_and_is_listed_without_its_secret() {
    let sim = start().await;
    let creds = issue(&sim).await;
    assert!(is_hex_64(&creds.token_id) && is_hex_64(&creds.token_secret));

    let info = token_info(&sim, &creds, &Signing::default()).await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["companyName"], demo::COMPANY_NAME);
    assert_eq!(info["companyId"], demo::ACCOUNT);
    assert_eq!(info["roleName"], demo::ROLE_NAME);
    assert_eq!(info["roleId"], demo::ROLE_ID);
    assert_eq!(info["entityId"], demo::ENTITY_ID);

    let seen = sim.sim().inspect();
    let token = seen.token(&creds.token_id).unwrap();
    assert_eq!(token.name, "rotation 1");
    assert_eq!(token.status, TokenStatus::Active);
    assert_eq!(token.entity_id, demo::ENTITY_ID);
    let listing = reqwest::get(format!("{}/sim/inspect", sim.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(&creds.token_id));
    assert!(!listing.contains(&creds.token_secret));
    assert!(!listing.contains(demo::CONSUMER_SECRET));
    sim.shutdown().await;
}

#[tokio::test]
async fn special_characters_in_passwords_work_escaped_and_fail_raw() {
    let sim = start().await;
    let mut passwords = SPECIAL_PASSWORDS.to_vec();
    passwords.push(demo::PASSWORD);
    for (i, password) in passwords.iter().enumerate() {
        let email = if i < SPECIAL_PASSWORDS.len() {
            format!("special{i}@demo.example")
        } else {
            demo::EMAIL.to_string()
        };
        let escaped = nlauth(demo::ACCOUNT, &email, password, demo::ROLE_ID, None);
        let ok = get(&issue_url(&sim, demo::CONSUMER_KEY, "t"), header(&escaped)).await;
        assert_eq!(ok.status, 200, "escaped {password:?}");

        let raw = format!(
            "NLAuth nlauth_account={}, nlauth_email={}, nlauth_signature={password}, nlauth_role={}",
            demo::ACCOUNT,
            enc(&email),
            demo::ROLE_ID
        );
        let raw = HeaderValue::from_bytes(raw.as_bytes()).unwrap();
        let refused = get(&issue_url(&sim, demo::CONSUMER_KEY, "t"), Some(raw)).await;
        assert_eq!(refused.status, 401, "raw {password:?}");
        assert_eq!(refused.error_code(), "INVALID_LOGIN_ATTEMPT");
    }
    assert_eq!(
        sim.sim().inspect().active_tokens().count(),
        SEEDED_TOKENS + passwords.len()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn login_failures_are_plain_invalid_login_attempts() {
    let sim = start().await;
    let cases = [
        (
            nlauth(demo::ACCOUNT, demo::EMAIL, "wrong", demo::ROLE_ID, None),
            "nlauth_wrong_password",
        ),
        (
            nlauth(
                demo::ACCOUNT,
                "nobody@x",
                demo::PASSWORD,
                demo::ROLE_ID,
                None,
            ),
            "nlauth_unknown_user",
        ),
        (
            nlauth(demo::ACCOUNT, demo::EMAIL, demo::PASSWORD, "1002", None),
            "nlauth_permission_missing",
        ),
        (
            nlauth(demo::ACCOUNT, demo::EMAIL, demo::PASSWORD, "1003", None),
            "nlauth_web_services_only",
        ),
        (
            nlauth(demo::ACCOUNT, demo::EMAIL, demo::PASSWORD, "1004", None),
            "nlauth_role_not_held",
        ),
    ];
    for (login, reason) in &cases {
        let answer = get(&issue_url(&sim, demo::CONSUMER_KEY, "t"), header(login)).await;
        assert_eq!(answer.status, 401, "{reason}");
        assert_eq!(
            answer.json(),
            serde_json::json!({"error": {"code": "INVALID_LOGIN_ATTEMPT", "message": "Invalid login attempt."}})
        );
        assert!(answer.www_authenticate.is_none(), "{reason}");
        assert_eq!(sim.sim().inspect().refused(reason), 1, "{reason}");
    }
    // The email is matched case-insensitively.
    let upper = nlauth(
        demo::ACCOUNT,
        &demo::EMAIL.to_uppercase(),
        demo::PASSWORD,
        demo::ROLE_ID,
        None,
    );
    let answer = get(&issue_url(&sim, demo::CONSUMER_KEY, "t"), header(&upper)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        sim.sim().inspect().active_tokens().count(),
        SEEDED_TOKENS + 1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn issuetoken_checks_account_and_consumer_key() {
    let sim = start().await;
    let no_tba = nlauth(NO_TBA_ACCOUNT, demo::EMAIL, "x", "3", None);
    let answer = get(&issue_url(&sim, demo::CONSUMER_KEY, "t"), header(&no_tba)).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .www_authenticate
            .unwrap()
            .contains(r#"error="FeatureDisabled""#)
    );

    let answer = get(
        &issue_url(&sim, "unknown-key", "t"),
        header(&demo_login(None)),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .www_authenticate
            .unwrap()
            .contains(r#"error="consumer_key_unknown""#)
    );

    let answer = get(
        &issue_url(&sim, BLOCKED_KEY, "t"),
        header(&demo_login(None)),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .www_authenticate
            .unwrap()
            .contains(r#"error="consumer_key_refused""#)
    );

    let no_key = url(&sim.base_url(), "/rest/issuetoken", &[("name", "t")]);
    assert_eq!(get(&no_key, header(&demo_login(None))).await.status, 400);
    let missing = get(&issue_url(&sim, demo::CONSUMER_KEY, "t"), None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "INVALID_LOGIN_ATTEMPT");
    sim.shutdown().await;
}

fn totp_codes_around_now() -> [String; 3] {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(TOTP_SECRET).unwrap())
        .build_noncompliant();
    let now = unix_now() as u64;
    [now - 30, now, now + 30].map(|t| totp.generate(t).to_string())
}

#[tokio::test]
async fn two_factor_users_need_a_current_totp_code() {
    let sim = start().await;
    let login =
        |otp: Option<&str>| nlauth(demo::ACCOUNT, TWO_FA_EMAIL, TWO_FA_PASSWORD, "1004", otp);
    let url = issue_url(&sim, demo::CONSUMER_KEY, "t");

    let without = get(&url, header(&login(None))).await;
    assert_eq!(without.status, 401);
    assert_eq!(without.error_code(), "INVALID_LOGIN_ATTEMPT");

    let valid = totp_codes_around_now();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    let with_wrong = get(&url, header(&login(Some(&wrong)))).await;
    assert_eq!(with_wrong.status, 401);

    let current = totp_codes_around_now()[1].clone();
    let with_right = get(&url, header(&login(Some(&current)))).await;
    assert_eq!(with_right.status, 200);

    let seen = sim.sim().inspect();
    assert_eq!(seen.refused("nlauth_otp_missing"), 1);
    assert_eq!(seen.refused("nlauth_otp_invalid"), 1);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// tokeninfo and its refusals

#[tokio::test]
async fn tokeninfo_names_each_refusal_reason() {
    let sim = start().await;
    let creds = issue(&sim).await;
    let now = unix_now();
    // The skewed timestamps below are a minute outside the 300 s window, not one second: the
    // cases run one after another after `now` was read, and on a loaded machine seconds pass.

    let cases: Vec<(&str, Creds, Signing)> = vec![
        (
            "signature_invalid",
            creds.clone(),
            Signing {
                tamper: true,
                ..Signing::default()
            },
        ),
        (
            "signature_invalid",
            Creds {
                token_secret: "not the secret".into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "signature_method_rejected",
            creds.clone(),
            Signing {
                method: "HMAC-SHA1",
                ..Signing::default()
            },
        ),
        (
            "nonce_rejected",
            creds.clone(),
            Signing {
                nonce: "abc12".into(),
                ..Signing::default()
            },
        ),
        (
            "timestamp_refused",
            creds.clone(),
            Signing {
                timestamp: now + 360,
                ..Signing::default()
            },
        ),
        (
            "timestamp_refused",
            creds.clone(),
            Signing {
                timestamp: now - 360,
                ..Signing::default()
            },
        ),
        (
            "token_rejected",
            Creds {
                token_id: "f".repeat(64),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "consumer_key_unknown",
            Creds {
                consumer_key: "nobody-knows-this-key".into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "consumer_key_unknown",
            Creds {
                consumer_key: "other-account-consumer-key".into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "consumer_key_refused",
            Creds {
                consumer_key: BLOCKED_KEY.into(),
                consumer_secret: SECRET.into(),
                token_id: "seeded-blocked".into(),
                token_secret: SEEDED_TOKEN_SECRET.into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "consumer_key_refused",
            Creds {
                consumer_key: WAITING_KEY.into(),
                consumer_secret: SECRET.into(),
                token_id: "seeded-waiting".into(),
                token_secret: SEEDED_TOKEN_SECRET.into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "token_rejected",
            Creds {
                consumer_key: "other-account-consumer-key".into(),
                consumer_secret: SECRET.into(),
                realm: OTHER_ACCOUNT.into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "FeatureDisabled",
            Creds {
                realm: NO_TBA_ACCOUNT.into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
        (
            "FeatureDisabled",
            Creds {
                realm: "999999".into(),
                ..creds.clone()
            },
            Signing::default(),
        ),
    ];
    for (reason, creds, signing) in &cases {
        token_info(&sim, creds, signing)
            .await
            .assert_refused(reason);
    }

    // Nonce reuse: the first use passes, the replay is refused.
    let replayed = Signing::default();
    assert_eq!(token_info(&sim, &creds, &replayed).await.status, 200);
    token_info(&sim, &creds, &replayed)
        .await
        .assert_refused("nonce_used");

    // Inside the window and with a lowercase realm, the same token works.
    let lower = Creds {
        realm: demo::ACCOUNT.to_lowercase(),
        ..creds.clone()
    };
    let near = Signing {
        timestamp: now - 250,
        ..Signing::default()
    };
    assert_eq!(token_info(&sim, &lower, &near).await.status, 200);

    let seen = sim.sim().inspect();
    assert_eq!(seen.refused("signature_invalid"), 2);
    assert_eq!(seen.refused("timestamp_refused"), 2);
    assert_eq!(seen.refused("nonce_used"), 1);
    assert_eq!(seen.requests("tokeninfo"), cases.len() as u64 + 3);
    assert_eq!(seen.requests("issuetoken"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn tokeninfo_refuses_unsigned_and_badly_encoded_headers() {
    let sim = start().await;
    let creds = issue(&sim).await;
    let base = sim.base_url();
    let good = oauth(&base, "/rest/tokeninfo", &[], &creds, &Signing::default());
    // An unencoded signature (raw base64 with '+', '/' or '=') is not a valid header value.
    let start = good.find("oauth_signature=\"").unwrap() + "oauth_signature=\"".len();
    let encoded_signature = &good[start..good.len() - 1];
    let raw_signature = percent_encoding::percent_decode_str(encoded_signature)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let unencoded = format!("{}{}\"", &good[..start], raw_signature);
    let url = url(&base, "/rest/tokeninfo", &[]);
    if raw_signature != encoded_signature {
        get(&url, header(&unencoded))
            .await
            .assert_refused("parameter_rejected");
    }
    let nlauth_there = get(&url, header(&demo_login(None))).await;
    assert_eq!(nlauth_there.status, 401);
    assert_eq!(get(&url, None).await.status, 401);
    let no_realm = good.replacen(&format!(r#"realm="{}", "#, demo::ACCOUNT), "", 1);
    get(&url, header(&no_realm))
        .await
        .assert_refused("parameter_absent");
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// revoketoken

#[tokio::test]
async fn revoked_token_is_rejected_and_cannot_be_revoked_again() {
    let sim = start().await;
    let creds = issue(&sim).await;
    let revoked = revoke_oauth(&sim, &creds, &creds.token_id).await;
    assert_eq!(revoked.status, 200);
    revoked.json();

    token_info(&sim, &creds, &Signing::default())
        .await
        .assert_refused("token_rejected");
    revoke_oauth(&sim, &creds, &creds.token_id)
        .await
        .assert_refused("token_rejected");

    let seen = sim.sim().inspect();
    let token = seen.token(&creds.token_id).unwrap();
    assert_eq!(token.status, TokenStatus::Revoked);
    assert!(token.revoked_at.is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_revokes_only_tokens_of_its_own_user() {
    let sim = start().await;
    let first = issue(&sim).await;
    let second = issue(&sim).await;
    let colleague = sim
        .sim()
        .create_token(&netsuite_token_rotator::sim::HandMadeToken {
            account: demo::ACCOUNT.into(),
            email: OTHER_USER_EMAIL.into(),
            role: demo::ROLE_ID.into(),
            consumer_key: demo::CONSUMER_KEY.into(),
            name: "colleague".into(),
        })
        .unwrap()
        .0;

    revoke_oauth(&sim, &first, &colleague)
        .await
        .assert_refused("token_rejected");
    assert_eq!(
        revoke_oauth(&sim, &first, &second.token_id).await.status,
        200
    );

    let seen = sim.sim().inspect();
    assert_eq!(seen.token(&colleague).unwrap().status, TokenStatus::Active);
    assert_eq!(
        seen.token(&second.token_id).unwrap().status,
        TokenStatus::Revoked
    );
    assert_eq!(
        seen.token(&first.token_id).unwrap().status,
        TokenStatus::Active
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn nlauth_revoke_works_once_and_then_answers_400() {
    let sim = start().await;
    let creds = issue(&sim).await;
    let revoke_url = url(
        &sim.base_url(),
        "/rest/revoketoken",
        &[
            ("consumerKey", demo::CONSUMER_KEY),
            ("token", &creds.token_id),
        ],
    );
    assert_eq!(
        get(&revoke_url, header(&demo_login(None))).await.status,
        200
    );
    let again = get(&revoke_url, header(&demo_login(None))).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.error_code(), "INVALID_REQUEST");
    let wrong_password = nlauth(demo::ACCOUNT, demo::EMAIL, "nope", demo::ROLE_ID, None);
    assert_eq!(get(&revoke_url, header(&wrong_password)).await.status, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn integrations_that_need_approval_wait_until_approved() {
    let sim = start().await;
    let login = nlauth(APPROVAL_ACCOUNT, demo::EMAIL, "x", "3", None);
    let answer = get(&issue_url(&sim, APPROVAL_KEY, "first"), header(&login)).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    let creds = Creds {
        realm: APPROVAL_ACCOUNT.into(),
        consumer_key: APPROVAL_KEY.into(),
        consumer_secret: SECRET.into(),
        token_id: body["tokenId"].as_str().unwrap().into(),
        token_secret: body["tokenSecret"].as_str().unwrap().into(),
    };
    let seen = sim.sim().inspect();
    let integration = seen
        .integrations
        .iter()
        .find(|i| i.consumer_key == APPROVAL_KEY)
        .unwrap();
    assert_eq!(integration.state, IntegrationState::WaitingForApproval);
    token_info(&sim, &creds, &Signing::default())
        .await
        .assert_refused("consumer_key_refused");

    let approved = reqwest::Client::new()
        .post(format!(
            "{}/sim/integrations/{APPROVAL_KEY}/approve",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    assert_eq!(
        token_info(&sim, &creds, &Signing::default()).await.status,
        200
    );

    sim.sim().block(APPROVAL_KEY).unwrap();
    token_info(&sim, &creds, &Signing::default())
        .await
        .assert_refused("consumer_key_refused");
    sim.shutdown().await;
}

#[tokio::test]
async fn hand_made_tokens_from_the_control_api_work() {
    let sim = start().await;
    let made = reqwest::Client::new()
        .post(format!("{}/sim/tokens", sim.base_url()))
        .body(
            serde_json::json!({
                "account": demo::ACCOUNT, "email": demo::EMAIL, "role": demo::ROLE_ID,
                "consumer_key": demo::CONSUMER_KEY, "name": "made in the UI"
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let made: Value = serde_json::from_slice(&made.bytes().await.unwrap()).unwrap();
    let creds = Creds {
        realm: demo::ACCOUNT.into(),
        consumer_key: demo::CONSUMER_KEY.into(),
        consumer_secret: demo::CONSUMER_SECRET.into(),
        token_id: made["tokenId"].as_str().unwrap().into(),
        token_secret: made["tokenSecret"].as_str().unwrap().into(),
    };
    assert_eq!(
        token_info(&sim, &creds, &Signing::default()).await.status,
        200
    );
    let refused = reqwest::Client::new()
        .post(format!("{}/sim/tokens", sim.base_url()))
        .body(r#"{"account":"1","email":"e","role":"1","consumer_key":"k","name":"n"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// datacenterurls and routing

#[tokio::test]
async fn datacenterurls_answers_the_simulator_address_for_the_underscore_form() {
    let sim = start().await;
    let base = sim.base_url();
    let ok = get(
        &url(&base, "/rest/datacenterurls", &[("account", demo::ACCOUNT)]),
        None,
    )
    .await;
    assert_eq!(ok.status, 200);
    let body = ok.json();
    assert_eq!(body["restDomain"], base.as_str());
    assert_eq!(body["systemDomain"], base.as_str());
    assert_eq!(body["webservicesDomain"], base.as_str());
    let lower = get(
        &url(&base, "/rest/datacenterurls", &[("account", "1234567_sb1")]),
        None,
    )
    .await;
    assert_eq!(lower.status, 200);
    let hyphen = get(
        &url(&base, "/rest/datacenterurls", &[("account", "1234567-sb1")]),
        None,
    )
    .await;
    assert_eq!(hyphen.status, 400);
    assert_eq!(hyphen.error_code(), "INVALID_REQUEST");
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let sim = start().await;
    let base = sim.base_url();
    let missing = get(&format!("{base}/rest/nothing"), None).await;
    assert_eq!(missing.status, 404);
    missing.json();
    let post = reqwest::Client::new()
        .post(format!("{base}/rest/tokeninfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET");
    let seen = sim.sim().inspect();
    assert_eq!(seen.requests("not_found"), 1);
    assert_eq!(seen.requests("method_not_allowed"), 1);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Faults

async fn put_faults(sim: &SimHandle, faults: Value) -> u16 {
    reqwest::Client::new()
        .put(format!("{}/sim/faults", sim.base_url()))
        .body(faults.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn datacenter_url(sim: &SimHandle) -> String {
    url(
        &sim.base_url(),
        "/rest/datacenterurls",
        &[("account", demo::ACCOUNT)],
    )
}

#[tokio::test]
async fn reset_fault_closes_the_connection_without_an_answer() {
    let sim = start().await;
    assert_eq!(
        put_faults(&sim, serde_json::json!({"reset": 1.0, "rng_seed": 1})).await,
        200
    );
    let error = reqwest::Client::new()
        .get(datacenter_url(&sim))
        .send()
        .await
        .expect_err("no answer");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    let mut reset_seen = false;
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            reset_seen |= io.kind() == std::io::ErrorKind::ConnectionReset;
        }
        source = cause.source();
    }
    assert!(reset_seen, "expected a TCP reset, got {error:?}");
    assert_eq!(sim.sim().inspect().faults_injected("reset"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn garbage_rate_limit_and_server_error_faults_are_visible() {
    let sim = start().await;
    put_faults(&sim, serde_json::json!({"garbage": 1.0, "rng_seed": 3})).await;
    for _ in 0..6 {
        let answer = get(&datacenter_url(&sim), None).await;
        assert_eq!(answer.status, 200);
        assert!(serde_json::from_slice::<Value>(&answer.body).is_err());
    }
    // RESTlet domains answer the concurrency limit with 400, not 429.
    put_faults(&sim, serde_json::json!({"rate_limit": 1.0})).await;
    let limited = get(&datacenter_url(&sim), None).await;
    assert_eq!(limited.status, 400);
    assert_eq!(limited.content_type.as_deref(), Some("application/json"));
    assert_eq!(limited.error_code(), "SSS_REQUEST_LIMIT_EXCEEDED");
    assert!(limited.retry_after.is_none());
    put_faults(
        &sim,
        serde_json::json!({"server_error": 1.0, "rng_seed": 5}),
    )
    .await;
    for _ in 0..6 {
        let failed = get(&datacenter_url(&sim), None).await;
        assert!(failed.status == 500 || failed.status == 503);
    }
    put_faults(&sim, serde_json::json!({})).await;
    assert_eq!(get(&datacenter_url(&sim), None).await.status, 200);
    let seen = sim.sim().inspect();
    assert_eq!(seen.faults_injected("garbage"), 6);
    assert_eq!(seen.faults_injected("rate_limit"), 1);
    assert_eq!(seen.faults_injected("server_error"), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limit_faults_answer_400_on_restlets_and_429_with_retry_after_on_rest() {
    let sim = start().await;
    put_faults(&sim, serde_json::json!({"rate_limit": 1.0})).await;
    let restlet = get(&datacenter_url(&sim), None).await;
    assert_eq!(restlet.status, 400);
    assert_eq!(restlet.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        String::from_utf8(restlet.body).unwrap(),
        request_limit_body(5)
    );

    put_faults(&sim, serde_json::json!({"rate_limit_429": 1.0})).await;
    let rest = get(&datacenter_url(&sim), None).await;
    assert_eq!(rest.status, 429);
    assert_eq!(rest.content_type.as_deref(), Some("application/json"));
    assert_eq!(rest.retry_after.as_deref(), Some("1"));
    assert_eq!(String::from_utf8(rest.body).unwrap(), request_limit_body(5));

    // A concurrency limit set for the simulator is the one the fault names.
    sim.sim().set_limits(limits(2, 0)).unwrap();
    let named = get(&datacenter_url(&sim), None).await;
    assert_eq!(
        String::from_utf8(named.body).unwrap(),
        request_limit_body(2)
    );

    let seen = sim.sim().inspect();
    assert_eq!(seen.faults_injected("rate_limit"), 1);
    assert_eq!(seen.faults_injected("rate_limit_429"), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn soap_fault_and_login_page_faults_answer_200_with_the_wrong_kind_of_body() {
    let sim = start().await;
    // On issuetoken: a fault before processing, so no token is made behind the 200.
    let issue_url = issue_url(&sim, demo::CONSUMER_KEY, "behind a fault");
    let issue = || get(&issue_url, header(&demo_login(None)));
    put_faults(&sim, serde_json::json!({"soap_fault": 1.0})).await;
    let soap = issue().await;
    assert_eq!(soap.status, 200);
    assert_eq!(
        soap.content_type.as_deref(),
        Some("text/xml; charset=utf-8")
    );
    let soap = String::from_utf8(soap.body).unwrap();
    assert!(soap.starts_with("<?xml"), "{soap}");
    assert!(
        soap.contains(r#"xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/""#),
        "{soap}"
    );
    for element in ["soapenv:Envelope", "soapenv:Body", "soapenv:Fault"] {
        assert!(soap.contains(&format!("<{element}")), "{element}: {soap}");
        assert!(soap.contains(&format!("</{element}>")), "{element}: {soap}");
    }
    assert!(
        soap.contains("<faultstring>Incorrect data center requested!</faultstring>"),
        "{soap}"
    );

    put_faults(&sim, serde_json::json!({"login_page": 1.0})).await;
    let page = issue().await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    let page = String::from_utf8(page.body).unwrap();
    assert!(page.contains("<title>NetSuite Login</title>"), "{page}");
    assert!(
        page.contains(r#"<form "#)
            && page.contains(r#"method="post""#)
            && page.contains(r#"action="/app/login/secure/enterpriselogin.nl""#),
        "{page}"
    );
    assert!(page.contains(r#"type="password""#), "{page}");

    let seen = sim.sim().inspect();
    assert_eq!(seen.faults_injected("soap_fault"), 1);
    assert_eq!(seen.faults_injected("login_page"), 1);
    assert!(seen.faults_after_processing.is_empty());
    assert_eq!(seen.active_tokens().count(), SEEDED_TOKENS);
    sim.shutdown().await;
}

#[tokio::test]
async fn timeout_fault_holds_until_the_client_gives_up() {
    let sim = start().await;
    sim.sim()
        .set_faults(Faults {
            timeout: 1.0,
            timeout_hold_ms: 600_000,
            ..Faults::default()
        })
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client.get(datacenter_url(&sim)).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(sim.sim().inspect().faults_injected("timeout"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_after_processing_lose_the_answer_but_keep_the_token() {
    let sim = start().await;
    sim.sim()
        .set_faults(Faults {
            reset: 1.0,
            after_processing_rate: 1.0,
            endpoints: vec!["issuetoken".into()],
            ..Faults::default()
        })
        .unwrap();
    let lost = reqwest::Client::new()
        .get(issue_url(&sim, demo::CONSUMER_KEY, "lost answer"))
        .header(AUTHORIZATION, demo_login(None))
        .send()
        .await;
    assert!(lost.is_err());
    let seen = sim.sim().inspect();
    assert_eq!(seen.active_tokens().count(), SEEDED_TOKENS + 1);
    assert_eq!(seen.requests("issuetoken"), 1);
    assert_eq!(seen.tokens.last().unwrap().name, "lost answer");
    assert_eq!(seen.faults_after_processing.get("reset"), Some(&1));
    // The filter leaves the other endpoints alone.
    assert_eq!(get(&datacenter_url(&sim), None).await.status, 200);

    sim.sim()
        .set_faults(Faults {
            reset: 1.0,
            after_processing_rate: 0.0,
            ..Faults::default()
        })
        .unwrap();
    let refused = reqwest::Client::new()
        .get(issue_url(&sim, demo::CONSUMER_KEY, "never made"))
        .header(AUTHORIZATION, demo_login(None))
        .send()
        .await;
    assert!(refused.is_err());
    let seen = sim.sim().inspect();
    assert_eq!(seen.active_tokens().count(), SEEDED_TOKENS + 1);
    assert_eq!(seen.requests("issuetoken"), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn clock_skew_moves_the_timestamp_window() {
    let sim = start().await;
    let creds = issue(&sim).await;
    assert_eq!(
        put_faults(&sim, serde_json::json!({"clock_skew_secs": 1000})).await,
        200
    );
    token_info(&sim, &creds, &Signing::default())
        .await
        .assert_refused("timestamp_refused");
    let ahead = Signing {
        timestamp: unix_now() + 1000,
        ..Signing::default()
    };
    assert_eq!(token_info(&sim, &creds, &ahead).await.status, 200);
    let shown: Value = serde_json::from_slice(
        &reqwest::get(format!("{}/sim/faults", sim.base_url()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(shown["clock_skew_secs"], 1000);
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_fault_settings_are_refused() {
    let sim = start().await;
    assert_eq!(
        put_faults(&sim, serde_json::json!({"reset": 2.0})).await,
        400
    );
    assert_eq!(
        put_faults(&sim, serde_json::json!({"colour": 1})).await,
        400
    );
    assert_eq!(
        put_faults(&sim, serde_json::json!({"endpoints": ["/rest/nope"]})).await,
        400
    );
    assert_eq!(
        put_faults(
            &sim,
            serde_json::json!({"rate_limit_429": 0.5, "soap_fault": 0.3, "login_page": 0.3})
        )
        .await,
        400
    );
    assert_eq!(sim.sim().faults(), Faults::default());
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The concurrency limit

/// Polls the simulator's inspection until `done` holds: how a test waits for the simulator's
/// side of a request it cannot otherwise see. The bound only turns a hang into a failure.
async fn wait_until(sim: &Simulator, what: &str, done: impl Fn(&Inspection) -> bool) {
    for _ in 0..15_000 {
        if done(&sim.inspect()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the simulator never got there: {what}");
}

fn limits(concurrency_limit: u32, latency_ms: u64) -> Limits {
    Limits {
        concurrency_limit: Some(concurrency_limit),
        latency_ms,
    }
}

#[tokio::test]
async fn the_concurrency_limit_refuses_an_overlapping_request_of_the_same_account_only() {
    let sim = start().await;
    let creds = issue(&sim).await;
    sim.sim().set_limits(limits(1, 600_000)).unwrap();
    // A takes the demo account's only slot (its account read from datacenterurls' query) and
    // holds it for its ten-minute service time.
    let slow = tokio::spawn(reqwest::Client::new().get(datacenter_url(&sim)).send());
    let world = sim.sim().clone();
    let arrived = |seen: &Inspection| seen.in_flight(demo::ACCOUNT) == 1;
    wait_until(&world, "A holds the demo account's slot", arrived).await;
    assert!(!slow.is_finished());
    // The service time is read on arrival: from now on requests are served at once.
    sim.sim().set_limits(limits(1, 0)).unwrap();

    // B, for the same account by its NLAuth header, then by its OAuth realm: refused at once.
    let by_nlauth = get(
        &issue_url(&sim, demo::CONSUMER_KEY, "over the limit"),
        header(&demo_login(None)),
    )
    .await;
    let by_oauth = token_info(&sim, &creds, &Signing::default()).await;
    for refused in [by_nlauth, by_oauth] {
        assert_eq!(refused.status, 400);
        assert_eq!(refused.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            String::from_utf8(refused.body).unwrap(),
            request_limit_body(1)
        );
    }

    // Another account has slots of its own.
    let other = get(
        &url(
            &sim.base_url(),
            "/rest/datacenterurls",
            &[("account", OTHER_ACCOUNT)],
        ),
        None,
    )
    .await;
    assert_eq!(other.status, 200);

    let seen = sim.sim().inspect();
    assert_eq!(seen.refused("request_limit_exceeded"), 2);
    // Refused requests are still counted by endpoint; the first issuetoken made the token.
    assert_eq!(seen.requests("issuetoken"), 2);
    assert_eq!(seen.requests("tokeninfo"), 1);
    assert_eq!(seen.requests("datacenterurls"), 2);
    assert_eq!(seen.active_tokens().count(), SEEDED_TOKENS + 1);
    assert_eq!(seen.in_flight, [(demo::ACCOUNT.to_string(), 1)].into());
    assert!(seen.faults_injected.is_empty());

    // Shutting down drops A's connection, and its slot with it.
    sim.shutdown().await;
    assert!(slow.await.unwrap().is_err(), "A was never answered");
    wait_until(&world, "A's slot is given back", |seen| {
        seen.in_flight.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_arriving_together_take_exactly_the_limit() {
    let sim = start().await;
    sim.sim().set_limits(limits(3, 600_000)).unwrap();
    let client = reqwest::Client::new();
    let mut requests: Vec<_> = (0..10)
        .map(|_| tokio::spawn(client.get(datacenter_url(&sim)).send()))
        .collect();
    let world = sim.sim().clone();
    wait_until(&world, "all ten arrived", |seen| {
        seen.requests("datacenterurls") == 10
    })
    .await;
    let seen = sim.sim().inspect();
    assert_eq!(seen.in_flight(demo::ACCOUNT), 3);
    assert_eq!(seen.refused("request_limit_exceeded"), 7);

    // The seven refused are answered at once; the three admitted are still being served.
    for _ in 0..15_000 {
        if requests.iter().filter(|r| r.is_finished()).count() == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (answered, held): (Vec<_>, Vec<_>) = requests.drain(..).partition(|r| r.is_finished());
    assert_eq!((answered.len(), held.len()), (7, 3));
    for answer in answered {
        let answer = answer.await.unwrap().expect("an answer");
        assert_eq!(answer.status(), 400);
        let body = answer.text().await.unwrap();
        assert_eq!(body, request_limit_body(3));
    }
    sim.shutdown().await;
    for request in held {
        assert!(request.await.unwrap().is_err());
    }
    wait_until(&world, "every slot is given back", |seen| {
        seen.in_flight.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_slot_is_given_back_once_the_answer_is_produced() {
    let sim = start().await;
    sim.sim().set_limits(limits(1, 0)).unwrap();
    // One after another, each request finds the slot its predecessor gave back: answers,
    // refusals and faults alike.
    for _ in 0..3 {
        assert_eq!(get(&datacenter_url(&sim), None).await.status, 200);
    }
    let wrong_password = nlauth(demo::ACCOUNT, demo::EMAIL, "nope", demo::ROLE_ID, None);
    let refused = get(
        &issue_url(&sim, demo::CONSUMER_KEY, "t"),
        header(&wrong_password),
    )
    .await;
    assert_eq!(refused.status, 401);
    put_faults(&sim, serde_json::json!({"server_error": 1.0})).await;
    assert!(get(&datacenter_url(&sim), None).await.status >= 500);
    put_faults(&sim, serde_json::json!({"reset": 1.0})).await;
    assert!(
        reqwest::Client::new()
            .get(datacenter_url(&sim))
            .send()
            .await
            .is_err()
    );
    put_faults(&sim, serde_json::json!({})).await;
    assert_eq!(get(&datacenter_url(&sim), None).await.status, 200);

    let seen = sim.sim().inspect();
    assert_eq!(seen.refused("request_limit_exceeded"), 0);
    assert_eq!(seen.requests("datacenterurls"), 6);
    assert!(seen.in_flight.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_that_hangs_up_gives_its_slot_back() {
    use tokio::io::AsyncWriteExt as _;

    let sim = start().await;
    sim.sim().set_limits(limits(1, 600_000)).unwrap();
    let mut client = tokio::net::TcpStream::connect(sim.local_addr())
        .await
        .unwrap();
    let path = datacenter_url(&sim).replacen(&sim.base_url(), "", 1);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", sim.local_addr());
    client.write_all(request.as_bytes()).await.unwrap();
    let world = sim.sim().clone();
    wait_until(&world, "the request holds its slot", |seen| {
        seen.in_flight(demo::ACCOUNT) == 1
    })
    .await;
    drop(client);
    wait_until(&world, "the slot is given back", |seen| {
        seen.in_flight.is_empty()
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_connection_held_by_a_timeout_fault_keeps_its_slot() {
    let sim = start().await;
    sim.sim().set_limits(limits(1, 0)).unwrap();
    sim.sim()
        .set_faults(Faults {
            timeout: 1.0,
            timeout_hold_ms: 600_000,
            ..Faults::default()
        })
        .unwrap();
    let held = tokio::spawn(reqwest::Client::new().get(datacenter_url(&sim)).send());
    let world = sim.sim().clone();
    wait_until(&world, "the held request took its fault", |seen| {
        seen.faults_injected("timeout") == 1
    })
    .await;
    sim.sim().set_faults(Faults::default()).unwrap();
    // Like a slow request in NetSuite, the held one still counts against the limit.
    let refused = get(&datacenter_url(&sim), None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_code(), "SSS_REQUEST_LIMIT_EXCEEDED");
    assert_eq!(sim.sim().inspect().in_flight(demo::ACCOUNT), 1);
    sim.shutdown().await;
    assert!(held.await.unwrap().is_err());
    wait_until(&world, "the held request's slot is given back", |seen| {
        seen.in_flight.is_empty()
    })
    .await;
}

async fn put_limits(sim: &SimHandle, body: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .put(format!("{}/sim/limits", sim.base_url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (
        status,
        serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn limits_round_trip_over_http_and_bad_ones_are_refused() {
    let sim = start().await;
    let shown = || async {
        let answer = reqwest::get(format!("{}/sim/limits", sim.base_url()))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        serde_json::from_slice::<Value>(&answer.bytes().await.unwrap()).unwrap()
    };
    assert_eq!(
        shown().await,
        serde_json::json!({"concurrency_limit": null, "latency_ms": 0})
    );

    let set = serde_json::json!({"concurrency_limit": 3, "latency_ms": 25});
    let (status, body) = put_limits(&sim, &set.to_string()).await;
    assert_eq!((status, &body), (200, &set));
    assert_eq!(shown().await, set);
    assert_eq!(sim.sim().limits(), limits(3, 25));

    for bad in [
        "not json",
        r#"{"concurrency_limit": 0}"#,
        r#"{"concurrency_limit": -1}"#,
        r#"{"concurrency_limit": "3"}"#,
        r#"{"latency": 5}"#,
    ] {
        let (status, body) = put_limits(&sim, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "INVALID_REQUEST", "{bad}");
    }
    assert_eq!(shown().await, set);

    // Partial bodies take the defaults for what they leave out.
    let (status, body) = put_limits(&sim, r#"{"latency_ms": 1}"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"concurrency_limit": null, "latency_ms": 1})
    );
    let post = reqwest::Client::new()
        .post(format!("{}/sim/limits", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The failed-login record (NetSuite's Login Audit Trail)

#[tokio::test]
async fn every_401_is_recorded_as_a_failed_login_without_its_secret() {
    let sim = start().await;
    let creds = issue(&sim).await;
    assert_eq!(
        token_info(&sim, &creds, &Signing::default()).await.status,
        200
    );
    // 400s are not logins refused: a revoke without its parameters, a rate-limit fault.
    let no_params = url(&sim.base_url(), "/rest/revoketoken", &[]);
    assert_eq!(get(&no_params, header(&demo_login(None))).await.status, 400);
    put_faults(&sim, serde_json::json!({"rate_limit": 1.0})).await;
    assert_eq!(get(&datacenter_url(&sim), None).await.status, 400);
    put_faults(&sim, serde_json::json!({})).await;
    let seen = sim.sim().inspect();
    assert!(seen.failed_logins.is_empty(), "{:?}", seen.failed_logins);
    assert_eq!(seen.failed_login_count, 0);

    let wrong_password = "not-the-password";
    let login = nlauth(
        &demo::ACCOUNT.to_lowercase(),
        demo::EMAIL,
        wrong_password,
        demo::ROLE_ID,
        None,
    );
    let refused = get(&issue_url(&sim, demo::CONSUMER_KEY, "t"), header(&login)).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        revoke_oauth(&sim, &creds, &creds.token_id).await.status,
        200
    );
    token_info(&sim, &creds, &Signing::default())
        .await
        .assert_refused("token_rejected");

    let seen = sim.sim().inspect();
    assert_eq!(seen.failed_login_count, 2);
    let [nlauth_login, oauth_login] = seen.failed_logins.as_slice() else {
        panic!("two failed logins expected: {:?}", seen.failed_logins);
    };
    assert_eq!(nlauth_login.account, demo::ACCOUNT);
    assert_eq!(nlauth_login.endpoint, "issuetoken");
    assert_eq!(nlauth_login.scheme, "nlauth");
    assert_eq!(nlauth_login.email.as_deref(), Some(demo::EMAIL));
    assert_eq!(nlauth_login.token_id, None);
    assert_eq!(nlauth_login.reason, "nlauth_wrong_password");

    assert_eq!(oauth_login.account, demo::ACCOUNT);
    assert_eq!(oauth_login.endpoint, "tokeninfo");
    assert_eq!(oauth_login.scheme, "oauth");
    assert_eq!(oauth_login.email, None);
    assert_eq!(
        oauth_login.token_id.as_deref(),
        Some(creds.token_id.as_str())
    );
    assert_eq!(oauth_login.reason, "token_rejected");
    assert!(nlauth_login.at <= oauth_login.at);
    assert_eq!(seen.failed_logins_in(demo::ACCOUNT).count(), 2);
    assert_eq!(seen.failed_logins_in(OTHER_ACCOUNT).count(), 0);

    // Over HTTP too, and with nothing secret in it.
    let listing = reqwest::get(format!("{}/sim/inspect", sim.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listed["failed_login_count"], 2);
    assert_eq!(
        listed["failed_logins"][1]["token_id"],
        creds.token_id.as_str()
    );
    for secret in [
        wrong_password,
        demo::PASSWORD,
        &creds.token_secret,
        demo::CONSUMER_SECRET,
    ] {
        assert!(!listing.contains(secret), "{secret} in {listing}");
    }
    sim.shutdown().await;
}
