//! Route guards for the root routes (index, combined spec, docs, status). Server routes decide
//! per server in their handlers (see [`super::caller::identify`]), since multi-user servers
//! accept Open WebUI JWTs where others want the API key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::caller::{identify, identify_for_private_page};

/// `--api-key` on POSTs always, on everything with `--strict-auth` (HTTP Basic on GETs only).
pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let tool_call = request.method() != Method::GET;
    match identify(&state, None, request.headers(), tool_call).await {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// `--api-key` whenever one is set: `/status` shows upstream errors, which can name internal
/// hosts, so it is not public even without `--strict-auth`.
pub async fn require_api_key_always(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match identify_for_private_page(&state, request.headers()).await {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// The one place the HTTP Basic challenge is added: with `--strict-auth`, a 401 to a GET (a
/// browser opening docs, a spec or `/status`) lets the browser prompt for the key. Tool calls
/// (POST) never get it: they are made by programs with a Bearer key.
pub async fn basic_challenge(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let get = request.method() == Method::GET;
    let mut response = next.run(request).await;
    if get && state.options.strict_auth && response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().append(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"mcpo\""),
        );
    }
    response
}
