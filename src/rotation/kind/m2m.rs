//! The M2M kind (OAuth 2.0 client credentials): a new key pair and self-signed certificate,
//! uploaded through the certificate rotation endpoint with an access token got with the
//! current certificate; proven by a token exchange with the new one; revoked through the
//! endpoint (`shared/netsuite-oauth2-m2m.md`).

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use tracing::{Instrument, info_span, warn};
use uuid::Uuid;

use super::{Context, CredentialKind, IssueError};
use crate::netsuite::m2m::{AccessToken, CertificateEntry, KeyKind, M2mCredentials};
use crate::netsuite::{NetSuiteError, Revoked, TokenInfo};
use crate::rotation::{RotationError, Step};
use crate::secret::SecretString;
use crate::store::{CertificateRecord, CredentialRecord};

/// NetSuite's limit on active (not revoked) certificates of one integration record.
pub const MAX_ACTIVE_CERTIFICATES: usize = 5;

/// An M2M integration's mapping and how its certificates are made, secrets resolved.
#[derive(Debug)]
pub struct M2m {
    /// The integration record's client ID (the assertion's `iss`).
    pub client_id: SecretString,
    /// Role and entity of the mapping each new certificate is uploaded for.
    pub role: String,
    pub entity: String,
    pub key: KeyKind,
    pub certificate_validity: Duration,
    /// Rotate early when the current certificate expires sooner than this.
    pub renew_before: Duration,
    /// What the rotator's own access tokens ask for; must include `rest_webservices` for the
    /// certificate endpoint.
    pub scopes: Vec<String>,
}

impl M2m {
    /// The record a certificate is stored as: the client ID beside it when the integration
    /// stores it.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        cx: Context<'_>,
        rotation_id: Uuid,
        certificate_id: String,
        algorithm: &str,
        private_key: SecretString,
        certificate: Option<String>,
        not_after: Option<chrono::DateTime<Utc>>,
    ) -> CredentialRecord {
        let integration = cx;
        CredentialRecord::M2m(CertificateRecord {
            account_id: integration.account.realm().to_string(),
            client_id: integration
                .store_consumer_credentials
                .then(|| self.client_id.clone()),
            certificate_id,
            algorithm: algorithm.to_string(),
            private_key,
            certificate,
            not_after,
            issued_at: Utc::now(),
            rotation_id,
        })
    }

    /// An access token got with `record`'s certificate: the proof that it works, and what
    /// authorises the certificate endpoint.
    async fn access_token(
        &self,
        cx: Context<'_>,
        record: &CredentialRecord,
    ) -> Result<AccessToken, NetSuiteError> {
        let certificate = m2m_record(record);
        let creds = M2mCredentials {
            client_id: &self.client_id,
            certificate_id: &certificate.certificate_id,
            algorithm: &certificate.algorithm,
            private_key: &certificate.private_key,
        };
        cx.client
            .m2m_access_token(cx.endpoint, &creds, &self.scopes)
            .await
    }

    async fn list(
        &self,
        cx: Context<'_>,
        token: &AccessToken,
    ) -> Result<Vec<CertificateEntry>, NetSuiteError> {
        cx.client
            .list_certificates(cx.endpoint, &self.client_id, token)
            .await
    }

    /// After an upload whose answer named no certificate (or was lost): the one certificate
    /// the listing shows now and did not before.
    async fn find_new(
        &self,
        cx: Context<'_>,
        token: &AccessToken,
        before: &HashSet<String>,
    ) -> Result<Vec<String>, NetSuiteError> {
        let after = self
            .list(cx, token)
            .instrument(info_span!("m2m.list_after_upload"))
            .await?;
        Ok(after
            .into_iter()
            .filter(|entry| !before.contains(&entry.id))
            .map(|entry| entry.id)
            .collect())
    }
}

/// An M2M integration's store holds M2M records (checked when it is read).
fn m2m_record(record: &CredentialRecord) -> &CertificateRecord {
    record
        .as_m2m()
        .expect("an M2M integration's store holds M2M records (checked when it is read)")
}

fn issue_failed(source: NetSuiteError) -> RotationError {
    RotationError::NetSuite {
        step: Step::Issue,
        source,
    }
}

