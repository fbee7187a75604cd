//! The simulator's OAuth 2.0 client-credentials (M2M) endpoints over real HTTP, with keys and
//! self-signed certificates made by rcgen and assertions signed by jsonwebtoken, following
//! `shared/netsuite-oauth2-m2m.md` (nothing from the rotator's own client code).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike as _, Months, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use netsuite_token_rotator::sim::{
    AddAnswer, AdminCertificate, Faults, M2mAnswers, Seed, SeedM2mClient, SimHandle, Simulator,
    demo, m2m_reason,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

const TOKEN_PATH: &str = "/services/rest/auth/oauth2/v1/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const OTHER_CLIENT_ID: &str = "another-m2m-client";

// ---------------------------------------------------------------------------------------------
// Keys, certificates, assertions

struct Key {
    certificate: String,
    encoding: EncodingKey,
    alg: Algorithm,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A self-signed certificate valid from today's midnight (UTC) for `days`.
fn certificate_for(key: &rcgen::KeyPair, days: u64) -> String {
    let now = Utc::now();
    let midnight = rcgen::date_time_ymd(now.year(), now.month() as u8, now.day() as u8);
    let mut params = rcgen::CertificateParams::new(vec!["m2m.example".into()]).unwrap();
    params.not_before = midnight;
    params.not_after = midnight + std::time::Duration::from_secs(days * 86_400);
    params.self_signed(key).unwrap().pem()
}

fn ec_key(alg: &'static rcgen::SignatureAlgorithm, jwt_alg: Algorithm, days: u64) -> Key {
    let pair = rcgen::KeyPair::generate_for(alg).unwrap();
    Key {
        certificate: certificate_for(&pair, days),
        encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        alg: jwt_alg,
    }
}

fn p256(days: u64) -> Key {
    ec_key(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256, days)
}

fn rsa(size: rcgen::RsaKeySize) -> Key {
    let pair = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).unwrap();
    Key {
        certificate: certificate_for(&pair, 365),
        encoding: EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap(),
        alg: Algorithm::PS256,
    }
}

struct Claims {
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    scope: Value,
}

impl Claims {
    fn valid(sim: &SimHandle) -> Claims {
        let now = unix_now();
        Claims {
            iss: demo::M2M_CLIENT_ID.to_string(),
            aud: token_url(sim),
            iat: now,
            exp: now + 300,
            scope: json!(["rest_webservices", "restlets"]),
        }
    }
}

fn assertion(key: &Key, kid: &str, claims: &Claims) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(kid.to_string());
    header.typ = Some("JWT".into());
    let body = json!({
        "iss": claims.iss, "aud": claims.aud, "iat": claims.iat, "exp": claims.exp,
        "scope": claims.scope,
    });
    jsonwebtoken::encode(&header, &body, &key.encoding).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The simulator and its endpoints

async fn start() -> SimHandle {
    let mut seed = Seed::demo();
    seed.accounts[0].m2m_clients.push(SeedM2mClient {
        name: "another".into(),
        client_id: OTHER_CLIENT_ID.into(),
        certificates: Vec::new(),
    });
    Simulator::start(seed).await.unwrap()
}

fn token_url(sim: &SimHandle) -> String {
    format!("{}{TOKEN_PATH}", sim.base_url())
}

fn certificates_url(sim: &SimHandle, client_id: &str) -> String {
    format!(
        "{}/services/rest/auth/oauth2/v1/clients/{client_id}/certificates",
        sim.base_url()
    )
}

/// The administrator's first certificate of the demo mapping (entity 42, role 1001).
fn upload(sim: &SimHandle, client_id: &str, key: &Key) -> String {
    sim.sim()
        .upload_certificate(&AdminCertificate {
            client_id: client_id.into(),
            entity: demo::ENTITY_ID.into(),
            role: demo::ROLE_ID.into(),
            pem: key.certificate.clone(),
        })
        .unwrap()
}

async fn post_form(sim: &SimHandle, body: String) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(token_url(sim))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, json_of(response).await)
}

async fn exchange(sim: &SimHandle, assertion: &str) -> (StatusCode, Value) {
    post_form(
        sim,
        format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
            ASSERTION_TYPE.replace(':', "%3A")
        ),
    )
    .await
}

