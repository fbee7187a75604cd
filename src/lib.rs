//! netsuite-token-rotator: keeps NetSuite TBA tokens fresh in Vault, AWS Secrets Manager or a
//! file. See `README.md` for the tour and `docs/` for operators.

pub mod netsuite;
pub mod secret;
pub mod sim;
pub mod store;
