//! `revoke`: previous credentials whose grace window has passed (`--force`: before it).

use super::{Report, engines, for_each_engine};
use crate::cli::daemon_link::DaemonLink;
use crate::cli::{Outcome, Target};
use crate::config::Config;
use crate::netsuite::NetSuiteClient;
use crate::rotation::RevokeOutcome;
use crate::secret::short_id;

pub(super) async fn revoke(
    config: &Config,
    client: &NetSuiteClient,
    target: &Target,
    force: bool,
) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    let daemon = DaemonLink::new(config);
    for_each_engine(config, engines, move |engine| {
        let daemon = daemon.clone();
        async move {
            let name = &engine.integration().name;
            let noun = engine.integration().noun();
            let revoked = engine.revoke_due(force).await;
            if let (Ok(RevokeOutcome::Revoked { .. }), Some(daemon)) = (&revoked, &daemon) {
                daemon.changed(name).await;
            }
            match revoked {
                Ok(RevokeOutcome::NothingToRevoke) => {
                    Report::ok(format!("{name}: no previous {noun} to revoke"))
                }
                Ok(RevokeOutcome::NotDue {
                    token_id,
                    revoke_after,
                }) => Report::ok(format!(
                    "{name}: previous {noun} {} is due for revocation after {revoke_after}",
                    short_id(&token_id)
                )),
                Ok(RevokeOutcome::Revoked { token_id }) => Report::ok(format!(
                    "{name}: previous {noun} {} revoked",
                    short_id(&token_id)
                )),
                Err(e) => Report::failed(format!("{name}: revocation failed: {e}")),
            }
        }
    })
    .await
}
