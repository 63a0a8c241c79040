//! One supervised MCP connection per configured server.
//!
//! [`Upstream::start`] spawns a supervisor task that connects (stdio child, streamable HTTP or
//! our legacy SSE transport), lists the tools, publishes a [`Session`] through a `watch`
//! channel, and reconnects with capped exponential backoff whenever the connection ends. Callers
//! (the `servers` layer) only ever read the latest [`Status`]: there is no lock around tool calls, and
//! concurrent calls share one session because rmcp multiplexes JSON-RPC requests.
//!
//! This module never knows about HTTP callers; it speaks in tools, arguments and results.

pub mod child_env;
mod connect;
mod incoming;
mod limiter;
mod listing;
mod refusal;
mod sandbox;
mod session;
pub mod sse;
mod status;
mod stdio;
mod supervisor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::config::ServerConfig;
pub use crate::config::UpstreamOptions;
use crate::oauth::Authorizer;
pub use connect::ServerMeta;
pub use limiter::{Busy, CallLimiter, Stats};
pub use session::{CANCEL_GRACE, CallError, Listing, Session};
pub use status::{Failure, Status};
pub use supervisor::KnownTools;
use supervisor::Supervisor;

/// The handle to one supervised upstream server.
pub struct Upstream {
    pub name: String,
    pub config: ServerConfig,
    pub stats: Arc<Stats>,
    /// The server's OAuth client (shared with the supervisor), for counters and login state.
    pub authorizer: Option<Authorizer>,
    status: watch::Receiver<Status>,
    shutdown: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts connecting in the background and returns at once; see [`Upstream::status`].
    /// `authorizer` is the server's OAuth client (built by the owner: in multi-user mode each
    /// user's session gets that user's own); `stats` is where reconnects are counted.
    pub fn start(
        config: ServerConfig,
        options: UpstreamOptions,
        authorizer: Option<Authorizer>,
        stats: Arc<Stats>,
    ) -> Self {
        Self::supervise(config, options, Ok(authorizer), stats, None)
    }

    /// Like [`Upstream::start`], but each connection takes the tool list `known` returns (if
    /// any) instead of asking the server with `tools/list`: a multi-user server's new user
    /// session costs `initialize`, `notifications/initialized` and the call, nothing more.
    /// Only for a server whose tool list is the same for every session (not `per_user_tools`);
    /// a `tools/list_changed` from the server still lists them.
    pub fn start_with_known_tools(
        config: ServerConfig,
        options: UpstreamOptions,
        authorizer: Option<Authorizer>,
        stats: Arc<Stats>,
        known: KnownTools,
    ) -> Self {
        Self::supervise(config, options, Ok(authorizer), stats, Some(known))
    }

    /// A server whose OAuth settings cannot work (`reason`): it never connects without the
    /// authentication it asked for, and its status says why.
    pub fn misconfigured(
        config: ServerConfig,
        options: UpstreamOptions,
        reason: String,
        stats: Arc<Stats>,
    ) -> Self {
        Self::supervise(config, options, Err(reason), stats, None)
    }

    fn supervise(
        config: ServerConfig,
        options: UpstreamOptions,
        authorizer: Result<Option<Authorizer>, String>,
        stats: Arc<Stats>,
        known_tools: Option<KnownTools>,
    ) -> Self {
        let (tx, rx) = watch::channel(Status::starting());
        let shutdown = Arc::new(Notify::new());
        let shared = authorizer.as_ref().ok().and_then(Option::clone);
        let supervisor = Supervisor {
            config: config.clone(),
            options,
            authorizer,
            status: tx,
            shutdown: shutdown.clone(),
            stats: stats.clone(),
            known_tools,
        };
        let task = tokio::spawn(supervisor.run());
        Self {
            name: config.name.clone(),
            config,
            stats,
            authorizer: shared,
            status: rx,
            shutdown,
            task,
        }
    }

    /// The latest status; cheap (a clone of an `Arc` or a small enum).
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The current session, if connected.
    pub fn session(&self) -> Option<Arc<Session>> {
        match &*self.status.borrow() {
            Status::Ready(session) => Some(session.clone()),
            _ => None,
        }
    }

    /// The current session; if the server is (re)connecting, waits up to `wait` for it, so a
    /// call that arrives while a crashed server restarts is served instead of refused. Returns
    /// the last status when no session came in time.
    pub async fn ready_session(&self, wait: Duration) -> Result<Arc<Session>, Status> {
        match self.status() {
            Status::Ready(session) => return Ok(session),
            // Backing off past the wait: answer now rather than hold the caller for nothing.
            Status::Connecting {
                retry_at: Some(at), ..
            } if at.saturating_duration_since(Instant::now()) > wait => {
                return Err(self.status());
            }
            _ => {}
        }
        let mut rx = self.status.clone();
        let outcome = tokio::time::timeout(
            wait,
            rx.wait_for(|s| matches!(s, Status::Ready(_) | Status::Stopped)),
        )
        .await;
        let status = match outcome {
            Ok(Ok(s)) => s.clone(),
            _ => self.status(),
        };
        match status {
            Status::Ready(session) => Ok(session),
            other => Err(other),
        }
    }

    /// Waits up to `wait` for a session other than generation `stale` (after a reconnect).
    pub async fn next_session(&self, stale: u64, wait: Duration) -> Result<Arc<Session>, Status> {
        let mut rx = self.status.clone();
        let fresh = |s: &Status| match s {
            Status::Ready(session) => session.generation != stale,
            Status::Stopped => true,
            Status::Connecting { .. } => false,
        };
        let _ = tokio::time::timeout(wait, rx.wait_for(fresh)).await;
        match self.status() {
            Status::Ready(session) if session.generation != stale => Ok(session),
            Status::Ready(_) => Err(Status::Connecting {
                attempts: 0,
                failure: Some(Failure::Lost(
                    "the session closed and no new one came in time".into(),
                )),
                retry_at: None,
            }),
            other => Err(other),
        }
    }

    /// A receiver that sees every status change (used to wait for readiness).
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Closes the session, stops a stdio child (and its process group) and waits, up to ten
    /// seconds, for the supervisor to report it stopped.
    pub async fn shutdown(&self) {
        self.shutdown.notify_one();
        let mut rx = self.status.clone();
        let stopped = rx.wait_for(|s| matches!(s, Status::Stopped));
        let _ = tokio::time::timeout(Duration::from_secs(10), stopped).await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
