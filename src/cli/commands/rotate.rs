//! `rotate`: issue, stage, verify, promote and, when due, revoke, for each selected
//! integration; refused inside a freeze window unless `--force`; `--dry-run` shows the plan.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Report, engines, for_each_engine};
use crate::cli::daemon_link::DaemonLink;
use crate::cli::{Outcome, Target, status};
use crate::config::Config;
use crate::netsuite::NetSuiteClient;
use crate::rotation::{PreviousFate, RotateOptions};
use crate::schedule::{ActiveFreeze, PatternCache};
use crate::secret::short_id;

pub(super) async fn rotate(
    config: &Config,
    client: &NetSuiteClient,
    target: &Target,
    dry_run: bool,
    revoke_now: bool,
    force: bool,
) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    let frozen = Arc::new(if force {
        HashMap::new()
    } else {
        frozen_integrations(config)
    });
    if dry_run {
        return for_each_engine(config, engines, move |engine| {
            let frozen = frozen.clone();
            async move {
                let name = &engine.integration().name;
                if let Some(freeze) = frozen.get(&**name) {
                    return Report::failed(format!(
                        "{name}: would refuse: {}",
                        frozen_refusal(name, freeze)
                    ));
                }
                // Exits as `rotate` would: a refusal fails the dry run too.
                match engine.load().await {
                    Ok(state) => match status::plan(&engine.plan(&state)) {
                        (line, false) => Report::ok(format!("{name}: {line}")),
                        (line, true) => Report::failed(format!("{name}: {line}")),
                    },
                    Err(e) => Report::failed(format!("{name}: cannot read the store: {e}")),
                }
            }
        })
        .await;
    }
    let options = RotateOptions {
        // Naming an integration is an operator asking: it lifts a login latch for one try.
        explicit: !target.all,
        revoke_now,
    };
    let daemon = DaemonLink::new(config);
    for_each_engine(config, engines, move |engine| {
        let daemon = daemon.clone();
        let frozen = frozen.clone();
        async move {
            let name = &engine.integration().name;
            let noun = engine.integration().noun();
            if let Some(freeze) = frozen.get(&**name) {
                return Report::failed(format!(
                    "{name}: not rotated: {}",
                    frozen_refusal(name, freeze)
                ));
            }
            let rotated = match engine.rotate_with(options).await {
                Ok(rotated) => rotated,
                Err(e) => return Report::failed(format!("{name}: rotation failed: {e}")),
            };
            let told = match &daemon {
                Some(daemon) => daemon.changed(name).await,
                None => false,
            };
            let previous = match &rotated.previous {
                PreviousFate::None => format!("no previous {noun}"),
                PreviousFate::Revoked { token_id } => {
                    format!("previous {noun} {} revoked", short_id(token_id))
                }
                PreviousFate::RevokeAt { token_id, at } if told => format!(
                    "previous {noun} {} stays valid for readers until {at}, then the running \
                     daemon revokes it",
                    short_id(token_id)
                ),
                PreviousFate::RevokeAt { token_id, at } => format!(
                    "previous {noun} {} stays valid until {at}; no running daemon answered at \
                     {}, so revoke it then with `netsuite-token-rotator revoke --integration \
                     {name}` (or start the daemon: it revokes it when due)",
                    short_id(token_id),
                    daemon.as_ref().map_or("[daemon] listen", |d| d.address()),
                ),
                PreviousFate::RevokeFailed { token_id, error } => format!(
                    "previous {noun} {} NOT revoked yet ({error}); {} retries",
                    short_id(token_id),
                    if told {
                        "the running daemon"
                    } else {
                        "`netsuite-token-rotator revoke --integration NAME`"
                    }
                ),
            };
            Report::ok(format!(
                "{name}: rotated (rotation {}): current {noun} {}; {previous}",
                rotated.rotation_id,
                short_id(&rotated.token_id)
            ))
        }
    })
    .await
}

/// The integrations a freeze window holds now, by name.
pub(super) fn frozen_integrations(config: &Config) -> HashMap<String, ActiveFreeze> {
    let now = chrono::Utc::now();
    let mut patterns = PatternCache::default();
    config
        .integrations
        .iter()
        .filter_map(|integration| {
            let schedule = integration
                .schedule_cached(&mut patterns, &config.freezes)
                .ok()?;
            Some((integration.name.clone(), schedule.freeze_at(now)?))
        })
        .collect()
}

pub(super) fn frozen_refusal(name: &str, freeze: &ActiveFreeze) -> String {
    format!(
        "freeze window {:?} is in force until {}, and no rotation starts inside one; to rotate \
         anyway: `netsuite-token-rotator rotate --force --integration {name}`",
        &*freeze.name,
        freeze
            .until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}
