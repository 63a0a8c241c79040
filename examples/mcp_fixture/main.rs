//! `mcp_fixture`: a small but real MCP server that mcpo's integration tests run behind the bridge.
//!
//! It is built on rmcp and exposes a fixed set of tools (see [`tools`]) whose schemas and
//! results exercise the corners of the bridge: `$defs`/`$ref` schemas, `const`, nullable
//! `anyOf`, refs into `#/properties`, structured output, images, embedded resources, tool errors,
//! protocol errors, slow/cancellable calls and per-session state.
//!
//! ```text
//! mcp_fixture stdio              # MCP over stdin/stdout (stdout is the protocol)
//! mcp_fixture http [--port N]    # streamable HTTP at http://127.0.0.1:N/mcp
//! mcp_fixture sse  [--port N]    # legacy HTTP+SSE (2024-11-05): GET /sse, POST /messages?session_id=
//! ```
//!
//! The HTTP modes bind 127.0.0.1 only (port 0, i.e. any free port, by default) and, once
//! listening, print exactly one line `LISTENING http://127.0.0.1:<port>` to stdout. Every mode
//! writes `fixture started ...` to stderr first thing, and all logging goes to stderr
//! (`RUST_LOG` enables rmcp's tracing output there too).
//!
//! `http` mode can require OAuth bearer tokens checked by introspection ([`oauth`],
//! `FIXTURE_OAUTH_ISSUER`, `FIXTURE_OAUTH_RS_SECRET`).
//!
//! Build with `cargo build --example mcp_fixture`.

mod credentials;
mod oauth;
mod resources;
mod sse;
mod tools;

use std::{io::Write, sync::Arc};

use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use tokio::net::TcpListener;

use crate::tools::FixtureServer;

const USAGE: &str =
    "usage: mcp_fixture stdio | mcp_fixture http [--port N] | mcp_fixture sse [--port N]";

enum Mode {
    Stdio,
    Http { port: u16 },
    Sse { port: u16 },
}

fn parse_args() -> Result<Mode, String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("missing mode")?;
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value.parse().map_err(|_| format!("bad port: {value}"))?;
            }
            other => match other.strip_prefix("--port=") {
                Some(value) => port = value.parse().map_err(|_| format!("bad port: {value}"))?,
                None => return Err(format!("unexpected argument: {other}")),
            },
        }
    }
    match mode.as_str() {
        "stdio" if port == 0 => Ok(Mode::Stdio),
        "stdio" => Err("stdio mode takes no --port".into()),
        "http" => Ok(Mode::Http { port }),
        "sse" => Ok(Mode::Sse { port }),
        other => Err(format!("unknown mode: {other}")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr only: in stdio mode stdout carries the protocol.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let mode = match parse_args() {
        Ok(mode) => mode,
        Err(error) => {
            eprintln!("mcp_fixture: {error}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mode_name = match mode {
        Mode::Stdio => "stdio",
        Mode::Http { .. } => "http",
        Mode::Sse { .. } => "sse",
    };
    eprintln!(
        "fixture started mode={mode_name} pid={}",
        std::process::id()
    );

    match mode {
        Mode::Stdio => run_stdio().await,
        Mode::Http { port } => run_http(port).await,
        Mode::Sse { port } => run_sse(port).await,
    }
}

/// One server instance on stdin/stdout; exits when stdin closes.
async fn run_stdio() -> anyhow::Result<()> {
    credentials::check_stdio_key();
    let service = FixtureServer::new().serve(rmcp::transport::stdio()).await?;
    let reason = service.waiting().await?;
    eprintln!("fixture stdio session ended: {reason:?}");
    Ok(())
}

/// Streamable HTTP at `/mcp`, one server instance per MCP session.
async fn run_http(port: u16) -> anyhow::Result<()> {
    let service = StreamableHttpService::new(
        || Ok(FixtureServer::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(credentials::require_key));
    serve(port, oauth::protect(router)).await
}

/// Legacy HTTP+SSE transport (implemented in [`sse`]).
async fn run_sse(port: u16) -> anyhow::Result<()> {
    serve(port, sse::router()).await
}

/// Bind 127.0.0.1:`port`, announce the address on stdout, then serve until killed or Ctrl-C.
async fn serve(port: u16, router: axum::Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    oauth::bound(addr);
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "LISTENING http://{addr}")?;
        stdout.flush()?;
    }
    // Answers go out at once, as uvicorn, Node and Go servers send them (TCP_NODELAY): axum's
    // default leaves Nagle on, and an SSE answer written in two pieces then waits for the
    // client's delayed ACK (40 ms) on a reused connection.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::select! {
        result = axum::serve(listener, router) => result?,
        _ = tokio::signal::ctrl_c() => eprintln!("fixture interrupted"),
    }
    Ok(())
}
