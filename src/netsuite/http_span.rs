//! The OpenTelemetry HTTP-client conventions for the NetSuite client's spans: the redacted
//! `url.full`, and how an answer or a failure is recorded on the span.
//!
//! NetSuite's token URLs carry the consumer key and token id in their query, so `url.full`
//! keeps every query key and replaces every value with `REDACTED`
//! (`https://x/rest/issuetoken?consumerKey=REDACTED&name=REDACTED`); user info is redacted the
//! same way, and a fragment is dropped. The span itself is declared where the request is sent
//! (`netsuite::client`), because `tracing` needs its field names at the call site.

use reqwest::Url;
use tracing::Span;

use super::TransportKind;

/// What replaces a query value or user info in `url.full`.
pub const REDACTED: &str = "REDACTED";

/// The URL as a span may carry it: scheme, host, port and path kept; query values, user name
/// and password replaced by [`REDACTED`]; no fragment. The OAuth 2.0 certificate endpoint
/// carries the client id in its path (`.../clients/<client id>/certificates`): that segment is
/// [`REDACTED`] too.
pub fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_fragment(None);
    if let Some(segments) = url.path_segments() {
        let segments: Vec<&str> = segments.collect();
        let after_clients = |i: usize| i > 0 && segments[i - 1] == "clients";
        if (0..segments.len()).any(after_clients) {
            let path: Vec<&str> = (0..segments.len())
                .map(|i| {
                    if after_clients(i) {
                        REDACTED
                    } else {
                        segments[i]
                    }
                })
                .collect();
            shown.set_path(&path.join("/"));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        let _ = shown.set_username(REDACTED);
        let _ = shown.set_password(Some(REDACTED));
    }
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(key, _)| key.into_owned()).collect();
        shown
            .query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|key| (key.as_str(), REDACTED)));
    }
    shown.to_string()
}

/// Records `http.response.status_code`; a 4xx or 5xx also sets `error.type` to the code and
/// the span status to error, as the conventions ask of client spans.
pub fn record_response_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 400 {
        span.record("error.type", status.to_string());
        span.record("otel.status_code", "ERROR");
    }
}

/// Records a request that got no (complete) answer: `error.type` names the kind of failure.
pub fn record_transport_error(span: &Span, kind: TransportKind) {
    span.record("error.type", transport_error_type(kind));
    span.record("otel.status_code", "ERROR");
}

/// The low-cardinality `error.type` of a transport failure.
pub fn transport_error_type(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::ConnectTimeout => "connect_timeout",
        TransportKind::Connect => "connect_error",
        TransportKind::TlsCertificate => "tls_certificate",
        TransportKind::Timeout => "timeout",
        TransportKind::ConnectionLost => "connection_lost",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(url: &str) -> String {
        redacted_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn query_values_are_replaced_and_keys_kept() {
        assert_eq!(
            redacted(
                "https://1-sb1.restlets.api.netsuite.com/rest/issuetoken?consumerKey=ck%2Bsecret&name=it-1"
            ),
            "https://1-sb1.restlets.api.netsuite.com/rest/issuetoken?consumerKey=REDACTED&name=REDACTED"
        );
        assert_eq!(
            redacted("http://127.0.0.1:8080/rest/revoketoken?consumerKey=abc&token=def#frag"),
            "http://127.0.0.1:8080/rest/revoketoken?consumerKey=REDACTED&token=REDACTED"
        );
    }

    #[test]
    fn the_client_id_in_a_certificate_path_is_replaced() {
        assert_eq!(
            redacted(
                "https://1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/clients/abc%2Fdef/certificates/C1/revoke?c=1"
            ),
            "https://1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/clients/REDACTED/certificates/C1/revoke?c=REDACTED"
        );
        assert_eq!(
            redacted("http://127.0.0.1:9/services/rest/auth/oauth2/v1/token"),
            "http://127.0.0.1:9/services/rest/auth/oauth2/v1/token"
        );
    }

    #[test]
    fn a_url_without_query_is_unchanged() {
        assert_eq!(
            redacted("https://x.example/rest/tokeninfo"),
            "https://x.example/rest/tokeninfo"
        );
    }

    #[test]
    fn user_info_is_redacted() {
        let shown = redacted("https://alice:s3cret@x.example/rest/tokeninfo");
        assert_eq!(shown, "https://REDACTED:REDACTED@x.example/rest/tokeninfo");
    }

    #[test]
    fn a_query_key_without_value_stays_a_key() {
        assert_eq!(
            redacted("https://x.example/p?flag"),
            "https://x.example/p?flag=REDACTED"
        );
    }
}
