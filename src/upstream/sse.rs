//! Legacy HTTP+SSE (MCP 2024-11-05) client transport for rmcp.
//!
//! rmcp 3.x dropped its own SSE client, so this module implements
//! [`rmcp::transport::Transport<RoleClient>`] directly:
//!
//! 1. [`connect`] opens `GET <sse url>` (`Accept: text/event-stream`), waits for the first
//!    `endpoint` event and resolves it against the SSE URL (same origin only).
//! 2. A reader task turns each `message` (or unnamed) event into a
//!    [`ServerJsonRpcMessage`] and queues it for [`Transport::receive`].
//! 3. [`Transport::send`] POSTs each client message as JSON to the endpoint.
//!
//! One transport is one MCP session: the session is bound to the GET stream, so when the
//! stream ends `receive()` returns `None` and rmcp shuts the service down. Reconnecting
//! means re-initializing, which is the caller's job. Why the stream ended is recorded as a
//! [`StreamEnd`] (see [`LegacySseTransport::end_reason`] / [`LegacySseTransport::watch_end`]).
//!
//! Memory safety against hostile servers: every event (the bytes since the last blank line)
//! is capped at [`SseOptions::max_event_bytes`]; an over-size event ends the stream with
//! [`SseError::EventTooLarge`].
//!
//! Secrets: the custom headers (which may carry API keys) are never put in errors, logs or
//! `Debug` output, and URLs are stripped from `reqwest` errors (query strings may carry
//! keys or session ids).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::{Sse, SseStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::support::error_chain;

/// Queue depth between the reader task and `receive()`. When full, the reader stops
/// reading the socket (TCP back-pressure) instead of buffering.
const CHANNEL_CAPACITY: usize = 64;
/// Longest excerpt of a server-provided body / payload we put into errors and logs.
const SNIPPET_BYTES: usize = 512;
/// How much of a successful POST response body we read (to let the connection be reused).
const POST_DRAIN_BYTES: usize = 64 * 1024;

/// Tunables for [`connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseOptions {
    /// Deadline for the whole handshake: the GET response headers plus the first
    /// `endpoint` event.
    pub endpoint_timeout: Duration,
    /// Largest accepted SSE event, counted as the bytes of all lines since the last blank
    /// line (line terminators excluded). Larger events end the stream with
    /// [`SseError::EventTooLarge`].
    pub max_event_bytes: usize,
}

impl Default for SseOptions {
    fn default() -> Self {
        Self {
            endpoint_timeout: Duration::from_secs(30),
            max_event_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Errors of the legacy SSE transport. Messages never include header values or URLs
/// with query strings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// The configured URL can't be used (e.g. not http/https).
    #[error("invalid SSE URL: {0}")]
    InvalidUrl(String),
    /// The HTTP request could not be sent or its response not read.
    #[error("{method} request to the SSE server failed: {}", error_chain(.error))]
    Request {
        method: &'static str,
        error: reqwest::Error,
    },
    /// The GET that opens the event stream returned a non-2xx status.
    #[error("SSE server answered the event-stream GET with HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
    /// The GET succeeded but is not an event stream.
    #[error(
        "SSE server answered with content type `{content_type}` instead of `text/event-stream` \
         (is this a streamable-HTTP server rather than a legacy SSE one?)"
    )]
    ContentType { content_type: String },
    /// No `endpoint` event (or no response at all) within [`SseOptions::endpoint_timeout`].
    #[error("no `endpoint` event from the SSE server within {timeout:?}")]
    EndpointTimeout { timeout: Duration },
    /// The stream ended before the `endpoint` event.
    #[error("SSE stream ended before the `endpoint` event")]
    NoEndpoint,
    /// The `endpoint` event could not be turned into a URL.
    #[error("invalid `endpoint` event: {reason}")]
    InvalidEndpoint { reason: String },
    /// The `endpoint` event points to another origin; we refuse to post our messages there.
    #[error(
        "refusing message endpoint on origin {endpoint_origin}: it differs from the SSE URL's \
         origin {sse_origin}"
    )]
    CrossOriginEndpoint {
        endpoint_origin: String,
        sse_origin: String,
    },
    /// An event grew beyond [`SseOptions::max_event_bytes`].
    #[error("SSE event exceeded the {limit}-byte limit")]
    EventTooLarge { limit: usize },
    /// Reading the event stream failed (network error, connection reset, …).
    #[error("reading the SSE stream failed: {}", error_chain(.error))]
    Stream { error: reqwest::Error },
    /// The event stream is not valid SSE.
    #[error("malformed SSE stream: {0}")]
    Malformed(String),
    /// A client message could not be serialized.
    #[error("could not encode JSON-RPC message: {0}")]
    Encode(serde_json::Error),
    /// The message POST returned a non-2xx status.
    #[error("SSE server rejected the message POST with HTTP {status}: {body}")]
    PostStatus { status: StatusCode, body: String },
    /// `send` after `close`.
    #[error("SSE transport is closed")]
    Closed,
}

