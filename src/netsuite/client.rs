//! The HTTP client for NetSuite's token services: one `reqwest` connection pool per process,
//! bounded bodies, a redirect policy that only follows NetSuite, retries where they are safe,
//! and a tracing span per HTTP exchange following the OpenTelemetry HTTP-client conventions
//! (method, redacted URL, server, status; never headers or query values).

use std::sync::Arc;

use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{StatusCode, Url, redirect};
use secrecy::ExposeSecret;
use tracing::Instrument as _;
use zeroize::Zeroizing;

use super::calls::CallCounts;
use super::encode::percent_encode;
use super::error::{
    BodyProblem, Call, FailedAnswer, NetSuiteError, TransportKind, classify_status,
};
use super::http_span;
use super::response::{
    check_revocation_body, parse_datacenter_urls, parse_issued_token, parse_token_info,
};
use super::retry::with_retries;
use super::{
    AccountId, ClientOptions, DataCenterUrls, Endpoint, IssuedToken, NlauthLogin, Revoked,
    TbaCredentials, TokenInfo, nlauth, oauth1, totp,
};
use crate::secret::SecretString;

/// Redirect hops followed at most (a wrong-data-center `302` needs one).
const MAX_REDIRECTS: usize = 3;

/// One per process: holds the connection pool.
#[derive(Clone)]
pub struct NetSuiteClient {
    pub(super) http: reqwest::Client,
    pub(super) options: Arc<ClientOptions>,
    pub(super) counts: Arc<CallCounts>,
}

impl std::fmt::Debug for NetSuiteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetSuiteClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// An answer as read off the wire, before the endpoint interprets it.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) content_type: String,
    pub(super) www_authenticate: Option<String>,
    pub(super) retry_after: Option<String>,
    pub(super) body: Result<Zeroizing<Vec<u8>>, BodyFailure>,
}

/// What a request sends besides its URL and `Authorization`: the token services are `GET`s;
/// the OAuth 2.0 token and certificate calls `POST` a body.
pub(super) enum Request {
    Get,
    Post {
        content_type: &'static str,
        /// Zeroed when reqwest lets go of it (a client assertion is a credential for 55
        /// minutes).
        body: bytes::Bytes,
    },
}

impl Request {
    pub(super) fn post(content_type: &'static str, body: Zeroizing<Vec<u8>>) -> Request {
        Request::Post {
            content_type,
            body: bytes::Bytes::from_owner(body),
        }
    }
}

pub(super) enum BodyFailure {
    TooLarge { limit: usize },
    Broken(NetSuiteError),
}

