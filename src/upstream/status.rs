//! Where one supervised connection stands, as values: the HTTP side, `/status` and the start-up
//! summary read these, never a message parsed back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Session;

/// Where a server's connection stands right now.
#[derive(Debug, Clone)]
pub enum Status {
    /// Not connected yet, or reconnecting after a failure.
    Connecting {
        attempts: u32,
        /// Why the last attempt did not give a session (`None` before the first one ends).
        failure: Option<Failure>,
        /// When the next attempt starts (for `Retry-After`); `None` while one is under way.
        retry_at: Option<Instant>,
    },
    Ready(Arc<Session>),
    /// Shut down on purpose (daemon stopping, server removed).
    Stopped,
}

impl Status {
    /// The status before the first attempt has ended.
    pub fn starting() -> Self {
        Status::Connecting {
            attempts: 0,
            failure: None,
            retry_at: None,
        }
    }
}

/// Why a connection is not up. Its `Display` is the text operators see in `last_error`, logs
/// and 503 bodies; code looks at the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The OAuth login waits for a person; `url` is where to sign in, once the login has
    /// started (the authorization URL of a single-user loopback or paste login).
    LoginPending { url: Option<String> },
    /// The OAuth step failed (refused, token exchange failed, authorization server down…).
    OAuth(String),
    /// The server's OAuth settings cannot work; retrying does not help.
    BadSettings(String),
    /// Spawning, connecting, `initialize` or `tools/list` failed.
    Connect(String),
    /// The upstream refused the credentials it was given (HTTP 401/403 at `initialize`).
    Refused(String),
    /// Connecting and initializing did not finish in time.
    TimedOut(Duration),
    /// A session was up and ended (the process exited, the stream closed, a ping got no answer).
    Lost(String),
}

impl Failure {
    /// A person has to sign in before anything else can happen.
    pub fn is_login_pending(&self) -> bool {
        matches!(self, Failure::LoginPending { .. })
    }

    /// Where to sign in, while a single-user login waits for a person: the authorization URL
    /// with its `state`. Only for the log, the terminal and holders of the API key (`/status`):
    /// whoever has it can complete the login with their own account.
    pub fn login_url(&self) -> Option<&str> {
        match self {
            Failure::LoginPending { url } => url.as_deref(),
            _ => None,
        }
    }
}

/// The text operators read (`/status`, logs): every URL in it redacted (userinfo, query and
/// fragment), the authorization URL's `state` and a child's stderr tail included, since the
/// texts come from upstreams, child processes and libraries (a `postgres://user:pass@…` a
/// server printed before it died is one). [`Failure::login_url`] has the URL itself.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::support::redact::{self, urls_in};
        match self {
            Failure::LoginPending { url: Some(url) } => {
                write!(
                    f,
                    "waiting for the OAuth login: sign in at {}",
                    redact::url(url)
                )
            }
            Failure::LoginPending { url: None } => {
                f.write_str("waiting for the OAuth login to start")
            }
            Failure::OAuth(e) => write!(f, "OAuth: {}", urls_in(e)),
            Failure::BadSettings(e) => write!(f, "OAuth: invalid OAuth settings: {}", urls_in(e)),
            Failure::Connect(e) | Failure::Lost(e) | Failure::Refused(e) => {
                f.write_str(&urls_in(e))
            }
            Failure::TimedOut(limit) => {
                write!(f, "connect and initialize did not finish within {limit:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts are what `/status` showed before the states were typed (`/` and 503 bodies
    /// did too); operators and the troubleshooting guide quote them. URLs are redacted.
    #[test]
    fn failures_read_as_before() {
        let cases = [
            (
                Failure::LoginPending {
                    url: Some("https://as/authorize?x=1".into()),
                },
                "waiting for the OAuth login: sign in at https://as/authorize?[redacted]",
            ),
            (
                Failure::LoginPending { url: None },
                "waiting for the OAuth login to start",
            ),
            (Failure::OAuth("refused".into()), "OAuth: refused"),
            (
                Failure::BadSettings("no key".into()),
                "OAuth: invalid OAuth settings: no key",
            ),
            (Failure::Connect("cannot start".into()), "cannot start"),
            (
                Failure::Lost("exited; stderr: DATABASE_URL=postgres://app:hunter2@db/app".into()),
                "exited; stderr: DATABASE_URL=postgres://[redacted]@db/app",
            ),
            (
                Failure::TimedOut(Duration::from_secs(3)),
                "connect and initialize did not finish within 3s",
            ),
            (Failure::Lost("session ended".into()), "session ended"),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
        assert!(Failure::LoginPending { url: None }.is_login_pending());
        let pending = Failure::LoginPending {
            url: Some("https://as/authorize?state=s".into()),
        };
        assert_eq!(pending.login_url(), Some("https://as/authorize?state=s"));
        assert!(!Failure::OAuth("x".into()).is_login_pending());
    }
}