impl SseError {
    fn request(method: &'static str, error: reqwest::Error) -> Self {
        Self::Request {
            method,
            error: error.without_url(),
        }
    }
}

/// Why the event stream (and with it the MCP session) ended.
#[derive(Debug, Clone)]
pub enum StreamEnd {
    /// The server closed the event stream cleanly.
    ServerClosed,
    /// The stream failed: network error, malformed SSE, or an over-size event
    /// ([`SseError::EventTooLarge`]).
    Failed(Arc<SseError>),
    /// We closed it: [`Transport::close`] was called or the transport was dropped.
    ClosedByClient,
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamEnd::ServerClosed => f.write_str("the SSE server closed the event stream"),
            StreamEnd::Failed(e) => write!(f, "{e}"),
            StreamEnd::ClosedByClient => f.write_str("the SSE transport was closed by the client"),
        }
    }
}

type EndTx = Arc<watch::Sender<Option<StreamEnd>>>;

/// Records `reason` unless an earlier reason was recorded already.
fn record_end(end: &EndTx, reason: StreamEnd) {
    end.send_if_modified(|slot| {
        if slot.is_none() {
            *slot = Some(reason);
            true
        } else {
            false
        }
    });
}

/// A legacy HTTP+SSE MCP client session. Create it with [`connect`], then hand it to
/// `rmcp::ServiceExt::serve`.
pub struct LegacySseTransport {
    http: reqwest::Client,
    endpoint: Url,
    /// Custom headers + `Content-Type: application/json`.
    post_headers: HeaderMap,
    rx: mpsc::Receiver<ServerJsonRpcMessage>,
    /// `None` once closed.
    reader: Option<JoinHandle<()>>,
    end: EndTx,
}

impl std::fmt::Debug for LegacySseTransport {
    // Manual impl: never print the headers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySseTransport")
            .field(
                "endpoint_origin",
                &self.endpoint.origin().ascii_serialization(),
            )
            .field("endpoint_path", &self.endpoint.path())
            .field("closed", &self.reader.is_none())
            .field("end_reason", &*self.end.borrow())
            .finish_non_exhaustive()
    }
}

impl LegacySseTransport {
    /// The resolved message endpoint (includes the server's session id).
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Why the event stream ended, once it has.
    pub fn end_reason(&self) -> Option<StreamEnd> {
        self.end.borrow().clone()
    }

    /// A watch on the end reason that stays usable after the transport has been moved
    /// into rmcp (or dropped). The value turns `Some` exactly once.
    pub fn watch_end(&self) -> watch::Receiver<Option<StreamEnd>> {
        self.end.subscribe()
    }

    fn shutdown(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
            record_end(&self.end, StreamEnd::ClosedByClient);
        }
    }
}

impl Drop for LegacySseTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Transport<RoleClient> for LegacySseTransport {
    type Error = SseError;

    fn name() -> Cow<'static, str> {
        "LegacySseTransport".into()
    }

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let closed = self.reader.is_none();
        let http = self.http.clone();
        let endpoint = self.endpoint.clone();
        let headers = self.post_headers.clone();
        async move {
            if closed {
                return Err(SseError::Closed);
            }
            let body = serde_json::to_vec(&item).map_err(SseError::Encode)?;
            let mut resp = http
                .post(endpoint)
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|e| SseError::request("POST", e))?;
            let status = resp.status();
            if !status.is_success() {
                let body = body_snippet(&mut resp).await;
                return Err(SseError::PostStatus { status, body });
            }
            // Python servers answer `202 Accepted` with a tiny body; read it so the
            // connection can go back to the pool. Errors here don't matter: the server
            // already accepted the message.
            let mut drained = 0usize;
            while drained < POST_DRAIN_BYTES {
                match resp.chunk().await {
                    Ok(Some(chunk)) => drained += chunk.len(),
                    _ => break,
                }
            }
            Ok(())
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.rx.recv()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.shutdown();
        std::future::ready(Ok(()))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Sse, sse_stream::Error>> + Send>>;

