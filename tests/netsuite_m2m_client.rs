//! The rotator's OAuth 2.0 client-credentials client (`netsuite::m2m`) against the in-process
//! simulator over real HTTP: token exchanges with generated ES256 and PS256 keys, list, add and
//! revoke, the answers without an id, the refusals as errors (naming the OAuth 2.0 code, never
//! a secret) and which failures are retried.

use std::time::Duration;

use chrono::Utc;
use netsuite_token_rotator::netsuite::{
    AccessToken, Call, CallResult, ClientOptions, Endpoint, KeyKind, M2mCredentials,
    NetSuiteClient, NetSuiteError, NewCertificate, Revoked, TransportKind, generate_certificate,
};
use netsuite_token_rotator::secret::{ExposeSecret, SecretString};
use netsuite_token_rotator::sim::{
    AddAnswer, AdminCertificate, Faults, M2mAnswers, Seed, SeedM2mClient, SimHandle, Simulator,
    demo,
};

const OTHER_CLIENT_ID: &str = "another-m2m-client";
const YEAR: Duration = Duration::from_secs(365 * 86_400);

async fn start() -> SimHandle {
    let mut seed = Seed::demo();
    seed.accounts[0].m2m_clients.push(SeedM2mClient {
        name: "another".into(),
        client_id: OTHER_CLIENT_ID.into(),
        certificates: Vec::new(),
    });
    Simulator::start(seed).await.unwrap()
}

/// A client that retries at once (no sleeps worth the name).
fn client() -> NetSuiteClient {
    NetSuiteClient::new(ClientOptions {
        max_attempts: 4,
        max_rate_limited_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        ..ClientOptions::default()
    })
    .unwrap()
}

fn endpoint(sim: &SimHandle) -> Endpoint {
    let account = netsuite_token_rotator::netsuite::AccountId::parse(demo::ACCOUNT).unwrap();
    Endpoint::m2m_for_account(&account, Some(&sim.base_url()))
}

fn client_id() -> SecretString {
    SecretString::from(demo::M2M_CLIENT_ID.to_string())
}

fn scopes() -> Vec<String> {
    vec!["rest_webservices".to_string(), "restlets".to_string()]
}

/// A key and certificate of `kind`, uploaded "by an administrator"; its certificate id.
fn uploaded(sim: &SimHandle, client_id: &str, kind: KeyKind) -> (NewCertificate, String) {
    let new = generate_certificate(kind, "netsuite-token-rotator test", YEAR).unwrap();
    let id = sim
        .sim()
        .upload_certificate(&AdminCertificate {
            client_id: client_id.into(),
            entity: demo::ENTITY_ID.into(),
            role: demo::ROLE_ID.into(),
            pem: new.certificate.clone(),
        })
        .unwrap();
    (new, id)
}

async fn token_for(
    client: &NetSuiteClient,
    sim: &SimHandle,
    client_id: &SecretString,
    kind: KeyKind,
    new: &NewCertificate,
    certificate_id: &str,
) -> Result<AccessToken, NetSuiteError> {
    let creds = M2mCredentials {
        client_id,
        certificate_id,
        algorithm: kind.algorithm(),
        private_key: &new.private_key,
    };
    client
        .m2m_access_token(&endpoint(sim), &creds, &scopes())
        .await
}

/// The demo client with its first (P-256) certificate and an access token.
async fn bootstrapped(
    client: &NetSuiteClient,
    sim: &SimHandle,
) -> (NewCertificate, String, AccessToken) {
    let (new, id) = uploaded(sim, demo::M2M_CLIENT_ID, KeyKind::EcP256);
    let token = token_for(client, sim, &client_id(), KeyKind::EcP256, &new, &id)
        .await
        .unwrap();
    (new, id, token)
}

async fn add(
    client: &NetSuiteClient,
    sim: &SimHandle,
    token: &AccessToken,
    kind: KeyKind,
) -> (NewCertificate, Result<Option<String>, NetSuiteError>) {
    let new = generate_certificate(kind, "next", YEAR).unwrap();
    let result = client
        .add_certificate(
            &endpoint(sim),
            &client_id(),
            token,
            &new.certificate,
            demo::ROLE_ID,
            demo::ENTITY_ID,
        )
        .await;
    (new, result)
}

