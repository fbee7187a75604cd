//! Reading NetSuite's answers defensively: bodies are read with a hard size cap, and JSON is
//! parsed without ever keeping or quoting text the endpoint did not promise.
//!
//! The JSON readers pick the wanted keys (matched ASCII-case-insensitively, because older
//! clients read `TokenId` where current ones read `tokenId`) straight out of the parser and skip
//! everything else unread, so an `issuetoken` secret goes from the parser into a
//! [`SecretString`] and nowhere else. Parser errors keep only their category and position:
//! serde_json's messages can quote the offending value.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use zeroize::Zeroizing;

use super::error::BodyProblem;
use super::{DataCenterUrls, IssuedToken, TokenInfo};
use crate::secret::SecretString;

/// Reads a body that should be JSON for the given content type and returns the wanted
/// fields, in the order of `wanted`, as text (JSON numbers become their decimal text). Each
/// wanted field is a list of the key names it may go by, preferred first (see [`same_key`]).
pub(crate) fn pick_json_fields<const N: usize>(
    body: &[u8],
    content_type: &str,
    wanted: [&'static [&'static str]; N],
    expected: &'static str,
) -> Result<[Option<Zeroizing<String>>; N], BodyProblem> {
    if body.trim_ascii().is_empty() {
        return Err(BodyProblem::Empty);
    }
    if let Some(problem) = markup_problem(body, content_type) {
        return Err(problem);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let picked = FieldPicker { wanted }
        .deserialize(&mut deserializer)
        .and_then(|picked| deserializer.end().map(|()| picked))
        .map_err(|err| json_problem(&err, expected))?;
    Ok(picked)
}

/// What a body that is HTML or XML is, when it is (`None` for anything else). NetSuite's token
/// services answer JSON; a page or a SOAP fault, even with status 200, is never their answer.
/// Only the kind of document is kept, never its text.
pub(crate) fn markup_problem(body: &[u8], content_type: &str) -> Option<BodyProblem> {
    let trimmed = body.trim_ascii_start();
    let content_type = content_type.to_ascii_lowercase();
    let says_markup = content_type.contains("html") || content_type.contains("xml");
    if !says_markup && !trimmed.starts_with(b"<") {
        return None;
    }
    // Enough of the start to recognise the document; pages put their form early.
    let head = &trimmed[..trimmed.len().min(16 * 1024)];
    let has = |needle: &str| {
        head.windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
    };
    let html = content_type.contains("html") || has("<html") || has("<!doctype html");
    if html {
        let login_form = has("<form") && (has("login") || has("password"));
        return Some(if login_form {
            BodyProblem::LoginPage
        } else {
            BodyProblem::Html
        });
    }
    Some(BodyProblem::XmlFault {
        wrong_data_center: has("incorrect data center"),
    })
}

/// `revoketoken`'s 2xx body: NetSuite does not publish it, so any body is taken as success
/// (empty, JSON, plain text) except one that is plainly not NetSuite's answer: an HTML page or
/// an XML fault, a body that claims to be JSON and is not, bytes that are not text, or JSON
/// carrying NetSuite's `{"error":{"code":…}}`.
pub(crate) fn check_revocation_body(body: &[u8], content_type: &str) -> Result<(), BodyProblem> {
    if let Some(problem) = markup_problem(body, content_type) {
        return Err(problem);
    }
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(());
    }
    let claims_json = content_type.to_ascii_lowercase().contains("json")
        || trimmed.starts_with(b"{")
        || trimmed.starts_with(b"[");
    if claims_json {
        let value: serde_json::Value = serde_json::from_slice(trimmed)
            .map_err(|err| json_problem(&err, "a JSON success answer"))?;
        if value.get("error").is_some_and(|error| error.is_object()) {
            return Err(BodyProblem::ErrorObject);
        }
        return Ok(());
    }
    match std::str::from_utf8(trimmed) {
        Ok(text) if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) => Ok(()),
        _ => Err(BodyProblem::NotText),
    }
}

