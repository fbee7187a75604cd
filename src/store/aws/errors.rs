//! Secrets Manager's answers as store errors: which are transient, which need an operator,
//! and words for what went wrong that name the call and never a secret value.

use super::{StoreError, StoreErrorKind};

/// What a failed SDK call said, kept apart from [`StoreError`] so a caller can recognise the
/// refusals that mean a lost check-and-set.
pub(super) struct CallError {
    pub(super) code: Option<String>,
    pub(super) error: StoreError,
}

impl CallError {
    pub(super) fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> StoreError {
        e.error
    }
}

pub(super) fn service_error_kind(code: &str, status: u16) -> StoreErrorKind {
    match code {
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "RequestTimeout"
        | "RequestTimeoutException" => StoreErrorKind::Unavailable,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "DecryptionFailure" => StoreErrorKind::Denied,
        // A refusal without a code Secrets Manager names (moto_server's IAM check answers 403
        // with a body the SDK cannot read) is still a refusal of the caller.
        _ if status == 401 || status == 403 => StoreErrorKind::Denied,
        _ if status >= 500 => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Failed,
    }
}

/// Where and what kind of JSON problem, without serde_json's message (which can quote the value).
pub(super) fn json_error_words(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of another shape",
        serde_json::error::Category::Eof => "cut-off JSON",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}
