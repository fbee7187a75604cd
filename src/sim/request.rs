//! A `/rest/*` request as the server hands it to the state: its endpoint, its `Authorization`
//! header read (and an OAuth signature base string made) before the state's lock is taken.

use super::faults::RestEndpoint;
use super::wire::{self, Malformed, NlauthLogin, OAuthHeader};

/// The `Authorization` header of a request, read before the lock is taken.
pub(crate) enum Authorization {
    Missing,
    Unsupported,
    Nlauth(Result<NlauthLogin, Malformed>),
    OAuth(Result<SignedRequest, Malformed>),
}

pub(crate) struct SignedRequest {
    pub header: OAuthHeader,
    pub base_string: String,
}

impl Authorization {
    pub fn read(
        header: Option<&str>,
        method: &str,
        base_uri: &str,
        query: &[(Vec<u8>, Vec<u8>)],
    ) -> Authorization {
        let Some(header) = header else {
            return Authorization::Missing;
        };
        if wire::strip_scheme(header, "NLAuth").is_some() {
            return Authorization::Nlauth(wire::parse_nlauth(header));
        }
        if wire::strip_scheme(header, "OAuth").is_some() {
            return Authorization::OAuth(wire::parse_oauth(header).map(|header| {
                let base_string = wire::signature_base_string(method, base_uri, &header, query);
                SignedRequest {
                    header,
                    base_string,
                }
            }));
        }
        Authorization::Unsupported
    }
}

pub(crate) struct RestCall {
    pub endpoint: RestEndpoint,
    pub auth: Authorization,
    pub query: Vec<(Vec<u8>, Vec<u8>)>,
    /// This simulator's base URL as the client reached it (for datacenterurls).
    pub base_url: String,
}

impl RestCall {
    /// The account the request is for, in the form accounts are keyed (uppercase): the NLAuth
    /// `nlauth_account` or the OAuth `realm` of a header that could be read, or else
    /// datacenterurls' `account` query value. `None` when none is readable.
    pub fn account(&self) -> Option<String> {
        let from_header = match &self.auth {
            Authorization::Nlauth(Ok(login)) => Some(login.account.clone()),
            Authorization::OAuth(Ok(signed)) => signed.header.realm.clone(),
            _ => None,
        };
        from_header
            .or_else(|| {
                (self.endpoint == RestEndpoint::DataCenterUrls)
                    .then(|| wire::query_value(&self.query, "account"))
                    .flatten()
            })
            .filter(|account| !account.is_empty())
            .map(|account| account.to_ascii_uppercase())
    }
}
