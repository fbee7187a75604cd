//! What can go wrong talking to NetSuite, and what each failure means for the caller: retry
//! now, stop and alert, or (for `issuetoken`) suspect that a token was issued whose answer was
//! lost.
//!
//! The classification follows `shared/netsuite-tba-protocol.md`, "Errors to recognise". Where
//! NetSuite's documentation is silent (the exact spelling of an invalid-signature reason, the
//! shape of error bodies) the guesses live in this file only.
//!
//! No message here quotes a response body: an `issuetoken` body holds a token secret, and a
//! JSON parser's message can echo values. Bodies contribute only a NetSuite error code and
//! message from a non-2xx JSON error object (which carry no secrets), the HTTP status, the
//! content type, and line/column positions.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

use super::totp::TotpError;

/// Which NetSuite service a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    IssueToken,
    RevokeToken,
    TokenInfo,
    DataCenterUrls,
    /// `check`'s unauthenticated look at an endpoint (see [`NetSuiteClient::probe`]).
    ///
    /// [`NetSuiteClient::probe`]: super::NetSuiteClient::probe
    Probe,
    /// OAuth 2.0 client credentials: `POST .../auth/oauth2/v1/token` with a client assertion.
    M2mToken,
    /// `GET .../clients/<client id>/certificates`.
    ListCertificates,
    /// `POST .../clients/<client id>/certificates`.
    AddCertificate,
    /// `POST .../clients/<client id>/certificates/<id>/revoke`.
    RevokeCertificate,
}

impl Call {
    /// The service's name as it appears in its path, e.g. `issuetoken` (for a probe and the
    /// certificate calls, what it is). Also the `call` label of the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Call::IssueToken => "issuetoken",
            Call::RevokeToken => "revoketoken",
            Call::TokenInfo => "tokeninfo",
            Call::DataCenterUrls => "datacenterurls",
            Call::Probe => "endpoint probe",
            Call::M2mToken => "token",
            Call::ListCertificates => "certificates",
            Call::AddCertificate => "certificate add",
            Call::RevokeCertificate => "certificate revoke",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    fn explanation(&self) -> &'static str {
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
    fn is_empty(&self) -> bool {
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
    fn advice(self) -> &'static str {
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

/// A failed NetSuite call. See the methods for how to react to one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetSuiteError {
    #[error("cannot build the NetSuite HTTP client: {0}")]
    ClientBuild(String),

    #[error("cannot make the {call} request: {problem}")]
    InvalidRequest { call: Call, problem: String },

    #[error("cannot compute the nlauth_otp code: {0}")]
    Totp(#[from] TotpError),

    #[error(
        "{call} refused the NLAuth login (HTTP {status}{detail}): check the login email, \
         password, role and TOTP secret. Not retried: repeated failed logins lock the NetSuite \
         user out"
    )]
    LoginFailed {
        call: Call,
        status: u16,
        detail: NetSuiteDetail,
    },

    #[error("{call} refused the OAuth 1.0 request (HTTP {status}{detail}): {reason}")]
    OAuthRejected {
        call: Call,
        status: u16,
        reason: OAuthReason,
        detail: NetSuiteDetail,
    },

