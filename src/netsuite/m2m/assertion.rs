//! The client assertion of the OAuth 2.0 client-credentials flow: a JWT signed with the
//! integration's private key (jsonwebtoken, aws-lc-rs backend), naming the certificate it goes
//! with (`kid`), the client (`iss`), the token endpoint (`aud`) and the scopes.
//!
//! A fresh assertion is made for every attempt: `iat` must be current, and NetSuite refuses an
//! `exp` 60 minutes or more after `iat`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::M2mCredentials;
use super::keys::{PrivateKeyBlock, private_key_block};
use crate::secret::SecretString;

/// How long an assertion is valid: under NetSuite's 60 minutes, with room for clock skew.
pub const ASSERTION_LIFETIME_SECS: i64 = 55 * 60;
const _: () = assert!(ASSERTION_LIFETIME_SECS < 3600);
const _: () = assert!(ASSERTION_LIFETIME_SECS < 3600);

/// The JWT algorithms NetSuite accepts that this tool can sign (no ES512: jsonwebtoken lacks it).
fn algorithm(name: &str) -> Result<Algorithm, String> {
    match name.trim() {
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "PS256" => Ok(Algorithm::PS256),
        "PS384" => Ok(Algorithm::PS384),
        "PS512" => Ok(Algorithm::PS512),
        other => Err(format!(
            "algorithm {:?} cannot sign a NetSuite client assertion: expected ES256, ES384, \
             PS256, PS384 or PS512",
            other.chars().take(16).collect::<String>()
        )),
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The signed assertion for `audience` (the token endpoint URL) at `now` (seconds since the
/// epoch). Errors name the field and never quote the key or the client id.
pub(crate) fn client_assertion(
    creds: &M2mCredentials<'_>,
    audience: &str,
    scopes: &[String],
    now: i64,
) -> Result<SecretString, String> {
    let alg = algorithm(creds.algorithm)?;
    if creds.certificate_id.trim().is_empty() {
        return Err("the certificate id (JWT kid) is empty".to_string());
    }
    if creds.client_id.expose_secret().trim().is_empty() {
        return Err("the client id (JWT iss) is empty".to_string());
    }
    let scope = scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        // The help text's form; NetSuite's own sample sends a JSON array, both are accepted.
        .join(",");
    if scope.is_empty() {
        return Err(
            "no scope to ask for: expected restlets, rest_webservices and/or suite_analytics"
                .to_string(),
        );
    }
    let key = encoding_key(creds.private_key, alg)?;
    let mut header = Header::new(alg);
    header.typ = Some("JWT".to_string());
    header.kid = Some(creds.certificate_id.trim().to_string());
    let claims = Claims {
        iss: creds.client_id.expose_secret(),
        scope,
        aud: audience,
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    jsonwebtoken::encode(&header, &claims, &key)
        .map(SecretString::from)
        // jsonwebtoken's errors name a kind (InvalidKeyFormat, InvalidEcdsaKey), not the key.
        .map_err(|err| {
            format!(
                "cannot sign the client assertion with {alg:?}: {err}; the private key does not \
                 go with the algorithm"
            )
        })
}

/// The private key as jsonwebtoken takes it: PKCS#8 DER for EC, PKCS#1 DER for RSA.
fn encoding_key(pem: &SecretString, alg: Algorithm) -> Result<EncodingKey, String> {
    let PrivateKeyBlock { label, der } = private_key_block(pem)?;
    let ec = matches!(alg, Algorithm::ES256 | Algorithm::ES384);
    let mismatch =
        || format!("the private key ({label}) cannot be read as the key of algorithm {alg:?}");
    match (ec, label) {
        (true, "PRIVATE KEY") => Ok(EncodingKey::from_ec_der(&der)),
        (true, "EC PRIVATE KEY") => {
            // SEC1: re-encoded as PKCS#8, the only EC form jsonwebtoken signs with.
            let curve = if alg == Algorithm::ES256 {
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(curve, &der)
                .map_err(|_| mismatch())?;
            let pkcs8 = pair.to_pkcs8v1().map_err(|_| mismatch())?;
            Ok(EncodingKey::from_ec_der(pkcs8.as_ref()))
        }
        (false, "RSA PRIVATE KEY") => Ok(EncodingKey::from_rsa_der(&der)),
        (false, "PRIVATE KEY") => {
            // jsonwebtoken takes the PKCS#1 key out of a PKCS#8 PEM itself; it is given one
            // block only (the input may hold others before the key).
            use base64::Engine as _;
            let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*der));
            let single = Zeroizing::new(format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                body.as_str()
            ));
            EncodingKey::from_rsa_pem(single.as_bytes()).map_err(|_| mismatch())
        }
        _ => Err(mismatch()),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;
    use crate::netsuite::m2m::keys::{KeyKind, generate_certificate};

    fn creds<'a>(
        client_id: &'a SecretString,
        algorithm: &'a str,
        key: &'a SecretString,
    ) -> M2mCredentials<'a> {
        M2mCredentials {
            client_id,
            certificate_id: "cert-1",
            algorithm,
            private_key: key,
        }
    }

    #[test]
    fn assertions_verify_with_the_certificate_and_carry_the_claims() {
        let client_id = SecretString::from("client-123".to_string());
        let scopes = vec!["rest_webservices".to_string(), "restlets".to_string()];
        for kind in KeyKind::ALL {
            let new =
                generate_certificate(kind, "t", std::time::Duration::from_secs(86_400)).unwrap();
            let creds = creds(&client_id, kind.algorithm(), &new.private_key);
            let jwt = client_assertion(&creds, "https://x/token", &scopes, 1_700_000_000).unwrap();
            let header = jsonwebtoken::decode_header(jwt.expose_secret()).unwrap();
            assert_eq!(header.kid.as_deref(), Some("cert-1"));
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            assert_eq!(format!("{:?}", header.alg), kind.algorithm());

            let certificate = x509_parser::pem::parse_x509_pem(new.certificate.as_bytes())
                .unwrap()
                .1;
            let parsed = certificate.parse_x509().unwrap();
            let public = parsed.public_key();
            let key = if kind.algorithm().starts_with("ES") {
                let point = public.subject_public_key.data.as_ref();
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                DecodingKey::from_ec_components(&b64.encode(x), &b64.encode(y)).unwrap()
            } else {
                DecodingKey::from_rsa_der(public.subject_public_key.data.as_ref())
            };
            let mut validation = Validation::new(header.alg);
            validation.validate_exp = false;
            validation.set_audience(&["https://x/token"]);
            let data =
                jsonwebtoken::decode::<serde_json::Value>(jwt.expose_secret(), &key, &validation)
                    .unwrap_or_else(|err| panic!("{kind}: {err}"));
            let claims = data.claims;
            assert_eq!(claims["iss"], "client-123");
            assert_eq!(claims["scope"], "rest_webservices,restlets");
            assert_eq!(claims["iat"], 1_700_000_000);
            assert_eq!(claims["exp"], 1_700_000_000 + ASSERTION_LIFETIME_SECS);
        }
    }

    fn pem_of(label: &str, der: &[u8]) -> SecretString {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        SecretString::from(format!(
            "-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"
        ))
    }

    /// Signs with `pem` as `alg` and verifies with the key's own public part.
    fn signs_and_verifies(pem: &SecretString, alg: &str) {
        use rcgen::PublicKeyData as _;
        let client_id = SecretString::from("c".to_string());
        let jwt = client_assertion(&creds(&client_id, alg, pem), "aud", &["restlets".into()], 0)
            .unwrap_or_else(|err| panic!("{alg}: {err}"));
        let public = crate::netsuite::m2m::keys::parse_private_key(pem).unwrap();
        let key = if alg.starts_with("ES") {
            DecodingKey::from_ec_der(public.der_bytes())
        } else {
            DecodingKey::from_rsa_der(public.der_bytes())
        };
        let header = jsonwebtoken::decode_header(jwt.expose_secret()).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(jwt.expose_secret(), &key, &validation)
            .unwrap_or_else(|err| panic!("{alg}: {err}"));
    }

    #[test]
    fn sec1_and_pkcs1_keys_sign_too() {
        use aws_lc_rs::encoding::AsDer as _;
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        let sec1 = ec.private_key().as_der().unwrap();
        signs_and_verifies(&pem_of("EC PRIVATE KEY", sec1.as_ref()), "ES256");

        // PKCS#1 is the private key octet string inside PKCS#8 (RFC 5208).
        let rsa =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
                .unwrap();
        let pkcs8 = rsa.serialize_der();
        let (_, info) = x509_parser::der_parser::parse_der(&pkcs8).unwrap();
        let pkcs1 = info.as_sequence().unwrap()[2].as_slice().unwrap();
        signs_and_verifies(&pem_of("RSA PRIVATE KEY", pkcs1), "PS256");
        signs_and_verifies(&pem_of("PRIVATE KEY", &pkcs8), "PS384");
    }

    #[test]
    fn a_key_of_the_wrong_family_or_alg_is_refused_without_quoting_anything() {
        let client_id = SecretString::from("client-secret-id".to_string());
        let ec =
            generate_certificate(KeyKind::EcP256, "t", std::time::Duration::from_secs(60)).unwrap();
        let scopes = vec!["restlets".to_string()];
        for alg in ["PS256", "ES512", "RS256", "none"] {
            let err = client_assertion(&creds(&client_id, alg, &ec.private_key), "a", &scopes, 0)
                .unwrap_err();
            assert!(!err.contains("client-secret-id"), "{err}");
            assert!(!err.contains(ec.private_key.expose_secret()), "{err}");
        }
        let err = client_assertion(&creds(&client_id, "ES256", &ec.private_key), "a", &[], 0)
            .unwrap_err();
        assert!(err.contains("scope"), "{err}");
    }
}