/// Opens a legacy SSE MCP session: GET the event stream, wait for the `endpoint` event,
/// then start the reader task.
///
/// `headers` are sent with the GET and with every message POST. Don't give `http` a
/// total request timeout (`ClientBuilder::timeout`): it would cut the long-lived stream.
pub async fn connect(
    http: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    opts: SseOptions,
) -> Result<LegacySseTransport, SseError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SseError::InvalidUrl(format!(
            "unsupported scheme `{}` (expected http or https)",
            url.scheme()
        )));
    }
    let timeout = opts.endpoint_timeout;
    let (endpoint, events) = tokio::time::timeout(timeout, handshake(&http, &url, &headers, opts))
        .await
        .map_err(|_| SseError::EndpointTimeout { timeout })??;

    let mut post_headers = headers;
    post_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (end, _) = watch::channel(None);
    let end = Arc::new(end);
    let reader = tokio::spawn(read_loop(events, tx, end.clone()));
    tracing::debug!(
        origin = %endpoint.origin().ascii_serialization(),
        path = %endpoint.path(),
        "legacy SSE session established"
    );
    Ok(LegacySseTransport {
        http,
        endpoint,
        post_headers,
        rx,
        reader: Some(reader),
        end,
    })
}

async fn handshake(
    http: &reqwest::Client,
    url: &Url,
    headers: &HeaderMap,
    opts: SseOptions,
) -> Result<(Url, EventStream), SseError> {
    let mut get_headers = headers.clone();
    get_headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    get_headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let mut resp = http
        .get(url.clone())
        .headers(get_headers)
        .send()
        .await
        .map_err(|e| SseError::request("GET", e))?;

    let status = resp.status();
    if !status.is_success() {
        let body = body_snippet(&mut resp).await;
        return Err(SseError::Status { status, body });
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_event_stream = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/event-stream"))
    });
    if !is_event_stream {
        return Err(SseError::ContentType {
            content_type: content_type
                .map(|ct| sanitize(ct.as_bytes(), 100))
                .unwrap_or_else(|| "(none)".to_owned()),
        });
    }
    // Relative endpoints resolve against where the stream actually came from (after any
    // redirects); the origin check below still uses the configured URL.
    let base = resp.url().clone();

    let body = CappedBody {
        inner: resp.bytes_stream().boxed(),
        counter: EventSizeCounter::new(opts.max_event_bytes),
        done: false,
    };
    let mut events: EventStream = Box::pin(SseStream::from_bytes_stream(body));

    loop {
        let sse = match events.next().await {
            None => return Err(SseError::NoEndpoint),
            Some(Err(e)) => return Err(map_stream_error(e)),
            Some(Ok(sse)) => sse,
        };
        if sse.event.as_deref() != Some("endpoint") {
            tracing::debug!(
                event = sse.event.as_deref().map(|e| sanitize(e.as_bytes(), 64)),
                "ignoring SSE event received before the `endpoint` event"
            );
            continue;
        }
        let endpoint = resolve_endpoint(url, &base, sse.data.as_deref())?;
        return Ok((endpoint, events));
    }
}

fn resolve_endpoint(configured: &Url, base: &Url, data: Option<&str>) -> Result<Url, SseError> {
    let data = data.map(str::trim).unwrap_or_default();
    if data.is_empty() {
        return Err(SseError::InvalidEndpoint {
            reason: "the event has no data".to_owned(),
        });
    }
    let endpoint = base.join(data).map_err(|e| SseError::InvalidEndpoint {
        reason: format!("not a valid URL reference ({e})"),
    })?;
    if endpoint.origin() != configured.origin() {
        return Err(SseError::CrossOriginEndpoint {
            endpoint_origin: endpoint.origin().ascii_serialization(),
            sse_origin: configured.origin().ascii_serialization(),
        });
    }
    Ok(endpoint)
}

