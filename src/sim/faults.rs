//! Injected faults: what can go wrong between a client and NetSuite, at chosen rates.
//!
//! One uniform draw per `/rest/*` request picks at most one fault, walking the rates in the
//! order of the fields of [`Faults`]; a rate of 0 moves no other fault's share, so a seeded run
//! draws the same faults whatever kinds were added later. The M2M endpoints (token and
//! certificates) draw the same way. For `timeout`, `reset` and `garbage` on issuetoken,
//! revoketoken, token, certificate_add and certificate_revoke, a second draw against
//! `after_processing_rate` decides whether the fault hits after the token (or certificate) was
//! created or revoked: the answer is lost, the change is not.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The fault settings, as `PUT /sim/faults` takes them and `GET /sim/faults` shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// 500 or 503, with an HTML or a JSON body.
    pub server_error: f64,
    /// What a RESTlet domain answers over the account's concurrency limit: 400 with
    /// `SSS_REQUEST_LIMIT_EXCEEDED` in NetSuite's spaced JSON (the body of
    /// [`Limits`](super::Limits)' refusal).
    pub rate_limit: f64,
    /// What REST web services answer instead: 429 with the same body and `Retry-After: 1`.
    pub rate_limit_429: f64,
    /// Hold the request `timeout_hold_ms` without answering, then close the connection.
    pub timeout: f64,
    /// Close the TCP connection with a reset and no answer.
    pub reset: f64,
    /// 200 with HTML, truncated JSON or random bytes.
    pub garbage: f64,
    /// 200, `text/xml`: a SOAP 1.1 fault "Incorrect data center requested!", as NetSuite has
    /// answered a request for an account of another data center.
    pub soap_fault: f64,
    /// 200, `text/html`: a NetSuite login page, as a wrong domain or a proxy may answer.
    pub login_page: f64,
    /// Share of timeout/reset/garbage on issuetoken/revoketoken (and the M2M token,
    /// certificate_add and certificate_revoke) that strike after the change.
    pub after_processing_rate: f64,
    pub timeout_hold_ms: u64,
    /// Added to the simulator's clock (OAuth timestamps, TOTP, issued_at).
    pub clock_skew_secs: i64,
    /// Seeds the fault draws, for reproducible runs.
    pub rng_seed: Option<u64>,
    /// Endpoints faults apply to (`issuetoken` or `/rest/issuetoken`; for M2M `token`,
    /// `certificates` (the listing), `certificate_add`, `certificate_revoke`); empty means every
    /// NetSuite endpoint. Clock skew applies everywhere regardless.
    pub endpoints: Vec<String>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            server_error: 0.0,
            rate_limit: 0.0,
            rate_limit_429: 0.0,
            timeout: 0.0,
            reset: 0.0,
            garbage: 0.0,
            soap_fault: 0.0,
            login_page: 0.0,
            after_processing_rate: 0.0,
            timeout_hold_ms: 30_000,
            clock_skew_secs: 0,
            rng_seed: None,
            endpoints: Vec::new(),
        }
    }
}

/// Why a fault setting was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultsError {
    #[error("fault rate {field} must be between 0 and 1, got {value}")]
    RateOutOfRange { field: &'static str, value: f64 },
    #[error(
        "fault rates server_error + rate_limit + rate_limit_429 + timeout + reset + garbage + \
         soap_fault + login_page must not exceed 1, got {0}"
    )]
    RatesExceedOne(f64),
    #[error(
        "faults.endpoints: {0:?} is not one of issuetoken, revoketoken, tokeninfo, \
         datacenterurls, token, certificates, certificate_add, certificate_revoke"
    )]
    UnknownEndpoint(String),
}

/// The NetSuite endpoints: the `/rest/*` ones of TBA and the OAuth 2.0 (M2M) ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RestEndpoint {
    IssueToken,
    RevokeToken,
    TokenInfo,
    DataCenterUrls,
    /// `POST /services/rest/auth/oauth2/v1/token`.
    M2mToken,
    /// `GET .../clients/<client ID>/certificates`.
    M2mCertificates,
    /// `POST .../clients/<client ID>/certificates`.
    M2mCertificateAdd,
    /// `POST .../clients/<client ID>/certificates/<ID>/revoke`.
    M2mCertificateRevoke,
}

