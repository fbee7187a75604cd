//! What readers of a store get: one JSON object per integration, a [`CredentialRecord`] of the
//! integration's kind. A TBA integration's record is a [`TokenRecord`] (everything that signs
//! an OAuth 1.0 request), an M2M integration's a [`CertificateRecord`] (everything that builds
//! a client assertion). Stores hold either without knowing which: they compare records only by
//! [`CredentialRecord::id`] and [`CredentialRecord::rotation_id`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::rfc3339;
use crate::secret::{SecretString, serialize_exposed, serialize_exposed_opt};

/// The object readers of a TBA integration's store see: everything a NetSuite TBA client
/// needs to sign requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    pub account_id: String,
    pub realm: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_exposed_opt"
    )]
    pub consumer_key: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_exposed_opt"
    )]
    pub consumer_secret: Option<SecretString>,
    pub token_id: String,
    #[serde(serialize_with = "serialize_exposed")]
    pub token_secret: SecretString,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub issued_at: DateTime<Utc>,
    /// The rotation that issued this token, or the import that brought it in.
    pub rotation_id: Uuid,
}

/// The object readers of an M2M (OAuth 2.0 client credentials) integration's store see:
/// everything an application needs to build its own client assertion (`docs/consumers.md`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateRecord {
    pub account_id: String,
    /// The integration record's client ID (the assertion's `iss`); left out when
    /// `store_consumer_credentials = false`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_exposed_opt"
    )]
    pub client_id: Option<SecretString>,
    /// NetSuite's ID of the uploaded certificate: the assertion's `kid`.
    pub certificate_id: String,
    /// The JWT `alg` that goes with the key: ES256, ES384 or PS256.
    pub algorithm: String,
    /// PEM (PKCS#8).
    #[serde(serialize_with = "serialize_exposed")]
    pub private_key: SecretString,
    /// The certificate in PEM, when known (an import may bring only the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// When the certificate expires, when known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize_opt"
    )]
    pub not_after: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub issued_at: DateTime<Utc>,
    /// The rotation that made this certificate, or the import that brought it in.
    pub rotation_id: Uuid,
}

/// One credential as a store holds it: a TBA token or an M2M certificate. Written as the kind's
/// own JSON object (no tag: readers see exactly the documented keys); read back by the key that
/// only a certificate has, `certificate_id`.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum CredentialRecord {
    Tba(TokenRecord),
    M2m(CertificateRecord),
}

impl CredentialRecord {
    /// What NetSuite calls the credential: the token ID or the certificate ID. Not a secret.
    pub fn id(&self) -> &str {
        match self {
            CredentialRecord::Tba(t) => &t.token_id,
            CredentialRecord::M2m(c) => &c.certificate_id,
        }
    }

    pub fn rotation_id(&self) -> Uuid {
        match self {
            CredentialRecord::Tba(t) => t.rotation_id,
            CredentialRecord::M2m(c) => c.rotation_id,
        }
    }

    pub fn issued_at(&self) -> DateTime<Utc> {
        match self {
            CredentialRecord::Tba(t) => t.issued_at,
            CredentialRecord::M2m(c) => c.issued_at,
        }
    }

    /// When the credential stops working by itself: a certificate's expiry, when known. TBA
    /// tokens do not expire.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            CredentialRecord::Tba(_) => None,
            CredentialRecord::M2m(c) => c.not_after,
        }
    }

    pub fn as_tba(&self) -> Option<&TokenRecord> {
        match self {
            CredentialRecord::Tba(t) => Some(t),
            CredentialRecord::M2m(_) => None,
        }
    }

    pub fn as_m2m(&self) -> Option<&CertificateRecord> {
        match self {
            CredentialRecord::M2m(c) => Some(c),
            CredentialRecord::Tba(_) => None,
        }
    }
}

impl From<TokenRecord> for CredentialRecord {
    fn from(token: TokenRecord) -> CredentialRecord {
        CredentialRecord::Tba(token)
    }
}

impl From<CertificateRecord> for CredentialRecord {
    fn from(certificate: CertificateRecord) -> CredentialRecord {
        CredentialRecord::M2m(certificate)
    }
}

