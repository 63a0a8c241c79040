//! OAuth 2.1 client for OAuth-protected streamable-HTTP upstreams.
//!
//! One [`Authorizer`] per server, kept across reconnects: it finds the authorization server
//! (MCP authorization spec discovery), picks or registers a client identity, runs the login
//! (browser with a loopback callback, or copy/paste), stores tokens (files under
//! `~/.mcpo/tokens/` or memory) and hands out an [`AuthorizedClient`] for rmcp's
//! `StreamableHttpClientTransport`, which adds the bearer token, refreshes it, and logs in
//! again in place when the server rejects it (401), asks for more scope (403
//! `insufficient_scope`) or forgot the client (`invalid_client`).
//!
//! The heavy lifting (metadata walk, PKCE S256, `state`, RFC 8707 `resource`, RFC 9207 `iss`,
//! code exchange, refresh) is rmcp's `AuthorizationManager`; this module adds what a daemon
//! needs around it: persistence of the full client registration, the callback listener and
//! browser launch, a login state for 503 bodies, serialised logins per callback port, and a
//! cool-down after a denied or abandoned login so reconnect loops do not open browser after
//! browser.
//!
//! No token, code, PKCE verifier or client secret ever reaches a log line or an error
//! message: rmcp logs the authorization code and the token response at debug level during
//! the exchange, so mcpo runs those calls with tracing switched off.

mod address;
mod assertion;
mod authorizer;
mod browser;
mod callback;
mod client;
mod discovery;
mod error;
mod options;
mod outbound;
mod register;
mod revoke;
mod settings;
mod shared_logins;
mod store;
pub mod store_files;
mod web;

pub use crate::store::folder::{TOKEN_DIR_ENV, default_token_dir};
/// The sealed-record format of stored credentials (for tools and tests that read them).
pub use crate::support::sealed;
pub use authorizer::{Authorizer, LoginState, OAuthCounters, TokenStatus};
pub use browser::BrowserCommand;
pub use callback::html_page;
pub use client::{AuthorizedClient, ScopeRefused, scope_refusal};
pub use error::OAuthError;
pub use options::AuthOptions;
pub use revoke::{Revocation, revoke};
pub use web::{CallbackError, StartError, Started, TicketError, WebLogins};

use crate::config::ServerConfig;

/// `mcpo auth login`: a fresh interactive login for `server` now, whatever tokens are
/// stored and whatever cool-down a daemon would observe; the new tokens replace the old ones.
pub async fn login(server: &ServerConfig, options: AuthOptions) -> Result<(), OAuthError> {
    Authorizer::new(server, options)?.login_now().await
}

/// `mcpo auth logout`: forgets the stored tokens and client registration of `server`.
/// Returns whether anything was stored.
pub async fn logout(server: &ServerConfig, options: AuthOptions) -> Result<bool, OAuthError> {
    Authorizer::new(server, options)?.forget().await
}
