//! Everything that speaks NetSuite: account ids and hosts, the NLAuth and OAuth 1.0 headers,
//! TOTP codes, and the client for `issuetoken`, `revoketoken`, `tokeninfo` and `datacenterurls`;
//! and, in [`m2m`], OAuth 2.0 client credentials: keys and certificates, the token endpoint and
//! the certificate rotation endpoint.
//!
//! The protocol facts this follows are in `shared/netsuite-tba-protocol.md`; where NetSuite
//! leaves a detail unpublished the choice made is kept in one place and commented.
//!
//! - `AccountId::parse("123456_sb1")` -> realm `123456_SB1`, host label `123456-sb1`.
//! - `Endpoint::for_account(&account, override_base)` -> base URL for the RESTlet domain.
//! - `NetSuiteClient::new(ClientOptions)` once per process; cheap to clone.
//! - `issue_token`, `revoke_token`, `token_info`, `datacenter_urls` (see their docs).
//! - `Endpoint::m2m_for_account`, then `m2m_access_token`, `list_certificates`,
//!   `add_certificate`, `revoke_certificate` (see [`m2m`]).
//! - `NetSuiteError` with `is_transient()`, `is_login_failure()`, `may_have_issued()`,
//!   `token_refused()`.
//! - The pure pieces the simulator and tests share: [`encode::percent_encode`],
//!   [`oauth1::signature_base_string`], [`oauth1::hmac_sha256_signature`],
//!   [`oauth1::authorization_header`], [`nlauth::nlauth_header`], [`totp::totp_code`].

mod account;
pub mod calls;
mod client;
pub mod encode;
mod error;
mod http_span;
pub mod m2m;
pub mod nlauth;
pub mod oauth1;
#[doc(hidden)]
pub mod parse_entry;
mod response;
mod retry;
pub use response::{TOKEN_INFO_KEYS, TokenInfoKeys};
pub mod totp;

pub use account::{AccountId, Endpoint};
pub use calls::{CallCounts, CallResult};
pub use client::NetSuiteClient;
pub use encode::percent_encode;
pub use error::{BodyProblem, Call, NetSuiteDetail, NetSuiteError, OAuthReason, TransportKind};
pub use m2m::{
    AccessToken, CertificateEntry, KeyKind, M2mCredentials, NewCertificate,
    algorithm_of_private_key, certificate_matches_key, certificate_validity, generate_certificate,
};
pub use nlauth::nlauth_header;
pub use oauth1::{authorization_header, hmac_sha256_signature, signature_base_string};
pub use totp::{TotpError, totp_code};

use crate::secret::SecretString;

/// The response parsers, reachable for `benches/responses.rs` only; not part of the API.
#[doc(hidden)]
pub mod bench_api {
    pub use super::response::{parse_datacenter_urls, parse_issued_token, parse_token_info};
}

/// NLAuth login for `issuetoken`.
#[derive(Clone, Debug)]
pub struct NlauthLogin {
    pub email: String,
    pub password: SecretString,
    pub role: String,
    pub totp_secret: Option<SecretString>,
}

/// The four values that sign an OAuth 1.0 TBA request.
#[derive(Clone, Debug)]
pub struct TbaCredentials {
    pub consumer_key: SecretString,
    pub consumer_secret: SecretString,
    pub token_id: String,
    pub token_secret: SecretString,
}

/// A token fresh from `issuetoken`.
#[derive(Debug)]
pub struct IssuedToken {
    pub token_id: String,
    pub token_secret: SecretString,
}

/// What `tokeninfo` says about a token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenInfo {
    pub company_name: Option<String>,
    pub company_id: Option<String>,
    pub role_name: Option<String>,
    pub role_id: Option<String>,
    pub entity_id: Option<String>,
}

/// Addresses from `datacenterurls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataCenterUrls {
    pub rest_domain: String,
    pub webservices_domain: Option<String>,
    pub system_domain: Option<String>,
}

/// Client settings; `Default` is what production uses.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Whole-request timeout.
    pub timeout: std::time::Duration,
    pub connect_timeout: std::time::Duration,
    /// Bodies longer than this are refused without being read further.
    pub max_body_bytes: usize,
    /// Attempts for transient failures, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Attempts answered with the account's concurrency limit that are tried again, on top of
    /// `max_attempts`: the limit is shared with every integration of the account, so it is an
    /// everyday condition that outlasts a short retry budget.
    pub max_rate_limited_attempts: u32,
    pub initial_backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
    /// Base URL of the `datacenterurls` service (default `https://rest.netsuite.com`).
    pub datacenter_base: String,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        use std::time::Duration;
        ClientOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            max_attempts: 4,
            max_rate_limited_attempts: 12,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            datacenter_base: "https://rest.netsuite.com".to_string(),
        }
    }
}

/// What `revoke_token` (or `revoke_certificate`) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// NetSuite accepted the revocation.
    Now,
    /// NetSuite answered `token_rejected` (for a certificate: `404`): the token or certificate
    /// was already revoked or never existed.
    AlreadyInvalid,
}