    /// The account's request concurrency limit: `400 SSS_REQUEST_LIMIT_EXCEEDED` on RESTlet
    /// domains, `429` on REST web services. Never a login failure, whatever the call.
    #[error(
        "{call} answered HTTP {status}{detail}: the account's request concurrency limit \
         (SSS_REQUEST_LIMIT_EXCEEDED) is exceeded by this and other integrations of the \
         account; backing off and trying again"
    )]
    RateLimited {
        call: Call,
        status: u16,
        detail: NetSuiteDetail,
        retry_after: Option<Duration>,
    },

    #[error("{call} answered HTTP {status}{detail}: NetSuite server error or maintenance")]
    ServerError {
        call: Call,
        status: u16,
        detail: NetSuiteDetail,
        retry_after: Option<Duration>,
    },

    /// The OAuth 2.0 token endpoint refused the client assertion (RFC 6749 section 5.2:
    /// `{"error", "error_description"}`). Never a login failure in the NLAuth sense: there is
    /// no user to lock out.
    #[error(
        "{call} refused the client assertion (HTTP {status}, OAuth 2.0 error {error}{}): {}",
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        oauth2_hint(error)
    )]
    OAuth2Rejected {
        call: Call,
        status: u16,
        /// The `error` code, sanitised (letters, digits, `_.:-`, at most 64).
        error: String,
        /// The `error_description`, on one line, at most 200 characters, with the client id
        /// taken out.
        description: Option<String>,
    },

    /// A certificate call answered `401`: the bearer access token was refused (expired, not
    /// for this account, or without the `rest_webservices` scope). Ask for a new one.
    #[error(
        "{call} refused the access token (HTTP {status}{detail}): it is expired, unknown to \
         this account or lacks the rest_webservices scope; a new access token is needed"
    )]
    AccessTokenRefused {
        call: Call,
        status: u16,
        detail: NetSuiteDetail,
    },

    #[error("{call} answered HTTP {status}{detail}: {}", status_hint(*call, *status))]
    Rejected {
        call: Call,
        status: u16,
        detail: NetSuiteDetail,
    },

    #[error("{call}: {kind}: {cause}{}", kind.advice())]
    Transport {
        call: Call,
        kind: TransportKind,
        /// The transport library's description, without the URL.
        cause: String,
    },

    #[error("{call} response (HTTP {status}, content type {content_type}): {problem}")]
    BadResponse {
        call: Call,
        status: u16,
        content_type: String,
        problem: BodyProblem,
    },

    #[error("{call}: refused to follow a redirect to host {target_host}: {reason}")]
    RedirectRefused {
        call: Call,
        target_host: String,
        reason: &'static str,
    },

    /// `revoketoken` answered 2xx with a body that is plainly not NetSuite's (an HTML page,
    /// an XML fault): a maintenance, login or proxy page can answer 200 without NetSuite
    /// having revoked anything. NetSuite's own success body is unpublished, so every other 2xx
    /// is taken as success; confirming with `tokeninfo` instead would write a failed login
    /// into the account's Login Audit Trail at every rotation.
    #[error(
        "revoketoken answered HTTP {status} (content type {content_type}) but {problem}: the \
         revocation is not confirmed, the token is treated as still valid, and revoking it \
         will be tried again"
    )]
    RevokeNotConfirmed {
        status: u16,
        content_type: String,
        problem: BodyProblem,
    },
}

/// What an OAuth 2.0 error code from the token endpoint means for this tool.
fn oauth2_hint(error: &str) -> &'static str {
    match error {
        "invalid_client" => {
            "the certificate id, client id, key or clock (iat/exp) was refused; check that the \
             certificate id (kid) belongs to this integration record's client id and is not \
             revoked or expired, that the private key is the certificate's, and this machine's \
             clock (NTP)"
        }
        "invalid_scope" => {
            "a requested scope is not one of restlets, rest_webservices, suite_analytics, or \
             not allowed for this integration record"
        }
        "invalid_grant" => {
            "the assertion was refused as a grant (expired or not yet valid, or the mapping's \
             entity or role is inactive); check the clock and the mapping"
        }
        "unauthorized_client" => {
            "the integration record may not use the client credentials grant: check \
             \"Client Credentials (Machine to Machine) Grant\" on it"
        }
        "unsupported_grant_type" | "invalid_request" => {
            "NetSuite did not accept the request's form: a bug or an incompatible endpoint"
        }
        _ => "an OAuth 2.0 error this tool does not recognise",
    }
}

