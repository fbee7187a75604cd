//! The one percent-encoding NetSuite's authentication headers use: RFC 3986 as RFC 5849
//! section 3.6 pins it down. UTF-8 bytes; `A-Z a-z 0-9 - . _ ~` stay as they are; every other
//! byte becomes `%XX` with uppercase hex. A space is `%20`, never the form-style `+`.
//!
//! OAuth signatures, the OAuth header, the NLAuth header and the query strings this crate builds
//! all go through here, so a password or token name is encoded the same way everywhere.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything except the RFC 3986 unreserved characters.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `value`; borrows it unchanged when nothing needed encoding.
pub fn percent_encode(value: &str) -> Cow<'_, str> {
    utf8_percent_encode(value, NOT_UNRESERVED).into()
}

/// Appends the percent-encoded `value` to `out` without an intermediate string.
pub fn percent_encode_into(out: &mut String, value: &str) {
    out.extend(utf8_percent_encode(value, NOT_UNRESERVED));
}

/// Like [`percent_encode`] for a value that may already be owned (a decoded query value).
pub(crate) fn percent_encode_cow(value: Cow<'_, str>) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(borrowed) => percent_encode(borrowed),
        // A borrowed result from `percent_encode` does not mean "unchanged" (a lone `%20`
        // comes back as a static string), so decide by looking at the bytes.
        Cow::Owned(owned) if owned.bytes().all(is_unreserved) => Cow::Owned(owned),
        Cow::Owned(owned) => Cow::Owned(percent_encode(&owned).into_owned()),
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_stay() {
        let unreserved = "ABCXYZabcxyz0189-._~";
        assert_eq!(percent_encode(unreserved), unreserved);
        assert!(matches!(percent_encode(unreserved), Cow::Borrowed(_)));
    }

    #[test]
    fn space_is_percent_20_never_plus() {
        assert_eq!(percent_encode("a b"), "a%20b");
    }

    #[test]
    fn plus_star_percent_and_reserved_are_encoded_uppercase() {
        assert_eq!(percent_encode("+"), "%2B");
        assert_eq!(percent_encode("*"), "%2A");
        assert_eq!(percent_encode("%"), "%25");
        assert_eq!(percent_encode("%2b"), "%252b");
        assert_eq!(
            percent_encode(",&=\"/?:@!$'()[]#;"),
            "%2C%26%3D%22%2F%3F%3A%40%21%24%27%28%29%5B%5D%23%3B"
        );
    }

    #[test]
    fn multibyte_utf8_is_encoded_byte_by_byte() {
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode("ü€"), "%C3%BC%E2%82%AC");
        assert_eq!(percent_encode("😀"), "%F0%9F%98%80");
    }

    #[test]
    fn control_characters_are_encoded() {
        assert_eq!(percent_encode("\n\t\0"), "%0A%09%00");
    }

    #[test]
    fn encode_into_appends() {
        let mut out = String::from("x=");
        percent_encode_into(&mut out, "a b&c");
        assert_eq!(out, "x=a%20b%26c");
    }

    #[test]
    fn encode_cow_keeps_owned_values_without_copying_when_clean() {
        assert_eq!(percent_encode_cow(Cow::Owned("a b".to_string())), "a%20b");
        assert_eq!(percent_encode_cow(Cow::Owned(" ".to_string())), "%20");
        assert_eq!(percent_encode_cow(Cow::Owned("ab".to_string())), "ab");
        assert_eq!(percent_encode_cow(Cow::Borrowed("~")), "~");
    }
}
