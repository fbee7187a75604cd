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
