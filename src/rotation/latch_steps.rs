//! The engine's side of the login lock-out latch (`latch.rs`): refusing a rotation the
//! latch holds, latching after a refused login, lifting it when the login changes or an
//! operator asks.

use chrono::Utc;
use tracing::{info, warn};

use super::error::RotationError;
use super::{Engine, LOG_TARGET, latch};
use crate::netsuite::NetSuiteError;
use crate::store::{LoginLatch, StoreState};

impl Engine {
    /// Lifts a login latch `state` holds for another login than the one configured now: the
    /// configuration changed since NetSuite refused it, which is how an operator ends a latch
    /// (see `latch`), so that the store, `status`, `/readyz` and the metric stop calling the
    /// integration latched before its next run logs in once. The daemon calls it after each
    /// read; the CLI does not, so a one-off command run with other credentials (a `check` in
    /// another shell) never lifts the daemon's latch.
    pub async fn lift_stale_latch(&self, state: &mut StoreState) {
        if state.login_latch.is_none() || self.holding_latch(state).is_some() {
            return;
        }
        let name = &self.integration.name;
        match self
            .with_store_retries(|| self.store.set_login_latch(None))
            .await
        {
            Ok(()) => {
                info!(target: LOG_TARGET, integration = %name, "the login configuration changed since NetSuite refused it; the lock-out latch is lifted and the next run logs in once")
            }
            Err(e) => warn!(target: LOG_TARGET, integration = %name, error = %e,
                "the login configuration changed since NetSuite refused it, but the latch could not be cleared in the store"),
        }
        state.login_latch = None;
    }

    /// Refuses to log in when a refused login latched this login configuration, here (the
    /// store) or in another integration with the same login (the gate). A latch found only in
    /// the gate is copied into this store, so that it outlives the process.
    pub(super) async fn refuse_if_latched(&self, state: &StoreState) -> Result<(), RotationError> {
        // Only an NLAuth login locks a user out; an M2M integration has none.
        let Some(tba) = self.integration.tba() else {
            return Ok(());
        };
        let (account, login) = (&self.integration.account, tba.login.as_ref());
        let holding = |latch: &LoginLatch| latch::holds_for(latch, account, login);
        let latch = match state.login_latch.as_ref().filter(|l| holding(l)) {
            Some(latch) => {
                tba.login_gate.set(&self.integration.name, latch.clone());
                latch.clone()
            }
            None => match tba.login_gate.latched().filter(holding) {
                Some(latch) => {
                    if let Err(e) = self.store.set_login_latch(Some(&latch)).await {
                        warn!(target: LOG_TARGET, integration = %self.integration.name, error = %e,
                              "could not record the login latch in the store");
                    }
                    latch
                }
                None => return Ok(()),
            },
        };
        Err(RotationError::LoginLatched {
            integration: self.integration.name.to_string(),
            since: latch.at,
            reason: latch.reason,
        })
    }

    /// The latch in `state` that holds for this integration's login as configured now; a
    /// latch recorded for another login (the configuration changed since) does not.
    pub(super) fn holding_latch<'s>(&self, state: &'s StoreState) -> Option<&'s LoginLatch> {
        let integration = &self.integration;
        let tba = integration.tba()?;
        state
            .login_latch
            .as_ref()
            .filter(|latch| latch::holds_for(latch, &integration.account, &tba.login))
    }

    /// Keeps the shared gate in step with what this integration's store says (see
    /// [`LoginGate::forget_if_from`]); the daemon calls it whenever it reads the store.
    pub fn observe_latch(&self, state: &StoreState) {
        let integration = &self.integration;
        let Some(tba) = integration.tba() else {
            return;
        };
        match &state.login_latch {
            None => tba.login_gate.forget_if_from(&integration.name),
            Some(latch) if latch::holds_for(latch, &integration.account, &tba.login) => {
                tba.login_gate.set(&integration.name, latch.clone())
            }
            Some(_) => {}
        }
    }

    /// NetSuite refused the login: latch it in the store and for every integration sharing it.
    pub(super) async fn latch_login(&self, error: &NetSuiteError) {
        let integration = &self.integration;
        let Some(tba) = integration.tba() else {
            return;
        };
        let latch = latch::latch_for(&integration.account, &tba.login, Utc::now(), error);
        tba.login_gate.set(&integration.name, latch.clone());
        if let Err(e) = self
            .with_store_retries(|| self.store.set_login_latch(Some(&latch)))
            .await
        {
            // The gate still holds it in this process; a restart would try the login once more.
            tracing::error!(target: LOG_TARGET, integration = %integration.name, error = %e,
                "could not record the login latch in the store; it holds only until this process stops");
        }
    }

    /// A login succeeded: the latch, if any, is lifted here and for the integrations sharing
    /// the login.
    pub(super) async fn lift_latch(&self) {
        if let Some(tba) = self.integration.tba() {
            tba.login_gate.lift();
        }
        match self
            .with_store_retries(|| self.store.set_login_latch(None))
            .await
        {
            Ok(()) => {
                info!(target: LOG_TARGET, integration = %self.integration.name, "login accepted; the lock-out latch is lifted")
            }
            Err(e) => warn!(target: LOG_TARGET, integration = %self.integration.name, error = %e,
                "could not clear the login latch in the store; the next scheduled run will refuse to log in until `rotate --integration` clears it"),
        }
    }
}
