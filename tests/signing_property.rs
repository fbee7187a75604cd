//! The client's OAuth 1.0 signer against the simulator's independent verifier: whatever the
//! client signs, the simulator accepts; change any one character of any signed input (method,
//! URL path, query value, consumer key or secret, token id or secret, timestamp, nonce) and the
//! simulator refuses the request, for a reason other than a reused nonce.

mod common;

use common::demo;
use netsuite_token_rotator::netsuite::{
    TbaCredentials, authorization_header, oauth1::unix_now, percent_encode,
};
use netsuite_token_rotator::secret::{ExposeSecret, SecretString};
use netsuite_token_rotator::sim::{HandMadeToken, Seed, Simulator};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The signed inputs of one `tokeninfo` request.
#[derive(Clone, Debug)]
struct Inputs {
    method: String,
    path: String,
    query_value: String,
    consumer_key: String,
    consumer_secret: String,
    token_id: String,
    token_secret: String,
    timestamp: String,
    nonce: String,
}

const FIELDS: [&str; 9] = [
    "method",
    "path",
    "query_value",
    "consumer_key",
    "consumer_secret",
    "token_id",
    "token_secret",
    "timestamp",
    "nonce",
];

impl Inputs {
    fn field_mut(&mut self, name: &str) -> &mut String {
        match name {
            "method" => &mut self.method,
            "path" => &mut self.path,
            "query_value" => &mut self.query_value,
            "consumer_key" => &mut self.consumer_key,
            "consumer_secret" => &mut self.consumer_secret,
            "token_id" => &mut self.token_id,
            "token_secret" => &mut self.token_secret,
            "timestamp" => &mut self.timestamp,
            _ => &mut self.nonce,
        }
    }

    fn url(&self, base: &str) -> String {
        format!(
            "{base}{}?q={}",
            self.path,
            percent_encode(&self.query_value)
        )
    }

    fn header(&self, base: &str) -> String {
        let creds = TbaCredentials {
            consumer_key: SecretString::from(self.consumer_key.as_str()),
            consumer_secret: SecretString::from(self.consumer_secret.as_str()),
            token_id: self.token_id.clone(),
            token_secret: SecretString::from(self.token_secret.as_str()),
        };
        authorization_header(
            &self.method,
            &self.url(base),
            demo::ACCOUNT,
            &creds,
            self.timestamp.parse().unwrap(),
            &self.nonce,
        )
        .expect("signable")
    }
}

/// Changes the character at `index` (modulo the length) to another one of the same kind, so
/// the input stays well-formed (a digit stays a digit) but differs.
fn change_one_char(value: &str, index: usize) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let i = index % chars.len();
    chars[i] = match chars[i] {
        '9' => '0',
        c @ '0'..='8' => (c as u8 + 1) as char,
        'z' => 'a',
        'Z' => 'A',
        c if c.is_ascii_alphabetic() => (c as u8 + 1) as char,
        'x' => 'y',
        _ => 'x',
    };
    chars.into_iter().collect()
}

#[test]
fn simulator_accepts_what_the_client_signs_and_refuses_any_one_character_change() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(Simulator::start(Seed::demo())).unwrap();
    let (token_id, token_secret) = sim
        .sim()
        .create_token(&HandMadeToken {
            account: demo::ACCOUNT.into(),
            email: demo::EMAIL.into(),
            role: demo::ROLE_ID.into(),
            consumer_key: demo::CONSUMER_KEY.into(),
            name: "property test".into(),
        })
        .unwrap();
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let send = |method: &str, url: String, header: String| {
        let request = http
            .request(method.parse().unwrap(), url)
            .header("Authorization", header);
        rt.block_on(async {
            let response = request.send().await.expect("simulator answers");
            let reason = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            (response.status().as_u16(), reason)
        })
    };

    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        "[ -~]{0,12}|[a-zé ü€&=+%]{1,8}",
        0..FIELDS.len(),
        any::<usize>(),
    );
    runner
        .run(&strategy, |(query_value, field, index)| {
            let signed = Inputs {
                method: "GET".into(),
                path: "/rest/tokeninfo".into(),
                query_value: if query_value.is_empty() {
                    "v".into()
                } else {
                    query_value
                },
                consumer_key: demo::CONSUMER_KEY.into(),
                consumer_secret: demo::CONSUMER_SECRET.into(),
                token_id: token_id.clone(),
                token_secret: token_secret.expose_secret().to_string(),
                timestamp: unix_now().to_string(),
                nonce: netsuite_token_rotator::netsuite::oauth1::new_nonce(),
            };
            let (status, reason) = send("GET", signed.url(&base), signed.header(&base));
            prop_assert_eq!(
                status,
                200,
                "the simulator refused a client signature: {}",
                reason
            );

            // One character of one input differs between what was signed and what is sent.
            let name = FIELDS[field];
            let mut changed = signed.clone();
            changed.nonce = netsuite_token_rotator::netsuite::oauth1::new_nonce();
            let sent = changed.clone();
            let original = changed.field_mut(name).clone();
            // The path keeps its leading '/', or the URL would stop being a URL.
            let index = if name == "path" {
                1 + index % (original.len() - 1)
            } else {
                index
            };
            *changed.field_mut(name) = change_one_char(&original, index);
            let (method, url, header) = match name {
                // Values the header carries: sent changed, under the original signature.
                "consumer_key" | "token_id" | "timestamp" | "nonce" => {
                    let header = sent.header(&base).replace(
                        &format!("=\"{}\"", percent_encode(&original)),
                        &format!("=\"{}\"", percent_encode(changed.field_mut(name))),
                    );
                    (sent.method.clone(), sent.url(&base), header)
                }
                // Everything else: signed changed, sent original.
                _ => (sent.method.clone(), sent.url(&base), changed.header(&base)),
            };
            let (status, reason) = send(&method, url, header);
            prop_assert_ne!(status, 200, "changing {} was not noticed", name);
            prop_assert!(
                !reason.contains("nonce_used"),
                "refused for nonce reuse, not for the change to {}: {}",
                name,
                reason
            );
            Ok(())
        })
        .unwrap();
}
