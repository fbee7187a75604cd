//! How a command or the daemon ended, and the process exit code that says so: 0 done, 1 a
//! rotation, check or start failed, 2 bad usage or configuration.

use std::process::ExitCode;

/// How a command ended, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    BadUsage,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        match o {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::BadUsage => ExitCode::from(2),
        }
    }
}
