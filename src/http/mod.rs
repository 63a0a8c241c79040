//! The inbound HTTP side: the axum router, shared state, and serving (plain or TLS).
//!
//! Routes are dynamic over the set of servers: `POST {prefix}{server}/{tool}` looks the server
//! and tool up in [`AppState`] per request, so a server that connects late (or changes its tool
//! list) is served without rebuilding the router. Specs are cached per session generation, never
//! rebuilt per request.

mod browsers;
mod caller;
mod credentials;
mod docs;
pub mod error;
mod guard;
mod health;
mod listings;
mod login;
mod metrics;
mod prompts;
pub mod reply;
mod resources;
mod result_limit;
mod session;
mod spec_bytes;
mod swagger;
mod tools;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::config::ServeOptions;
use crate::servers::{Registry, Server, SpecContext};

/// Everything a handler needs; shared by all requests as one `Arc`.
pub struct AppState {
    pub options: ServeOptions,
    /// The served servers; handlers only ask it (it starts and stops sessions, not `http`).
    pub registry: Arc<Registry>,
    started_at: std::time::Instant,
    metrics: metrics::Metrics,
    /// Resolves Open WebUI API keys (`sk-…`) to users, with a short-lived cache.
    api_keys: caller::ApiKeys,
}

impl AppState {
    pub fn new(options: ServeOptions, registry: Arc<Registry>) -> Arc<Self> {
        Arc::new(Self {
            api_keys: caller::ApiKeys::new(options.webui_url.as_deref()),
            registry,
            options,
            started_at: std::time::Instant::now(),
            metrics: Default::default(),
        })
    }

    fn spec(&self) -> &SpecContext {
        &self.registry.spec
    }

    fn server(&self, name: &str) -> Option<Arc<Server>> {
        self.registry.snapshot().get(name).cloned()
    }

    /// Where `server`'s routes start: `{root_path}{path_prefix}{server}`, or without the server
    /// in single-server mode.
    fn server_base(&self, server: &str) -> String {
        let base = &self.spec().base;
        if self.options.single_server {
            base.clone()
        } else {
            format!("{base}/{server}")
        }
    }

    /// The single server of `mcpo -- cmd` mode.
    fn only_server(&self) -> Option<Arc<Server>> {
        self.registry.snapshot().iter().next().cloned()
    }
}

/// Builds the whole router for the current options and servers.
pub fn router(state: Arc<AppState>) -> Router {
    let opts = &state.options;
    let prefix = opts.path_prefix.trim_end_matches('/').to_owned();
    // Specs and docs (GET) get the Basic challenge; tool calls (POST) never pass through it, so
    // the hot path has no extra layer.
    let (docs, calls) = if opts.single_server {
        (
            Router::new()
                .route("/openapi.json", get(docs::single_spec))
                .route("/docs", get(docs::single_docs))
                .route("/docs/", get(docs::single_docs))
                .route("/docs/{*file}", get(docs::single_docs_asset)),
            Router::new()
                .route("/{tool}", post(tools::call_single).get(listings::get_named))
                .merge(listing_routes("")),
        )
    } else {
        (
            Router::new()
                .route("/{server}/openapi.json", get(docs::server_spec))
                .route("/{server}/docs", get(docs::server_docs))
                .route("/{server}/docs/", get(docs::server_docs))
                .route("/{server}/docs/{*file}", get(docs::server_docs_asset)),
            Router::new()
                .route(
                    &format!("/{{server}}{}", crate::servers::LOGIN_PATH),
                    post(login::link),
                )
                .route(
                    &format!("/{{server}}{}", crate::servers::CREDENTIALS_PATH),
                    post(credentials::link),
                )
                .route(
                    "/{server}/{tool}",
                    post(tools::call).get(listings::get_named),
                )
                .merge(listing_routes("/{server}")),
        )
    };
    let servers = docs
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::basic_challenge,
        ))
        .merge(calls);

    let mut root = Router::new()
        .route(login::CONFIRM_ROUTE, get(login::confirm).post(login::login))
        .route("/oauth/{server}/callback", get(login::callback))
        .route("/oauth/{server}/status", get(login::status))
        .route(
            credentials::PAGE_ROUTE,
            get(credentials::page).post(credentials::submit),
        )
        .route(credentials::STATUS_ROUTE, get(credentials::status))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(
            Router::new()
                .route("/status", get(health::status))
                .route("/metrics", get(metrics::metrics))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    guard::require_api_key_always,
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    guard::basic_challenge,
                )),
        );
    if !opts.single_server {
        let index = Router::new()
            .route("/", get(docs::index))
            .route("/openapi.json", get(docs::combined_spec))
            .route("/docs", get(docs::root_docs))
            .route("/docs/", get(docs::root_docs))
            .route("/docs/{*file}", get(docs::root_docs_asset))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                guard::require_api_key,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                guard::basic_challenge,
            ));
        root = root.merge(index);
    }
    let app = if prefix.is_empty() {
        root.merge(servers)
    } else {
        root.nest(&prefix, servers)
    };
    let app = app
        .fallback(docs::not_found)
        .layer(DefaultBodyLimit::max(opts.max_body_bytes));
    // Outermost: an unknown host or a refused cross-origin request reaches nothing else.
    let policy = browsers::Policy::new(opts);
    let app = match browsers::cors(&policy) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(axum::middleware::from_fn_with_state(
        policy,
        browsers::guard,
    ))
    .with_state(state)
}

/// The resource and prompt routes under `base` (`/{server}`, or `` for the single server);
/// `GET {base}/resources` and `{base}/prompts` share `{base}/{tool}` with the tool calls.
fn listing_routes(base: &str) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            &format!("{base}/resources/templates"),
            get(resources::templates),
        )
        .route(
            &format!("{base}/resources/read"),
            get(resources::read_get).post(resources::read_post),
        )
        .route(&format!("{base}/resources/raw"), get(resources::raw))
        .route(&format!("{base}/prompts/{{name}}"), post(prompts::get))
}

/// Loads the TLS certificate and key, before anything starts, so a bad file fails fast.
pub async fn load_tls(
    options: &ServeOptions,
) -> anyhow::Result<Option<axum_server::tls_rustls::RustlsConfig>> {
    let Some(tls) = &options.tls else {
        return Ok(None);
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load TLS certificate '{}' / key '{}': {e}",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    Ok(Some(config))
}

/// Serves `app` until `shutdown` resolves, over TLS when `tls` is given.
pub async fn serve(
    app: Router,
    options: &ServeOptions,
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = options.upstream.shutdown_grace;
    let handle = axum_server::Handle::<SocketAddr>::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(grace));
    });
    let make = app.into_make_service();
    match tls {
        Some(config) => {
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(make)
                .await?;
        }
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(make)
                .await?;
        }
    }
    Ok(())
}