impl NetSuiteClient {
    pub fn new(options: ClientOptions) -> Result<NetSuiteClient, NetSuiteError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "netsuite-token-rotator/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            // Redirects are followed by `exchange`, which re-authorises each hop.
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|err| NetSuiteError::ClientBuild(error_chain(&err.without_url())))?;
        Ok(NetSuiteClient {
            http,
            options: Arc::new(options),
            counts: Arc::default(),
        })
    }

    /// The settings this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Attempts so far by call and result, shared by every clone of this client.
    pub fn call_counts(&self) -> Arc<CallCounts> {
        self.counts.clone()
    }

    /// `GET /rest/issuetoken` with NLAuth (+ `nlauth_otp` when the login has a TOTP secret).
    /// Retries only failures that certainly issued nothing; never a login failure.
    pub async fn issue_token(
        &self,
        endpoint: &Endpoint,
        account: &AccountId,
        login: &NlauthLogin,
        consumer_key: &SecretString,
        token_name: &str,
    ) -> Result<IssuedToken, NetSuiteError> {
        let call = Call::IssueToken;
        let url = self.url(
            call,
            &endpoint.base_url,
            &format!(
                "rest/issuetoken?consumerKey={}&name={}",
                percent_encode(consumer_key.expose_secret()),
                percent_encode(token_name)
            ),
        )?;
        let url = &url;
        with_retries(&self.options, &self.counts, call, |attempt| async move {
            // The code is computed per attempt: it must be current when NetSuite checks it.
            let otp = login
                .totp_secret
                .as_ref()
                .map(totp::totp_code_now)
                .transpose()?;
            let header = nlauth::nlauth_header(account, login, otp.as_deref());
            // NLAuth does not depend on the URL: the same header goes with every hop.
            let authorize = |_: &Url| Ok(Some(header.clone()));
            let answer = self.exchange(call, url, &authorize, attempt).await?;
            let body = expect_success(call, answer)?;
            parse_issued_token(&body.bytes, &body.content_type).map_err(|p| body.problem(call, p))
        })
        .await
    }

    /// `GET /rest/revoketoken`, OAuth-signed by the token being revoked.
    /// `Ok(Revoked::AlreadyInvalid)` when NetSuite answers `token_rejected` (revoked or unknown).
    ///
    /// NetSuite's success body is unpublished, so any 2xx counts as revoked, except one whose
    /// body is plainly not NetSuite's: an HTML page or an XML fault (a maintenance, login or
    /// proxy page can answer 200 without revoking anything), broken JSON, binary bytes. That is
    /// [`NetSuiteError::RevokeNotConfirmed`], retried here and then by the caller. The token is
    /// not probed with `tokeninfo` afterwards: a call made to fail is a failed login in the
    /// account's Login Audit Trail, at every rotation.
    pub async fn revoke_token(
        &self,
        endpoint: &Endpoint,
        account: &AccountId,
        creds: &TbaCredentials,
    ) -> Result<Revoked, NetSuiteError> {
        let call = Call::RevokeToken;
        let url = self.url(
            call,
            &endpoint.base_url,
            &format!(
                "rest/revoketoken?consumerKey={}&token={}",
                percent_encode(creds.consumer_key.expose_secret()),
                percent_encode(&creds.token_id)
            ),
        )?;
        let url = &url;
        with_retries(&self.options, &self.counts, call, |attempt| async move {
            let authorize = |hop: &Url| oauth_header(call, hop, account, creds).map(Some);
            let answer = self.exchange(call, url, &authorize, attempt).await?;
            if answer.status.is_success() {
                return revocation_answer(answer);
            }
            let err = failure(call, &answer);
            if err.oauth_reason() == Some(&super::OAuthReason::TokenRejected) {
                return Ok(Revoked::AlreadyInvalid);
            }
            Err(err)
        })
        .await
    }

    /// `GET /rest/tokeninfo`, OAuth-signed by the token to check.
    pub async fn token_info(
        &self,
        endpoint: &Endpoint,
        account: &AccountId,
        creds: &TbaCredentials,
    ) -> Result<TokenInfo, NetSuiteError> {
        let call = Call::TokenInfo;
        let url = self.url(call, &endpoint.base_url, "rest/tokeninfo")?;
        let url = &url;
        with_retries(&self.options, &self.counts, call, |attempt| async move {
            let authorize = |hop: &Url| oauth_header(call, hop, account, creds).map(Some);
            let answer = self.exchange(call, url, &authorize, attempt).await?;
            let body = expect_success(call, answer)?;
            parse_token_info(&body.bytes, &body.content_type).map_err(|p| body.problem(call, p))
        })
        .await
    }

    /// `GET <datacenter_base>/rest/datacenterurls?account=<id>`, no authentication. The id goes
    /// in its underscore, uppercase form (`1234567_SB1`: the hyphen form is refused). A
    /// plain-text "Service Unavailable" answer is asked once more with `&c=<id>`, as NetSuite's
    /// help advises.
    pub async fn datacenter_urls(
        &self,
        account: &AccountId,
    ) -> Result<DataCenterUrls, NetSuiteError> {
        let id = percent_encode(account.realm());
        match self
            .datacenter_urls_at(&format!("rest/datacenterurls?account={id}"))
            .await
        {
            Err(err) if is_service_unavailable_text(&err) => {
                tracing::info!(
                    "datacenterurls answered a plain-text \"Service Unavailable\"; asking again with c={}",
                    account.realm()
                );
                self.datacenter_urls_at(&format!("rest/datacenterurls?account={id}&c={id}"))
                    .await
            }
            other => other,
        }
    }

    async fn datacenter_urls_at(
        &self,
        path_and_query: &str,
    ) -> Result<DataCenterUrls, NetSuiteError> {
        let call = Call::DataCenterUrls;
        let url = self.url(call, &self.options.datacenter_base, path_and_query)?;
        let url = &url;
        with_retries(&self.options, &self.counts, call, |attempt| async move {
            let answer = self
                .exchange(call, url, &|_: &Url| Ok(None), attempt)
                .await?;
            if let Ok(body) = &answer.body
                && says_service_unavailable(body)
            {
                return Err(NetSuiteError::BadResponse {
                    call,
                    status: answer.status.as_u16(),
                    content_type: answer.content_type.clone(),
                    problem: BodyProblem::ServiceUnavailableText,
                });
            }
            let body = expect_success(call, answer)?;
            parse_datacenter_urls(&body.bytes, &body.content_type)
                .map_err(|p| body.problem(call, p))
        })
        .await
    }

    /// Goes as far towards the endpoint as can be gone without a credential: DNS, TCP and, for
    /// `https`, the TLS handshake with the certificate verified as the token calls verify it.
    /// Sends `HEAD` of the base URL with no `Authorization` and no query, once; any HTTP answer
    /// is success. For `check`: a TCP probe alone calls a server with an untrusted certificate
    /// reachable.
    pub async fn probe(&self, endpoint: &Endpoint) -> Result<(), NetSuiteError> {
        let call = Call::Probe;
        let url = self.url(call, &endpoint.base_url, "")?;
        self.http
            .head(url)
            .send()
            .await
            .map(drop)
            .map_err(|err| transport_error(call, &err))
    }

    pub(super) fn url(
        &self,
        call: Call,
        base: &str,
        path_and_query: &str,
    ) -> Result<Url, NetSuiteError> {
        let base = base.trim().trim_end_matches('/');
        let url = Url::parse(&format!("{base}/{path_and_query}")).map_err(|_| {
            NetSuiteError::InvalidRequest {
                call,
                problem: format!("the endpoint base URL {base:?} is not an absolute http(s) URL"),
            }
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(NetSuiteError::InvalidRequest {
                call,
                problem: format!("the endpoint base URL {base:?} is not an absolute http(s) URL"),
            });
        }
        Ok(url)
    }

    /// One logical exchange: send, follow allowed redirects (each hop authorised afresh by
    /// `authorize`, because an OAuth signature covers the URL), then read the final body up to
    /// the cap. Transport failures before an answer are errors; everything after the final
    /// status line is left for the caller to judge.
    async fn exchange(
        &self,
        call: Call,
        url: &Url,
        authorize: &Authorize<'_>,
        attempt: u32,
    ) -> Result<Answer, NetSuiteError> {
        self.exchange_with(call, url, &Request::Get, authorize, attempt)
            .await
    }

    /// [`Self::exchange`] with a method and body. Only a `GET` follows redirects: a `POST`'s
    /// body (an assertion bound to the token URL, a certificate) goes to the URL asked for or
    /// nowhere, and a 3xx is judged as a status.
    pub(super) async fn exchange_with(
        &self,
        call: Call,
        url: &Url,
        request: &Request,
        authorize: &Authorize<'_>,
        attempt: u32,
    ) -> Result<Answer, NetSuiteError> {
        let mut current = url.clone();
        for hop in 0.. {
            let authorization = authorize(&current)?;
            match self
                .send_once(call, &current, request, authorization, attempt, hop)
                .await?
            {
                Hop::Answer(answer) => return Ok(answer),
                Hop::Redirect(target) => {
                    check_redirect(call, url, &target, hop + 1)?;
                    current = target;
                }
            }
        }
        unreachable!("the redirect loop ends in an answer or an error")
    }

    /// One HTTP request, in its own span.
    async fn send_once(
        &self,
        call: Call,
        url: &Url,
        request: &Request,
        authorization: Option<SecretString>,
        attempt: u32,
        hop: usize,
    ) -> Result<Hop, NetSuiteError> {
        // OpenTelemetry HTTP-client conventions; the query values (consumer key, token id) and
        // the client id in a certificate path are redacted in `url.full`. The span's name is
        // the method, which `tracing` needs as a literal.
        macro_rules! http_span {
            ($method:literal) => {
                tracing::info_span!(
                    $method,
                    otel.kind = "client",
                    otel.status_code = tracing::field::Empty,
                    http.request.method = $method,
                    url.full = %http_span::redacted_url(url),
                    server.address = url.host_str().unwrap_or_default(),
                    server.port = url.port_or_known_default().map(u64::from),
                    http.request.resend_count = tracing::field::Empty,
                    http.response.status_code = tracing::field::Empty,
                    error.type = tracing::field::Empty,
                    netsuite.call = %call,
                )
            };
        }
        let span = match request {
            Request::Get => http_span!("GET"),
            Request::Post { .. } => http_span!("POST"),
        };
        let resends = (attempt as usize).saturating_sub(1) + hop;
        if resends > 0 {
            span.record("http.request.resend_count", resends as u64);
        }
        async {
            let mut builder = match request {
                Request::Get => self.http.get(url.clone()),
                Request::Post { content_type, body } => self
                    .http
                    .post(url.clone())
                    .header(CONTENT_TYPE, *content_type)
                    .body(body.clone()),
            };
            if let Some(value) = authorization {
                let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
                    NetSuiteError::InvalidRequest {
                        call,
                        problem: "the Authorization header has characters HTTP cannot carry"
                            .to_string(),
                    }
                })?;
                value.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, value);
            }
            let mut response = builder.send().await.map_err(|err| {
                let error = transport_error(call, &err);
                if let NetSuiteError::Transport { kind, .. } = &error {
                    http_span::record_transport_error(&tracing::Span::current(), *kind);
                }
                error
            })?;
            let status = response.status();
            http_span::record_response_status(&tracing::Span::current(), status.as_u16());
            if matches!(request, Request::Get)
                && let Some(target) = redirect_target(&response, url)
            {
                return Ok(Hop::Redirect(target));
            }
            let header_text = |name| {
                response
                    .headers()
                    .get_all(name)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let content_type = sanitize_content_type(&header_text(CONTENT_TYPE));
            let www_authenticate = Some(header_text(WWW_AUTHENTICATE)).filter(|v| !v.is_empty());
            let retry_after = Some(header_text(RETRY_AFTER)).filter(|v| !v.is_empty());
            let body = read_capped(call, &mut response, self.options.max_body_bytes).await;
            if let Err(BodyFailure::Broken(NetSuiteError::Transport { kind, .. })) = &body {
                http_span::record_transport_error(&tracing::Span::current(), *kind);
            }
            Ok(Hop::Answer(Answer {
                status,
                content_type,
                www_authenticate,
                retry_after,
                body,
            }))
        }
        .instrument(span)
        .await
    }
}

