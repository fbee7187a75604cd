//! `import` (a credential made by hand put in as current, proved first) and `verify` (the
//! current credential proved with NetSuite).

use uuid::Uuid;

use super::Engine;
use super::error::{RotationError, Step};
use super::events::Event;
use crate::netsuite::TokenInfo;
use crate::secret::{SecretString, short_id};
use crate::store::CredentialRecord;

impl Engine {
    /// Puts a hand-made TBA token in as current (see [`Engine::import_record`]).
    pub async fn import(
        &self,
        token_id: String,
        token_secret: SecretString,
    ) -> Result<(), RotationError> {
        let tba = self.integration.tba().ok_or(RotationError::WrongKind {
            integration: self.integration.name.to_string(),
            expected: "tba",
        })?;
        let record = tba.record(self.context(), Uuid::new_v4(), token_id, token_secret);
        self.import_record(record).await
    }

    /// Puts a certificate an administrator uploaded in as current (see
    /// [`Engine::import_record`]). `certificate` (PEM), when given, must hold the key's public
    /// half; its expiry is kept for scheduling and alerts.
    pub async fn import_certificate(
        &self,
        certificate_id: String,
        private_key: SecretString,
        certificate: Option<String>,
    ) -> Result<(), RotationError> {
        use crate::netsuite::m2m;
        let integration = &self.integration;
        let settings = integration.m2m().ok_or(RotationError::WrongKind {
            integration: integration.name.to_string(),
            expected: "m2m",
        })?;
        let bad =
            |field: &'static str, problem: String| RotationError::BadImport { field, problem };
        let algorithm = m2m::algorithm_of_private_key(&private_key)
            .map_err(|problem| bad("private key", problem))?;
        let not_after = match &certificate {
            None => None,
            Some(pem) => {
                let (_, not_after) = m2m::certificate_validity(pem)
                    .map_err(|problem| bad("certificate", problem))?;
                if !m2m::certificate_matches_key(pem, &private_key)
                    .map_err(|problem| bad("certificate", problem))?
                {
                    return Err(bad(
                        "certificate",
                        "it does not hold the public key of the private key given with it".into(),
                    ));
                }
                Some(not_after)
            }
        };
        let record = settings.record(
            self.context(),
            Uuid::new_v4(),
            certificate_id,
            algorithm,
            private_key,
            certificate,
            not_after,
        );
        self.import_record(record).await
    }

    /// Puts a hand-made credential in as current after NetSuite accepted it (`tokeninfo`, or a
    /// token exchange); the next rotation replaces it and revokes it after the grace window.
    pub(super) async fn import_record(
        &self,
        record: CredentialRecord,
    ) -> Result<(), RotationError> {
        let state = self.load().await?;
        if state.current.is_some() || state.intent.is_some() || state.pending.is_some() {
            return Err(RotationError::StoreNotEmpty);
        }
        let info = self.verify(&record).await?;
        self.store
            .import_current(&record)
            .await
            .map_err(|e| match e.is_conflict() {
                true => RotationError::StoreNotEmpty,
                false => RotationError::Store {
                    step: Step::Import,
                    source: e,
                },
            })?;
        self.emit(Event::TokenImported {
            token_id: record.id().to_string(),
            info,
        });
        Ok(())
    }

    /// `tokeninfo` with the store's current token, checked against the expectations.
    pub async fn verify_current(&self) -> Result<TokenInfo, RotationError> {
        let state = self.load().await?;
        let current = state.current.ok_or(RotationError::NoCurrentToken)?;
        match self.verify(&current).await {
            Err(RotationError::NetSuite { source, .. })
                if source.oauth_reason() == Some(&crate::netsuite::OAuthReason::TokenRejected) =>
            {
                Err(RotationError::CurrentTokenRejected {
                    integration: self.integration.name.to_string(),
                    token_id: short_id(current.id()),
                    source: Box::new(source),
                })
            }
            other => other,
        }
    }
}
