//! Where a served server stands, in one vocabulary: `/`, `/status`, `/readyz`, `/metrics`, the
//! start-up summary and every 503 body read a [`ServerState`], and its [`ServerState::word`] is
//! the word they all print (documented in `docs/configuration.md`, "Server states").

use std::sync::Arc;
use std::time::Instant;

use crate::upstream::{Failure, Session, Status};

/// The state of one server (or of one user's session of a multi-user server).
#[derive(Debug, Clone)]
pub enum ServerState {
    /// A session is up: calls are served.
    Connected(Arc<Session>),
    /// Multi-user: every caller gets a session of their own; `tools` is the size of the last
    /// known tool list, which callers without a session are shown.
    MultiUser { tools: usize },
    /// Not connected: the first attempt is under way (`failure` is `None`), a login waits for a
    /// person ([`Failure::LoginPending`]), or the last attempt failed and another follows at
    /// `retry_at`.
    Connecting {
        attempts: u32,
        failure: Option<Failure>,
        retry_at: Option<Instant>,
    },
    /// Shut down on purpose (daemon stopping, server removed).
    Stopped,
}

impl ServerState {
    /// The state word: `connected`, `multi-user`, `connecting`, `waiting_for_login`, `failed`
    /// or `stopped`.
    pub fn word(&self) -> &'static str {
        match self {
            ServerState::Connected(_) => "connected",
            ServerState::MultiUser { .. } => "multi-user",
            ServerState::Connecting { failure: None, .. } => "connecting",
            ServerState::Connecting {
                failure: Some(f), ..
            } if f.is_login_pending() => "waiting_for_login",
            ServerState::Connecting { .. } => "failed",
            ServerState::Stopped => "stopped",
        }
    }

    /// The coarse word of `/`'s `status` field, kept from earlier versions: the three
    /// not-connected words are all `connecting` there (`state` has the fine one).
    pub fn coarse_word(&self) -> &'static str {
        match self {
            ServerState::Connecting { .. } => "connecting",
            other => other.word(),
        }
    }

    /// Calls can be served now (or, multi-user, each caller's own session is opened on demand).
    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            ServerState::Connected(_) | ServerState::MultiUser { .. }
        )
    }

    /// Still in its first attempt: nothing is known yet about whether it will connect.
    pub fn is_unsettled(&self) -> bool {
        matches!(self, ServerState::Connecting { failure: None, .. })
    }

    /// Why the server is not connected, as operators read it.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ServerState::Connecting { failure, .. } => failure.as_ref(),
            _ => None,
        }
    }

    /// Tools served now or last known.
    pub fn tools(&self) -> Option<usize> {
        match self {
            ServerState::Connected(session) => Some(session.tools.len()),
            ServerState::MultiUser { tools } => Some(*tools),
            _ => None,
        }
    }
}

impl From<Status> for ServerState {
    fn from(status: Status) -> Self {
        match status {
            Status::Ready(session) => ServerState::Connected(session),
            Status::Connecting {
                attempts,
                failure,
                retry_at,
            } => ServerState::Connecting {
                attempts,
                failure,
                retry_at,
            },
            Status::Stopped => ServerState::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connecting(failure: Option<Failure>) -> ServerState {
        ServerState::Connecting {
            attempts: 1,
            failure,
            retry_at: None,
        }
    }

    #[test]
    fn one_word_per_state() {
        let cases = [
            (
                ServerState::MultiUser { tools: 3 },
                "multi-user",
                "multi-user",
                true,
            ),
            (connecting(None), "connecting", "connecting", false),
            (
                connecting(Some(Failure::LoginPending { url: None })),
                "waiting_for_login",
                "connecting",
                false,
            ),
            (
                connecting(Some(Failure::Connect("refused".into()))),
                "failed",
                "connecting",
                false,
            ),
            (ServerState::Stopped, "stopped", "stopped", false),
        ];
        for (state, word, coarse, ready) in cases {
            assert_eq!(state.word(), word, "{state:?}");
            assert_eq!(state.coarse_word(), coarse, "{state:?}");
            assert_eq!(state.is_ready(), ready, "{state:?}");
        }
        assert!(connecting(None).is_unsettled());
        assert!(!connecting(Some(Failure::OAuth("x".into()))).is_unsettled());
    }
}
