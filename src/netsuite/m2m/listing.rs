//! Reading the certificate endpoint's answers, whose shapes NetSuite does not publish: a
//! listing and the answer to an add. Everything here is a guess kept in one place, read
//! tolerantly: keys match ASCII-case-insensitively with `_`/`-` ignored, ids may be strings or
//! numbers, dates RFC 3339, `yyyy-mm-dd` or seconds since the epoch.
//!
//! A new certificate's id is taken from an add answer only when it plainly carries one; when it
//! does not, the caller lists before and after the add and takes the one new id.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::CertificateEntry;
use crate::netsuite::error::BodyProblem;
use crate::netsuite::response::{json_problem, markup_problem, same_key};

/// Keys that hold a certificate's id, preferred first.
const ID_KEYS: [&str; 3] = ["id", "certificateId", "kid"];
/// Keys of an object that hold the listing array.
const LIST_KEYS: [&str; 3] = ["items", "certificates", "data"];
const FROM_KEYS: [&str; 6] = [
    "validFrom",
    "notBefore",
    "startDate",
    "validityStart",
    "effectiveDate",
    "createdDate",
];
const UNTIL_KEYS: [&str; 7] = [
    "validUntil",
    "notAfter",
    "validTo",
    "expirationDate",
    "expiryDate",
    "expiresAt",
    "endDate",
];

/// How deep a listing array or an add answer's id is looked for.
const MAX_DEPTH: usize = 3;

fn field<'a>(map: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    // In the order of `names`: the preferred key wins when an answer has several.
    names.iter().find_map(|name| {
        map.iter()
            .find(|(key, _)| same_key(key, name))
            .map(|(_, value)| value)
    })
}

/// JSON of a 2xx answer, or what is wrong with it.
fn json_of(body: &[u8], content_type: &str, expected: &'static str) -> Result<Value, BodyProblem> {
    if let Some(problem) = markup_problem(body, content_type) {
        return Err(problem);
    }
    serde_json::from_slice(body).map_err(|err| json_problem(&err, expected))
}

/// `GET .../certificates`: a JSON array of entries, or an object holding one under `items`,
/// `certificates` or `data` (possibly an object nested in another). Entries without an id are
/// skipped: nothing can be done with them.
pub(crate) fn parse_listing(
    body: &[u8],
    content_type: &str,
) -> Result<Vec<CertificateEntry>, BodyProblem> {
    const EXPECTED: &str = "a JSON array of certificates, or an object holding one";
    if body.trim_ascii().is_empty() {
        return Err(BodyProblem::Empty);
    }
    let value = json_of(body, content_type, EXPECTED)?;
    let items = find_list(&value, 0).ok_or(BodyProblem::JsonShape {
        expected: EXPECTED,
        line: 1,
        column: 1,
    })?;
    Ok(items
        .iter()
        .filter_map(Value::as_object)
        .filter_map(entry_of)
        .collect())
}

fn find_list(value: &Value, depth: usize) -> Option<&Vec<Value>> {
    match value {
        Value::Array(items) => Some(items),
        Value::Object(map) if depth < MAX_DEPTH => {
            if let Some(items) = field(map, &LIST_KEYS).and_then(Value::as_array) {
                return Some(items);
            }
            field(map, &LIST_KEYS)
                .filter(|nested| nested.is_object())
                .and_then(|nested| find_list(nested, depth + 1))
        }
        _ => None,
    }
}

/// One listing entry, when it has an id.
pub(crate) fn entry_of(map: &Map<String, Value>) -> Option<CertificateEntry> {
    let id = id_of(map)?;
    let date = |keys: &[&str]| field(map, keys).and_then(date_of);
    Some(CertificateEntry {
        id,
        valid_from: date(&FROM_KEYS),
        valid_until: date(&UNTIL_KEYS),
        revoked: revoked_of(map),
    })
}

/// The id under `id`, `certificateId` or `kid`: a non-empty string (trimmed) or an integer.
fn id_of(map: &Map<String, Value>) -> Option<String> {
    ID_KEYS.iter().find_map(|name| {
        let value = field(map, &[name])?;
        let id = match value {
            Value::String(text) => text.trim().to_string(),
            Value::Number(number) if number.is_u64() || number.is_i64() => number.to_string(),
            _ => return None,
        };
        // An id goes into a URL path and log lines: something id-like only.
        let plausible = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        plausible.then_some(id)
    })
}

