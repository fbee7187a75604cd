//! Checking a client assertion (the JWT of the client-credentials flow), in the order a request
//! meets the checks: the header (`alg`, `kid`), the certificate `kid` names (known, not
//! revoked, within its validity, a key that goes with `alg`), the signature, then the claims
//! (`iss`, `aud`, `iat`/`exp`, `scope`).
//!
//! The signature is jsonwebtoken's (aws-lc-rs); this module only picks the key and reads the
//! claims. Each refusal names the field and what was expected; none quotes the assertion.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{M2mWorld, Scope, reason};

/// The `alg` values the simulator verifies (the protocol page's six, less ES512).
const ACCEPTED_ALGS: [&str; 5] = ["PS256", "PS384", "PS512", "ES256", "ES384"];
/// `exp` must be less than this many seconds after `iat`.
const MAX_LIFETIME_SECS: i64 = 3600;
/// How far `iat` may be ahead of the simulator's clock.
const IAT_SKEW_SECS: i64 = 300;

/// An assertion that passed every check.
pub(super) struct Verified {
    pub certificate_id: String,
    pub client_id: String,
    pub scopes: Vec<Scope>,
}

/// Why an assertion was refused: the RFC 6749 error code, a description, the reason counted.
#[derive(Debug)]
pub(super) struct Refused {
    pub error: &'static str,
    pub description: String,
    pub reason: &'static str,
}

fn client(reason: &'static str, description: String) -> Refused {
    Refused {
        error: "invalid_client",
        description,
        reason,
    }
}

/// What the request said about who it is, unverified: for the failed-login record.
pub(super) fn claimed_identity(assertion: &str) -> (Option<String>, Option<String>) {
    let kid = jsonwebtoken::decode_header(assertion)
        .ok()
        .and_then(|h| h.kid);
    let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(assertion)
        .ok()
        .and_then(|claims| {
            claims
                .get("iss")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    (iss, kid)
}

/// Checks `assertion` at `now` against the certificates of `world`; `audiences` are the URLs
/// accepted as `aud`.
pub(super) fn verify(
    world: &M2mWorld,
    assertion: &str,
    audiences: &[String],
    now: i64,
) -> Result<Verified, Refused> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        client(
            reason::ASSERTION_MALFORMED,
            "client_assertion: expected a JWT (base64url header.payload.signature)".into(),
        )
    })?;
    let alg = format!("{:?}", header.alg);
    if !ACCEPTED_ALGS.contains(&alg.as_str()) {
        return Err(client(
            reason::ALG_REFUSED,
            format!(
                "client_assertion header alg: {alg} is not accepted; expected one of {}",
                ACCEPTED_ALGS.join(", ")
            ),
        ));
    }
    let kid = header.kid.as_deref().unwrap_or_default();
    if kid.is_empty() {
        return Err(client(
            reason::KID_UNKNOWN,
            "client_assertion header kid: missing; expected a certificate ID".into(),
        ));
    }
    let cert = world.certificates.get(kid).ok_or_else(|| {
        client(
            reason::KID_UNKNOWN,
            format!("client_assertion header kid: {kid:?} is not a certificate ID"),
        )
    })?;
    if let Some(at) = cert.revoked_at {
        return Err(client(
            reason::CERTIFICATE_REVOKED,
            format!("client_assertion header kid: certificate {kid:?} was revoked at {at}"),
        ));
    }
    if now >= cert.parsed.not_after.timestamp() {
        return Err(client(
            reason::CERTIFICATE_EXPIRED,
            format!(
                "client_assertion header kid: certificate {kid:?} expired at {}",
                cert.parsed.not_after
            ),
        ));
    }
    if now < cert.parsed.not_before.timestamp() {
        return Err(client(
            reason::CERTIFICATE_NOT_YET_VALID,
            format!(
                "client_assertion header kid: certificate {kid:?} is valid only from {}",
                cert.parsed.not_before
            ),
        ));
    }
    let key_type = cert.parsed.key_type;
    if !key_type.algorithms().contains(&alg.as_str()) {
        return Err(client(
            reason::ALG_REFUSED,
            format!(
                "client_assertion header alg: {alg} does not go with certificate {kid:?}, whose \
                 key is {}; expected {}",
                key_type.name(),
                key_type.algorithms().join(" or ")
            ),
        ));
    }
    let key = if key_type.is_rsa() {
        DecodingKey::from_rsa_der(&cert.parsed.public_key)
    } else {
        DecodingKey::from_ec_der(&cert.parsed.public_key)
    };
    let claims = verified_claims(assertion, &key, header.alg, kid)?;

    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != cert.client_id {
        return Err(client(
            reason::ISS_WRONG,
            format!(
                "client_assertion claim iss: {iss:?} is not the client ID of the integration \
                 certificate {kid:?} is mapped to"
            ),
        ));
    }
    check_audience(claims.get("aud"), audiences)?;
    check_times(&claims, now)?;
    let scopes = scopes(claims.get("scope"))?;
    Ok(Verified {
        certificate_id: kid.to_string(),
        client_id: cert.client_id.clone(),
        scopes,
    })
}

