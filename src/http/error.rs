//! The one error type of the HTTP boundary. Every variant maps to one status and a JSON body
//! `{"detail": {"message": …, …}}` (Python mcpo's shape, so existing clients keep working).
//! Bodies carry causes a caller can act on; secrets never reach them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
    /// 403: credentials given, but wrong.
    Forbidden(String),
    /// 404: unknown server, tool or route; or the upstream has no such method.
    NotFound(String),
    /// 413: body over `--max-body-bytes`.
    PayloadTooLarge(usize),
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
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, body(m, &None)),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, body(m, &None)),
            Self::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "detail": { "message": format!("request body is larger than the limit of {limit} bytes"), "limit": limit } }),
            ),
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
            Self::Unauthorized(_) | Self::LoginRequired { .. } => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