/// Whether an object key names a field: ASCII case and `_`/`-` separators do not count, so
/// `companyId`, `CompanyID` and `company_id` are one key. NetSuite does not publish the key
/// names of `tokeninfo`; older clients read `TokenId` where current ones read `tokenId`.
pub(crate) fn same_key(key: &str, name: &str) -> bool {
    // Compared byte by byte without allocating: every key of every answer passes here.
    key_letters(key).eq(key_letters(name))
}

/// A key's bytes as [`same_key`] compares them: lowercase, separators left out.
fn key_letters(text: &str) -> impl Iterator<Item = u8> + '_ {
    text.bytes()
        .filter(|b| !matches!(b, b'_' | b'-'))
        .map(|b| b.to_ascii_lowercase())
}

pub(crate) fn json_problem(err: &serde_json::Error, expected: &'static str) -> BodyProblem {
    let (line, column) = (err.line(), err.column());
    match err.classify() {
        serde_json::error::Category::Eof | serde_json::error::Category::Io => {
            BodyProblem::JsonEndedEarly { line, column }
        }
        serde_json::error::Category::Syntax => BodyProblem::JsonSyntax { line, column },
        serde_json::error::Category::Data => BodyProblem::JsonShape {
            expected,
            line,
            column,
        },
    }
}

/// Takes an optional picked field as a non-empty plain string.
fn required(
    value: Option<Zeroizing<String>>,
    field: &'static str,
) -> Result<Zeroizing<String>, BodyProblem> {
    match value {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(BodyProblem::MissingField { field }),
    }
}

fn optional(value: Option<Zeroizing<String>>) -> Option<String> {
    value
        .filter(|text| !text.trim().is_empty())
        .map(|text| text.as_str().to_string())
}

/// `issuetoken`: `{"tokenId": "...", "tokenSecret": "..."}`.
pub fn parse_issued_token(body: &[u8], content_type: &str) -> Result<IssuedToken, BodyProblem> {
    let [token_id, token_secret] = pick_json_fields(
        body,
        content_type,
        [&["tokenId"], &["tokenSecret"]],
        "an object with string tokenId and tokenSecret",
    )?;
    let token_id = required(token_id, "tokenId")?;
    let token_secret = required(token_secret, "tokenSecret")?;
    Ok(IssuedToken {
        token_id: token_id.as_str().to_string(),
        token_secret: SecretString::from(token_secret.as_str()),
    })
}

/// The key names `tokeninfo`'s fields may go by, preferred first. NetSuite does not publish
/// them: camelCase is the expected form, the others are what public clients read. Corrections
/// belong here and nowhere else.
pub const TOKEN_INFO_KEYS: TokenInfoKeys = TokenInfoKeys {
    company_name: &["companyName", "company", "accountName"],
    company_id: &["companyId", "account", "accountId"],
    role_name: &["roleName", "role"],
    role_id: &["roleId", "roleInternalId"],
    entity_id: &["entityId", "entity", "entityInternalId", "userId"],
};

/// The accepted key names of each `tokeninfo` field (see [`TOKEN_INFO_KEYS`]).
pub struct TokenInfoKeys {
    pub company_name: &'static [&'static str],
    pub company_id: &'static [&'static str],
    pub role_name: &'static [&'static str],
    pub role_id: &'static [&'static str],
    pub entity_id: &'static [&'static str],
}

/// `tokeninfo`: company, role and entity of the token; all optional, extra keys ignored.
pub fn parse_token_info(body: &[u8], content_type: &str) -> Result<TokenInfo, BodyProblem> {
    let keys = &TOKEN_INFO_KEYS;
    let [company_name, company_id, role_name, role_id, entity_id] = pick_json_fields(
        body,
        content_type,
        [
            keys.company_name,
            keys.company_id,
            keys.role_name,
            keys.role_id,
            keys.entity_id,
        ],
        "an object whose companyName, companyId, roleName, roleId and entityId are strings or numbers",
    )?;
    Ok(TokenInfo {
        company_name: optional(company_name),
        company_id: optional(company_id),
        role_name: optional(role_name),
        role_id: optional(role_id),
        entity_id: optional(entity_id),
    })
}

