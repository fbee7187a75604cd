//! What the engine knows about one integration: its account, its credential kind's settings
//! (TBA or M2M), its grace window and name prefix.

use std::sync::Arc;
use std::time::Duration;

use super::kind::CredentialKind;
use super::kind::m2m::M2m;
use super::kind::tba::Tba;
use crate::netsuite::{AccountId, Endpoint};

/// Everything the engine needs to know about one integration, secrets resolved. What several
/// integrations have in common (account, endpoint, login, expectations) is shared between
/// them (see `config::Resolver`): a daemon holds thousands of these for weeks.
#[derive(Debug)]
pub struct Integration {
    pub name: Arc<str>,
    pub account: AccountId,
    /// Where the kind's calls go: the RESTlet domain for TBA, the SuiteTalk domain for M2M, or
    /// the configured override.
    pub endpoint: Endpoint,
    pub credential: Credential,
    /// Grace window between promotion and revocation of the replaced credential.
    pub revoke_after: Duration,
    /// Names new credentials `<prefix>-<rotation id>` (a TBA token's name, an M2M
    /// certificate's subject).
    pub token_name_prefix: Arc<str>,
    /// Whether the consumer pair (TBA) or the client ID (M2M) is written into the store
    /// beside the credential.
    pub store_consumer_credentials: bool,
}

/// The kind of credential an integration rotates, with what that kind needs.
#[derive(Debug)]
pub enum Credential {
    Tba(Tba),
    M2m(M2m),
}

impl Integration {
    /// The steps of this integration's kind.
    pub fn kind(&self) -> &dyn CredentialKind {
        match &self.credential {
            Credential::Tba(tba) => tba,
            Credential::M2m(m2m) => m2m,
        }
    }

    /// The TBA settings; `None` for an M2M integration (no NLAuth login, no latch).
    pub fn tba(&self) -> Option<&Tba> {
        match &self.credential {
            Credential::Tba(tba) => Some(tba),
            Credential::M2m(_) => None,
        }
    }

    /// The TBA settings to change (tests that break a login or an expectation).
    pub fn tba_mut(&mut self) -> Option<&mut Tba> {
        match &mut self.credential {
            Credential::Tba(tba) => Some(tba),
            Credential::M2m(_) => None,
        }
    }

    pub fn m2m(&self) -> Option<&M2m> {
        match &self.credential {
            Credential::M2m(m2m) => Some(m2m),
            Credential::Tba(_) => None,
        }
    }

    /// How NetSuite proves a credential of this kind works: `tokeninfo` or `a token exchange`.
    pub fn proof(&self) -> &'static str {
        match &self.credential {
            Credential::Tba(_) => "tokeninfo",
            Credential::M2m(_) => "a token exchange",
        }
    }

    /// What the integration's credential is called in messages: `token` or `certificate`.
    pub fn noun(&self) -> &'static str {
        match &self.credential {
            Credential::Tba(_) => "token",
            Credential::M2m(_) => "certificate",
        }
    }
}
