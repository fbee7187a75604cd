//! What the simulator shows of itself and takes as control requests: a snapshot of its world
//! for tests and operators (no secret in it), the names of the reasons it refuses requests for,
//! and the hand-made token and approval requests, with their refusals.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::m2m::CertificateView;
use super::seed::IntegrationState;

/// Why a request was refused: the names counted by [`Inspection::refused`].
///
/// The first group is named on the protocol page and travels in `WWW-Authenticate`. The second
/// is NOT named there: NetSuite's reasons match the OAuth Problem Reporting extension, so its
/// names for the remaining OAuth failures are used (`signature_invalid` above all); correct
/// them here if NetSuite is seen to say otherwise. The `nlauth_*` group is only counted:
/// NetSuite answers every NLAuth login failure with a bare INVALID_LOGIN_ATTEMPT.
pub mod reason {
    pub const FEATURE_DISABLED: &str = "FeatureDisabled";
    pub const CONSUMER_KEY_UNKNOWN: &str = "consumer_key_unknown";
    pub const CONSUMER_KEY_REFUSED: &str = "consumer_key_refused";
    pub const TOKEN_REJECTED: &str = "token_rejected";
    pub const NONCE_REJECTED: &str = "nonce_rejected";
    pub const NONCE_USED: &str = "nonce_used";
    pub const TIMESTAMP_REFUSED: &str = "timestamp_refused";

    /// Not named on the protocol page (which only says "an invalid signature").
    pub const SIGNATURE_INVALID: &str = "signature_invalid";
    /// HMAC-SHA1 or any method but HMAC-SHA256. Not named on the protocol page.
    pub const SIGNATURE_METHOD_REJECTED: &str = "signature_method_rejected";
    /// A required OAuth parameter (or `realm`) is missing. Not named on the protocol page.
    pub const PARAMETER_ABSENT: &str = "parameter_absent";
    /// The OAuth header cannot be read (unquoted or unencoded value, duplicate, stray name).
    pub const PARAMETER_REJECTED: &str = "parameter_rejected";
    pub const VERSION_REJECTED: &str = "version_rejected";

    pub const AUTHORIZATION_MISSING: &str = "authorization_missing";
    /// An Authorization scheme the endpoint does not take (OAuth on issuetoken, NLAuth on
    /// tokeninfo, anything else anywhere).
    pub const AUTHORIZATION_UNSUPPORTED: &str = "authorization_unsupported";
    pub const NLAUTH_MALFORMED: &str = "nlauth_malformed";
    pub const NLAUTH_UNKNOWN_USER: &str = "nlauth_unknown_user";
    pub const NLAUTH_WRONG_PASSWORD: &str = "nlauth_wrong_password";
    pub const NLAUTH_ROLE_NOT_HELD: &str = "nlauth_role_not_held";
    pub const NLAUTH_PERMISSION_MISSING: &str = "nlauth_permission_missing";
    pub const NLAUTH_WEB_SERVICES_ONLY: &str = "nlauth_web_services_only";
    pub const NLAUTH_OTP_MISSING: &str = "nlauth_otp_missing";
    pub const NLAUTH_OTP_INVALID: &str = "nlauth_otp_invalid";
    /// Only issuetoken takes `nlauth_otp`, so a 2FA login cannot revoke through NLAuth.
    pub const NLAUTH_2FA_ISSUETOKEN_ONLY: &str = "nlauth_2fa_issuetoken_only";

    /// 400s.
    pub const PARAMETER_MISSING: &str = "query_parameter_missing";
    /// `SSS_REQUEST_LIMIT_EXCEEDED`: the account already had `concurrency_limit` requests in
    /// flight (see [`Limits`](crate::sim::Limits)). Injected `rate_limit` faults are counted
    /// in `faults_injected`, not here.
    pub const REQUEST_LIMIT_EXCEEDED: &str = "request_limit_exceeded";
    pub const NLAUTH_REVOKE_NOT_REVOCABLE: &str = "nlauth_revoke_not_revocable";
    pub const DATACENTER_HYPHEN_FORM: &str = "datacenter_hyphen_form";
    pub const DATACENTER_UNKNOWN_ACCOUNT: &str = "datacenter_unknown_account";
}

/// A snapshot of the simulator for tests and operators. Holds no secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// Every token, in the order they were made.
    pub tokens: Vec<TokenView>,
    pub integrations: Vec<IntegrationView>,
    /// Refused requests by [`reason`].
    pub refused: BTreeMap<String, u64>,
    /// Requests by endpoint (`issuetoken`, ..., `sim`, `not_found`).
    pub requests: BTreeMap<String, u64>,
    /// Injected faults by kind: the names of the rate fields of [`Faults`] (`server_error`,
    /// `rate_limit`, `rate_limit_429`, `timeout`, `reset`, `garbage`, `soap_fault`,
    /// `login_page`).
    pub faults_injected: BTreeMap<String, u64>,
    /// The part of `faults_injected` that struck after the token was created or revoked.
    pub faults_after_processing: BTreeMap<String, u64>,
    /// Requests holding a slot of their account at this moment, by account (uppercase id);
    /// accounts with none are left out. See [`Limits`].
    #[serde(default)]
    pub in_flight: BTreeMap<String, u32>,
    /// The most recent failed logins, oldest first: the last 1,000 of `failed_login_count`.
    #[serde(default)]
    pub failed_logins: Vec<FailedLogin>,
    /// Every failed login since the simulator started, those no longer kept included.
    #[serde(default)]
    pub failed_login_count: u64,
    /// Every M2M certificate (public parts only), in the order they were uploaded.
    #[serde(default)]
    pub certificates: Vec<CertificateView>,
    /// Access tokens the M2M token endpoint issued.
    #[serde(default)]
    pub access_tokens_issued: u64,
}

