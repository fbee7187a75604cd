//! The JSON Schema of the configuration, generated from the config types, and the Helm chart's
//! variant of it (`helm/netsuite-token-rotator/values.schema.json#/definitions/config`).
//!
//! [`config_schema`] describes what [`Config::parse`](super::Config::parse) accepts, from the
//! same types: `#[derive(JsonSchema)]` beside `#[derive(Deserialize)]` (doc comments become
//! descriptions, serde's renames, tags, defaults and `deny_unknown_fields` are followed), and
//! `JsonSchema` written by hand where `Deserialize` is (`SecretRef`, `StoreConfig` in
//! `store::config`).
//! What `validate` checks is in it where a pattern can say it without refusing anything the
//! loader accepts: exactly (names, account ids, base URLs, Vault paths, counts, scopes, key
//! kinds, login or m2m) or as a wider net (durations, cron's six fields); the loader stays the
//! last word on values (an IANA zone name, a cron field's range). The tests below check each
//! pattern against the parser it stands for.
//!
//! [`chart_config_schema`] is that schema with the chart's own rules applied by post-processing
//! it, not by an `allOf` of the generated schema and a hand-written one: the rules are about
//! kinds of value (every secret reference, every optional key of a table, every path the pod
//! reads) wherever the config types put them, so one function per rule reaches all of them,
//! including keys added later, where an `allOf` would name each key by its place, a copy of
//! the generated structure kept by hand that misses new keys. Each rule names the definition
//! it changes and panics if the types no longer have it (the test below runs them all).
//!
//! Draft-07: Helm 4 and recent Helm 3 validate with santhosh-tekuri/jsonschema (any draft, by
//! `$schema`), older Helm 3 with gojsonschema (draft-04 to draft-07), so draft-07 works with
//! all; patterns use the syntax RE2 (Go) and ECMA-262 share, without look-around.

use schemars::Schema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::M2M_SCOPES;
use crate::netsuite::m2m::KeyKind;

pub use crate::value_format::pattern::{
    ACCOUNT_ID, BASE_URL, CRON, DURATION, EMAIL, NAME, NOT_BLANK,
};

/// The draft the schemas are written in (see the module documentation).
fn settings() -> SchemaSettings {
    SchemaSettings::draft07().with(|s| {
        // First: the draft-07 transforms that follow (`$ref` siblings) see the result.
        s.transforms.insert(0, Box::new(no_null));
        s.transforms.insert(1, Box::new(plain_text));
    })
}

/// The JSON Schema (draft-07) of `config.toml`, as the daemon reads it.
pub fn config_schema() -> Schema {
    let mut schema = settings()
        .into_generator()
        .into_root_schema_for::<super::Config>();
    schema.insert("title".into(), "netsuite-token-rotator config.toml".into());
    schema
}

/// `Option<T>` is "T or null" to schemars; TOML has no null and an absent key is how a TOML
/// file leaves an optional key out, so null goes.
fn no_null(schema: &mut Schema) {
    schemars::transform::transform_subschemas(&mut no_null, schema);
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if object.get("default") == Some(&Value::Null) {
        object.remove("default");
    }
    let Some(Value::Array(any_of)) = object.get_mut("anyOf") else {
        return;
    };
    any_of.retain(|s| s.get("type") != Some(&json!("null")));
    let only = match any_of.as_slice() {
        [Value::Object(only)] => only.clone(),
        _ => return,
    };
    if only
        .keys()
        .all(|key| key == "anyOf" || !object.contains_key(key))
    {
        object.remove("anyOf");
        object.extend(only);
    }
}

/// Descriptions as plain text (doc comments are Markdown wrapped at 100 columns, with rustdoc
/// links), and no schemars `format` annotations on numbers (`uint8`, not JSON Schema formats).
fn plain_text(schema: &mut Schema) {
    schemars::transform::transform_subschemas(&mut plain_text, schema);
    if let Some(Value::String(description)) = schema.get_mut("description") {
        *description = description
            .split("\n\n")
            .map(|paragraph| paragraph.replace('\n', " "))
            .collect::<Vec<_>>()
            .join("\n\n")
            .replace("[`", "`")
            .replace("`]", "`");
    }
    if schema
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
    {
        schema.remove("format");
    }
}