fn verified_claims(
    assertion: &str,
    key: &DecodingKey,
    alg: Algorithm,
    kid: &str,
) -> Result<serde_json::Map<String, Value>, Refused> {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.required_spec_claims.clear();
    match jsonwebtoken::decode::<serde_json::Map<String, Value>>(assertion, key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(error) => match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Err(client(
                reason::SIGNATURE_INVALID,
                format!(
                    "client_assertion: the signature does not verify with the public key of \
                     certificate {kid:?}"
                ),
            )),
            _ => Err(client(
                reason::ASSERTION_MALFORMED,
                format!(
                    "client_assertion: cannot be read: {error}; expected a JSON object payload"
                ),
            )),
        },
    }
}

fn check_audience(aud: Option<&Value>, audiences: &[String]) -> Result<(), Refused> {
    let matches = |v: &Value| v.as_str().is_some_and(|s| audiences.iter().any(|a| a == s));
    let ok = match aud {
        Some(Value::Array(values)) => values.iter().any(matches),
        Some(value) => matches(value),
        None => false,
    };
    if ok {
        return Ok(());
    }
    Err(client(
        reason::AUD_WRONG,
        format!(
            "client_assertion claim aud: expected the token endpoint URL ({})",
            audiences.first().map(String::as_str).unwrap_or_default()
        ),
    ))
}

fn check_times(claims: &serde_json::Map<String, Value>, now: i64) -> Result<(), Refused> {
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
        return Err(client(
            reason::TIMES_INVALID,
            "client_assertion claims iat and exp: expected both, as integer seconds since the \
             epoch"
                .into(),
        ));
    };
    if exp <= iat {
        return Err(client(
            reason::TIMES_INVALID,
            format!("client_assertion claim exp: {exp} is not after iat {iat}"),
        ));
    }
    if exp - iat >= MAX_LIFETIME_SECS {
        return Err(client(
            reason::LIFETIME_TOO_LONG,
            format!(
                "client_assertion claims exp - iat: {} s; expected less than {MAX_LIFETIME_SECS} \
                 (60 minutes)",
                exp - iat
            ),
        ));
    }
    if exp <= now {
        return Err(client(
            reason::EXPIRED,
            format!(
                "client_assertion claim exp: the assertion expired at {exp} (NetSuite's clock: \
                 {now})"
            ),
        ));
    }
    if iat > now + IAT_SKEW_SECS {
        return Err(client(
            reason::IAT_IN_FUTURE,
            format!(
                "client_assertion claim iat: {iat} is more than {IAT_SKEW_SECS} s ahead of \
                 NetSuite's clock ({now})"
            ),
        ));
    }
    Ok(())
}

/// `scope`: a comma-separated string (the help text) or a JSON array (NetSuite's sample).
fn scopes(scope: Option<&Value>) -> Result<Vec<Scope>, Refused> {
    let names: Vec<String> = match scope {
        Some(Value::String(s)) => s
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| v.as_str().unwrap_or("(not a string)").to_string())
            .collect(),
        _ => Vec::new(),
    };
    let refuse = |what: String| Refused {
        error: "invalid_scope",
        description: format!(
            "client_assertion claim scope: {what}; expected restlets, rest_webservices and/or \
             suite_analytics, comma-separated or as a JSON array"
        ),
        reason: reason::SCOPE_INVALID,
    };
    if names.is_empty() {
        return Err(refuse("missing or empty".into()));
    }
    let mut scopes = Vec::new();
    for name in &names {
        let scope = Scope::from_name(name).ok_or_else(|| refuse(format!("{name:?} is unknown")))?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scope_as_string_or_array() {
        let s = scopes(Some(&json!("restlets,rest_webservices"))).unwrap();
        assert_eq!(s, vec![Scope::Restlets, Scope::RestWebServices]);
        let a = scopes(Some(&json!(["suite_analytics"]))).unwrap();
        assert_eq!(a, vec![Scope::SuiteAnalytics]);
        let bad = scopes(Some(&json!("rest_webservices,admin"))).unwrap_err();
        assert_eq!(bad.error, "invalid_scope");
        assert!(bad.description.contains("\"admin\" is unknown"));
        assert!(scopes(None).is_err());
    }

    #[test]
    fn lifetime_of_an_hour_or_more_is_refused() {
        let now = 1_000_000;
        let claims =
            |iat: i64, exp: i64| json!({"iat": iat, "exp": exp}).as_object().unwrap().clone();
        assert!(check_times(&claims(now, now + 3599), now).is_ok());
        let long = check_times(&claims(now, now + 3600), now).unwrap_err();
        assert_eq!(long.reason, reason::LIFETIME_TOO_LONG);
        let expired = check_times(&claims(now - 100, now), now).unwrap_err();
        assert_eq!(expired.reason, reason::EXPIRED);
        let future = check_times(&claims(now + 301, now + 400), now).unwrap_err();
        assert_eq!(future.reason, reason::IAT_IN_FUTURE);
    }
}
