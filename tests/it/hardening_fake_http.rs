//! Hostile HTTP peers for the #19 hardening tests: a small in-process HTTP server on
//! 127.0.0.1 whose every answer the test decides, and which records every request it gets
//! (method, path and query, headers, body), so a test can tell what mcpo sent where.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::Response;

/// One request the fake server received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Hit {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Whether `needle` is anywhere in this request: target, a header value or the body.
    pub fn carries(&self, needle: &str) -> bool {
        self.target.contains(needle)
            || self.body.contains(needle)
            || self
                .headers
                .values()
                .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(needle))
    }
}

type Handler = dyn Fn(&Hit, SocketAddr) -> Response + Send + Sync;

/// A fake HTTP server; stopped when dropped.
pub struct FakeHttp {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHttp {
    /// Listens on a free loopback port and answers each request with `answer(hit, own_addr)`.
    pub async fn start(
        answer: impl Fn(&Hit, SocketAddr) -> Response + Send + Sync + 'static,
    ) -> FakeHttp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let answer: Arc<Handler> = Arc::new(answer);
        let recorded = hits.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let (recorded, answer) = (recorded.clone(), answer.clone());
            async move {
                let (parts, body) = request.into_parts();
                // Bounded: a test peer never needs more, and mcpo never sends more.
                let body = axum::body::to_bytes(body, 4 << 20)
                    .await
                    .unwrap_or_default();
                let hit = Hit {
                    method: parts.method,
                    target: parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    headers: parts.headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                recorded.lock().unwrap().push(hit.clone());
                answer(&hit, addr)
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeHttp { addr, hits, task }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response with this status, headers and body.
pub fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(body.into()).expect("response")
}

/// A JSON response.
pub fn json_reply(status: u16, value: &serde_json::Value) -> Response {
    reply(
        status,
        &[("content-type", "application/json")],
        value.to_string(),
    )
}