/// `IntegrationConfig::validate_kind`: `[integrations.login]` with the consumer pair (TBA), or
/// `[integrations.m2m]` without them and without `expect`.
pub(super) fn one_credential_kind(schema: &mut Schema) {
    let present = |key: &str| json!({ "required": [key] });
    schema.insert(
        "oneOf".into(),
        json!([
            {
                "description": "TBA: [integrations.login] and the integration record's consumer key and secret.",
                "required": ["login", "consumer_key", "consumer_secret"],
                "not": present("m2m"),
            },
            {
                "description": "M2M: [integrations.m2m]; no login, consumer pair or expect.",
                "required": ["m2m"],
                "not": { "anyOf": [present("login"), present("consumer_key"), present("consumer_secret"), present("expect")] },
            },
        ]),
    );
}

/// `KeyKind::parse`: a kind's name, any case, white space around it allowed. Written out from
/// [`KeyKind::ALL`], so a new kind is in it.
pub(super) fn key_kinds(schema: &mut Schema) {
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| match c {
                c if c.is_ascii_alphabetic() => {
                    format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                }
                c => regex_escape(c),
            })
            .collect()
    };
    let names: Vec<String> = KeyKind::ALL.iter().map(|k| any_case(k.as_str())).collect();
    schema.insert("type".into(), "string".into());
    schema.insert(
        "pattern".into(),
        format!(r"^\s*({})\s*$", names.join("|")).into(),
    );
}

fn regex_escape(c: char) -> String {
    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
        c.to_string()
    } else {
        format!("\\{c}")
    }
}

/// `M2mConfig::validate`: known scopes only, `rest_webservices` among them.
pub(super) fn m2m_scopes(schema: &mut Schema) {
    schema.insert("items".into(), json!({ "enum": M2M_SCOPES }));
    schema.insert("contains".into(), json!({ "const": "rest_webservices" }));
}

/// The chart's variant of [`config_schema`], for `values.schema.json#/definitions/config`: its
/// `$ref`s point there, and the chart's rules are applied (each function below says why).
pub fn chart_config_schema() -> Value {
    let mut schema = config_schema().to_value();
    let object = schema.as_object_mut().expect("a root schema is an object");
    object.remove("$schema");
    object.insert(
        "title".into(),
        "config.toml, as the chart renders it from `config`".into(),
    );
    object.insert(
        "$comment".into(),
        "Generated from the daemon's config types by `scripts/gen-config-schema.sh` (netsuite-token-rotator config-schema --chart); do not edit.".into(),
    );
    let definitions = object
        .get_mut("definitions")
        .and_then(Value::as_object_mut)
        .expect("the config types make definitions");
    chart_secret_references(definitions);
    chart_listen(definitions);
    chart_absolute_paths(definitions);
    empty_means_unset(definitions);
    repoint_refs(&mut schema);
    schema
}

fn definition<'a>(definitions: &'a mut Map<String, Value>, name: &str) -> &'a mut Value {
    definitions
        .get_mut(name)
        .unwrap_or_else(|| panic!("the config types no longer make a {name} definition"))
}

fn property<'a>(schema: &'a mut Value, key: &str) -> &'a mut Value {
    schema
        .pointer_mut(&format!("/properties/{key}"))
        .unwrap_or_else(|| panic!("no key {key} in the schema"))
}

