//! The parts a NetSuite error is made of: OAuth's refusal reasons, NetSuite's own error code
//! and message, how a request failed below HTTP, and what was wrong with a body.

use std::fmt;

/// The reason NetSuite gives for refusing an OAuth-signed request, from
/// `WWW-Authenticate: OAuth realm="…", error="<reason>"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthReason {
    ConsumerKeyRefused,
    ConsumerKeyUnknown,
    TokenRejected,
    NonceRejected,
    NonceUsed,
    TimestampRefused,
    SignatureInvalid,
    FeatureDisabled,
    /// A reason this code does not know (sanitised: letters, digits, `_.:-`, at most 64).
    Other(String),
    /// A 401 without a readable reason.
    Unspecified,
}

impl OAuthReason {
    /// Maps the `error` parameter's value. NetSuite's spelling for a bad signature is not
    /// published, so the likely spellings all land on [`OAuthReason::SignatureInvalid`].
    pub fn parse(reason: &str) -> OAuthReason {
        let reason = reason.trim();
        let known = [
            ("consumer_key_refused", OAuthReason::ConsumerKeyRefused),
            ("consumer_key_unknown", OAuthReason::ConsumerKeyUnknown),
            ("token_rejected", OAuthReason::TokenRejected),
            ("nonce_rejected", OAuthReason::NonceRejected),
            ("nonce_used", OAuthReason::NonceUsed),
            ("timestamp_refused", OAuthReason::TimestampRefused),
            ("signature_invalid", OAuthReason::SignatureInvalid),
            ("invalid_signature", OAuthReason::SignatureInvalid),
            ("signature_rejected", OAuthReason::SignatureInvalid),
            ("FeatureDisabled", OAuthReason::FeatureDisabled),
            ("feature_disabled", OAuthReason::FeatureDisabled),
        ];
        for (name, parsed) in known {
            if reason.eq_ignore_ascii_case(name) {
                return parsed;
            }
        }
        if reason.is_empty() {
            return OAuthReason::Unspecified;
        }
        OAuthReason::Other(sanitize_token(reason, 64))
    }

    /// What the reason means and what to do about it.
    pub(super) fn explanation(&self) -> &'static str {
        match self {
            OAuthReason::ConsumerKeyRefused => {
                "the integration record is blocked, disabled, or waiting for an administrator to \
                 approve it (\"Require Approval during Auto-Installation of Integration\"; see \
                 docs/runbook.md#integration-awaiting-approval)"
            }
            OAuthReason::ConsumerKeyUnknown => {
                "no integration record in this account has this consumer key"
            }
            OAuthReason::TokenRejected => "the token is revoked, unknown or inactive",
            OAuthReason::NonceRejected => "the nonce was refused (too short)",
            OAuthReason::NonceUsed => "the nonce was already used; a new one is drawn on retry",
            OAuthReason::TimestampRefused => {
                "this machine's clock is more than 5 minutes away from NetSuite's: check the \
                 clock (NTP); retrying will not help"
            }
            OAuthReason::SignatureInvalid => {
                "the signature did not verify: check the consumer secret, the token secret and \
                 that the account id (realm) matches"
            }
            OAuthReason::FeatureDisabled => {
                "token-based authentication is not enabled in this account"
            }
            OAuthReason::Other(_) => "a reason this tool does not recognise",
            OAuthReason::Unspecified => {
                "no reason was given in WWW-Authenticate; check the consumer key and secret, \
                 the token and the account id"
            }
        }
    }
}

impl fmt::Display for OAuthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OAuthReason::ConsumerKeyRefused => "consumer_key_refused",
            OAuthReason::ConsumerKeyUnknown => "consumer_key_unknown",
            OAuthReason::TokenRejected => "token_rejected",
            OAuthReason::NonceRejected => "nonce_rejected",
            OAuthReason::NonceUsed => "nonce_used",
            OAuthReason::TimestampRefused => "timestamp_refused",
            OAuthReason::SignatureInvalid => "invalid signature",
            OAuthReason::FeatureDisabled => "FeatureDisabled",
            OAuthReason::Other(reason) => reason,
            OAuthReason::Unspecified => "unspecified",
        };
        write!(f, "{name}: {}", self.explanation())
    }
}

/// The `{"error":{"code":…,"message":…}}` NetSuite puts in error answers, when there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetSuiteDetail {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl NetSuiteDetail {
    pub(super) fn is_empty(&self) -> bool {
        self.code.is_none() && self.message.is_none()
    }
}

/// Renders as `, NetSuite said CODE: message` (or nothing), to follow an HTTP status.
impl fmt::Display for NetSuiteDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        f.write_str(", NetSuite said ")?;
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}"),
            (Some(code), None) => f.write_str(code),
            (None, Some(message)) => f.write_str(message),
            (None, None) => Ok(()),
        }
    }
}

/// How a request failed below HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// No connection within the connect timeout: nothing was sent.
    ConnectTimeout,
    /// Refused, unreachable, DNS, or a TLS handshake that failed for a reason other than the
    /// certificate: nothing was sent.
    Connect,
    /// The server's TLS certificate was not trusted (unknown or self-signed issuer, issued for
    /// another name, expired or not yet valid): the handshake was abandoned, nothing was sent.
    /// Not transient: trying again within seconds cannot make a certificate trusted, and every
    /// try is another handshake with a server that may be an impostor.
    TlsCertificate,
    /// The answer did not arrive in time: the request may have been processed.
    Timeout,
    /// The connection broke (reset, closed, cut body) after the request went out.
    ConnectionLost,
}

