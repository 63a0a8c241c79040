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
mod incoming;
pub mod sse;
mod stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ErrorData, JsonObject,
    ServerResult, Tool,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, ServiceError};
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
    /// Idle time between MCP pings; zero disables them.
    pub keepalive_interval: Duration,
    /// Calls in flight at once, and calls allowed to wait for a slot.
    pub max_concurrent_calls: usize,
    pub max_queued_calls: usize,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            default_call_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(30),
            max_concurrent_calls: 256,
            max_queued_calls: 1024,
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
    /// When this connection was established (tool-list refreshes keep it).
    pub connected_at: Instant,
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
    /// The request never left mcpo (the session had closed): safe to retry elsewhere.
    #[error("upstream session closed before the call was sent: {0}")]
    NotSent(String),
    /// The call needs OAuth scope mcpo could not get (the step-up login was refused).
    #[error("{0}")]
    Forbidden(String),
    /// Anything else the MCP client reported (unexpected response, transport send failure…).
    #[error("upstream call failed: {0}")]
    Other(String),
}

impl Session {
    /// The session's connection has ended (the supervisor will replace it).
    pub fn is_closed(&self) -> bool {
        self.peer.is_transport_closed()
    }

    /// Calls `name` with `arguments`, bounded by the server's call timeout (on expiry mcpo sends
    /// `notifications/cancelled`). Dropping the returned future (the HTTP client went away)
    /// cancels the request upstream too, unless it answers within [`CANCEL_GRACE`].
    /// [`CallError::NotSent`] means the request provably never left: the caller may retry it on
    /// a new session.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, CallError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        // No timeout in the options: `await_with_timeout` keeps the clock (rmcp's would need
        // the handle, which the guard below takes apart).
        let options = PeerRequestOptions::no_options();
        let handle = match self.peer.send_request_with_option(request, options).await {
            Ok(handle) => handle,
            // The session's loop is gone: the request was never queued for the transport.
            Err(ServiceError::TransportClosed) => {
                return Err(CallError::NotSent("the session had already closed".into()));
            }
            Err(e) => return Err(classify(e)),
        };
        // Until the answer is in, its receiver lives in a guard that, if this future is
        // dropped, gives the call the grace period before cancelling it upstream.
        let mut guard = CancelOnDrop {
            peer: self.peer.clone(),
            id: handle.id,
            rx: Some(handle.rx),
        };
        let outcome = match guard.rx.as_mut() {
            Some(rx) => await_with_timeout(rx, &guard.peer, &guard.id, self.call_timeout).await,
            None => Err(ServiceError::TransportClosed),
        };
        guard.rx = None;
        match outcome {
            Ok(ServerResult::CallToolResult(result)) => Ok(result),
            Ok(_) => Err(CallError::Other(
                "the server answered tools/call with another kind of result".into(),
            )),
            Err(e) => Err(classify(e)),
        }
    }
}

/// How long a call whose HTTP caller went away may still answer before mcpo cancels it
/// upstream. Most calls finish well within it, so they are never cancelled: cancellations are
/// racy for servers (the Python SDK's stdio server of mcp 1.x can die on one that arrives while
/// its handler runs, python-sdk #2610), and a call that has answered has nothing to cancel.
/// Long calls (the ones worth stopping) still are, a second late.
pub const CANCEL_GRACE: Duration = Duration::from_secs(1);

type Answer = Result<ServerResult, ServiceError>;

/// Waits for the answer up to `timeout`; on expiry tells the server the call is cancelled, as
/// rmcp's own `await_response` does.
async fn await_with_timeout(
    rx: &mut tokio::sync::oneshot::Receiver<Answer>,
    peer: &Peer<RoleClient>,
    id: &rmcp::model::RequestId,
    timeout: Duration,
) -> Answer {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(ServiceError::TransportClosed),
        Err(_) => {
            let _ = peer
                .send_notification(cancelled(id.clone(), "request timeout").into())
                .await;
            Err(ServiceError::Timeout { timeout })
        }
    }
}

fn cancelled(id: rmcp::model::RequestId, reason: &str) -> rmcp::model::CancelledNotification {
    rmcp::model::CancelledNotification::new(rmcp::model::CancelledNotificationParam::new(
        Some(id),
        Some(reason.to_owned()),
    ))
}

/// Cancels upstream a request whose caller stopped waiting, unless it answers within
/// [`CANCEL_GRACE`].
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: rmcp::model::RequestId,
    /// `Some` while the answer is outstanding.
    rx: Option<tokio::sync::oneshot::Receiver<Answer>>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(rx) = self.rx.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let peer = self.peer.clone();
        let id = self.id.clone();
        rt.spawn(async move {
            if tokio::time::timeout(CANCEL_GRACE, rx).await.is_ok() {
                return; // answered (or the session ended): nothing to cancel
            }
            let notification = cancelled(id, "the HTTP caller went away");
            let _ = peer.send_notification(notification.into()).await;
        });
    }
}