async fn access_token(sim: &SimHandle, key: &Key, kid: &str, scope: Value) -> String {
    let claims = Claims {
        scope,
        ..Claims::valid(sim)
    };
    let (status, body) = exchange(sim, &assertion(key, kid, &claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// The demo client with its first certificate and an access token for the certificate calls.
async fn bootstrapped(sim: &SimHandle) -> (Key, String, String) {
    let key = p256(365);
    let kid = upload(sim, demo::M2M_CLIENT_ID, &key);
    let token = access_token(sim, &key, &kid, json!("rest_webservices")).await;
    (key, kid, token)
}

async fn list(sim: &SimHandle, token: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(certificates_url(sim, demo::M2M_CLIENT_ID))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_of(response).await;
    body["items"].as_array().unwrap().clone()
}

async fn add(sim: &SimHandle, token: &str, body: String) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(certificates_url(sim, demo::M2M_CLIENT_ID))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn add_body(key: &Key) -> String {
    json!({"fileContent": key.certificate, "role": 1001, "entity": 42}).to_string()
}

async fn revoke(sim: &SimHandle, token: &str, id: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/{id}/revoke",
            certificates_url(sim, demo::M2M_CLIENT_ID)
        ))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, json_of(response).await)
}

/// The body as JSON (`Null` when it is none).
async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null)
}