impl TransportKind {
    /// Whether the request may have reached NetSuite.
    pub fn request_may_have_arrived(self) -> bool {
        matches!(self, TransportKind::Timeout | TransportKind::ConnectionLost)
    }

    /// Whether trying again soon may succeed without anyone changing anything.
    pub fn is_transient(self) -> bool {
        self != TransportKind::TlsCertificate
    }

    /// What an operator should do, appended to the error's message (empty when the kind says
    /// it all).
    pub(super) fn advice(self) -> &'static str {
        match self {
            TransportKind::TlsCertificate => {
                ". Check that the integration's `endpoint` names the intended host and that \
                 its server presents a current certificate for that name from a certificate \
                 authority this machine trusts; for a private CA, add it to the system trust \
                 store or name a PEM file holding it in SSL_CERT_FILE. Not retried: trying again \
                 does not make a certificate trusted"
            }
            _ => "",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::ConnectTimeout => "timed out connecting (the request was not sent)",
            TransportKind::Connect => "could not connect (the request was not sent)",
            TransportKind::TlsCertificate => {
                "TLS certificate not trusted (the connection was abandoned in the handshake; \
                 the request was not sent)"
            }
            TransportKind::Timeout => {
                "timed out waiting for the answer (the request may have been processed)"
            }
            TransportKind::ConnectionLost => {
                "the connection failed before the answer was complete (the request may have \
                 been processed)"
            }
        })
    }
}

/// What was wrong with a body that should have held the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyProblem {
    /// An HTML page other than a login page: a maintenance or proxy page, most likely.
    Html,
    /// An HTML page with a login form: the request landed on a NetSuite (or SSO) login page
    /// instead of the REST service.
    LoginPage,
    /// An XML document, a SOAP fault most likely. NetSuite has been seen to answer a request
    /// for an account of another data center with a `200` SOAP fault "Incorrect data center
    /// requested!".
    XmlFault {
        /// The fault names the data center.
        wrong_data_center: bool,
    },
    Empty,
    TooLarge {
        limit: usize,
    },
    /// The JSON stopped before it was complete.
    JsonEndedEarly {
        line: usize,
        column: usize,
    },
    /// Not JSON at all, or trailing garbage.
    JsonSyntax {
        line: usize,
        column: usize,
    },
    /// Valid JSON of a shape the endpoint does not answer with (not an object, a field of the
    /// wrong type).
    JsonShape {
        expected: &'static str,
        line: usize,
        column: usize,
    },
    /// A plain-text "Service Unavailable" page (`datacenterurls` answers one when it wants the
    /// `c` parameter).
    ServiceUnavailableText,
    /// Bytes that are not text where a text answer was expected.
    NotText,
    /// A 2xx answer that carries NetSuite's `{"error":{"code":…}}`.
    ErrorObject,
    /// A required field is missing or empty.
    MissingField {
        field: &'static str,
    },
}

impl fmt::Display for BodyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyProblem::Html => f.write_str(
                "answered with an HTML page where JSON was expected: most likely a maintenance \
                 page or a proxy's page, not NetSuite's token service (check the endpoint and \
                 any proxy in between)",
            ),
            BodyProblem::LoginPage => f.write_str(
                "answered with an HTML login page where JSON was expected: the request reached \
                 a login page instead of NetSuite's token service (most likely a wrong endpoint \
                 or domain, or a proxy that asks for a login)",
            ),
            BodyProblem::XmlFault {
                wrong_data_center: true,
            } => f.write_str(
                "answered with an XML SOAP fault \"Incorrect data center requested!\" where JSON \
                 was expected: the account is served by another data center (check \
                 `account_id`, and leave `endpoint` unset so datacenterurls finds the right \
                 domain)",
            ),
            BodyProblem::XmlFault {
                wrong_data_center: false,
            } => f.write_str(
                "answered with an XML document (a SOAP fault, most likely) where JSON was \
                 expected: the request reached a SOAP web services handler, not the REST token \
                 service (check the endpoint)",
            ),
            BodyProblem::Empty => f.write_str("empty body where JSON was expected"),
            BodyProblem::NotText => f.write_str("the body is not text (binary bytes)"),
            BodyProblem::ErrorObject => {
                f.write_str("a success status whose JSON body is a NetSuite error object")
            }
            BodyProblem::ServiceUnavailableText => f.write_str(
                "answered a plain-text \"Service Unavailable\" where JSON was expected (asked \
                 with and without the `c` parameter)",
            ),
            BodyProblem::TooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            BodyProblem::JsonEndedEarly { line, column } => {
                write!(f, "JSON ended early at line {line} column {column}")
            }
            BodyProblem::JsonSyntax { line, column } => {
                write!(
                    f,
                    "body is not valid JSON (error at line {line} column {column})"
                )
            }
            BodyProblem::JsonShape {
                expected,
                line,
                column,
            } => write!(
                f,
                "JSON is not the expected shape ({expected}; mismatch at line {line} column {column})"
            ),
            BodyProblem::MissingField { field } => {
                write!(f, "JSON object lacks a non-empty `{field}`")
            }
        }
    }
}

/// Keeps a code-like string short and free of anything but `A-Z a-z 0-9 _ . : -`.
pub(super) fn sanitize_token(raw: &str, limit: usize) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
        .take(limit)
        .collect()
}