/// Gives the `Authorization` value for a request to the URL (`None`: no authentication).
pub(super) type Authorize<'a> =
    dyn Fn(&Url) -> Result<Option<SecretString>, NetSuiteError> + Sync + 'a;

/// Where one HTTP request led.
enum Hop {
    Answer(Answer),
    Redirect(Url),
}

/// The target of a redirect answer, resolved against the URL that answered; `None` for any
/// other answer (a 3xx without a usable `Location` is then judged as a status).
fn redirect_target(response: &reqwest::Response, url: &Url) -> Option<Url> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    url.join(location).ok()
}

/// Follows at most [`MAX_REDIRECTS`] hops, and only to `https` NetSuite hosts or to the host
/// the request started on (an endpoint override: a simulator or proxy). A wrong-data-center
/// `302` stays inside NetSuite; anything else would hand our credentials to a stranger.
fn check_redirect(call: Call, origin: &Url, target: &Url, hop: usize) -> Result<(), NetSuiteError> {
    let refuse = |reason| {
        Err(NetSuiteError::RedirectRefused {
            call,
            target_host: target.host_str().unwrap_or("(no host)").to_string(),
            reason,
        })
    };
    if hop > MAX_REDIRECTS {
        return refuse("more than 3 redirects");
    }
    let host = target.host_str().unwrap_or_default().to_ascii_lowercase();
    let is_netsuite = host == "netsuite.com" || host.ends_with(".netsuite.com");
    if is_netsuite && target.scheme() == "https" {
        return Ok(());
    }
    let same_host = origin.host_str() == target.host_str();
    let no_downgrade = origin.scheme() == "http" || target.scheme() == "https";
    if same_host && no_downgrade {
        return Ok(());
    }
    if is_netsuite {
        return refuse("NetSuite redirects are only followed over https");
    }
    refuse("only NetSuite hosts (https, under netsuite.com) or the original host are followed")
}

