//! `[integrations.store]` with `kind = "file"`: the path of the file readers read.

use std::path::PathBuf;

/// `[integrations.store]` with `kind = "file"`.
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// The file applications read: the current token as a [`CredentialRecord`] JSON object.
    #[schemars(length(min = 1))]
    pub path: PathBuf,
}
