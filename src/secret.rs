//! Secret values: how they are held, compared and (only where a store needs it) serialised.
//!
//! Every secret the daemon reads (passwords, consumer and token secrets, TOTP seeds, store
//! credentials) is a [`SecretString`] from the moment it is read. Its `Debug` prints a
//! redaction and its memory is zeroed on drop. The only way to the value is
//! `ExposeSecret::expose_secret`, which keeps every use greppable.

pub use secrecy::{ExposeSecret, SecretString};

/// Serialises a secret as its plain value. Only for the reader-facing JSON that a secret store
/// must hold; never use it for logs, status output or metrics.
pub fn serialize_exposed<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// Like [`serialize_exposed`] for an optional secret.
pub fn serialize_exposed_opt<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(s) => serializer.serialize_some(s.expose_secret()),
        None => serializer.serialize_none(),
    }
}

/// Compares two secrets in constant time, so that a verifier (the simulator) does not leak
/// how much of a guess was right.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Shortens an identifier (a token id) for display: enough to tell tokens apart, not enough to
/// be mistaken for the whole value.
pub fn short_id(id: &str) -> String {
    let n = id.chars().count();
    if n <= 8 {
        return id.to_string();
    }
    let head: String = id.chars().take(4).collect();
    let tail: String = id.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}

/// Where the config says a secret value lives. Resolved once, at start-up or reload.
///
/// In TOML: `{ env = "NAME" }`, `{ file = "/path" }`, `{ credential = "name" }` (a file in
/// systemd's `$CREDENTIALS_DIRECTORY`), or a plain string (allowed, but `check` warns).
#[derive(Clone)]
pub enum SecretRef {
    Env {
        env: String,
    },
    File {
        file: std::path::PathBuf,
    },
    Credential {
        credential: String,
    },
    /// Wrapped as it is parsed: a literal secret is a secret from the moment it is read.
    Literal(SecretString),
}

impl PartialEq for SecretRef {
    fn eq(&self, other: &SecretRef) -> bool {
        match (self, other) {
            (SecretRef::Env { env: a }, SecretRef::Env { env: b }) => a == b,
            (SecretRef::File { file: a }, SecretRef::File { file: b }) => a == b,
            (SecretRef::Credential { credential: a }, SecretRef::Credential { credential: b }) => {
                a == b
            }
            (SecretRef::Literal(a), SecretRef::Literal(b)) => {
                secrets_equal(a.expose_secret(), b.expose_secret())
            }
            _ => false,
        }
    }
}

impl Eq for SecretRef {}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env { env } => write!(f, "{{ env = {env:?} }}"),
            SecretRef::File { file } => write!(f, "{{ file = {file:?} }}"),
            SecretRef::Credential { credential } => write!(f, "{{ credential = {credential:?} }}"),
            SecretRef::Literal(_) => f.write_str("\"[REDACTED literal]\""),
        }
    }
}

/// Why a secret reference could not be resolved. Names the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretRefError {
    #[error("environment variable {0} is not set (or not valid UTF-8)")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {source}")]
    FileUnreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "credential {0:?} needs $CREDENTIALS_DIRECTORY (set by systemd's LoadCredential=), which is not set"
    )]
    NoCredentialsDirectory(String),
    #[error("secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Reads the value. Files and credentials lose one trailing newline (as `echo` writes them).
    pub fn resolve(&self) -> Result<SecretString, SecretRefError> {
        let (value, source) = match self {
            SecretRef::Literal(v) => (
                v.expose_secret().to_string(),
                "a literal in the config".to_string(),
            ),
            SecretRef::Env { env } => (
                std::env::var(env).map_err(|_| SecretRefError::EnvMissing(env.clone()))?,
                format!("environment variable {env}"),
            ),
            SecretRef::File { file } => {
                (read_secret_file(file)?, format!("file {}", file.display()))
            }
            SecretRef::Credential { credential } => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| SecretRefError::NoCredentialsDirectory(credential.clone()))?;
                let path = std::path::Path::new(&dir).join(credential);
                (read_secret_file(&path)?, format!("credential {credential}"))
            }
        };
        let mut value = zeroize::Zeroizing::new(value);
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        if value.is_empty() {
            return Err(SecretRefError::Empty(source));
        }
        Ok(SecretString::from(value.as_str()))
    }

    /// A literal secret sits in the config file itself; `check` warns about it.
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }
}

fn read_secret_file(path: &std::path::Path) -> Result<String, SecretRefError> {
    std::fs::read_to_string(path).map_err(|source| SecretRefError::FileUnreadable {
        path: path.to_path_buf(),
        source,
    })
}

impl<'de> serde::Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretRefVisitor)
    }
}

struct SecretRefVisitor;

const SECRET_REF_FORMS: &str = r#"a secret reference: { env = "NAME" }, { file = "/path" }, { credential = "name" } or a string"#;

impl<'de> serde::de::Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(SECRET_REF_FORMS)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretRef, E> {
        Ok(SecretRef::Literal(SecretString::from(v)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        use serde::de::Error;
        let Some(key) = map.next_key::<String>()? else {
            return Err(A::Error::custom(format!(
                "empty table; expected {SECRET_REF_FORMS}"
            )));
        };
        let value: String = map.next_value()?;
        let reference = match key.as_str() {
            "env" => SecretRef::Env { env: value },
            "file" => SecretRef::File { file: value.into() },
            "credential" => SecretRef::Credential { credential: value },
            other => {
                return Err(A::Error::custom(format!(
                    "unknown key `{other}`; expected {SECRET_REF_FORMS}"
                )));
            }
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(A::Error::custom(format!(
                "extra key `{extra}`: a secret reference has exactly one of env, file, credential"
            )));
        }
        Ok(reference)
    }
}

/// By hand, like the `Deserialize` above, and saying what it accepts: a string (a literal), or
/// a table with exactly one of `env`, `file` and `credential`, whose value is a string.
impl schemars::JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let table = |key: &str, description: &str| {
            serde_json::json!({
                "description": description,
                "type": "object",
                "properties": { key: { "type": "string" } },
                "required": [key],
                "additionalProperties": false,
            })
        };
        schemars::json_schema!({
            "description": "Where a secret value lives: { env = \"NAME\" }, { file = \"/path\" }, { credential = \"name\" } or a literal string (`check` warns about literals).",
            "oneOf": [
                { "description": "A literal secret: it then sits in the config file.", "type": "string" },
                table("env", "An environment variable."),
                table("file", "A file's content, one trailing newline dropped."),
                table("credential", "A systemd credential: $CREDENTIALS_DIRECTORY/<name>, from LoadCredential=."),
            ],
        })
    }
}
