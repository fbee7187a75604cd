//! Reading an integration's secret references into what the rotation engine needs, sharing
//! what several integrations have in common.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::ConfigError;
use super::integration::{ExpectConfig, IntegrationConfig, LoginConfig};
use crate::netsuite::m2m::KeyKind;
use crate::netsuite::{AccountId, Endpoint, NlauthLogin};
use crate::rotation::{Credential, Expectations, Integration, LoginGate, M2m, Tba};
use crate::secret::{SecretRef, SecretRefError};
use crate::value_format::parse_duration;

/// Resolves integrations one after another, sharing what they have in common: integrations of
/// one account keep one copy of its id and endpoint, those with one login one copy of it (its
/// secrets read once), and equal expectations one copy. A daemon holds thousands of resolved
/// integrations for weeks, mostly a few accounts' and logins' worth of repetition.
#[derive(Default)]
pub struct Resolver<'c> {
    /// By account id, endpoint override and whether the kind is M2M (another default host).
    accounts: HashMap<(&'c str, Option<&'c str>, bool), (AccountId, Endpoint)>,
    /// By email and role; then the whole login section must match.
    logins: HashMap<(&'c str, &'c str), Vec<ResolvedLogin<'c>>>,
    expectations: HashSet<Arc<Expectations>>,
}

/// A login section and what it resolved to.
type ResolvedLogin<'c> = (&'c LoginConfig, Arc<NlauthLogin>, Arc<LoginGate>);

impl<'c> Resolver<'c> {
    /// [`IntegrationConfig::resolve`] for the `index`th integration of a configuration.
    pub fn resolve(
        &mut self,
        integration: &'c IntegrationConfig,
        index: usize,
    ) -> Result<Integration, ConfigError> {
        let at = |key: &str| format!("integrations[{index}].{key}");
        let read = |key: &str, r: &SecretRef| {
            r.resolve().map_err(|e: SecretRefError| ConfigError {
                file: "config".into(),
                field: at(key),
                problem: e.to_string(),
            })
        };
        let endpoint_for = match integration.m2m {
            Some(_) => Endpoint::m2m_for_account,
            None => Endpoint::for_account,
        };
        let (account, endpoint) = self
            .accounts
            .entry((
                &integration.account_id,
                integration.endpoint.as_deref(),
                integration.m2m.is_some(),
            ))
            .or_insert_with(|| {
                let account = AccountId::parse(&integration.account_id).expect("validated");
                let endpoint = endpoint_for(&account, integration.endpoint.as_deref());
                (account, endpoint)
            })
            .clone();
        let credential = match (&integration.login, &integration.m2m) {
            (_, Some(m2m)) => Credential::M2m(M2m {
                client_id: read("m2m.client_id", &m2m.client_id)?,
                role: m2m.role.trim().to_string(),
                entity: m2m.entity.trim().to_string(),
                key: KeyKind::parse(&m2m.key).expect("validated"),
                certificate_validity: parse_duration(&m2m.certificate_validity).expect("validated"),
                renew_before: parse_duration(&m2m.renew_before).expect("validated"),
                scopes: m2m.scopes.clone(),
            }),
            (Some(login), None) => {
                let tba = self.resolve_tba(integration, login, &account, &read)?;
                Credential::Tba(tba)
            }
            (None, None) => unreachable!("validated: exactly one of login and m2m"),
        };
        let name: Arc<str> = integration.name.as_str().into();
        Ok(Integration {
            token_name_prefix: match &integration.token_name_prefix {
                Some(prefix) => prefix.as_str().into(),
                None => name.clone(),
            },
            name,
            account,
            endpoint,
            credential,
            revoke_after: parse_duration(&integration.revoke_after).expect("validated"),
            store_consumer_credentials: integration.store_consumer_credentials,
        })
    }

    /// The TBA half of [`Resolver::resolve`]: the consumer pair, the shared login and its
    /// latch, the shared expectations.
    fn resolve_tba(
        &mut self,
        integration: &'c IntegrationConfig,
        login: &'c LoginConfig,
        account: &AccountId,
        read: &dyn Fn(&str, &SecretRef) -> Result<crate::secret::SecretString, ConfigError>,
    ) -> Result<Tba, ConfigError> {
        let required = |key: &str, r: &Option<SecretRef>| match r {
            Some(r) => read(key, r),
            None => unreachable!("validated: a TBA integration has {key}"),
        };
        let consumer_key = required("consumer_key", &integration.consumer_key)?;
        let consumer_secret = required("consumer_secret", &integration.consumer_secret)?;
        let same_login = self.logins.entry((&login.email, &login.role)).or_default();
        let (resolved_login, login_gate) =
            match same_login.iter().find(|(config, ..)| *config == login) {
                Some((_, resolved, gate)) => (resolved.clone(), gate.clone()),
                None => {
                    let totp_secret = match &login.totp_secret {
                        Some(r) => Some(read("login.totp_secret", r)?),
                        None => None,
                    };
                    let resolved = Arc::new(NlauthLogin {
                        email: login.email.clone(),
                        password: read("login.password", &login.password)?,
                        role: login.role.clone(),
                        totp_secret,
                    });
                    let gate = Arc::<LoginGate>::default();
                    same_login.push((login, resolved.clone(), gate.clone()));
                    (resolved, gate)
                }
            };
        let no_expectations = ExpectConfig::default();
        let expect = integration.expect.as_ref().unwrap_or(&no_expectations);
        let expect = Expectations {
            company_id: Some(
                expect
                    .company_id
                    .clone()
                    .unwrap_or_else(|| account.realm().to_string()),
            ),
            role_id: Some(expect.role_id.clone().unwrap_or_else(|| login.role.clone())),
            entity_id: expect.entity_id.clone(),
            company_id_implied: expect.company_id.is_none(),
            role_id_implied: expect.role_id.is_none(),
        };
        let expect = match self.expectations.get(&expect) {
            Some(shared) => shared.clone(),
            None => {
                let shared = Arc::new(expect);
                self.expectations.insert(shared.clone());
                shared
            }
        };
        Ok(Tba {
            consumer_key,
            consumer_secret,
            login: resolved_login,
            login_gate,
            expect,
        })
    }
}

impl IntegrationConfig {
    /// Reads the secret references and builds what the rotation engine needs. Errors name the
    /// field of the reference that could not be read.
    pub fn resolve(&self, index: usize) -> Result<Integration, ConfigError> {
        Resolver::default().resolve(self, index)
    }
}
