//! Health for probes and people: `/healthz` (the process answers), `/readyz` (every server is
//! connected: 200, else 503), `/status` (per-server state, last error, reconnects, tools,
//! uptime, queued calls).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::upstream::Status;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let servers = state.registry.snapshot();
    let waiting: Vec<&str> = servers
        .iter()
        .filter(|e| !e.is_ready())
        .map(|e| e.name())
        .collect();
    if waiting.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "waiting_for": waiting })),
        )
    }
}

pub async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    let now = Instant::now();
    let servers: Vec<Value> = state
        .registry
        .snapshot()
        .iter()
        .map(|e| {
            let up = &e.upstream;
            let stats = &up.stats;
            let mut v = json!({
                "name": e.name(),
                "transport": transport_kind(&up.config.transport),
                "reconnects": stats.reconnects.load(std::sync::atomic::Ordering::Relaxed),
                "calls": stats.calls.load(std::sync::atomic::Ordering::Relaxed),
                "rejected_calls": stats.rejected.load(std::sync::atomic::Ordering::Relaxed),
                "queued_calls": up.limiter.queued(),
                "supervised_for_seconds": now.duration_since(up.started_at).as_secs(),
            });
            let fields = match up.status() {
                Status::Ready(session) => json!({
                    "state": "connected",
                    "tools": session.tools.len(),
                    "connected_for_seconds": now.duration_since(session.connected_at).as_secs(),
                    "server_info": {
                        "name": session.meta.name,
                        "version": session.meta.version,
                    },
                }),
                Status::Connecting {
                    attempts,
                    last_error,
                    retry_at,
                } => json!({
                    "state": match &last_error {
                        Some(e) if e.starts_with("waiting for the OAuth login") => "waiting_for_login",
                        Some(_) => "failed",
                        None => "connecting",
                    },
                    "attempts": attempts,
                    "last_error": last_error,
                    "next_attempt_in_seconds": retry_at.map(|t| t.saturating_duration_since(now).as_secs_f64()),
                }),
                Status::Stopped if e.is_ready() => json!({
                    "state": "multi-user",
                    "tools": e.cached_catalog().map(|c| c.tools.len()),
                }),
                Status::Stopped => json!({ "state": "stopped" }),
            };
            let fields = match (fields, &e.users) {
                (Value::Object(mut f), Some(users)) => {
                    f.insert("user_sessions".into(), json!(users.pool.len()));
                    f.insert("max_sessions".into(), json!(users.settings.max_sessions));
                    Value::Object(f)
                }
                (f, _) => f,
            };
            if let (Value::Object(m), Value::Object(f)) = (&mut v, fields) {
                m.extend(f);
            }
            v
        })
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
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