fn detail(body: &Value) -> String {
    body["o:errorDetails"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The token endpoint

#[tokio::test]
async fn es256_and_ps256_assertions_buy_access_tokens() {
    let sim = start().await;
    let ec = p256(365);
    let ec_kid = upload(&sim, demo::M2M_CLIENT_ID, &ec);
    let (status, body) = exchange(&sim, &assertion(&ec, &ec_kid, &Claims::valid(&sim))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], "3600");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);

    let rsa = rsa(rcgen::RsaKeySize::_3072);
    let rsa_kid = upload(&sim, demo::M2M_CLIENT_ID, &rsa);
    // The help text's comma-separated scope string.
    let claims = Claims {
        scope: json!("restlets,rest_webservices"),
        ..Claims::valid(&sim)
    };
    let (status, body) = exchange(&sim, &assertion(&rsa, &rsa_kid, &claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let seen = sim.sim().inspect();
    assert_eq!(seen.access_tokens_issued, 2);
    assert_eq!(seen.requests("token"), 2);
    assert_eq!(seen.failed_login_count, 0);
    assert_eq!(seen.active_certificates(demo::M2M_CLIENT_ID).count(), 2);
    let rsa_view = seen.certificate(&rsa_kid).unwrap();
    assert_eq!(
        (rsa_view.entity.as_str(), rsa_view.role.as_str()),
        (demo::ENTITY_ID, demo::ROLE_ID)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn each_refused_assertion_is_an_rfc6749_error_naming_the_field_and_a_failed_login() {
    let sim = start().await;
    let key = p256(365);
    let kid = upload(&sim, demo::M2M_CLIENT_ID, &key);
    let stranger = p256(365);
    let now = unix_now();
    let valid = || Claims::valid(&sim);
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        (
            "wrong kid",
            assertion(&key, "no-such-certificate", &valid()),
            "invalid_client",
            "kid",
            m2m_reason::KID_UNKNOWN,
        ),
        (
            "wrong iss",
            assertion(
                &key,
                &kid,
                &Claims {
                    iss: OTHER_CLIENT_ID.into(),
                    ..valid()
                },
            ),
            "invalid_client",
            "claim iss",
            m2m_reason::ISS_WRONG,
        ),
        (
            "wrong aud",
            assertion(
                &key,
                &kid,
                &Claims {
                    aud: "https://example.com/token".into(),
                    ..valid()
                },
            ),
            "invalid_client",
            "claim aud",
            m2m_reason::AUD_WRONG,
        ),
        (
            "exp - iat of an hour",
            assertion(
                &key,
                &kid,
                &Claims {
                    iat: now,
                    exp: now + 3600,
                    ..valid()
                },
            ),
            "invalid_client",
            "exp - iat",
            m2m_reason::LIFETIME_TOO_LONG,
        ),
        (
            "expired",
            assertion(
                &key,
                &kid,
                &Claims {
                    iat: now - 600,
                    exp: now - 60,
                    ..valid()
                },
            ),
            "invalid_client",
            "claim exp",
            m2m_reason::EXPIRED,
        ),
        (
            "signed with another key",
            assertion(&stranger, &kid, &valid()),
            "invalid_client",
            "signature",
            m2m_reason::SIGNATURE_INVALID,
        ),
        (
            "unknown scope",
            assertion(
                &key,
                &kid,
                &Claims {
                    scope: json!("rest_webservices,everything"),
                    ..valid()
                },
            ),
            "invalid_scope",
            "claim scope",
            m2m_reason::SCOPE_INVALID,
        ),
    ];
    for (name, jwt, error, field, reason) in &cases {
        let (status, body) = exchange(&sim, jwt).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"], *error, "{name}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(field), "{name}: {description}");
        assert_eq!(sim.sim().inspect().refused(reason), 1, "{name}");
    }

    let (status, body) = post_form(
        &sim,
        format!("grant_type=password&client_assertion_type={ASSERTION_TYPE}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    let (_, body) = post_form(
        &sim,
        format!("grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}"),
    )
    .await;
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_assertion")
    );

    let seen = sim.sim().inspect();
    assert_eq!(seen.failed_login_count, cases.len() as u64 + 2);
    let wrong_iss = &seen.failed_logins[1];
    assert_eq!(wrong_iss.endpoint, "token");
    assert_eq!(wrong_iss.scheme, "client_credentials");
    assert_eq!(wrong_iss.account, demo::ACCOUNT);
    assert_eq!(wrong_iss.client_id.as_deref(), Some(OTHER_CLIENT_ID));
    assert_eq!(wrong_iss.certificate_id.as_deref(), Some(kid.as_str()));
    // No assertion is kept: not even its signature part.
    let recorded = serde_json::to_string(&seen).unwrap();
    for (name, jwt, ..) in &cases {
        let signature = jwt.rsplit('.').next().unwrap();
        assert!(!recorded.contains(signature), "{name}: assertion recorded");
    }
    assert_eq!(seen.access_tokens_issued, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_assertion_past_a_skewed_clock_is_expired() {
    let sim = start().await;
    let key = p256(30);
    let kid = upload(&sim, demo::M2M_CLIENT_ID, &key);
    sim.sim()
        .set_faults(Faults {
            clock_skew_secs: 900,
            ..Faults::default()
        })
        .unwrap();
    let (status, body) = exchange(&sim, &assertion(&key, &kid, &Claims::valid(&sim))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("claim exp")
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The certificate endpoints

#[tokio::test]
async fn list_add_and_revoke_and_a_revoked_certificate_mints_no_token() {
    let sim = start().await;
    let (_, first, token) = bootstrapped(&sim).await;
    let listed = list(&sim, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], first.as_str());
    assert_eq!(listed[0]["revoked"], false);
    assert_eq!(listed[0]["entity"], demo::ENTITY_ID);
    assert!(listed[0]["validUntil"].is_string());

    let next = ec_key(&rcgen::PKCS_ECDSA_P384_SHA384, Algorithm::ES384, 365);
    let (status, body) = add(&sim, &token, add_body(&next)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["revoked"], false);
    // The new certificate works at once.
    access_token(&sim, &next, &second, json!(["rest_webservices"])).await;

    let (status, body) = revoke(&sim, &token, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], true);
    let listed = list(&sim, &token).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["revoked"], true);
    let (status, body) = revoke(&sim, &token, "not-a-certificate").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let seen = sim.sim().inspect();
    assert!(!seen.certificate(&first).unwrap().is_active());
    assert_eq!(seen.requests("certificates"), 2);
    assert_eq!(seen.requests("certificate_add"), 1);
    assert_eq!(seen.requests("certificate_revoke"), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_revoked_certificate_can_no_longer_mint_tokens() {
    let sim = start().await;
    let (key, kid, token) = bootstrapped(&sim).await;
    revoke(&sim, &token, &kid).await;
    let (status, body) = exchange(&sim, &assertion(&key, &kid, &Claims::valid(&sim))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    assert_eq!(
        sim.sim().inspect().refused(m2m_reason::CERTIFICATE_REVOKED),
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn certificate_calls_need_a_rest_webservices_bearer_of_the_same_client() {
    let sim = start().await;
    let (key, kid, _) = bootstrapped(&sim).await;
    let client = reqwest::Client::new();
    let url = certificates_url(&sim, demo::M2M_CLIENT_ID);

    let bare = client.get(&url).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert!(bare.headers().contains_key(WWW_AUTHENTICATE));

    let restlets_only = access_token(&sim, &key, &kid, json!("restlets")).await;
    let response = client
        .get(&url)
        .header(AUTHORIZATION, format!("Bearer {restlets_only}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = json_of(response).await;
    assert!(detail(&body).contains("rest_webservices"), "{body}");

    let made_up = client
        .get(&url)
        .header(AUTHORIZATION, "Bearer made.up.token")
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), StatusCode::UNAUTHORIZED);

    // A token of another client, on this client's certificates.
    let other_key = p256(365);
    let other_kid = upload(&sim, OTHER_CLIENT_ID, &other_key);
    let claims = Claims {
        iss: OTHER_CLIENT_ID.into(),
        ..Claims::valid(&sim)
    };
    let (_, body) = exchange(&sim, &assertion(&other_key, &other_kid, &claims)).await;
    let other_token = body["access_token"].as_str().unwrap();
    let forbidden = client
        .get(&url)
        .header(AUTHORIZATION, format!("Bearer {other_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // `?c=<account>`, as Oracle's samples add it, is tolerated.
    let token = access_token(&sim, &key, &kid, json!("rest_webservices")).await;
    let with_account = client
        .get(format!("{url}?c={}", demo::ACCOUNT))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_account.status(), StatusCode::OK);

    let seen = sim.sim().inspect();
    let bearer_failures: Vec<_> = seen
        .failed_logins
        .iter()
        .filter(|f| f.scheme == "bearer")
        .collect();
    assert_eq!(bearer_failures.len(), 3);
    assert!(bearer_failures.iter().all(|f| f.endpoint == "certificates"));
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_naming_the_field() {
    let sim = start().await;
    let (_, _, token) = bootstrapped(&sim).await;
    let key = p256(365);

    let response = reqwest::Client::new()
        .post(certificates_url(&sim, demo::M2M_CLIENT_ID))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "text/plain")
        .body(key.certificate.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json_of(response).await;
    assert!(detail(&body).contains("Content-Type"), "{body}");

    let cases = [
        (json!({"role": 1001, "entity": 42}).to_string(), "fileContent"),
        (
            json!({"fileContent": "not a certificate", "role": 1001, "entity": 42}).to_string(),
            "fileContent: expected a PEM certificate",
        ),
        (
            json!({"fileContent": rsa(rcgen::RsaKeySize::_2048).certificate, "role": 1001, "entity": 42})
                .to_string(),
            "RSA with 2048 bits",
        ),
        (
            json!({"fileContent": key.certificate, "role": 3, "entity": 42}).to_string(),
            "role \"3\"",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = add(&sim, &token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(detail(&answer).contains(expected), "{expected}: {answer}");
    }
    assert_eq!(sim.sim().inspect().certificates.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_sixth_active_certificate_is_refused_until_one_is_revoked() {
    let sim = start().await;
    let (_, first, token) = bootstrapped(&sim).await;
    for _ in 0..4 {
        let (status, body) = add(&sim, &token, add_body(&p256(365))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = add(&sim, &token, add_body(&p256(365))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        detail(&body).contains("already has 5 active certificates"),
        "{body}"
    );
    assert_eq!(sim.sim().inspect().refused(m2m_reason::TOO_MANY_ACTIVE), 1);
    revoke(&sim, &token, &first).await;
    let (status, body) = add(&sim, &token, add_body(&p256(365))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = sim.sim().inspect();
    assert_eq!(seen.active_certificates(demo::M2M_CLIENT_ID).count(), 5);
    assert_eq!(seen.certificates.len(), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn validity_over_two_years_is_capped_at_two_years_from_its_start() {
    let sim = start().await;
    let (_, _, token) = bootstrapped(&sim).await;
    let long = p256(1000);
    let (status, body) = add(&sim, &token, add_body(&long)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let from: DateTime<Utc> = body["validFrom"].as_str().unwrap().parse().unwrap();
    let until: DateTime<Utc> = body["validUntil"].as_str().unwrap().parse().unwrap();
    assert_eq!(until, from.checked_add_months(Months::new(24)).unwrap());
    let view = sim
        .sim()
        .inspect()
        .certificate(body["id"].as_str().unwrap())
        .cloned()
        .unwrap();
    assert_eq!(view.not_after, until);
    assert!(view.not_after_as_sent > view.not_after);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_add_answer_without_id_leaves_list_before_and_after() {
    let sim = start().await;
    let (_, _, token) = bootstrapped(&sim).await;
    sim.sim().set_m2m_answers(M2mAnswers {
        add_answer: AddAnswer::WithoutId,
    });
    let before: Vec<Value> = list(&sim, &token).await;
    let (status, body) = add(&sim, &token, add_body(&p256(365))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "success"}));
    let after = list(&sim, &token).await;
    let new: Vec<&Value> = after
        .iter()
        .filter(|entry| !before.iter().any(|b| b["id"] == entry["id"]))
        .collect();
    assert_eq!(new.len(), 1);

    sim.sim().set_m2m_answers(M2mAnswers {
        add_answer: AddAnswer::NoContent,
    });
    let (status, body) = add(&sim, &token, add_body(&p256(365))).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(sim.sim().inspect().certificates.len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_strike_the_certificate_endpoints_by_name() {
    let sim = start().await;
    let (key, kid, token) = bootstrapped(&sim).await;
    sim.sim()
        .set_faults(Faults {
            server_error: 1.0,
            endpoints: vec!["certificates".into()],
            ..Faults::default()
        })
        .unwrap();
    let response = reqwest::Client::new()
        .get(certificates_url(&sim, demo::M2M_CLIENT_ID))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
    // The filter leaves the token endpoint alone.
    access_token(&sim, &key, &kid, json!("rest_webservices")).await;
    assert_eq!(sim.sim().inspect().faults_injected("server_error"), 1);

    // A reset after processing loses the add's answer, not the certificate.
    sim.sim()
        .set_faults(Faults {
            reset: 1.0,
            after_processing_rate: 1.0,
            endpoints: vec!["certificate_add".into()],
            ..Faults::default()
        })
        .unwrap();
    let lost = reqwest::Client::new()
        .post(certificates_url(&sim, demo::M2M_CLIENT_ID))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(add_body(&p256(365)))
        .send()
        .await;
    assert!(lost.is_err());
    let seen = sim.sim().inspect();
    assert_eq!(seen.active_certificates(demo::M2M_CLIENT_ID).count(), 2);
    assert_eq!(seen.faults_after_processing.get("reset"), Some(&1));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_seed_can_hold_a_client_with_its_first_certificate() {
    let key = p256(365);
    let text = format!(
        r#"
        [[accounts]]
        id = "1_SB1"
        company_name = "C"
        [[accounts.roles]]
        id = 3
        name = "R"
        [[accounts.users]]
        entity_id = 7
        email = "a@b"
        password = "pw"
        roles = [3]
        [[accounts.m2m_clients]]
        name = "erp"
        client_id = "cid"
        [[accounts.m2m_clients.certificates]]
        certificate_id = "seeded-kid"
        entity = 7
        role = 3
        pem = """
{}"""
        "#,
        key.certificate
    );
    let seed = Seed::from_toml(&text, "inline").unwrap();
    let sim = Simulator::start(seed).await.unwrap();
    let claims = Claims {
        iss: "cid".into(),
        ..Claims::valid(&sim)
    };
    let (status, body) = exchange(&sim, &assertion(&key, "seeded-kid", &claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dangling = text.replace("entity = 7", "entity = 8");
    let error = Seed::from_toml(&dangling, "inline")
        .unwrap_err()
        .to_string();
    assert!(error.contains("entity 8 and role 3"), "{error}");
    sim.shutdown().await;
}
