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

mod assertion;
mod authorizer;
mod browser;
mod callback;
mod client;
mod discovery;
mod lock;
mod register;
mod revoke;
mod settings;
mod store;
mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub use authorizer::{Authorizer, LoginState, OAuthCounters, TokenStatus};
pub use browser::BrowserCommand;
pub use callback::html_page;
pub use client::{AuthorizedClient, ScopeRefused, scope_refusal};
pub use revoke::{Revocation, revoke};
pub use store::TOKEN_DIR_ENV;
pub use web::{CallbackError, StartError, Started, TicketError, WebLogins};

use crate::config::ServerConfig;

/// Why an OAuth step failed. Messages name the server and say what to do; they never carry
/// tokens, codes or secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    #[error("server '{server}': {message}")]
    Config { server: String, message: String },
    #[error("server '{server}': OAuth discovery failed: {message}")]
    Discovery { server: String, message: String },
    #[error(
        "server '{server}': refusing to authorize: the protected resource metadata is for \
         {resource}, not for this server ({url})"
    )]
    ResourceMismatch {
        server: String,
        url: String,
        resource: String,
    },
    #[error("server '{server}': OAuth client registration failed: {message}")]
    Registration { server: String, message: String },
    #[error("server '{server}': the OAuth login was denied ({error}{}){}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default(), HINT)]
    Denied {
        server: String,
        error: String,
        description: Option<String>,
    },
    #[error("server '{server}': nobody completed the OAuth login within {} s{}", timeout.as_secs(), HINT)]
    TimedOut { server: String, timeout: Duration },
    #[error(
        "server '{server}': cannot listen for the OAuth callback on 127.0.0.1:{port}: \
         {message}; free the port or set oauth.callback_port"
    )]
    CallbackPort {
        server: String,
        port: u16,
        message: String,
    },
    #[error("server '{server}': OAuth login failed: {message}")]
    Login { server: String, message: String },
    #[error("server '{server}': OAuth token request failed: {message}")]
    Token { server: String, message: String },
    #[error("server '{server}': OAuth token storage: {message}")]
    Storage { server: String, message: String },
    /// Multi-user mode: this user has no usable tokens; they sign in through mcpo's login link.
    #[error(
        "server '{server}': you have not signed in to this server yet (or your sign-in \
         expired); open the login link to sign in"
    )]
    LoginRequired { server: String },
    #[error(
        "server '{server}': OAuth login needed; the last attempt failed ({reason}); next \
         attempt in {} s{}", retry_after.as_secs().max(1), HINT
    )]
    CoolingDown {
        server: String,
        reason: String,
        retry_after: Duration,
    },
}

const HINT: &str = "; run `mcpo auth login --config FILE SERVER` to sign in now";

impl OAuthError {
    /// How long until a new login attempt is allowed, for errors that impose a wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OAuthError::CoolingDown { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// How logins reach the user, and where tokens go. `Default` is what the daemon and the
/// `mcpo auth` commands use.
#[derive(Clone, Default)]
pub struct AuthOptions {
    browser: Option<BrowserCommand>,
    paste: Option<callback::PasteSource>,
    token_dir: Option<PathBuf>,
    cool_down: Option<Duration>,
    /// Multi-user mode: the caller these tokens belong to. Such an authorizer never opens a
    /// browser or a loopback listener: its user signs in through mcpo's web login.
    user: Option<String>,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOptions")
            .field("browser", &self.browser)
            .field("token_dir", &self.token_dir)
            .field("cool_down", &self.cool_down)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl AuthOptions {
    /// Open authorization URLs with `program args... URL` instead of `$BROWSER` / the system
    /// opener.
    pub fn browser_command(mut self, program: impl Into<String>, args: Vec<String>) -> Self {
        self.browser = Some(BrowserCommand {
            program: program.into(),
            args,
        });
        self
    }

    /// Read pasted callback URLs (manual flow) from `lines` instead of standard input.
    pub fn pasted_lines(mut self, lines: mpsc::UnboundedReceiver<String>) -> Self {
        self.paste = Some(callback::PasteSource::Lines(Arc::new(
            tokio::sync::Mutex::new(lines),
        )));
        self
    }

    /// Keep `file` tokens in `dir` instead of `$MCPO_TOKEN_DIR` / `~/.mcpo/tokens`.
    pub fn token_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.token_dir = Some(dir.into());
        self
    }

    /// Tokens, registration and logins of one multi-user caller (see [`WebLogins`]).
    pub(crate) fn for_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The first wait after a denied or abandoned login (doubles up to 15 min; default 60 s).
    pub fn cool_down(mut self, wait: Duration) -> Self {
        self.cool_down = Some(wait);
        self
    }
}

/// `mcpo auth login`: a fresh interactive login for `server` now, whatever tokens are
/// stored and whatever cool-down a daemon would observe; the new tokens replace the old ones.
pub async fn login(server: &ServerConfig, options: AuthOptions) -> Result<(), OAuthError> {
    Authorizer::new(server, options)?.login_now().await
}

/// `mcpo auth logout`: forgets the stored tokens and client registration of `server`.
/// Returns whether anything was stored.
pub async fn logout(server: &ServerConfig, options: AuthOptions) -> Result<bool, OAuthError> {
    Authorizer::new(server, options)?.forget()
}
