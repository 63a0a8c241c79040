//! `POST {prefix}{server}/{tool}`: JSON body → MCP `tools/call` → JSON reply.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::AppState;
use super::caller::{Caller, identify};
use super::error::ApiError;
use super::reply;
use crate::servers::Server;
use crate::upstream::CallError;

pub async fn call(
    State(state): State<Arc<AppState>>,
    Path((server, tool)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let server = state
        .server(&server)
        .ok_or_else(|| ApiError::NotFound(format!("no server named '{server}' is configured")))?;
    invoke(&state, &server, &tool, &headers, body).await
}

/// Single-server mode: `POST {prefix}{tool}`.
pub async fn call_single(
    State(state): State<Arc<AppState>>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let server = state
        .only_server()
        .ok_or_else(|| ApiError::NotFound("no server is configured".into()))?;
    invoke(&state, &server, &tool, &headers, body).await
}

async fn invoke(
    state: &AppState,
    server: &Arc<Server>,
    tool_name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = server.name();
    // Before anything else: a refused call starts no session.
    if let Ok(body) = &body {
        json_body(headers, body)?;
    }
    let caller = identify(state, server.multi_user(), headers, true).await?;
    let user = &caller;
    let (endpoint, catalog) = super::session::endpoint_for(state, server, headers, user).await?;
    let tool = catalog.catalog.tool(tool_name).ok_or_else(|| {
        ApiError::NotFound(format!("server '{name}' has no tool named '{tool_name}'"))
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
    let _slot = server.limiter.acquire().await.map_err(|busy| {
        server.stats.rejected.fetch_add(1, Ordering::Relaxed);
        ApiError::overloaded(name, &busy)
    })?;
    let started = Instant::now();
    let _in_flight = state.metrics.start_call();
    let session =
        super::session::live_session(name, &endpoint, catalog.session.clone(), state).await?;
    // The MCP name: the route names the published one, which may differ.
    let result = session.call_tool(tool.name(), Some(arguments)).await;
    server.stats.calls.fetch_add(1, Ordering::Relaxed);
    // Resource links get the URL of their read route (not in structured content: that is
    // the tool's own JSON).
    let links = session.offers_resources()
        && result
            .as_ref()
            .is_ok_and(|r| r.structured_content.is_none());
    let mut size_hint = 0;
    let outcome = match result {
        // The user's own secrets stopped working (revoked, expired): ask for new ones.
        Err(CallError::Refused(_)) if server.refused_by_upstream(user).is_some() => {
            Err(super::credentials::refused_secrets(state, server, user))
        }
        result => result
            .map_err(|e| reply::call_error(name, tool_name, e))
            .and_then(|r| match server.config.max_result {
                Some(limit) => super::result_limit::apply(name, limit, r),
                None => Ok(r),
            })
            .inspect(|r| size_hint = reply::size_hint(r))
            .and_then(reply::tool_result)
            .map(|mut value| {
                if links {
                    reply::link_resources(&mut value, &state.server_base(name));
                }
                value
            }),
    };
    if let (Some(per_user), Caller::User(_) | Caller::Service) = (server.per_user(), &caller) {
        // The end of a call is activity too: a long call must not look idle when it ends.
        per_user.touch(user);
    }
    let status = outcome
        .as_ref()
        .map_or_else(|e| e.status().as_u16(), |_| 200);
    let elapsed = started.elapsed().as_secs_f64();
    state.metrics.record(name, tool_name, status, elapsed);
    // One line per call; never arguments (they may carry secrets) nor tokens.
    tracing::info!(
        server = %name,
        tool = %tool_name,
        caller = %caller.log_id(),
        status,
        // Whole microseconds: `0.447`, not `0.44737299999999997` (still a number in JSON logs).
        elapsed_ms = (elapsed * 1e6).round() / 1e3,
        "tool call"
    );
    Ok(reply::json_answer(&outcome?, size_hint))
}

/// A non-empty body must be sent as JSON (`application/json`, or a `+json` type). A page on
/// any site can make a browser POST `text/plain` without asking first (no CORS preflight), so
/// a call that does not say it is JSON is not run; an empty body (no arguments) says nothing.
pub(super) fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = given
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    let json = essence.as_deref().is_some_and(|t| {
        t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
    });
    if json {
        return Ok(());
    }
    let got = match &given {
        Some(t) => format!("'{}'", t.escape_debug()),
        None => "no Content-Type".to_owned(),
    };
    Err(ApiError::UnsupportedMediaType(format!(
        "send the tool's arguments as JSON with 'Content-Type: application/json' (got {got})"
    )))
}

/// An empty body means "no arguments"; anything else must be JSON.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        message: format!("request body is not valid JSON: {e}"),
        data: None,
    })
}
