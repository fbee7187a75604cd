//! `[[integrations]]`: one integration's table and the tables inside it (`login`, `m2m`,
//! `expect`), their checks, and its schedule.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::freeze::FreezeConfig;
use super::{field_err, schema};
use crate::config::parse_freezes;
use crate::schedule::{Freezes, PatternCache, Schedule};
use crate::secret::SecretRef;
use crate::store::config::StoreConfig;
use crate::store::vault::VaultAuth;
use crate::value_format::parse_duration;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = schema::one_credential_kind)]
pub struct IntegrationConfig {
    /// Unique name: letters, digits, '-' and '_'.
    #[schemars(pattern(schema::NAME))]
    pub name: String,
    /// NetSuite account id; sandboxes as `123456_SB1` (`123456-sb1` is accepted too).
    #[schemars(pattern(schema::ACCOUNT_ID))]
    pub account_id: String,
    /// Base URL replacing `https://<account>.restlets.api.netsuite.com` (TBA) or
    /// `https://<account>.suitetalk.api.netsuite.com` (M2M).
    #[schemars(pattern(schema::BASE_URL))]
    pub endpoint: Option<String>,
    /// TBA only.
    pub consumer_key: Option<SecretRef>,
    /// TBA only.
    pub consumer_secret: Option<SecretRef>,
    /// Cron expression with seconds, e.g. `"0 0 3 * * Sun"`.
    #[serde(default = "default_schedule")]
    #[schemars(pattern(schema::CRON))]
    pub schedule: String,
    /// IANA time zone of `schedule`; UTC when absent.
    pub timezone: Option<String>,
    /// Random delay up to this long added to each scheduled time, e.g. `"5m"` (and to the end
    /// of a freeze window that held a rotation).
    #[schemars(pattern(schema::DURATION))]
    pub jitter: Option<String>,
    /// `[[integrations.freeze]]`: this integration's own freeze windows, beside the
    /// daemon-wide `[[freeze]]` ones.
    #[serde(default)]
    pub freeze: Vec<FreezeConfig>,
    /// Grace window before the replaced token is revoked, e.g. `"1h"` or `"0s"`.
    #[serde(default = "default_revoke_after")]
    #[schemars(pattern(schema::DURATION))]
    pub revoke_after: String,
    /// Tokens are named `<prefix>-<rotation id>`; the integration name when absent.
    #[schemars(length(min = 1, max = 40))]
    pub token_name_prefix: Option<String>,
    /// Write `consumer_key` and `consumer_secret` (TBA) or the client ID (M2M) into the store
    /// beside the credential.
    #[serde(default = "yes")]
    pub store_consumer_credentials: bool,
    /// A TBA integration: the NLAuth login that issues its tokens. Exactly one of `login` and
    /// `m2m`.
    pub login: Option<LoginConfig>,
    /// An OAuth 2.0 client-credentials (M2M) integration: its mapping and certificates.
    pub m2m: Option<M2mConfig>,
    /// TBA only: what `tokeninfo` must report.
    pub expect: Option<ExpectConfig>,
    pub store: StoreConfig,
}

/// `[integrations.m2m]`: the mapping whose certificates are rotated, and how they are made.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct M2mConfig {
    /// The integration record's client ID.
    pub client_id: SecretRef,
    /// Internal id of the mapping's role.
    #[schemars(pattern(schema::NOT_BLANK))]
    pub role: String,
    /// Internal id of the mapping's entity (the user).
    #[schemars(pattern(schema::NOT_BLANK))]
    pub entity: String,
    /// `ec-p256` (ES256), `ec-p384` (ES384), `rsa-3072` or `rsa-4096` (PS256).
    #[serde(default = "default_key")]
    #[schemars(transform = schema::key_kinds)]
    pub key: String,
    /// How long a new certificate is valid; at most `730d` (NetSuite's cap).
    #[serde(default = "default_certificate_validity")]
    #[schemars(pattern(schema::DURATION))]
    pub certificate_validity: String,
    /// Rotate before the schedule when the current certificate expires sooner than this.
    #[serde(default = "default_renew_before")]
    #[schemars(pattern(schema::DURATION))]
    pub renew_before: String,
    /// What the rotator's own access tokens ask for; must include `rest_webservices`.
    #[serde(default = "default_scopes")]
    #[schemars(transform = schema::m2m_scopes)]
    pub scopes: Vec<String>,
}

