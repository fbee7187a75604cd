//! What the simulator starts with: accounts, their roles, users, integrations and pre-issued
//! tokens, read from TOML (`config/sim-seed.example.toml` documents every key) or built in code.
//!
//! [`Seed::demo`] is a ready one-account world whose values are exposed in [`demo`], so the
//! `demo` command and tests can build a matching client configuration.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// Everything the simulator knows at start.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub accounts: Vec<SeedAccount>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    /// Account id in underscore form (`123456_SB1`); matched case-insensitively.
    pub id: String,
    pub company_name: String,
    #[serde(default = "yes")]
    pub tba_enabled: bool,
    /// "Require Approval during Auto-Installation of Integration".
    #[serde(default)]
    pub require_approval: bool,
    #[serde(default)]
    pub roles: Vec<SeedRole>,
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub integrations: Vec<SeedIntegration>,
    #[serde(default)]
    pub tokens: Vec<SeedToken>,
    /// Integration records with "Client Credentials (Machine to Machine) Grant" checked.
    #[serde(default)]
    pub m2m_clients: Vec<SeedM2mClient>,
}

/// An OAuth 2.0 client-credentials (M2M) integration record.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedM2mClient {
    pub name: String,
    /// The client ID: the assertions' `iss`.
    pub client_id: String,
    /// Certificates uploaded before the simulator starts, one per mapping.
    #[serde(default)]
    pub certificates: Vec<SeedM2mCertificate>,
}

/// A mapping of (entity, role) to an uploaded certificate, as an administrator makes one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedM2mCertificate {
    /// The certificate ID (the JWT `kid`); a random one when left out.
    #[serde(default)]
    pub certificate_id: Option<String>,
    #[serde(deserialize_with = "id")]
    pub entity: String,
    #[serde(deserialize_with = "id")]
    pub role: String,
    /// The PEM certificate (public part).
    pub pem: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRole {
    /// Internal id, as sent in `nlauth_role` (a TOML string or integer).
    #[serde(deserialize_with = "id")]
    pub id: String,
    pub name: String,
    #[serde(default = "default_permissions")]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub web_services_only: bool,
    #[serde(default)]
    pub require_2fa: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    #[serde(deserialize_with = "id")]
    pub entity_id: String,
    pub email: String,
    pub password: SecretString,
    /// Role ids this user holds.
    #[serde(deserialize_with = "ids")]
    pub roles: Vec<String>,
    /// Base32 TOTP seed; with a role that requires 2FA, issuetoken then wants `nlauth_otp`.
    #[serde(default)]
    pub totp_secret: Option<SecretString>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedIntegration {
    pub name: String,
    pub consumer_key: String,
    pub consumer_secret: SecretString,
    #[serde(default)]
    pub state: IntegrationState,
    /// Whether the integration is already installed in the account. An integration that is not
    /// installed is installed by its first issuetoken, and with `require_approval` on the
    /// account it then waits for approval.
    #[serde(default = "yes")]
    pub installed: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationState {
    #[default]
    Enabled,
    Blocked,
    WaitingForApproval,
}

/// A token that exists before the simulator starts (made in the NetSuite UI, say).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedToken {
    pub token_id: String,
    pub token_secret: SecretString,
    /// The owner's email (case-insensitive).
    pub user: String,
    #[serde(deserialize_with = "id")]
    pub role: String,
    pub consumer_key: String,
    pub name: String,
}

/// Why a seed cannot be used. Names files, accounts, emails and role ids; never a secret or a
/// consumer key.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read simulator seed file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("simulator seed {origin} is not valid TOML for a seed: {message}")]
    Parse { origin: String, message: String },
    #[error("simulator seed is inconsistent: {0}")]
    Invalid(String),
}

/// The permission a role needs to issue and revoke its own tokens.
pub const PERMISSION_USER_ACCESS_TOKENS: &str = "user_access_tokens";
/// The permission to use tokens (but not create them).
pub const PERMISSION_LOG_IN_USING_ACCESS_TOKENS: &str = "log_in_using_access_tokens";
/// "Manage own OAuth 2.0 Client Credentials certificates": a role's M2M access tokens may use
/// the certificate rotation endpoint.
pub const PERMISSION_MANAGE_OWN_OAUTH2_CERTIFICATES: &str =
    "manage_own_oauth2_client_credentials_certificates";

fn yes() -> bool {
    true
}

fn default_permissions() -> Vec<String> {
    vec![
        PERMISSION_USER_ACCESS_TOKENS.to_string(),
        PERMISSION_LOG_IN_USING_ACCESS_TOKENS.to_string(),
        PERMISSION_MANAGE_OWN_OAUTH2_CERTIFICATES.to_string(),
    ]
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawId {
    Text(String),
    Number(i64),
}

impl From<RawId> for String {
    fn from(raw: RawId) -> String {
        match raw {
            RawId::Text(s) => s,
            RawId::Number(n) => n.to_string(),
        }
    }
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    RawId::deserialize(d).map(String::from)
}

fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<RawId>::deserialize(d).map(|v| v.into_iter().map(String::from).collect())
}