/// Secret references are `{ env: NAME }` or `{ file: /absolute/path }` only. A literal would sit
/// in a ConfigMap, readable by whoever can read those; `{ credential }` names a systemd
/// credential, which a pod does not have (no `$CREDENTIALS_DIRECTORY`): its equivalent is a
/// `{ file }` under a Secret mounted through `secretMounts`. A table of one key, so that Helm
/// names the refused key or the refused literal rather than every form that did not match.
fn chart_secret_references(definitions: &mut Map<String, Value>) {
    let daemon = definition(definitions, "SecretRef");
    for form in ["env", "file"] {
        let known = daemon["oneOf"]
            .as_array()
            .is_some_and(|forms| forms.iter().any(|f| f["required"] == json!([form])));
        assert!(known, "the daemon no longer takes {{ {form} }} references");
    }
    *daemon = json!({
        "description": "A secret reference: { env: NAME } (a variable the pod has, e.g. from secretEnv) or { file: /absolute/path } (e.g. under a secretMounts mount). Literal secrets would sit in a ConfigMap; { credential } references are systemd's (LoadCredential=), which a pod does not have.",
        "type": "object",
        "propertyNames": { "enum": ["env", "file"] },
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {
            "env": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            "file": { "type": "string", "pattern": "^/" },
        },
    });
}

/// `[daemon] listen` is the chart's: `0.0.0.0:<containerPort>`, which the probes and the
/// Service use.
fn chart_listen(definitions: &mut Map<String, Value>) {
    let daemon = definition(definitions, "DaemonConfig");
    let properties = daemon["properties"]
        .as_object_mut()
        .expect("DaemonConfig has keys");
    assert!(
        properties.remove("listen").is_some(),
        "DaemonConfig has no listen key any more"
    );
}

/// Paths the daemon reads or writes are absolute: a relative one is relative to the config
/// file's folder, which in the pod is the read-only ConfigMap mount.
fn chart_absolute_paths(definitions: &mut Map<String, Value>) {
    let store = definition(definitions, "StoreConfig");
    let absolute = |schema: &mut Value| {
        schema["pattern"] = "^/".into();
        schema["description"] = format!(
            "{} In the chart: an absolute path.",
            schema["description"].as_str().unwrap_or_default()
        )
        .trim_start()
        .into();
    };
    let mut kinds = store["allOf"]
        .as_array_mut()
        .expect("one entry per kind")
        .iter_mut();
    let mut then_of = |kind: &str| -> &mut Value {
        let entry = kinds
            .find(|entry| entry.pointer("/if/properties/kind/const") == Some(&json!(kind)))
            .unwrap_or_else(|| panic!("no store kind {kind}"));
        &mut entry["then"]
    };
    absolute(property(then_of("file"), "path"));
    absolute(property(then_of("vault"), "ca_cert"));
    let auth = definition(definitions, "VaultAuth");
    let kubernetes = auth["oneOf"]
        .as_array_mut()
        .expect("one entry per method")
        .iter_mut()
        .find(|m| m.pointer("/properties/method/const") == Some(&json!("kubernetes")))
        .expect("a kubernetes method");
    absolute(property(kubernetes, "jwt_path"));
}

/// The definitions the chart renders as TOML tables (`[daemon]`, `[[integrations]]`,
/// `[integrations.store]`, ...), whose keys its renderer leaves out when their value is an
/// empty string (values.yaml writes `""` for "not set"). Inline tables (`auth`, secret
/// references, `tags`) are written whole.
const CHART_TABLES: [&str; 9] = [
    "DaemonConfig",
    "TelemetryConfig",
    "NetSuiteConfig",
    "AlertConfig",
    "IntegrationConfig",
    "LoginConfig",
    "M2mConfig",
    "ExpectConfig",
    "StoreConfig",
];

