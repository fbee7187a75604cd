//! The simulator's world (accounts, integrations, tokens, nonces, counters, faults) and the
//! rules NetSuite applies to each `/rest/*` request, in the order a request meets them.
//!
//! Everything here runs under the one mutex of [`crate::sim::Simulator`], once per request;
//! header parsing and the signature base string are prepared before the lock is taken.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::faults::{Fault, FaultKind, Faults, FaultsError, RestEndpoint};
use super::inspection::reason;
use super::inspection::{
    ControlError, FailedLogin, HandMadeToken, Inspection, IntegrationView, TokenStatus, TokenView,
};
use super::limits::{InFlight, Limits, LimitsError};
use super::m2m::{AdminCertificate, M2mAnswers, M2mCall, M2mError, M2mWorld};
use super::reply::{Action, Admission, Reply};
use super::request::{Authorization, RestCall, SignedRequest};
use super::seed::{IntegrationState, PERMISSION_USER_ACCESS_TOKENS, Seed, SeedError, totp_for};
use super::wire::{self, Malformed, NlauthLogin};
use crate::secret::secrets_equal;

/// How many failed logins [`Inspection::failed_logins`] keeps; older ones are only counted.
const FAILED_LOGIN_MEMORY: usize = 1_000;

/// How far `oauth_timestamp` may be from the simulator's clock.
const TIMESTAMP_WINDOW_SECS: i64 = 300;
const MIN_NONCE_CHARS: usize = 6;
const NONCE_MEMORY: Duration = Duration::from_secs(600);
/// Bounds the nonce memory; past it the oldest nonces are forgotten early.
const NONCE_CAPACITY: usize = 500_000;

/// The concurrency limit named in a `rate_limit` fault's message when no
/// [`Limits::concurrency_limit`] is set (a set one is named instead). The protocol page says an
/// account's limit is in single digits unless licences are bought; 5 is the figure NetSuite's
/// concurrency governance help gives for the base service tier (an assumption kept here).
const ASSUMED_CONCURRENCY_LIMIT: u32 = 5;

/// The `soap_fault` answer: a SOAP 1.1 fault in the Apache Axis form of NetSuite's SOAP web
/// services, with the fault string NetSuite has been seen to send (with status 200) for an
/// account of another data center. The fault code and detail are not published.
const SOAP_FAULT_BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <soapenv:Fault>
   <faultcode>soapenv:Server.userException</faultcode>
   <faultstring>Incorrect data center requested!</faultstring>
   <detail>
    <ns1:hostname xmlns:ns1="http://xml.apache.org/axis/">netsuite-sim</ns1:hostname>
   </detail>
  </soapenv:Fault>
 </soapenv:Body>
</soapenv:Envelope>
"#;

/// The `login_page` answer: a small page in the manner of NetSuite's login form (its real page
/// is much larger and scripted; a client needs only to see that it is a login page).
const LOGIN_PAGE_BODY: &str = r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>NetSuite Login</title></head>
<body>
<form id="login-form" name="login_form" method="post" action="/app/login/secure/enterpriselogin.nl">
<label for="email">Email address</label> <input id="email" name="email" type="email">
<label for="password">Password</label> <input id="password" name="password" type="password">
<input type="submit" value="Log In">
</form>
</body>
</html>
"#;

/// The answer to revoking with NLAuth a token that is unknown, already revoked or not the
/// user's own. Undocumented: the protocol page says NetSuite's answer to this is not published.
fn nlauth_revoke_refusal() -> Failure {
    Failure::BadRequest {
        reason: reason::NLAUTH_REVOKE_NOT_REVOCABLE,
        code: "INVALID_REQUEST",
        message: "The token is not an active token of this user for this integration.",
    }
}

/// `datacenterurls` wants the underscore form of sandbox ids; the hyphen (host label) form is
/// answered 400. This reading of "it wants the underscore form" is an interpretation.
fn datacenter_account_refusal(account: &str) -> Option<Failure> {
    account.contains('-').then_some(Failure::BadRequest {
        reason: reason::DATACENTER_HYPHEN_FORM,
        code: "INVALID_REQUEST",
        message: "The account id must be in underscore form, such as 123456_SB1.",
    })
}

// ---------------------------------------------------------------------------------------------
// The world

struct Account {
    id: String,
    company_name: String,
    tba_enabled: bool,
    require_approval: bool,
    roles: HashMap<String, Role>,
    /// By lowercase email.
    users: HashMap<String, User>,
}

struct Role {
    id: String,
    name: String,
    permissions: HashSet<String>,
    web_services_only: bool,
    require_2fa: bool,
}

struct User {
    entity_id: String,
    email: String,
    password: SecretString,
    roles: Vec<String>,
    totp: Option<totp_rs::Totp>,
}

struct Integration {
    account: String,
    name: String,
    secret: SecretString,
    state: IntegrationState,
    installed: bool,
}

struct Token {
    serial: u64,
    account: String,
    secret: SecretString,
    name: String,
    consumer_key: String,
    entity_id: String,
    role_id: String,
    revoked_at: Option<DateTime<Utc>>,
    issued_at: DateTime<Utc>,
}

