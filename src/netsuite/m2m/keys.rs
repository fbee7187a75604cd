//! M2M key pairs and certificates: making a fresh key and self-signed certificate (rcgen), and
//! reading what an imported one is (which JWT algorithm signs with the key, the certificate's
//! validity, whether the two belong together).
//!
//! NetSuite takes RSA with 3072 or 4096 bits and EC on P-256, P-384 or P-521, and caps a
//! certificate at two years. This tool signs with ES256, ES384 and PS256 only: the JWT crate
//! has no ES512, so a P-521 key is refused here rather than at the first token exchange.
//!
//! No message quotes a key or a certificate: errors name what was expected and what was found
//! (the PEM label, the curve, the key size) and nothing else.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// The key types this tool generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcP256,
    EcP384,
    Rsa3072,
    Rsa4096,
}

impl KeyKind {
    pub const ALL: [KeyKind; 4] = [
        KeyKind::EcP256,
        KeyKind::EcP384,
        KeyKind::Rsa3072,
        KeyKind::Rsa4096,
    ];

    /// `ec-p256` | `ec-p384` | `rsa-3072` | `rsa-4096` (case and surrounding space ignored);
    /// the error names the accepted values.
    pub fn parse(s: &str) -> Result<KeyKind, String> {
        let wanted = s.trim();
        KeyKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                format!(
                    "key kind {:?} is not known: expected one of ec-p256, ec-p384, rsa-3072, \
                     rsa-4096",
                    wanted.chars().take(40).collect::<String>()
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "ec-p256",
            KeyKind::EcP384 => "ec-p384",
            KeyKind::Rsa3072 => "rsa-3072",
            KeyKind::Rsa4096 => "rsa-4096",
        }
    }

    /// The JWT `alg` that signs with this kind of key: the curve fixes the hash for EC; RSA
    /// uses RSASSA-PSS with SHA-256 (NetSuite takes PS256/PS384/PS512, not RS*).
    pub fn algorithm(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "ES256",
            KeyKind::EcP384 => "ES384",
            KeyKind::Rsa3072 | KeyKind::Rsa4096 => "PS256",
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fresh key pair and its self-signed X.509 certificate.
pub struct NewCertificate {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key: SecretString,
    /// PEM (`-----BEGIN CERTIFICATE-----`).
    pub certificate: String,
    /// As encoded in the certificate (whole seconds).
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for NewCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCertificate")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// How far back a new certificate's `notBefore` goes, so that a NetSuite clock a little behind
/// ours does not find it not yet valid.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// A new key of `kind` and a certificate for it, self-signed, with `common_name` as the
/// subject CN, valid from now - 5 minutes to now + `validity`. NetSuite keeps at most two
/// years of it; the caller chooses.
pub fn generate_certificate(
    kind: KeyKind,
    common_name: &str,
    validity: Duration,
) -> Result<NewCertificate, String> {
    let key = match kind {
        KeyKind::EcP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyKind::EcP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyKind::Rsa3072 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
        }
        KeyKind::Rsa4096 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
        }
    }
    .map_err(|err| format!("cannot generate a {kind} key: {err}"))?;

    let now = Utc::now();
    let start = now - chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
    let end = chrono::Duration::from_std(validity)
        .ok()
        .and_then(|validity| now.checked_add_signed(validity))
        .ok_or_else(|| format!("certificate validity {validity:?} is too long"))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    // rcgen's dates are the `time` crate's, which is not ours to name: the epoch plus seconds.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + epoch_seconds(start)?;
    params.not_after = epoch + epoch_seconds(end)?;
    let certificate = params
        .self_signed(&key)
        .map_err(|err| format!("cannot make the {kind} certificate: {err}"))?
        .pem();
    // Read the dates back as encoded (whole seconds), so they match what NetSuite will see.
    let (not_before, not_after) = certificate_validity(&certificate)?;
    Ok(NewCertificate {
        private_key: SecretString::from(key.serialize_pem()),
        certificate,
        not_before,
        not_after,
    })
}

/// Seconds since the epoch of a certificate date (X.509 times have whole seconds).
fn epoch_seconds(at: DateTime<Utc>) -> Result<Duration, String> {
    u64::try_from(at.timestamp())
        .map(Duration::from_secs)
        .map_err(|_| format!("certificate date {at} is before 1970"))
}

/// The JWT `alg` that signs with `pem`: ES256 for P-256, ES384 for P-384, PS256 for RSA of
/// 3072 bits or more. PKCS#8 (`BEGIN PRIVATE KEY`), SEC1 (`BEGIN EC PRIVATE KEY`) and PKCS#1
/// (`BEGIN RSA PRIVATE KEY`) are read. Never quotes the key.
pub fn algorithm_of_private_key(pem: &SecretString) -> Result<&'static str, String> {
    let key = parse_private_key(pem)?;
    algorithm_of(&key)
}

