//! The "no MCP" limit: a bare axum handler on the default multi-threaded tokio runtime, routed
//! like a bridge (`POST /{server}/{tool}`, body read) and answering a JSON string.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

use crate::Flags;

pub fn run(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &[])?;
    let port: u16 = flags.num(&["port"], 0)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let app = Router::new().route(
            "/{server}/{tool}",
            post(|_body: Bytes| async { ([("content-type", "application/json")], "\"hello\"") }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot bind 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("LISTENING http://{addr}");
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}
