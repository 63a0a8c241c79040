//! One live MCP session and its tool calls: multiplexed on rmcp's peer (no lock), bounded by
//! the server's call timeout, cancelled upstream when the HTTP caller goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ErrorData, JsonObject,
    Prompt, Resource, ResourceTemplate, ServerResult, Tool,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, ServiceError};

use super::connect::ServerMeta;
use crate::support::error_chain;

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
    pub(super) peer: Peer<RoleClient>,
    pub(super) call_timeout: Duration,
    /// The resources, templates and prompts its specs show (see [`super::Listing`]).
    pub listing: Arc<Listing>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("generation", &self.generation)
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

/// What a session's specs show besides its tools: the lists `expose` asks for, read when the
/// session starts and again on every `list_changed`. Empty for what is not exposed (the HTTP
/// routes list live; these lists only feed the documents).
#[derive(Debug, Default)]
pub struct Listing {
    /// The server declared the `resources` capability at `initialize`.
    pub offers_resources: bool,
    /// The server declared the `prompts` capability at `initialize`.
    pub offers_prompts: bool,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
    pub prompts: Vec<Prompt>,
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
    /// The upstream answered the request with HTTP 401/403: it refuses the credentials the
    /// session was started with (the call did not run).
    #[error("the server refused the credentials (HTTP 401/403): {0}")]
    Refused(String),
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
        match self.request(request).await? {
            ServerResult::CallToolResult(result) => Ok(result),
            _ => Err(CallError::Other(
                "the server answered tools/call with another kind of result".into(),
            )),
        }
    }

    /// Sends one request, bounded and cancelled as [`Session::call_tool`] says.
    pub(super) async fn request(&self, request: ClientRequest) -> Result<ServerResult, CallError> {
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
        outcome.map_err(classify)
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

pub(super) fn classify(err: ServiceError) -> CallError {
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
            None if super::refusal::refused_credentials(&e) => CallError::Refused(error_chain(&e)),
            None => CallError::Disconnected(error_chain(&e)),
        },
        other => CallError::Other(error_chain(&other)),
    }
}
