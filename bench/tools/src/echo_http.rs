//! The same echo server as `echo`, over streamable HTTP: `POST /mcp` with one JSON-RPC message
//! answers `application/json` (the spec's non-SSE form; no server-initiated stream, so
//! `GET /mcp` is 405). `initialize` hands out an `Mcp-Session-Id`; notifications get 202.
//! Built on axum/hyper so that it, too, is never the bottleneck.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::Flags;

static SESSIONS: AtomicU64 = AtomicU64::new(1);

async fn mcp(body: Bytes) -> Response {
    let mut out = Vec::with_capacity(256);
    if crate::echo::handle(&body, &mut out).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if out.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    let initialize = out.windows(18).any(|w| w == b"\"protocolVersion\":");
    let mut response = ([(header::CONTENT_TYPE, "application/json")], out).into_response();
    if initialize {
        let id = format!("bench-{}", SESSIONS.fetch_add(1, Ordering::Relaxed));
        if let Ok(v) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("mcp-session-id", v);
        }
    }
    response
}

pub fn run(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &[])?;
    let port: u16 = flags.num(&["port"], 0)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let app = Router::new().route(
            "/mcp",
            post(mcp)
                .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                .delete(|| async { StatusCode::OK }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot bind 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("LISTENING http://{addr}");
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}
