//! `POST {prefix}{server}/{tool}`: JSON body → MCP `tools/call` → JSON reply.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AppState;
use super::catalog::ServerEntry;
use super::error::ApiError;
use super::identity::{Caller, authorize};
use super::reply;
use crate::upstream::Status;

pub async fn call(
    State(state): State<Arc<AppState>>,
    Path((server, tool)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let entry = state
        .server(&server)
        .ok_or_else(|| ApiError::NotFound(format!("no server named '{server}' is configured")))?;
    invoke(&state, &entry, &tool, &headers, body).await
}

/// Single-server mode: `POST {prefix}{tool}`.
pub async fn call_single(
    State(state): State<Arc<AppState>>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let entry = state
        .only_server()
        .ok_or_else(|| ApiError::NotFound("no server is configured".into()))?;
    invoke(&state, &entry, &tool, &headers, body).await
}

async fn invoke(
    state: &AppState,
    entry: &Arc<ServerEntry>,
    tool_name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let server = entry.name();
    let multi = entry.users.as_ref().map(|u| &u.settings);
    let caller = authorize(state, multi, headers, true).await?;
    super::login::require_sign_in(state, entry, &caller, headers)?;
    // In multi-user mode every caller has their own session; the first call starts it, so it
    // may wait for a whole connect rather than a reconnect.
    let (target, wait) = match entry.for_user(caller.session_key()) {
        Some(own) => (own, state.options.connect_timeout),
        // A multi-user server's shared entry never connects: waiting on it would only end in
        // a 503 after `reconnect_wait`. `for_user` logged why the caller got no session.
        None if entry.users.is_some() => {
            return Err(ApiError::Unavailable {
                message: format!(
                    "server '{server}' cannot open a session for this user right now (see mcpo's log)"
                ),
                retry_after_secs: 5,
            });
        }
        None => (entry.clone(), state.options.upstream.reconnect_wait),
    };
    let catalog = target
        .catalog_waiting(&state.spec, wait)
        .await
        .map_err(|status| {
            // A session that found its user's tokens no longer work waits for a new login.
            super::login::require_sign_in(state, entry, &caller, headers)
                .err()
                .unwrap_or_else(|| unavailable(server, status))
        })?;
    let tool = catalog.tool(tool_name).ok_or_else(|| {
        ApiError::NotFound(format!("server '{server}' has no tool named '{tool_name}'"))
    })?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(state.options.max_body_bytes)
        } else {
            ApiError::BadRequest {
                message: format!("cannot read the request body: {rejection}"),
                data: None,
            }
        }
    })?;
    let value = parse_body(&body)?;
    tool.validate(&value).map_err(|e| ApiError::Unprocessable {
        message: e.message.clone(),
        data: Some(serde_json::to_value(&e).unwrap_or(Value::Null)),
    })?;
    let arguments = tool.arguments(value);
    let upstream = &entry.upstream;
    let _slot = upstream.limiter.acquire().await.map_err(|busy| {
        upstream.stats.rejected.fetch_add(1, Ordering::Relaxed);
        ApiError::Unavailable {
            message: format!("server '{server}' is overloaded: {busy}; retry shortly"),
            retry_after_secs: 1,
        }
    })?;
    let started = Instant::now();
    let _in_flight = state.metrics.start_call();
    let mut session = catalog.session.clone();
    if session.is_closed() {
        // The session died and the supervisor has not noticed yet: nothing was sent, so wait
        // for the session it is bringing up rather than fail a call that cannot have run.
        tracing::info!(server = %server, tool = %tool_name, "session closed; waiting for the new one");
        let wait = state
            .options
            .upstream
            .reconnect_wait
            .max(std::time::Duration::from_secs(1));
        session = target
            .upstream
            .next_session(session.generation, wait)
            .await
            .map_err(|status| unavailable(server, status))?;
    }
    let result = session.call_tool(tool_name, Some(arguments)).await;
    upstream.stats.calls.fetch_add(1, Ordering::Relaxed);
    let outcome = result
        .map_err(|e| reply::call_error(server, tool_name, e))
        .and_then(reply::tool_result);
    if let (Some(users), Caller::User(_) | Caller::Service) = (&entry.users, &caller) {
        // The end of a call is activity too: a long call must not look idle when it ends.
        users.pool.touch(caller.session_key());
    }
    let status = outcome
        .as_ref()
        .map_or_else(|e| e.status().as_u16(), |_| 200);
    let elapsed = started.elapsed().as_secs_f64();
    state.metrics.record(server, tool_name, status, elapsed);
    // One line per call; never arguments (they may carry secrets) nor tokens.
    tracing::info!(
        server = %server,
        tool = %tool_name,
        caller = %caller.log_id(),
        status,
        // Whole microseconds: `0.447`, not `0.44737299999999997` (still a number in JSON logs).
        elapsed_ms = (elapsed * 1e6).round() / 1e3,
        "tool call"
    );
    Ok(Json(outcome?).into_response())
}

/// An empty body means "no arguments"; anything else must be JSON.
fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        message: format!("request body is not valid JSON: {e}"),
        data: None,
    })
}

/// 503 while a server is (re)connecting, naming why the last attempt failed.
pub fn unavailable(server: &str, status: Status) -> ApiError {
    match status {
        Status::Connecting {
            last_error,
            retry_at,
            ..
        } => {
            let retry_after_secs = retry_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_secs() + 1)
                .unwrap_or(1);
            let message = match last_error {
                Some(e) => format!(
                    "server '{server}' is not connected (last error: {e}); retrying in {retry_after_secs} s"
                ),
                None => format!("server '{server}' is still connecting"),
            };
            ApiError::Unavailable {
                message,
                retry_after_secs,
            }
        }
        Status::Stopped => ApiError::Unavailable {
            message: format!("server '{server}' has been stopped"),
            retry_after_secs: 5,
        },
        Status::Ready(_) => ApiError::Unavailable {
            message: format!("server '{server}' changed state; retry"),
            retry_after_secs: 1,
        },
    }
}
