//! What the simulator reads off the wire and checks on its own: the NLAuth and OAuth 1.0
//! `Authorization` headers, query strings, the RFC 5849 signature base string and the
//! HMAC-SHA256 signature.
//!
//! This is written from `shared/netsuite-tba-protocol.md` and RFC 5849 without sharing code with
//! the client in `crate::netsuite`, so that a mistake in one is caught by the other.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

/// RFC 3986 section 2.3: `A-Z a-z 0-9 - . _ ~` stay, every other byte becomes `%XX`.
const RFC3986_RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes bytes the way RFC 5849 section 3.6 asks (uppercase hex, no `+` for space).
pub(crate) fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, RFC3986_RESERVED).to_string()
}

/// A header that could not be read; the text says which rule it broke (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// The login carried by an NLAuth header.
pub(crate) struct NlauthLogin {
    pub account: String,
    pub email: String,
    pub password: SecretString,
    pub role: String,
    pub otp: Option<String>,
}

/// Strips `scheme` (case-insensitive) and the whitespace after it.
pub(crate) fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let header = header.trim_start();
    let head = header.get(..scheme.len())?;
    let rest = &header[scheme.len()..];
    if head.eq_ignore_ascii_case(scheme) && rest.starts_with([' ', '\t']) {
        Some(rest.trim_start())
    } else {
        None
    }
}

/// Parses `NLAuth nlauth_account=.., nlauth_email=.., nlauth_signature=.., nlauth_role=..[,
/// nlauth_otp=..]`. Values are percent-encoded per RFC 3986; one holding an unescaped special
/// character is refused (see [`nlauth_value`]). Unknown `nlauth_*` keys are ignored.
pub(crate) fn parse_nlauth(header: &str) -> Result<NlauthLogin, Malformed> {
    let rest = strip_scheme(header, "NLAuth").ok_or(Malformed("scheme is not NLAuth"))?;
    let mut account = None;
    let mut email = None;
    let mut password: Option<Zeroizing<String>> = None;
    let mut role = None;
    let mut otp = None;
    for part in rest.split(',') {
        let part = part.trim_matches([' ', '\t']);
        let (key, raw) = part
            .split_once('=')
            .ok_or(Malformed("an NLAuth parameter has no '='"))?;
        let value = nlauth_value(raw)?;
        let slot = match key.to_ascii_lowercase().as_str() {
            "nlauth_account" => &mut account,
            "nlauth_email" => &mut email,
            "nlauth_signature" => &mut password,
            "nlauth_role" => &mut role,
            "nlauth_otp" => &mut otp,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Malformed("an NLAuth parameter appears twice"));
        }
        *slot = Some(value);
    }
    let missing = Malformed("an NLAuth parameter is missing");
    Ok(NlauthLogin {
        account: account.ok_or(missing)?.to_string(),
        email: email.ok_or(missing)?.to_string(),
        password: SecretString::from(password.ok_or(missing)?.as_str()),
        role: role.ok_or(missing)?.to_string(),
        otp: otp.map(|v| v.to_string()),
    })
}

/// Decodes one raw NLAuth value. The protocol page says an unescaped special character in a
/// password makes NetSuite answer INVALID_LOGIN_ATTEMPT; the characters refused here are the
/// ones that cannot survive the header unescaped (`,` `&` `=` `"` space, controls, non-ASCII)
/// and a `%` that does not start an escape. Other printable ASCII (`@` in emails) is taken as is.
fn nlauth_value(raw: &str) -> Result<Zeroizing<String>, Malformed> {
    let bytes = raw.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let allowed = match b {
            b'%' => {
                bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            }
            b',' | b'&' | b'=' | b'"' => false,
            _ => b.is_ascii_graphic(),
        };
        if !allowed {
            return Err(Malformed(
                "an NLAuth value holds an unescaped special character",
            ));
        }
    }
    let decoded = percent_decode(bytes)
        .decode_utf8()
        .map_err(|_| Malformed("an NLAuth value does not decode to UTF-8"))?;
    Ok(Zeroizing::new(decoded.into_owned()))
}

/// The parameters of an `Authorization: OAuth ...` header, decoded.
pub(crate) struct OAuthHeader {
    pub realm: Option<String>,
    /// Every parameter except `realm` and `oauth_signature`, decoded: they enter the base string.
    pub signed_params: Vec<(String, String)>,
    pub signature: Option<String>,
}