impl Token {
    fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Nonces seen in the last ten minutes, by a keyed hash of (consumer key, token, timestamp,
/// nonce). A hash collision would refuse a fresh nonce as used, with odds around 2^-40 at
/// capacity: a client retries nonce_used with a new nonce anyway.
struct NonceMemory {
    seen: HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
    hasher: std::hash::RandomState,
}

impl NonceMemory {
    fn new() -> NonceMemory {
        NonceMemory {
            seen: HashSet::new(),
            order: VecDeque::new(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Records the nonce; false when it was already recorded.
    fn first_use(&mut self, consumer_key: &str, token: &str, timestamp: i64, nonce: &str) -> bool {
        let now = Instant::now();
        while let Some(&(at, key)) = self.order.front() {
            if now.duration_since(at) < NONCE_MEMORY && self.order.len() < NONCE_CAPACITY {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&key);
        }
        let key = self
            .hasher
            .hash_one((consumer_key, token, timestamp, nonce));
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back((now, key));
        true
    }
}

#[derive(Default)]
struct Stats {
    refused: BTreeMap<&'static str, u64>,
    requests: BTreeMap<&'static str, u64>,
    faults_injected: BTreeMap<&'static str, u64>,
    faults_after_processing: BTreeMap<&'static str, u64>,
    failed_logins: u64,
}

fn bump(map: &mut BTreeMap<&'static str, u64>, key: &'static str) {
    *map.entry(key).or_default() += 1;
}

fn to_owned_map(map: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    map.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

pub(crate) struct State {
    /// By uppercase account id.
    accounts: HashMap<String, Account>,
    /// By consumer key.
    integrations: HashMap<String, Integration>,
    /// By token id.
    tokens: HashMap<String, Token>,
    next_serial: u64,
    nonces: NonceMemory,
    faults: Faults,
    fault_rng: StdRng,
    limits: Limits,
    in_flight: InFlight,
    stats: Stats,
    /// The last [`FAILED_LOGIN_MEMORY`] failed logins; `stats.failed_logins` counts them all.
    failed_logins: VecDeque<FailedLogin>,
    /// The scheme clients use to reach the simulator, which OAuth signatures cover: `https`
    /// when a TLS terminator relays to it.
    public_scheme: &'static str,
    /// OAuth 2.0 client credentials: clients, certificates, access tokens.
    m2m: M2mWorld,
}

/// A refused request.
enum Failure {
    /// 401 INVALID_LOGIN_ATTEMPT; with `announce`, the reason goes out in `WWW-Authenticate`.
    Unauthorized {
        reason: &'static str,
        scheme: &'static str,
        realm: String,
        announce: bool,
    },
    BadRequest {
        reason: &'static str,
        code: &'static str,
        message: &'static str,
    },
}

impl Failure {
    fn oauth(reason: &'static str, realm: &str) -> Failure {
        Failure::Unauthorized {
            reason,
            scheme: "OAuth",
            realm: realm.to_string(),
            announce: true,
        }
    }

    /// An NLAuth login failure: NetSuite says no more than INVALID_LOGIN_ATTEMPT.
    fn login(reason: &'static str) -> Failure {
        Failure::Unauthorized {
            reason,
            scheme: "NLAuth",
            realm: String::new(),
            announce: false,
        }
    }

    /// A refusal after an NLAuth login that names its reason (the consumer key, the feature).
    fn nlauth_announced(reason: &'static str, account: &str) -> Failure {
        Failure::Unauthorized {
            reason,
            scheme: "NLAuth",
            realm: account.to_string(),
            announce: true,
        }
    }

    fn missing_parameter(message: &'static str) -> Failure {
        Failure::BadRequest {
            reason: reason::PARAMETER_MISSING,
            code: "USER_ERROR",
            message,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Failure::Unauthorized { reason, .. } | Failure::BadRequest { reason, .. } => reason,
        }
    }

    fn into_reply(self) -> Reply {
        match self {
            Failure::Unauthorized {
                reason,
                scheme,
                realm,
                announce,
            } => {
                let mut reply =
                    Reply::error(401, "INVALID_LOGIN_ATTEMPT", "Invalid login attempt.");
                if announce {
                    let realm: String = realm
                        .chars()
                        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
                        .collect();
                    reply.www_authenticate =
                        Some(format!(r#"{scheme} realm="{realm}", error="{reason}""#));
                }
                reply
            }
            Failure::BadRequest { code, message, .. } => Reply::error(400, code, message),
        }
    }
}

/// Who an NLAuth header logged in as.
struct LoggedIn {
    account: String,
    entity_id: String,
    role_id: String,
    email: String,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_hex_64() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl State {
    pub fn from_seed(seed: Seed) -> Result<State, SeedError> {
        seed.validate()?;
        let mut state = State {
            accounts: HashMap::new(),
            integrations: HashMap::new(),
            tokens: HashMap::new(),
            next_serial: 0,
            nonces: NonceMemory::new(),
            faults: Faults::default(),
            fault_rng: StdRng::from_os_rng(),
            limits: Limits::default(),
            in_flight: InFlight::default(),
            stats: Stats::default(),
            failed_logins: VecDeque::new(),
            public_scheme: "http",
            m2m: M2mWorld::new(),
        };
        for seeded in seed.accounts {
            state.m2m.add_account(&seeded, unix_now())?;
            let id = seeded.id.to_ascii_uppercase();
            let roles = seeded
                .roles
                .into_iter()
                .map(|r| {
                    let role = Role {
                        id: r.id.clone(),
                        name: r.name,
                        permissions: r.permissions.into_iter().collect(),
                        web_services_only: r.web_services_only,
                        require_2fa: r.require_2fa,
                    };
                    (r.id, role)
                })
                .collect();
            let users = seeded
                .users
                .into_iter()
                .map(|u| {
                    let user = User {
                        totp: u.totp_secret.as_ref().and_then(totp_for),
                        entity_id: u.entity_id,
                        email: u.email.clone(),
                        password: u.password,
                        roles: u.roles,
                    };
                    (u.email.to_lowercase(), user)
                })
                .collect();
            for i in seeded.integrations {
                let integration = Integration {
                    account: id.clone(),
                    name: i.name,
                    secret: i.consumer_secret,
                    state: i.state,
                    installed: i.installed,
                };
                state.integrations.insert(i.consumer_key, integration);
            }
            state.accounts.insert(
                id.clone(),
                Account {
                    id: id.clone(),
                    company_name: seeded.company_name,
                    tba_enabled: seeded.tba_enabled,
                    require_approval: seeded.require_approval,
                    roles,
                    users,
                },
            );
            for t in seeded.tokens {
                let entity_id = state.accounts[&id].users[&t.user.to_lowercase()]
                    .entity_id
                    .clone();
                state.insert_token(
                    t.token_id,
                    t.token_secret,
                    &id,
                    &entity_id,
                    &t.role,
                    &t.consumer_key,
                    t.name,
                );
            }
        }
        Ok(state)
    }

    pub fn public_scheme(&self) -> &'static str {
        self.public_scheme
    }

    pub fn set_public_scheme(&mut self, behind_tls: bool) {
        self.public_scheme = if behind_tls { "https" } else { "http" };
    }

    /// The simulator's clock, Unix seconds, injected skew included.
    pub fn now(&self) -> i64 {
        unix_now() + self.faults.clock_skew_secs
    }

    fn now_utc(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.faults.clock_skew_secs)
    }

    pub fn count_request(&mut self, label: &'static str) {
        bump(&mut self.stats.requests, label);
    }

    // -----------------------------------------------------------------------------------------
    // The concurrency limit

    pub fn limits(&self) -> Limits {
        self.limits.clone()
    }

    pub fn set_limits(&mut self, limits: Limits) -> Result<(), LimitsError> {
        limits.validate()?;
        self.limits = limits;
        Ok(())
    }

    /// Counts a `/rest/*` request on its arrival and takes a slot of its account, in one
    /// section under the lock, so that two requests arriving together cannot both take the
    /// last slot.
    pub fn admit(&mut self, endpoint: RestEndpoint, account: Option<&str>) -> Admission {
        bump(&mut self.stats.requests, endpoint.name());
        let latency = self.limits.latency();
        let Some(account) = account else {
            return Admission::Admitted {
                latency,
                slot_taken: false,
            };
        };
        let limit = self.limits.concurrency_limit;
        if self.in_flight.try_take(account, limit) {
            return Admission::Admitted {
                latency,
                slot_taken: true,
            };
        }
        bump(&mut self.stats.refused, reason::REQUEST_LIMIT_EXCEEDED);
        Admission::Refused(Reply::request_limit_exceeded(
            400,
            limit.unwrap_or(ASSUMED_CONCURRENCY_LIMIT),
        ))
    }

    pub fn give_back_slot(&mut self, account: &str) {
        self.in_flight.give_back(account);
    }

    // -----------------------------------------------------------------------------------------
    // The REST endpoints

    /// Processes a request [`admit`](State::admit) let through (which counted it).
    pub fn handle_rest(&mut self, call: &RestCall) -> Action {
        let fault = match self.draw_fault(call.endpoint) {
            Ok(fault) => fault,
            Err(action) => return action,
        };
        let outcome = match call.endpoint {
            RestEndpoint::IssueToken => self.issue_token(call),
            RestEndpoint::RevokeToken => self.revoke_token(call),
            RestEndpoint::TokenInfo => self.token_info(call),
            RestEndpoint::DataCenterUrls => self.datacenter_urls(call),
            // The server hands M2M requests to `handle_m2m`.
            RestEndpoint::M2mToken
            | RestEndpoint::M2mCertificates
            | RestEndpoint::M2mCertificateAdd
            | RestEndpoint::M2mCertificateRevoke => {
                Ok(Reply::error(404, "NOT_FOUND", "No such endpoint."))
            }
        };
        let reply = match outcome {
            Ok(reply) => reply,
            Err(failure) => {
                bump(&mut self.stats.refused, failure.reason());
                if matches!(failure, Failure::Unauthorized { .. }) {
                    self.record_failed_login(call, failure.reason());
                }
                failure.into_reply()
            }
        };
        match fault {
            Some(fault) => self.fault_action(fault),
            None => Action::Answer(reply),
        }
    }

    /// Draws the request's fault and counts it: `Err` with what to do instead when it strikes
    /// before processing, else the fault (if any) that replaces the answer afterwards.
    fn draw_fault(&mut self, endpoint: RestEndpoint) -> Result<Option<Fault>, Action> {
        let fault = self.faults.draw(endpoint, &mut self.fault_rng);
        if let Some(fault) = fault {
            bump(&mut self.stats.faults_injected, fault.kind.name());
            if !fault.after_processing {
                return Err(self.fault_action(fault));
            }
            bump(&mut self.stats.faults_after_processing, fault.kind.name());
        }
        Ok(fault)
    }

    /// The account an M2M request is for (uppercase), for its concurrency slot.
    pub fn m2m_account(&self, call: &M2mCall) -> Option<String> {
        self.m2m.account_of(call)
    }

    /// Processes an M2M request [`admit`](State::admit) let through, with the same faults as
    /// the `/rest/*` endpoints.
    pub fn handle_m2m(&mut self, call: &M2mCall) -> Action {
        let fault = match self.draw_fault(call.endpoint) {
            Ok(fault) => fault,
            Err(action) => return action,
        };
        let now = self.now();
        let reply = match self.m2m.handle(call, now) {
            Ok(reply) => reply,
            Err(refusal) => {
                bump(&mut self.stats.refused, refusal.reason);
                if let Some(login) = refusal.failed_login {
                    let failed = FailedLogin {
                        at: self.now_utc(),
                        account: login.account,
                        endpoint: call.endpoint.name().to_string(),
                        scheme: login.scheme.to_string(),
                        email: None,
                        token_id: None,
                        client_id: login.client_id,
                        certificate_id: login.certificate_id,
                        reason: refusal.reason.to_string(),
                    };
                    self.push_failed_login(failed);
                }
                refusal.reply
            }
        };
        match fault {
            Some(fault) => self.fault_action(fault),
            None => Action::Answer(reply),
        }
    }

    pub fn upload_certificate(&mut self, request: &AdminCertificate) -> Result<String, M2mError> {
        let now = self.now();
        self.m2m.add_certificate(request, None, now)
    }

    pub fn m2m_answers(&self) -> M2mAnswers {
        self.m2m.answers()
    }

    pub fn set_m2m_answers(&mut self, answers: M2mAnswers) {
        self.m2m.set_answers(answers)
    }

    fn push_failed_login(&mut self, failed: FailedLogin) {
        if self.failed_logins.len() >= FAILED_LOGIN_MEMORY {
            self.failed_logins.pop_front();
        }
        self.failed_logins.push_back(failed);
        self.stats.failed_logins += 1;
    }

    /// Keeps what the Login Audit Trail would show of a refused login, and nothing secret.
    fn record_failed_login(&mut self, call: &RestCall, reason: &'static str) {
        let (scheme, email, token_id) = match &call.auth {
            Authorization::Nlauth(login) => (
                "nlauth",
                login.as_ref().ok().map(|login| login.email.clone()),
                None,
            ),
            Authorization::OAuth(signed) => (
                "oauth",
                None,
                signed
                    .as_ref()
                    .ok()
                    .and_then(|signed| signed.header.get("oauth_token"))
                    .map(str::to_string),
            ),
            Authorization::Missing | Authorization::Unsupported => ("none", None, None),
        };
        let failed = FailedLogin {
            at: self.now_utc(),
            account: call.account().unwrap_or_default(),
            endpoint: call.endpoint.name().to_string(),
            scheme: scheme.to_string(),
            email,
            token_id,
            client_id: None,
            certificate_id: None,
            reason: reason.to_string(),
        };
        self.push_failed_login(failed);
    }

    fn issue_token(&mut self, call: &RestCall) -> Result<Reply, Failure> {
        let who = match &call.auth {
            Authorization::Nlauth(login) => self.nlauth_login(login, RestEndpoint::IssueToken)?,
            Authorization::Missing => return Err(Failure::login(reason::AUTHORIZATION_MISSING)),
            _ => return Err(Failure::login(reason::AUTHORIZATION_UNSUPPORTED)),
        };
        let consumer_key = wire::query_value(&call.query, "consumerKey")
            .ok_or(Failure::missing_parameter("consumerKey is required"))?;
        let require_approval = self.accounts[&who.account].require_approval;
        let integration = self
            .integrations
            .get_mut(&consumer_key)
            .filter(|i| i.account == who.account)
            .ok_or_else(|| Failure::nlauth_announced(reason::CONSUMER_KEY_UNKNOWN, &who.account))?;
        if integration.state == IntegrationState::Blocked {
            return Err(Failure::nlauth_announced(
                reason::CONSUMER_KEY_REFUSED,
                &who.account,
            ));
        }
        if !integration.installed {
            integration.installed = true;
            if require_approval && integration.state == IntegrationState::Enabled {
                integration.state = IntegrationState::WaitingForApproval;
            }
        }
        let name = wire::query_value(&call.query, "name")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{} {} {}", integration.name, who.email, who.role_id));
        let token_id = random_hex_64();
        let secret = SecretString::from(random_hex_64());
        let body = json!({"tokenId": token_id, "tokenSecret": secret.expose_secret()});
        self.insert_token(
            token_id,
            secret,
            &who.account,
            &who.entity_id,
            &who.role_id,
            &consumer_key,
            name,
        );
        Ok(Reply::json(200, &body))
    }

    fn token_info(&mut self, call: &RestCall) -> Result<Reply, Failure> {
        let token_id = match &call.auth {
            Authorization::OAuth(signed) => self.verify_oauth(signed)?,
            Authorization::Missing => return Err(Failure::login(reason::AUTHORIZATION_MISSING)),
            _ => return Err(Failure::login(reason::AUTHORIZATION_UNSUPPORTED)),
        };
        let token = &self.tokens[&token_id];
        let account = &self.accounts[&token.account];
        let role_name = account
            .roles
            .get(&token.role_id)
            .map(|r| r.name.as_str())
            .unwrap_or_default();
        Ok(Reply::json(
            200,
            &json!({
                "companyName": account.company_name,
                "companyId": account.id,
                "roleName": role_name,
                "roleId": token.role_id,
                "entityId": token.entity_id,
            }),
        ))
    }

    fn revoke_token(&mut self, call: &RestCall) -> Result<Reply, Failure> {
        let params = |query: &[(Vec<u8>, Vec<u8>)]| -> Result<(String, String), Failure> {
            let missing = Failure::missing_parameter("consumerKey and token are required");
            match (
                wire::query_value(query, "consumerKey"),
                wire::query_value(query, "token"),
            ) {
                (Some(ck), Some(token)) => Ok((ck, token)),
                _ => Err(missing),
            }
        };
        match &call.auth {
            Authorization::OAuth(signed) => {
                let signer_id = self.verify_oauth(signed)?;
                let (consumer_key, target) = params(&call.query)?;
                let signer = &self.tokens[&signer_id];
                let (account, entity) = (signer.account.clone(), signer.entity_id.clone());
                let revocable = self.tokens.get(&target).is_some_and(|t| {
                    t.is_active()
                        && t.account == account
                        && t.entity_id == entity
                        && t.consumer_key == consumer_key
                });
                if !revocable {
                    return Err(Failure::oauth(reason::TOKEN_REJECTED, &account));
                }
                self.revoke(&target);
            }
            Authorization::Nlauth(login) => {
                let who = self.nlauth_login(login, RestEndpoint::RevokeToken)?;
                let (consumer_key, target) = params(&call.query)?;
                let known_key = self
                    .integrations
                    .get(&consumer_key)
                    .is_some_and(|i| i.account == who.account);
                if !known_key {
                    return Err(Failure::nlauth_announced(
                        reason::CONSUMER_KEY_UNKNOWN,
                        &who.account,
                    ));
                }
                let revocable = self.tokens.get(&target).is_some_and(|t| {
                    t.is_active()
                        && t.account == who.account
                        && t.entity_id == who.entity_id
                        && t.consumer_key == consumer_key
                });
                if !revocable {
                    return Err(nlauth_revoke_refusal());
                }
                self.revoke(&target);
            }
            Authorization::Missing => return Err(Failure::login(reason::AUTHORIZATION_MISSING)),
            Authorization::Unsupported => {
                return Err(Failure::login(reason::AUTHORIZATION_UNSUPPORTED));
            }
        }
        Ok(Reply::json(200, &json!({"message": "Token revoked."})))
    }

    fn datacenter_urls(&mut self, call: &RestCall) -> Result<Reply, Failure> {
        let account = wire::query_value(&call.query, "account")
            .ok_or(Failure::missing_parameter("account is required"))?;
        if let Some(refusal) = datacenter_account_refusal(&account) {
            return Err(refusal);
        }
        if !self.accounts.contains_key(&account.to_ascii_uppercase()) {
            return Err(Failure::BadRequest {
                reason: reason::DATACENTER_UNKNOWN_ACCOUNT,
                code: "INVALID_REQUEST",
                message: "Unknown account.",
            });
        }
        Ok(Reply::json(
            200,
            &json!({
                "restDomain": call.base_url,
                "webservicesDomain": call.base_url,
                "systemDomain": call.base_url,
            }),
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Authentication

    /// NLAuth login checks, in order: account and TBA, user, password, role held, role usable
    /// on the RESTlet domain, permission, 2FA.
    fn nlauth_login(
        &self,
        login: &Result<NlauthLogin, Malformed>,
        endpoint: RestEndpoint,
    ) -> Result<LoggedIn, Failure> {
        let login = login
            .as_ref()
            .map_err(|_| Failure::login(reason::NLAUTH_MALFORMED))?;
        let account = self
            .accounts
            .get(&login.account.to_ascii_uppercase())
            .filter(|a| a.tba_enabled)
            .ok_or_else(|| Failure::nlauth_announced(reason::FEATURE_DISABLED, &login.account))?;
        let user = account
            .users
            .get(&login.email.to_lowercase())
            .ok_or(Failure::login(reason::NLAUTH_UNKNOWN_USER))?;
        if !secrets_equal(
            user.password.expose_secret(),
            login.password.expose_secret(),
        ) {
            return Err(Failure::login(reason::NLAUTH_WRONG_PASSWORD));
        }
        let role = user
            .roles
            .contains(&login.role)
            .then(|| account.roles.get(&login.role))
            .flatten()
            .ok_or(Failure::login(reason::NLAUTH_ROLE_NOT_HELD))?;
        if role.web_services_only {
            return Err(Failure::login(reason::NLAUTH_WEB_SERVICES_ONLY));
        }
        if !role.permissions.contains(PERMISSION_USER_ACCESS_TOKENS) {
            return Err(Failure::login(reason::NLAUTH_PERMISSION_MISSING));
        }
        if let (true, Some(totp)) = (role.require_2fa, &user.totp) {
            if endpoint != RestEndpoint::IssueToken {
                return Err(Failure::login(reason::NLAUTH_2FA_ISSUETOKEN_ONLY));
            }
            let code = login
                .otp
                .as_deref()
                .ok_or(Failure::login(reason::NLAUTH_OTP_MISSING))?;
            let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
            if !well_formed || totp.check(code, self.now().max(0) as u64).is_none() {
                return Err(Failure::login(reason::NLAUTH_OTP_INVALID));
            }
        }
        Ok(LoggedIn {
            account: account.id.clone(),
            entity_id: user.entity_id.clone(),
            role_id: role.id.clone(),
            email: user.email.clone(),
        })
    }

    /// OAuth 1.0 TBA checks, in order; returns the signing token's id.
    fn verify_oauth(
        &mut self,
        signed: &Result<SignedRequest, Malformed>,
    ) -> Result<String, Failure> {
        let signed = signed
            .as_ref()
            .map_err(|_| Failure::oauth(reason::PARAMETER_REJECTED, ""))?;
        let header = &signed.header;
        let realm = header.realm.as_deref().unwrap_or_default();
        let refuse = |reason| Failure::oauth(reason, realm);
        if header.realm.is_none() {
            return Err(refuse(reason::PARAMETER_ABSENT));
        }
        let account_id = realm.to_ascii_uppercase();
        if !self
            .accounts
            .get(&account_id)
            .is_some_and(|a| a.tba_enabled)
        {
            return Err(refuse(reason::FEATURE_DISABLED));
        }
        let (Some(consumer_key), Some(token_id), Some(method), Some(timestamp), Some(nonce)) = (
            header.get("oauth_consumer_key"),
            header.get("oauth_token"),
            header.get("oauth_signature_method"),
            header.get("oauth_timestamp"),
            header.get("oauth_nonce"),
        ) else {
            return Err(refuse(reason::PARAMETER_ABSENT));
        };
        let Some(signature) = header.signature.as_deref() else {
            return Err(refuse(reason::PARAMETER_ABSENT));
        };
        if header.get("oauth_version").is_some_and(|v| v != "1.0") {
            return Err(refuse(reason::VERSION_REJECTED));
        }
        if method != "HMAC-SHA256" {
            return Err(refuse(reason::SIGNATURE_METHOD_REJECTED));
        }
        let integration = self
            .integrations
            .get(consumer_key)
            .filter(|i| i.account == account_id)
            .ok_or_else(|| refuse(reason::CONSUMER_KEY_UNKNOWN))?;
        if integration.state != IntegrationState::Enabled {
            return Err(refuse(reason::CONSUMER_KEY_REFUSED));
        }
        let token = self
            .tokens
            .get(token_id)
            .filter(|t| t.is_active() && t.consumer_key == consumer_key && t.account == account_id)
            .ok_or_else(|| refuse(reason::TOKEN_REJECTED))?;
        let timestamp: i64 = timestamp
            .parse()
            .map_err(|_| refuse(reason::TIMESTAMP_REFUSED))?;
        if (timestamp - self.now()).abs() > TIMESTAMP_WINDOW_SECS {
            return Err(refuse(reason::TIMESTAMP_REFUSED));
        }
        if nonce.chars().count() < MIN_NONCE_CHARS {
            return Err(refuse(reason::NONCE_REJECTED));
        }
        if !wire::signature_matches(
            &signed.base_string,
            &integration.secret,
            &token.secret,
            signature,
        ) {
            return Err(refuse(reason::SIGNATURE_INVALID));
        }
        if !self
            .nonces
            .first_use(consumer_key, token_id, timestamp, nonce)
        {
            return Err(refuse(reason::NONCE_USED));
        }
        Ok(token_id.to_string())
    }

    // -----------------------------------------------------------------------------------------
    // Faults

    fn fault_action(&mut self, fault: Fault) -> Action {
        let limit = self
            .limits
            .concurrency_limit
            .unwrap_or(ASSUMED_CONCURRENCY_LIMIT);
        let rng = &mut self.fault_rng;
        match fault.kind {
            FaultKind::ServerError => {
                let status = if rng.random_bool(0.5) { 500 } else { 503 };
                let reply = if rng.random_bool(0.5) {
                    Reply::raw(
                        status,
                        "text/html",
                        "<html><head><title>Service Unavailable</title></head>\
                         <body><h1>NetSuite is undergoing maintenance</h1></body></html>",
                    )
                } else {
                    Reply::error(
                        status,
                        "UNEXPECTED_ERROR",
                        "An unexpected error occurred. Error Id: sim",
                    )
                };
                Action::Answer(reply)
            }
            FaultKind::RateLimit => Action::Answer(Reply::request_limit_exceeded(400, limit)),
            FaultKind::RateLimit429 => {
                let mut reply = Reply::request_limit_exceeded(429, limit);
                reply.retry_after = Some(1);
                Action::Answer(reply)
            }
            FaultKind::Timeout => {
                Action::HoldThenClose(Duration::from_millis(self.faults.timeout_hold_ms))
            }
            FaultKind::Reset => Action::Reset,
            FaultKind::Garbage => {
                let reply = match rng.random_range(0..3) {
                    0 => Reply::raw(
                        200,
                        "text/html",
                        "<!DOCTYPE html><html><body>Redirecting to login...</body></html>",
                    ),
                    1 => Reply::raw(200, "application/json", r#"{"tokenId":"4f1e"#),
                    _ => {
                        let mut bytes = vec![0u8; 64];
                        rng.fill_bytes(&mut bytes);
                        Reply::raw(200, "application/json", bytes)
                    }
                };
                Action::Answer(reply)
            }
            FaultKind::SoapFault => {
                Action::Answer(Reply::raw(200, "text/xml; charset=utf-8", SOAP_FAULT_BODY))
            }
            FaultKind::LoginPage => {
                Action::Answer(Reply::raw(200, "text/html; charset=utf-8", LOGIN_PAGE_BODY))
            }
        }
    }

    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    pub fn set_faults(&mut self, faults: Faults) -> Result<(), FaultsError> {
        faults.validate()?;
        if let Some(seed) = faults.rng_seed {
            self.fault_rng = StdRng::seed_from_u64(seed);
        }
        self.faults = faults;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Tokens and control

    #[allow(clippy::too_many_arguments)]
    fn insert_token(
        &mut self,
        token_id: String,
        secret: SecretString,
        account: &str,
        entity_id: &str,
        role_id: &str,
        consumer_key: &str,
        name: String,
    ) {
        self.next_serial += 1;
        let token = Token {
            serial: self.next_serial,
            account: account.to_string(),
            secret,
            name,
            consumer_key: consumer_key.to_string(),
            entity_id: entity_id.to_string(),
            role_id: role_id.to_string(),
            revoked_at: None,
            issued_at: self.now_utc(),
        };
        self.tokens.insert(token_id, token);
    }

    fn revoke(&mut self, token_id: &str) {
        let now = self.now_utc();
        if let Some(token) = self.tokens.get_mut(token_id) {
            token.revoked_at.get_or_insert(now);
        }
    }

    pub fn inspect(&self) -> Inspection {
        let mut tokens: Vec<(&String, &Token)> = self.tokens.iter().collect();
        tokens.sort_by_key(|(_, t)| t.serial);
        let mut integrations: Vec<IntegrationView> = self
            .integrations
            .iter()
            .map(|(key, i)| IntegrationView {
                account: i.account.clone(),
                name: i.name.clone(),
                consumer_key: key.clone(),
                state: i.state,
                installed: i.installed,
            })
            .collect();
        integrations.sort_by(|a, b| (&a.account, &a.name).cmp(&(&b.account, &b.name)));
        Inspection {
            tokens: tokens
                .into_iter()
                .map(|(id, t)| TokenView {
                    account: t.account.clone(),
                    token_id: id.clone(),
                    name: t.name.clone(),
                    consumer_key: t.consumer_key.clone(),
                    entity_id: t.entity_id.clone(),
                    role_id: t.role_id.clone(),
                    status: if t.is_active() {
                        TokenStatus::Active
                    } else {
                        TokenStatus::Revoked
                    },
                    issued_at: t.issued_at,
                    revoked_at: t.revoked_at,
                })
                .collect(),
            integrations,
            refused: to_owned_map(&self.stats.refused),
            requests: to_owned_map(&self.stats.requests),
            faults_injected: to_owned_map(&self.stats.faults_injected),
            faults_after_processing: to_owned_map(&self.stats.faults_after_processing),
            in_flight: self.in_flight.snapshot(),
            failed_logins: self.failed_logins.iter().cloned().collect(),
            failed_login_count: self.stats.failed_logins,
            certificates: self.m2m.views(),
            access_tokens_issued: self.m2m.access_tokens_issued,
        }
    }

    pub fn set_integration_state(
        &mut self,
        consumer_key: &str,
        state: IntegrationState,
    ) -> Result<(), ControlError> {
        let integration = self
            .integrations
            .get_mut(consumer_key)
            .ok_or(ControlError::UnknownConsumerKey)?;
        integration.state = state;
        integration.installed = true;
        Ok(())
    }

    pub fn create_token(
        &mut self,
        request: &HandMadeToken,
    ) -> Result<(String, SecretString), ControlError> {
        let account_id = request.account.to_ascii_uppercase();
        let account = self
            .accounts
            .get(&account_id)
            .ok_or_else(|| ControlError::UnknownAccount(request.account.clone()))?;
        let user = account
            .users
            .get(&request.email.to_lowercase())
            .ok_or_else(|| ControlError::UnknownUser {
                account: account_id.clone(),
                email: request.email.clone(),
            })?;
        if !user.roles.contains(&request.role) {
            return Err(ControlError::RoleNotHeld {
                email: request.email.clone(),
                role: request.role.clone(),
            });
        }
        let entity_id = user.entity_id.clone();
        let known_key = self
            .integrations
            .get(&request.consumer_key)
            .is_some_and(|i| i.account == account_id);
        if !known_key {
            return Err(ControlError::ConsumerKeyNotInAccount(account_id));
        }
        let token_id = random_hex_64();
        let secret = SecretString::from(random_hex_64());
        self.insert_token(
            token_id.clone(),
            secret.clone(),
            &account_id,
            &entity_id,
            &request.role,
            &request.consumer_key,
            request.name.clone(),
        );
        Ok((token_id, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_memory_refuses_a_repeat_only_for_the_same_key() {
        let mut memory = NonceMemory::new();
        assert!(memory.first_use("ck", "t", 1, "abcdef"));
        assert!(!memory.first_use("ck", "t", 1, "abcdef"));
        assert!(memory.first_use("ck", "t", 2, "abcdef"));
        assert!(memory.first_use("ck", "u", 1, "abcdef"));
    }

    #[test]
    fn failed_logins_keep_the_last_thousand_and_count_them_all() {
        let mut state = State::from_seed(Seed::demo()).unwrap();
        let call = |n: usize| RestCall {
            endpoint: RestEndpoint::TokenInfo,
            auth: Authorization::read(
                Some(&format!(
                    r#"OAuth realm="{}", oauth_token="t{n}""#,
                    super::super::seed::demo::ACCOUNT.to_lowercase()
                )),
                "GET",
                "http://127.0.0.1/rest/tokeninfo",
                &[],
            ),
            query: Vec::new(),
            base_url: String::new(),
        };
        for n in 0..FAILED_LOGIN_MEMORY + 5 {
            assert!(matches!(
                state.handle_rest(&call(n)),
                Action::Answer(Reply { status: 401, .. })
            ));
        }
        let seen = state.inspect();
        assert_eq!(seen.failed_login_count, FAILED_LOGIN_MEMORY as u64 + 5);
        assert_eq!(seen.failed_logins.len(), FAILED_LOGIN_MEMORY);
        let first = &seen.failed_logins[0];
        assert_eq!(first.token_id.as_deref(), Some("t5"));
        assert_eq!(first.account, super::super::seed::demo::ACCOUNT);
        assert_eq!(first.scheme, "oauth");
        assert_eq!(first.reason, reason::PARAMETER_ABSENT);
        assert_eq!(
            seen.failed_logins_in(&super::super::seed::demo::ACCOUNT.to_lowercase())
                .count(),
            FAILED_LOGIN_MEMORY
        );
        assert_eq!(
            seen.failed_logins.last().unwrap().token_id.as_deref(),
            Some("t1004")
        );
    }

    #[test]
    fn a_request_without_a_login_is_a_failed_login_of_no_scheme() {
        let mut state = State::from_seed(Seed::demo()).unwrap();
        let call = RestCall {
            endpoint: RestEndpoint::IssueToken,
            auth: Authorization::read(Some("Basic dXNlcjpwdw=="), "GET", "http://x/", &[]),
            query: Vec::new(),
            base_url: String::new(),
        };
        state.handle_rest(&call);
        let seen = state.inspect();
        let failed = &seen.failed_logins[0];
        assert_eq!(
            (
                failed.scheme.as_str(),
                failed.account.as_str(),
                failed.reason.as_str()
            ),
            ("none", "", reason::AUTHORIZATION_UNSUPPORTED)
        );
        assert_eq!((&failed.email, &failed.token_id), (&None, &None));
    }

    #[test]
    fn hand_made_tokens_need_a_known_user_role_and_key() {
        let mut state = State::from_seed(Seed::demo()).unwrap();
        let good = HandMadeToken {
            account: "1234567_sb1".into(),
            email: super::super::seed::demo::EMAIL.to_uppercase(),
            role: super::super::seed::demo::ROLE_ID.into(),
            consumer_key: super::super::seed::demo::CONSUMER_KEY.into(),
            name: "by hand".into(),
        };
        let (id, secret) = state.create_token(&good).unwrap();
        assert_eq!(secret.expose_secret().len(), 64);
        let view = state.inspect();
        assert_eq!(view.token(&id).unwrap().name, "by hand");
        let wrong_role = HandMadeToken {
            role: "3".into(),
            ..good.clone()
        };
        assert!(matches!(
            state.create_token(&wrong_role),
            Err(ControlError::RoleNotHeld { .. })
        ));
        let wrong_key = HandMadeToken {
            consumer_key: "nope".into(),
            ..good
        };
        assert!(matches!(
            state.create_token(&wrong_key),
            Err(ControlError::ConsumerKeyNotInAccount(_))
        ));
    }
}