fn algorithm_of(key: &rcgen::KeyPair) -> Result<&'static str, String> {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Ok("ES256");
    }
    if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        return Ok("ES384");
    }
    if alg == &rcgen::PKCS_ECDSA_P521_SHA512 {
        return Err(
            "the private key is EC on P-521, whose JWT algorithm ES512 cannot be \
                    signed by this tool: use an EC P-256 or P-384 key, or RSA 3072 or 4096"
                .to_string(),
        );
    }
    if alg == &rcgen::PKCS_RSA_SHA256 {
        let bits = rsa_bits(key)?;
        if bits < 3072 {
            return Err(format!(
                "the private key is RSA with {bits} bits: NetSuite wants 3072 or 4096 bits"
            ));
        }
        return Ok("PS256");
    }
    Err(
        "the private key is of a type NetSuite does not take (expected RSA 3072/4096 or EC \
         P-256/P-384)"
            .to_string(),
    )
}

/// The modulus size of an RSA key pair, read from its public key.
fn rsa_bits(key: &rcgen::KeyPair) -> Result<usize, String> {
    use rcgen::PublicKeyData as _;
    let spki = key.subject_public_key_info();
    let unreadable = || "the RSA private key's public part cannot be read".to_string();
    let (_, info) = SubjectPublicKeyInfo::from_der(&spki).map_err(|_| unreadable())?;
    match info.parsed() {
        Ok(PublicKey::RSA(rsa)) => Ok(rsa.key_size()),
        _ => Err(unreadable()),
    }
}

/// The PEM label that holds a private key in each accepted form.
pub(crate) const PRIVATE_KEY_LABELS: [&str; 3] =
    ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"];

const NOT_PEM: &str = "the private key is not PEM (expected -----BEGIN PRIVATE KEY-----, \
     -----BEGIN EC PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)";

/// A private key's PEM block: its label (one of [`PRIVATE_KEY_LABELS`]) and DER.
pub(crate) struct PrivateKeyBlock {
    pub label: &'static str,
    pub der: Zeroizing<Vec<u8>>,
}

/// The first private key block of `pem` (other blocks, such as the `EC PARAMETERS` that
/// `openssl ecparam -genkey` writes first, are skipped).
pub(crate) fn private_key_block(pem: &SecretString) -> Result<PrivateKeyBlock, String> {
    let mut labels = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.expose_secret().as_bytes()) {
        let Ok(block) = block else { break };
        let der = Zeroizing::new(block.contents);
        if let Some(label) = PRIVATE_KEY_LABELS.iter().find(|l| **l == block.label) {
            return Ok(PrivateKeyBlock { label, der });
        }
        labels.push(block.label);
    }
    if labels.iter().any(|label| label == "ENCRYPTED PRIVATE KEY") {
        return Err(
            "the private key is encrypted (BEGIN ENCRYPTED PRIVATE KEY): give it \
                    unencrypted, e.g. `openssl pkcs8 -topk8 -nocrypt`"
                .to_string(),
        );
    }
    if labels.iter().any(|label| label == "CERTIFICATE") {
        return Err(format!(
            "{NOT_PEM}; found a certificate where the private key was expected"
        ));
    }
    Err(NOT_PEM.to_string())
}

/// Reads a private key in any accepted form.
pub(crate) fn parse_private_key(pem: &SecretString) -> Result<rcgen::KeyPair, String> {
    let block = private_key_block(pem)?;
    rcgen::KeyPair::try_from(block.der.as_slice()).map_err(|_| {
        "the private key's PEM block cannot be read as an RSA or EC private key (PKCS#8, SEC1 \
         or PKCS#1)"
            .to_string()
    })
}

