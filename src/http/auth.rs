//! `--api-key` and `--strict-auth`: who may call tools and read specs.
//!
//! Tool calls (`POST`) need `Authorization: Bearer <key>` whenever a key is set (401 when
//! missing, 403 when wrong). With `--strict-auth` every request needs it, and HTTP Basic with
//! the key as password is accepted too (browsers can then open `/docs`). Keys are compared in
//! constant time and never echoed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = state.options.api_key.as_deref() else {
        return next.run(request).await;
    };
    let strict = state.options.strict_auth;
    let needs_key = strict || request.method() == Method::POST;
    if !needs_key {
        return next.run(request).await;
    }
    match check(request.headers().get(header::AUTHORIZATION), key, strict) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let mut resp = e.into_response();
            if strict {
                // Lets a browser opening /docs prompt for the key.
                resp.headers_mut().append(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"mcpo\""),
                );
            }
            resp
        }
    }
}

fn check(
    value: Option<&header::HeaderValue>,
    key: &str,
    allow_basic: bool,
) -> Result<(), ApiError> {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'".into(),
        ));
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let presented: Vec<u8> = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().as_bytes().to_vec()
    } else if allow_basic && scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| ApiError::Forbidden("invalid API key".into()))?;
        match decoded.iter().position(|&b| b == b':') {
            Some(i) => decoded[i + 1..].to_vec(),
            None => return Err(ApiError::Forbidden("invalid API key".into())),
        }
    } else {
        return Err(ApiError::Unauthorized(
            "unsupported authorization scheme: send 'Authorization: Bearer <key>'".into(),
        ));
    };
    if bool::from(presented.as_slice().ct_eq(key.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("invalid API key".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_and_basic() {
        let ok = |v: &str, basic| check(Some(&HeaderValue::from_str(v).unwrap()), "s3cret", basic);
        assert!(ok("Bearer s3cret", false).is_ok());
        assert!(matches!(
            ok("Bearer nope", false),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            check(None, "s3cret", false),
            Err(ApiError::Unauthorized(_))
        ));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("anyone:s3cret")
        );
        assert!(ok(&basic, true).is_ok());
        assert!(matches!(ok(&basic, false), Err(ApiError::Unauthorized(_))));
    }
}
