//! Telling a running daemon that the CLI changed a store.
//!
//! The daemon sleeps until its next due time and reads a store only when it wakes; after a
//! `rotate`, `import` or `revoke` by hand it would otherwise learn of the change at its next
//! scheduled wake (a replaced token left valid for days, metrics stale). So the CLI asks it to
//! read the store again now: `POST /reconcile?integration=NAME` on the `[daemon] listen`
//! address of the same configuration. No daemon there is normal (a one-shot user, a systemd
//! timer): the CLI then says who will revoke what.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Config;

/// How long the CLI waits for the daemon's answer: it is local, and the answer is immediate.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The running daemon of a configuration, if one answers.
#[derive(Clone, Debug)]
pub struct DaemonLink {
    /// `http://host:port`, with a wildcard listen address turned into loopback.
    base: String,
    client: reqwest::Client,
    /// Set, for every clone, once a connection was refused: no daemon listens, and a `rotate
    /// --all` then asks no more (a daemon started meanwhile reads every store as it starts).
    absent: Arc<AtomicBool>,
}

impl DaemonLink {
    pub fn new(config: &Config) -> Option<DaemonLink> {
        // Port 0: the daemon listens on a port the kernel chose, which only it knows.
        if config.daemon.listen.rsplit_once(':').map(|(_, port)| port) == Some("0") {
            return None;
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .no_proxy()
            .build()
            .ok()?;
        Some(DaemonLink {
            base: format!("http://{}", reachable(&config.daemon.listen)),
            client,
            absent: Arc::default(),
        })
    }

    /// Where the daemon would listen.
    pub fn address(&self) -> &str {
        &self.base
    }

    /// Asks the daemon to read `integration`'s store again; true if a daemon took it.
    pub async fn changed(&self, integration: &str) -> bool {
        if self.absent.load(Ordering::Relaxed) {
            return false;
        }
        let url = format!(
            "{}/reconcile?integration={}",
            self.base,
            crate::netsuite::percent_encode(integration)
        );
        let sent = self.client.post(&url).send().await;
        match sent {
            Ok(response) => response.status() == reqwest::StatusCode::ACCEPTED,
            Err(e) => {
                tracing::debug!(url = %url, error = %e, "no running daemon took the change");
                if e.is_connect() {
                    self.absent.store(true, Ordering::Relaxed);
                }
                false
            }
        }
    }
}

/// The address to connect to for a listen address: a wildcard host is this host's loopback.
fn reachable(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        assert_eq!(reachable("0.0.0.0:9464"), "127.0.0.1:9464");
        assert_eq!(reachable("[::]:9464"), "[::1]:9464");
        assert_eq!(reachable("127.0.0.1:9464"), "127.0.0.1:9464");
        assert_eq!(reachable("10.0.0.5:9000"), "10.0.0.5:9000");
    }
}