/// Revoked by a flag (`revoked`, `isRevoked`), a time (`revokedAt`, `revokedDate`), a
/// `status`/`state` of `revoked` or `inactive`, or `active`/`isActive` false.
fn revoked_of(map: &Map<String, Value>) -> bool {
    let flag = |names: &[&str]| field(map, names).and_then(bool_of);
    if flag(&["revoked", "isRevoked"]) == Some(true) {
        return true;
    }
    if field(map, &["revokedAt", "revokedDate", "revocationDate"])
        .is_some_and(|value| !value.is_null() && value != &Value::Bool(false))
    {
        return true;
    }
    if field(map, &["status", "state"])
        .and_then(Value::as_str)
        .is_some_and(|status| {
            let status = status.trim();
            status.eq_ignore_ascii_case("revoked") || status.eq_ignore_ascii_case("inactive")
        })
    {
        return true;
    }
    flag(&["active", "isActive"]) == Some(false)
}

fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A date as RFC 3339, `yyyy-mm-dd` (midnight UTC), or seconds since the epoch (a number or a
/// string of digits; values past the year 5000 are taken as milliseconds).
pub(crate) fn date_of(value: &Value) -> Option<DateTime<Utc>> {
    const MILLIS_FROM: i64 = 95_617_584_000; // 5000-01-01 in seconds
    let from_epoch = |n: i64| {
        if n.unsigned_abs() >= MILLIS_FROM as u64 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        }
    };
    match value {
        Value::Number(number) => from_epoch(
            number
                .as_i64()
                .or_else(|| number.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?,
        ),
        Value::String(text) => {
            let text = text.trim();
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Some(at.with_timezone(&Utc));
            }
            if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                return Some(day.and_hms_opt(0, 0, 0)?.and_utc());
            }
            if !text.is_empty() && text.len() <= 16 && text.bytes().all(|b| b.is_ascii_digit()) {
                return from_epoch(text.parse().ok()?);
            }
            None
        }
        _ => None,
    }
}

