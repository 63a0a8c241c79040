//! Start-up and shutdown: config → upstreams (all connecting concurrently, in the background)
//! → HTTP router → serve until SIGINT/SIGTERM → stop every upstream.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context;

use std::sync::Arc;

use crate::config::{Config, ServeOptions};
use crate::http::{self, AppState};
use crate::servers::{Registry, ServerState, SpecContext};
use crate::store::Location;
use crate::store::redis::RedisStore;

/// Runs the daemon until a shutdown signal arrives.
pub async fn run(config: Config, options: ServeOptions) -> anyhow::Result<()> {
    // Bind first: a port conflict should fail fast, before any child process starts.
    let listener = bind(&options)?;
    let tls = http::load_tls(&options).await?;
    let local = listener.local_addr()?;
    let spec = Arc::new(SpecContext::from_options(&options));
    let mut upstream = options.upstream.clone();
    // Sandboxed servers must not see the tool cache either (its whole folder, `$MCPO_CACHE_DIR`).
    if let Some(cache) = &spec.tool_cache {
        let dir = cache.dir();
        upstream
            .private_paths
            .push(dir.parent().unwrap_or(dir).to_path_buf());
    }
    // Before any server starts: every store of the process finds it installed.
    install_store(&options.store)?;
    let registry = Arc::new(Registry::start(config, upstream, spec));
    let state = AppState::new(options.clone(), registry.clone());
    let app = http::router(state);
    match &options.config_path {
        Some(path) => crate::reload::spawn(registry.clone(), path.clone(), options.hot_reload),
        None => crate::reload::ignore_sighup(),
    }
    banner(&options, local, &registry);
    tokio::spawn(startup_summary(
        registry.clone(),
        options.upstream.connect_timeout,
    ));
    http::serve(app, &options, listener, tls, shutdown_signal()).await?;
    tracing::info!("shutting down: stopping upstream servers");
    tokio::time::timeout(Duration::from_secs(15), registry.shutdown())
        .await
        .ok();
    Ok(())
}

/// Installs `--store redis://…` as the process's shared store. Not connected yet: mcpo starts
/// while Redis is down (`/readyz` says so, and the store reconnects); the log says how it
/// stands once the first attempt is over.
fn install_store(location: &Location) -> anyhow::Result<()> {
    let Location::Redis(redis) = location else {
        return Ok(());
    };
    let store = RedisStore::open(redis.clone()).map_err(anyhow::Error::msg)?;
    crate::store::shared::install(store.clone());
    tokio::spawn(async move {
        // The probe's first `PING` (bounded by the store's timeouts) settles it.
        let deadline = tokio::time::Instant::now() + crate::store::redis::TIMEOUT * 3;
        let tried = || {
            store
                .stats
                .operations
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        };
        while !tried() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !store.available() {
            tracing::warn!(
                "store {} is unavailable at start-up ({}): mcpo serves what it holds in memory, \
                 answers 503 for what needs the store, and keeps reconnecting",
                store.shown(),
                store.last_error().unwrap_or_default()
            );
        }
    });
    Ok(())
}

fn bind(options: &ServeOptions) -> anyhow::Result<TcpListener> {
    let host = options.host.trim_start_matches('[').trim_end_matches(']');
    let addr: SocketAddr = format!("{host}:{}", options.port)
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (host, options.port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))
        })
        .with_context(|| format!("invalid --host '{}'", options.host))?;
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn banner(options: &ServeOptions, local: SocketAddr, registry: &Registry) {
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = if local.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        local.ip().to_string()
    };
    let base = format!("{scheme}://{host}:{}{}", local.port(), options.root_path);
    // The worker count is chosen at start (half the cores, or TOKIO_WORKER_THREADS): say it.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(
        "mcpo {} listening on {local} ({workers} worker thread{})",
        env!("CARGO_PKG_VERSION"),
        if workers == 1 { "" } else { "s" }
    );
    match &options.store {
        Location::File => match crate::store::default_token_dir() {
            Ok(dir) => tracing::info!("store: file ({})", dir.display()),
            Err(_) => tracing::info!("store: file"),
        },
        Location::Redis(redis) => {
            tracing::info!("store: {} (key prefix {})", redis.shown(), redis.prefix)
        }
    }
    if options.single_server {
        tracing::info!("docs: {base}{}docs", options.path_prefix);
    } else {
        tracing::info!("docs: {base}/docs   combined spec: {base}/openapi.json");
        for entry in registry.snapshot().iter() {
            let name = entry.name();
            tracing::info!(
                "server '{name}': {base}{}{name}/openapi.json (connecting in the background)",
                options.path_prefix
            );
        }
    }
}

/// Once every server has settled (connected, or failed its first attempt; bounded by the connect
/// timeout), one line lists the servers by state word (the words of `/status`), so the operator
/// does not have to read the whole log.
async fn startup_summary(registry: Arc<Registry>, limit: Duration) {
    let servers = registry.snapshot();
    let settle = servers.iter().map(|s| s.settle());
    let _ = tokio::time::timeout(limit, futures::future::join_all(settle)).await;
    let words = [
        "connected",
        "multi-user",
        "connecting",
        "waiting_for_login",
        "failed",
    ];
    let mut by_word: Vec<Vec<&str>> = vec![Vec::new(); words.len()];
    for server in servers.iter() {
        let state: ServerState = server.state();
        if let Some(i) = words.iter().position(|w| *w == state.word()) {
            by_word[i].push(server.name());
        }
    }
    let list = |v: &[&str]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    let parts: Vec<String> = words
        .iter()
        .zip(&by_word)
        .map(|(word, names)| format!("{word}: {}", list(names)))
        .collect();
    tracing::info!("servers {} (failed ones keep retrying)", parts.join("; "));
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