/// An optional string key of a table also takes `""`, which leaves it out (see
/// [`CHART_TABLES`]).
fn empty_means_unset(definitions: &mut Map<String, Value>) {
    fn table(schema: &mut Value) {
        let required = schema.get("required").cloned().unwrap_or(json!([]));
        if let Some(Value::Object(properties)) = schema.get_mut("properties") {
            for (key, property) in properties.iter_mut() {
                let refuses_empty = property.get("type") == Some(&json!("string"))
                    && (property.get("pattern").is_some() || property.get("minLength").is_some());
                if !refuses_empty || required.as_array().is_some_and(|r| r.contains(&json!(key))) {
                    continue;
                }
                let description = property
                    .as_object_mut()
                    .and_then(|p| p.remove("description"));
                let mut either = json!({ "anyOf": [{ "const": "" }, property.take()] });
                if let Some(description) = description {
                    either["description"] = description;
                }
                *property = either;
            }
        }
        // The variants of a tagged table (alerts, stores).
        for key in ["oneOf", "allOf"] {
            if let Some(Value::Array(variants)) = schema.get_mut(key) {
                for variant in variants {
                    match variant.get("then") {
                        Some(_) => table(&mut variant["then"]),
                        None => table(variant),
                    }
                }
            }
        }
    }
    for name in CHART_TABLES {
        table(definition(definitions, name));
    }
}

/// `#/definitions/X` becomes `#/definitions/config/definitions/X`, where the chart keeps them.
fn repoint_refs(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix("#/definitions/") {
                            *target = format!("#/definitions/config/definitions/{name}");
                        }
                    }
                    (_, value) => repoint_refs(value),
                }
            }
        }
        Value::Array(array) => array.iter_mut().for_each(repoint_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    use super::super::Config;
    use super::*;
    use crate::store::vault::{VAULT_ADDRESS, VAULT_PATH};

    const CHART_SCHEMA: &str = "helm/netsuite-token-rotator/values.schema.json";
    const REGENERATE: &str = "scripts/gen-config-schema.sh";

    /// The JSON pointer of the first place where `a` and `b` differ.
    fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
                keys.into_iter().find_map(|k| {
                    let (x, y) = (
                        a.get(k).unwrap_or(&Value::Null),
                        b.get(k).unwrap_or(&Value::Null),
                    );
                    first_difference(x, y, format!("{at}/{k}"))
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(x, y, format!("{at}/{i}"))),
            _ => (a != b).then_some(at),
        }
    }

    /// The check that keeps the chart from drifting: CI runs it with `cargo test`.
    #[test]
    fn the_charts_config_schema_is_generated_from_the_config_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CHART_SCHEMA);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{CHART_SCHEMA}: {e}"));
        let file: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{CHART_SCHEMA}: {e}"));
        assert_eq!(
            file["properties"]["config"],
            json!({ "$ref": "#/definitions/config" }),
            "{CHART_SCHEMA}: properties.config should be the generated #/definitions/config; run `{REGENERATE}`"
        );
        let generated = chart_config_schema();
        if let Some(at) =
            first_difference(&file["definitions"]["config"], &generated, String::new())
        {
            panic!(
                "{CHART_SCHEMA}#/definitions/config is not what the config types generate (first difference at {at:?}): run `{REGENERATE}` and commit the file"
            );
        }
    }

    const TBA: &str = r#"
[[integrations]]
name = "erp"
account_id = "123456_SB1"
consumer_key = { env = "CK" }
consumer_secret = { env = "CS" }
[integrations.login]
email = "i@example.com"
password = { env = "PW" }
role = "3"
[integrations.store]
kind = "vault"
address = "https://vault.internal:8200"
path = "netsuite/erp"
auth = { method = "token", token = { env = "T" } }
"#;

    const M2M: &str = r#"
