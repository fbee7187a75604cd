//! The login lock-out latch: after NetSuite refuses an NLAuth login, no login is tried again
//! with the same configuration until it changes or an operator asks.
//!
//! NetSuite locks a user out after a few failed logins, and every `issuetoken` is a login. A
//! daemon that tried a wrong password at every scheduled run would lock its user out within
//! the day. So a refused login latches, in two places:
//! - the integration's store ([`LoginLatch`], written by the rotation that was refused), so
//!   that a restart, another replica and the CLI all see it and a `status` shows it;
//! - a [`LoginGate`] shared in this process by every integration resolved from the same login
//!   section, so that a second integration with the same wrong password does not make a
//!   second failed login before its own store knows (it copies the latch into its store).
//!
//! The latch holds a fingerprint of the login it refused (account, email, role, password, TOTP
//! secret): a login configuration that differs (a fixed password, another role) is tried, once.
//! The fingerprint is PBKDF2-HMAC-SHA256 with a random salt and [`ITERATIONS`] rounds, so the
//! store never holds the password, nor anything cheap to guess it from. An operator's
//! `rotate --integration NAME` lifts the latch for one try ([`crate::rotation::RotateOptions`]).

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::netsuite::{AccountId, NetSuiteError, NlauthLogin};
use crate::store::LoginLatch;

/// PBKDF2 rounds of a fingerprint. Computed once per refused login and once per check of a
/// latched integration: rare, so it can be slow for a guesser.
const ITERATIONS: u32 = 100_000;
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;
/// Names the fingerprint's scheme, so that another one can follow.
const SCHEME: &str = "pbkdf2-sha256";

/// The latch of one login section, shared by the integrations resolved from it, with the
/// integration whose store it came from.
#[derive(Debug, Default)]
pub struct LoginGate {
    latched: Mutex<Option<(Arc<str>, LoginLatch)>>,
}

impl LoginGate {
    /// The latch an integration with this login recorded in this process, if any.
    pub fn latched(&self) -> Option<LoginLatch> {
        self.latched
            .lock()
            .unwrap()
            .as_ref()
            .map(|(_, l)| l.clone())
    }

    /// `origin`'s store holds `latch`.
    pub fn set(&self, origin: &Arc<str>, latch: LoginLatch) {
        *self.latched.lock().unwrap() = Some((origin.clone(), latch));
    }

    /// A login with this configuration succeeded.
    pub fn lift(&self) {
        *self.latched.lock().unwrap() = None;
    }

    /// `origin`'s store was read without a latch: if the gate's latch came from it, someone
    /// lifted it there (an operator's `rotate` in another process), so it is lifted here too.
    pub fn forget_if_from(&self, origin: &str) {
        let mut latched = self.latched.lock().unwrap();
        if latched.as_ref().is_some_and(|(from, _)| &**from == origin) {
            *latched = None;
        }
    }
}

/// A new latch for `login`, refused at `at` with `error`.
pub fn latch_for(
    account: &AccountId,
    login: &NlauthLogin,
    at: DateTime<Utc>,
    error: &NetSuiteError,
) -> LoginLatch {
    let salt: [u8; SALT_BYTES] = rand::random();
    LoginLatch {
        at,
        login: fingerprint(account, login, &salt),
        reason: reason_code(error),
    }
}

/// Whether `latch` was recorded for this very login configuration (then it holds); false for
/// a changed one, and for a fingerprint this version cannot read (it then tries once, which a
/// downgrade or a hand edit may cost).
pub fn holds_for(latch: &LoginLatch, account: &AccountId, login: &NlauthLogin) -> bool {
    let mut parts = latch.login.split(':');
    let (Some(SCHEME), Some(_), Some(salt), Some(_), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Ok(salt) = STANDARD_NO_PAD.decode(salt) else {
        return false;
    };
    fingerprint(account, login, &salt) == latch.login
}

/// `pbkdf2-sha256:<rounds>:<salt>:<hash>`, base64 without padding: only characters an AWS tag
/// value may hold.
fn fingerprint(account: &AccountId, login: &NlauthLogin, salt: &[u8]) -> String {
    let mut input = zeroize::Zeroizing::new(Vec::with_capacity(256));
    let totp = login.totp_secret.as_ref().map(|s| s.expose_secret());
    for part in [
        account.realm(),
        &login.email,
        &login.role,
        login.password.expose_secret(),
        totp.unwrap_or(""),
    ] {
        // Length-prefixed, so that no two different logins give the same input.
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part.as_bytes());
    }
    let mut hash = [0u8; HASH_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha256>(&input, salt, ITERATIONS, &mut hash);
    format!(
        "{SCHEME}:{ITERATIONS}:{}:{}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(hash)
    )
}

/// What NetSuite answered, short: the status and the error code, in characters an AWS tag
/// value may hold. The error's text is not kept: it is in the log and the alert.
fn reason_code(error: &NetSuiteError) -> String {
    let code = match error {
        NetSuiteError::LoginFailed { status, detail, .. } => {
            format!(
                "{status} {}",
                detail.code.as_deref().unwrap_or("login refused")
            )
        }
        other => other.status().map_or_else(
            || "login refused".to_string(),
            |s| format!("{s} login refused"),
        ),
    };
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(*c))
        .take(128)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    fn login(password: &str) -> NlauthLogin {
        NlauthLogin {
            email: "integration@example.com".into(),
            password: SecretString::from(password),
            role: "1001".into(),
            totp_secret: None,
        }
    }

    fn account() -> AccountId {
        AccountId::parse("1234567_SB1").unwrap()
    }

    fn refused() -> NetSuiteError {
        NetSuiteError::LoginFailed {
            call: crate::netsuite::Call::IssueToken,
            status: 401,
            detail: crate::netsuite::NetSuiteDetail {
                code: Some("INVALID_LOGIN_CREDENTIALS".into()),
                message: Some("Invalid login attempt.".into()),
            },
        }
    }

    #[test]
    fn a_latch_holds_for_the_same_login_and_not_for_a_changed_one() {
        let latch = latch_for(&account(), &login("wrong"), Utc::now(), &refused());
        assert!(holds_for(&latch, &account(), &login("wrong")));
        assert!(!holds_for(&latch, &account(), &login("right")));
        let other_role = NlauthLogin {
            role: "3".into(),
            ..login("wrong")
        };
        assert!(!holds_for(&latch, &account(), &other_role));
        let other_account = AccountId::parse("7654321").unwrap();
        assert!(!holds_for(&latch, &other_account, &login("wrong")));
    }

    #[test]
    fn the_latch_keeps_no_password_and_only_tag_safe_characters() {
        let latch = latch_for(&account(), &login("s3cr3t-P@ss"), Utc::now(), &refused());
        assert!(!latch.login.contains("s3cr3t"));
        assert_eq!(latch.reason, "401 INVALID_LOGIN_CREDENTIALS");
        let tag_safe = |s: &str| {
            s.chars()
                .all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c))
        };
        assert!(tag_safe(&latch.login), "{}", latch.login);
        assert!(tag_safe(&latch.reason));
        // Salted: the same login latched twice gives two fingerprints.
        let again = latch_for(&account(), &login("s3cr3t-P@ss"), Utc::now(), &refused());
        assert_ne!(latch.login, again.login);
    }

    #[test]
    fn an_unreadable_fingerprint_does_not_hold() {
        let mut latch = latch_for(&account(), &login("wrong"), Utc::now(), &refused());
        latch.login = "md5:abc".into();
        assert!(!holds_for(&latch, &account(), &login("wrong")));
    }
}