/// A 2xx from `revoketoken`: revoked, unless the body is plainly not NetSuite's (see
/// [`check_revocation_body`]).
fn revocation_answer(answer: Answer) -> Result<Revoked, NetSuiteError> {
    let (status, content_type) = (answer.status.as_u16(), answer.content_type);
    let problem = match answer.body {
        Ok(body) => check_revocation_body(&body, &content_type).err(),
        Err(BodyFailure::TooLarge { limit }) => Some(BodyProblem::TooLarge { limit }),
        Err(BodyFailure::Broken(err)) => return Err(err),
    };
    match problem {
        None => Ok(Revoked::Now),
        Some(problem) => Err(NetSuiteError::RevokeNotConfirmed {
            status,
            content_type,
            problem,
        }),
    }
}

/// A plain-text (neither JSON nor markup) body saying "Service Unavailable": what
/// `datacenterurls` has been seen to answer when it wants the `c` parameter.
fn says_service_unavailable(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    let plain = !trimmed.starts_with(b"{") && !trimmed.starts_with(b"<");
    let needle = b"service unavailable";
    plain
        && trimmed
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

fn is_service_unavailable_text(err: &NetSuiteError) -> bool {
    matches!(
        err,
        NetSuiteError::BadResponse {
            problem: BodyProblem::ServiceUnavailableText,
            ..
        }
    )
}

/// A 2xx body that was read completely.
pub(super) struct SuccessBody {
    pub(super) status: StatusCode,
    pub(super) content_type: String,
    pub(super) bytes: Zeroizing<Vec<u8>>,
}

impl SuccessBody {
    pub(super) fn problem(&self, call: Call, problem: BodyProblem) -> NetSuiteError {
        NetSuiteError::BadResponse {
            call,
            status: self.status.as_u16(),
            content_type: self.content_type.clone(),
            problem,
        }
    }
}

/// Passes a complete 2xx body on; turns anything else into the error it means.
pub(super) fn expect_success(call: Call, answer: Answer) -> Result<SuccessBody, NetSuiteError> {
    if !answer.status.is_success() {
        return Err(failure(call, &answer));
    }
    match answer.body {
        Ok(bytes) => Ok(SuccessBody {
            status: answer.status,
            content_type: answer.content_type,
            bytes,
        }),
        Err(BodyFailure::TooLarge { limit }) => Err(NetSuiteError::BadResponse {
            call,
            status: answer.status.as_u16(),
            content_type: answer.content_type,
            problem: BodyProblem::TooLarge { limit },
        }),
        Err(BodyFailure::Broken(err)) => Err(err),
    }
}

/// The error a non-2xx answer means; its body is consulted only when it was read in full.
pub(super) fn failure(call: Call, answer: &Answer) -> NetSuiteError {
    classify_status(
        call,
        &FailedAnswer {
            status: answer.status,
            www_authenticate: answer.www_authenticate.as_deref(),
            retry_after: answer.retry_after.as_deref(),
            body: answer.body.as_ref().ok().map(|body| body.as_slice()),
        },
    )
}

fn oauth_header(
    call: Call,
    url: &Url,
    account: &AccountId,
    creds: &TbaCredentials,
) -> Result<SecretString, NetSuiteError> {
    oauth1::authorization_header_for_url(
        "GET",
        url,
        account.realm(),
        creds,
        oauth1::unix_now(),
        &oauth1::new_nonce(),
    )
    .map(SecretString::from)
    .map_err(|err| NetSuiteError::InvalidRequest {
        call,
        problem: err.to_string(),
    })
}

/// Reads the body chunk by chunk and gives up as soon as it passes `limit` bytes (at once, when
/// `Content-Length` already says so), so a runaway answer costs at most `limit` bytes of memory.
async fn read_capped(
    call: Call,
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BodyFailure> {
    const INITIAL_CAPACITY: usize = 16 * 1024;
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(BodyFailure::TooLarge { limit });
    }
    // Reserve what the answer announced so the buffer (which may hold a token secret, and is
    // zeroed on drop) does not leave copies behind when it grows.
    let capacity = announced.map_or(INITIAL_CAPACITY, |length| length as usize);
    let mut body = Zeroizing::new(Vec::with_capacity(capacity.min(limit)));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| BodyFailure::Broken(transport_error(call, &err)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyFailure::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps a `reqwest` failure to what it means for the call. The URL (whose query holds the
/// consumer key and token id) is stripped before any text is kept.
fn transport_error(call: Call, err: &reqwest::Error) -> NetSuiteError {
    if let Some(certificate) = untrusted_certificate(err) {
        // The host and port only: the URL's query holds the consumer key and token id.
        let server = err
            .url()
            .and_then(|url| {
                Some(format!(
                    "{}:{}",
                    url.host_str()?,
                    url.port_or_known_default()?
                ))
            })
            .unwrap_or_else(|| "the server".to_string());
        return NetSuiteError::Transport {
            call,
            kind: TransportKind::TlsCertificate,
            cause: format!(
                "{server} presented a certificate that fails verification: {}",
                describe_certificate_problem(certificate)
            ),
        };
    }
    let kind = if err.is_connect() && err.is_timeout() {
        TransportKind::ConnectTimeout
    } else if err.is_connect() {
        TransportKind::Connect
    } else if err.is_timeout() {
        TransportKind::Timeout
    } else {
        TransportKind::ConnectionLost
    };
    NetSuiteError::Transport {
        call,
        kind,
        cause: error_chain(err),
    }
}

/// The certificate verification failure behind a failed TLS handshake, if that is what `err`
/// is. The `rustls` error sits somewhere in the source chain, often inside an `io::Error`, whose
/// `source()` skips the error it wraps: so each `io::Error` is opened with `get_ref`.
fn untrusted_certificate(err: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
            .then_some(tls);
        }
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => None,
            },
            None => current.source(),
        };
    }
    None
}

