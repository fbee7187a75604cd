//! `netsuite-sim`: runs the NetSuite simulator (`src/sim/`) as a server.
//!
//! Without `--seed` it serves the demo account of `Seed::demo()`; the single-account flags
//! replace the demo's values. `--concurrency-limit` and `--latency-ms` set the per-account
//! request concurrency limit and service time (`sim::Limits`), with or without `--seed`; over
//! HTTP, `PUT /sim/limits` changes them later. Once listening it prints exactly one line,
//! `netsuite-sim listening on http://ADDR`, to stdout; logs go to stderr. SIGTERM or ctrl-c
//! stops it. It logs no secret, seeded or issued.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use netsuite_token_rotator::sim::{Limits, Seed, Simulator};
use secrecy::SecretString;

#[derive(Parser)]
#[command(
    name = "netsuite-sim",
    version,
    about = "A NetSuite token-endpoint simulator (TBA: issuetoken, revoketoken, tokeninfo, datacenterurls; OAuth 2.0 M2M: token, certificates list/add/revoke)"
)]
struct Args {
    /// TOML seed (see config/sim-seed.example.toml). Without it the demo account is served.
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: SocketAddr,

    /// Requests of one account that may be in flight at once; one more is answered
    /// 400 SSS_REQUEST_LIMIT_EXCEEDED, as RESTlet domains do. Default: no limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency_limit: Option<u32>,

    /// Service time of every /rest/* request, in milliseconds, spent holding its account's
    /// slot before it is processed.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,

    #[command(flatten)]
    single: SingleAccount,
}

/// Replace values of the demo account (only without `--seed`).
#[derive(clap::Args)]
struct SingleAccount {
    /// Account id in underscore form (123456_SB1).
    #[arg(long, conflicts_with = "seed")]
    account: Option<String>,
    #[arg(long, conflicts_with = "seed")]
    company_name: Option<String>,
    #[arg(long, conflicts_with = "seed")]
    email: Option<String>,
    #[arg(
        long,
        env = "NETSUITE_SIM_PASSWORD",
        hide_env_values = true,
        conflicts_with = "seed"
    )]
    password: Option<String>,
    #[arg(long, conflicts_with = "seed")]
    entity_id: Option<String>,
    /// Role internal id.
    #[arg(long, conflicts_with = "seed")]
    role: Option<String>,
    #[arg(long, conflicts_with = "seed")]
    role_name: Option<String>,
    /// The role requires 2FA (then a user with --totp-secret must send nlauth_otp).
    #[arg(long, conflicts_with = "seed")]
    require_2fa: bool,
    /// Base32 TOTP seed of the user.
    #[arg(
        long,
        env = "NETSUITE_SIM_TOTP_SECRET",
        hide_env_values = true,
        conflicts_with = "seed"
    )]
    totp_secret: Option<String>,
    #[arg(long, conflicts_with = "seed")]
    integration_name: Option<String>,
    #[arg(
        long,
        env = "NETSUITE_SIM_CONSUMER_KEY",
        hide_env_values = true,
        conflicts_with = "seed"
    )]
    consumer_key: Option<String>,
    #[arg(
        long,
        env = "NETSUITE_SIM_CONSUMER_SECRET",
        hide_env_values = true,
        conflicts_with = "seed"
    )]
    consumer_secret: Option<String>,
    /// New integrations wait for approval after their first issuetoken.
    #[arg(long, conflicts_with = "seed")]
    require_approval: bool,
}

impl SingleAccount {
    fn apply_to_demo(self) -> Seed {
        let mut seed = Seed::demo();
        let account = &mut seed.accounts[0];
        let role = &mut account.roles[0];
        let user = &mut account.users[0];
        let integration = &mut account.integrations[0];
        if let Some(v) = self.account {
            account.id = v;
        }
        if let Some(v) = self.company_name {
            account.company_name = v;
        }
        account.require_approval = self.require_approval;
        if self.require_approval {
            integration.installed = false;
        }
        if let Some(v) = self.role {
            role.id = v.clone();
            user.roles = vec![v];
        }
        if let Some(v) = self.role_name {
            role.name = v;
        }
        role.require_2fa = self.require_2fa;
        if let Some(v) = self.email {
            user.email = v;
        }
        if let Some(v) = self.password {
            user.password = SecretString::from(v);
        }
        if let Some(v) = self.entity_id {
            user.entity_id = v;
        }
        user.totp_secret = self.totp_secret.map(SecretString::from);
        if let Some(v) = self.integration_name {
            integration.name = v;
        }
        if let Some(v) = self.consumer_key {
            integration.consumer_key = v;
        }
        if let Some(v) = self.consumer_secret {
            integration.consumer_secret = SecretString::from(v);
        }
        seed
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(netsuite_token_rotator::telemetry::colour_on_stderr())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let seed = match &args.seed {
        Some(path) => Seed::load(path),
        None => {
            let seed = args.single.apply_to_demo();
            seed.validate().map(|()| seed)
        }
    };
    let seed = match seed {
        Ok(seed) => seed,
        Err(error) => {
            tracing::error!(%error, "netsuite-sim: cannot use the seed");
            return ExitCode::from(2);
        }
    };
    let accounts: Vec<String> = seed.accounts.iter().map(|a| a.id.clone()).collect();
    let limits = Limits {
        concurrency_limit: args.concurrency_limit,
        latency_ms: args.latency_ms,
    };
    let sim = match Simulator::new(seed) {
        Ok(sim) => sim,
        Err(error) => {
            tracing::error!(%error, "netsuite-sim: cannot use the seed");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = sim.set_limits(limits.clone()) {
        tracing::error!(%error, "netsuite-sim: cannot use the limits");
        return ExitCode::from(2);
    }
    let handle = match sim.serve(args.listen).await {
        Ok(handle) => handle,
        Err(error) => {
            tracing::error!(%error, "netsuite-sim: cannot start");
            return ExitCode::from(1);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let printed = writeln!(stdout, "netsuite-sim listening on {}", handle.base_url())
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(error) = printed {
        tracing::error!(%error, "netsuite-sim: cannot write the listening line to stdout");
        return ExitCode::from(1);
    }
    tracing::info!(
        addr = %handle.local_addr(),
        accounts = %accounts.join(", "),
        concurrency_limit = limits.concurrency_limit,
        latency_ms = limits.latency_ms,
        "netsuite-sim: serving"
    );
    wait_for_stop_signal().await;
    tracing::info!("netsuite-sim: stopping");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "netsuite-sim: cannot watch SIGTERM; ctrl-c still works");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