async fn read_loop(mut events: EventStream, tx: mpsc::Sender<ServerJsonRpcMessage>, end: EndTx) {
    let reason = loop {
        let sse = match events.next().await {
            None => break StreamEnd::ServerClosed,
            Some(Err(e)) => break StreamEnd::Failed(Arc::new(map_stream_error(e))),
            Some(Ok(sse)) => sse,
        };
        match sse.event.as_deref() {
            None | Some("message") => {}
            Some("endpoint") => {
                tracing::debug!("ignoring repeated `endpoint` event");
                continue;
            }
            Some(other) => {
                tracing::debug!(event = %sanitize(other.as_bytes(), 64), "ignoring SSE event");
                continue;
            }
        }
        let Some(data) = sse.data else {
            tracing::debug!("ignoring SSE message event without data");
            continue;
        };
        let messages = match parse_messages(&data) {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    data = %sanitize(data.as_bytes(), 200),
                    len = data.len(),
                    "skipping unparsable JSON-RPC message from SSE server"
                );
                continue;
            }
        };
        let mut receiver_gone = false;
        for msg in messages {
            if tx.send(msg).await.is_err() {
                receiver_gone = true;
                break;
            }
        }
        if receiver_gone {
            break StreamEnd::ClosedByClient;
        }
    };
    match &reason {
        StreamEnd::Failed(e) => tracing::warn!(error = %e, "legacy SSE stream failed"),
        other => tracing::info!("legacy SSE session ended: {other}"),
    }
    record_end(&end, reason);
    // `tx` drops here, after the reason is recorded: `receive()` then yields `None`.
}

/// One message, or a JSON-RPC batch (allowed by the 2024-11-05 spec).
fn parse_messages(data: &str) -> Result<Vec<ServerJsonRpcMessage>, serde_json::Error> {
    if data.trim_start().starts_with('[') {
        serde_json::from_str(data)
    } else {
        serde_json::from_str(data).map(|m| vec![m])
    }
}

fn map_stream_error(e: sse_stream::Error) -> SseError {
    match e {
        sse_stream::Error::Body(body) => match body.downcast::<BodyError>() {
            Ok(body) => match *body {
                BodyError::TooLarge { limit } => SseError::EventTooLarge { limit },
                BodyError::Http(error) => SseError::Stream {
                    error: error.without_url(),
                },
            },
            Err(other) => SseError::Malformed(other.to_string()),
        },
        other => SseError::Malformed(other.to_string()),
    }
}

/// Reads at most [`SNIPPET_BYTES`] of an error response body, for error messages.
async fn body_snippet(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    let mut truncated = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                buf.extend_from_slice(&chunk);
                if buf.len() > SNIPPET_BYTES {
                    truncated = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(_) => {
                truncated = true;
                break;
            }
        }
    }
    let mut text = sanitize(&buf, SNIPPET_BYTES);
    if truncated && !text.ends_with('…') {
        text.push('…');
    }
    if text.is_empty() {
        text.push_str("(empty body)");
    }
    text
}

