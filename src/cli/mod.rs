//! The command line: argument parsing and one function per command.
//!
//! Exit codes (design.md): 0 everything asked for was done, 1 a rotation, verification,
//! revocation or check failed, 2 bad usage or configuration.

mod commands;
mod daemon_link;
pub mod demo;
mod import_input;
pub(crate) mod out;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;
use out::errln;

pub use crate::outcome::Outcome;

#[derive(Debug, Parser)]
#[command(
    name = "netsuite-token-rotator",
    version,
    about = "Rotates NetSuite token-based-authentication tokens held in Vault, AWS Secrets Manager or a file",
    after_help = "Try it with no setup: netsuite-token-rotator demo --rotations 3\n\
Set up NetSuite: docs/netsuite-setup.md. Every config key: docs/configuration.md.\n\
What to do about an alert: docs/runbook.md."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH, env = "NETSUITE_ROTATOR_CONFIG")]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: rotate every integration on its schedule, serve /healthz, /readyz and
    /// /metrics, reload on SIGHUP, stop on SIGTERM.
    #[command(
        after_help = "Example: netsuite-token-rotator --config /etc/netsuite-token-rotator/config.toml run"
    )]
    Run,
    /// Rotate tokens now: issue, stage, verify, promote, and revoke the old one when due.
    /// Naming an integration also lifts its login lock-out latch for this one try.
    #[command(
        after_help = "Example: netsuite-token-rotator rotate --integration erp-sync\n\
Suspected leak: netsuite-token-rotator rotate --integration erp-sync --revoke-now"
    )]
    Rotate {
        #[command(flatten)]
        target: Target,
        /// Show what would happen without calling NetSuite or changing the store; exits 1
        /// where the rotation would be refused.
        #[arg(long)]
        dry_run: bool,
        /// Revoke the replaced token at once, with no grace window (a suspected leak):
        /// readers still holding it fail until they read the store again.
        #[arg(long, conflicts_with = "dry_run")]
        revoke_now: bool,
        /// Rotate even inside a freeze window (`[[freeze]]`), which otherwise refuses it.
        #[arg(long)]
        force: bool,
    },
    /// Check each current token with tokeninfo against the expectations.
    #[command(after_help = "Example: netsuite-token-rotator verify --all")]
    Verify {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke previous tokens whose grace window has passed.
    #[command(after_help = "Example: netsuite-token-rotator revoke --all")]
    Revoke {
        #[command(flatten)]
        target: Target,
        /// Revoke even inside the grace window (readers still on the old token will fail).
        #[arg(long)]
        force: bool,
    },
    /// Put an existing, hand-made token in as current: token id, then token secret, one per
    /// line on stdin. The next rotation replaces it and revokes it.
    #[command(
        after_help = "Example: printf '%s\\n%s\\n' \"$TOKEN_ID\" \"$TOKEN_SECRET\" | netsuite-token-rotator import --integration erp-sync"
    )]
    Import {
        /// The integration (from the config) whose store receives the token.
        #[arg(long, value_name = "NAME")]
        integration: String,
    },
    /// Show each integration's tokens and rotation state (no secret values).
    #[command(after_help = "Example: netsuite-token-rotator status --json")]
    Status {
        /// One JSON array for scripts instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config, resolve every secret reference, reach every store and NetSuite
    /// endpoint, without changing anything.
    #[command(after_help = "Example: netsuite-token-rotator --config ./config.toml check")]
    Check,
    /// Run a self-contained demonstration: a NetSuite simulator and a file store, no setup.
    #[command(after_help = "Example: netsuite-token-rotator demo --rotations 3")]
    Demo {
        /// Stop after this many rotations (runs until interrupted when absent).
        #[arg(long)]
        rotations: Option<u32>,
        /// Where the demo's file store goes.
        #[arg(long, default_value = "./demo-data")]
        data_dir: PathBuf,
        /// Seconds between rotations.
        #[arg(long, default_value_t = 2)]
        interval: u64,
        /// Rotate an OAuth 2.0 client-credentials (M2M) certificate instead of a TBA token.
        #[arg(long)]
        m2m: bool,
    },
    /// Print the JSON Schema (draft-07) of the config file, generated from the config types;
    /// reads no config. For editors, and for the Helm chart (scripts/gen-config-schema.sh).
    #[command(
        hide = true,
        after_help = "Example: netsuite-token-rotator config-schema > config.schema.json"
    )]
    ConfigSchema {
        /// The Helm chart's variant: values.schema.json#/definitions/config (references and
        /// paths as a pod has them, `listen` left to the chart).
        #[arg(long)]
        chart: bool,
    },
}

/// Which integrations a command acts on.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// An integration name from the config (repeatable).
    #[arg(long = "integration", value_name = "NAME")]
    pub integrations: Vec<String>,
    /// Every integration in the config.
    #[arg(long)]
    pub all: bool,
}

/// Parses the arguments and runs the command on a runtime made for it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ConfigSchema { chart } = cli.command {
        return print_config_schema(chart).into();
    }
    let runtime = runtime();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return Outcome::Failed.into();
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Demo {
                rotations,
                data_dir,
                interval,
                m2m,
            } => demo::run(rotations, &data_dir, interval, m2m).await,
            Command::Run => crate::daemon::run(&cli.config).await,
            command => commands::run(&cli.config, command).await,
        }
    });
    if outcome == Outcome::Ok && out::stdout_failed() {
        // Said on stderr when it happened: what was printed is incomplete.
        return Outcome::Failed.into();
    }
    outcome.into()
}

fn print_config_schema(chart: bool) -> Outcome {
    let schema = if chart {
        crate::config::chart_config_schema()
    } else {
        crate::config::config_schema().to_value()
    };
    let text = serde_json::to_string_pretty(&schema).expect("a JSON value serialises");
    out::outln!("{text}");
    if out::stdout_failed() {
        return Outcome::Failed;
    }
    Outcome::Ok
}

/// Threads for blocking work (file store reads and writes, span flushes). The work is waiting
/// on NetSuite and stores, at most `max_concurrent_rotations` at a time; the daemon's start-up
/// recovery and a `rotate --all` over a fleet would otherwise start a thread for nearly every
/// store at once, whose stacks and malloc arenas stay mapped after they exit. Eight keep
/// eight syncs in flight, which is what a fleet's throughput on disk rests on.
const BLOCKING_THREADS: usize = 8;

/// Every command runs on one thread, the daemon and one-shot commands alike: a rotation costs
/// well under a millisecond of CPU, most of it in the store's blocking work (on the blocking
/// threads), and each worker thread would cost its own stack and malloc arena (the daemon keeps
/// them for the weeks between rotations) and cross-thread wake-ups for every I/O event.
/// docs/performance.md, change 21, has what one thread costs a fleet's `rotate --all`.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
}