impl Seed {
    /// Reads a seed from TOML text; `origin` names it in errors (a path, "flags").
    pub fn from_toml(text: &str, origin: &str) -> Result<Seed, SeedError> {
        let seed: Seed = toml::from_str(text).map_err(|e| SeedError::Parse {
            origin: origin.to_string(),
            message: describe_toml_error(text, &e),
        })?;
        seed.validate()?;
        Ok(seed)
    }

    pub fn load(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Seed::from_toml(&text, &path.display().to_string())
    }

    /// Checks the references between the parts of the seed.
    pub fn validate(&self) -> Result<(), SeedError> {
        let invalid = |m: String| Err(SeedError::Invalid(m));
        let mut account_ids = HashSet::new();
        let mut consumer_keys = HashSet::new();
        let mut token_ids = HashSet::new();
        let mut client_ids = HashSet::new();
        for account in &self.accounts {
            let aid = &account.id;
            if aid.is_empty() || aid.contains('-') {
                return invalid(format!(
                    "account id {aid:?} must be non-empty and in underscore form (123456_SB1)"
                ));
            }
            if !account_ids.insert(aid.to_ascii_uppercase()) {
                return invalid(format!("account {aid} appears twice"));
            }
            let mut role_ids = HashSet::new();
            for role in &account.roles {
                if !role_ids.insert(role.id.as_str()) {
                    return invalid(format!("account {aid}: role {} appears twice", role.id));
                }
            }
            let mut emails = HashSet::new();
            for user in &account.users {
                if !emails.insert(user.email.to_lowercase()) {
                    return invalid(format!("account {aid}: user {} appears twice", user.email));
                }
                if let Some(role) = user.roles.iter().find(|r| !role_ids.contains(r.as_str())) {
                    return invalid(format!(
                        "account {aid}: user {} holds role {role}, which the account does not define",
                        user.email
                    ));
                }
                if let Some(secret) = &user.totp_secret
                    && totp_for(secret).is_none()
                {
                    return invalid(format!(
                        "account {aid}: user {}: totp_secret is not base32",
                        user.email
                    ));
                }
            }
            for integration in &account.integrations {
                if integration.consumer_key.is_empty()
                    || !consumer_keys.insert(integration.consumer_key.as_str())
                {
                    return invalid(format!(
                        "account {aid}: integration {:?} has an empty consumer key or one used by \
                         another integration",
                        integration.name
                    ));
                }
            }
            for token in &account.tokens {
                let owner = account
                    .users
                    .iter()
                    .find(|u| u.email.eq_ignore_ascii_case(&token.user));
                let Some(owner) = owner else {
                    return invalid(format!(
                        "account {aid}: token {:?} names user {}, who is not in the account",
                        token.name, token.user
                    ));
                };
                if !owner.roles.contains(&token.role) {
                    return invalid(format!(
                        "account {aid}: token {:?} names role {}, which user {} does not hold",
                        token.name, token.role, owner.email
                    ));
                }
                let known_key = account
                    .integrations
                    .iter()
                    .any(|i| i.consumer_key == token.consumer_key);
                if !known_key {
                    return invalid(format!(
                        "account {aid}: token {:?} names a consumer key no integration of the \
                         account has",
                        token.name
                    ));
                }
                if token.token_id.is_empty() || !token_ids.insert(token.token_id.as_str()) {
                    return invalid(format!(
                        "account {aid}: token {:?} has an empty token_id or one used twice",
                        token.name
                    ));
                }
            }
            for client in &account.m2m_clients {
                if client.client_id.is_empty() || !client_ids.insert(client.client_id.as_str()) {
                    return invalid(format!(
                        "account {aid}: M2M client {:?} has an empty client_id or one used by \
                         another client",
                        client.name
                    ));
                }
                for cert in &client.certificates {
                    let holder = account
                        .users
                        .iter()
                        .any(|u| u.entity_id == cert.entity && u.roles.contains(&cert.role));
                    if !holder {
                        return invalid(format!(
                            "account {aid}: M2M client {:?}: certificate maps entity {} and role \
                             {}, but no user of the account is that entity holding that role",
                            client.name, cert.entity, cert.role
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A ready one-account seed; its values are in [`demo`].
    pub fn demo() -> Seed {
        Seed {
            accounts: vec![SeedAccount {
                id: demo::ACCOUNT.to_string(),
                company_name: demo::COMPANY_NAME.to_string(),
                tba_enabled: true,
                require_approval: false,
                roles: vec![SeedRole {
                    id: demo::ROLE_ID.to_string(),
                    name: demo::ROLE_NAME.to_string(),
                    permissions: default_permissions(),
                    web_services_only: false,
                    require_2fa: false,
                }],
                users: vec![SeedUser {
                    entity_id: demo::ENTITY_ID.to_string(),
                    email: demo::EMAIL.to_string(),
                    password: SecretString::from(demo::PASSWORD),
                    roles: vec![demo::ROLE_ID.to_string()],
                    totp_secret: None,
                }],
                integrations: vec![SeedIntegration {
                    name: demo::INTEGRATION_NAME.to_string(),
                    consumer_key: demo::CONSUMER_KEY.to_string(),
                    consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
                    state: IntegrationState::Enabled,
                    installed: true,
                }],
                tokens: Vec::new(),
                m2m_clients: vec![SeedM2mClient {
                    name: demo::M2M_INTEGRATION_NAME.to_string(),
                    client_id: demo::M2M_CLIENT_ID.to_string(),
                    certificates: Vec::new(),
                }],
            }],
        }
    }
}

/// The values of [`Seed::demo`]. They are public on purpose: this is a simulator.
pub mod demo {
    pub const ACCOUNT: &str = "1234567_SB1";
    pub const COMPANY_NAME: &str = "Demo Company (Sandbox 1)";
    pub const ROLE_ID: &str = "1001";
    pub const ROLE_NAME: &str = "Token Rotation";
    pub const ENTITY_ID: &str = "42";
    pub const EMAIL: &str = "rotator@demo.example";
    /// Holds `, & = " %`, a space and non-ASCII, so that a client that forgets to escape the
    /// NLAuth header fails against the demo.
    pub const PASSWORD: &str = "p, &=\"% wörd-1";
    pub const INTEGRATION_NAME: &str = "demo-integration";
    pub const CONSUMER_KEY: &str =
        "0d3m0c0n5um3rk3y0000000000000000000000000000000000000000000000ck";
    pub const CONSUMER_SECRET: &str =
        "0d3m0c0n5um3r53cr3t00000000000000000000000000000000000000000cs";
    /// An M2M integration record with no certificate yet: upload the first with
    /// `Simulator::upload_certificate` (entity [`ENTITY_ID`], role [`ROLE_ID`]).
    pub const M2M_INTEGRATION_NAME: &str = "demo-m2m-integration";
    pub const M2M_CLIENT_ID: &str =
        "0d3m0m2mc113n71d000000000000000000000000000000000000000000000cid";
}

/// A toml error without the source snippet it normally quotes (it could hold a password), and
/// with the offending value left out of serde's "invalid type/value" messages.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message();
    let message = match message.find(", expected") {
        Some(at) if message.starts_with("invalid type") || message.starts_with("invalid value") => {
            format!(
                "a value of the wrong type or form (value not shown){}",
                &message[at..]
            )
        }
        _ => message.to_string(),
    };
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// Builds the TOTP checker for a base32 seed (spaces, padding and case forgiven): RFC 6238,
/// 6 digits, 30 s, SHA-1, one step either side.
pub(super) fn totp_for(secret: &SecretString) -> Option<totp_rs::Totp> {
    let normalized: zeroize::Zeroizing<String> = zeroize::Zeroizing::new(
        secret
            .expose_secret()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    let bytes = totp_rs::Secret::try_from_base32(normalized.as_str()).ok()?;
    if bytes.as_bytes().is_empty() {
        return None;
    }
    Some(
        totp_rs::Builder::new()
            .with_secret(bytes)
            .build_noncompliant(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_seed_is_valid() {
        Seed::demo().validate().unwrap();
    }

    #[test]
    fn totp_seed_accepts_spaces_and_lowercase() {
        let a = totp_for(&SecretString::from("jbsw y3dp ehpk 3pxp")).unwrap();
        let b = totp_for(&SecretString::from("JBSWY3DPEHPK3PXP")).unwrap();
        assert_eq!(a.generate(59), b.generate(59));
        assert!(totp_for(&SecretString::from("not base32!")).is_none());
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../config/sim-seed.example.toml");
        let seed = Seed::from_toml(text, "example").unwrap();
        assert!(!seed.accounts.is_empty());
    }

    #[test]
    fn defaults_and_integer_ids() {
        let seed = Seed::from_toml(
            r#"
            [[accounts]]
            id = "1_SB1"
            company_name = "C"
            [[accounts.roles]]
            id = 3
            name = "R"
            [[accounts.users]]
            entity_id = 7
            email = "a@b"
            password = "pw"
            roles = [3]
            "#,
            "inline",
        )
        .unwrap();
        let account = &seed.accounts[0];
        assert!(account.tba_enabled);
        assert!(!account.require_approval);
        assert_eq!(account.roles[0].id, "3");
        assert_eq!(account.roles[0].permissions, default_permissions());
        assert_eq!(account.users[0].entity_id, "7");
    }

    #[test]
    fn unknown_keys_and_dangling_roles_are_refused() {
        let unknown = Seed::from_toml("[[accounts]]\nid='1'\ncompany_name='c'\ncolour='x'", "t");
        assert!(matches!(unknown, Err(SeedError::Parse { .. })));
        let dangling = Seed::from_toml(
            "[[accounts]]\nid='1'\ncompany_name='c'\n[[accounts.users]]\nentity_id='1'\n\
             email='e'\npassword='p'\nroles=['9']",
            "t",
        );
        assert!(matches!(dangling, Err(SeedError::Invalid(m)) if m.contains("role 9")));
    }

    #[test]
    fn parse_errors_do_not_quote_values() {
        let err = Seed::from_toml(
            "[[accounts]]\nid='1'\ncompany_name='c'\ntba_enabled='hunter2'",
            "t",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("line 4"), "{text}");
    }
}
