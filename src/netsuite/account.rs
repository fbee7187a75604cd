//! NetSuite account ids and where an account's token endpoints live.
//!
//! One id has two spellings: the realm form (`123456_SB1`, uppercase with `_`) used in OAuth
//! `realm`, `nlauth_account` and `datacenterurls`, and the host form (`123456-sb1`, lowercase
//! with `-`) used in host names. [`AccountId`] holds the realm form and derives the other.
//! Both types are cheap to clone and share their text: a daemon keeps one copy per account,
//! not one per integration.

use std::sync::Arc;

/// A NetSuite account id in its canonical (realm) form, e.g. `123456_SB1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountId(Arc<str>);

/// What a valid account id looks like, for error messages.
const EXPECTED_FORM: &str = "an account id such as 123456, or 123456_SB1 for a sandbox \
     (letters and digits, optionally followed by `_` or `-` and a suffix)";

impl AccountId {
    /// Accepts `123456`, `123456_SB1`, `123456_sb1` and `123456-sb1` (surrounding whitespace
    /// ignored) and normalises to the realm form.
    pub fn parse(raw: &str) -> Result<AccountId, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(format!("account id is empty: expected {EXPECTED_FORM}"));
        }
        let (main, suffix) = match trimmed.split_once(['_', '-']) {
            Some((main, suffix)) => (main, Some(suffix)),
            None => (trimmed, None),
        };
        let is_word =
            |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric());
        if !is_word(main) || !suffix.is_none_or(is_word) {
            return Err(format!(
                "account id {:?} is not valid: expected {EXPECTED_FORM}",
                shorten(trimmed)
            ));
        }
        Ok(AccountId(
            trimmed.to_ascii_uppercase().replace('-', "_").into(),
        ))
    }

    /// `123456_SB1`: the form used in `realm` and `nlauth_account`.
    pub fn realm(&self) -> &str {
        &self.0
    }

    /// `123456-sb1`: the form used in host names.
    pub fn host_label(&self) -> String {
        self.0.to_ascii_lowercase().replace('_', "-")
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keeps an invalid id readable in an error message even when someone pasted a paragraph.
fn shorten(raw: &str) -> String {
    const LIMIT: usize = 40;
    if raw.chars().count() <= LIMIT {
        return raw.to_string();
    }
    let head: String = raw.chars().take(LIMIT).collect();
    format!("{head}…")
}

/// Where an account's token endpoints live.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub base_url: Arc<str>,
}

impl Endpoint {
    /// The configured override (a simulator, a proxy; trailing `/` dropped) or the account's
    /// RESTlet domain, `https://<host label>.restlets.api.netsuite.com`.
    pub fn for_account(account: &AccountId, override_base: Option<&str>) -> Endpoint {
        let base_url = match override_base {
            Some(base) => base.trim().trim_end_matches('/').into(),
            None => format!("https://{}.restlets.api.netsuite.com", account.host_label()).into(),
        };
        Endpoint { base_url }
    }

    /// The configured override (trailing `/` dropped) or the account's SuiteTalk REST domain,
    /// `https://<host label>.suitetalk.api.netsuite.com`: where the OAuth 2.0 token endpoint
    /// and the certificate rotation endpoint live (NetSuite's help shows the RESTlet domain in
    /// one place; the override covers that).
    pub fn m2m_for_account(account: &AccountId, override_base: Option<&str>) -> Endpoint {
        let base_url = match override_base {
            Some(base) => base.trim().trim_end_matches('/').into(),
            None => format!(
                "https://{}.suitetalk.api.netsuite.com",
                account.host_label()
            )
            .into(),
        };
        Endpoint { base_url }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_spellings_and_normalises_to_realm_form() {
        for raw in [
            "123456_SB1",
            "123456_sb1",
            "123456-sb1",
            "123456-SB1",
            " 123456_SB1\n",
        ] {
            let id = AccountId::parse(raw).unwrap();
            assert_eq!(id.realm(), "123456_SB1", "from {raw:?}");
            assert_eq!(id.host_label(), "123456-sb1", "from {raw:?}");
        }
        let production = AccountId::parse("123456").unwrap();
        assert_eq!(production.realm(), "123456");
        assert_eq!(production.host_label(), "123456");
        assert_eq!(production.to_string(), "123456");
    }

    #[test]
    fn accepts_lettered_ids() {
        assert_eq!(
            AccountId::parse("tstdrv1234567").unwrap().realm(),
            "TSTDRV1234567"
        );
        assert_eq!(
            AccountId::parse("123456_rp").unwrap().host_label(),
            "123456-rp"
        );
    }

    #[test]
    fn rejects_empty_with_the_expected_form() {
        for raw in ["", "   "] {
            let message = AccountId::parse(raw).unwrap_err();
            assert!(message.contains("empty"), "{message}");
            assert!(message.contains("123456_SB1"), "{message}");
        }
    }

    #[test]
    fn rejects_garbage_with_the_expected_form() {
        for raw in [
            "123 456",
            "123456_",
            "_SB1",
            "123456_SB1_X",
            "123456__SB1",
            "123456.SB1",
            "https://123456.app.netsuite.com",
            "12345ü",
        ] {
            let message = AccountId::parse(raw).unwrap_err();
            assert!(message.contains("expected"), "{raw:?}: {message}");
            assert!(message.contains("123456_SB1"), "{raw:?}: {message}");
        }
    }

    #[test]
    fn long_garbage_is_shortened_in_the_message() {
        let raw = "x".repeat(500) + "!";
        let message = AccountId::parse(&raw).unwrap_err();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn endpoint_defaults_to_the_restlet_domain() {
        let id = AccountId::parse("123456_SB1").unwrap();
        assert_eq!(
            &*Endpoint::for_account(&id, None).base_url,
            "https://123456-sb1.restlets.api.netsuite.com"
        );
    }

    #[test]
    fn m2m_endpoint_defaults_to_the_suitetalk_domain() {
        let id = AccountId::parse("123456_SB1").unwrap();
        assert_eq!(
            &*Endpoint::m2m_for_account(&id, None).base_url,
            "https://123456-sb1.suitetalk.api.netsuite.com"
        );
        let endpoint = Endpoint::m2m_for_account(&id, Some(" http://127.0.0.1:8700/ "));
        assert_eq!(&*endpoint.base_url, "http://127.0.0.1:8700");
    }

    #[test]
    fn endpoint_override_loses_trailing_slashes() {
        let id = AccountId::parse("123456").unwrap();
        let endpoint = Endpoint::for_account(&id, Some("http://127.0.0.1:8700/"));
        assert_eq!(&*endpoint.base_url, "http://127.0.0.1:8700");
        let endpoint = Endpoint::for_account(&id, Some("http://127.0.0.1:8700/ns//"));
        assert_eq!(&*endpoint.base_url, "http://127.0.0.1:8700/ns");
    }
}
