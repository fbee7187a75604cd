//! Credential kinds: what differs between rotating a TBA token and an M2M certificate.
//!
//! The protocol in `rotation/mod.rs` is the same for both (intent, issue, stage, verify,
//! promote, revoke, and recovery); only four things depend on the kind, and they sit behind
//! [`CredentialKind`]:
//! - issue: a token from `issuetoken` (TBA, `tba.rs`), or a key pair whose certificate is
//!   uploaded through the certificate rotation endpoint (M2M, `m2m.rs`);
//! - verify: `tokeninfo` signed with the token, or an access token got with the certificate;
//! - revoke: `revoketoken`, or the certificate's `revoke`;
//! - what a record holds ([`CredentialRecord`]'s two variants).

pub mod m2m;
pub mod tba;

use uuid::Uuid;

use super::RotationError;
use crate::netsuite::{AccountId, Endpoint, NetSuiteClient, NetSuiteError, Revoked, TokenInfo};
use crate::store::CredentialRecord;

/// What a kind's steps are given: the client to call NetSuite with, and which integration of
/// which account, at which endpoint (the rest of the integration is the kind's own settings).
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub client: &'a NetSuiteClient,
    /// The integration's name, for logs and errors.
    pub name: &'a str,
    pub account: &'a AccountId,
    pub endpoint: &'a Endpoint,
    /// Whether the record carries the consumer pair (TBA) or client ID (M2M).
    pub store_consumer_credentials: bool,
}

/// Why a kind could not issue a new credential.
#[derive(Debug)]
pub enum IssueError {
    /// A NetSuite call failed; [`NetSuiteError::may_have_issued`] says whether a credential may
    /// exist that nothing records (reported by name as a suspected orphan).
    NetSuite(NetSuiteError),
    /// Refused before anything was created in NetSuite (a limit, a missing current
    /// credential, key generation).
    Refused(RotationError),
    /// NetSuite created credentials this rotation cannot account for: named in an orphan alert
    /// by these ids, or by the rotation's name when their ids are not known (empty).
    Unaccounted {
        error: RotationError,
        credential_ids: Vec<String>,
    },
}

/// The steps that differ between credential kinds (see the module docs).
#[async_trait::async_trait]
pub trait CredentialKind: Send + Sync {
    /// Step 2: creates a new credential in NetSuite named `name` (which carries the rotation
    /// id), with `current` (the store's current credential, if any) where the kind needs one
    /// to authenticate. The record is the one to stage.
    async fn issue(
        &self,
        cx: Context<'_>,
        current: Option<&CredentialRecord>,
        rotation_id: Uuid,
        name: &str,
    ) -> Result<CredentialRecord, IssueError>;

    /// Step 4, `verify` and `import`: proves `record` works. What it learns goes into the
    /// verification event (a TBA token's `tokeninfo`; nothing more for a certificate).
    async fn verify(
        &self,
        cx: Context<'_>,
        record: &CredentialRecord,
    ) -> Result<TokenInfo, RotationError>;

    /// Revokes `record`. `authenticate_with` is a credential the kind may use to authorise the
    /// call when the record cannot authorise its own revocation (M2M: the store's current
    /// certificate).
    async fn revoke(
        &self,
        cx: Context<'_>,
        record: &CredentialRecord,
        authenticate_with: Option<&CredentialRecord>,
    ) -> Result<Revoked, NetSuiteError>;
}