fn status_hint(call: Call, status: u16) -> &'static str {
    let certificates = matches!(
        call,
        Call::ListCertificates | Call::AddCertificate | Call::RevokeCertificate
    );
    match status {
        400 if call == Call::AddCertificate => {
            "NetSuite refused the certificate (at most five active certificates per client: \
             revoke one first; RSA 3072/4096 or EC P-256/P-384/P-521; not expired; a mapping \
             (entity, role) the integration record has)"
        }
        400 => "NetSuite refused the request as a user error",
        403 if certificates => {
            "forbidden: the access token's role lacks the permission \"Manage own OAuth 2.0 \
             Client Credentials certificates\", or the token belongs to another client id"
        }
        404 if certificates => "not found: check the endpoint base URL and the client id",
        401 if call == Call::M2mToken => {
            "the client assertion was refused without an OAuth 2.0 error code; check the \
             certificate id, client id, key and this machine's clock"
        }
        403 if call == Call::IssueToken => {
            "forbidden: the wrong domain for this account (check the account id and endpoint), \
             or the role lacks the \"User Access Tokens\" permission, or it is a \"Web Services \
             Only\" role, which cannot use RESTlet domains"
        }
        403 => "forbidden: the wrong domain for this account (check the account id and endpoint)",
        404 => "not found: check the endpoint base URL",
        405 => "method not allowed: check the endpoint base URL",
        415 => "unsupported media type",
        300..=399 => "a redirect that was not followed",
        _ => "an answer this tool does not expect",
    }
}

impl NetSuiteError {
    /// Worth retrying soon: timeouts, connection failures, 429, 5xx and `nonce_used`; not an
    /// untrusted TLS certificate.
    pub fn is_transient(&self) -> bool {
        match self {
            NetSuiteError::RateLimited { .. }
            | NetSuiteError::ServerError { .. }
            | NetSuiteError::RevokeNotConfirmed { .. } => true,
            NetSuiteError::Transport { kind, .. } => kind.is_transient(),
            NetSuiteError::OAuthRejected { reason, .. } => *reason == OAuthReason::NonceUsed,
            _ => false,
        }
    }

