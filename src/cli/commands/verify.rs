//! `verify`: each current credential proved with NetSuite (tokeninfo, or a token exchange
//! for a certificate) against the expectations.

use super::{Report, engines, for_each_engine};
use crate::cli::{Outcome, Target};
use crate::config::Config;
use crate::netsuite::NetSuiteClient;

pub(super) async fn verify(config: &Config, client: &NetSuiteClient, target: &Target) -> Outcome {
    let engines = match engines(config, client, target).await {
        Ok(e) => e,
        Err(o) => return o,
    };
    for_each_engine(config, engines, move |engine| async move {
        let name = &engine.integration().name;
        match engine.verify_current().await {
            Ok(_) if engine.integration().m2m().is_some() => Report::ok(format!(
                "{name}: current certificate verified: NetSuite granted an access token for it"
            )),
            Ok(info) => Report::ok(format!(
                "{name}: current token verified: company {}, role {}, entity {}",
                info.company_id.as_deref().unwrap_or("?"),
                info.role_id.as_deref().unwrap_or("?"),
                info.entity_id.as_deref().unwrap_or("?"),
            )),
            Err(e) => Report::failed(format!("{name}: verification failed: {e}")),
        }
    })
    .await
}
