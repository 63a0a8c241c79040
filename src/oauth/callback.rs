//! Receiving the authorization response: the loopback listener (`use_loopback: true`) and
//! the pasted redirect URL (`use_loopback: false`).
//!
//! Each response is handed to the login flow with a reply channel, so the page the browser
//! shows says what really happened (the token exchange included). A response whose `state`
//! is not the one the flow waits for gets an error page and is otherwise ignored.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::support::html::escape;

/// What came back from the authorization server, as query parameters.
pub(crate) type Params = HashMap<String, String>;

/// The page the browser gets for one callback request.
pub(crate) struct Page {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
}

impl Page {
    pub fn success(server: &str) -> Page {
        Page {
            status: StatusCode::OK,
            title: "Signed in",
            message: format!(
                "mcpo is now authorized to use the MCP server '{server}'. You can close this page."
            ),
        }
    }

    pub fn failure(status: StatusCode, message: String) -> Page {
        Page {
            status,
            title: "Sign-in failed",
            message,
        }
    }

    fn render(&self) -> (StatusCode, Html<String>) {
        let body = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>mcpo: {title}</title>\
             </head><body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
             <h1>{title}</h1><p>{message}</p></body></html>",
            title = escape(self.title),
            message = escape(&self.message),
        );
        (self.status, Html(body))
    }
}

/// A small HTML page for the browser side of a login (mcpo's own web-login routes use it
/// too): `message` is escaped.
pub fn html_page(
    status: StatusCode,
    title: &'static str,
    message: String,
) -> axum::response::Response {
    let mut response = Page {
        status,
        title,
        message,
    }
    .render()
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// One request to `/callback` or `/callback/<secret>`, waiting for the flow's verdict.
pub(crate) struct Callback {
    /// The request's path: the flow accepts only its own redirect URI's.
    pub path: String,
    pub params: Params,
    pub reply: oneshot::Sender<Page>,
}

/// Logins that share a callback port run one at a time, process-wide.
static PORT_LOCKS: LazyLock<Mutex<HashMap<u16, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// The lock of the callback port `port`.
pub(crate) fn port_lock(port: u16) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = PORT_LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(port).or_default().clone()
}

static STDIN_LOCK: LazyLock<Arc<tokio::sync::Mutex<()>>> = LazyLock::new(Default::default);

/// Manual logins read standard input one at a time.
pub(crate) fn stdin_lock() -> Arc<tokio::sync::Mutex<()>> {
    STDIN_LOCK.clone()
}

/// The loopback listener on `127.0.0.1:<port>` (and `[::1]:<port>` when available, since the
/// redirect URI says `localhost`).
pub(crate) struct CallbackListener {
    rx: mpsc::Receiver<Callback>,
    shutdown: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CallbackListener {
    pub async fn bind(port: u16) -> std::io::Result<CallbackListener> {
        let v4 =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        // Best effort: most browsers resolve localhost to ::1 first and fall back to
        // 127.0.0.1, so IPv6 only saves a round trip.
        let v6 = tokio::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
            .await
            .ok();
        let (tx, rx) = mpsc::channel(16);
        let router = axum::Router::new()
            .route("/callback", axum::routing::get(receive))
            .route("/callback/{secret}", axum::routing::get(receive))
            .with_state(tx);
        let mut shutdown = Vec::new();
        let mut tasks = Vec::new();
        for listener in std::iter::once(v4).chain(v6) {
            let (stop, stopped) = oneshot::channel::<()>();
            let app = router.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            }));
            shutdown.push(stop);
        }
        Ok(CallbackListener {
            rx,
            shutdown,
            tasks,
        })
    }

    pub async fn next(&mut self) -> Option<Callback> {
        self.rx.recv().await
    }

    /// Stops listening and frees the port before returning (the next login may bind it).
    pub async fn close(mut self) {
        self.rx.close();
        for stop in self.shutdown.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for CallbackListener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn receive(
    State(tx): State<mpsc::Sender<Callback>>,
    uri: axum::http::Uri,
    Query(params): Query<Params>,
) -> impl IntoResponse {
    let path = uri.path().to_owned();
    let (reply, verdict) = oneshot::channel();
    let gone = || {
        Page::failure(
            StatusCode::GONE,
            "mcpo is not waiting for a sign-in here any more. Start the login again.".to_owned(),
        )
        .render()
    };
    if tx
        .send(Callback {
            path,
            params,
            reply,
        })
        .await
        .is_err()
    {
        return gone();
    }
    match verdict.await {
        Ok(page) => page.render(),
        Err(_) => gone(),
    }
}

/// Lines pasted by the user in the manual flow.
#[derive(Clone)]
pub(crate) enum PasteSource {
    Stdin,
    Lines(Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>),
}

impl PasteSource {
    /// The next pasted line; `None` once the input is closed.
    pub async fn next_line(&self) -> Option<String> {
        match self {
            PasteSource::Stdin => {
                let mut line = String::new();
                let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
                match stdin.read_line(&mut line).await {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                }
            }
            PasteSource::Lines(rx) => rx.lock().await.recv().await,
        }
    }
}

/// Query parameters of a pasted redirect URL.
pub(crate) fn params_of_url(text: &str) -> Result<Params, String> {
    let url = url::Url::parse(text.trim()).map_err(|_| {
        "that is not a URL; paste the whole address the browser was sent to".to_owned()
    })?;
    Ok(url.query_pairs().into_owned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn parses_pasted_urls() {
        let p = params_of_url(" http://localhost:3030/callback?code=a%20b&state=s \n").unwrap();
        assert_eq!(p["code"], "a b");
        assert_eq!(p["state"], "s");
        assert!(params_of_url("code=abc").is_err());
    }

    #[tokio::test]
    async fn listener_hands_callbacks_over_and_frees_the_port() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut listener = CallbackListener::bind(port).await.unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let request = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .get(format!("http://127.0.0.1:{port}/callback?state=x&code=y"))
                    .send()
                    .await
                    .unwrap()
            }
        });
        let cb = listener.next().await.unwrap();
        assert_eq!(cb.path, "/callback");
        assert_eq!(cb.params["code"], "y");
        cb.reply
            .send(Page::failure(StatusCode::BAD_REQUEST, "<no>".to_owned()))
            .ok();
        let response = request.await.unwrap();
        assert_eq!(response.status(), 400);
        assert!(response.text().await.unwrap().contains("&lt;no&gt;"));
        listener.close().await;
        // The port is free again.
        let again = CallbackListener::bind(port).await.unwrap();
        again.close().await;
    }
}
