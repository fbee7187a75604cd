//! The certificate rotation endpoint under
//! `/services/rest/auth/oauth2/v1/clients/<client ID>/certificates`: list (`GET`), add (`POST`
//! with `{"fileContent", "role", "entity"}`) and revoke (`POST .../<certificate ID>/revoke`).
//!
//! Every call needs `Authorization: Bearer <access token>` from the token endpoint with the
//! `rest_webservices` scope (401 otherwise), for this client (403 otherwise), whose mapping's
//! role has "Manage own OAuth 2.0 Client Credentials certificates" (403 otherwise).
//!
//! Not published, chosen here: the answers. A listing is `{"items": [entry...], "count": n}`;
//! an entry is `{"id", "entity", "role", "algorithm", "validFrom", "validUntil", "revoked",
//! "revokedAt"}` (dates in RFC 3339); add answers per [`super::AddAnswer`]; revoke answers the
//! revoked entry (also for one already revoked). Errors use the REST web services shape:
//! `{"type", "title", "status", "o:errorDetails": [{"detail", "o:errorCode"}]}`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::reply::Reply;
use super::{
    AddAnswer, AdminCertificate, Certificate, FailedM2mLogin, M2mCall, M2mError, M2mWorld, Refusal,
    Scope, reason, utc,
};
use crate::sim::faults::RestEndpoint;

/// A NetSuite REST web services error.
fn rest_error(status: u16, code: &str, detail: &str) -> Reply {
    let title = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Error",
    };
    Reply::json(
        status,
        &json!({
            "type": format!("https://www.rfc-editor.org/rfc/rfc9110.html#status.{status}"),
            "title": title,
            "status": status,
            "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
        }),
    )
}

fn refusal(reason: &'static str, status: u16, code: &str, detail: &str) -> Refusal {
    Refusal {
        reason,
        reply: rest_error(status, code, detail),
        failed_login: None,
    }
}

/// A 401: a failed login, announced in `WWW-Authenticate` as RFC 6750 asks.
fn unauthorized(call: &M2mCall, account: &str, reason: &'static str, detail: &str) -> Refusal {
    let mut reply = rest_error(401, "INVALID_LOGIN", detail);
    reply.www_authenticate = Some(r#"Bearer error="invalid_token""#.to_string());
    Refusal {
        reason,
        reply,
        failed_login: Some(Box::new(FailedM2mLogin {
            account: account.to_string(),
            scheme: "bearer",
            client_id: call.client_id.clone(),
            certificate_id: None,
        })),
    }
}

/// The entry of a certificate in a listing and in the add and revoke answers.
fn entry(id: &str, c: &Certificate) -> Value {
    json!({
        "id": id,
        "entity": c.entity,
        "role": c.role,
        "algorithm": c.parsed.key_type.name(),
        "validFrom": c.parsed.not_before.to_rfc3339(),
        "validUntil": c.parsed.not_after.to_rfc3339(),
        "revoked": c.revoked_at.is_some(),
        "revokedAt": c.revoked_at.map(|t| t.to_rfc3339()),
    })
}

pub(super) fn handle(world: &mut M2mWorld, call: &M2mCall, now: i64) -> Result<Reply, Refusal> {
    let client_id = call.client_id.clone().unwrap_or_default();
    let account = world
        .clients
        .get(&client_id)
        .map(|c| c.account.clone())
        .unwrap_or_default();
    authorize(world, call, &client_id, &account, now)?;
    match call.endpoint {
        RestEndpoint::M2mCertificates => Ok(list(world, &client_id)),
        RestEndpoint::M2mCertificateAdd => add(world, call, &client_id, now),
        _ => revoke(world, call, &client_id, now),
    }
}

fn authorize(
    world: &M2mWorld,
    call: &M2mCall,
    client_id: &str,
    account: &str,
    now: i64,
) -> Result<(), Refusal> {
    let token = call
        .authorization
        .as_deref()
        .and_then(|h| super::super::wire::strip_scheme(h, "Bearer"))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(unauthorized(
            call,
            account,
            reason::BEARER_MISSING,
            "Authorization: expected Bearer <access token from the token endpoint>",
        ));
    };
    let Some(access) = world.access_tokens.get(token) else {
        return Err(unauthorized(
            call,
            account,
            reason::BEARER_INVALID,
            "Authorization: the bearer token is not one the token endpoint issued",
        ));
    };
    if access.expires_at <= now {
        return Err(unauthorized(
            call,
            account,
            reason::BEARER_EXPIRED,
            "Authorization: the bearer token expired; ask the token endpoint for another",
        ));
    }
    if !access.scopes.contains(&Scope::RestWebServices) {
        return Err(unauthorized(
            call,
            account,
            reason::BEARER_SCOPE,
            "Authorization: the bearer token's scopes lack rest_webservices",
        ));
    }
    if access.client_id != client_id {
        return Err(refusal(
            reason::OTHER_CLIENT,
            403,
            "INSUFFICIENT_PERMISSION",
            "path client ID: the bearer token was issued to another client",
        ));
    }
    let manages = world
        .directory
        .get(account)
        .is_some_and(|d| d.managers.contains(&access.role));
    if !manages {
        return Err(refusal(
            reason::PERMISSION_MISSING,
            403,
            "INSUFFICIENT_PERMISSION",
            &format!(
                "role {}: lacks the permission Manage own OAuth 2.0 Client Credentials \
                 certificates",
                access.role
            ),
        ));
    }
    Ok(())
}