/// The certificate of a PEM text (its first `CERTIFICATE` block).
fn with_certificate<T>(
    pem: &str,
    read: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> Result<T, String>,
) -> Result<T, String> {
    let expected = "expected a PEM certificate (-----BEGIN CERTIFICATE-----)";
    let block = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map_while(Result::ok)
        .find(|block| block.label == "CERTIFICATE");
    let Some(block) = block else {
        if pem.contains("PRIVATE KEY-----") {
            return Err(format!(
                "the certificate is not PEM: {expected}; found a private key"
            ));
        }
        return Err(format!("the certificate is not PEM: {expected}"));
    };
    let certificate = block.parse_x509().map_err(|_| {
        "the certificate's PEM block is not a readable X.509 certificate (DER)".to_string()
    })?;
    read(&certificate)
}

/// `notBefore` and `notAfter` of a PEM certificate.
pub fn certificate_validity(pem: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    with_certificate(pem, |certificate| {
        let validity = certificate.validity();
        let time = |name: &str, at: &x509_parser::time::ASN1Time| {
            DateTime::from_timestamp(at.timestamp(), 0)
                .ok_or_else(|| format!("the certificate's {name} is out of range"))
        };
        Ok((
            time("notBefore", &validity.not_before)?,
            time("notAfter", &validity.not_after)?,
        ))
    })
}

