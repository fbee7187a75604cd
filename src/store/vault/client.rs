//! The HTTP transport to a real Vault: logs in (token, AppRole, Kubernetes), keeps its token
//! fresh (renew-self in the last third of its TTL, else a new login), and sends the calls.

use std::path::PathBuf;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::secret::{ExposeSecret, SecretString};
use crate::store::StoreErrorKind;

use crate::store::vault::Failure;
use crate::store::vault::Reply;
use crate::store::vault::Transport;
use crate::store::vault::error_chain;
use crate::store::vault::rejection;
use crate::store::vault::to_json_bytes;

/// The login-issued token's lease, for deciding when to renew it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lease {
    pub(super) obtained: Instant,
    pub(super) ttl: Duration,
    pub(super) renewable: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum TokenAction {
    Use,
    Renew,
    Login,
}

/// Before a call: a token within a third of its TTL of expiry is renewed if renewable, else
/// replaced by a new login. A static token (no lease) and a token without expiry are used.
pub(super) fn token_action(lease: Option<&Lease>, now: Instant) -> TokenAction {
    let Some(lease) = lease else {
        return TokenAction::Use;
    };
    if lease.ttl.is_zero() {
        return TokenAction::Use;
    }
    let refresh_at = lease.obtained + lease.ttl - lease.ttl / 3;
    if now < refresh_at {
        TokenAction::Use
    } else if lease.renewable {
        TokenAction::Renew
    } else {
        TokenAction::Login
    }
}

/// Credentials for a login, resolved from the config's secret references.
pub(super) enum Login {
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id: SecretString,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt_path: PathBuf,
    },
}

pub(super) struct Session {
    pub(super) token: SecretString,
    /// `None` for a static token from the config: used as it is.
    pub(super) lease: Option<Lease>,
}

pub(super) struct VaultHttp {
    pub(super) client: reqwest::Client,
    /// Without trailing '/'.
    pub(super) address: String,
    pub(super) namespace: Option<String>,
    pub(super) login: Option<Login>,
    pub(super) session: tokio::sync::Mutex<Session>,
}

#[derive(Serialize)]
pub(super) struct AppRoleLoginBody<'a> {
    pub(super) role_id: &'a str,
    pub(super) secret_id: &'a str,
}

#[derive(Serialize)]
pub(super) struct KubernetesLoginBody<'a> {
    pub(super) role: &'a str,
    pub(super) jwt: &'a str,
}