/// `datacenterurls`: `restDomain` required, the other two optional.
pub fn parse_datacenter_urls(
    body: &[u8],
    content_type: &str,
) -> Result<DataCenterUrls, BodyProblem> {
    let [rest_domain, webservices_domain, system_domain] = pick_json_fields(
        body,
        content_type,
        [&["restDomain"], &["webservicesDomain"], &["systemDomain"]],
        "an object with string restDomain, webservicesDomain and systemDomain",
    )?;
    Ok(DataCenterUrls {
        rest_domain: required(rest_domain, "restDomain")?.as_str().to_string(),
        webservices_domain: optional(webservices_domain),
        system_domain: optional(system_domain),
    })
}

/// Deserialises a JSON object, keeping only the `wanted` keys (for each field, the value of
/// its most preferred name present).
struct FieldPicker<const N: usize> {
    wanted: [&'static [&'static str]; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for FieldPicker<N> {
    type Value = [Option<Zeroizing<String>>; N];

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for FieldPicker<N> {
    type Value = [Option<Zeroizing<String>>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut picked: [Option<Zeroizing<String>>; N] = std::array::from_fn(|_| None);
        // The preference rank of the name each field's value was taken under.
        let mut rank = [usize::MAX; N];
        while let Some(key) = map.next_key::<KeyName>()? {
            let found = self.wanted.iter().enumerate().find_map(|(field, names)| {
                let at = names.iter().position(|name| same_key(&key.0, name))?;
                Some((field, at))
            });
            match found {
                Some((field, at)) => {
                    let value = map.next_value_seed(ScalarText)?;
                    let filled = value.as_ref().is_some_and(|v| !v.trim().is_empty());
                    if filled && at < rank[field] {
                        picked[field] = value;
                        rank[field] = at;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(picked)
    }
}

/// An object key. Keys are not secret, but keep them short-lived all the same.
struct KeyName(String);

impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(KeyName)
    }
}

/// A JSON string or number as text; `null` as absent; anything else is a shape error.
struct ScalarText;

impl<'de> DeserializeSeed<'de> for ScalarText {
    type Value = Option<Zeroizing<String>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for ScalarText {
    type Value = Option<Zeroizing<String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(Zeroizing::new(value.to_string())))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Some(Zeroizing::new(value)))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(Zeroizing::new(value.to_string())))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(Zeroizing::new(value.to_string())))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Some(Zeroizing::new(value.to_string())))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const JSON: &str = "application/json";

    #[test]
    fn issued_token_keys_match_case_insensitively() {
        for body in [
            r#"{"tokenId":"tid","tokenSecret":"tsecret"}"#,
            r#"{"TokenId":"tid","TokenSecret":"tsecret","extra":{"nested":[1,2]}}"#,
            r#" {"TOKENID":"tid", "tokensecret":"tsecret"} "#,
        ] {
            let token = parse_issued_token(body.as_bytes(), JSON).unwrap();
            assert_eq!(token.token_id, "tid");
            assert_eq!(token.token_secret.expose_secret(), "tsecret");
        }
    }

    #[test]
    fn html_and_empty_bodies_are_named() {
        let html = b"<!DOCTYPE html><html><body>tsecret</body></html>";
        assert_eq!(
            parse_issued_token(html, "text/html; charset=utf-8").unwrap_err(),
            BodyProblem::Html
        );
        assert_eq!(
            parse_issued_token(html, JSON).unwrap_err(),
            BodyProblem::Html
        );
        assert_eq!(
            parse_issued_token(b"", JSON).unwrap_err(),
            BodyProblem::Empty
        );
        assert_eq!(
            parse_issued_token(b" \r\n", JSON).unwrap_err(),
            BodyProblem::Empty
        );
    }

