//! The one error type of the HTTP boundary. Every variant maps to one status and a JSON body
//! `{"detail": {"message": …, …}}` (Python mcpo's shape, so existing clients keep working).
//! Bodies carry causes a caller can act on; secrets never reach them.

use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::servers::ServerState;
use crate::upstream::Busy;

/// What went wrong while serving a request.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not JSON, or the upstream said the request was malformed.
    BadRequest {
        message: String,
        data: Option<Value>,
    },
    /// 401: no credentials where they are required.
    Unauthorized(String),
    /// 401: the caller must sign in to the upstream (multi-user OAuth) at `login_url` first.
    LoginRequired { message: String, login_url: String },
    /// 401: the caller must enter their own secrets for the server at `credentials_url` first.
    CredentialsRequired {
        message: String,
        credentials_url: String,
    },
    /// 403: credentials given, but wrong.
    Forbidden(String),
    /// 404: unknown server, tool or route; or the upstream has no such method.
    NotFound(String),
    /// 405: a route that exists for other methods (`allow` lists them).
    MethodNotAllowed {
        message: String,
        allow: &'static str,
    },
    /// 413: body over `--max-body-bytes`.
    PayloadTooLarge(usize),
    /// 413: the tool's result is over its server's `max_result_bytes` (`result_limit.rs`).
    ResultTooLarge {
        message: String,
        size: usize,
        limit: usize,
    },
    /// 415: a non-empty tool-call body not sent as JSON.
    UnsupportedMediaType(String),
    /// 421: the request names a `Host` mcpo does not answer to (`--allowed-hosts`).
    MisdirectedRequest(String),
    /// 422: the arguments do not match the tool's input schema.
    Unprocessable {
        message: String,
        data: Option<Value>,
    },
    /// 500: the tool ran and reported an error (`isError`).
    ToolError {
        message: String,
        data: Option<Value>,
    },
    /// 502: the upstream answered with an error, or the connection broke mid-call.
    BadGateway {
        message: String,
        data: Option<Value>,
    },
    /// 503: the upstream is not connected (yet); retry after the given seconds.
    Unavailable {
        message: String,
        retry_after_secs: u64,
    },
    /// 504: no answer within the call timeout.
    GatewayTimeout(String),
}

impl ApiError {
    /// 503 while a server (or the caller's own session of it) is not connected, naming its
    /// state word; `Retry-After` says when the next attempt starts. Never why: failure texts
    /// carry a child's stderr, upstream URLs and the pending login's authorization URL, and
    /// this body goes to whoever calls (with `--api-key` but without `--strict-auth`, specs
    /// are open to everyone). The reason is in the log and `/status`.
    pub fn unavailable(server: &str, state: ServerState) -> Self {
        let word = state.word();
        match state {
            ServerState::Connecting {
                failure, retry_at, ..
            } => {
                let retry_after_secs = retry_at
                    .map(|t| t.saturating_duration_since(Instant::now()).as_secs() + 1)
                    .unwrap_or(1);
                let message = match failure {
                    Some(f) if f.is_login_pending() => format!(
                        "server '{server}' is not connected ({word}): an operator has to sign \
                         it in; the sign-in link is in mcpo's log and in /status"
                    ),
                    Some(_) => format!(
                        "server '{server}' is not connected ({word}); retrying in \
                         {retry_after_secs} s; the reason is in mcpo's log and in /status"
                    ),
                    None => format!("server '{server}' is still connecting"),
                };
                Self::Unavailable {
                    message,
                    retry_after_secs,
                }
            }
            ServerState::Stopped => Self::Unavailable {
                message: format!("server '{server}' has been stopped"),
                retry_after_secs: 5,
            },
            ServerState::Connected(_) | ServerState::MultiUser { .. } => Self::Unavailable {
                message: format!("server '{server}' changed state; retry"),
                retry_after_secs: 1,
            },
        }
    }

    /// 503 when a call finds every slot of the server taken and its queue full.
    pub fn overloaded(server: &str, busy: &Busy) -> Self {
        Self::Unavailable {
            message: format!("server '{server}' is overloaded: {busy}; retry shortly"),
            retry_after_secs: 1,
        }
    }

    /// 401 with the caller's personal login link (multi-user OAuth, not signed in yet).
    pub fn login_required(server: &str, login_url: String) -> Self {
        Self::LoginRequired {
            message: format!(
                "you have not signed in to '{server}' yet (or your sign-in expired): open \
                 {login_url} to sign in (the link is personal, works once and expires in 10 \
                 minutes), then call the tool again"
            ),
            login_url,
        }
    }

