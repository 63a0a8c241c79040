//! Legacy HTTP+SSE server transport (MCP 2024-11-05), which rmcp does not provide.
//!
//! * `GET /sse` opens a session: the stream starts with an `endpoint` event whose data is the
//!   relative URL `/messages?session_id=<id>`, then carries every server→client JSON-RPC message
//!   as a `message` event.
//! * `POST /messages?session_id=<id>` takes one client→server JSON-RPC message and answers
//!   `202 Accepted` (`400` for a body that is not a JSON-RPC message, `404` for an unknown
//!   session); the reply, if any, arrives on the session's event stream.
//!
//! Each GET connection gets its own [`FixtureServer`] running on a channel transport (a
//! `(Sink, Stream)` pair, see `rmcp::transport::sink_stream`). When the GET stream is dropped
//! the session is removed and its rmcp service is cancelled together with its in-flight
//! requests (a running `slow` logs `slow cancelled`).

use std::{
    collections::HashMap,
    convert::Infallible,
    hash::{BuildHasher, RandomState},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures::{
    Stream, StreamExt,
    channel::mpsc::{UnboundedSender, unbounded},
    stream::BoxStream,
};
use rmcp::{
    ServiceExt,
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::tools::FixtureServer;

/// Open sessions: session id → sender feeding that session's rmcp service.
type Sessions = Arc<Mutex<HashMap<String, UnboundedSender<ClientJsonRpcMessage>>>>;

pub fn router() -> Router {
    let sessions: Sessions = Arc::default();
    Router::new()
        .route("/sse", get(open_session))
        .route("/messages", post(post_message))
        .with_state(sessions)
}

/// A fresh, unguessable-enough session id (128 random bits from std's hasher seeds).
fn new_session_id() -> String {
    let a = RandomState::new().hash_one(0u8);
    let b = RandomState::new().hash_one(1u8);
    format!("{a:016x}{b:016x}")
}

async fn open_session(State(sessions): State<Sessions>) -> impl IntoResponse {
    let id = new_session_id();
    let (to_server, server_rx) = unbounded::<ClientJsonRpcMessage>();
    let (server_tx, from_server) = unbounded::<ServerJsonRpcMessage>();
    sessions.lock().unwrap().insert(id.clone(), to_server);
    eprintln!("sse session {id} opened");

    // Fires (by being dropped) when the GET stream goes away.
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let session_id = id.clone();
    tokio::spawn(async move {
        match FixtureServer::new().serve((server_tx, server_rx)).await {
            Ok(service) => {
                // Cancel in-flight requests at once when the client goes away; merely closing
                // the inbound channel would let rmcp wait up to 5 s for handlers to finish.
                let ct = service.cancellation_token();
                tokio::spawn(async move {
                    let _ = closed_rx.await;
                    ct.cancel();
                });
                let reason = service.waiting().await;
                eprintln!("sse session {session_id} service ended: {reason:?}");
            }
            Err(error) => eprintln!("sse session {session_id} failed to start: {error}"),
        }
    });

    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?session_id={id}"));
    let messages = from_server.map(|message| {
        let json = serde_json::to_string(&message).expect("JSON-RPC message serialises");
        Event::default().event("message").data(json)
    });
    let inner = futures::stream::once(async { endpoint })
        .chain(messages)
        .map(Ok)
        .boxed();
    Sse::new(SessionStream {
        inner,
        _guard: SessionGuard {
            id,
            sessions,
            _closed: closed_tx,
        },
    })
    .keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct SessionQuery {
    session_id: String,
}

async fn post_message(
    State(sessions): State<Sessions>,
    Query(query): Query<SessionQuery>,
    body: String,
) -> Response {
    let message: ClientJsonRpcMessage = match serde_json::from_str(&body) {
        Ok(message) => message,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid JSON-RPC message: {error}"),
            )
                .into_response();
        }
    };
    let sender = sessions.lock().unwrap().get(&query.session_id).cloned();
    match sender {
        Some(sender) if sender.unbounded_send(message).is_ok() => {
            (StatusCode::ACCEPTED, "Accepted").into_response()
        }
        _ => (StatusCode::NOT_FOUND, "unknown session").into_response(),
    }
}

/// The GET `/sse` event stream; dropping it (client gone) closes the session.
struct SessionStream {
    inner: BoxStream<'static, Result<Event, Infallible>>,
    _guard: SessionGuard,
}

impl Stream for SessionStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// On drop, removes the session (dropping its inbound sender) and, through `_closed`, cancels
/// its rmcp service and the requests still running on it.
struct SessionGuard {
    id: String,
    sessions: Sessions,
    _closed: oneshot::Sender<()>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.lock().unwrap().remove(&self.id);
        eprintln!("sse session {} closed", self.id);
    }
}
