//! `POST /services/rest/auth/oauth2/v1/token`: the client-credentials exchange. A form body
//! with `grant_type=client_credentials`, the JWT-bearer assertion type and a client assertion
//! ([`super::assertion`]) buys a bearer token that lives an hour.
//!
//! Errors follow RFC 6749 section 5.2: `400` with `{"error", "error_description"}`. Every
//! refused assertion is `invalid_client` (RFC 7523 section 3.2), a bad `scope` `invalid_scope`,
//! a missing or wrong parameter `invalid_request`, another grant type `unsupported_grant_type`.
//! `invalid_grant` is not used: this flow has no grant besides the client's own assertion.

use serde_json::json;

use super::super::reply::Reply;
use super::super::wire;
use super::assertion::{self, Refused};
use super::{
    ACCESS_TOKEN_LIFETIME_SECS, AccessToken, FailedM2mLogin, M2mCall, M2mWorld, Refusal, reason,
};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn form(call: &M2mCall) -> Vec<(Vec<u8>, Vec<u8>)> {
    wire::parse_query(std::str::from_utf8(&call.body).ok())
}

/// The assertion's `iss`, unverified: only to find the account whose concurrency slot the
/// request takes.
pub(super) fn unverified_iss(call: &M2mCall) -> Option<String> {
    let assertion = wire::query_value(&form(call), "client_assertion")?;
    assertion::claimed_identity(&assertion).0
}

fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::json(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

pub(super) fn exchange(world: &mut M2mWorld, call: &M2mCall, now: i64) -> Result<Reply, Refusal> {
    let form = form(call);
    let assertion = wire::query_value(&form, "client_assertion");
    let (iss, kid) = assertion
        .as_deref()
        .map(assertion::claimed_identity)
        .unwrap_or_default();
    let account = iss
        .as_ref()
        .and_then(|id| world.clients.get(id))
        .map(|c| c.account.clone())
        .or_else(|| call.account_param.as_ref().map(|a| a.to_ascii_uppercase()))
        .unwrap_or_default();
    let refuse = |refused: Refused| Refusal {
        reason: refused.reason,
        reply: oauth_error(refused.error, &refused.description),
        failed_login: Some(Box::new(FailedM2mLogin {
            account: account.clone(),
            scheme: "client_credentials",
            client_id: iss.clone(),
            certificate_id: kid.clone(),
        })),
    };
    let request = |reason, description: &str| Refused {
        error: "invalid_request",
        description: description.to_string(),
        reason,
    };
    let form_content = call.content_type.as_deref().is_some_and(|t| {
        t.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form_content {
        return Err(refuse(request(
            reason::FORM_INVALID,
            "Content-Type: expected application/x-www-form-urlencoded",
        )));
    }
    match wire::query_value(&form, "grant_type").as_deref() {
        None | Some("") => {
            return Err(refuse(request(
                reason::GRANT_TYPE_MISSING,
                "grant_type: missing; expected client_credentials",
            )));
        }
        Some("client_credentials") => {}
        Some(other) => {
            return Err(refuse(Refused {
                error: "unsupported_grant_type",
                description: format!("grant_type: {other:?}; expected client_credentials"),
                reason: reason::GRANT_TYPE_UNSUPPORTED,
            }));
        }
    }
    if wire::query_value(&form, "client_assertion_type").as_deref() != Some(ASSERTION_TYPE) {
        return Err(refuse(request(
            reason::ASSERTION_TYPE_INVALID,
            &format!("client_assertion_type: missing or wrong; expected {ASSERTION_TYPE}"),
        )));
    }
    let Some(assertion) = assertion.filter(|a| !a.is_empty()) else {
        return Err(refuse(request(
            reason::ASSERTION_MISSING,
            "client_assertion: missing; expected a JWT signed with the certificate's key",
        )));
    };
    let verified =
        assertion::verify(world, &assertion, &audiences(call, &account), now).map_err(refuse)?;
    let cert = &world.certificates[&verified.certificate_id];
    let (entity, role) = (cert.entity.clone(), cert.role.clone());
    let expires_at = now + ACCESS_TOKEN_LIFETIME_SECS;
    let claims = json!({
        "iss": "netsuite-sim",
        "sub": format!("{entity};{role}"),
        "client_id": verified.client_id,
        "scope": verified.scopes.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "iat": now,
        "exp": expires_at,
        "jti": super::random_id(),
    });
    let access_token = jsonwebtoken::EncodingKey::from_secret(&world.signing_secret)
        .and_then(|key| jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key))
        .map_err(|_| Refusal {
            reason: reason::ASSERTION_MALFORMED,
            reply: Reply::json(500, &json!({"error": "server_error"})),
            failed_login: None,
        })?;
    world.access_tokens.retain(|_, t| t.expires_at > now);
    world.access_tokens.insert(
        access_token.clone(),
        AccessToken {
            client_id: verified.client_id,
            role,
            scopes: verified.scopes,
            expires_at,
        },
    );
    world.access_tokens_issued += 1;
    Ok(Reply::json(
        200,
        &json!({
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_LIFETIME_SECS.to_string(),
            "token_type": "Bearer",
        }),
    ))
}

/// The `aud` values taken: the token endpoint's URL as the client reached the simulator, and
/// NetSuite's own for the client's account (`https://<account>.suitetalk.api.netsuite.com`,
/// lowercase, `_` as `-`).
fn audiences(call: &M2mCall, account: &str) -> Vec<String> {
    let mut audiences = vec![call.token_url.clone()];
    if !account.is_empty() {
        audiences.push(format!(
            "https://{}.suitetalk.api.netsuite.com{}",
            account.to_ascii_lowercase().replace('_', "-"),
            super::TOKEN_PATH
        ));
    }
    audiences
}