    /// The 401 of a caller whose secrets for `server` are missing, or were refused.
    pub fn credentials_required(server: &str, credentials_url: String, refused: bool) -> Self {
        let why = if refused {
            format!("'{server}' refused the credentials you entered for it (revoked or expired?)")
        } else {
            format!("'{server}' needs your own credentials (such as an API key or access token)")
        };
        Self::CredentialsRequired {
            message: format!(
                "{why}: open {credentials_url} to enter them (the link is personal, works once \
                 and expires in 10 minutes; never paste a secret into the chat), then call the \
                 tool again"
            ),
            credentials_url,
        }
    }

    /// 502 when no session can be opened for the caller (their OAuth client cannot be had).
    /// URLs in the reason are redacted, as in every failure text.
    pub fn no_session(reason: String) -> Self {
        Self::BadGateway {
            message: crate::support::redact::urls_in(&reason).into_owned(),
            data: None,
        }
    }

    /// 503 when the caller's stored credentials do not open with the store key: the operator
    /// has to give the right key; retrying soon will not help.
    pub fn store_unreadable(reason: String) -> Self {
        Self::Unavailable {
            message: crate::support::redact::urls_in(&reason).into_owned(),
            retry_after_secs: 300,
        }
    }

    /// The shared store does not answer: 503 naming it; it reconnects by itself, so callers
    /// retry in seconds, not minutes.
    pub fn store_unavailable(reason: String) -> Self {
        Self::Unavailable {
            message: crate::support::redact::urls_in(&reason).into_owned(),
            retry_after_secs: 5,
        }
    }

    /// The message a person reads (the `message` of the JSON body).
    pub fn message(&self) -> String {
        match self {
            Self::BadRequest { message, .. }
            | Self::LoginRequired { message, .. }
            | Self::CredentialsRequired { message, .. }
            | Self::Unprocessable { message, .. }
            | Self::ToolError { message, .. }
            | Self::BadGateway { message, .. }
            | Self::ResultTooLarge { message, .. }
            | Self::Unavailable { message, .. }
            | Self::MethodNotAllowed { message, .. } => message.clone(),
            Self::Unauthorized(m) | Self::Forbidden(m) | Self::NotFound(m) => m.clone(),
            Self::UnsupportedMediaType(m) | Self::MisdirectedRequest(m) => m.clone(),
            Self::GatewayTimeout(m) => m.clone(),
            Self::PayloadTooLarge(limit) => {
                format!("request body is larger than the limit of {limit} bytes")
            }
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, Value) {
        fn body(message: &str, data: &Option<Value>) -> Value {
            match data {
                Some(d) => json!({ "detail": { "message": message, "data": d } }),
                None => json!({ "detail": { "message": message } }),
            }
        }
        match self {
            Self::BadRequest { message, data } => (StatusCode::BAD_REQUEST, body(message, data)),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, body(m, &None)),
            Self::LoginRequired { message, login_url } => (
                StatusCode::UNAUTHORIZED,
                json!({ "detail": { "message": message, "login_url": login_url } }),
            ),
            Self::CredentialsRequired {
                message,
                credentials_url,
            } => (
                StatusCode::UNAUTHORIZED,
                json!({ "detail": { "message": message, "credentials_url": credentials_url } }),
            ),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, body(m, &None)),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, body(m, &None)),
            Self::MethodNotAllowed { message, .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, body(message, &None))
            }
            Self::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "detail": { "message": self.message(), "limit": limit } }),
            ),
            Self::ResultTooLarge {
                message,
                size,
                limit,
            } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "detail": { "message": message, "size": size, "limit": limit } }),
            ),
            Self::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, body(m, &None)),
            Self::MisdirectedRequest(m) => (StatusCode::MISDIRECTED_REQUEST, body(m, &None)),
            Self::Unprocessable { message, data } => {
                (StatusCode::UNPROCESSABLE_ENTITY, body(message, data))
            }
            Self::ToolError { message, data } => {
                (StatusCode::INTERNAL_SERVER_ERROR, body(message, data))
            }
            Self::BadGateway { message, data } => (StatusCode::BAD_GATEWAY, body(message, data)),
            Self::Unavailable { message, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, body(message, &None))
            }
            Self::GatewayTimeout(m) => (StatusCode::GATEWAY_TIMEOUT, body(m, &None)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            Self::Unavailable {
                retry_after_secs, ..
            } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(&1).to_owned()),
                );
            }
            Self::MethodNotAllowed { allow, .. } => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unauthorized(_)
            | Self::LoginRequired { .. }
            | Self::CredentialsRequired { .. } => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
