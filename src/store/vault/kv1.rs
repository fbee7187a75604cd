//! The KV v1 layout's reading: the current token at `<mount>/<path>`, the rotation, the
//! previous token and the latch in the `.rotation` sibling. No versions, no check-and-set.

use crate::store::{PreviousToken, StoreError};

use crate::store::vault::{RotationDoc, Snapshot, VaultStore};

impl VaultStore {
    pub(super) async fn snapshot_v1(&self, op: &'static str) -> Result<Snapshot, StoreError> {
        let current_path = self.layout.current();
        let current = match self.read(op, "read current (KV v1)", &current_path).await? {
            Ok(body) => {
                Some(self.parse(op, "the current token", &current_path, body.get("data"))?)
            }
            Err(_) => None,
        };
        let rotation_path = self.layout.rotation();
        let rotation: RotationDoc = match self
            .read(op, "read rotation state (KV v1)", &rotation_path)
            .await?
        {
            Ok(body) => self.parse(op, "the rotation state", &rotation_path, body.get("data"))?,
            Err(_) => RotationDoc::default(),
        };
        let mut snapshot = Snapshot {
            current,
            previous: rotation.previous.clone(),
            rotation,
            ..Snapshot::default()
        };
        if let Some(promotion) = snapshot.committed_promotion() {
            snapshot.previous = promotion.previous_token.clone().map(|token| PreviousToken {
                token,
                revoke_after: promotion.revoke_after,
                revoked_at: None,
            });
        }
        Ok(snapshot)
    }
}
