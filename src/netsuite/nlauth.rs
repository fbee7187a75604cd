//! The NLAuth `Authorization` header that authenticates `issuetoken`:
//! `NLAuth nlauth_account=…, nlauth_email=…, nlauth_signature=…, nlauth_role=…[, nlauth_otp=…]`.
//!
//! Every value is percent-encoded with the RFC 3986 rules of [`super::encode`]: NetSuite answers
//! `INVALID_LOGIN_ATTEMPT` when a password's special characters arrive unescaped.

use secrecy::ExposeSecret;

use super::encode::percent_encode_into;
use super::{AccountId, NlauthLogin};
use crate::secret::SecretString;

/// Builds the header value. It holds the password, so it comes back as a secret; `otp` is the
/// TOTP code when the role requires 2FA.
pub fn nlauth_header(account: &AccountId, login: &NlauthLogin, otp: Option<&str>) -> SecretString {
    let password = login.password.expose_secret();
    let mut header = zeroize::Zeroizing::new(String::with_capacity(
        96 + account.realm().len() + login.email.len() * 3 + password.len() * 3 + login.role.len(),
    ));
    header.push_str("NLAuth nlauth_account=");
    percent_encode_into(&mut header, account.realm());
    header.push_str(", nlauth_email=");
    percent_encode_into(&mut header, &login.email);
    header.push_str(", nlauth_signature=");
    percent_encode_into(&mut header, password);
    header.push_str(", nlauth_role=");
    percent_encode_into(&mut header, &login.role);
    if let Some(code) = otp {
        header.push_str(", nlauth_otp=");
        percent_encode_into(&mut header, code);
    }
    SecretString::from(header.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(email: &str, password: &str, role: &str) -> NlauthLogin {
        NlauthLogin {
            email: email.to_string(),
            password: SecretString::from(password),
            role: role.to_string(),
            totp_secret: None,
        }
    }

    #[test]
    fn encodes_every_value_of_an_awkward_password() {
        let account = AccountId::parse("123456_sb1").unwrap();
        let login = login("ops+ns@example.com", "p, a&s=s\"w%rd ü€", "1001");
        let header = nlauth_header(&account, &login, None);
        assert_eq!(
            header.expose_secret(),
            "NLAuth nlauth_account=123456_SB1, nlauth_email=ops%2Bns%40example.com, \
             nlauth_signature=p%2C%20a%26s%3Ds%22w%25rd%20%C3%BC%E2%82%AC, nlauth_role=1001"
        );
    }

    /// The published escaping example (a public C# NetSuite client's tests; the protocol page,
    /// "Published test vectors").
    #[test]
    fn published_nlauth_escaping_vector() {
        let account = AccountId::parse("123456").unwrap();
        let login = login("jsmith+1@example.com", "du%my p@$$word#", "37");
        let header = nlauth_header(&account, &login, None);
        assert_eq!(
            header.expose_secret(),
            "NLAuth nlauth_account=123456, nlauth_email=jsmith%2B1%40example.com, \
             nlauth_signature=du%25my%20p%40%24%24word%23, nlauth_role=37"
        );
    }

    #[test]
    fn appends_the_otp_when_given() {
        let account = AccountId::parse("123456").unwrap();
        let header = nlauth_header(&account, &login("a@b.c", "pw", "3"), Some("012345"));
        assert_eq!(
            header.expose_secret(),
            "NLAuth nlauth_account=123456, nlauth_email=a%40b.c, nlauth_signature=pw, \
             nlauth_role=3, nlauth_otp=012345"
        );
    }

    #[test]
    fn debug_output_hides_the_header() {
        let account = AccountId::parse("123456").unwrap();
        let header = nlauth_header(&account, &login("a@b.c", "hunter2", "3"), None);
        assert!(!format!("{header:?}").contains("hunter2"));
    }
}