/// The TLS library's words for a certificate failure, with plain ones before its terse names.
fn describe_certificate_problem(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => format!(
            "it is not issued by a certificate authority this machine trusts (self-signed, or a \
             private CA) ({error})"
        ),
        rustls::Error::NoCertificatesPresented => "the server presented no certificate".into(),
        _ => error.to_string(),
    }
}

/// The messages of an error and its sources, joined with `: `, without the request URL.
fn error_chain(err: &reqwest::Error) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut push = |message: String| {
        if !message.is_empty() && messages.last() != Some(&message) {
            messages.push(message);
        }
    };
    // `reqwest::Error`'s own Display names the URL; its kind is what the caller needs.
    push(
        if err.is_timeout() {
            "operation timed out"
        } else if err.is_connect() {
            "error connecting"
        } else if err.is_body() {
            "error reading the response body"
        } else if err.is_redirect() {
            "error following a redirect"
        } else if err.is_builder() {
            "error building the client"
        } else {
            "error sending the request"
        }
        .to_string(),
    );
    let mut source = std::error::Error::source(err);
    while let Some(current) = source {
        push(current.to_string());
        source = current.source();
    }
    messages.join(": ")
}

/// Keeps a content type readable in an error message: printable ASCII, at most 100 characters.
fn sanitize_content_type(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect();
    if clean.trim().is_empty() {
        "none".to_string()
    } else {
        clean.trim().to_string()
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