impl RestEndpoint {
    /// A name as `Faults::endpoints` takes it (and `Inspection::requests` counts it).
    pub fn from_name(name: &str) -> Option<RestEndpoint> {
        match name.strip_prefix("/rest/").unwrap_or(name) {
            "token" => Some(RestEndpoint::M2mToken),
            "certificates" => Some(RestEndpoint::M2mCertificates),
            "certificate_add" => Some(RestEndpoint::M2mCertificateAdd),
            "certificate_revoke" => Some(RestEndpoint::M2mCertificateRevoke),
            _ => RestEndpoint::from_rest_path(name),
        }
    }

    /// The endpoint of a `/rest/<name>` path (TBA only).
    pub fn from_rest_path(name: &str) -> Option<RestEndpoint> {
        match name.strip_prefix("/rest/").unwrap_or(name) {
            "issuetoken" => Some(RestEndpoint::IssueToken),
            "revoketoken" => Some(RestEndpoint::RevokeToken),
            "tokeninfo" => Some(RestEndpoint::TokenInfo),
            "datacenterurls" => Some(RestEndpoint::DataCenterUrls),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RestEndpoint::IssueToken => "issuetoken",
            RestEndpoint::RevokeToken => "revoketoken",
            RestEndpoint::TokenInfo => "tokeninfo",
            RestEndpoint::DataCenterUrls => "datacenterurls",
            RestEndpoint::M2mToken => "token",
            RestEndpoint::M2mCertificates => "certificates",
            RestEndpoint::M2mCertificateAdd => "certificate_add",
            RestEndpoint::M2mCertificateRevoke => "certificate_revoke",
        }
    }

    /// Endpoints whose change survives a fault that strikes after processing: a token issued
    /// or revoked, an access token minted, a certificate added or revoked.
    fn changes_tokens(self) -> bool {
        matches!(
            self,
            RestEndpoint::IssueToken
                | RestEndpoint::RevokeToken
                | RestEndpoint::M2mToken
                | RestEndpoint::M2mCertificateAdd
                | RestEndpoint::M2mCertificateRevoke
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    ServerError,
    RateLimit,
    RateLimit429,
    Timeout,
    Reset,
    Garbage,
    SoapFault,
    LoginPage,
}

impl FaultKind {
    /// The name counted in `faults_injected`: the field of [`Faults`] that sets its rate.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ServerError => "server_error",
            FaultKind::RateLimit => "rate_limit",
            FaultKind::RateLimit429 => "rate_limit_429",
            FaultKind::Timeout => "timeout",
            FaultKind::Reset => "reset",
            FaultKind::Garbage => "garbage",
            FaultKind::SoapFault => "soap_fault",
            FaultKind::LoginPage => "login_page",
        }
    }
}

/// A fault chosen for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    /// The request is processed first and the fault replaces its answer.
    pub after_processing: bool,
}

impl Faults {
    /// Each fault kind with its rate, in the order of the fields: the order of the draw.
    fn rates(&self) -> [(FaultKind, f64); 8] {
        [
            (FaultKind::ServerError, self.server_error),
            (FaultKind::RateLimit, self.rate_limit),
            (FaultKind::RateLimit429, self.rate_limit_429),
            (FaultKind::Timeout, self.timeout),
            (FaultKind::Reset, self.reset),
            (FaultKind::Garbage, self.garbage),
            (FaultKind::SoapFault, self.soap_fault),
            (FaultKind::LoginPage, self.login_page),
        ]
    }

    fn total_rate(&self) -> f64 {
        self.rates().iter().map(|(_, rate)| rate).sum()
    }