impl VaultHttp {
    /// One HTTP exchange. Never quotes the body: Vault's answers can hold secrets.
    pub(super) async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> Result<Reply, Failure> {
        let url = format!("{}/v1/{}", self.address, path);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .header("X-Vault-Request", "true");
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_vec());
        }
        let unreachable = |e: reqwest::Error| Failure {
            kind: StoreErrorKind::Unavailable,
            detail: format!(
                "{method} /v1/{path}: no answer from {}: {}",
                self.address,
                error_chain(&e.without_url())
            ),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok(Reply::new(status, &bytes))
    }

    /// Returns a token fit for the next call, renewing or logging in first when it is due.
    pub(super) async fn fresh_token(&self) -> Result<SecretString, Failure> {
        let mut session = self.session.lock().await;
        match token_action(session.lease.as_ref(), Instant::now()) {
            TokenAction::Use => {}
            TokenAction::Renew => {
                if let Err(failure) = self.renew(&mut session).await {
                    tracing::info!(
                        vault = %self.address,
                        reason = %failure.detail,
                        "vault token renewal failed; logging in again"
                    );
                    *session = self.log_in().await?;
                }
            }
            TokenAction::Login => *session = self.log_in().await?,
        }
        Ok(session.token.clone())
    }

    /// After a 403 with `used`: logs in again, unless another call already replaced the token.
    pub(super) async fn replace_token(&self, used: &SecretString) -> Result<SecretString, Failure> {
        let mut session = self.session.lock().await;
        if session.token.expose_secret() == used.expose_secret() {
            *session = self.log_in().await?;
        }
        Ok(session.token.clone())
    }

    pub(super) async fn renew(&self, session: &mut Session) -> Result<(), Failure> {
        let reply = self
            .exchange(
                Method::POST,
                "auth/token/renew-self",
                Some(b"{}"),
                Some(&session.token),
            )
            .await?;
        if reply.status != 200 {
            return Err(rejection(
                "renew-self",
                Method::POST,
                "auth/token/renew-self",
                &reply,
            ));
        }
        let (ttl, renewable) = lease_of(&reply.body);
        session.lease = Some(Lease {
            obtained: Instant::now(),
            ttl,
            renewable,
        });
        tracing::debug!(vault = %self.address, ttl_s = ttl.as_secs(), "vault token renewed");
        Ok(())
    }

    pub(super) async fn log_in(&self) -> Result<Session, Failure> {
        let (path, body) = match self.login.as_ref() {
            None => {
                return Err(Failure {
                    kind: StoreErrorKind::Denied,
                    detail: "the configured Vault token cannot be renewed or replaced".into(),
                });
            }
            Some(Login::AppRole {
                mount,
                role_id,
                secret_id,
            }) => {
                let body = AppRoleLoginBody {
                    role_id: role_id.expose_secret(),
                    secret_id: secret_id.expose_secret(),
                };
                (format!("auth/{mount}/login"), to_json_bytes(&body))
            }
            Some(Login::Kubernetes {
                mount,
                role,
                jwt_path,
            }) => {
                let jwt =
                    Zeroizing::new(tokio::fs::read_to_string(jwt_path).await.map_err(|e| {
                        Failure {
                            kind: StoreErrorKind::Denied,
                            detail: format!(
                                "cannot read the Kubernetes service account token {}: {e}",
                                jwt_path.display()
                            ),
                        }
                    })?);
                let body = KubernetesLoginBody {
                    role,
                    jwt: jwt.trim(),
                };
                (format!("auth/{mount}/login"), to_json_bytes(&body))
            }
        };
        let reply = self
            .exchange(Method::POST, &path, Some(&body), None)
            .await?;
        if reply.status != 200 {
            let mut failure = rejection("login", Method::POST, &path, &reply);
            if (400..500).contains(&reply.status) && reply.status != 429 {
                failure.kind = StoreErrorKind::Denied;
            }
            return Err(failure);
        }
        let token = reply
            .body
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure {
                kind: StoreErrorKind::Failed,
                detail: format!("POST /v1/{path}: the answer has no auth.client_token"),
            })?;
        let (ttl, renewable) = lease_of(&reply.body);
        tracing::info!(vault = %self.address, login = %path, ttl_s = ttl.as_secs(), renewable, "logged in to vault");
        Ok(Session {
            token: SecretString::from(token),
            lease: Some(Lease {
                obtained: Instant::now(),
                ttl,
                renewable,
            }),
        })
    }
}

#[async_trait::async_trait]
impl Transport for VaultHttp {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        let token = self.fresh_token().await?;
        let reply = self
            .exchange(method.clone(), path, body, Some(&token))
            .await?;
        // A 403 may be a token that expired or was revoked under us: one new login, one retry.
        if reply.status == 403 && self.login.is_some() {
            tracing::info!(vault = %self.address, "vault refused the token (403); logging in again");
            let token = self.replace_token(&token).await?;
            return self.exchange(method, path, body, Some(&token)).await;
        }
        Ok(reply)
    }
}

/// `auth.lease_duration` and `auth.renewable` of a login or renew answer.
pub(super) fn lease_of(body: &Value) -> (Duration, bool) {
    let ttl = body
        .pointer("/auth/lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let renewable = body
        .pointer("/auth/renewable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (Duration::from_secs(ttl), renewable)
}
