//! TOTP codes for `nlauth_otp` (RFC 6238 as authenticator apps use it: 6 digits, 30 s steps,
//! HMAC-SHA1), from the base32 secret the user enrolled in NetSuite's 2FA.
//!
//! The secret is accepted the way authenticator apps show it: any case, with spaces or dashes
//! between groups, with or without `=` padding.

use secrecy::ExposeSecret;
use totp_rs::{Algorithm, Builder, Secret};
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// Why a TOTP secret cannot be used. Names the config field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error(
        "login totp_secret is not valid base32 (expected letters A-Z and digits 2-7, as the \
         authenticator app shows it; spaces and `=` padding are ignored)"
    )]
    NotBase32,
    #[error("login totp_secret is empty after removing spaces and padding")]
    Empty,
}

/// The 6-digit code for `unix_time` (seconds since the epoch).
pub fn totp_code(secret_base32: &SecretString, unix_time: u64) -> Result<String, TotpError> {
    totp_code_with_digits(secret_base32, unix_time, 6)
}

/// The code for the current time.
pub fn totp_code_now(secret_base32: &SecretString) -> Result<String, TotpError> {
    totp_code(secret_base32, super::oauth1::unix_now())
}

/// Checks that a secret decodes, so configuration errors surface at start-up rather than at
/// the first rotation.
pub fn validate_totp_secret(secret_base32: &SecretString) -> Result<(), TotpError> {
    decode_secret(secret_base32).map(drop)
}

pub(crate) fn totp_code_with_digits(
    secret_base32: &SecretString,
    unix_time: u64,
    digits: u8,
) -> Result<String, TotpError> {
    let secret = decode_secret(secret_base32)?;
    // `build_noncompliant` rather than `build`: `build` refuses secrets shorter than 128 bits,
    // and some authenticator enrolments hand out 80-bit secrets that NetSuite still accepts.
    // The step, digits and algorithm below are fixed and valid, so nothing else is skipped.
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_step_duration(30)
        .with_secret(secret)
        .build_noncompliant();
    Ok(totp.generate(unix_time).to_string())
}

fn decode_secret(secret_base32: &SecretString) -> Result<Secret, TotpError> {
    let normalised: Zeroizing<String> = Zeroizing::new(
        secret_base32
            .expose_secret()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    if normalised.is_empty() {
        return Err(TotpError::Empty);
    }
    let secret = Secret::try_from_base32(normalised.as_str()).map_err(|_| TotpError::NotBase32)?;
    if secret.as_bytes().is_empty() {
        return Err(TotpError::NotBase32);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B seed for HMAC-SHA1: ASCII "12345678901234567890", in base32.
    const RFC_SEED_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    /// Appendix B, SHA1 rows: (time, 8-digit TOTP).
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn rfc6238_sha1_vectors_with_eight_digits() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(
                totp_code_with_digits(&secret(RFC_SEED_BASE32), time, 8).unwrap(),
                expected,
                "T = {time}"
            );
        }
    }

    #[test]
    fn six_digit_codes_are_the_last_six_of_the_rfc_vectors() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(
                totp_code(&secret(RFC_SEED_BASE32), time).unwrap(),
                expected[2..],
                "T = {time}"
            );
        }
    }

    #[test]
    fn accepts_secrets_as_authenticator_apps_show_them() {
        let expected = totp_code(&secret(RFC_SEED_BASE32), 59).unwrap();
        for shown in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq",
            " GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
        ] {
            assert_eq!(
                totp_code(&secret(shown), 59).unwrap(),
                expected,
                "{shown:?}"
            );
        }
        // 10 bytes encode to 16 characters, no padding; 11 bytes need `=` padding.
        assert!(totp_code(&secret("JBSWY3DPEHPK3PXP"), 59).is_ok());
        assert!(totp_code(&secret("JBSWY3DPEHPK3PXPEE======"), 59).is_ok());
    }

    #[test]
    fn bad_base32_names_the_field_and_not_the_value() {
        for bad in ["not base32 at all! 1890", "ABC$DEFG"] {
            let err = totp_code(&secret(bad), 59).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("totp_secret"), "{message}");
            assert!(!message.contains(bad), "{message}");
            assert!(!message.contains("$"), "{message}");
        }
        let err = validate_totp_secret(&secret(" == ")).unwrap_err();
        assert_eq!(err, TotpError::Empty);
        assert!(err.to_string().contains("totp_secret"));
    }
}