/// Whether `certificate` (PEM) holds the public key of `private_key` (PEM). For import: a
/// mismatched pair is refused before any call.
pub fn certificate_matches_key(
    certificate: &str,
    private_key: &SecretString,
) -> Result<bool, String> {
    use rcgen::PublicKeyData as _;
    let key = parse_private_key(private_key)?;
    with_certificate(certificate, |certificate| {
        // The raw public key (RSAPublicKey DER, or the EC point), as in the certificate's
        // subjectPublicKey bit string: both DER, so equal keys are equal bytes.
        Ok(certificate.public_key().subject_public_key.data.as_ref() == key.der_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 86_400);

    #[test]
    fn kinds_parse_and_name_the_accepted_values() {
        for kind in KeyKind::ALL {
            assert_eq!(KeyKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(KeyKind::parse(&kind.as_str().to_uppercase()), Ok(kind));
        }
        let err = KeyKind::parse("rsa-2048").unwrap_err();
        assert!(
            err.contains("ec-p256, ec-p384, rsa-3072, rsa-4096"),
            "{err}"
        );
        assert_eq!(KeyKind::Rsa4096.algorithm(), "PS256");
        assert_eq!(KeyKind::EcP384.algorithm(), "ES384");
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in KeyKind::ALL {
            let before = Utc::now();
            let new = generate_certificate(kind, "rotator test", YEAR).unwrap();
            let after = Utc::now();
            assert!(
                new.private_key
                    .expose_secret()
                    .starts_with("-----BEGIN PRIVATE KEY-----"),
                "{kind}"
            );
            assert!(new.certificate.starts_with("-----BEGIN CERTIFICATE-----"));
            assert_eq!(
                algorithm_of_private_key(&new.private_key),
                Ok(kind.algorithm()),
                "{kind}"
            );
            let (from, until) = certificate_validity(&new.certificate).unwrap();
            assert_eq!((from, until), (new.not_before, new.not_after));
            let skew = chrono::Duration::minutes(5);
            let second = chrono::Duration::seconds(1);
            assert!(
                from >= before - skew - second && from <= after - skew,
                "{kind}"
            );
            let validity = chrono::Duration::from_std(YEAR).unwrap();
            assert!(
                until >= before + validity - second && until <= after + validity,
                "{kind}"
            );
            assert_eq!(
                certificate_matches_key(&new.certificate, &new.private_key),
                Ok(true)
            );
            let other = generate_certificate(kind, "other", YEAR).unwrap();
            assert_eq!(
                certificate_matches_key(&new.certificate, &other.private_key),
                Ok(false),
                "{kind}"
            );
        }
    }

    #[test]
    fn the_common_name_is_the_subject() {
        let new = generate_certificate(KeyKind::EcP256, "acme rotator", YEAR).unwrap();
        let subject = with_certificate(&new.certificate, |c| Ok(c.subject().to_string()));
        assert_eq!(subject.unwrap(), "CN=acme rotator");
    }

    /// A key of `alg` as rcgen serialises it (PKCS#8) and its PEM.
    fn pkcs8(alg: &'static rcgen::SignatureAlgorithm) -> SecretString {
        SecretString::from(rcgen::KeyPair::generate_for(alg).unwrap().serialize_pem())
    }

    #[test]
    fn p521_and_small_rsa_are_refused() {
        let err = algorithm_of_private_key(&pkcs8(&rcgen::PKCS_ECDSA_P521_SHA512)).unwrap_err();
        assert!(err.contains("P-521") && err.contains("ES512"), "{err}");
        let small =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let err = algorithm_of_private_key(&SecretString::from(small.serialize_pem())).unwrap_err();
        assert!(err.contains("2048 bits") && err.contains("3072"), "{err}");
    }

    /// The same key in SEC1 and PKCS#1 forms (aws-lc-rs writes them; openssl does by default).
    #[test]
    fn sec1_and_pkcs1_keys_are_read() {
        use aws_lc_rs::encoding::AsDer as _;
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        )
        .unwrap();
        let sec1 = ec.private_key().as_der().unwrap();
        let pem = pem_of("EC PRIVATE KEY", sec1.as_ref());
        assert_eq!(algorithm_of_private_key(&pem), Ok("ES384"));

        // PKCS#1 is the private key octet string inside PKCS#8 (RFC 5208).
        let rsa =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
                .unwrap();
        let pkcs8 = rsa.serialize_der();
        let (_, info) = x509_parser::der_parser::parse_der(&pkcs8).unwrap();
        let fields = info.as_sequence().unwrap();
        let pkcs1 = fields[2].as_slice().unwrap();
        let pem = pem_of("RSA PRIVATE KEY", pkcs1);
        assert_eq!(algorithm_of_private_key(&pem), Ok("PS256"));

        // `openssl ecparam -genkey` writes the parameters first.
        let with_params = SecretString::from(format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            pem_of("EC PRIVATE KEY", sec1.as_ref()).expose_secret()
        ));
        assert_eq!(algorithm_of_private_key(&with_params), Ok("ES384"));
    }

    pub(crate) fn pem_of(label: &str, der: &[u8]) -> SecretString {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).unwrap())
            .collect();
        SecretString::from(format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        ))
    }

    #[test]
    fn bad_pem_errors_never_contain_the_input() {
        let secretish = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs";
        let inputs = [
            secretish.to_string(),
            format!("-----BEGIN PRIVATE KEY-----\n{secretish}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{secretish}"),
            format!(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{secretish}\n-----END ENCRYPTED \
                 PRIVATE KEY-----\n"
            ),
            String::new(),
        ];
        for input in inputs {
            let key = SecretString::from(input.clone());
            let err = algorithm_of_private_key(&key).unwrap_err();
            assert!(!err.contains(secretish), "{err}");
            let err = certificate_matches_key("-----BEGIN CERTIFICATE-----", &key).unwrap_err();
            assert!(!err.contains(secretish), "{err}");
            let err = certificate_validity(&input).unwrap_err();
            assert!(!err.contains(secretish), "{err}");
            assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
        }
        let err = algorithm_of_private_key(&SecretString::from(secretish.to_string()));
        assert_eq!(err.unwrap_err(), NOT_PEM);
        assert!(NOT_PEM.contains("expected -----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn a_certificate_given_as_the_key_is_named() {
        let new = generate_certificate(KeyKind::EcP256, "x", YEAR).unwrap();
        let err =
            algorithm_of_private_key(&SecretString::from(new.certificate.clone())).unwrap_err();
        assert!(err.contains("found a certificate"), "{err}");
        let err = certificate_validity(new.private_key.expose_secret()).unwrap_err();
        assert!(err.contains("found a private key"), "{err}");
        assert!(!err.contains(new.private_key.expose_secret()));
    }
}
