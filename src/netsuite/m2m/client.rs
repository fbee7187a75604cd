//! The OAuth 2.0 calls of [`NetSuiteClient`]: the client-credentials token exchange and the
//! certificate rotation endpoint. They share the TBA calls' machinery (`exchange`,
//! `with_retries`, a span per HTTP request, the body cap, the error classification); what
//! differs is the body they `POST` and which failures may be retried.
//!
//! Retries: the token exchange, the listing and a revoke are retried for transient failures (a
//! lost token answer costs nothing; revoking twice is harmless). An add is retried only when it
//! certainly did nothing (no connection, the account's concurrency limit): after a timeout, a
//! broken connection or a 5xx NetSuite may have stored the certificate, and a second add could
//! take another of the five active slots. The error says so (`may_have_issued()`) and the
//! caller lists to find out.

use futures_util::FutureExt as _;
use reqwest::Url;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::assertion::client_assertion;
use super::listing::{added_certificate_id, parse_listing};
use super::{AccessToken, CertificateEntry, M2mCredentials};
use crate::netsuite::client::{Request, expect_success};
use crate::netsuite::encode::percent_encode;
use crate::netsuite::error::{BodyProblem, Call, NetSuiteError};
use crate::netsuite::response::{markup_problem, pick_json_fields};
use crate::netsuite::retry::with_retries;
use crate::netsuite::{Endpoint, NetSuiteClient, Revoked};
use crate::secret::SecretString;

/// `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The scope the certificate calls need.
pub const DEFAULT_SCOPES: [&str; 1] = ["rest_webservices"];

const OAUTH2_PATH: &str = "services/rest/auth/oauth2/v1";

/// The token endpoint URL under `base`: also the assertion's `aud`.
fn token_path() -> String {
    format!("{OAUTH2_PATH}/token")
}

fn certificates_path(client_id: &SecretString) -> String {
    format!(
        "{OAUTH2_PATH}/clients/{}/certificates",
        percent_encode(client_id.expose_secret())
    )
}

/// The token request's form body.
fn token_form(assertion: &SecretString) -> Zeroizing<Vec<u8>> {
    let form = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
        percent_encode(ASSERTION_TYPE),
        percent_encode(assertion.expose_secret())
    );
    Zeroizing::new(form.into_bytes())
}

