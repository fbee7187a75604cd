//! `[integrations.store]`: which backend holds an integration's credential and its settings,
//! read by hand so that a wrong key is named against the keys its `kind` takes, with its JSON
//! schema written the same way.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Value, json};

use super::aws::AwsStoreConfig;
use super::file::FileStoreConfig;
use super::vault::VaultStoreConfig;
use crate::value_format::check_base_url;

/// One store per integration; `kind` picks the backend. Deserialised by hand (below): serde's
/// internally tagged enums buffer the table and lose track of it, so a misspelt key came out
/// as "missing field `kind`" or without the keys that `kind` accepts.
#[derive(Debug)]
pub enum StoreConfig {
    File(FileStoreConfig),
    Vault(VaultStoreConfig),
    Aws(AwsStoreConfig),
}

/// The backends, as `kind` names them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StoreKind {
    File,
    Vault,
    Aws,
}

impl StoreKind {
    const ALL: [StoreKind; 3] = [StoreKind::File, StoreKind::Vault, StoreKind::Aws];
    /// Their names, in the order of the variants.
    const NAMES: &'static [&'static str] = &["file", "vault", "aws"];

    fn name(self) -> &'static str {
        StoreKind::NAMES[self as usize]
    }

    /// The keys a store table of this kind may hold besides `kind`: the fields of its
    /// backend's config, as its `Deserialize` declares them.
    fn keys(self) -> &'static [&'static str] {
        match self {
            StoreKind::File => struct_keys::<FileStoreConfig>(),
            StoreKind::Vault => struct_keys::<VaultStoreConfig>(),
            StoreKind::Aws => struct_keys::<AwsStoreConfig>(),
        }
    }
}

/// By hand: toml refuses a non-string for a derived enum with "wanted string or table", which
/// names neither the key nor what it takes.
impl<'de> Deserialize<'de> for StoreKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        StoreKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, StoreKind::NAMES))
    }
}

impl<'de> Deserialize<'de> for StoreConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StoreTable)
    }
}

/// Reads `kind` where it stands (so a bad value is reported at `store.kind`), keeps the other
/// keys, and only then, knowing the kind, checks their names and builds the backend's config.
struct StoreTable;

impl<'de> serde::de::Visitor<'de> for StoreTable {
    type Value = StoreConfig;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table with kind = \"file\", \"vault\" or \"aws\" and that store's keys")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StoreConfig, A::Error> {
        use serde::de::Error;
        let mut kind = None;
        let mut rest = toml::Table::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "kind" {
                kind = Some(map.next_value::<StoreKind>()?);
            } else {
                let value = map.next_value::<toml::Value>()?;
                rest.insert(key, value);
            }
        }
        let Some(kind) = kind else {
            let kinds = "kind = \"file\", \"vault\" or \"aws\"";
            // Keys no kind accepts are the likely misspelling (`kindd`).
            let unknown = unknown_keys(&rest, |key| {
                StoreKind::ALL.iter().any(|k| k.keys().contains(&key))
            });
            return Err(A::Error::custom(match unknown {
                Some(unknown) => format!("{unknown}; missing key `kind` ({kinds})"),
                None => format!("missing key `kind`: expected {kinds}"),
            }));
        };
        if let Some(unknown) = unknown_keys(&rest, |key| kind.keys().contains(&key)) {
            return Err(A::Error::custom(format!(
                "{unknown}; a store of kind = \"{}\" takes the keys kind, {}",
                kind.name(),
                kind.keys().join(", ")
            )));
        }
        // The keys are right; what is left is a value's type or a key missing, whose path
        // below the store is given in front of serde's message.
        let built = match kind {
            StoreKind::File => serde_path_to_error::deserialize(rest).map(StoreConfig::File),
            StoreKind::Vault => serde_path_to_error::deserialize(rest).map(StoreConfig::Vault),
            StoreKind::Aws => serde_path_to_error::deserialize(rest).map(StoreConfig::Aws),
        };
        built.map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().message().to_string();
            A::Error::custom(if path == "." {
                message
            } else {
                format!("{path}: {message}")
            })
        })
    }
}

/// "unknown key `a`" or "unknown keys `a`, `b`" for the keys of `table` that `known` refuses.
fn unknown_keys(table: &toml::Table, known: impl Fn(&str) -> bool) -> Option<String> {
    let unknown: Vec<String> = table
        .keys()
        .filter(|key| !known(key))
        .map(|key| format!("`{key}`"))
        .collect();
    match unknown.len() {
        0 => None,
        1 => Some(format!("unknown key {}", unknown[0])),
        _ => Some(format!("unknown keys {}", unknown.join(", "))),
    }
}

/// The field names a `#[derive(Deserialize)]` struct accepts: the derive passes them to
/// `deserialize_struct`, where this deserializer notes them and stops.
fn struct_keys<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Keys<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Keys<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("keys noted"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(Keys(&mut keys));
    keys
}

impl StoreConfig {
    /// A key naming what the store writes, to refuse two integrations sharing one secret.
    pub fn location(&self) -> String {
        match self {
            StoreConfig::File(f) => format!("file {}", f.path.display()),
            StoreConfig::Vault(v) => format!(
                "vault {} {}/{}",
                v.address.trim_end_matches('/'),
                v.mount,
                v.path
            ),
            StoreConfig::Aws(a) => format!(
                "aws {} {}",
                a.region.as_deref().unwrap_or("(default region)"),
                a.secret_id
            ),
        }
    }

    /// Backend checks that need no network, as (field below `store`, problem).
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            StoreConfig::File(f) if f.path.as_os_str().is_empty() => {
                Err(("path".into(), "expected a file path".into()))
            }
            StoreConfig::File(_) => Ok(()),
            StoreConfig::Aws(a) if a.secret_id.trim().is_empty() => Err((
                "secret_id".into(),
                "expected the name or ARN of a secret".into(),
            )),
            StoreConfig::Aws(a) => match &a.endpoint_url {
                Some(url) => check_base_url(url).map_err(|p| ("endpoint_url".into(), p)),
                None => Ok(()),
            },
            StoreConfig::Vault(v) => v.validate().map_err(|e| {
                let message = e.to_string();
                let key = message.split(' ').next().unwrap_or("").to_string();
                (key, message)
            }),
        }
    }
}

/// By hand, like its `Deserialize`: `kind` picks the backend, whose keys are then the only
/// others allowed. `if`/`then` per kind, as the loader reads `kind` first, so a wrong key is
/// reported against the kind's keys and a wrong kind against the kinds.
impl JsonSchema for StoreConfig {
    fn schema_name() -> Cow<'static, str> {
        "StoreConfig".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let per_kind: Vec<Value> = StoreKind::ALL
            .into_iter()
            .map(|kind| {
                let mut keys = match kind {
                    StoreKind::File => FileStoreConfig::json_schema(generator),
                    StoreKind::Vault => VaultStoreConfig::json_schema(generator),
                    StoreKind::Aws => AwsStoreConfig::json_schema(generator),
                };
                let keys = keys.ensure_object();
                let properties = keys
                    .entry("properties")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("properties is an object");
                properties.insert("kind".into(), json!({ "const": kind.name() }));
                json!({
                    "if": { "properties": { "kind": { "const": kind.name() } }, "required": ["kind"] },
                    "then": keys,
                })
            })
            .collect();
        schemars::json_schema!({
            "description": "One store per integration; `kind` picks the backend and the keys it takes.",
            "type": "object",
            "properties": { "kind": { "enum": StoreKind::NAMES } },
            "required": ["kind"],
            "allOf": per_kind,
        })
    }
}