/// The new certificate's id in an add answer, when it plainly carries one: a top-level `id`,
/// `certificateId` or `kid`, or one inside a single nested object (e.g. `{"data": {"id"}}`).
/// `Ok(None)` for an empty body or JSON without an id; an error for a body that is not JSON.
pub(crate) fn added_certificate_id(
    body: &[u8],
    content_type: &str,
) -> Result<Option<String>, BodyProblem> {
    if body.trim_ascii().is_empty() {
        return Ok(None);
    }
    let value = json_of(body, content_type, "a JSON answer to the certificate add")?;
    let Value::Object(map) = value else {
        return Ok(None);
    };
    if let Some(id) = id_of(&map) {
        return Ok(Some(id));
    }
    // Only one level down, and only when exactly one nested object carries an id: two would
    // be a guess.
    let mut nested = map.values().filter_map(Value::as_object).filter_map(id_of);
    match (nested.next(), nested.next()) {
        (Some(id), None) => Ok(Some(id)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn listing(value: Value) -> Vec<CertificateEntry> {
        parse_listing(value.to_string().as_bytes(), "application/json").unwrap()
    }

    #[test]
    fn the_simulator_shape_is_read() {
        let entries = listing(json!({"count": 2, "items": [
            {"id": "A1", "entity": "42", "role": "1001", "algorithm": "ES256",
             "validFrom": "2026-01-01T00:00:00Z", "validUntil": "2027-01-01T00:00:00Z",
             "revoked": false, "revokedAt": null},
            {"id": "B2", "validFrom": "2026-02-01T00:00:00Z", "validUntil": "2027-02-01T00:00:00Z",
             "revoked": true, "revokedAt": "2026-03-01T00:00:00Z"},
        ]}));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, "A1");
        assert!(!entries[0].revoked);
        assert_eq!(
            entries[0].valid_until,
            Some("2027-01-01T00:00:00Z".parse().unwrap())
        );
        assert!(entries[1].revoked);
    }

    #[test]
    fn other_shapes_are_read_tolerantly() {
        let shapes = [
            json!([{"ID": 17, "NotAfter": 1_800_000_000}]),
            json!({"Certificates": [{"certificateId": "17", "expiration_date": "2027-01-31"}]}),
            json!({"DATA": [{"kid": " 17 ", "status": "Active"}]}),
            json!({"data": {"items": [{"id": "17", "valid_until": "1800000000"}]}}),
        ];
        for shape in shapes {
            let entries = listing(shape.clone());
            assert_eq!(entries.len(), 1, "{shape}");
            assert_eq!(entries[0].id, "17", "{shape}");
            assert!(!entries[0].revoked, "{shape}");
        }
        assert_eq!(
            listing(json!([{"id": "x", "notAfter": 1_800_000_000}]))[0].valid_until,
            DateTime::from_timestamp(1_800_000_000, 0)
        );
        assert_eq!(
            listing(json!([{"id": "x", "notAfter": 1_800_000_000_000_i64}]))[0].valid_until,
            DateTime::from_timestamp(1_800_000_000, 0)
        );
        let revoked = [
            json!({"id": "x", "status": "REVOKED"}),
            json!({"id": "x", "state": "inactive"}),
            json!({"id": "x", "isRevoked": "true"}),
            json!({"id": "x", "active": false}),
            json!({"id": "x", "revokedDate": "2026-01-01"}),
        ];
        for entry in revoked {
            assert!(listing(json!([entry.clone()]))[0].revoked, "{entry}");
        }
    }

    #[test]
    fn entries_without_a_usable_id_are_skipped() {
        let entries = listing(json!([
            {"name": "no id"}, {"id": ""}, {"id": "has space"}, {"id": 1.5}, 7, {"id": "ok"}
        ]));
        assert_eq!(
            entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["ok"]
        );
    }

    #[test]
    fn answers_that_are_not_a_listing_are_problems() {
        for (body, content_type) in [
            (&b""[..], "application/json"),
            (b"<html><body>Maintenance</body></html>", "text/html"),
            (b"{\"count\": 0}", "application/json"),
            (b"{not json", "application/json"),
            (b"\"text\"", "application/json"),
        ] {
            assert!(parse_listing(body, content_type).is_err(), "{body:?}");
        }
    }

    #[test]
    fn an_add_answer_gives_an_id_only_when_plain() {
        let id = |body: &str| added_certificate_id(body.as_bytes(), "application/json");
        assert_eq!(
            id(r#"{"id": "N1", "revoked": false}"#),
            Ok(Some("N1".into()))
        );
        assert_eq!(id(r#"{"CertificateID": 99}"#), Ok(Some("99".into())));
        assert_eq!(id(r#"{"data": {"kid": "N2"}}"#), Ok(Some("N2".into())));
        assert_eq!(id(r#"{"a": {"id": "1"}, "b": {"id": "2"}}"#), Ok(None));
        assert_eq!(id(r#"{"status": "success"}"#), Ok(None));
        assert_eq!(id(r#"[{"id": "N1"}]"#), Ok(None));
        assert_eq!(id(""), Ok(None));
        assert!(id("<html></html>").is_err());
        assert!(id("{").is_err());
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            prop_oneof![
                "[a-zA-Z0-9 :._-]{0,24}",
                Just("2026-01-01".to_string()),
                Just("2026-01-01T00:00:00Z".to_string()),
                Just("revoked".to_string()),
                "[0-9]{1,20}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let key = prop_oneof![
                Just("id".to_string()),
                Just("items".to_string()),
                Just("data".to_string()),
                Just("validUntil".to_string()),
                Just("notBefore".to_string()),
                Just("revoked".to_string()),
                Just("status".to_string()),
                Just("kid".to_string()),
                "[a-zA-Z_]{1,10}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(value in arbitrary_json()) {
            let body = value.to_string();
            let _ = parse_listing(body.as_bytes(), "application/json");
            let _ = added_certificate_id(body.as_bytes(), "application/json");
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_listing(&body, "application/json");
            let _ = added_certificate_id(&body, "");
        }
    }
}