/// No secret of the exchange in `text`.
fn assert_no_secrets(text: &str, new: &NewCertificate, token: Option<&AccessToken>) {
    assert!(!text.contains(demo::M2M_CLIENT_ID), "client id in: {text}");
    assert!(!text.contains(OTHER_CLIENT_ID), "client id in: {text}");
    assert!(!text.contains("PRIVATE KEY"), "key in: {text}");
    let key_body: String = new
        .private_key
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(!text.contains(&key_body), "key in: {text}");
    assert!(!text.contains("eyJ"), "a JWT in: {text}");
    if let Some(token) = token {
        assert!(
            !text.contains(token.token.expose_secret()),
            "token in: {text}"
        );
    }
}

#[tokio::test]
async fn es256_and_ps256_certificates_buy_access_tokens() {
    let sim = start().await;
    let client = client();
    for kind in [KeyKind::EcP256, KeyKind::Rsa3072] {
        let (new, id) = uploaded(&sim, demo::M2M_CLIENT_ID, kind);
        let token = token_for(&client, &sim, &client_id(), kind, &new, &id)
            .await
            .unwrap_or_else(|err| panic!("{kind}: {err}"));
        assert_eq!(token.expires_in, Some(3600), "{kind}");
        assert_eq!(token.token.expose_secret().split('.').count(), 3);
        assert!(!format!("{token:?}").contains(token.token.expose_secret()));
    }
    let seen = sim.sim().inspect();
    assert_eq!(seen.access_tokens_issued, 2);
    assert_eq!(seen.requests("token"), 2);
    assert_eq!(seen.failed_login_count, 0);
    let counts = client.call_counts();
    assert_eq!(counts.get(Call::M2mToken, CallResult::Ok), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_add_and_revoke() {
    let sim = start().await;
    let client = client();
    let (_, first, token) = bootstrapped(&client, &sim).await;
    let endpoint = endpoint(&sim);
    let listed = client
        .list_certificates(&endpoint, &client_id(), &token)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, first);
    assert!(listed[0].is_active(Utc::now()));
    assert!(listed[0].valid_from.is_some() && listed[0].valid_until.is_some());

    let (next, added) = add(&client, &sim, &token, KeyKind::EcP384).await;
    let second = added
        .unwrap()
        .expect("the simulator's default answer carries the id");
    // The new certificate works at once.
    token_for(&client, &sim, &client_id(), KeyKind::EcP384, &next, &second)
        .await
        .unwrap();

    let revoked = client
        .revoke_certificate(&endpoint, &client_id(), &token, &first)
        .await
        .unwrap();
    assert_eq!(revoked, Revoked::Now);
    // Revoking twice is harmless.
    let again = client
        .revoke_certificate(&endpoint, &client_id(), &token, &first)
        .await
        .unwrap();
    assert_eq!(again, Revoked::Now);
    let unknown = client
        .revoke_certificate(&endpoint, &client_id(), &token, "not-a-certificate")
        .await
        .unwrap();
    assert_eq!(unknown, Revoked::AlreadyInvalid);

    let listed = client
        .list_certificates(&endpoint, &client_id(), &token)
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    assert!(listed[0].revoked && !listed[0].is_active(Utc::now()));
    assert!(listed[1].is_active(Utc::now()));

    let seen = sim.sim().inspect();
    assert!(!seen.certificate(&first).unwrap().is_active());
    assert_eq!(seen.requests("certificates"), 2);
    assert_eq!(seen.requests("certificate_add"), 1);
    assert_eq!(seen.requests("certificate_revoke"), 3);
    let counts = client.call_counts();
    assert_eq!(counts.get(Call::ListCertificates, CallResult::Ok), 2);
    assert_eq!(counts.get(Call::AddCertificate, CallResult::Ok), 1);
    assert_eq!(counts.get(Call::RevokeCertificate, CallResult::Ok), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn add_answers_without_an_id_or_with_204_give_none() {
    let sim = start().await;
    let client = client();
    let (_, _, token) = bootstrapped(&client, &sim).await;
    for answer in [AddAnswer::WithoutId, AddAnswer::NoContent] {
        sim.sim().set_m2m_answers(M2mAnswers { add_answer: answer });
        let (_, added) = add(&client, &sim, &token, KeyKind::EcP256).await;
        assert_eq!(added.unwrap(), None, "{answer:?}");
    }
    assert_eq!(
        sim.sim()
            .inspect()
            .active_certificates(demo::M2M_CLIENT_ID)
            .count(),
        3
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_sixth_active_certificate_is_a_clear_error() {
    let sim = start().await;
    let client = client();
    let (first_key, _, token) = bootstrapped(&client, &sim).await;
    for _ in 0..4 {
        add(&client, &sim, &token, KeyKind::EcP256).await.1.unwrap();
    }
    let (_, refused) = add(&client, &sim, &token, KeyKind::EcP256).await;
    let err = refused.unwrap_err();
    let message = err.to_string();
    assert_eq!(err.status(), Some(400), "{message}");
    assert!(message.contains("certificate add"), "{message}");
    assert!(
        message.contains("already has 5 active certificates"),
        "{message}"
    );
    assert!(message.contains("revoke one first"), "{message}");
    assert!(!err.is_transient() && !err.may_have_issued() && !err.is_login_failure());
    assert_no_secrets(&message, &first_key, Some(&token));
    // A refusal is not tried again.
    assert_eq!(sim.sim().inspect().requests("certificate_add"), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_as_invalid_client_without_secrets() {
    let sim = start().await;
    let client = client();
    let (key, id, token) = bootstrapped(&client, &sim).await;
    client
        .revoke_certificate(&endpoint(&sim), &client_id(), &token, &id)
        .await
        .unwrap();
    let err = token_for(&client, &sim, &client_id(), KeyKind::EcP256, &key, &id)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(err.oauth2_error(), Some("invalid_client"), "{message}");
    assert!(message.contains("invalid_client"), "{message}");
    assert!(message.contains("revoked"), "{message}");
    assert!(message.contains("certificate id"), "{message}");
    assert!(!err.is_transient() && !err.is_login_failure() && !err.may_have_issued());
    assert_no_secrets(&message, &key, Some(&token));
    assert_no_secrets(&format!("{err:?}"), &key, Some(&token));
    // One refused exchange, not retried.
    assert_eq!(sim.sim().inspect().requests("token"), 2);
    assert_eq!(
        client
            .call_counts()
            .get(Call::M2mToken, CallResult::Refused),
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_description_quoting_the_client_id_is_shown_without_it() {
    let sim = start().await;
    let client = client();
    let (key, id) = uploaded(&sim, demo::M2M_CLIENT_ID, KeyKind::EcP256);
    // The right certificate with another client id as `iss`: the simulator's description
    // quotes the `iss` it refused.
    let other = SecretString::from(OTHER_CLIENT_ID.to_string());
    let err = token_for(&client, &sim, &other, KeyKind::EcP256, &key, &id)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(err.oauth2_error(), Some("invalid_client"), "{message}");
    assert!(message.contains("claim iss"), "{message}");
    assert!(message.contains("[client id]"), "{message}");
    assert_no_secrets(&message, &key, None);
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_access_tokens_and_missing_permission_are_not_login_failures() {
    let sim = start().await;
    let client = client();
    let (key, _, _) = bootstrapped(&client, &sim).await;
    let made_up = AccessToken {
        token: SecretString::from("made.up.token".to_string()),
        expires_in: None,
    };
    let err = client
        .list_certificates(&endpoint(&sim), &client_id(), &made_up)
        .await
        .unwrap_err();
    assert!(err.access_token_refused(), "{err}");
    assert!(!err.is_login_failure() && !err.is_transient());
    assert!(
        err.to_string().contains("refused the access token"),
        "{err}"
    );
    assert_no_secrets(&err.to_string(), &key, Some(&made_up));

    // A token of another client on this client's certificates: 403.
    let (other_key, other_id) = uploaded(&sim, OTHER_CLIENT_ID, KeyKind::EcP256);
    let other = SecretString::from(OTHER_CLIENT_ID.to_string());
    let other_token = token_for(
        &client,
        &sim,
        &other,
        KeyKind::EcP256,
        &other_key,
        &other_id,
    )
    .await
    .unwrap();
    let err = client
        .list_certificates(&endpoint(&sim), &client_id(), &other_token)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(err.status(), Some(403), "{message}");
    assert!(!err.is_login_failure());
    assert!(
        message.contains("Manage own OAuth 2.0 Client Credentials certificates"),
        "{message}"
    );
    assert_no_secrets(&message, &key, Some(&other_token));
    sim.shutdown().await;
}

#[tokio::test]
async fn transient_503s_are_retried_for_token_listing_and_revoke() {
    let sim = start().await;
    let client = NetSuiteClient::new(ClientOptions {
        max_attempts: 30,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
        ..ClientOptions::default()
    })
    .unwrap();
    let (key, id, token) = bootstrapped(&client, &sim).await;
    let (_, added) = add(&client, &sim, &token, KeyKind::EcP256).await;
    let second = added.unwrap().unwrap();
    // Every other request fails, in an order fixed by the seed: each call below meets
    // at least one 503 and is answered in the end.
    sim.sim()
        .set_faults(Faults {
            server_error: 0.5,
            rng_seed: Some(7),
            endpoints: vec![
                "token".into(),
                "certificates".into(),
                "certificate_revoke".into(),
            ],
            ..Faults::default()
        })
        .unwrap();
    for _ in 0..3 {
        token_for(&client, &sim, &client_id(), KeyKind::EcP256, &key, &id)
            .await
            .unwrap();
        client
            .list_certificates(&endpoint(&sim), &client_id(), &token)
            .await
            .unwrap();
    }
    let revoked = client
        .revoke_certificate(&endpoint(&sim), &client_id(), &token, &second)
        .await
        .unwrap();
    assert_eq!(revoked, Revoked::Now);
    let seen = sim.sim().inspect();
    assert!(seen.faults_injected("server_error") >= 1);
    let counts = client.call_counts();
    let server_errors: u64 = [
        Call::M2mToken,
        Call::ListCertificates,
        Call::RevokeCertificate,
    ]
    .into_iter()
    .map(|call| counts.get(call, CallResult::ServerError))
    .sum();
    assert_eq!(server_errors, seen.faults_injected("server_error"));
    // With this seed both the exchange and the listing met 503s and got through.
    assert!(counts.get(Call::M2mToken, CallResult::ServerError) >= 1);
    assert!(counts.get(Call::ListCertificates, CallResult::ServerError) >= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_add_that_may_have_reached_netsuite_is_not_retried() {
    let sim = start().await;
    let client = client();
    let (key, _, token) = bootstrapped(&client, &sim).await;

    sim.sim()
        .set_faults(Faults {
            server_error: 1.0,
            endpoints: vec!["certificate_add".into()],
            ..Faults::default()
        })
        .unwrap();
    let (_, result) = add(&client, &sim, &token, KeyKind::EcP256).await;
    let err = result.unwrap_err();
    assert!(err.may_have_issued(), "{err}");
    assert!(!err.is_login_failure());
    assert_no_secrets(&err.to_string(), &key, Some(&token));
    assert_eq!(sim.sim().inspect().requests("certificate_add"), 1);

    // A reset after processing: the certificate is added and the answer lost.
    sim.sim()
        .set_faults(Faults {
            reset: 1.0,
            after_processing_rate: 1.0,
            endpoints: vec!["certificate_add".into()],
            ..Faults::default()
        })
        .unwrap();
    let (_, result) = add(&client, &sim, &token, KeyKind::EcP256).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            NetSuiteError::Transport {
                kind: TransportKind::ConnectionLost | TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.may_have_issued(), "{err}");
    let seen = sim.sim().inspect();
    assert_eq!(seen.requests("certificate_add"), 2);
    assert_eq!(seen.active_certificates(demo::M2M_CLIENT_ID).count(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rate_limited_add_is_retried_because_it_did_nothing() {
    let sim = start().await;
    let client = client();
    let (_, _, token) = bootstrapped(&client, &sim).await;
    sim.sim()
        .set_faults(Faults {
            rate_limit_429: 1.0,
            endpoints: vec!["certificate_add".into()],
            ..Faults::default()
        })
        .unwrap();
    let (_, result) = add(&client, &sim, &token, KeyKind::EcP256).await;
    let err = result.unwrap_err();
    assert!(err.is_rate_limited() && !err.may_have_issued(), "{err}");
    // The first attempt and `max_rate_limited_attempts` (2) more.
    let seen = sim.sim().inspect();
    assert_eq!(seen.requests("certificate_add"), 3);
    assert_eq!(seen.active_certificates(demo::M2M_CLIENT_ID).count(), 1);
    assert_eq!(
        client
            .call_counts()
            .get(Call::AddCertificate, CallResult::RateLimited),
        3
    );
    sim.shutdown().await;
}