    /// The account's concurrency limit (`400 SSS_REQUEST_LIMIT_EXCEEDED` or `429`): back off
    /// and try again; the limit is shared with every integration of the account.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, NetSuiteError::RateLimited { .. })
    }

    /// `revoketoken` answered 2xx with a page or fault, not NetSuite's answer.
    pub fn is_revoke_not_confirmed(&self) -> bool {
        matches!(self, NetSuiteError::RevokeNotConfirmed { .. })
    }

    /// NetSuite refused the NLAuth login. Never retry it automatically: failed logins lock
    /// the user out.
    pub fn is_login_failure(&self) -> bool {
        matches!(self, NetSuiteError::LoginFailed { .. })
    }

    /// The request may have reached NetSuite and issued a token whose answer we lost: only for
    /// `issuetoken`, after a timeout once sent, a broken connection, or a 2xx whose body could
    /// not be read as a token. For a certificate add the same, and also a 5xx (NetSuite may
    /// have stored the certificate before failing): list the certificates to find out.
    pub fn may_have_issued(&self) -> bool {
        let issuing = |call: &Call| matches!(call, Call::IssueToken | Call::AddCertificate);
        match self {
            NetSuiteError::Transport { call, kind, .. } => {
                issuing(call) && kind.request_may_have_arrived()
            }
            NetSuiteError::BadResponse { call, status, .. } => {
                issuing(call) && (200..300).contains(status)
            }
            NetSuiteError::ServerError { call, .. } => *call == Call::AddCertificate,
            _ => false,
        }
    }

    /// The OAuth 2.0 error code (`invalid_client`, `invalid_scope`, …) of a refused client
    /// assertion.
    pub fn oauth2_error(&self) -> Option<&str> {
        match self {
            NetSuiteError::OAuth2Rejected { error, .. } => Some(error),
            _ => None,
        }
    }

    /// A certificate call refused the bearer access token (`401`): ask for a new one.
    pub fn access_token_refused(&self) -> bool {
        matches!(self, NetSuiteError::AccessTokenRefused { .. })
    }

    /// `token_rejected`, `consumer_key_refused` and the like: the token does not work, for good.
    pub fn token_refused(&self) -> bool {
        matches!(
            self.oauth_reason(),
            Some(
                OAuthReason::TokenRejected
                    | OAuthReason::ConsumerKeyRefused
                    | OAuthReason::ConsumerKeyUnknown
            )
        )
    }

    /// The OAuth reason of a refused OAuth request.
    pub fn oauth_reason(&self) -> Option<&OAuthReason> {
        match self {
            NetSuiteError::OAuthRejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The call that failed, when the failure belongs to one.
    pub fn call(&self) -> Option<Call> {
        match self {
            NetSuiteError::ClientBuild(_) | NetSuiteError::Totp(_) => None,
            NetSuiteError::InvalidRequest { call, .. }
            | NetSuiteError::LoginFailed { call, .. }
            | NetSuiteError::OAuthRejected { call, .. }
            | NetSuiteError::OAuth2Rejected { call, .. }
            | NetSuiteError::AccessTokenRefused { call, .. }
            | NetSuiteError::RateLimited { call, .. }
            | NetSuiteError::ServerError { call, .. }
            | NetSuiteError::Rejected { call, .. }
            | NetSuiteError::Transport { call, .. }
            | NetSuiteError::BadResponse { call, .. }
            | NetSuiteError::RedirectRefused { call, .. } => Some(*call),
            NetSuiteError::RevokeNotConfirmed { .. } => Some(Call::RevokeToken),
        }
    }

    /// The HTTP status NetSuite answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            NetSuiteError::LoginFailed { status, .. }
            | NetSuiteError::RateLimited { status, .. }
            | NetSuiteError::RevokeNotConfirmed { status, .. }
            | NetSuiteError::OAuthRejected { status, .. }
            | NetSuiteError::OAuth2Rejected { status, .. }
            | NetSuiteError::AccessTokenRefused { status, .. }
            | NetSuiteError::ServerError { status, .. }
            | NetSuiteError::Rejected { status, .. }
            | NetSuiteError::BadResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long NetSuite asked us to wait (`Retry-After`) before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NetSuiteError::RateLimited { retry_after, .. }
            | NetSuiteError::ServerError { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The parts of a non-2xx answer that classification looks at.
pub(crate) struct FailedAnswer<'a> {
    pub status: StatusCode,
    pub www_authenticate: Option<&'a str>,
    pub retry_after: Option<&'a str>,
    /// The body when it could be read within the size cap.
    pub body: Option<&'a [u8]>,
}

/// Turns a non-2xx answer into the error it means for `call`.
pub(crate) fn classify_status(call: Call, answer: &FailedAnswer<'_>) -> NetSuiteError {
    let status = answer.status.as_u16();
    let detail = answer.body.map(error_detail_from_body).unwrap_or_default();
    let retry_after = answer.retry_after.and_then(parse_retry_after);
    let code_says_login = detail
        .code
        .as_deref()
        .is_some_and(|code| code.to_ascii_uppercase().contains("LOGIN"));

    if status == 429 || (status < 500 && detail.code.as_deref().is_some_and(is_request_limit_code))
    {
        return NetSuiteError::RateLimited {
            call,
            status,
            detail,
            retry_after,
        };
    }
    let m2m_certificates = matches!(
        call,
        Call::ListCertificates | Call::AddCertificate | Call::RevokeCertificate
    );
    if call == Call::M2mToken
        && (400..500).contains(&status)
        && let Some((error, description)) = answer.body.and_then(oauth2_error_from_body)
    {
        if is_request_limit_code(&error) {
            return NetSuiteError::RateLimited {
                call,
                status,
                detail: NetSuiteDetail {
                    code: Some(error),
                    message: description,
                },
                retry_after,
            };
        }
        return NetSuiteError::OAuth2Rejected {
            call,
            status,
            error,
            description,
        };
    }
    if m2m_certificates && status == 401 {
        return NetSuiteError::AccessTokenRefused {
            call,
            status,
            detail,
        };
    }
    if call == Call::IssueToken && (status == 401 || (code_says_login && status < 500)) {
        return NetSuiteError::LoginFailed {
            call,
            status,
            detail,
        };
    }
    match status {
        // OAuth 1.0 reasons mean nothing to the token endpoint: a 401 without an OAuth 2.0
        // error is a plain refusal there.
        401 if call == Call::M2mToken => NetSuiteError::Rejected {
            call,
            status,
            detail,
        },
        401 => NetSuiteError::OAuthRejected {
            call,
            status,
            reason: answer
                .www_authenticate
                .and_then(oauth_error_param)
                .map(|reason| OAuthReason::parse(&reason))
                .unwrap_or(OAuthReason::Unspecified),
            detail,
        },
        500..=599 => NetSuiteError::ServerError {
            call,
            status,
            detail,
            retry_after,
        },
        _ => NetSuiteError::Rejected {
            call,
            status,
            detail,
        },
    }
}

/// The `error` auth-param of an `OAuth` challenge in a `WWW-Authenticate` value such as
/// `OAuth realm="123456", error="token_rejected"`. Tolerates unquoted values, odd spacing and
/// other challenges before the OAuth one.
pub(crate) fn oauth_error_param(www_authenticate: &str) -> Option<String> {
    let start = find_ascii_case_insensitive(www_authenticate, "oauth")?;
    let params = &www_authenticate[start + "oauth".len()..];
    parse_auth_params(params)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("error"))
        .map(|(_, value)| value)
}

/// The RFC 6749 section 5.2 error of a token endpoint answer: `{"error": "<code>",
/// "error_description": "<text>"}`, sanitised. `None` when `error` is not a string (NetSuite's
/// own `{"error": {"code", …}}` objects go through [`error_detail_from_body`]).
pub(crate) fn oauth2_error_from_body(body: &[u8]) -> Option<(String, Option<String>)> {
    let value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let error = sanitize_token(value.get("error")?.as_str()?, 64);
    if error.is_empty() {
        return None;
    }
    let description = value
        .get("error_description")
        .and_then(serde_json::Value::as_str)
        .map(sanitize_message)
        .filter(|d| !d.is_empty());
    Some((error, description))
}

fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `SSS_REQUEST_LIMIT_EXCEEDED`, the code of the account concurrency limit (RESTlet domains
/// send it with status 400). Public clients key on the code, not the status; so does this.
fn is_request_limit_code(code: &str) -> bool {
    code.eq_ignore_ascii_case("SSS_REQUEST_LIMIT_EXCEEDED")
}

/// `name=value` / `name="quoted \" value"` pairs separated by commas (RFC 7235 auth-params).
fn parse_auth_params(input: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let name: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if name.is_empty() {
            return params;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    _ => value.push(c),
                }
            }
            chars.by_ref().take_while(|c| *c != ',').for_each(drop);
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
            value = value.trim().to_string();
        }
        params.push((name, value));
    }
}

fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Finds NetSuite's error code and message in a JSON error body: `{"error":{"code","message"}}`
/// at the top or nested inside another object, or REST-style `o:errorCode`/`detail`. Anything
/// else (HTML, empty, other JSON) gives an empty detail.
pub(crate) fn error_detail_from_body(body: &[u8]) -> NetSuiteDetail {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return NetSuiteDetail::default();
    };
    find_error_object(&value, 0).unwrap_or_default()
}

fn find_error_object(value: &serde_json::Value, depth: usize) -> Option<NetSuiteDetail> {
    const MAX_DEPTH: usize = 6;
    if depth > MAX_DEPTH {
        return None;
    }
    match value {
        serde_json::Value::Object(map) => {
            let field = |names: &[&str]| {
                map.iter()
                    .find(|(key, _)| names.iter().any(|name| key.eq_ignore_ascii_case(name)))
                    .and_then(|(_, value)| value.as_str())
            };
            let code = field(&["code", "o:errorCode"]).map(|code| sanitize_token(code, 64));
            let message = field(&["message", "detail"]).map(sanitize_message);
            if code.is_some() {
                return Some(NetSuiteDetail { code, message });
            }
            // Prefer an `error` member, then any other nested object.
            let error_first = map
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case("error"))
                .chain(
                    map.iter()
                        .filter(|(key, _)| !key.eq_ignore_ascii_case("error")),
                );
            error_first
                .filter_map(|(_, nested)| find_error_object(nested, depth + 1))
                .next()
        }
        serde_json::Value::Array(items) => items
            .iter()
            .take(8)
            .find_map(|item| find_error_object(item, depth + 1)),
        _ => None,
    }
}

/// Keeps a code-like string short and free of anything but `A-Z a-z 0-9 _ . : -`.
fn sanitize_token(raw: &str, limit: usize) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
        .take(limit)
        .collect()
}