fn classify(err: ServiceError) -> CallError {
    match err {
        ServiceError::McpError(data) => CallError::Mcp(data),
        ServiceError::Timeout { timeout } => CallError::Timeout(timeout),
        ServiceError::TransportClosed => {
            CallError::Disconnected("the connection closed before the answer came".into())
        }
        ServiceError::Cancelled { reason } => CallError::Disconnected(
            reason.unwrap_or_else(|| "request cancelled by the session".into()),
        ),
        ServiceError::TransportSend(e) => match crate::oauth::scope_refusal(&e) {
            Some(refused) => CallError::Forbidden(refused.to_string()),
            None => CallError::Disconnected(connect::describe(&e)),
        },
        other => CallError::Other(connect::describe(&other)),
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
    /// Successful connections after the first one.
    pub reconnects: AtomicU64,
    /// Calls answered by the upstream (any outcome) and calls refused because the queue was full.
    pub calls: AtomicU64,
    pub rejected: AtomicU64,
}

/// Bounds the calls one upstream sees at once; beyond the queue limit callers get "busy" at
/// once instead of piling up memory and latency.
#[derive(Debug)]
pub struct CallLimiter {
    slots: Arc<tokio::sync::Semaphore>,
    queued: AtomicU64,
    max_queued: u64,
}

/// The queue of calls waiting for this upstream is full.
#[derive(Debug, thiserror::Error)]
#[error("too many calls waiting for this server ({0} queued)")]
pub struct Busy(pub u64);

impl CallLimiter {
    fn new(max_concurrent: usize, max_queued: usize) -> Self {
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(max_concurrent.max(1))),
            queued: AtomicU64::new(0),
            max_queued: max_queued as u64,
        }
    }

    /// A slot for one call, waiting in the bounded queue if all are taken.
    pub async fn acquire(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queued = self.queued.fetch_add(1, Ordering::AcqRel);
        if queued >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy(queued));
        }
        let permit = self.slots.clone().acquire_owned().await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| Busy(queued))
    }

    /// Calls currently waiting for a slot.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
}

/// The handle to one supervised upstream server.
pub struct Upstream {
    pub name: String,
    pub config: ServerConfig,
    pub stats: Arc<Stats>,
    pub limiter: CallLimiter,
    /// When the supervisor started (for uptime in `/status`).
    pub started_at: Instant,
    /// The server's OAuth client (shared with the supervisor), for counters and login state.
    pub oauth: Option<crate::oauth::Authorizer>,
    status: watch::Receiver<Status>,
    shutdown: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts connecting in the background and returns at once; see [`Upstream::status`].
    pub fn start(config: ServerConfig, options: UpstreamOptions) -> Self {
        // Invalid OAuth settings are caught at start-up (`oauth::check`); should one slip
        // through (hot reload), the server stays down with the reason rather than connect
        // without the authentication it asked for.
        let auth = match &config.oauth {
            None => Ok(None),
            Some(_) => crate::oauth::Authorizer::new(&config, crate::oauth::AuthOptions::default())
                .map(Some)
                .map_err(|e| format!("invalid OAuth settings: {e}")),
        };
        Self::start_with_auth(config, options, auth)
    }

    /// Like [`Upstream::start`], with the OAuth client given: in multi-user mode each user's
    /// session uses that user's own (tokens, registration, web login).
    pub fn start_with_oauth(
        config: ServerConfig,
        options: UpstreamOptions,
        oauth: crate::oauth::Authorizer,
    ) -> Self {
        Self::start_with_auth(config, options, Ok(Some(oauth)))
    }

