//! Every outbound HTTP client mcpo builds, one function per use, and the policy each follows.
//!
//! What they all share, set by the reqwest features in `Cargo.toml` rather than here:
//! - **TLS**: rustls with the ring provider (installed as the process default in `main`);
//!   server certificates are checked against the platform's trust store
//!   (`rustls-platform-verifier`, reqwest's default); HTTP/2 when the server offers it (ALPN).
//! - **Proxy**: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` from the environment
//!   (reqwest's `system-proxy`), so an operator behind a corporate proxy needs no mcpo flag.
//! - No cookies, no response decompression, no charset decoding (those features are off).
//!
//! What differs, by profile:
//!
//! | profile | used for | whole request | connect | redirects |
//! |---|---|---|---|---|
//! | [`upstream_transport`] (one, shared by every session) | MCP over streamable HTTP and legacy SSE (`upstream/connect.rs`), OAuth-authorized or not | no limit | 10 s | same origin only, at most 10; another origin is an error |
//! | [`oauth_requests`] | requests mcpo's OAuth code makes itself: discovery probes, registration, the client-credentials grant, revocation (`oauth/outbound.rs`), with rmcp's address policy for OAuth requests (`oauth/address.rs`) | 30 s | within the 30 s | none |
//! | [`webui_lookups`] | asking Open WebUI who an `sk-` API key belongs to (`http/caller/api_key.rs`) | [`WEBUI_LOOKUP_TIMEOUT`] (5 s) | 2 s | none |
//!
//! Why:
//! - The transport has **no whole-request timeout**: a streamable-HTTP GET or a legacy SSE
//!   stream stays open for the whole session, and a timeout would cut it (rmcp's OAuth client
//!   example says the same of its transport client). Calls are bounded one by one instead, by
//!   the per-call timeout (`--tool-timeout`, `upstream::Session::call_tool`), and connection
//!   attempts by `--connect-timeout` around `initialize`. The 10 s connect bound only makes a
//!   dead host fail fast.
//! - The transport follows a redirect only **within the configured origin** (scheme, host
//!   and port), as rmcp's own default client does: reqwest replays the request's headers and
//!   body to wherever a redirect points, so a cross-origin one would hand the configured
//!   headers (`X-Api-Key: ${SECRET}`), the OAuth bearer token and every JSON-RPC message to a
//!   host nobody configured. It is an error that names the target's origin instead.
//! - OAuth and Open WebUI endpoints **do not redirect**: a metadata, registration or token
//!   endpoint that redirects is refused rather than followed to a host nobody configured, and
//!   an API key (a bearer token) is never re-sent to wherever a redirect points.
//! - An API-key lookup sits in the path of a tool call, so it is bounded tightly: a dead Open
//!   WebUI answers 504 after 5 s instead of hanging the call.
//!
//! Not built here: rmcp's `AuthorizationManager` (token refresh and code exchange) keeps its
//! own pair of clients (30 s, with and without redirects), because they resolve names through
//! its address filter, which refuses link-local and cloud-metadata addresses; mcpo's own
//! OAuth client applies the same rule (`oauth/address.rs`).

use std::sync::Arc;
use std::time::Duration;

/// The longest an API-key lookup at Open WebUI may take, connect included.
pub(crate) const WEBUI_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections the shared upstream client keeps per host (reqwest keeps any number for
/// 90 s): when a multi-user server's sessions close, their connections would otherwise stay,
/// ~20 KiB each, thousands of them. 64 still covers 64 callers at once without reconnecting.
const MAX_IDLE_PER_HOST: usize = 64;

/// Redirects the upstream transport follows for one request, at most.
const MAX_REDIRECTS: usize = 10;

/// The client for an upstream MCP session's HTTP transport: no whole-request timeout (see the
/// module doc), 10 s to connect, same-origin redirects only.
///
/// **One client for every upstream session of the process** (a clone shares it): one
/// connection pool, one copy of the TLS roots and one resolver, however many sessions. A client
/// per session cost ~300 KiB each (its root store, connector and pool), which is what a
/// multi-user server's thousands of per-user sessions multiplied. Sharing mixes nobody's
/// credentials: the client has no default headers and no cookie store, and everything that
/// identifies a caller travels on each request (rmcp adds the configured headers, the bearer
/// token and the `Mcp-Session-Id` per request; the OAuth client adds each user's own token per
/// request, `oauth/client.rs`). What is shared is only connections, keyed by origin (and proxy),
/// which carry no identity over HTTP.
pub(crate) fn upstream_transport() -> reqwest::Client {
    static SHARED: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            build(
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
                    .redirect(same_origin_redirects()),
            )
        })
        .clone()
}

/// Why a redirect was not followed: it pointed to another origin.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused a redirect from {from} to another origin ({to}): mcpo follows redirects only \
     within the configured origin, so configured headers and messages never reach a host \
     nobody configured; if that host is the server, configure its address as the url"
)]
struct CrossOriginRedirect {
    from: String,
    to: String,
}

/// Follows a redirect only when it stays on the origin (scheme, host, port) of the request's
/// first URL; one to another origin is an error naming both origins (never a path or query,
/// which may carry a secret).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        let (from, to) = (first.origin(), attempt.url().origin());
        if from != to {
            let error = CrossOriginRedirect {
                from: from.ascii_serialization(),
                to: to.ascii_serialization(),
            };
            attempt.error(error)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// The client for mcpo's own OAuth requests: 30 s per request, no redirects, names resolved
/// through `resolver` (the OAuth address policy, `oauth/address.rs`, which drops the
/// addresses rmcp refuses for its own OAuth requests).
pub(crate) fn oauth_requests(resolver: Arc<dyn reqwest::dns::Resolve>) -> reqwest::Client {
    build(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .dns_resolver(resolver),
    )
}

/// The client for API-key lookups at Open WebUI: [`WEBUI_LOOKUP_TIMEOUT`] per lookup, 2 s to
/// connect, no redirects.
pub(crate) fn webui_lookups() -> reqwest::Client {
    build(
        reqwest::Client::builder()
            .timeout(WEBUI_LOOKUP_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none()),
    )
}

/// Building fails only when the TLS backend cannot start; reqwest's default client is then
/// the same attempt without our settings (and panics with reqwest's own message).
fn build(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder.build().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/moved` redirects (307) to `{to}/echo`; `/echo` answers with the request body.
    async fn redirecting_server(to: Option<String>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let to = to.unwrap_or_else(|| format!("http://{addr}"));
        let app = axum::Router::new()
            .route(
                "/moved",
                axum::routing::post(move || {
                    let to = to.clone();
                    async move { axum::response::Redirect::temporary(&format!("{to}/echo")) }
                }),
            )
            .route(
                "/echo",
                axum::routing::post(|body: String| async move { body }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn transport_follows_same_origin_redirects_only() {
        let client = upstream_transport();
        let same = redirecting_server(None).await;
        let answer = client
            .post(format!("http://{same}/moved"))
            .body("kept")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.text().await.unwrap(), "kept");

        let other = redirecting_server(Some(format!("http://{same}"))).await;
        let err = client
            .post(format!("http://{other}/moved"))
            .body("secret")
            .send()
            .await
            .unwrap_err();
        let text = crate::support::error_chain(&err);
        assert!(text.contains("another origin"), "{text}");
        assert!(text.contains(&format!("http://{same}")), "{text}");
    }
}