/// A login the simulator refused with `401`, as NetSuite writes each one into the account's
/// Login Audit Trail (which security teams watch: the protocol page warns against failing calls
/// made on purpose). Recorded when the simulator refuses the login, so also when an
/// after-processing fault then loses the `401` on its way. Holds no secret: never a password,
/// a secret, a signature or a TOTP code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedLogin {
    /// On the simulator's clock (injected skew included).
    pub at: DateTime<Utc>,
    /// The account the request named (uppercase, as accounts are keyed); empty when its
    /// header could not be read or was missing.
    pub account: String,
    /// `issuetoken`, `revoketoken`, `tokeninfo`, or for M2M `token`, `certificates`,
    /// `certificate_add`, `certificate_revoke`.
    pub endpoint: String,
    /// `nlauth` or `oauth`: the scheme of the `Authorization` header; `none` when there was
    /// neither (no header, or another scheme). M2M: `client_credentials` (a refused token
    /// exchange) or `bearer` (a refused access token).
    pub scheme: String,
    /// NLAuth: `nlauth_email` as sent (decoded).
    pub email: Option<String>,
    /// OAuth: `oauth_token` as sent (decoded).
    pub token_id: Option<String>,
    /// M2M: the client ID the request named (the assertion's `iss` as sent, or the path's).
    #[serde(default)]
    pub client_id: Option<String>,
    /// M2M: the certificate ID the assertion named (`kid`, as sent).
    #[serde(default)]
    pub certificate_id: Option<String>,
    /// Why, one of [`reason`] or [`crate::sim::m2m_reason`].
    pub reason: String,
}

impl Inspection {
    pub fn token(&self, token_id: &str) -> Option<&TokenView> {
        self.tokens.iter().find(|t| t.token_id == token_id)
    }
    pub fn refused(&self, reason: &str) -> u64 {
        self.refused.get(reason).copied().unwrap_or(0)
    }
    pub fn requests(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }
    pub fn faults_injected(&self, kind: &str) -> u64 {
        self.faults_injected.get(kind).copied().unwrap_or(0)
    }
    /// The failed logins still kept whose account is `account` (any case).
    pub fn failed_logins_in<'a>(
        &'a self,
        account: &'a str,
    ) -> impl Iterator<Item = &'a FailedLogin> + 'a {
        self.failed_logins
            .iter()
            .filter(move |f| f.account.eq_ignore_ascii_case(account))
    }
    /// Requests of `account` in flight (any case).
    pub fn in_flight(&self, account: &str) -> u32 {
        self.in_flight
            .get(&account.to_ascii_uppercase())
            .copied()
            .unwrap_or(0)
    }
    pub fn active_tokens(&self) -> impl Iterator<Item = &TokenView> {
        self.tokens
            .iter()
            .filter(|t| t.status == TokenStatus::Active)
    }
    pub fn certificate(&self, id: &str) -> Option<&CertificateView> {
        self.certificates.iter().find(|c| c.id == id)
    }
    /// The active (not revoked) certificates of an M2M client.
    pub fn active_certificates<'a>(
        &'a self,
        client_id: &'a str,
    ) -> impl Iterator<Item = &'a CertificateView> + 'a {
        self.certificates
            .iter()
            .filter(move |c| c.client_id == client_id && c.is_active())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub account: String,
    pub token_id: String,
    pub name: String,
    pub consumer_key: String,
    pub entity_id: String,
    pub role_id: String,
    pub status: TokenStatus,
    pub issued_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenView {
    pub fn is_active(&self) -> bool {
        self.status == TokenStatus::Active
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationView {
    pub account: String,
    pub name: String,
    pub consumer_key: String,
    pub state: IntegrationState,
    pub installed: bool,
}

/// A token made by hand, as in the NetSuite UI (Setup > Users/Roles > Access Tokens > New).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandMadeToken {
    pub account: String,
    pub email: String,
    pub role: String,
    pub consumer_key: String,
    pub name: String,
}

/// Why a control request (approve, block, hand-made token) was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no account {0} in the simulator")]
    UnknownAccount(String),
    #[error("account {account} has no user {email}")]
    UnknownUser { account: String, email: String },
    #[error("user {email} does not hold role {role}")]
    RoleNotHeld { email: String, role: String },
    #[error("no integration in the simulator has that consumer key")]
    UnknownConsumerKey,
    #[error("no integration of account {0} has that consumer key")]
    ConsumerKeyNotInAccount(String),
}