fn bearer(token: &AccessToken) -> SecretString {
    SecretString::from(format!("Bearer {}", token.token.expose_secret()))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl NetSuiteClient {
    /// `POST <base>/services/rest/auth/oauth2/v1/token` with a fresh client assertion per
    /// attempt (`iat` now, `exp` 55 minutes on, `aud` this URL, `scope` comma-separated).
    /// A refusal (`400 {"error": "invalid_client"}` and the like) is
    /// [`NetSuiteError::OAuth2Rejected`] and not retried.
    pub async fn m2m_access_token(
        &self,
        endpoint: &Endpoint,
        creds: &M2mCredentials<'_>,
        scopes: &[String],
    ) -> Result<AccessToken, NetSuiteError> {
        let call = Call::M2mToken;
        let url = self.url(call, &endpoint.base_url, &token_path())?;
        let url = &url;
        let client_id = creds.client_id;
        with_retries(&self.options, &self.counts, call, |attempt| {
            async move {
                let assertion = client_assertion(creds, url.as_str(), scopes, unix_now())
                    .map_err(|problem| NetSuiteError::InvalidRequest { call, problem })?;
                let request =
                    Request::post("application/x-www-form-urlencoded", token_form(&assertion));
                let no_auth = |_: &Url| Ok(None);
                let answer = self
                    .exchange_with(call, url, &request, &no_auth, attempt)
                    .await?;
                let body = expect_success(call, answer)?;
                parse_access_token(&body.bytes, &body.content_type)
                    .map_err(|p| body.problem(call, p))
            }
            .map(|result| scrub_client_id(result, client_id))
        })
        .await
    }

    /// `GET .../clients/<client id>/certificates` with the access token. Retried when
    /// transient. A `401` is [`NetSuiteError::AccessTokenRefused`] (ask for a new token).
    pub async fn list_certificates(
        &self,
        endpoint: &Endpoint,
        client_id: &SecretString,
        token: &AccessToken,
    ) -> Result<Vec<CertificateEntry>, NetSuiteError> {
        let call = Call::ListCertificates;
        let url = self.url(call, &endpoint.base_url, &certificates_path(client_id))?;
        let url = &url;
        let authorization = bearer(token);
        let authorize = |_: &Url| Ok(Some(authorization.clone()));
        let authorize = &authorize;
        with_retries(&self.options, &self.counts, call, |attempt| {
            async move {
                let answer = self
                    .exchange_with(call, url, &Request::Get, authorize, attempt)
                    .await?;
                let body = expect_success(call, answer)?;
                parse_listing(&body.bytes, &body.content_type).map_err(|p| body.problem(call, p))
            }
            .map(|result| scrub_client_id(result, client_id))
        })
        .await
    }

    /// `POST .../clients/<client id>/certificates` with `{"fileContent", "role", "entity"}`
    /// (role and entity as JSON numbers when all digits). `Some(id)` only when the answer
    /// plainly carries the new certificate's id; `None` for `204` or an answer without one
    /// (list before and after to find it). Not retried once the request may have reached
    /// NetSuite: then `may_have_issued()` is true.
    pub async fn add_certificate(
        &self,
        endpoint: &Endpoint,
        client_id: &SecretString,
        token: &AccessToken,
        certificate_pem: &str,
        role: &str,
        entity: &str,
    ) -> Result<Option<String>, NetSuiteError> {
        let call = Call::AddCertificate;
        let url = self.url(call, &endpoint.base_url, &certificates_path(client_id))?;
        let url = &url;
        let body = serde_json::json!({
            "fileContent": certificate_pem,
            "role": id_value(role),
            "entity": id_value(entity),
        })
        .to_string();
        let request = &Request::post("application/json", Zeroizing::new(body.into_bytes()));
        let authorization = bearer(token);
        let authorize = |_: &Url| Ok(Some(authorization.clone()));
        let authorize = &authorize;
        with_retries(&self.options, &self.counts, call, |attempt| {
            async move {
                let answer = self
                    .exchange_with(call, url, request, authorize, attempt)
                    .await?;
                if answer.status == reqwest::StatusCode::NO_CONTENT {
                    return Ok(None);
                }
                let body = expect_success(call, answer)?;
                added_certificate_id(&body.bytes, &body.content_type)
                    .map_err(|p| body.problem(call, p))
            }
            .map(|result| scrub_client_id(result, client_id))
        })
        .await
    }

    /// `POST .../clients/<client id>/certificates/<id>/revoke`. `Ok(Revoked::Now)` on a 2xx,
    /// `Ok(Revoked::AlreadyInvalid)` on a `404` from the service (not on an HTML 404 page: a
    /// wrong endpoint must not pass for a revoked certificate). Retried when transient.
    pub async fn revoke_certificate(
        &self,
        endpoint: &Endpoint,
        client_id: &SecretString,
        token: &AccessToken,
        certificate_id: &str,
    ) -> Result<Revoked, NetSuiteError> {
        let call = Call::RevokeCertificate;
        let path = format!(
            "{}/{}/revoke",
            certificates_path(client_id),
            percent_encode(certificate_id.trim())
        );
        let url = self.url(call, &endpoint.base_url, &path)?;
        let url = &url;
        let authorization = bearer(token);
        let authorize = |_: &Url| Ok(Some(authorization.clone()));
        let authorize = &authorize;
        with_retries(&self.options, &self.counts, call, |attempt| {
            async move {
                let request = Request::post("application/json", Zeroizing::new(Vec::new()));
                let answer = self
                    .exchange_with(call, url, &request, authorize, attempt)
                    .await?;
                let service_answered = |answer: &crate::netsuite::client::Answer| {
                    answer
                        .body
                        .as_ref()
                        .is_ok_and(|body| markup_problem(body, &answer.content_type).is_none())
                };
                if answer.status == reqwest::StatusCode::NOT_FOUND && service_answered(&answer) {
                    return Ok(Revoked::AlreadyInvalid);
                }
                if answer.status.is_success() && !service_answered(&answer) {
                    let body = expect_success(call, answer)?;
                    let problem = markup_problem(&body.bytes, &body.content_type)
                        .unwrap_or(BodyProblem::Html);
                    return Err(body.problem(call, problem));
                }
                expect_success(call, answer).map(|_| Revoked::Now)
            }
            .map(|result| scrub_client_id(result, client_id))
        })
        .await
    }
}

/// A role or entity id as the add body carries it: a JSON number when it is all digits (and
/// fits), else the trimmed string.
fn id_value(id: &str) -> serde_json::Value {
    let id = id.trim();
    if !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && let Ok(number) = id.parse::<u64>()
    {
        return serde_json::Value::from(number);
    }
    serde_json::Value::from(id)
}

/// The token endpoint's answer: `{"access_token", "expires_in", "token_type"}`; `expires_in`
/// as a string (NetSuite) or a number.
fn parse_access_token(body: &[u8], content_type: &str) -> Result<AccessToken, BodyProblem> {
    let [token, expires_in] = pick_json_fields(
        body,
        content_type,
        [&["access_token"], &["expires_in"]],
        "an object with a string access_token",
    )?;
    let token =
        token
            .filter(|token| !token.trim().is_empty())
            .ok_or(BodyProblem::MissingField {
                field: "access_token",
            })?;
    Ok(AccessToken {
        token: SecretString::from(token.trim()),
        expires_in: expires_in.and_then(|text| text.trim().parse().ok()),
    })
}

/// [`without_client_id`] on an attempt's result, inside the retry loop: its warnings log the
/// error too.
fn scrub_client_id<T>(
    result: Result<T, NetSuiteError>,
    client_id: &SecretString,
) -> Result<T, NetSuiteError> {
    result.map_err(|err| without_client_id(err, client_id.expose_secret()))
}

/// Takes the client id out of whatever text of an answer an error carries: NetSuite's (and the
/// simulator's) descriptions may quote the `iss` they refused.
fn without_client_id(err: NetSuiteError, client_id: &str) -> NetSuiteError {
    const SHOWN: &str = "[client id]";
    if client_id.trim().is_empty() {
        return err;
    }
    let scrub = |text: &mut String| {
        if text.contains(client_id) {
            *text = text.replace(client_id, SHOWN);
        }
    };
    let mut err = err;
    match &mut err {
        NetSuiteError::OAuth2Rejected {
            description: Some(description),
            ..
        } => scrub(description),
        NetSuiteError::AccessTokenRefused { detail, .. }
        | NetSuiteError::Rejected { detail, .. }
        | NetSuiteError::RateLimited { detail, .. }
        | NetSuiteError::ServerError { detail, .. }
        | NetSuiteError::LoginFailed { detail, .. }
        | NetSuiteError::OAuthRejected { detail, .. } => {
            if let Some(message) = &mut detail.message {
                scrub(message);
            }
            if let Some(code) = &mut detail.code {
                scrub(code);
            }
        }
        NetSuiteError::InvalidRequest { problem, .. } => scrub(problem),
        _ => {}
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netsuite::NetSuiteDetail;

    #[test]
    fn ids_are_numbers_when_all_digits() {
        assert_eq!(id_value("1001"), serde_json::json!(1001));
        assert_eq!(id_value(" 42 "), serde_json::json!(42));
        assert_eq!(id_value("-5"), serde_json::json!("-5"));
        assert_eq!(id_value("abc"), serde_json::json!("abc"));
        assert_eq!(
            id_value("123456789012345678901234567890"),
            serde_json::json!("123456789012345678901234567890")
        );
    }

    #[test]
    fn access_token_answers() {
        let token = parse_access_token(
            br#"{"access_token":"a.b.c","expires_in":"3600","token_type":"Bearer"}"#,
            "application/json",
        )
        .unwrap();
        assert_eq!(token.token.expose_secret(), "a.b.c");
        assert_eq!(token.expires_in, Some(3600));
        let token = parse_access_token(br#"{"access_token":"x","expires_in":60}"#, "").unwrap();
        assert_eq!(token.expires_in, Some(60));
        assert_eq!(
            parse_access_token(br#"{"token_type":"Bearer"}"#, "application/json").unwrap_err(),
            BodyProblem::MissingField {
                field: "access_token"
            }
        );
        assert!(parse_access_token(b"<html></html>", "text/html").is_err());
    }

    #[test]
    fn the_client_id_is_taken_out_of_error_text() {
        let err = NetSuiteError::OAuth2Rejected {
            call: Call::M2mToken,
            status: 400,
            error: "invalid_client".into(),
            description: Some("claim iss: \"client-xyz\" is not the client".into()),
        };
        let message = without_client_id(err, "client-xyz").to_string();
        assert!(!message.contains("client-xyz"), "{message}");
        assert!(message.contains("[client id]"), "{message}");
        let err = NetSuiteError::Rejected {
            call: Call::AddCertificate,
            status: 400,
            detail: NetSuiteDetail {
                code: Some("X".into()),
                message: Some("client client-xyz has 5".into()),
            },
        };
        assert!(
            !without_client_id(err, "client-xyz")
                .to_string()
                .contains("client-xyz")
        );
    }

    #[test]
    fn the_token_form() {
        let form = token_form(&SecretString::from("h.p.s".to_string()));
        assert_eq!(
            std::str::from_utf8(&form).unwrap(),
            "grant_type=client_credentials&client_assertion_type=\
             urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&\
             client_assertion=h.p.s"
        );
    }

    #[test]
    fn the_token_url_and_certificate_paths() {
        assert_eq!(token_path(), "services/rest/auth/oauth2/v1/token");
        let id = SecretString::from("a b/c".to_string());
        assert_eq!(
            certificates_path(&id),
            "services/rest/auth/oauth2/v1/clients/a%20b%2Fc/certificates"
        );
    }
}