    pub fn validate(&self) -> Result<(), FaultsError> {
        let rates = self
            .rates()
            .map(|(kind, rate)| (kind.name(), rate))
            .into_iter()
            .chain([("after_processing_rate", self.after_processing_rate)]);
        for (field, value) in rates {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultsError::RateOutOfRange { field, value });
            }
        }
        let total = self.total_rate();
        if total > 1.0 + 1e-9 {
            return Err(FaultsError::RatesExceedOne(total));
        }
        if let Some(bad) = self
            .endpoints
            .iter()
            .find(|e| RestEndpoint::from_name(e).is_none())
        {
            return Err(FaultsError::UnknownEndpoint(bad.clone()));
        }
        Ok(())
    }

    fn applies_to(&self, endpoint: RestEndpoint) -> bool {
        self.endpoints.is_empty()
            || self
                .endpoints
                .iter()
                .any(|e| RestEndpoint::from_name(e) == Some(endpoint))
    }

    /// Draws the fault (if any) for one request.
    pub(crate) fn draw(&self, endpoint: RestEndpoint, rng: &mut impl Rng) -> Option<Fault> {
        if self.total_rate() <= 0.0 || !self.applies_to(endpoint) {
            return None;
        }
        let x: f64 = rng.random();
        let mut edge = 0.0;
        let kind = self.rates().into_iter().find_map(|(kind, rate)| {
            edge += rate;
            (x < edge).then_some(kind)
        })?;
        let may_strike_after = endpoint.changes_tokens()
            && matches!(
                kind,
                FaultKind::Timeout | FaultKind::Reset | FaultKind::Garbage
            );
        let after_processing = may_strike_after
            && self.after_processing_rate > 0.0
            && rng.random_bool(self.after_processing_rate);
        Some(Fault {
            kind,
            after_processing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn no_rates_no_faults() {
        let mut rng = StdRng::seed_from_u64(1);
        let faults = Faults::default();
        assert!((0..1000).all(|_| faults.draw(RestEndpoint::TokenInfo, &mut rng).is_none()));
    }

    #[test]
    fn full_rate_always_strikes_and_respects_the_endpoint_filter() {
        let mut rng = StdRng::seed_from_u64(1);
        let faults = Faults {
            reset: 1.0,
            after_processing_rate: 1.0,
            endpoints: vec!["/rest/issuetoken".into()],
            ..Faults::default()
        };
        let fault = faults.draw(RestEndpoint::IssueToken, &mut rng).unwrap();
        assert_eq!(fault.kind, FaultKind::Reset);
        assert!(fault.after_processing);
        assert!(faults.draw(RestEndpoint::TokenInfo, &mut rng).is_none());
    }

    #[test]
    fn after_processing_only_for_token_changing_endpoints() {
        let mut rng = StdRng::seed_from_u64(1);
        let faults = Faults {
            garbage: 1.0,
            after_processing_rate: 1.0,
            ..Faults::default()
        };
        let fault = faults.draw(RestEndpoint::TokenInfo, &mut rng).unwrap();
        assert!(!fault.after_processing);
    }

    #[test]
    fn every_kind_is_drawn_at_full_rate_and_none_of_the_new_ones_after_processing() {
        let mut rng = StdRng::seed_from_u64(1);
        let base = Faults {
            after_processing_rate: 1.0,
            ..Faults::default()
        };
        let cases = [
            (
                FaultKind::RateLimit,
                Faults {
                    rate_limit: 1.0,
                    ..base.clone()
                },
            ),
            (
                FaultKind::RateLimit429,
                Faults {
                    rate_limit_429: 1.0,
                    ..base.clone()
                },
            ),
            (
                FaultKind::SoapFault,
                Faults {
                    soap_fault: 1.0,
                    ..base.clone()
                },
            ),
            (
                FaultKind::LoginPage,
                Faults {
                    login_page: 1.0,
                    ..base.clone()
                },
            ),
        ];
        for (kind, faults) in cases {
            let fault = faults.draw(RestEndpoint::IssueToken, &mut rng).unwrap();
            assert_eq!(fault.kind, kind);
            assert!(!fault.after_processing, "{}", kind.name());
        }
    }

    #[test]
    fn the_new_rates_count_towards_the_sum() {
        let faults = Faults {
            garbage: 0.5,
            soap_fault: 0.3,
            login_page: 0.3,
            ..Faults::default()
        };
        assert!(matches!(
            faults.validate(),
            Err(FaultsError::RatesExceedOne(_))
        ));
        let faults = Faults {
            rate_limit_429: -0.1,
            ..Faults::default()
        };
        assert_eq!(
            faults.validate(),
            Err(FaultsError::RateOutOfRange {
                field: "rate_limit_429",
                value: -0.1
            })
        );
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Faults {
            timeout: 1.5,
            ..Faults::default()
        };
        assert_eq!(
            bad.validate(),
            Err(FaultsError::RateOutOfRange {
                field: "timeout",
                value: 1.5
            })
        );
        let sum = Faults {
            timeout: 0.6,
            reset: 0.6,
            ..Faults::default()
        };
        assert!(matches!(
            sum.validate(),
            Err(FaultsError::RatesExceedOne(_))
        ));
        let endpoint = Faults {
            endpoints: vec!["issue".into()],
            ..Faults::default()
        };
        assert!(matches!(
            endpoint.validate(),
            Err(FaultsError::UnknownEndpoint(_))
        ));
    }

    #[test]
    fn same_seed_same_draws() {
        let faults = Faults {
            server_error: 0.3,
            garbage: 0.3,
            ..Faults::default()
        };
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| faults.draw(RestEndpoint::TokenInfo, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
    }
}