    fn start_with_auth(
        config: ServerConfig,
        options: UpstreamOptions,
        auth: Result<Option<crate::oauth::Authorizer>, String>,
    ) -> Self {
        let (tx, rx) = watch::channel(Status::Connecting {
            attempts: 0,
            last_error: None,
            retry_at: None,
        });
        let shutdown = Arc::new(Notify::new());
        let stats = Arc::new(Stats::default());
        let oauth = auth.as_ref().ok().and_then(Option::clone);
        let supervisor = Supervisor {
            config: config.clone(),
            options: options.clone(),
            auth,
            status: tx,
            shutdown: shutdown.clone(),
            stats: stats.clone(),
        };
        let limiter = CallLimiter::new(options.max_concurrent_calls, options.max_queued_calls);
        let task = tokio::spawn(supervisor.run());
        Self {
            name: config.name.clone(),
            config,
            stats,
            limiter,
            started_at: Instant::now(),
            oauth,
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
                last_error: Some("the session closed and no new one came in time".into()),
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

struct Supervisor {
    config: ServerConfig,
    options: UpstreamOptions,
    /// The server's OAuth client, kept across reconnects (tokens, registration, login state),
    /// or why its settings are unusable.
    auth: Result<Option<crate::oauth::Authorizer>, String>,
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
        let mut had_session = false;
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
            let authorized = tokio::select! {
                biased;
                _ = self.shutdown.notified() => break,
                // Boxed here and below: a future keeps room for its largest state for as long as it
                // lives, and the supervisor lives as long as its server. Inline, connecting (with
                // rmcp's handshake), the OAuth step, a ping and a tools refresh made it 11.4 KB
                // per server; boxed, they take memory only while they run (3 KB).
                r = Box::pin(self.authorize(attempts)) => r,
            };
            if let Err((error, retry_after)) = authorized {
                tracing::warn!(server = %name, error = %error, "OAuth authorization failed");
                let wait = retry_after.unwrap_or_else(|| jittered(delay));
                self.status.send_replace(Status::Connecting {
                    attempts,
                    last_error: Some(format!("OAuth: {error}")),
                    retry_at: Some(Instant::now() + wait),
                });
                tokio::select! {
                    biased;
                    _ = self.shutdown.notified() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                delay = (delay * 2).min(self.options.backoff_max);
                continue;
            }
            let attempt = tokio::select! {
                biased;
                _ = self.shutdown.notified() => break,
                r = tokio::time::timeout(self.options.connect_timeout, Box::pin(self.connect())) => r,
            };
            let error = match attempt {
                Ok(Ok(live)) => {
                    // A reconnect is any session after the first one, however many attempts
                    // it took (a crash followed by an immediate restart counts too).
                    if had_session {
                        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    had_session = true;
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
        let auth = self.auth.as_ref().ok().and_then(Option::as_ref);
        connect::connect(&self.config, &self.options, auth).await
    }

    /// Makes sure an OAuth server has usable tokens before the (timed) connect: stored ones,
    /// or a login that may take minutes. While a login waits for the user, the status says so
    /// (with the sign-in URL), which is what 503 bodies show.
    async fn authorize(&self, attempts: u32) -> Result<(), (String, Option<Duration>)> {
        let auth = match &self.auth {
            Ok(Some(auth)) => auth,
            Ok(None) => return Ok(()),
            // Retrying cannot fix settings; wait long, the status says why.
            Err(reason) => return Err((reason.clone(), Some(Duration::from_secs(3600)))),
        };
        let ensure = auth.ensure_authorized();
        tokio::pin!(ensure);
        // Pushed by the authorizer on every change; the current state is looked at first.
        let mut login = auth.watch_login();
        login.mark_changed();
        loop {
            tokio::select! {
                result = &mut ensure => {
                    return result.map_err(|e| (e.to_string(), e.retry_after()));
                }
                Ok(()) = login.changed() => {
                    let state = login.borrow_and_update().clone();
                    if let crate::oauth::LoginState::Pending { url } = state {
                        let message = match url {
                            Some(url) => format!("waiting for the OAuth login: sign in at {url}"),
                            None => "waiting for the OAuth login to start".to_owned(),
                        };
                        self.status.send_if_modified(|s| {
                            let next = Status::Connecting { attempts, last_error: Some(message.clone()), retry_at: None };
                            let changed = !matches!(s, Status::Connecting { last_error: Some(m), .. } if *m == message);
                            if changed { *s = next; }
                            changed
                        });
                    }
                }
            }
        }
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
        let connected_at = Instant::now();
        let publish = |tools: Vec<Tool>| {
            let tools = self.filter(tools);
            tracing::info!(server = %name, tools = tools.len(), "upstream ready");
            self.status.send_replace(Status::Ready(Arc::new(Session {
                generation: next_generation(),
                meta: meta.clone(),
                tools: Arc::new(tools),
                connected_at,
                peer: peer.clone(),
                call_timeout,
            })));
        };
        publish(tools);
        let cancel = service.cancellation_token();
        let waiting = service.waiting();
        tokio::pin!(waiting);
        let keepalive = self.options.keepalive_interval;
        let mut ping = tokio::time::interval(if keepalive.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            keepalive
        });
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
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
                _ = ping.tick(), if !keepalive.is_zero() => {
                    let probe = Box::pin(peer.send_request(rmcp::model::ClientRequest::PingRequest(Default::default())));
                    match tokio::time::timeout(self.options.connect_timeout.min(Duration::from_secs(15)), probe).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(ServiceError::McpError(_))) => {} // answered, even if it dislikes ping
                        Ok(Err(e)) => {
                            cancel.cancel();
                            return Ended::Lost(format!("keep-alive ping failed: {e}"));
                        }
                        Err(_) => {
                            cancel.cancel();
                            return Ended::Lost("keep-alive ping got no answer".into());
                        }
                    }
                }
                _ = tools_changed.notified() => {
                    match tokio::time::timeout(self.options.connect_timeout, Box::pin(peer.list_all_tools())).await {
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
