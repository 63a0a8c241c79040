//! The inbound HTTP side: the axum router, shared state, and serving (plain or TLS).
//!
//! Routes are dynamic over the set of servers: `POST {prefix}{server}/{tool}` looks the server
//! and tool up in [`AppState`] per request, so a server that connects late (or changes its tool
//! list) is served without rebuilding the router. Specs are cached per session generation, never
//! rebuilt per request.

mod auth;
mod catalog;
mod docs;
pub mod error;
mod reply;
mod tools;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::ServeOptions;
use crate::upstream::Upstream;
use catalog::ServerEntry;

/// Everything a handler needs; cloned per request as one `Arc`.
pub struct AppState {
    pub options: ServeOptions,
    /// Servers by name, in config order for listings.
    servers: HashMap<String, Arc<ServerEntry>>,
    order: Vec<String>,
    combined: catalog::CombinedCache,
    spec: catalog::SpecContext,
}

impl AppState {
    pub fn new(options: ServeOptions, upstreams: Vec<Upstream>) -> Arc<Self> {
        let order = upstreams.iter().map(|u| u.name.clone()).collect();
        let servers = upstreams
            .into_iter()
            .map(|u| (u.name.clone(), Arc::new(ServerEntry::new(u))))
            .collect();
        Arc::new(Self {
            spec: catalog::SpecContext::from_options(&options),
            options,
            servers,
            order,
            combined: Default::default(),
        })
    }

    fn server(&self, name: &str) -> Option<&Arc<ServerEntry>> {
        self.servers.get(name)
    }

    /// Configured server names, in config order.
    pub fn server_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Servers in config order.
    fn servers(&self) -> impl Iterator<Item = &Arc<ServerEntry>> {
        self.order.iter().filter_map(|n| self.servers.get(n))
    }

    /// The single server of `mcpo -- cmd` mode.
    fn only_server(&self) -> Option<&Arc<ServerEntry>> {
        self.servers().next()
    }

    /// Stops every upstream (children and sessions) in parallel.
    pub async fn shutdown(&self) {
        let stops = self.servers().map(|s| s.upstream.shutdown());
        futures::future::join_all(stops).await;
    }
}

/// Builds the whole router for the current options and servers.
pub fn router(state: Arc<AppState>) -> Router {
    let opts = &state.options;
    let prefix = opts.path_prefix.trim_end_matches('/').to_owned();
    let mut servers = Router::new();
    if opts.single_server {
        servers = servers
            .route("/openapi.json", get(docs::single_spec))
            .route("/docs", get(docs::single_docs))
            .route("/docs/", get(docs::single_docs))
            .route("/docs/{*file}", get(docs::single_docs_asset))
            .route("/{tool}", post(tools::call_single));
    } else {
        servers = servers
            .route("/{server}/openapi.json", get(docs::server_spec))
            .route("/{server}/docs", get(docs::server_docs))
            .route("/{server}/docs/", get(docs::server_docs))
            .route("/{server}/docs/{*file}", get(docs::server_docs_asset))
            .route("/{server}/{tool}", post(tools::call));
    }
    let servers = servers.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_api_key,
    ));

    let mut root = Router::new().route("/healthz", get(docs::healthz));
    if !opts.single_server {
        let index = Router::new()
            .route("/", get(docs::index))
            .route("/openapi.json", get(docs::combined_spec))
            .route("/docs", get(docs::root_docs))
            .route("/docs/", get(docs::root_docs))
            .route("/docs/{*file}", get(docs::root_docs_asset))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_api_key,
            ));
        root = root.merge(index);
    }
    let app = if prefix.is_empty() {
        root.merge(servers)
    } else {
        root.nest(&prefix, servers)
    };
    app.fallback(docs::not_found)
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .layer(cors(&opts.cors_allow_origins))
        .with_state(state)
}

/// Answers preflights for the configured origins. Credentials are allowed only for an explicit
/// origin list: browsers refuse `*` with credentials, so with `*` we mirror the request origin.
fn cors(origins: &[String]) -> CorsLayer {
    use axum::http::{HeaderName, Method, header};
    let allow_headers = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        HeaderName::from_static("x-session-id"),
        HeaderName::from_static("x-openwebui-user-jwt"),
    ];
    let origin = if origins.is_empty() || origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(allow_headers)
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600))
}

/// Serves `app` until `shutdown` resolves, over TLS when configured.
pub async fn serve(
    app: Router,
    options: &ServeOptions,
    listener: std::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::<SocketAddr>::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let make = app.into_make_service();
    match &options.tls {
        Some(tls) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot load TLS certificate '{}' / key '{}': {e}",
                        tls.cert.display(),
                        tls.key.display()
                    )
                })?;
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
