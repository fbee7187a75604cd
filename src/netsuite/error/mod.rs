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

use super::totp::TotpError;

mod classify;
mod parts;

pub(crate) use classify::*;
pub use parts::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

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