/// Keeps an error message on one line and at most 200 characters.
fn sanitize_message(raw: &str) -> String {
    const LIMIT: usize = 200;
    let mut message: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(LIMIT)
        .collect();
    if raw.chars().count() > LIMIT {
        message.push('…');
    }
    message.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer<'a>(status: u16, www: Option<&'a str>, body: Option<&'a [u8]>) -> FailedAnswer<'a> {
        FailedAnswer {
            status: StatusCode::from_u16(status).unwrap(),
            www_authenticate: www,
            retry_after: None,
            body,
        }
    }

    #[test]
    fn every_published_oauth_reason_is_recognised() {
        let cases = [
            (
                "consumer_key_refused",
                OAuthReason::ConsumerKeyRefused,
                false,
                true,
            ),
            (
                "consumer_key_unknown",
                OAuthReason::ConsumerKeyUnknown,
                false,
                true,
            ),
            ("token_rejected", OAuthReason::TokenRejected, false, true),
            ("nonce_rejected", OAuthReason::NonceRejected, false, false),
            ("nonce_used", OAuthReason::NonceUsed, true, false),
            (
                "timestamp_refused",
                OAuthReason::TimestampRefused,
                false,
                false,
            ),
            (
                "signature_invalid",
                OAuthReason::SignatureInvalid,
                false,
                false,
            ),
            (
                "FeatureDisabled",
                OAuthReason::FeatureDisabled,
                false,
                false,
            ),
            (
                "something_new",
                OAuthReason::Other("something_new".into()),
                false,
                false,
            ),
        ];
        for (reason, expected, transient, refused) in cases {
            let header = format!("OAuth realm=\"123456_SB1\", error=\"{reason}\"");
            let err = classify_status(Call::TokenInfo, &answer(401, Some(&header), None));
            assert_eq!(err.oauth_reason(), Some(&expected), "{reason}");
            assert_eq!(err.is_transient(), transient, "{reason}");
            assert_eq!(err.token_refused(), refused, "{reason}");
            assert!(!err.is_login_failure());
            assert!(!err.may_have_issued());
            assert!(err.to_string().contains("tokeninfo"), "{err}");
        }
    }

    #[test]
    fn timestamp_refused_says_check_the_clock() {
        let err = classify_status(
            Call::TokenInfo,
            &answer(
                401,
                Some("OAuth realm=\"1\", error=\"timestamp_refused\""),
                None,
            ),
        );
        assert!(err.to_string().contains("check the clock"), "{err}");
    }

    #[test]
    fn auth_params_parse_tolerantly() {
        let cases = [
            (
                "OAuth realm=\"1\", error=\"nonce_used\"",
                Some("nonce_used"),
            ),
            ("OAuth error=nonce_used, realm=1", Some("nonce_used")),
            (
                "oauth realm=\"a, \\\"b\", error = \"token_rejected\" ",
                Some("token_rejected"),
            ),
            (
                "Basic realm=\"x\", OAuth realm=\"y\",error=\"FeatureDisabled\"",
                Some("FeatureDisabled"),
            ),
            ("OAuth realm=\"1\"", None),
            ("Bearer", None),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(oauth_error_param(header).as_deref(), expected, "{header}");
        }
    }

    #[test]
    fn missing_reason_is_unspecified_and_permanent() {
        let err = classify_status(Call::RevokeToken, &answer(401, None, None));
        assert_eq!(err.oauth_reason(), Some(&OAuthReason::Unspecified));
        assert!(!err.is_transient());
        assert!(!err.token_refused());
    }

    #[test]
    fn odd_reasons_are_sanitised() {
        let reason = OAuthReason::parse(
            "bad\"<script>reason with spaces and a very long tail that goes on and on and on",
        );
        let OAuthReason::Other(text) = reason else {
            panic!("not Other")
        };
        assert!(text.len() <= 64);
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)),
            "{text}"
        );
    }

    #[test]
    fn issuetoken_401_is_a_login_failure_with_lockout_warning() {
        let body =
            br#"{"error":{"code":"INVALID_LOGIN_ATTEMPT","message":"Invalid login attempt."}}"#;
        let err = classify_status(Call::IssueToken, &answer(401, None, Some(body)));
        assert!(err.is_login_failure());
        assert!(!err.is_transient());
        assert!(!err.may_have_issued());
        let message = err.to_string();
        assert!(
            message.contains("INVALID_LOGIN_ATTEMPT: Invalid login attempt."),
            "{message}"
        );
        assert!(message.contains("lock"), "{message}");
    }

    #[test]
    fn status_classes() {
        let rate = classify_status(
            Call::TokenInfo,
            &FailedAnswer {
                retry_after: Some("7"),
                ..answer(
                    429,
                    None,
                    Some(br#"{"error":{"code":"SSS_REQUEST_LIMIT_EXCEEDED","message":"x"}}"#),
                )
            },
        );
        assert!(rate.is_transient());
        assert_eq!(rate.retry_after(), Some(Duration::from_secs(7)));
        assert!(rate.to_string().contains("SSS_REQUEST_LIMIT_EXCEEDED"));

        for status in [500, 502, 503, 504] {
            let err = classify_status(Call::IssueToken, &answer(status, None, Some(b"<html>")));
            assert!(err.is_transient(), "{status}");
            assert!(!err.may_have_issued(), "{status}");
            assert!(!err.is_login_failure(), "{status}");
        }
        for status in [400, 403, 404, 405, 415] {
            let body = br#"{"error":{"code":"SOME_CODE","message":"Some message."}}"#;
            let err = classify_status(Call::TokenInfo, &answer(status, None, Some(body)));
            assert!(!err.is_transient(), "{status}");
            assert_eq!(err.status(), Some(status));
            assert!(
                err.to_string().contains("SOME_CODE: Some message."),
                "{err}"
            );
        }
    }

    #[test]
    fn error_details_are_found_in_various_shapes() {
        let cases: [(&[u8], Option<&str>, Option<&str>); 6] = [
            (
                br#"{"error":{"code":"A","message":"m"}}"#,
                Some("A"),
                Some("m"),
            ),
            (
                br#"{"outer":{"error":{"code":"B","message":"n"}}}"#,
                Some("B"),
                Some("n"),
            ),
            (
                br#"{"type":"x","o:errorDetails":[{"detail":"d","o:errorCode":"C"}]}"#,
                Some("C"),
                Some("d"),
            ),
            (br#"{"error":{"code":"D"}}"#, Some("D"), None),
            (b"<html><body>Maintenance</body></html>", None, None),
            (b"", None, None),
        ];
        for (body, code, message) in cases {
            let detail = error_detail_from_body(body);
            assert_eq!(detail.code.as_deref(), code);
            assert_eq!(detail.message.as_deref(), message);
        }
    }

    #[test]
    fn error_messages_are_bounded_and_single_line() {
        let long = "x".repeat(5000);
        let body = format!(r#"{{"error":{{"code":"E\nVIL","message":"line1\nline2{long}"}}}}"#);
        let detail = error_detail_from_body(body.as_bytes());
        assert_eq!(detail.code.as_deref(), Some("EVIL"));
        let message = detail.message.unwrap();
        assert!(!message.contains('\n'));
        assert!(message.chars().count() <= 201);
    }

    #[test]
    fn may_have_issued_only_for_issuetoken_after_sending() {
        let transport = |call, kind| NetSuiteError::Transport {
            call,
            kind,
            cause: String::new(),
        };
        assert!(transport(Call::IssueToken, TransportKind::Timeout).may_have_issued());
        assert!(transport(Call::IssueToken, TransportKind::ConnectionLost).may_have_issued());
        assert!(!transport(Call::IssueToken, TransportKind::Connect).may_have_issued());
        assert!(!transport(Call::IssueToken, TransportKind::ConnectTimeout).may_have_issued());
        assert!(!transport(Call::IssueToken, TransportKind::TlsCertificate).may_have_issued());
        assert!(!transport(Call::TokenInfo, TransportKind::Timeout).may_have_issued());
        let bad = |status| NetSuiteError::BadResponse {
            call: Call::IssueToken,
            status,
            content_type: "text/html".into(),
            problem: BodyProblem::Html,
        };
        assert!(bad(200).may_have_issued());
        assert!(!bad(302).may_have_issued());
    }

    #[test]
    fn token_endpoint_refusals_name_the_oauth2_error() {
        let body = br#"{"error":"invalid_client","error_description":"client_assertion header kid: certificate \"C1\" was revoked"}"#;
        let err = classify_status(Call::M2mToken, &answer(400, None, Some(body)));
        assert_eq!(err.oauth2_error(), Some("invalid_client"));
        assert!(!err.is_transient() && !err.is_login_failure() && !err.may_have_issued());
        let message = err.to_string();
        for needed in [
            "token",
            "HTTP 400",
            "invalid_client",
            "was revoked",
            "certificate id",
        ] {
            assert!(message.contains(needed), "{needed}: {message}");
        }
        let scope = classify_status(
            Call::M2mToken,
            &answer(400, None, Some(br#"{"error":"invalid_scope"}"#)),
        );
        assert!(
            scope.to_string().contains("restlets, rest_webservices"),
            "{scope}"
        );
        let limit = classify_status(
            Call::M2mToken,
            &answer(
                400,
                None,
                Some(br#"{"error":"SSS_REQUEST_LIMIT_EXCEEDED"}"#),
            ),
        );
        assert!(limit.is_rate_limited(), "{limit}");
        let bare = classify_status(Call::M2mToken, &answer(401, None, None));
        assert!(
            bare.oauth_reason().is_none() && !bare.is_login_failure(),
            "{bare}"
        );
        let server = classify_status(Call::M2mToken, &answer(503, None, Some(b"<html>")));
        assert!(server.is_transient() && !server.may_have_issued());
    }

    #[test]
    fn certificate_call_statuses() {
        let rest = |code: &str, detail: &str| {
            format!(
                r#"{{"type":"t","title":"x","status":0,"o:errorDetails":[{{"detail":"{detail}","o:errorCode":"{code}"}}]}}"#
            )
        };
        for call in [
            Call::ListCertificates,
            Call::AddCertificate,
            Call::RevokeCertificate,
        ] {
            let body = rest("INVALID_LOGIN", "The access token expired.");
            let err = classify_status(call, &answer(401, None, Some(body.as_bytes())));
            assert!(err.access_token_refused(), "{err}");
            assert!(!err.is_login_failure() && !err.is_transient());
            assert!(
                err.to_string().contains("The access token expired."),
                "{err}"
            );
            let err = classify_status(call, &answer(403, None, None));
            assert!(
                err.to_string()
                    .contains("Manage own OAuth 2.0 Client Credentials certificates"),
                "{err}"
            );
            assert!(!err.is_login_failure());
        }
        let body = rest(
            "INVALID_REQUEST",
            "The client already has 5 active certificates.",
        );
        let err = classify_status(
            Call::AddCertificate,
            &answer(400, None, Some(body.as_bytes())),
        );
        let message = err.to_string();
        assert!(
            message.contains("INVALID_REQUEST: The client already has 5"),
            "{message}"
        );
        assert!(message.contains("revoke one first"), "{message}");
        assert!(!err.may_have_issued());
        // An add that failed on NetSuite's side may have stored the certificate.
        let err = classify_status(Call::AddCertificate, &answer(500, None, None));
        assert!(err.is_transient() && err.may_have_issued());
        let err = classify_status(Call::RevokeCertificate, &answer(500, None, None));
        assert!(err.is_transient() && !err.may_have_issued());
        let lost = NetSuiteError::Transport {
            call: Call::AddCertificate,
            kind: TransportKind::Timeout,
            cause: String::new(),
        };
        assert!(lost.may_have_issued());
    }

    #[test]
    fn an_untrusted_certificate_is_permanent_and_says_what_to_do() {
        let err = NetSuiteError::Transport {
            call: Call::TokenInfo,
            kind: TransportKind::TlsCertificate,
            cause: "127.0.0.1:1: invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(!err.is_transient());
        assert!(!err.may_have_issued());
        let message = err.to_string();
        for needed in [
            "TLS certificate not trusted",
            "`endpoint`",
            "SSL_CERT_FILE",
            "not sent",
        ] {
            assert!(message.contains(needed), "{needed}: {message}");
        }
        let connect = NetSuiteError::Transport {
            call: Call::TokenInfo,
            kind: TransportKind::Connect,
            cause: String::new(),
        };
        assert!(connect.is_transient());
        assert!(!connect.to_string().contains("SSL_CERT_FILE"));
    }
}
