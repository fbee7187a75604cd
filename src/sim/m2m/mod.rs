//! OAuth 2.0 client credentials (machine to machine) in the simulator, from
//! `shared/netsuite-oauth2-m2m.md`: integration records with a client ID, their certificates
//! (one per mapping of entity and role), the token endpoint and the certificate rotation
//! endpoint.
//!
//! - `POST /services/rest/auth/oauth2/v1/token` ([`token`]): a client assertion (JWT) signed
//!   with an uploaded certificate's key buys a one-hour bearer token ([`assertion`] checks it).
//! - `GET|POST /services/rest/auth/oauth2/v1/clients/<client ID>/certificates` and
//!   `POST .../certificates/<certificate ID>/revoke` ([`certificates`]): list, add, revoke, with
//!   such a bearer token.
//!
//! Choices where the protocol page is silent, each kept in one place:
//! - every refused assertion is `invalid_client` (RFC 7523 section 3.2 for client assertions);
//!   `invalid_grant` is not used ([`token`]);
//! - the shapes of the certificate answers and errors ([`certificates`]), and the POST answer
//!   with or without the new ID ([`AddAnswer`]);
//! - "active" means not revoked: an expired certificate nobody revoked still counts towards
//!   the five ([`MAX_ACTIVE_CERTIFICATES`]);
//! - the two-year cap counts 24 calendar months from `notBefore` ([`certificate`]);
//! - P-521 certificates upload, but their ES512 assertions are refused: the verifying crate
//!   (jsonwebtoken) has no ES512.

mod assertion;
mod certificate;
mod certificates;
mod token;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use certificate::{CertificateError, KeyType};

use super::faults::RestEndpoint;
use super::reply::Reply;
use super::seed::{PERMISSION_MANAGE_OWN_OAUTH2_CERTIFICATES, SeedAccount, SeedError};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/services/rest/auth/oauth2/v1/token";
/// Where the certificate endpoints start: `<this><client ID>/certificates`.
pub const CLIENTS_PATH: &str = "/services/rest/auth/oauth2/v1/clients/";
/// What NetSuite (2026.1) allows per integration record; revoked ones do not count.
pub const MAX_ACTIVE_CERTIFICATES: usize = 5;
/// How long an access token lives, in seconds (`expires_in`).
pub const ACCESS_TOKEN_LIFETIME_SECS: i64 = 3600;

/// Why an M2M request was refused: the names counted in `Inspection::refused` and kept in a
/// failed login's `reason`.
pub mod reason {
    pub const GRANT_TYPE_MISSING: &str = "m2m_grant_type_missing";
    pub const GRANT_TYPE_UNSUPPORTED: &str = "m2m_grant_type_unsupported";
    pub const FORM_INVALID: &str = "m2m_form_invalid";
    pub const ASSERTION_TYPE_INVALID: &str = "m2m_assertion_type_invalid";
    pub const ASSERTION_MISSING: &str = "m2m_assertion_missing";
    pub const ASSERTION_MALFORMED: &str = "m2m_assertion_malformed";
    pub const ALG_REFUSED: &str = "m2m_alg_refused";
    pub const KID_UNKNOWN: &str = "m2m_kid_unknown";
    pub const CERTIFICATE_REVOKED: &str = "m2m_certificate_revoked";
    pub const CERTIFICATE_EXPIRED: &str = "m2m_certificate_expired";
    pub const CERTIFICATE_NOT_YET_VALID: &str = "m2m_certificate_not_yet_valid";
    pub const SIGNATURE_INVALID: &str = "m2m_signature_invalid";
    pub const ISS_WRONG: &str = "m2m_iss_wrong";
    pub const AUD_WRONG: &str = "m2m_aud_wrong";
    pub const LIFETIME_TOO_LONG: &str = "m2m_lifetime_too_long";
    pub const EXPIRED: &str = "m2m_assertion_expired";
    pub const IAT_IN_FUTURE: &str = "m2m_iat_in_future";
    pub const TIMES_INVALID: &str = "m2m_times_invalid";
    pub const SCOPE_INVALID: &str = "m2m_scope_invalid";