fn list(world: &M2mWorld, client_id: &str) -> Reply {
    let mut mine: Vec<(&String, &Certificate)> = world
        .certificates
        .iter()
        .filter(|(_, c)| c.client_id == client_id)
        .collect();
    mine.sort_by_key(|(_, c)| c.serial);
    let items: Vec<Value> = mine.into_iter().map(|(id, c)| entry(id, c)).collect();
    Reply::json(200, &json!({"count": items.len(), "items": items}))
}

/// A role or entity id: NetSuite's samples send numbers; strings are taken too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Text(s) => s,
            Id::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddBody {
    file_content: String,
    role: Id,
    entity: Id,
}

fn add(world: &mut M2mWorld, call: &M2mCall, client_id: &str, now: i64) -> Result<Reply, Refusal> {
    let bad = |reason, detail: &str| refusal(reason, 400, "INVALID_REQUEST", detail);
    let json_content = call.content_type.as_deref().is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_content {
        return Err(bad(
            reason::BODY_INVALID,
            "Content-Type: expected application/json (the body must be a JSON string since 2023.2)",
        ));
    }
    let body: AddBody = serde_json::from_slice(&call.body).map_err(|e| {
        bad(
            reason::BODY_INVALID,
            &format!(
                "body: expected a JSON object {{\"fileContent\": PEM, \"role\": id, \"entity\": \
                 id}}: {e}"
            ),
        )
    })?;
    let request = AdminCertificate {
        client_id: client_id.to_string(),
        entity: body.entity.into_string(),
        role: body.role.into_string(),
        pem: body.file_content,
    };
    let id = world
        .add_certificate(&request, None, now)
        .map_err(|error| {
            let reason = match &error {
                M2mError::NotMapped { .. } | M2mError::UnknownClient(_) => reason::MAPPING_UNKNOWN,
                M2mError::TooManyActive { .. } => reason::TOO_MANY_ACTIVE,
                M2mError::Certificate(_) | M2mError::DuplicateId(_) => reason::CERTIFICATE_REFUSED,
            };
            bad(reason, &error.to_string())
        })?;
    Ok(match world.answers.add_answer {
        AddAnswer::WithId => Reply::json(200, &entry(&id, &world.certificates[&id])),
        AddAnswer::WithoutId => Reply::json(200, &json!({"status": "success"})),
        AddAnswer::NoContent => {
            let mut reply = Reply::json(204, &Value::Null);
            reply.body.clear();
            reply
        }
    })
}

fn revoke(
    world: &mut M2mWorld,
    call: &M2mCall,
    client_id: &str,
    now: i64,
) -> Result<Reply, Refusal> {
    let id = call.certificate_id.clone().unwrap_or_default();
    let Some(cert) = world
        .certificates
        .get_mut(&id)
        .filter(|c| c.client_id == client_id)
    else {
        return Err(refusal(
            reason::CERTIFICATE_UNKNOWN,
            404,
            "NONEXISTENT_ID",
            &format!("certificate ID {id:?}: no certificate of client {client_id} has it"),
        ));
    };
    cert.revoked_at.get_or_insert(utc(now));
    Ok(Reply::json(200, &entry(&id, cert)))
}
