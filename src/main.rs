//! The `netsuite-token-rotator` binary: see `cli` for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    netsuite_token_rotator::cli::main()
}
