//! netsuite-token-rotator: keeps NetSuite TBA tokens fresh in Vault, AWS Secrets Manager or a
//! file. See `README.md` for the tour and `docs/` for operators.
//!
//! Where things live: `netsuite` speaks to NetSuite, `store` holds tokens, `rotation` runs the
//! protocol, `config` reads the TOML, `sim` is the NetSuite simulator, `cli` the commands.

pub mod alert;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod netsuite;
pub mod outcome;
pub mod plural;
pub mod rotation;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod value_format;
