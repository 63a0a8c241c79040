//! Health for probes and people: `/healthz` (the process answers), `/readyz` (every server is
//! connected or multi-user, and the shared store answers: 200, else 503), `/status` (the
//! store and its state; per-server state word, last error with
//! URLs redacted, the pending login's link for holders of the API key, reconnects, tools,
//! uptime, queued calls): the one route that says why a server is down. States come from [`ServerState`], the vocabulary
//! `/`, the start-up summary and 503 bodies share.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::servers::ServerState;
use crate::upstream::Failure;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let servers = state.registry.snapshot();
    let waiting: Vec<&str> = servers
        .iter()
        .filter(|s| !s.state().is_ready())
        .map(|s| s.name())
        .collect();
    // A shared store that does not answer: logins, secrets and tokens not in this replica's
    // memory cannot be served, so a balancer should send callers to another replica. Named,
    // without the reason (`/status` has it, behind the key).
    let store = crate::store::shared::status().filter(|s| s.state != "available");
    if waiting.is_empty() && store.is_none() {
        return (StatusCode::OK, Json(json!({ "status": "ready" })));
    }
    let mut body = json!({ "status": "not ready", "waiting_for": waiting });
    if let Some(store) = store {
        body["store"] = json!({ "store": store.store, "state": store.state });
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// The store for `/status`: the shared one's URL (without its password), state and last
/// error, or `file` (the token folder, always available).
fn store_status() -> Value {
    match crate::store::shared::status() {
        Some(status) => json!(status),
        None => json!({ "store": "file", "state": "available" }),
    }
}

pub async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    let now = Instant::now();
    // `/status` always requires the key when there is one (`guard::require_api_key_always`).
    let key_holder = state.options.api_key.is_some();
    let servers: Vec<Value> = state
        .registry
        .snapshot()
        .iter()
        .map(|server| {
            let stats = &server.stats;
            let mut v = json!({
                "name": server.name(),
                "transport": transport_kind(&server.config.transport),
                "reconnects": stats.reconnects.load(Ordering::Relaxed),
                "calls": stats.calls.load(Ordering::Relaxed),
                "rejected_calls": stats.rejected.load(Ordering::Relaxed),
                "queued_calls": server.limiter.queued(),
                "supervised_for_seconds": now.duration_since(server.started_at).as_secs(),
            });
            let server_state = server.state();
            let mut fields = json!({ "state": server_state.word() });
            match &server_state {
                ServerState::Connected(session) => fields = json!({
                    "state": server_state.word(),
                    "tools": session.tools.len(),
                    "connected_for_seconds": now.duration_since(session.connected_at).as_secs(),
                    "server_info": {
                        "name": session.meta.name,
                        "version": session.meta.version,
                    },
                }),
                ServerState::Connecting {
                    attempts,
                    failure,
                    retry_at,
                } => fields = json!({
                    "state": server_state.word(),
                    "attempts": attempts,
                    "last_error": failure.as_ref().map(ToString::to_string),
                    "next_attempt_in_seconds": retry_at.map(|t| t.saturating_duration_since(now).as_secs_f64()),
                    // Only for holders of the API key (the guard let this caller through with
                    // it): the link lets whoever opens it sign the server in to their account.
                    "login_url": failure.as_ref().and_then(Failure::login_url).filter(|_| key_holder),
                }),
                ServerState::MultiUser { tools } => fields["tools"] = json!(tools),
                ServerState::Stopped => {}
            }
            if let (Value::Object(f), Some(per_user)) = (&mut fields, server.per_user()) {
                f.insert("user_sessions".into(), json!(per_user.sessions()));
                f.insert("max_sessions".into(), json!(per_user.settings.max_sessions));
            }
            if let (Value::Object(m), Value::Object(f)) = (&mut v, fields) {
                m.extend(f);
            }
            v
        })
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "store": store_status(),
        "servers": servers,
    }))
}

fn transport_kind(t: &crate::config::TransportConfig) -> &'static str {
    use crate::config::TransportConfig::*;
    match t {
        Stdio { .. } => "stdio",
        Sse { .. } => "sse",
        StreamableHttp { .. } => "streamable-http",
    }
}
