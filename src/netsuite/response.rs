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
/// fields, in the order of `wanted`, as text (JSON numbers become their decimal text).
pub(crate) fn pick_json_fields<const N: usize>(
    body: &[u8],
    content_type: &str,
    wanted: [&'static str; N],
    expected: &'static str,
) -> Result<[Option<Zeroizing<String>>; N], BodyProblem> {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Err(BodyProblem::Empty);
    }
    if content_type.to_ascii_lowercase().contains("html") || trimmed.starts_with(b"<") {
        return Err(BodyProblem::Html);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let picked = FieldPicker { wanted }
        .deserialize(&mut deserializer)
        .and_then(|picked| deserializer.end().map(|()| picked))
        .map_err(|err| json_problem(&err, expected))?;
    Ok(picked)
}

fn json_problem(err: &serde_json::Error, expected: &'static str) -> BodyProblem {
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
        ["tokenId", "tokenSecret"],
        "an object with string tokenId and tokenSecret",
    )?;
    let token_id = required(token_id, "tokenId")?;
    let token_secret = required(token_secret, "tokenSecret")?;
    Ok(IssuedToken {
        token_id: token_id.as_str().to_string(),
        token_secret: SecretString::from(token_secret.as_str()),
    })
}

/// `tokeninfo`: company, role and entity of the token; all optional, extra keys ignored.
pub fn parse_token_info(body: &[u8], content_type: &str) -> Result<TokenInfo, BodyProblem> {
    let [company_name, company_id, role_name, role_id, entity_id] = pick_json_fields(
        body,
        content_type,
        ["companyName", "companyId", "roleName", "roleId", "entityId"],
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
        ["restDomain", "webservicesDomain", "systemDomain"],
        "an object with string restDomain, webservicesDomain and systemDomain",
    )?;
    Ok(DataCenterUrls {
        rest_domain: required(rest_domain, "restDomain")?.as_str().to_string(),
        webservices_domain: optional(webservices_domain),
        system_domain: optional(system_domain),
    })
}

/// Deserialises a JSON object, keeping only the `wanted` keys.
struct FieldPicker<const N: usize> {
    wanted: [&'static str; N],
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
        while let Some(key) = map.next_key::<KeyName>()? {
            let index = self
                .wanted
                .iter()
                .position(|wanted| key.0.eq_ignore_ascii_case(wanted));
            match index {
                Some(index) => picked[index] = map.next_value_seed(ScalarText)?,
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