#[async_trait::async_trait]
impl CredentialKind for M2m {
    async fn issue(
        &self,
        cx: Context<'_>,
        current: Option<&CredentialRecord>,
        rotation_id: Uuid,
        name: &str,
    ) -> Result<CredentialRecord, IssueError> {
        // The certificate endpoint needs an access token, and the only certificate the
        // rotator holds is the current one: the first one comes from `import`.
        let current = current.ok_or_else(|| {
            IssueError::Refused(RotationError::NeedsImport {
                integration: cx.name.to_string(),
            })
        })?;
        let token = self
            .access_token(cx, current)
            .await
            .map_err(IssueError::NetSuite)?;
        let listed = self
            .list(cx, &token)
            .instrument(info_span!("m2m.list_before_upload"))
            .await
            .map_err(IssueError::NetSuite)?;
        let now = Utc::now();
        let active: Vec<&str> = listed
            .iter()
            .filter(|entry| entry.is_active(now))
            .map(|entry| entry.id.as_str())
            .collect();
        if active.len() >= MAX_ACTIVE_CERTIFICATES {
            return Err(IssueError::Refused(RotationError::TooManyCertificates {
                active: active.iter().map(|id| id.to_string()).collect(),
                current: current.id().to_string(),
            }));
        }
        let before: HashSet<String> = listed.into_iter().map(|entry| entry.id).collect();

        // The subject names the rotation; X.509 allows a common name of at most 64 characters
        // (a 40-character prefix and the rotation id make 77), and NetSuite's limit on what it
        // parses is not published.
        let common_name: String = name.chars().take(64).collect();
        let new = crate::netsuite::m2m::generate_certificate(
            self.key,
            &common_name,
            self.certificate_validity,
        )
        .map_err(|problem| IssueError::Refused(RotationError::KeyGeneration { problem }))?;
        let uploaded = cx
            .client
            .add_certificate(
                cx.endpoint,
                &self.client_id,
                &token,
                &new.certificate,
                &self.role,
                &self.entity,
            )
            .await;
        let certificate_id = match uploaded {
            Ok(Some(id)) => id,
            // No ID in the answer (not published that there is one), or the answer was lost
            // after NetSuite may have taken the upload: the listing tells.
            Ok(None) => self.single_new(cx, &token, &before, None).await?,
            Err(e) if e.may_have_issued() => self.single_new(cx, &token, &before, Some(e)).await?,
            Err(e) => return Err(IssueError::NetSuite(e)),
        };
        Ok(self.record(
            cx,
            rotation_id,
            certificate_id,
            self.key.algorithm(),
            new.private_key,
            Some(new.certificate),
            Some(new.not_after),
        ))
    }

    async fn verify(
        &self,
        cx: Context<'_>,
        record: &CredentialRecord,
    ) -> Result<TokenInfo, RotationError> {
        self.access_token(cx, record)
            .await
            .map_err(|source| RotationError::NetSuite {
                step: Step::Verify,
                source,
            })?;
        Ok(TokenInfo {
            company_id: Some(cx.account.realm().to_string()),
            role_id: Some(self.role.clone()),
            entity_id: Some(self.entity.clone()),
            ..TokenInfo::default()
        })
    }

    async fn revoke(
        &self,
        cx: Context<'_>,
        record: &CredentialRecord,
        authenticate_with: Option<&CredentialRecord>,
    ) -> Result<Revoked, NetSuiteError> {
        let now = Utc::now();
        let usable = |r: &&CredentialRecord| r.expires_at().is_none_or(|t| t > now);
        // The current certificate authorises the call; failing that, the one being revoked
        // (a certificate may revoke itself: the endpoint checks the client, not the kid).
        let helper = authenticate_with
            .filter(|r| r.id() != record.id())
            .filter(usable);
        let token = match helper {
            Some(helper) => match self.access_token(cx, helper).await {
                Ok(token) => token,
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    warn!(integration = %cx.name, error = %e,
                          "the current certificate got no access token; revoking with the certificate itself");
                    self.access_token(cx, record).await?
                }
            },
            None => self.access_token(cx, record).await?,
        };
        cx.client
            .revoke_certificate(cx.endpoint, &self.client_id, &token, record.id())
            .await
    }
}

impl M2m {
    /// The ID of the one certificate an upload added, by listing; `lost` is the error that
    /// lost the upload's answer, if one did.
    async fn single_new(
        &self,
        cx: Context<'_>,
        token: &AccessToken,
        before: &HashSet<String>,
        lost: Option<NetSuiteError>,
    ) -> Result<String, IssueError> {
        let new = match self.find_new(cx, token, before).await {
            Ok(new) => new,
            Err(listing) => {
                return Err(match lost {
                    // The answer was lost: NetSuite may have taken the upload, which the lost
                    // answer's error says (`may_have_issued`), and the orphan report follows.
                    Some(lost) => IssueError::NetSuite(lost),
                    // NetSuite took the upload but named no ID, and the listing that would
                    // find it failed: a certificate exists that nothing records.
                    None => IssueError::Unaccounted {
                        error: issue_failed(listing),
                        credential_ids: Vec::new(),
                    },
                });
            }
        };
        match (new.len(), lost) {
            (1, _) => Ok(new.into_iter().next().expect("one new certificate")),
            // The listing shows nothing new: the upload was lost before NetSuite took it.
            (0, Some(lost)) => Err(IssueError::Refused(issue_failed(lost))),
            (0, None) => Err(IssueError::Refused(RotationError::UploadNotListed)),
            (_, _) => Err(IssueError::Unaccounted {
                error: RotationError::UploadAmbiguous {
                    ids: new.join(", "),
                },
                credential_ids: new,
            }),
        }
    }

    /// For recovery of a rotation that stopped between upload and stage: the active
    /// certificates NetSuite lists that the store does not know and that are not older than
    /// the rotation (certificates made for it start five minutes before it at the earliest,
    /// see `generate_certificate`). Without validity dates in the listing, every unknown active
    /// certificate is named.
    pub async fn unknown_since(
        &self,
        cx: Context<'_>,
        authenticate_with: &CredentialRecord,
        known: &[&str],
        since: chrono::DateTime<Utc>,
    ) -> Result<Vec<String>, NetSuiteError> {
        let token = self.access_token(cx, authenticate_with).await?;
        let now = Utc::now();
        let earliest = since - chrono::Duration::minutes(10);
        Ok(self
            .list(cx, &token)
            .await?
            .into_iter()
            .filter(|entry| entry.is_active(now) && !known.contains(&entry.id.as_str()))
            .filter(|entry| entry.valid_from.is_none_or(|from| from >= earliest))
            .map(|entry| entry.id)
            .collect())
    }
}