/// Lossy UTF-8, control characters replaced by spaces, trimmed, at most `max` bytes
/// (cut on a char boundary, with `…` appended when cut).
fn sanitize(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max + 4)]);
    let mut out = String::with_capacity(text.len().min(max) + 3);
    let mut cut = bytes.len() > max + 4;
    for c in text.trim().chars() {
        if out.len() + c.len_utf8() > max {
            cut = true;
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    if cut {
        out.push('…');
    }
    out
}

/// Counts the bytes of the current SSE event (all line content since the last blank line)
/// and fails once it exceeds the limit. Handles `\n`, `\r` and `\r\n` line endings, split
/// across chunks as well.
#[derive(Debug)]
struct EventSizeCounter {
    limit: usize,
    event_len: usize,
    line_len: usize,
    prev_cr: bool,
}

impl EventSizeCounter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            event_len: 0,
            line_len: 0,
            prev_cr: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), usize> {
        for &b in bytes {
            match b {
                // Second half of a `\r\n` terminator.
                b'\n' if self.prev_cr => self.prev_cr = false,
                b'\n' | b'\r' => {
                    self.prev_cr = b == b'\r';
                    if self.line_len == 0 {
                        // Blank line: the event is dispatched.
                        self.event_len = 0;
                    } else {
                        self.line_len = 0;
                    }
                }
                _ => {
                    self.prev_cr = false;
                    self.line_len += 1;
                    self.event_len += 1;
                    if self.event_len > self.limit {
                        return Err(self.limit);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Error of the capped body stream; recovered from `sse_stream::Error::Body` by downcast.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("{0}")]
    Http(reqwest::Error),
    #[error("SSE event exceeded the {limit}-byte limit")]
    TooLarge { limit: usize },
}

/// The response body stream with the per-event size cap applied before any byte reaches
/// the SSE parser. Ends after the first error.
struct CappedBody {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    counter: EventSizeCounter,
    done: bool,
}

impl Stream for CappedBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let item = match ready!(this.inner.poll_next_unpin(cx)) {
            Some(Ok(chunk)) => match this.counter.feed(&chunk) {
                Ok(()) => return Poll::Ready(Some(Ok(chunk))),
                Err(limit) => BodyError::TooLarge { limit },
            },
            Some(Err(e)) => BodyError::Http(e),
            None => {
                this.done = true;
                return Poll::Ready(None);
            }
        };
        this.done = true;
        Poll::Ready(Some(Err(item)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
    use axum::response::sse::{Event, Sse as AxumSse};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use rmcp::ServiceExt;
    use rmcp::model::{ClientRequest, ListToolsRequest, NumberOrString};
    use serde_json::{Value, json};

    const TEST_TIMEOUT: Duration = Duration::from_secs(10);

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn opts() -> SseOptions {
        SseOptions {
            endpoint_timeout: Duration::from_secs(5),
            ..SseOptions::default()
        }
    }

    async fn serve(make: impl FnOnce(SocketAddr) -> Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = make(addr);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn sse_url(addr: SocketAddr) -> Url {
        Url::parse(&format!("http://{addr}/sse")).unwrap()
    }

    type EventTx = mpsc::Sender<Event>;

    /// A minimal 2024-11-05 server: `GET /sse` sends `endpoint`, `POST /messages/` answers
    /// requests on the stream.
    #[derive(Clone, Default)]
    struct McpState {
        endpoint: Arc<String>,
        /// Events sent right after `endpoint`.
        preamble: Arc<Vec<Event>>,
        session: Arc<Mutex<Option<EventTx>>>,
        /// `x-api-key` seen on (GET, POSTs).
        seen_keys: Arc<Mutex<Vec<Option<String>>>>,
        /// POST status override.
        post_status: Option<u16>,
    }

    fn mcp_router(state: McpState) -> Router {
        Router::new()
            .route("/sse", get(sse_handler))
            .route("/messages/", post(message_handler))
            .with_state(state)
    }

    fn api_key(headers: &AxumHeaders) -> Option<String> {
        headers
            .get("x-api-key")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    async fn sse_handler(State(state): State<McpState>, headers: AxumHeaders) -> Response {
        state.seen_keys.lock().unwrap().push(api_key(&headers));
        let (tx, rx) = mpsc::channel::<Event>(16);
        *state.session.lock().unwrap() = Some(tx);
        let mut first = vec![
            Event::default()
                .event("endpoint")
                .data(state.endpoint.as_str()),
        ];
        first.extend(state.preamble.iter().cloned());
        let rest =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        let stream = futures::stream::iter(first)
            .chain(rest)
            .map(Ok::<_, Infallible>);
        AxumSse::new(stream).into_response()
    }

    async fn message_handler(
        State(state): State<McpState>,
        Query(q): Query<std::collections::HashMap<String, String>>,
        headers: AxumHeaders,
        body: String,
    ) -> Response {
        state.seen_keys.lock().unwrap().push(api_key(&headers));
        if let Some(code) = state.post_status {
            return (AxumStatus::from_u16(code).unwrap(), "boom: server exploded").into_response();
        }
        assert_eq!(q.get("session_id").map(String::as_str), Some("abc"));
        assert_eq!(
            headers.get("content-type").unwrap().to_str().unwrap(),
            "application/json"
        );
        let msg: Value = serde_json::from_str(&body).unwrap();
        if let (Some(id), Some(method)) = (msg.get("id"), msg["method"].as_str()) {
            let reply = match method {
                "initialize" => json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": "2024-11-05",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "axum-test", "version": "0.0.1"}
                }}),
                "tools/list" => json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [{
                    "name": "echo",
                    "description": "Echo the input",
                    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}
                }]}}),
                "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
                _ => json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32601, "message": "method not found"}}),
            };
            let tx = state.session.lock().unwrap().clone().unwrap();
            tx.send(Event::default().event("message").data(reply.to_string()))
                .await
                .unwrap();
        }
        (AxumStatus::ACCEPTED, "Accepted").into_response()
    }

    fn default_state() -> McpState {
        McpState {
            endpoint: Arc::new("/messages/?session_id=abc".to_owned()),
            ..McpState::default()
        }
    }

    fn key_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("sekrit-key"));
        h
    }

    fn list_tools_msg(id: i64) -> ClientJsonRpcMessage {
        ClientJsonRpcMessage::request(
            ClientRequest::ListToolsRequest(ListToolsRequest::default()),
            NumberOrString::Number(id),
        )
    }

    #[tokio::test]
    async fn round_trip_with_relative_endpoint() {
        let state = default_state();
        let keys = state.seen_keys.clone();
        let addr = serve(|_| mcp_router(state)).await;
        tokio::time::timeout(TEST_TIMEOUT, async {
            let mut t = connect(client(), sse_url(addr), key_headers(), opts())
                .await
                .unwrap();
            assert_eq!(
                t.endpoint().as_str(),
                format!("http://{addr}/messages/?session_id=abc")
            );
            t.send(list_tools_msg(7)).await.unwrap();
            let reply = t.receive().await.unwrap();
            let (result, id) = reply.into_response().expect("a response");
            assert_eq!(id, NumberOrString::Number(7));
            let result = serde_json::to_value(result).unwrap();
            assert_eq!(result["tools"][0]["name"], "echo");
            assert!(t.end_reason().is_none());

            // Custom headers go with the GET and with the POST.
            let keys = keys.lock().unwrap().clone();
            assert_eq!(keys, vec![Some("sekrit-key".to_owned()); 2]);

            // close is idempotent; afterwards send fails and receive ends.
            t.close().await.unwrap();
            t.close().await.unwrap();
            assert!(matches!(t.end_reason(), Some(StreamEnd::ClosedByClient)));
            assert!(matches!(
                t.send(list_tools_msg(8)).await,
                Err(SseError::Closed)
            ));
            assert!(t.receive().await.is_none());
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn skips_unparsable_messages_and_other_events() {
        let mut state = default_state();
        state.preamble = Arc::new(vec![
            Event::default().event("message").data("{not json"),
            Event::default().event("heartbeat").data("{}"),
            Event::default().comment("ping"),
            Event::default().data(
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}).to_string(),
            ),
        ]);
        let addr = serve(|_| mcp_router(state)).await;
        tokio::time::timeout(TEST_TIMEOUT, async {
            let mut t = connect(client(), sse_url(addr), HeaderMap::new(), opts())
                .await
                .unwrap();
            // The unnamed event is delivered; the garbage and the heartbeat are not.
            let msg = t.receive().await.unwrap();
            assert!(msg.into_notification().is_some());
            t.send(list_tools_msg(1)).await.unwrap();
            let (_, id) = t.receive().await.unwrap().into_response().unwrap();
            assert_eq!(id, NumberOrString::Number(1));
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn oversize_event_ends_stream_with_cap_error() {
        let addr = serve(|_| {
            Router::new().route(
                "/sse",
                get(|| async {
                    let events = vec![
                        Event::default()
                            .event("endpoint")
                            .data("/messages/?session_id=abc"),
                        Event::default().event("message").data("x".repeat(4096)),
                    ];
                    let tail = futures::stream::pending();
                    AxumSse::new(
                        futures::stream::iter(events)
                            .chain(tail)
                            .map(Ok::<_, Infallible>),
                    )
                }),
            )
        })
        .await;
        tokio::time::timeout(TEST_TIMEOUT, async {
            let opts = SseOptions {
                max_event_bytes: 1024,
                ..opts()
            };
            let mut t = connect(client(), sse_url(addr), HeaderMap::new(), opts)
                .await
                .unwrap();
            let mut watch = t.watch_end();
            assert!(t.receive().await.is_none(), "stream must end");
            match t.end_reason() {
                Some(StreamEnd::Failed(e)) => {
                    assert!(matches!(*e, SseError::EventTooLarge { limit: 1024 }), "{e}");
                }
                other => panic!("unexpected end reason {other:?}"),
            }
            let seen = watch.wait_for(Option::is_some).await.unwrap().clone();
            assert!(seen.unwrap().to_string().contains("1024-byte limit"));
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn oversize_event_before_endpoint_fails_connect() {
        let addr = serve(|_| {
            Router::new().route(
                "/sse",
                get(|| async {
                    let events = vec![Event::default().event("noise").data("y".repeat(4096))];
                    AxumSse::new(futures::stream::iter(events).map(Ok::<_, Infallible>))
                }),
            )
        })
        .await;
        let opts = SseOptions {
            max_event_bytes: 1024,
            ..opts()
        };
        let err = tokio::time::timeout(
            TEST_TIMEOUT,
            connect(client(), sse_url(addr), HeaderMap::new(), opts),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(
            matches!(err, SseError::EventTooLarge { limit: 1024 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_endpoint_times_out() {
        let addr = serve(|_| {
            Router::new().route(
                "/sse",
                get(|| async {
                    let events = vec![Event::default().event("message").data("{}")];
                    AxumSse::new(
                        futures::stream::iter(events)
                            .chain(futures::stream::pending())
                            .map(Ok::<_, Infallible>),
                    )
                }),
            )
        })
        .await;
        let opts = SseOptions {
            endpoint_timeout: Duration::from_millis(200),
            ..opts()
        };
        let started = std::time::Instant::now();
        let err = connect(client(), sse_url(addr), HeaderMap::new(), opts)
            .await
            .unwrap_err();
        assert!(matches!(err, SseError::EndpointTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(err.to_string().contains("200ms"), "{err}");
    }

    #[tokio::test]
    async fn stream_end_before_endpoint_is_reported() {
        let addr = serve(|_| {
            Router::new().route(
                "/sse",
                get(|| async {
                    AxumSse::new(futures::stream::empty::<Result<Event, Infallible>>())
                }),
            )
        })
        .await;
        let err = tokio::time::timeout(
            TEST_TIMEOUT,
            connect(client(), sse_url(addr), HeaderMap::new(), opts()),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(matches!(err, SseError::NoEndpoint), "{err}");
    }

    #[tokio::test]
    async fn cross_origin_endpoint_is_refused() {
        // Same machine, but `localhost` vs `127.0.0.1` is a different origin; and another port.
        for endpoint in [
            "http://localhost:{port}/messages/",
            "http://127.0.0.1:1/messages/",
        ] {
            let addr = serve(|addr| {
                mcp_router(McpState {
                    endpoint: Arc::new(endpoint.replace("{port}", &addr.port().to_string())),
                    ..McpState::default()
                })
            })
            .await;
            let err = tokio::time::timeout(
                TEST_TIMEOUT,
                connect(client(), sse_url(addr), HeaderMap::new(), opts()),
            )
            .await
            .unwrap()
            .unwrap_err();
            match &err {
                SseError::CrossOriginEndpoint {
                    endpoint_origin,
                    sse_origin,
                } => {
                    assert_eq!(sse_origin, &format!("http://{addr}"));
                    assert_ne!(endpoint_origin, sse_origin);
                }
                other => panic!("unexpected error {other}"),
            }
        }
    }

    #[tokio::test]
    async fn non_2xx_post_is_a_send_error() {
        let mut state = default_state();
        state.post_status = Some(500);
        let addr = serve(|_| mcp_router(state)).await;
        tokio::time::timeout(TEST_TIMEOUT, async {
            let mut t = connect(client(), sse_url(addr), key_headers(), opts())
                .await
                .unwrap();
            let err = t.send(list_tools_msg(1)).await.unwrap_err();
            match &err {
                SseError::PostStatus { status, body } => {
                    assert_eq!(status.as_u16(), 500);
                    assert!(body.contains("boom"), "{body}");
                }
                other => panic!("unexpected error {other}"),
            }
            let text = err.to_string();
            assert!(text.contains("500"), "{text}");
            assert!(!text.contains("sekrit"), "{text}");
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn get_status_and_content_type_errors() {
        let addr = serve(|_| {
            Router::new()
                .route(
                    "/sse",
                    get(|| async { (AxumStatus::UNAUTHORIZED, "missing token\n") }),
                )
                .route("/plain", get(|| async { "hello" }))
        })
        .await;
        tokio::time::timeout(TEST_TIMEOUT, async {
            let err = connect(client(), sse_url(addr), key_headers(), opts())
                .await
                .unwrap_err();
            match &err {
                SseError::Status { status, body } => {
                    assert_eq!(status.as_u16(), 401);
                    assert_eq!(body, "missing token");
                }
                other => panic!("unexpected error {other}"),
            }
            assert!(!format!("{err} {err:?}").contains("sekrit"));

            let plain = Url::parse(&format!("http://{addr}/plain")).unwrap();
            let err = connect(client(), plain, HeaderMap::new(), opts())
                .await
                .unwrap_err();
            assert!(
                matches!(&err, SseError::ContentType { content_type } if content_type.starts_with("text/plain")),
                "{err}"
            );
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn server_closing_stream_ends_session() {
        let state = default_state();
        let session = state.session.clone();
        let addr = serve(|_| mcp_router(state)).await;
        tokio::time::timeout(TEST_TIMEOUT, async {
            let mut t = connect(client(), sse_url(addr), HeaderMap::new(), opts())
                .await
                .unwrap();
            // Dropping the server-side sender finishes the SSE body.
            session.lock().unwrap().take();
            assert!(t.receive().await.is_none());
            assert!(matches!(t.end_reason(), Some(StreamEnd::ServerClosed)));
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn drop_stops_reader() {
        let addr = serve(|_| mcp_router(default_state())).await;
        let t = connect(client(), sse_url(addr), HeaderMap::new(), opts())
            .await
            .unwrap();
        let watch = t.watch_end();
        drop(t);
        assert!(matches!(*watch.borrow(), Some(StreamEnd::ClosedByClient)));
    }

    #[tokio::test]
    async fn rmcp_client_end_to_end() {
        let addr = serve(|_| mcp_router(default_state())).await;
        tokio::time::timeout(TEST_TIMEOUT, async {
            let t = connect(client(), sse_url(addr), key_headers(), opts())
                .await
                .unwrap();
            let end = t.watch_end();
            let client = ().serve(t).await.expect("initialize");
            let info = client.peer_info().expect("server info");
            assert_eq!(info.server_info.as_ref().unwrap().name, "axum-test");
            let tools = client.list_all_tools().await.unwrap();
            assert_eq!(tools.len(), 1);
            assert_eq!(tools[0].name, "echo");
            client.cancel().await.unwrap();
            assert!(matches!(*end.borrow(), Some(StreamEnd::ClosedByClient)));
        })
        .await
        .unwrap();
    }

    #[test]
    fn counter_handles_all_line_endings_and_splits() {
        for sep in ["\n\n", "\r\r", "\r\n\r\n"] {
            let mut c = EventSizeCounter::new(12);
            // Many small events never trip the cap.
            for _ in 0..100 {
                c.feed(format!("data:12345{sep}").as_bytes()).unwrap();
            }
            // Lines of one event add up (6 + 5 bytes, then 5 more).
            let one_line = if sep == "\r\n\r\n" { "\r\n" } else { &sep[..1] };
            c.feed(format!("data:1{one_line}data:").as_bytes()).unwrap();
            assert_eq!(c.feed(b"12345"), Err(12));
        }
        // `\r` and `\n` of a CRLF split across chunks is still one terminator, not a blank line.
        let mut c = EventSizeCounter::new(10);
        c.feed(b"data:1\r").unwrap();
        c.feed(b"\ndat").unwrap();
        assert_eq!(c.feed(b"a:"), Err(10));
    }

    #[test]
    fn sanitize_truncates_and_strips_controls() {
        assert_eq!(sanitize(b"  a\x1bb\nc  ", 100), "a b c");
        assert_eq!(sanitize("ééé".as_bytes(), 3), "é…");
        assert_eq!(sanitize(&[b'x'; 1000], 4), "xxxx…");
    }

    #[test]
    fn endpoint_resolution() {
        let sse = Url::parse("https://h.example/mcp/sse?key=1").unwrap();
        let ok = |d: &str| resolve_endpoint(&sse, &sse, Some(d)).unwrap().to_string();
        assert_eq!(
            ok("/messages/?session_id=x"),
            "https://h.example/messages/?session_id=x"
        );
        assert_eq!(ok("messages?s=1"), "https://h.example/mcp/messages?s=1");
        assert_eq!(ok(" https://h.example:443/m \n"), "https://h.example/m");
        assert!(matches!(
            resolve_endpoint(&sse, &sse, Some("http://h.example/m")),
            Err(SseError::CrossOriginEndpoint { .. })
        ));
        assert!(matches!(
            resolve_endpoint(&sse, &sse, Some("//evil.example/m")),
            Err(SseError::CrossOriginEndpoint { .. })
        ));
        assert!(matches!(
            resolve_endpoint(&sse, &sse, None),
            Err(SseError::InvalidEndpoint { .. })
        ));
    }
}
