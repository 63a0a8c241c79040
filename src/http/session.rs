//! The caller's own session of a server, for the routes that are not tool calls (resources and
//! prompts): the same caller check, routing (in multi-user mode: the caller's session, never
//! another user's), waits and refusals as a tool call, and the same bounds once there (a slot
//! of the server's limiter, the counters, one log line).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::http::HeaderMap;

use super::AppState;
use super::caller::{Caller, identify};
use super::error::ApiError;
use crate::servers::{Refusal, Server};
use crate::upstream::{CallError, Session};

/// A verified caller and the session that serves them.
pub(super) struct Opened {
    pub caller: Caller,
    pub session: Arc<Session>,
}

/// The server a route names (`{server}`), or the one server of single-server mode.
pub(super) fn server_of(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<Arc<Server>, ApiError> {
    match params.get("server") {
        Some(name) => state
            .server(name)
            .ok_or_else(|| ApiError::NotFound(format!("no server named '{name}' is configured"))),
        None => state
            .only_server()
            .ok_or_else(|| ApiError::NotFound("no server is configured".into())),
    }
}

/// The session that serves this request's caller, waited for as a tool call waits for it.
pub(super) async fn open(
    state: &AppState,
    server: &Server,
    headers: &HeaderMap,
) -> Result<Opened, ApiError> {
    let name = server.name();
    let caller = identify(state, server.multi_user(), headers, true).await?;
    let endpoint = server
        .route(&caller)
        .map_err(|refusal| super::login::refused(state, server, &caller, refusal))?;
    let wait = match server.per_user() {
        Some(_) => state.options.upstream.connect_timeout,
        None => state.options.upstream.reconnect_wait,
    };
    let live = endpoint.catalog_waiting(wait).await.map_err(|status| {
        match server.sign_in_needed(&caller) {
            Ok(None) => ApiError::unavailable(name, status.into()),
            Ok(Some(logins)) => {
                super::login::refused(state, server, &caller, Refusal::SignIn(logins))
            }
            Err(refusal) => super::login::refused(state, server, &caller, refusal),
        }
    })?;
    let mut session = live.session.clone();
    if session.is_closed() {
        let wait = state
            .options
            .upstream
            .reconnect_wait
            .max(std::time::Duration::from_secs(1));
        session = endpoint
            .upstream
            .next_session(session.generation, wait)
            .await
            .map_err(|status| ApiError::unavailable(name, status.into()))?;
    }
    Ok(Opened { caller, session })
}

/// Runs `what` (`resources/read`, `prompts/get`, …) on the opened session within a slot of the
/// server's limiter; counts it, marks the caller's session active and logs one line (never the
/// URI or arguments: they may carry secrets).
pub(super) async fn run<T, Fut>(
    state: &AppState,
    server: &Server,
    opened: &Opened,
    what: &str,
    call: Fut,
) -> Result<T, ApiError>
where
    Fut: Future<Output = Result<T, ApiError>>,
{
    let name = server.name();
    let _slot = server.limiter.acquire().await.map_err(|busy| {
        server.stats.rejected.fetch_add(1, Ordering::Relaxed);
        ApiError::overloaded(name, &busy)
    })?;
    let started = Instant::now();
    let _in_flight = state.metrics.start_call();
    let outcome = call.await;
    server.stats.calls.fetch_add(1, Ordering::Relaxed);
    if let (Some(per_user), Caller::User(_) | Caller::Service) = (server.per_user(), &opened.caller)
    {
        per_user.touch(&opened.caller);
    }
    let status = outcome
        .as_ref()
        .map_or_else(|e| e.status().as_u16(), |_| 200);
    let elapsed = started.elapsed().as_secs_f64();
    state.metrics.record(name, what, status, elapsed);
    tracing::info!(
        server = %name,
        request = %what,
        caller = %opened.caller.log_id(),
        status,
        elapsed_ms = (elapsed * 1e6).round() / 1e3,
        "upstream request"
    );
    outcome
}

/// An upstream failure of `what` as the caller sees it: the statuses of tool calls, with the
/// request named instead of a tool.
pub(super) fn upstream_error(server: &str, what: &str, err: CallError) -> ApiError {
    match err {
        CallError::Timeout(after) => ApiError::GatewayTimeout(format!(
            "{what} on server '{server}' got no answer within {:.1} s; the request was cancelled upstream",
            after.as_secs_f64()
        )),
        other => super::reply::call_error(server, what, other),
    }
}