/// NetSuite shortens longer certificates to two years; a longer setting would mislead.
pub(super) const MAX_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(730 * 86_400);
/// The scopes a client-credentials assertion may ask for.
pub(super) const M2M_SCOPES: [&str; 3] = ["restlets", "rest_webservices", "suite_analytics"];

pub(super) fn default_key() -> String {
    "ec-p256".into()
}
pub(super) fn default_certificate_validity() -> String {
    "365d".into()
}
pub(super) fn default_renew_before() -> String {
    "30d".into()
}
pub(super) fn default_scopes() -> Vec<String> {
    vec!["rest_webservices".into()]
}

impl M2mConfig {
    /// Checks the table; the error's key is relative to it (`key`, `scopes`, ...).
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        for (key, value) in [("role", &self.role), ("entity", &self.entity)] {
            if value.trim().is_empty() {
                return Err(field_err(key, "expected an internal id, e.g. \"1001\""));
            }
        }
        crate::netsuite::m2m::KeyKind::parse(&self.key).map_err(|p| ("key".to_string(), p))?;
        let validity = parse_duration(&self.certificate_validity)
            .map_err(|p| ("certificate_validity".to_string(), p))?;
        if validity > MAX_CERTIFICATE_VALIDITY || validity < Duration::from_secs(86_400) {
            return Err(field_err(
                "certificate_validity",
                "expected between 1d and 730d (NetSuite caps certificates at two years)",
            ));
        }
        let renew_before =
            parse_duration(&self.renew_before).map_err(|p| ("renew_before".to_string(), p))?;
        if renew_before >= validity {
            return Err(field_err(
                "renew_before",
                "expected less than certificate_validity (else every certificate is due as soon as it is made)",
            ));
        }
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| !M2M_SCOPES.contains(&s.as_str()))
        {
            return Err((
                "scopes".into(),
                format!("{bad:?}: expected restlets, rest_webservices or suite_analytics"),
            ));
        }
        if !self.scopes.iter().any(|s| s == "rest_webservices") {
            return Err(field_err(
                "scopes",
                "expected rest_webservices among them: the certificate rotation endpoint needs it",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The NetSuite user's email address.
    #[schemars(pattern(schema::EMAIL))]
    pub email: String,
    pub password: SecretRef,
    /// Internal id of the role the tokens are issued for.
    #[schemars(pattern(schema::NOT_BLANK))]
    pub role: String,
    /// Base32 TOTP secret for roles that require 2FA.
    pub totp_secret: Option<SecretRef>,
}

/// What `tokeninfo` must say about a new token before it is promoted.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectConfig {
    /// Defaults to the login role.
    pub role_id: Option<String>,
    /// Defaults to the account id.
    pub company_id: Option<String>,
    /// The user's internal id; not checked when absent.
    pub entity_id: Option<String>,
}

pub(super) fn default_schedule() -> String {
    "0 0 3 * * Sun".into()
}
pub(super) fn default_revoke_after() -> String {
    "1h".into()
}
pub(super) fn yes() -> bool {
    true
}

impl IntegrationConfig {
    /// Exactly one of `[integrations.login]` (TBA) and `[integrations.m2m]`, with the keys that
    /// kind needs and none of the other's. The error's key is relative to the integration.
    pub(super) fn validate_kind(&self) -> Result<(), (String, String)> {
        match (&self.login, &self.m2m) {
            (Some(_), Some(_)) => Err(field_err(
                "m2m",
                "an integration has either [integrations.login] (TBA tokens) or [integrations.m2m] (M2M certificates), not both",
            )),
            (None, None) => Err(field_err(
                "login",
                "missing: expected [integrations.login] (TBA tokens through issuetoken) or [integrations.m2m] (OAuth 2.0 client-credentials certificates)",
            )),
            (Some(login), None) => {
                for (key, present) in [
                    ("consumer_key", self.consumer_key.is_some()),
                    ("consumer_secret", self.consumer_secret.is_some()),
                ] {
                    if !present {
                        return Err(field_err(
                            key,
                            "missing: a TBA integration ([integrations.login]) needs the integration record's consumer key and secret",
                        ));
                    }
                }
                if login.email.trim().is_empty() || !login.email.contains('@') {
                    return Err(field_err("login.email", "expected an email address"));
                }
                if login.role.trim().is_empty() {
                    return Err(field_err("login.role", "expected a role internal id"));
                }
                Ok(())
            }
            (None, Some(m2m)) => {
                for (key, present) in [
                    ("consumer_key", self.consumer_key.is_some()),
                    ("consumer_secret", self.consumer_secret.is_some()),
                    ("expect", self.expect.is_some()),
                ] {
                    if present {
                        return Err(field_err(
                            key,
                            "belongs to TBA integrations; an M2M integration ([integrations.m2m]) has a client_id and a certificate instead",
                        ));
                    }
                }
                m2m.validate().map_err(|(key, p)| (format!("m2m.{key}"), p))
            }
        }
    }

    /// The parsed schedule, sharing parsed patterns through `cache`, with the daemon-wide
    /// freeze windows `shared` ([`Config::freezes`]) and this integration's own; errors as
    /// (key, problem).
    pub fn schedule_cached(
        &self,
        cache: &mut PatternCache,
        shared: &Freezes,
    ) -> Result<Schedule, (String, String)> {
        let jitter = match &self.jitter {
            Some(j) => parse_duration(j).map_err(|p| ("jitter".to_string(), p))?,
            None => Duration::ZERO,
        };
        let schedule =
            Schedule::parse_cached(&self.schedule, self.timezone.as_deref(), jitter, cache)
                .map_err(|p| {
                    let key = if p.contains("IANA") {
                        "timezone"
                    } else {
                        "schedule"
                    };
                    (key.to_string(), p)
                })?;
        let freezes = parse_freezes(&self.freeze, shared, "freeze")?;
        Ok(schedule.with_freezes(freezes))
    }

    /// Secret references written as literal strings, by field path (for `check`'s warnings).
    pub fn literal_secrets(&self, index: usize) -> Vec<String> {
        self.secret_refs(index)
            .into_iter()
            .filter(|(_, r)| r.is_literal())
            .map(|(field, _)| field)
            .collect()
    }

    /// Every secret reference of the integration, with its field path
    /// (`integrations[0].login.password`), the store's login included: for `check`, which reads
    /// each on its own so that one run names every one that cannot be read.
    pub fn secret_refs(&self, index: usize) -> Vec<(String, &SecretRef)> {
        let mut refs = Vec::new();
        refs.extend(self.consumer_key.as_ref().map(|r| ("consumer_key", r)));
        refs.extend(
            self.consumer_secret
                .as_ref()
                .map(|r| ("consumer_secret", r)),
        );
        if let Some(login) = &self.login {
            refs.push(("login.password", &login.password));
            refs.extend(login.totp_secret.as_ref().map(|r| ("login.totp_secret", r)));
        }
        if let Some(m2m) = &self.m2m {
            refs.push(("m2m.client_id", &m2m.client_id));
        }
        if let StoreConfig::Vault(vault) = &self.store {
            match &vault.auth {
                VaultAuth::Token { token } => refs.push(("store.auth.token", token)),
                VaultAuth::Approle {
                    role_id, secret_id, ..
                } => {
                    refs.push(("store.auth.role_id", role_id));
                    refs.push(("store.auth.secret_id", secret_id));
                }
                _ => {}
            }
        }
        refs.into_iter()
            .map(|(key, r)| (format!("integrations[{index}].{key}"), r))
            .collect()
    }
}