[[integrations]]
name = "erp"
account_id = "123456_SB1"
[integrations.m2m]
client_id = { env = "CID" }
role = "3"
entity = "4"
[integrations.store]
kind = "file"
path = "/tmp/erp.json"
"#;

    /// Whether the loader accepts `base` with `value` at `key` (dotted, below the first
    /// integration).
    fn loader_accepts(base: &str, key: &str, value: &str) -> bool {
        let mut config: toml::Table = base.parse().expect("the base config is TOML");
        let mut table = config["integrations"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap();
        let (parents, last) = key
            .rsplit_once('.')
            .map_or((None, key), |(p, l)| (Some(p), l));
        for parent in parents.into_iter().flat_map(|p| p.split('.')) {
            table = table[parent].as_table_mut().unwrap();
        }
        table.insert(last.into(), toml::Value::String(value.into()));
        let text = toml::to_string(&config).unwrap();
        Config::parse(&text, "t").is_ok()
    }

    /// Values from `strategy`, the same ones on every run.
    fn samples(strategy: impl Strategy<Value = String>, count: usize) -> Vec<String> {
        let mut runner = TestRunner::deterministic();
        (0..count)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect()
    }

    /// Every pattern of the schema against the loader, on values made to fall on both sides:
    /// an exact pattern matches what the loader accepts and nothing else; a wider net matches
    /// at least everything the loader accepts (the chart must never refuse a config the daemon
    /// takes). Both sides are seen, so neither half of a check is empty.
    #[test]
    fn each_pattern_matches_what_the_loader_accepts() {
        let key_kind_pattern = {
            let mut schema = schemars::json_schema!({});
            key_kinds(&mut schema);
            schema.get("pattern").unwrap().as_str().unwrap().to_string()
        };
        let cases: [(&str, &str, &str, bool, &str); 11] = [
            (
                TBA,
                "revoke_after",
                DURATION,
                false,
                r"[0-9]{1,3}(\.[0-9]{1,2})? ?(ns|us|µs|ms|s|sec|secs|m|min|h|hr|hours|d|days|w|wk|M|months|y|yrs|x)( ?[0-9]{1,2} ?[smhx])?|[ 0-9.a-zµ]{0,6}",
            ),
            (
                TBA,
                "jitter",
                DURATION,
                false,
                r"[0-9] ?[0-9]?[.]?[0-9]? ?[a-z]{1,2}|0",
            ),
            (
                TBA,
                "endpoint",
                BASE_URL,
                true,
                r"https?://[a-z][a-z:.0-9/]{0,6}[?#]?|(https?|ftp)://[/?#a-z]{0,3}|[a-z:/]{0,10}",
            ),
            (TBA, "name", NAME, true, r"[A-Za-z0-9_ .-]{0,6}"),
            (
                TBA,
                "account_id",
                ACCOUNT_ID,
                true,
                r" ?[A-Za-z0-9]{0,6}[_. -]{0,2}[A-Za-z0-9]{0,3} ?",
            ),
            (
                TBA,
                "schedule",
                CRON,
                false,
                r" ?(\*|[0-5]?[0-9]|x)( (\*|[0-9]|Sun)){4,6} ?|[ *0-9]{0,12}",
            ),
            (TBA, "login.email", EMAIL, true, r"[ a-z@.]{0,6}"),
            (TBA, "login.role", NOT_BLANK, true, "[ \t0-9]{0,3}"),
            (TBA, "store.path", VAULT_PATH, true, r"[a-z./_-]{0,8}"),
            (
                TBA,
                "store.address",
                VAULT_ADDRESS,
                true,
                r"(https?)?:?/{0,3}[a-z/]{0,4}",
            ),
            (
                M2M,
                "m2m.key",
                &key_kind_pattern,
                true,
                r" ?(ec|EC|Ec|rsa|RSA|xx)-(p256|P384|3072|4096|p512) ?",
            ),
        ];
        for (base, key, pattern, exact, values) in cases {
            let regex = regex::Regex::new(pattern).unwrap();
            let (mut accepted, mut refused) = (0, 0);
            for value in samples(values, 300) {
                let accepts = loader_accepts(base, key, &value);
                let matches = regex.is_match(&value);
                assert!(
                    matches || !accepts,
                    "{key}: the loader accepts {value:?}, the pattern {pattern:?} does not"
                );
                assert!(
                    !exact || matches == accepts,
                    "{key}: the loader refuses {value:?}, the exact pattern {pattern:?} matches it"
                );
                if accepts { accepted += 1 } else { refused += 1 }
            }
            assert!(
                accepted > 10 && refused > 10,
                "{key}: {accepted} accepted, {refused} refused: make the samples fall on both sides"
            );
        }
    }
}