impl OAuthHeader {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.signed_params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `OAuth realm="..", oauth_consumer_key="..", ...` strictly: every value is quoted and
/// percent-encoded (only unreserved characters and `%XX`), so a client that forgets to encode a
/// signature's `+`, `/` or `=` is caught here rather than by luck. `realm` is taken verbatim.
pub(crate) fn parse_oauth(header: &str) -> Result<OAuthHeader, Malformed> {
    let mut rest = strip_scheme(header, "OAuth").ok_or(Malformed("scheme is not OAuth"))?;
    let mut parsed = OAuthHeader {
        realm: None,
        signed_params: Vec::with_capacity(8),
        signature: None,
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest
            .split_once('=')
            .ok_or(Malformed("an OAuth parameter has no '='"))?;
        let after = after
            .strip_prefix('"')
            .ok_or(Malformed("an OAuth parameter value is not quoted"))?;
        let (raw, after) = after
            .split_once('"')
            .ok_or(Malformed("an OAuth parameter value has no closing quote"))?;
        rest = after;
        let name = name.trim();
        if name == "realm" {
            if parsed.realm.replace(raw.to_string()).is_some() {
                return Err(Malformed("realm appears twice"));
            }
            continue;
        }
        let name = strict_decode(name)?;
        if !name.starts_with("oauth_") {
            return Err(Malformed(
                "the OAuth header holds a parameter not named oauth_*",
            ));
        }
        let value = strict_decode(raw)?;
        let duplicate = parsed.signed_params.iter().any(|(n, _)| *n == name)
            || (name == "oauth_signature" && parsed.signature.is_some());
        if duplicate {
            return Err(Malformed("an OAuth parameter appears twice"));
        }
        if name == "oauth_signature" {
            parsed.signature = Some(value);
        } else {
            parsed.signed_params.push((name, value));
        }
    }
    Ok(parsed)
}

fn strict_decode(raw: &str) -> Result<String, Malformed> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit) =>
            {
                i += 3
            }
            b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => i += 1,
            _ => return Err(Malformed("an OAuth value is not percent-encoded")),
        }
    }
    percent_decode(bytes)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Malformed("an OAuth value does not decode to UTF-8"))
}

/// Query parameters as raw bytes, decoded the way RFC 5849 3.4.1.3.1 reads a query
/// (`application/x-www-form-urlencoded`: `+` is a space).
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

fn form_decode(raw: &str) -> Vec<u8> {
    let plus_as_space = raw.replace('+', " ");
    percent_decode(plus_as_space.as_bytes()).collect()
}

