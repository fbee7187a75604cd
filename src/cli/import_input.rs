//! What `import` reads on standard input for an M2M integration: the certificate ID on the
//! first line, then the PEM private key, then optionally the PEM certificate (for its expiry).
//! The key is held zeroized from the moment it is read; no error quotes the input.

use std::io::Read;

use zeroize::Zeroizing;

use crate::secret::SecretString;

/// An administrator's certificate, as `import` was given it.
#[derive(Debug)]
pub struct CertificateInput {
    pub certificate_id: String,
    pub private_key: SecretString,
    pub certificate: Option<String>,
}

/// Reads the whole input and splits it; the key is checked later, by what it is (see
/// `netsuite::m2m::algorithm_of_private_key`), this only finds its PEM block.
pub fn read_certificate(mut input: impl Read) -> Result<CertificateInput, String> {
    let mut text = Zeroizing::new(String::new());
    input.read_to_string(&mut text).map_err(|e| {
        format!("cannot read stdin: {e} (expected text: a certificate ID line, then PEM blocks)")
    })?;
    parse_certificate(&text)
}

fn parse_certificate(text: &str) -> Result<CertificateInput, String> {
    let text = text.trim_start();
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let certificate_id = first.trim();
    if certificate_id.is_empty() {
        return Err("expected the certificate ID (as NetSuite shows it for the mapping) on line 1, got an empty input".into());
    }
    if certificate_id.starts_with("-----BEGIN") {
        return Err("line 1 is a PEM block; expected the certificate ID on line 1, then the PEM private key, then optionally the PEM certificate".into());
    }
    if certificate_id.chars().any(char::is_whitespace) || certificate_id.len() > 200 {
        return Err("the certificate ID (line 1) contains white space or is too long; expected one ID as NetSuite shows it for the mapping".into());
    }
    let (label, key, rest) = next_block(rest).ok_or(
        "expected the PEM private key after the certificate ID (-----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----); the input has no PEM block",
    )?;
    if !label.ends_with("PRIVATE KEY") {
        return Err(format!(
            "the block after the certificate ID is a PEM {label}; expected the private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY) there, and the certificate after it"
        ));
    }
    let private_key = SecretString::from(key);
    let certificate = match next_block(rest) {
        None if rest.trim().is_empty() => None,
        None => {
            return Err(
                "after the private key, expected nothing or a PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            );
        }
        Some((label, block, rest)) => {
            if label != "CERTIFICATE" {
                return Err(format!(
                    "the block after the private key is a PEM {label}; expected a CERTIFICATE (or nothing)"
                ));
            }
            if !rest.trim().is_empty() {
                return Err("more input after the certificate; expected the certificate ID, the private key and at most one certificate".into());
            }
            Some(block.to_string())
        }
    };
    Ok(CertificateInput {
        certificate_id: certificate_id.to_string(),
        private_key,
        certificate,
    })
}

/// The next PEM block in `text`: its label, the block from `-----BEGIN` to the end of its
/// `-----END` line, and what follows. `None` when there is no complete block.
fn next_block(text: &str) -> Option<(&str, &str, &str)> {
    let start = text.find("-----BEGIN ")?;
    let after_begin = &text[start + "-----BEGIN ".len()..];
    let label_end = after_begin.find("-----")?;
    let label = &after_begin[..label_end];
    let end_marker = format!("-----END {label}-----");
    let end = text[start..].find(&end_marker)? + start + end_marker.len();
    Some((label, &text[start..end], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nS3CR3TKEYBYTES\n-----END PRIVATE KEY-----";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----";

    #[test]
    fn the_id_the_key_and_the_optional_certificate_are_read() {
        let input = parse_certificate(&format!("  abc123 \n{KEY}\n{CERT}\n")).unwrap();
        assert_eq!(input.certificate_id, "abc123");
        assert_eq!(input.private_key.expose_secret(), KEY);
        assert_eq!(input.certificate.as_deref(), Some(CERT));
        let input = parse_certificate(&format!("abc123\n{KEY}\n")).unwrap();
        assert!(input.certificate.is_none());
    }

    #[test]
    fn every_misshapen_input_is_named_without_quoting_the_key() {
        for (text, expected) in [
            (String::new(), "empty input"),
            (format!("{KEY}\n"), "line 1 is a PEM block"),
            ("abc123\nnot a pem\n".to_string(), "has no PEM block"),
            (format!("abc123\n{CERT}\n{KEY}"), "is a PEM CERTIFICATE"),
            (format!("abc 123\n{KEY}"), "white space"),
            (
                format!("abc123\n{KEY}\ntrailing words"),
                "expected nothing or a PEM certificate",
            ),
            (
                format!("abc123\n{KEY}\n{CERT}\n{CERT}"),
                "more input after the certificate",
            ),
        ] {
            let problem = parse_certificate(&text).unwrap_err();
            assert!(problem.contains(expected), "{text:?}: {problem}");
            assert!(!problem.contains("S3CR3T"), "{problem}");
        }
    }
}