/// Reads either kind. Not `#[serde(untagged)]`: its one message, "did not match any variant",
/// would not tell an operator which key is missing, and serde's own messages here name the
/// missing or mistyped field without quoting a value.
impl<'de> Deserialize<'de> for CredentialRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fn required<T, E: serde::de::Error>(value: Option<T>, field: &'static str) -> Result<T, E> {
            value.ok_or_else(|| E::missing_field(field))
        }
        let any = AnyRecord::deserialize(deserializer)?;
        let account_id = required(any.account_id, "account_id")?;
        let issued_at = required(any.issued_at, "issued_at")?;
        let rotation_id = required(any.rotation_id, "rotation_id")?;
        Ok(match any.certificate_id {
            Some(certificate_id) => CredentialRecord::M2m(CertificateRecord {
                account_id,
                client_id: any.client_id,
                certificate_id,
                algorithm: required(any.algorithm, "algorithm")?,
                private_key: required(any.private_key, "private_key")?,
                certificate: any.certificate,
                not_after: any.not_after,
                issued_at,
                rotation_id,
            }),
            None => CredentialRecord::Tba(TokenRecord {
                account_id,
                realm: required(any.realm, "realm")?,
                consumer_key: any.consumer_key,
                consumer_secret: any.consumer_secret,
                token_id: required(any.token_id, "token_id")?,
                token_secret: required(any.token_secret, "token_secret")?,
                issued_at,
                rotation_id,
            }),
        })
    }
}

/// Every key either kind has, each optional; [`CredentialRecord`]'s `Deserialize` checks which
/// are required once it knows the kind.
#[derive(Deserialize)]
struct AnyRecord {
    account_id: Option<String>,
    realm: Option<String>,
    consumer_key: Option<SecretString>,
    consumer_secret: Option<SecretString>,
    token_id: Option<String>,
    token_secret: Option<SecretString>,
    client_id: Option<SecretString>,
    certificate_id: Option<String>,
    algorithm: Option<String>,
    private_key: Option<SecretString>,
    certificate: Option<String>,
    not_after: Option<DateTime<Utc>>,
    issued_at: Option<DateTime<Utc>>,
    rotation_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::secret::ExposeSecret;

    #[test]
    fn each_kind_reads_back_as_itself_with_exactly_its_keys() {
        let token = json!({
            "account_id": "1_SB1", "realm": "1_SB1", "token_id": "t", "token_secret": "s",
            "issued_at": "2026-01-01T00:00:00Z", "rotation_id": Uuid::nil()
        });
        let record: CredentialRecord = serde_json::from_value(token.clone()).unwrap();
        assert_eq!(record.id(), "t");
        assert!(record.as_tba().is_some());
        assert_eq!(serde_json::to_value(&record).unwrap(), token);

        let certificate = json!({
            "account_id": "1_SB1", "client_id": "c", "certificate_id": "k", "algorithm": "ES256",
            "private_key": "-----BEGIN PRIVATE KEY-----", "certificate": "-----BEGIN CERTIFICATE-----",
            "not_after": "2027-01-01T00:00:00Z",
            "issued_at": "2026-01-01T00:00:00Z", "rotation_id": Uuid::nil()
        });
        let record: CredentialRecord = serde_json::from_value(certificate.clone()).unwrap();
        assert_eq!(record.id(), "k");
        let m2m = record.as_m2m().unwrap();
        assert_eq!(
            m2m.private_key.expose_secret(),
            "-----BEGIN PRIVATE KEY-----"
        );
        assert_eq!(
            record.expires_at().unwrap().to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(serde_json::to_value(&record).unwrap(), certificate);
    }

    #[test]
    fn a_missing_key_is_named_and_no_value_is_quoted() {
        let e = serde_json::from_value::<CredentialRecord>(json!({
            "account_id": "1", "certificate_id": "k", "algorithm": "ES256",
            "issued_at": "2026-01-01T00:00:00Z", "rotation_id": Uuid::nil()
        }))
        .unwrap_err();
        assert_eq!(e.to_string(), "missing field `private_key`");
        let e = serde_json::from_value::<CredentialRecord>(json!({"account_id": "1"})).unwrap_err();
        assert!(e.to_string().starts_with("missing field"), "{e}");
        let e = serde_json::from_value::<CredentialRecord>(json!({
            "account_id": "1", "realm": "1", "token_id": "t", "token_secret": ["s3cr3t"],
            "issued_at": "2026-01-01T00:00:00Z", "rotation_id": Uuid::nil()
        }))
        .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
