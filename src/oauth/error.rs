//! [`OAuthError`]: why an OAuth step failed, the one error type of the `oauth` module.

use std::time::Duration;

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
