//! The TBA kind: a token from `issuetoken` (NLAuth login), proven with `tokeninfo`, revoked
//! with `revoketoken` signed by the token itself.

use std::sync::Arc;

use uuid::Uuid;

use super::{Context, CredentialKind, IssueError};
use crate::netsuite::{NetSuiteError, NlauthLogin, Revoked, TbaCredentials, TokenInfo};
use crate::rotation::{LoginGate, RotationError, Step};
use crate::secret::SecretString;
use crate::store::{CredentialRecord, TokenRecord};

/// A TBA integration's credentials and checks, secrets resolved.
#[derive(Debug)]
pub struct Tba {
    pub consumer_key: SecretString,
    pub consumer_secret: SecretString,
    pub login: Arc<NlauthLogin>,
    /// The lock-out latch of `login`, shared by every integration resolved from the same login
    /// section (see `rotation::latch`).
    pub login_gate: Arc<LoginGate>,
    pub expect: Arc<Expectations>,
}

/// What `tokeninfo` must report for a token to be promoted (or imported). `None` = not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Expectations {
    pub company_id: Option<String>,
    pub role_id: Option<String>,
    pub entity_id: Option<String>,
    /// The company id was not written in `[integrations.expect]` but implied by the account
    /// id: checked when `tokeninfo` reports it, not missed when it does not (the answer's key
    /// names are unpublished, and the config asked for nothing).
    pub company_id_implied: bool,
    /// The same for the role id, implied by the login role.
    pub role_id_implied: bool,
}

impl Tba {
    /// The record a token is stored as: the consumer pair beside it when the integration
    /// stores it.
    pub fn record(
        &self,
        cx: Context<'_>,
        rotation_id: Uuid,
        token_id: String,
        token_secret: SecretString,
    ) -> CredentialRecord {
        let integration = cx;
        let consumer = integration.store_consumer_credentials;
        CredentialRecord::Tba(TokenRecord {
            account_id: integration.account.realm().to_string(),
            realm: integration.account.realm().to_string(),
            consumer_key: consumer.then(|| self.consumer_key.clone()),
            consumer_secret: consumer.then(|| self.consumer_secret.clone()),
            token_id,
            token_secret,
            issued_at: chrono::Utc::now(),
            rotation_id,
        })
    }

    /// The consumer pair stored with a token, else the configured one.
    fn credentials_for(&self, record: &CredentialRecord) -> TbaCredentials {
        let token = tba_record(record);
        TbaCredentials {
            consumer_key: token
                .consumer_key
                .clone()
                .unwrap_or_else(|| self.consumer_key.clone()),
            consumer_secret: token
                .consumer_secret
                .clone()
                .unwrap_or_else(|| self.consumer_secret.clone()),
            token_id: token.token_id.clone(),
            token_secret: token.token_secret.clone(),
        }
    }
}

/// A TBA integration's store holds TBA records: an M2M record there is a store written by
/// another integration (two integrations sharing a path), which `load` reports; here it is a
/// bug.
fn tba_record(record: &CredentialRecord) -> &TokenRecord {
    record
        .as_tba()
        .expect("a TBA integration's store holds TBA records (checked when it is read)")
}

#[async_trait::async_trait]
impl CredentialKind for Tba {
    async fn issue(
        &self,
        cx: Context<'_>,
        _current: Option<&CredentialRecord>,
        rotation_id: Uuid,
        name: &str,
    ) -> Result<CredentialRecord, IssueError> {
        let integration = cx;
        let issued = cx
            .client
            .issue_token(
                integration.endpoint,
                integration.account,
                &self.login,
                &self.consumer_key,
                name,
            )
            .await
            .map_err(IssueError::NetSuite)?;
        Ok(self.record(cx, rotation_id, issued.token_id, issued.token_secret))
    }

    async fn verify(
        &self,
        cx: Context<'_>,
        record: &CredentialRecord,
    ) -> Result<TokenInfo, RotationError> {
        let integration = cx;
        let info = cx
            .client
            .token_info(
                integration.endpoint,
                integration.account,
                &self.credentials_for(record),
            )
            .await
            .map_err(|e| RotationError::NetSuite {
                step: Step::Verify,
                source: e,
            })?;
        check_expectations(&self.expect, &info)?;
        Ok(info)
    }

    async fn revoke(
        &self,
        cx: Context<'_>,
        record: &CredentialRecord,
        _authenticate_with: Option<&CredentialRecord>,
    ) -> Result<Revoked, NetSuiteError> {
        // A TBA token signs its own revocation.
        cx.client
            .revoke_token(cx.endpoint, cx.account, &self.credentials_for(record))
            .await
    }
}

