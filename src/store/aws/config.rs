//! `[integrations.store]` with `kind = "aws"`: which secret, where, and how a missing one is
//! created.

use std::collections::BTreeMap;

/// `[integrations.store]` with `kind = "aws"`.
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsStoreConfig {
    /// Name or ARN of the secret. Creating a missing secret needs a name.
    #[schemars(pattern(crate::value_format::pattern::NOT_BLANK))]
    pub secret_id: String,
    /// Overrides the region from the environment or profile.
    pub region: Option<String>,
    /// Overrides the Secrets Manager endpoint (a VPC endpoint, or moto_server in tests).
    #[schemars(pattern(crate::value_format::pattern::BASE_URL))]
    pub endpoint_url: Option<String>,
    /// KMS key for a secret this store creates; ignored for an existing secret.
    pub kms_key_id: Option<String>,
    /// Tags for a secret this store creates; an existing secret's tags are left alone.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Create the secret (without a value) on the first write if it does not exist.
    #[serde(default = "yes")]
    pub create_if_missing: bool,
}

fn yes() -> bool {
    true
}

pub(super) fn describe(config: &AwsStoreConfig) -> String {
    let mut s = format!("aws-secretsmanager secret {}", config.secret_id);
    if let Some(region) = &config.region {
        s.push_str(&format!(" in {region}"));
    }
    if let Some(endpoint) = &config.endpoint_url {
        s.push_str(&format!(" at {endpoint}"));
    }
    s
}
