//! One supervised MCP connection per configured server.
//!
//! [`Upstream::start`] spawns a supervisor task that connects (stdio child, streamable HTTP or
//! our legacy SSE transport), lists the tools, publishes a [`Session`] through a `watch`
//! channel, and reconnects with capped exponential backoff whenever the connection ends. Callers
//! (the HTTP side) only ever read the latest [`Status`]: there is no lock around tool calls, and
//! concurrent calls share one session because rmcp multiplexes JSON-RPC requests.
//!
//! This module never knows about HTTP callers; it speaks in tools, arguments and results.

mod connect;
pub mod sse;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorData, JsonObject, Tool};
use rmcp::service::{Peer, RoleClient, ServiceError};
use tokio::sync::{Notify, watch};

use crate::config::ServerConfig;

/// Knobs of the supervisor that do not come from the server's own config entry.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Time allowed for spawning/connecting plus the MCP `initialize` handshake and `tools/list`.
    pub connect_timeout: Duration,
    /// First retry delay after a failed connect; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Per-call timeout used when the server entry sets none.
    pub default_call_timeout: Duration,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            default_call_timeout: Duration::from_secs(300),
        }
    }
}

/// What the server said about itself at `initialize`.
#[derive(Debug, Clone, Default)]
pub struct ServerMeta {
    pub name: Option<String>,
    pub title: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub instructions: Option<String>,
}

/// A live, initialized MCP session and the tool list it currently exposes.
///
/// A new `Session` value is published whenever the tool list changes, so holders of an old
/// `Arc<Session>` keep a consistent (tools, peer) pair for the request they are serving.
pub struct Session {
    /// Increases with every published session or tool list; lets caches notice a change.
    pub generation: u64,
    pub meta: ServerMeta,
    /// Tools after `disabledTools` filtering, in the server's order.
    pub tools: Arc<Vec<Tool>>,
    peer: Peer<RoleClient>,
    call_timeout: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("generation", &self.generation)
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

/// Why a tool call produced no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with a JSON-RPC error.
    #[error("upstream error {}: {}", .0.code.0, .0.message)]
    Mcp(ErrorData),
    /// No answer within the per-call timeout; a cancellation was sent upstream.
    #[error("no answer from the upstream within {0:?}")]
    Timeout(Duration),
    /// The connection broke before or while the call was in flight.
    #[error("upstream connection lost: {0}")]
    Disconnected(String),
    /// Anything else the MCP client reported (unexpected response, transport send failure…).
    #[error("upstream call failed: {0}")]
    Other(String),
}

impl Session {
    /// Calls `name` with `arguments`, bounded by the server's call timeout. Dropping the
    /// returned future (e.g. the HTTP client went away) cancels the request upstream too.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, CallError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments;
        match tokio::time::timeout(self.call_timeout, self.peer.call_tool(params)).await {
            Err(_) => Err(CallError::Timeout(self.call_timeout)),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(err)) => Err(classify(err)),
        }
    }
}

fn classify(err: ServiceError) -> CallError {
    match err {
        ServiceError::McpError(data) => CallError::Mcp(data),
        ServiceError::Timeout { timeout } => CallError::Timeout(timeout),
        ServiceError::TransportClosed => CallError::Disconnected("transport closed".into()),
        ServiceError::Cancelled { reason } => CallError::Disconnected(
            reason.unwrap_or_else(|| "request cancelled by the session".into()),
        ),
        ServiceError::TransportSend(e) => CallError::Disconnected(e.to_string()),
        other => CallError::Other(other.to_string()),
    }
}

/// Where a server's connection stands right now.
#[derive(Debug, Clone)]
pub enum Status {
    /// Not connected yet, or reconnecting after a failure.
    Connecting {
        attempts: u32,
        last_error: Option<String>,
        /// When the next attempt starts (for `Retry-After`); `None` while one is under way.
        retry_at: Option<Instant>,
    },
    Ready(Arc<Session>),
    /// Shut down on purpose (daemon stopping, server removed).
    Stopped,
}

/// Counters an operator wants to see for one server.
#[derive(Debug, Default)]
pub struct Stats {
    pub reconnects: AtomicU64,
}

