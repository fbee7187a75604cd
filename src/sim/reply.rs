//! What the simulator answers: a reply (status, body, `WWW-Authenticate`, `Retry-After`), or
//! a fault's silence or reset, and whether a request is admitted under its account's
//! concurrency limit.

use std::time::Duration;

use serde_json::json;

/// Whether a `/rest/*` request goes on to be processed.
pub(crate) enum Admission {
    /// Go on after the service time; `slot_taken` when a slot of the account was taken (the
    /// caller then owns it and must give it back).
    Admitted { latency: Duration, slot_taken: bool },
    /// Over the account's concurrency limit: answer this at once.
    Refused(Reply),
}

/// What the server does with a request.
pub(crate) enum Action {
    Answer(Reply),
    /// Say nothing for this long, then close the connection.
    HoldThenClose(Duration),
    /// Close the connection with a TCP reset and no answer.
    Reset,
}

pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub www_authenticate: Option<String>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u32>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::raw(status, "application/json", value.to_string())
    }

    /// `SSS_REQUEST_LIMIT_EXCEEDED`, written byte for byte the way NetSuite's RESTlet domains
    /// write it in public logs: with a space around each object's colons, unlike `serde_json`.
    /// The message's wording past "Request limit exceeded." is not published; naming the limit
    /// is what NetSuite's governance help says the error is about.
    pub fn request_limit_exceeded(status: u16, limit: u32) -> Reply {
        let body = format!(
            r#"{{"error" : {{"code" : "SSS_REQUEST_LIMIT_EXCEEDED","message" : "Request limit exceeded. Concurrency limit for this account is {limit}."}}}}"#
        );
        Reply::raw(status, "application/json", body)
    }

    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &json!({"error": {"code": code, "message": message}}),
        )
    }

    pub fn raw(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }
}