    pub const BEARER_MISSING: &str = "m2m_bearer_missing";
    pub const BEARER_INVALID: &str = "m2m_bearer_invalid";
    pub const BEARER_EXPIRED: &str = "m2m_bearer_expired";
    pub const BEARER_SCOPE: &str = "m2m_bearer_scope_missing";
    pub const OTHER_CLIENT: &str = "m2m_other_client";
    pub const PERMISSION_MISSING: &str = "m2m_permission_missing";
    pub const BODY_INVALID: &str = "m2m_body_invalid";
    pub const MAPPING_UNKNOWN: &str = "m2m_mapping_unknown";
    pub const CERTIFICATE_REFUSED: &str = "m2m_certificate_refused";
    pub const TOO_MANY_ACTIVE: &str = "m2m_too_many_active_certificates";
    pub const CERTIFICATE_UNKNOWN: &str = "m2m_certificate_unknown";
}

/// What `POST .../certificates` answers on success. Not published; a rotator must cope with an
/// answer that does not name the new certificate (then it lists before and after).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddAnswer {
    /// 200 with the new certificate's entry, `id` included (the listing's entry shape).
    #[default]
    WithId,
    /// 200 with `{"status": "success"}`: no ID.
    WithoutId,
    /// 204 with no body.
    NoContent,
}

/// Answer shapes of the M2M endpoints, as `PUT /sim/m2m/answers` takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct M2mAnswers {
    pub add_answer: AddAnswer,
}

/// A certificate uploaded by an administrator in the NetSuite UI (Setup > Integration > Manage
/// Authentication > OAuth 2.0 Client Credentials (M2M) Setup): the bootstrap of a mapping.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminCertificate {
    pub client_id: String,
    pub entity: String,
    pub role: String,
    /// The PEM certificate (public part only).
    pub pem: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    Active,
    Revoked,
}

/// A certificate as [`Inspection`](crate::sim::Inspection) shows it. Only public parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertificateView {
    pub id: String,
    pub client_id: String,
    pub account: String,
    pub entity: String,
    pub role: String,
    pub key_type: KeyType,
    pub status: CertificateStatus,
    pub not_before: DateTime<Utc>,
    /// As NetSuite keeps it: at most two years after `not_before`.
    pub not_after: DateTime<Utc>,
    /// As the certificate says (later than `not_after` when it was capped).
    pub not_after_as_sent: DateTime<Utc>,
    pub uploaded_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl CertificateView {
    pub fn is_active(&self) -> bool {
        self.status == CertificateStatus::Active
    }
}

/// Why a certificate could not be added (by an administrator, a seed or the endpoint).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum M2mError {
    #[error("client_id: no integration record in the simulator has client ID {0:?}")]
    UnknownClient(String),
    #[error(
        "entity {entity:?} with role {role:?}: not a user of account {account} holding that role"
    )]
    NotMapped {
        account: String,
        entity: String,
        role: String,
    },
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error(
        "client {client_id} already has {MAX_ACTIVE_CERTIFICATES} active certificates, the most \
         NetSuite allows per integration record: revoke one before adding another"
    )]
    TooManyActive { client_id: String },
    #[error("certificate ID {0:?} is already in use")]
    DuplicateId(String),
}

// ---------------------------------------------------------------------------------------------
// The world

struct Client {
    account: String,
}

/// Who may be mapped in an account, read from the seed: (entity, role) pairs users hold, and
/// the roles with "Manage own OAuth 2.0 Client Credentials certificates".
#[derive(Default)]
struct Directory {
    mappings: HashSet<(String, String)>,
    managers: HashSet<String>,
}

