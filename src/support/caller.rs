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