/// Compares `tokeninfo`'s answer with the expectations. Account ids compare in their canonical
/// form (`123456-sb1` is `123456_SB1`); other ids exactly. An expected field the answer does
/// not carry is [`RotationError::ExpectedFieldMissing`], not a mismatch.
fn check_expectations(expect: &Expectations, info: &TokenInfo) -> Result<(), RotationError> {
    let canonical = |s: &str| s.trim().replace('-', "_").to_ascii_uppercase();
    let keys = &crate::netsuite::TOKEN_INFO_KEYS;
    let checks = [
        ExpectedField {
            field: "companyId",
            what: "company (account) id",
            config_key: "company_id",
            keys: keys.company_id,
            is_account: true,
        },
        ExpectedField {
            field: "roleId",
            what: "role id",
            config_key: "role_id",
            keys: keys.role_id,
            is_account: false,
        },
        ExpectedField {
            field: "entityId",
            what: "entity id",
            config_key: "entity_id",
            keys: keys.entity_id,
            is_account: false,
        },
    ];
    let values = [
        (
            &expect.company_id,
            &info.company_id,
            expect.company_id_implied,
        ),
        (&expect.role_id, &info.role_id, expect.role_id_implied),
        (&expect.entity_id, &info.entity_id, false),
    ];
    for (check, (expected, actual, implied)) in checks.iter().zip(values) {
        let Some(expected) = expected else { continue };
        let Some(actual) = actual else {
            if implied {
                continue;
            }
            return Err(RotationError::ExpectedFieldMissing {
                what: check.what,
                config_key: check.config_key,
                keys: check.keys.join(", "),
            });
        };
        let same = if check.is_account {
            canonical(expected) == canonical(actual)
        } else {
            expected.trim() == actual.trim()
        };
        if !same {
            return Err(RotationError::Mismatch {
                field: check.field,
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    Ok(())
}

/// One field `[integrations.expect]` can check, and how to talk about it.
struct ExpectedField {
    /// The field's name in `tokeninfo` (its documented spelling).
    field: &'static str,
    what: &'static str,
    config_key: &'static str,
    keys: &'static [&'static str],
    is_account: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(company: &str, role: &str) -> TokenInfo {
        TokenInfo {
            company_id: Some(company.into()),
            role_id: Some(role.into()),
            entity_id: Some("42".into()),
            ..TokenInfo::default()
        }
    }

    #[test]
    fn account_ids_compare_in_canonical_form() {
        let expect = Expectations {
            company_id: Some("123456_SB1".into()),
            role_id: Some("1001".into()),
            entity_id: None,
            ..Expectations::default()
        };
        assert!(check_expectations(&expect, &info("123456-sb1", "1001")).is_ok());
        let err = check_expectations(&expect, &info("123456_SB1", "3")).unwrap_err();
        assert!(err.to_string().contains("roleId"), "{err}");
        let err = check_expectations(&expect, &info("999", "1001")).unwrap_err();
        assert!(err.to_string().contains("companyId"), "{err}");
    }

    #[test]
    fn a_missing_expected_field_says_so_instead_of_a_mismatch() {
        let expect = Expectations {
            entity_id: Some("42".into()),
            ..Expectations::default()
        };
        let err = check_expectations(&expect, &TokenInfo::default()).unwrap_err();
        assert!(
            matches!(
                err,
                RotationError::ExpectedFieldMissing {
                    config_key: "entity_id",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("verify: tokeninfo did not report the entity id"),
            "{message}"
        );
        assert!(message.contains("remove `expect.entity_id`"), "{message}");
        assert!(message.contains("entityId, entity"), "{message}");
        // A field that is there but different is still a mismatch.
        let mut other = info("123456_SB1", "1001");
        other.entity_id = Some("7".into());
        let err = check_expectations(&expect, &other).unwrap_err();
        assert!(matches!(err, RotationError::Mismatch { .. }), "{err:?}");
        let mut right = info("123456_SB1", "1001");
        right.entity_id = Some("42".into());
        assert!(check_expectations(&expect, &right).is_ok());
    }

    /// The company and role checks the config implies (from the account id and the login
    /// role) hold when tokeninfo reports the fields and are not missed when it does not;
    /// written in `[integrations.expect]`, a missing field fails.
    #[test]
    fn implied_expectations_are_not_missed_but_written_ones_are() {
        let mut expect = Expectations {
            company_id: Some("123456_SB1".into()),
            role_id: Some("1001".into()),
            entity_id: None,
            company_id_implied: true,
            role_id_implied: true,
        };
        assert!(check_expectations(&expect, &TokenInfo::default()).is_ok());
        assert!(matches!(
            check_expectations(&expect, &info("123456_SB1", "3")),
            Err(RotationError::Mismatch {
                field: "roleId",
                ..
            })
        ));
        expect.company_id_implied = false;
        let err = check_expectations(&expect, &TokenInfo::default()).unwrap_err();
        assert!(
            err.to_string().contains("remove `expect.company_id`"),
            "{err}"
        );
    }
}