struct Certificate {
    serial: u64,
    client_id: String,
    account: String,
    entity: String,
    role: String,
    parsed: certificate::ParsedCertificate,
    uploaded_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl Certificate {
    fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Restlets,
    RestWebServices,
    SuiteAnalytics,
}

impl Scope {
    fn from_name(name: &str) -> Option<Scope> {
        match name {
            "restlets" => Some(Scope::Restlets),
            "rest_webservices" => Some(Scope::RestWebServices),
            "suite_analytics" => Some(Scope::SuiteAnalytics),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Restlets => "restlets",
            Scope::RestWebServices => "rest_webservices",
            Scope::SuiteAnalytics => "suite_analytics",
        }
    }
}

struct AccessToken {
    client_id: String,
    /// The role of the mapping whose certificate bought the token.
    role: String,
    scopes: Vec<Scope>,
    expires_at: i64,
}

/// The M2M part of the simulator's state; lives inside `state::State`, under its lock.
pub(crate) struct M2mWorld {
    /// By client ID.
    clients: HashMap<String, Client>,
    /// By certificate ID.
    certificates: HashMap<String, Certificate>,
    /// By uppercase account id.
    directory: HashMap<String, Directory>,
    /// By the access token itself.
    access_tokens: HashMap<String, AccessToken>,
    next_serial: u64,
    answers: M2mAnswers,
    /// Signs the access tokens (HS256): they are JWTs, as NetSuite's are.
    signing_secret: [u8; 32],
    pub access_tokens_issued: u64,
}

/// A request to an M2M endpoint, read before the lock is taken.
pub(crate) struct M2mCall {
    pub endpoint: RestEndpoint,
    /// From the path of the certificate endpoints.
    pub client_id: Option<String>,
    pub certificate_id: Option<String>,
    /// `?c=<account>`, tolerated as Oracle's samples send it.
    pub account_param: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The token endpoint's URL as this client reached the simulator: an accepted `aud`.
    pub token_url: String,
}

/// What the server learns from a path under `/services/rest/auth/oauth2/v1/`.
pub(crate) enum Route {
    Endpoint {
        endpoint: RestEndpoint,
        client_id: Option<String>,
        certificate_id: Option<String>,
    },
    /// A known path with the wrong method: answer 405 with this `Allow`.
    MethodNotAllowed(&'static str),
}

/// Maps a method and path to an M2M endpoint; `None` when the path is none of them.
pub(crate) fn route(method: &hyper::Method, path: &str) -> Option<Route> {
    use hyper::Method;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    if path == TOKEN_PATH {
        return Some(if method == Method::POST {
            Route::Endpoint {
                endpoint: RestEndpoint::M2mToken,
                client_id: None,
                certificate_id: None,
            }
        } else {
            Route::MethodNotAllowed("POST")
        });
    }
    let rest = path.strip_prefix(CLIENTS_PATH)?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        [client, "certificates"] if !client.is_empty() => Some(match *method {
            Method::GET => Route::Endpoint {
                endpoint: RestEndpoint::M2mCertificates,
                client_id: Some(decode(client)),
                certificate_id: None,
            },
            Method::POST => Route::Endpoint {
                endpoint: RestEndpoint::M2mCertificateAdd,
                client_id: Some(decode(client)),
                certificate_id: None,
            },
            _ => Route::MethodNotAllowed("GET, POST"),
        }),
        [client, "certificates", id, "revoke"] if !client.is_empty() && !id.is_empty() => {
            Some(if method == Method::POST {
                Route::Endpoint {
                    endpoint: RestEndpoint::M2mCertificateRevoke,
                    client_id: Some(decode(client)),
                    certificate_id: Some(decode(id)),
                }
            } else {
                Route::MethodNotAllowed("POST")
            })
        }
        _ => None,
    }
}

/// A refused M2M request: the answer, the reason counted, and whether it is a failed login.
pub(crate) struct Refusal {
    pub reason: &'static str,
    pub reply: Reply,
    pub failed_login: Option<Box<FailedM2mLogin>>,
}

/// What the Login Audit Trail keeps of a refused M2M login: never the assertion or a token.
pub(crate) struct FailedM2mLogin {
    pub account: String,
    /// `client_credentials` (token endpoint) or `bearer` (certificate endpoints).
    pub scheme: &'static str,
    /// As sent (`iss`), or the client of the path.
    pub client_id: Option<String>,
    /// The assertion's `kid`, as sent.
    pub certificate_id: Option<String>,
}

fn utc(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// A random ID in base64url (no padding), 32 characters.
fn random_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl M2mWorld {
    pub fn new() -> M2mWorld {
        let mut signing_secret = [0u8; 32];
        rand::rng().fill_bytes(&mut signing_secret);
        M2mWorld {
            clients: HashMap::new(),
            certificates: HashMap::new(),
            directory: HashMap::new(),
            access_tokens: HashMap::new(),
            next_serial: 0,
            answers: M2mAnswers::default(),
            signing_secret,
            access_tokens_issued: 0,
        }
    }

    /// Takes an account's users, roles, M2M clients and their certificates from the seed.
    pub fn add_account(&mut self, seeded: &SeedAccount, now: i64) -> Result<(), SeedError> {
        let account = seeded.id.to_ascii_uppercase();
        let directory = self.directory.entry(account.clone()).or_default();
        for user in &seeded.users {
            for role in &user.roles {
                directory
                    .mappings
                    .insert((user.entity_id.clone(), role.clone()));
            }
        }
        for role in &seeded.roles {
            if role
                .permissions
                .iter()
                .any(|p| p == PERMISSION_MANAGE_OWN_OAUTH2_CERTIFICATES)
            {
                directory.managers.insert(role.id.clone());
            }
        }
        for client in &seeded.m2m_clients {
            self.clients.insert(
                client.client_id.clone(),
                Client {
                    account: account.clone(),
                },
            );
            for cert in &client.certificates {
                let admin = AdminCertificate {
                    client_id: client.client_id.clone(),
                    entity: cert.entity.clone(),
                    role: cert.role.clone(),
                    pem: cert.pem.clone(),
                };
                self.add_certificate(&admin, cert.certificate_id.clone(), now)
                    .map_err(|e| {
                        SeedError::Invalid(format!(
                            "account {account}: M2M client {:?}: certificate: {e}",
                            client.name
                        ))
                    })?;
            }
        }
        Ok(())
    }

    /// Adds a certificate for a mapping, as NetSuite checks an upload; returns its ID.
    pub fn add_certificate(
        &mut self,
        request: &AdminCertificate,
        id: Option<String>,
        now: i64,
    ) -> Result<String, M2mError> {
        let client = self
            .clients
            .get(&request.client_id)
            .ok_or_else(|| M2mError::UnknownClient(request.client_id.clone()))?;
        let account = client.account.clone();
        let mapped = self.directory.get(&account).is_some_and(|d| {
            d.mappings
                .contains(&(request.entity.clone(), request.role.clone()))
        });
        if !mapped {
            return Err(M2mError::NotMapped {
                account,
                entity: request.entity.clone(),
                role: request.role.clone(),
            });
        }
        let parsed = certificate::parse(&request.pem, now)?;
        if self.active_count(&request.client_id) >= MAX_ACTIVE_CERTIFICATES {
            return Err(M2mError::TooManyActive {
                client_id: request.client_id.clone(),
            });
        }
        let id = id.unwrap_or_else(random_id);
        if self.certificates.contains_key(&id) {
            return Err(M2mError::DuplicateId(id));
        }
        self.next_serial += 1;
        self.certificates.insert(
            id.clone(),
            Certificate {
                serial: self.next_serial,
                client_id: request.client_id.clone(),
                account,
                entity: request.entity.clone(),
                role: request.role.clone(),
                parsed,
                uploaded_at: utc(now),
                revoked_at: None,
            },
        );
        Ok(id)
    }

    fn active_count(&self, client_id: &str) -> usize {
        self.certificates
            .values()
            .filter(|c| c.client_id == client_id && c.is_active())
            .count()
    }

    /// The account a request is for (uppercase), for the per-account concurrency limit: the
    /// client's (from the path, or the assertion's unverified `iss`), else `?c=`.
    pub fn account_of(&self, call: &M2mCall) -> Option<String> {
        let client_id = match call.endpoint {
            RestEndpoint::M2mToken => token::unverified_iss(call),
            _ => call.client_id.clone(),
        };
        client_id
            .and_then(|id| self.clients.get(&id))
            .map(|c| c.account.clone())
            .or_else(|| call.account_param.as_ref().map(|a| a.to_ascii_uppercase()))
            .filter(|a| !a.is_empty())
    }

    /// Processes a request to an M2M endpoint at `now` (Unix s, the simulator's clock).
    pub fn handle(&mut self, call: &M2mCall, now: i64) -> Result<Reply, Refusal> {
        match call.endpoint {
            RestEndpoint::M2mToken => token::exchange(self, call, now),
            _ => certificates::handle(self, call, now),
        }
    }

    pub fn answers(&self) -> M2mAnswers {
        self.answers.clone()
    }

    pub fn set_answers(&mut self, answers: M2mAnswers) {
        self.answers = answers;
    }

    pub fn views(&self) -> Vec<CertificateView> {
        let mut certificates: Vec<(&String, &Certificate)> = self.certificates.iter().collect();
        certificates.sort_by_key(|(_, c)| c.serial);
        certificates
            .into_iter()
            .map(|(id, c)| view(id, c))
            .collect()
    }
}

fn view(id: &str, c: &Certificate) -> CertificateView {
    CertificateView {
        id: id.to_string(),
        client_id: c.client_id.clone(),
        account: c.account.clone(),
        entity: c.entity.clone(),
        role: c.role.clone(),
        key_type: c.parsed.key_type,
        status: if c.is_active() {
            CertificateStatus::Active
        } else {
            CertificateStatus::Revoked
        },
        not_before: c.parsed.not_before,
        not_after: c.parsed.not_after,
        not_after_as_sent: c.parsed.not_after_as_sent,
        uploaded_at: c.uploaded_at,
        revoked_at: c.revoked_at,
    }
}