/// The handle to one supervised upstream server.
pub struct Upstream {
    pub name: String,
    pub config: ServerConfig,
    pub stats: Arc<Stats>,
    status: watch::Receiver<Status>,
    shutdown: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts connecting in the background and returns at once; see [`Upstream::status`].
    pub fn start(config: ServerConfig, options: UpstreamOptions) -> Self {
        let (tx, rx) = watch::channel(Status::Connecting {
            attempts: 0,
            last_error: None,
            retry_at: None,
        });
        let shutdown = Arc::new(Notify::new());
        let stats = Arc::new(Stats::default());
        let supervisor = Supervisor {
            config: config.clone(),
            options,
            status: tx,
            shutdown: shutdown.clone(),
            stats: stats.clone(),
        };
        let task = tokio::spawn(supervisor.run());
        Self {
            name: config.name.clone(),
            config,
            stats,
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

struct Supervisor {
    config: ServerConfig,
    options: UpstreamOptions,
    status: watch::Sender<Status>,
    shutdown: Arc<Notify>,
    stats: Arc<Stats>,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

impl Supervisor {
    async fn run(self) {
        let name = self.config.name.clone();
        let mut attempts: u32 = 0;
        let mut delay = self.options.backoff_initial;
        loop {
            let last_error = match &*self.status.borrow() {
                Status::Connecting { last_error, .. } => last_error.clone(),
                _ => None,
            };
            self.status.send_replace(Status::Connecting {
                attempts,
                last_error,
                retry_at: None,
            });
            attempts += 1;
            let attempt = tokio::select! {
                biased;
                _ = self.shutdown.notified() => break,
                r = tokio::time::timeout(self.options.connect_timeout, self.connect()) => r,
            };
            let error = match attempt {
                Ok(Ok(live)) => {
                    if attempts > 1 {
                        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    attempts = 0;
                    delay = self.options.backoff_initial;
                    match self.serve(live).await {
                        Ended::Shutdown => break,
                        Ended::Lost(reason) => {
                            tracing::warn!(server = %name, reason = %reason, "upstream connection lost; reconnecting");
                            reason
                        }
                    }
                }
                Ok(Err(err)) => {
                    tracing::warn!(server = %name, error = %err, "cannot connect to upstream");
                    err.to_string()
                }
                Err(_) => {
                    let msg = format!(
                        "connect and initialize did not finish within {:?}",
                        self.options.connect_timeout
                    );
                    tracing::warn!(server = %name, "{msg}");
                    msg
                }
            };
            let wait = jittered(delay);
            self.status.send_replace(Status::Connecting {
                attempts,
                last_error: Some(error),
                retry_at: Some(Instant::now() + wait),
            });
            tokio::select! {
                biased;
                _ = self.shutdown.notified() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            delay = (delay * 2).min(self.options.backoff_max);
        }
        self.status.send_replace(Status::Stopped);
    }

    async fn connect(&self) -> Result<connect::Live, connect::ConnectError> {
        connect::connect(&self.config, &self.options).await
    }

    /// Publishes the session and keeps its tool list current until the connection ends or
    /// the daemon asks us to stop.
    async fn serve(&self, live: connect::Live) -> Ended {
        let connect::Live {
            service,
            meta,
            tools,
            tools_changed,
            diagnostics,
        } = live;
        let name = &self.config.name;
        let peer = service.peer().clone();
        let call_timeout = self
            .config
            .timeout
            .unwrap_or(self.options.default_call_timeout);
        let publish = |tools: Vec<Tool>| {
            let tools = self.filter(tools);
            tracing::info!(server = %name, tools = tools.len(), "upstream ready");
            self.status.send_replace(Status::Ready(Arc::new(Session {
                generation: next_generation(),
                meta: meta.clone(),
                tools: Arc::new(tools),
                peer: peer.clone(),
                call_timeout,
            })));
        };
        publish(tools);
        let cancel = service.cancellation_token();
        let waiting = service.waiting();
        tokio::pin!(waiting);
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.notified() => {
                    cancel.cancel();
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await;
                    return Ended::Shutdown;
                }
                quit = &mut waiting => {
                    let mut reason = match quit {
                        Ok(q) => format!("session ended ({q:?})"),
                        Err(e) => format!("session task failed: {e}"),
                    };
                    if let Some(extra) = diagnostics.describe_exit().await {
                        reason.push_str(": ");
                        reason.push_str(&extra);
                    }
                    return Ended::Lost(reason);
                }
                _ = tools_changed.notified() => {
                    match tokio::time::timeout(self.options.connect_timeout, peer.list_all_tools()).await {
                        Ok(Ok(tools)) => publish(tools),
                        Ok(Err(e)) => tracing::warn!(server = %name, error = %e, "tools/list after list_changed failed"),
                        Err(_) => tracing::warn!(server = %name, "tools/list after list_changed timed out"),
                    }
                }
            }
        }
    }

    fn filter(&self, tools: Vec<Tool>) -> Vec<Tool> {
        let disabled = &self.config.disabled_tools;
        if disabled.is_empty() {
            return tools;
        }
        tools
            .into_iter()
            .filter(|t| !disabled.contains(t.name.as_ref()))
            .collect()
    }
}

enum Ended {
    Shutdown,
    Lost(String),
}

/// Adds up to 25% random-ish jitter so many mcpo instances don't retry in lockstep.
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = f64::from(nanos % 1000) / 4000.0;
    base + base.mul_f64(fraction)
}