    #[test]
    fn truncated_json_reports_where_it_ended_without_the_text() {
        let body = br#"{"tokenId":"tid","tokenSecret":"tsecre"#;
        let problem = parse_issued_token(body, JSON).unwrap_err();
        assert!(
            matches!(problem, BodyProblem::JsonEndedEarly { line: 1, .. }),
            "{problem:?}"
        );
        let message = problem.to_string();
        assert!(
            message.starts_with("JSON ended early at line 1 column"),
            "{message}"
        );
        assert!(!message.contains("tsecre"), "{message}");
    }

    #[test]
    fn wrong_shapes_never_quote_values() {
        let cases: [&[u8]; 5] = [
            br#"["tokenId","tsecret"]"#,
            br#""tsecret""#,
            br#"{"tokenId":"tid","tokenSecret":["tsecret"]}"#,
            br#"{"tokenId":"tid","tokenSecret":true}"#,
            br#"{"tokenId":"tid","tokenSecret":"tsecret"} trailing tsecret"#,
        ];
        for body in cases {
            let problem = parse_issued_token(body, JSON).unwrap_err();
            let message = problem.to_string();
            assert!(!message.contains("tsecret"), "{message}");
            assert!(message.contains("line 1"), "{message}");
        }
        assert!(matches!(
            parse_issued_token(br#"{"tokenSecret":"s"}"#, JSON),
            Err(BodyProblem::MissingField { field: "tokenId" })
        ));
        assert!(matches!(
            parse_issued_token(br#"{"tokenId":"t","tokenSecret":""}"#, JSON),
            Err(BodyProblem::MissingField {
                field: "tokenSecret"
            })
        ));
        assert!(matches!(
            parse_issued_token(b"not json", JSON),
            Err(BodyProblem::JsonSyntax { .. })
        ));
    }

    #[test]
    fn token_info_accepts_strings_numbers_nulls_and_extra_keys() {
        let body = br#"{"CompanyName":"Acme","companyid":"123456_SB1","roleName":"Integrator",
            "roleId":1001,"entityId":-5,"webServicesUrl":"x","unknown":{"a":1}}"#;
        let info = parse_token_info(body, JSON).unwrap();
        assert_eq!(
            info,
            TokenInfo {
                company_name: Some("Acme".into()),
                company_id: Some("123456_SB1".into()),
                role_name: Some("Integrator".into()),
                role_id: Some("1001".into()),
                entity_id: Some("-5".into()),
            }
        );
        let sparse = parse_token_info(br#"{"roleId":null}"#, JSON).unwrap();
        assert_eq!(sparse, TokenInfo::default());
    }

    #[test]
    fn token_info_accepts_the_key_variants_public_clients_read() {
        let body = br#"{"company":"Acme","Account":"123456_SB1","role":"Integrator",
            "role_id":"1001","ENTITY":"42"}"#;
        let info = parse_token_info(body, JSON).unwrap();
        assert_eq!(
            info,
            TokenInfo {
                company_name: Some("Acme".into()),
                company_id: Some("123456_SB1".into()),
                role_name: Some("Integrator".into()),
                role_id: Some("1001".into()),
                entity_id: Some("42".into()),
            }
        );
        let other = parse_token_info(
            br#"{"accountName":"Acme","accountId":7,"roleInternalId":3,"entity_internal_id":9}"#,
            JSON,
        )
        .unwrap();
        assert_eq!(other.company_name.as_deref(), Some("Acme"));
        assert_eq!(other.company_id.as_deref(), Some("7"));
        assert_eq!(other.role_id.as_deref(), Some("3"));
        assert_eq!(other.entity_id.as_deref(), Some("9"));
    }

    #[test]
    fn token_info_prefers_the_documented_key_whatever_the_order() {
        for body in [
            br#"{"account":"wrong","companyId":"123456_SB1","accountId":"wrong too"}"#.as_slice(),
            br#"{"companyId":"123456_SB1","account":"wrong"}"#.as_slice(),
            br#"{"companyId":"","account":"123456_SB1"}"#.as_slice(),
        ] {
            let info = parse_token_info(body, JSON).unwrap();
            assert_eq!(info.company_id.as_deref(), Some("123456_SB1"));
        }
    }

    #[test]
    fn a_soap_fault_or_a_login_page_is_never_an_answer() {
        let soap = br#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Server.userException</faultcode><faultstring>Incorrect data center requested!</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        for content_type in ["text/xml; charset=utf-8", JSON, "none"] {
            assert_eq!(
                parse_token_info(soap, content_type).unwrap_err(),
                BodyProblem::XmlFault {
                    wrong_data_center: true
                }
            );
        }
        assert_eq!(
            parse_issued_token(b"<?xml version=\"1.0\"?><fault/>", "text/xml").unwrap_err(),
            BodyProblem::XmlFault {
                wrong_data_center: false
            }
        );
        let login = b"<!DOCTYPE html><html><head><title>NetSuite Login</title></head><body>\
            <form method=\"post\" action=\"/app/login/secure/enterpriselogin.nl\">\
            <input type=\"password\" name=\"password\"></form></body></html>";
        assert_eq!(
            parse_issued_token(login, "text/html").unwrap_err(),
            BodyProblem::LoginPage
        );
        let message = BodyProblem::LoginPage.to_string();
        assert!(message.contains("login page"), "{message}");
        let message = BodyProblem::XmlFault {
            wrong_data_center: true,
        }
        .to_string();
        assert!(message.contains("another data center"), "{message}");
        assert_eq!(markup_problem(br#"{"message":"ok"}"#, JSON), None);
        assert_eq!(markup_problem(b"", "text/plain"), None);
    }

    #[test]
    fn a_revocation_is_any_2xx_body_but_one_that_is_plainly_not_netsuites() {
        for (body, content_type) in [
            ("", "none"),
            (r#"{"message":"Token revoked."}"#, JSON),
            ("{}", "text/plain"),
            ("Token revoked.", "text/plain"),
        ] {
            assert_eq!(
                check_revocation_body(body.as_bytes(), content_type),
                Ok(()),
                "{body}"
            );
        }
        let refused: [(&[u8], &str, BodyProblem); 6] = [
            (b"<html>Maintenance</html>", "text/html", BodyProblem::Html),
            (
                b"<?xml version=\"1.0\"?><Fault/>",
                "text/xml",
                BodyProblem::XmlFault {
                    wrong_data_center: false,
                },
            ),
            (
                br#"{"tokenId":"4f1e"#,
                JSON,
                BodyProblem::JsonEndedEarly {
                    line: 1,
                    column: 16,
                },
            ),
            (
                b"\x9f\x00\xffgarbage",
                JSON,
                BodyProblem::JsonSyntax { line: 1, column: 1 },
            ),
            (
                b"\x9f\x00\xffgarbage",
                "application/octet-stream",
                BodyProblem::NotText,
            ),
            (
                br#"{"error" : {"code" : "USER_ERROR","message" : "x"}}"#,
                JSON,
                BodyProblem::ErrorObject,
            ),
        ];
        for (body, content_type, problem) in refused {
            assert_eq!(check_revocation_body(body, content_type), Err(problem));
        }
    }

    #[test]
    fn datacenter_urls_need_rest_domain() {
        let urls = parse_datacenter_urls(
            br#"{"restDomain":"https://123456-sb1.restlets.api.netsuite.com","systemDomain":"https://s"}"#,
            JSON,
        )
        .unwrap();
        assert_eq!(
            urls.rest_domain,
            "https://123456-sb1.restlets.api.netsuite.com"
        );
        assert_eq!(urls.webservices_domain, None);
        assert_eq!(urls.system_domain.as_deref(), Some("https://s"));
        assert_eq!(
            parse_datacenter_urls(br#"{"systemDomain":"https://s"}"#, JSON).unwrap_err(),
            BodyProblem::MissingField {
                field: "restDomain"
            }
        );
    }
}
