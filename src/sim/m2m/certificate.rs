//! Reading an uploaded M2M certificate: PEM, X.509, the key types NetSuite takes (RSA with 3072
//! or 4096 bits, EC on P-256, P-384 or P-521) and the validity, capped at two years from its
//! start as NetSuite shortens a longer one.
//!
//! The parsing is x509-parser's; nothing here is cryptography. What is kept is what the token
//! endpoint needs to verify an assertion: the public key as the verifier takes it (the
//! `subjectPublicKey` bits: PKCS#1 `RSAPublicKey` for RSA, the uncompressed point for EC).

use chrono::{DateTime, Months, Utc};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION,
};

/// The key of a certificate NetSuite accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP384,
    EcP521,
}

impl KeyType {
    /// The JWT `alg` values an assertion signed with this key may carry. ES512 (P-521) is on
    /// the protocol page but the verifying crate has no ES512: such a key can be uploaded, and
    /// its assertions are refused (see the module doc of `m2m`).
    pub fn algorithms(self) -> &'static [&'static str] {
        match self {
            KeyType::Rsa3072 | KeyType::Rsa4096 => &["PS256", "PS384", "PS512"],
            KeyType::EcP256 => &["ES256"],
            KeyType::EcP384 => &["ES384"],
            KeyType::EcP521 => &["ES512"],
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa3072 => "RSA 3072",
            KeyType::Rsa4096 => "RSA 4096",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::EcP521 => "EC P-521",
        }
    }
}

/// What the simulator keeps of an uploaded certificate.
#[derive(Clone, Debug)]
pub struct ParsedCertificate {
    pub key_type: KeyType,
    /// The `subjectPublicKey` bits.
    pub public_key: Vec<u8>,
    pub not_before: DateTime<Utc>,
    /// The certificate's own end of validity.
    pub not_after_as_sent: DateTime<Utc>,
    /// The end NetSuite keeps: at most two years after `not_before`.
    pub not_after: DateTime<Utc>,
}

/// Why an uploaded certificate was refused; the text names `fileContent` and what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("fileContent: expected a PEM certificate (-----BEGIN CERTIFICATE-----), got {0}")]
    NotPem(&'static str),
    #[error("fileContent: the PEM block is not an X.509 certificate: {0}")]
    NotX509(String),
    #[error(
        "fileContent: unsupported key {0}; expected RSA with 3072 or 4096 bits, or EC on P-256, \
         P-384 or P-521"
    )]
    UnsupportedKey(String),
    /// Expired as sent, or once its validity is capped at two years from its start.
    #[error(
        "fileContent: the certificate expired at {0} (validity capped at two years from notBefore)"
    )]
    Expired(DateTime<Utc>),
    #[error(
        "fileContent: the certificate's validity is empty (notAfter {0} is not after notBefore)"
    )]
    EmptyValidity(DateTime<Utc>),
}

/// The longest validity NetSuite keeps, from the certificate's start.
pub const MAX_VALIDITY_MONTHS: u32 = 24;

/// Reads a PEM certificate and checks it the way NetSuite checks an upload, at `now` (Unix s).
pub fn parse(pem_text: &str, now: i64) -> Result<ParsedCertificate, CertificateError> {
    if !pem_text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(CertificateError::NotPem(
            "no -----BEGIN CERTIFICATE----- line",
        ));
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.trim_start().as_bytes())
        .map_err(|_| CertificateError::NotPem("a PEM block that cannot be read"))?;
    if pem.label != "CERTIFICATE" {
        return Err(CertificateError::NotPem("a PEM block of another type"));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
        .map_err(|e| CertificateError::NotX509(e.to_string()))?;
    let spki = cert.public_key();
    let key_type = key_type(spki)?;
    let validity = cert.validity();
    let not_before = utc(validity.not_before.timestamp());
    let not_after_as_sent = utc(validity.not_after.timestamp());
    if not_after_as_sent <= not_before {
        return Err(CertificateError::EmptyValidity(not_after_as_sent));
    }
    if not_after_as_sent.timestamp() <= now {
        return Err(CertificateError::Expired(not_after_as_sent));
    }
    let cap = not_before
        .checked_add_months(Months::new(MAX_VALIDITY_MONTHS))
        .unwrap_or(not_after_as_sent);
    let not_after = not_after_as_sent.min(cap);
    if not_after.timestamp() <= now {
        return Err(CertificateError::Expired(not_after));
    }
    Ok(ParsedCertificate {
        key_type,
        public_key: spki.subject_public_key.data.to_vec(),
        not_before,
        not_after_as_sent,
        not_after,
    })
}

fn key_type(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<KeyType, CertificateError> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
        return match bits {
            3072 => Ok(KeyType::Rsa3072),
            4096 => Ok(KeyType::Rsa4096),
            other => Err(CertificateError::UnsupportedKey(format!(
                "RSA with {other} bits"
            ))),
        };
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok(KeyType::EcP256),
            Some(c) if c == OID_NIST_EC_P384 => Ok(KeyType::EcP384),
            Some(c) if c == OID_NIST_EC_P521 => Ok(KeyType::EcP521),
            Some(c) => Err(CertificateError::UnsupportedKey(format!("EC on curve {c}"))),
            None => Err(CertificateError::UnsupportedKey(
                "EC without named curve".to_string(),
            )),
        };
    }
    Err(CertificateError::UnsupportedKey(format!(
        "of algorithm {algorithm}"
    )))
}

fn utc(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike as _;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm, days: i64) -> String {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["m2m".into()]).unwrap();
        let now = Utc::now();
        let midnight = rcgen::date_time_ymd(now.year(), now.month() as u8, now.day() as u8);
        params.not_before = midnight;
        params.not_after = midnight + std::time::Duration::from_secs(days as u64 * 86_400);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn ec_keys_are_named_by_curve_and_a_long_validity_is_capped() {
        let now = Utc::now().timestamp();
        let p256 = parse(&self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, 30), now).unwrap();
        assert_eq!(p256.key_type, KeyType::EcP256);
        assert_eq!(p256.not_after, p256.not_after_as_sent);
        let p384 = parse(&self_signed(&rcgen::PKCS_ECDSA_P384_SHA384, 1000), now).unwrap();
        assert_eq!(p384.key_type, KeyType::EcP384);
        assert!(p384.not_after < p384.not_after_as_sent);
        assert_eq!(
            p384.not_after,
            p384.not_before.checked_add_months(Months::new(24)).unwrap()
        );
    }

    #[test]
    fn not_pem_and_other_keys_are_refused_naming_the_field() {
        let now = Utc::now().timestamp();
        let text = parse("hello", now).unwrap_err().to_string();
        assert!(
            text.starts_with("fileContent: expected a PEM certificate"),
            "{text}"
        );
        let ed = parse(&self_signed(&rcgen::PKCS_ED25519, 30), now).unwrap_err();
        assert!(matches!(ed, CertificateError::UnsupportedKey(_)), "{ed}");
        let garbled = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse(garbled, now),
            Err(CertificateError::NotX509(_))
        ));
    }
}
