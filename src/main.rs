//! The `netsuite-token-rotator` binary: see `cli` for the commands.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    netsuite_token_rotator::cli::main().await
}
