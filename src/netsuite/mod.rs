//! Everything that speaks NetSuite: account ids and hosts, the NLAuth and OAuth 1.0 headers,
//! TOTP codes, and the client for `issuetoken`, `revoketoken`, `tokeninfo` and `datacenterurls`.
//!
//! The protocol facts this follows are in `shared/netsuite-tba-protocol.md`; where NetSuite
//! leaves a detail unpublished the choice made is kept in one place and commented.
//!
//! CONTRACT (filled in by the netsuite helper; signatures below are what the rest of the crate
//! calls):
//! - `AccountId::parse("123456_sb1")` -> realm `123456_SB1`, host label `123456-sb1`.
//! - `Endpoint::for_account(&account, override_base)` -> base URL for the RESTlet domain.
//! - `NetSuiteClient::new(ClientOptions)` once per process; cheap to clone.
//! - `issue_token`, `revoke_token`, `token_info`, `datacenter_urls` (see their docs).
//! - `NetSuiteError` with `is_transient()`, `is_login_failure()`, `may_have_issued()`.

use crate::secret::SecretString;

/// A NetSuite account id in its canonical (realm) form, e.g. `123456_SB1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(_raw: &str) -> Result<AccountId, String> {
        todo!()
    }
    /// `123456_SB1`: the form used in `realm` and `nlauth_account`.
    pub fn realm(&self) -> &str {
        &self.0
    }
    /// `123456-sb1`: the form used in host names.
    pub fn host_label(&self) -> String {
        todo!()
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an account's token endpoints live.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub base_url: String,
}

impl Endpoint {
    pub fn for_account(_account: &AccountId, _override_base: Option<&str>) -> Endpoint {
        todo!()
    }
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
    pub initial_backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
    /// Base URL of the `datacenterurls` service (default `https://rest.netsuite.com`).
    pub datacenter_base: String,
}

/// One per process: holds the connection pool.
#[derive(Clone)]
pub struct NetSuiteClient {}

impl NetSuiteClient {
    pub fn new(_options: ClientOptions) -> Result<NetSuiteClient, NetSuiteError> {
        todo!()
    }

    /// `GET /rest/issuetoken` with NLAuth (+ `nlauth_otp` when the login has a TOTP secret).
    /// Retries only failures that certainly issued nothing; never a login failure.
    pub async fn issue_token(
        &self,
        _endpoint: &Endpoint,
        _account: &AccountId,
        _login: &NlauthLogin,
        _consumer_key: &SecretString,
        _token_name: &str,
    ) -> Result<IssuedToken, NetSuiteError> {
        todo!()
    }

    /// `GET /rest/revoketoken`, OAuth-signed by the token being revoked.
    /// `Ok(Revoked::AlreadyInvalid)` when NetSuite answers `token_rejected` (revoked or unknown).
    pub async fn revoke_token(
        &self,
        _endpoint: &Endpoint,
        _account: &AccountId,
        _creds: &TbaCredentials,
    ) -> Result<Revoked, NetSuiteError> {
        todo!()
    }

    /// `GET /rest/tokeninfo`, OAuth-signed by the token to check.
    pub async fn token_info(
        &self,
        _endpoint: &Endpoint,
        _account: &AccountId,
        _creds: &TbaCredentials,
    ) -> Result<TokenInfo, NetSuiteError> {
        todo!()
    }

    /// `GET <datacenter_base>/rest/datacenterurls?account=<id>`, no authentication.
    pub async fn datacenter_urls(
        &self,
        _account: &AccountId,
    ) -> Result<DataCenterUrls, NetSuiteError> {
        todo!()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    Now,
    AlreadyInvalid,
}

#[derive(Debug, thiserror::Error)]
#[error("netsuite error")]
pub struct NetSuiteError {}

impl NetSuiteError {
    pub fn is_transient(&self) -> bool {
        todo!()
    }
    pub fn is_login_failure(&self) -> bool {
        todo!()
    }
    /// The request may have reached NetSuite and issued a token whose answer we lost.
    pub fn may_have_issued(&self) -> bool {
        todo!()
    }
    /// `token_rejected`, `consumer_key_refused` and the like: the token does not work, for good.
    pub fn token_refused(&self) -> bool {
        todo!()
    }
}
impl Default for ClientOptions {
    fn default() -> Self {
        todo!()
    }
}
