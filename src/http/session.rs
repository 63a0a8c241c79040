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
use super::caller::{Caller, identify, profile};
use super::error::ApiError;
use crate::servers::{Endpoint, Refusal, Server, SessionCatalog};
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
    let caller = identify(state, server.multi_user(), headers, true).await?;
    let (endpoint, live) = endpoint_for(state, server, headers, &caller).await?;
    let session = live_session(server.name(), &endpoint, live.session.clone(), state).await?;
    Ok(Opened { caller, session })
}

/// What a route serves besides tools; the server must have declared it at `initialize`.
#[derive(Clone, Copy)]
pub(super) enum Offering {
    Resources,
    Prompts,
}

/// [`open`] for a route of `offering`: a 404 when the caller's session has not declared it
/// (the routes exist for every server).
pub(super) async fn open_offering(
    state: &AppState,
    server: &Server,
    headers: &HeaderMap,
    offering: Offering,
) -> Result<Opened, ApiError> {
    let opened = open(state, server, headers).await?;
    let (offered, word) = match offering {
        Offering::Resources => (opened.session.offers_resources(), "resources"),
        Offering::Prompts => (opened.session.offers_prompts(), "prompts"),
    };
    if !offered {
        return Err(ApiError::NotFound(format!(
            "server '{}' offers no {word} (it did not declare the {word} capability)",
            server.name()
        )));
    }
    Ok(opened)
}

/// The endpoint serving `caller` and its current catalog, waited for: the one way from a
/// verified caller to a session, for tool calls and every other route. A session started now
/// gets the caller's profile (templates); the caller's refusals (sign in, enter or renew
/// secrets, an unreadable store) become their answers here, so no route forgets one.
pub(super) async fn endpoint_for(
    state: &AppState,
    server: &Server,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<(Arc<Endpoint>, Arc<SessionCatalog>), ApiError> {
    let name = server.name();
    let endpoint = server
        .route_as(caller, &profile(state, headers, caller))
        .await
        .map_err(|refusal| super::credentials::refused(state, server, caller, refusal))?;
    // In multi-user mode every caller has their own session; the first request starts it, so
    // it may wait for a whole connect rather than a reconnect.
    let wait = match server.per_user() {
        Some(_) => state.options.upstream.connect_timeout,
        None => state.options.upstream.reconnect_wait,
    };
    let status = match endpoint.catalog_waiting(wait).await {
        Ok(catalog) => return Ok((endpoint, catalog)),
        Err(status) => status,
    };
    // Secrets the upstream refused are asked for again, not retried.
    if let Some(refusal) = server.secrets_refused(caller, &status) {
        return Err(super::credentials::refused(state, server, caller, refusal));
    }
    // A session that found its user's tokens no longer work waits for a new login.
    Err(match server.sign_in_needed(caller).await {
        Ok(None) => ApiError::unavailable(name, status.into()),
        Ok(Some(logins)) => {
            super::credentials::refused(state, server, caller, Refusal::SignIn(logins))
        }
        Err(refusal) => super::credentials::refused(state, server, caller, refusal),
    })
}

/// `session`, or the one the supervisor is bringing up when it closed before anything was
/// sent on it (nothing can have run, so waiting beats failing the request).
pub(super) async fn live_session(
    name: &str,
    endpoint: &Endpoint,
    session: Arc<Session>,
    state: &AppState,
) -> Result<Arc<Session>, ApiError> {
    if !session.is_closed() {
        return Ok(session);
    }
    tracing::info!(server = %name, "session closed; waiting for the new one");
    let wait = state
        .options
        .upstream
        .reconnect_wait
        .max(std::time::Duration::from_secs(1));
    endpoint
        .upstream
        .next_session(session.generation, wait)
        .await
        .map_err(|status| ApiError::unavailable(name, status.into()))
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