/// The first value of a query parameter, as text.
pub(crate) fn query_value(query: &[(Vec<u8>, Vec<u8>)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// RFC 5849 3.4.1: `METHOD&enc(base URI)&enc(normalized parameters)`.
pub(crate) fn signature_base_string(
    method: &str,
    base_uri: &str,
    header: &OAuthHeader,
    query: &[(Vec<u8>, Vec<u8>)],
) -> String {
    let mut params: Vec<(String, String)> = header
        .signed_params
        .iter()
        .map(|(n, v)| (encode(n.as_bytes()), encode(v.as_bytes())))
        .chain(query.iter().map(|(n, v)| (encode(n), encode(v))))
        .collect();
    params.sort();
    let normalized = params
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(base_uri.as_bytes()),
        encode(normalized.as_bytes())
    )
}

/// RFC 5849 3.4.1.2: lowercase scheme and host, no default port, the path, no query.
pub(crate) fn base_uri(scheme: &str, authority: &str, path: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let host = authority.strip_suffix(default_port).unwrap_or(&authority);
    format!("{scheme}://{host}{path}")
}

/// Checks a base64 HMAC-SHA256 signature keyed with `enc(consumer secret)&enc(token secret)`,
/// in constant time.
pub(crate) fn signature_matches(
    base_string: &str,
    consumer_secret: &SecretString,
    token_secret: &SecretString,
    signature_b64: &str,
) -> bool {
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(signature_b64) else {
        return false;
    };
    let key = Zeroizing::new(format!(
        "{}&{}",
        encode(consumer_secret.expose_secret().as_bytes()),
        encode(token_secret.expose_secret().as_bytes())
    ));
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return false;
    };
    mac.update(base_string.as_bytes());
    mac.verify_slice(&claimed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nlauth_values_are_percent_decoded() {
        let login = parse_nlauth(
            "NLAuth nlauth_account=123_SB1, nlauth_email=a%40b.example, \
             nlauth_signature=p%2C%20%C3%BC%25, nlauth_role=1001, nlauth_otp=123456",
        )
        .unwrap();
        assert_eq!(login.account, "123_SB1");
        assert_eq!(login.email, "a@b.example");
        assert_eq!(login.password.expose_secret(), "p, ü%");
        assert_eq!(login.role, "1001");
        assert_eq!(login.otp.as_deref(), Some("123456"));
    }

    #[test]
    fn nlauth_refuses_unescaped_specials() {
        for bad in ["a&b", "a=b", "a\"b", "a%zz", "a%4", "ü"] {
            let header = format!(
                "NLAuth nlauth_account=1, nlauth_email=e, nlauth_signature={bad}, nlauth_role=3"
            );
            assert!(parse_nlauth(&header).is_err(), "{bad} should be refused");
        }
        // A raw space or comma splits the value into a part the parser cannot read.
        assert!(
            parse_nlauth(
                "NLAuth nlauth_account=1, nlauth_email=e, nlauth_signature=a b, nlauth_role=3"
            )
            .is_err()
        );
        assert!(
            parse_nlauth(
                "NLAuth nlauth_account=1, nlauth_email=e, nlauth_signature=a,b, nlauth_role=3"
            )
            .is_err()
        );
    }

    #[test]
    fn nlauth_needs_every_parameter_once() {
        assert!(parse_nlauth("NLAuth nlauth_account=1, nlauth_email=e, nlauth_role=3").is_err());
        assert!(
            parse_nlauth("NLAuth nlauth_account=1, nlauth_account=2, nlauth_email=e, nlauth_signature=s, nlauth_role=3")
                .is_err()
        );
        assert!(parse_nlauth("Basic abc").is_err());
    }

    #[test]
    fn oauth_header_parses_quoted_encoded_values() {
        let h = parse_oauth(
            r#"OAuth realm="123_SB1", oauth_consumer_key="ck", oauth_token="t%20k", oauth_signature="a%2Bb%3D""#,
        )
        .unwrap();
        assert_eq!(h.realm.as_deref(), Some("123_SB1"));
        assert_eq!(h.get("oauth_token"), Some("t k"));
        assert_eq!(h.signature.as_deref(), Some("a+b="));
        assert!(h.get("oauth_signature").is_none());
    }

    #[test]
    fn oauth_header_refuses_unencoded_or_unquoted_values() {
        assert!(parse_oauth(r#"OAuth oauth_signature="a+b=""#).is_err());
        assert!(parse_oauth(r#"OAuth oauth_token=abc"#).is_err());
        assert!(parse_oauth(r#"OAuth other="x""#).is_err());
        assert!(parse_oauth(r#"OAuth oauth_token="a", oauth_token="b""#).is_err());
    }

    /// The worked example of RFC 5849 section 3.4.1.1 (parameters only; its signature is SHA-1).
    #[test]
    fn base_string_matches_rfc_5849_example() {
        let header = parse_oauth(
            r#"OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D""#,
        )
        .unwrap();
        let mut query = parse_query(Some("b5=%3D%253D&a3=a&c%40=&a2=r%20b"));
        query.extend(parse_query(Some("c2&a3=2+q")));
        let base = signature_base_string(
            "post",
            &base_uri("HTTP", "EXAMPLE.COM:80", "/request"),
            &header,
            &query,
        );
        assert_eq!(
            base,
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
             %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
             key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
             ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
             9d7dh3k39sjv7"
        );
    }

    #[test]
    fn base_uri_keeps_non_default_ports() {
        assert_eq!(
            base_uri("http", "127.0.0.1:8700", "/rest/tokeninfo"),
            "http://127.0.0.1:8700/rest/tokeninfo"
        );
        assert_eq!(base_uri("https", "A.B:443", "/x"), "https://a.b/x");
    }

    #[test]
    fn signature_check_uses_both_secrets() {
        let base = "GET&x&y";
        let key = format!("{}&{}", encode(b"c s"), encode(b"t&s"));
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(base.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let cs = SecretString::from("c s");
        assert!(signature_matches(
            base,
            &cs,
            &SecretString::from("t&s"),
            &sig
        ));
        assert!(!signature_matches(
            base,
            &cs,
            &SecretString::from("t&x"),
            &sig
        ));
        assert!(!signature_matches(
            base,
            &cs,
            &SecretString::from("t&s"),
            "not base64!"
        ));
    }
}
