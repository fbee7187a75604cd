//! The OAuth 2.0 client-credentials (machine-to-machine) half of the NetSuite client: keys and
//! self-signed certificates, the signed client assertion, the token endpoint and the
//! certificate rotation endpoint (list, add, revoke).
//!
//! The protocol facts are in `shared/netsuite-oauth2-m2m.md`; the answer shapes NetSuite does
//! not publish are read tolerantly in [`listing`] only.
//!
//! - [`KeyKind`], [`generate_certificate`]: a fresh key and certificate to upload.
//! - [`algorithm_of_private_key`], [`certificate_validity`], [`certificate_matches_key`]: what
//!   an imported key and certificate are, before any call.
//! - `NetSuiteClient::m2m_access_token` with [`M2mCredentials`] -> [`AccessToken`], then
//!   `list_certificates`, `add_certificate`, `revoke_certificate` with it (see
//!   `netsuite::m2m::client`).
//!
//! Errors never carry the private key, the assertion, the access token or the client id.

pub(crate) mod assertion;
mod client;
mod keys;
pub(crate) mod listing;

use chrono::{DateTime, Utc};

pub use assertion::ASSERTION_LIFETIME_SECS;
pub use client::{ASSERTION_TYPE, DEFAULT_SCOPES};
pub use keys::{
    KeyKind, NewCertificate, algorithm_of_private_key, certificate_matches_key,
    certificate_validity, generate_certificate,
};

use crate::secret::SecretString;

/// What signs a client assertion.
#[derive(Clone, Copy, Debug)]
pub struct M2mCredentials<'a> {
    /// The integration record's client id: the JWT `iss`.
    pub client_id: &'a SecretString,
    /// The certificate id NetSuite gave the mapping: the JWT `kid`.
    pub certificate_id: &'a str,
    /// `ES256`, `ES384` or `PS256` (see [`algorithm_of_private_key`]).
    pub algorithm: &'a str,
    /// PEM: PKCS#8, or SEC1 / PKCS#1.
    pub private_key: &'a SecretString,
}

/// An access token from the token endpoint (its `Debug` never shows it).
#[derive(Debug)]
pub struct AccessToken {
    pub token: SecretString,
    /// Seconds, as the answer said (NetSuite: 3600).
    pub expires_in: Option<u64>,
}

/// One entry of a certificate listing, read tolerantly (NetSuite does not publish the shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateEntry {
    pub id: String,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub revoked: bool,
}

impl CertificateEntry {
    /// Not revoked and not past `valid_until` (an entry without one is taken as current): what
    /// counts against NetSuite's five active certificates.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.valid_until.is_none_or(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_means_not_revoked_and_not_expired() {
        let now = Utc::now();
        let entry = |revoked, until: Option<i64>| CertificateEntry {
            id: "1".into(),
            valid_from: None,
            valid_until: until.map(|h| now + chrono::Duration::hours(h)),
            revoked,
        };
        assert!(entry(false, None).is_active(now));
        assert!(entry(false, Some(1)).is_active(now));
        assert!(!entry(false, Some(0)).is_active(now));
        assert!(!entry(false, Some(-1)).is_active(now));
        assert!(!entry(true, Some(1)).is_active(now));
    }

    #[test]
    fn debug_never_shows_the_access_token() {
        let token = AccessToken {
            token: SecretString::from("eyJ.secret.token".to_string()),
            expires_in: Some(3600),
        };
        assert!(!format!("{token:?}").contains("secret"));
    }
}
