//! Route guards for the root routes (index, combined spec, docs, status). Server routes decide
//! per server in their handlers (see [`super::identity::authorize`]), since multi-user servers
//! accept Open WebUI JWTs where others want the API key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::identity::authorize;

/// `--api-key` on POSTs always, on everything with `--strict-auth`.
pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let tool_call = request.method() == Method::POST;
    guard(&state, request, next, tool_call).await
}

/// `--api-key` whenever one is set: `/status` shows upstream errors, which can name internal
/// hosts, so it is not public even without `--strict-auth`.
pub async fn require_api_key_always(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    guard(&state, request, next, true).await
}

async fn guard(state: &AppState, request: Request, next: Next, tool_call: bool) -> Response {
    match authorize(state, None, request.headers(), tool_call).await {
        Ok(_) => next.run(request).await,
        Err(e) => with_basic_challenge(state, e.into_response()),
    }
}

/// With `--strict-auth`, lets a browser opening /docs prompt for the key (HTTP Basic).
pub fn with_basic_challenge(state: &AppState, mut resp: Response) -> Response {
    if state.options.strict_auth && resp.status() == axum::http::StatusCode::UNAUTHORIZED {
        resp.headers_mut().append(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"mcpo\""),
        );
    }
    resp
}
