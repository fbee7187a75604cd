//! File store (filled in by the file-store helper).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    pub path: std::path::PathBuf,
}
pub struct FileStore;
impl FileStore { pub fn new(_c: &FileStoreConfig) -> FileStore { FileStore } }
#[async_trait::async_trait]
impl super::SecretStore for FileStore {
    fn describe(&self) -> String { todo!() }
    async fn load(&self) -> Result<super::StoreState, super::StoreError> { todo!() }
    async fn begin_rotation(&self, _i: &super::Intent) -> Result<(), super::StoreError> { todo!() }
    async fn stage_pending(&self, _t: &super::TokenRecord) -> Result<(), super::StoreError> { todo!() }
    async fn promote(&self, _r: uuid::Uuid, _a: chrono::DateTime<chrono::Utc>) -> Result<(), super::StoreError> { todo!() }
    async fn abandon_rotation(&self, _r: uuid::Uuid) -> Result<(), super::StoreError> { todo!() }
    async fn mark_previous_revoked(&self, _t: &str, _a: chrono::DateTime<chrono::Utc>) -> Result<(), super::StoreError> { todo!() }
    async fn import_current(&self, _t: &super::TokenRecord) -> Result<(), super::StoreError> { todo!() }
}
