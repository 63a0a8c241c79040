//! [`Caller`]: who a request comes from, once `http` has verified it, and so whose upstream
//! session and OAuth tokens serve it in multi-user mode.
//!
//! A typed key rather than a string: the `--api-key` holder and anonymous callers used to be
//! keyed by the strings `"\0service"` and `"\0anonymous"`, so an Open WebUI user whose id was
//! exactly `"\0service"` (ids are whatever a valid JWT says) shared the API-key holder's
//! session and tokens. A variant can't be spelled by any user id.

use serde::{Deserialize, Serialize};

/// The verified identity behind a request; also the key of its own session, tokens and login
/// tickets on multi-user servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Caller {
    /// Presented the `--api-key` (one shared "service" identity).
    Service,
    /// An Open WebUI user, by the id their verified credentials name.
    User(String),
    /// No credentials, and none were required for this route.
    Anonymous,
}

impl Caller {
    /// How logs and pages name the caller (user ids are not secrets; tokens never appear).
    pub fn log_id(&self) -> &str {
        match self {
            Caller::User(id) => id,
            Caller::Service => "service",
            Caller::Anonymous => "anonymous",
        }
    }
}

impl Caller {
    /// The user a stored record (tokens, secrets) belongs to: the user id, and for the
    /// API-key holder and anonymous callers names no user id can spell.
    pub fn owner_key(&self) -> String {
        match self {
            Caller::User(id) if id.starts_with('\u{0}') => format!("\u{0}user:{id}"),
            Caller::User(id) => id.clone(),
            Caller::Service => "\u{0}service".to_owned(),
            Caller::Anonymous => "\u{0}anonymous".to_owned(),
        }
    }
}

/// What a verified identity says about the caller besides the id: kept apart from
/// [`Caller`] (which keys sessions, tokens and tickets) so that the same user keeps one
/// session whichever credential arrives. Only the signed `X-OpenWebUI-User-Jwt` carries these;
/// an Open WebUI session JWT or `sk-` key gives none. Used to fill in `{{USER_EMAIL}}`,
/// `{{USER_NAME}}` and `{{USER_ROLE}}` when the caller's session starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<String>,
}
