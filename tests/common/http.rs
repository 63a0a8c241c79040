//! Talking to a running `mcpo` over HTTP: one request helper for every test, answers read
//! whole into a [`Reply`].

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use super::{Mcpo, client};

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as sent.
    pub text: String,
    /// The body as JSON; `Value::Null` if it is not JSON.
    pub body: Value,
}

impl Reply {
    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Every value of header `name`, as text.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header").to_owned())
            .collect()
    }

    /// A comma-separated header as lower-case items.
    pub fn items(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// mcpo's error text, `detail.message` (empty when there is none).
    pub fn message(&self) -> &str {
        self.body["detail"]["message"].as_str().unwrap_or("")
    }

    /// `Retry-After` in seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.header("retry-after").and_then(|s| s.parse().ok())
    }
}

/// Sends `request` and reads the whole answer.
pub async fn send(request: RequestBuilder) -> Reply {
    let r = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"));
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        body,
    }
}

fn with_auth(request: RequestBuilder, auth: Option<&str>) -> RequestBuilder {
    match auth {
        Some(auth) => request.header("authorization", auth),
        None => request,
    }
}

/// `GET path`, with `Authorization: auth` if given.
pub async fn get(mcpo: &Mcpo, path: &str, auth: Option<&str>) -> Reply {
    send(with_auth(client().get(mcpo.url(path)), auth)).await
}

/// `POST path` with a JSON body, with `Authorization: auth` if given.
pub async fn post(mcpo: &Mcpo, path: &str, auth: Option<&str>, body: Value) -> Reply {
    send(with_auth(client().post(mcpo.url(path)).json(&body), auth)).await
}

/// `POST path` with a JSON body: the status and the JSON answer (panics if it is not JSON).
pub async fn post_json(mcpo: &Mcpo, path: &str, body: Value) -> (StatusCode, Value) {
    let r = post(mcpo, path, None, body).await;
    let value = serde_json::from_str(&r.text)
        .unwrap_or_else(|e| panic!("POST {path}: body is not JSON ({e}): {}", r.text));
    (r.status, value)
}

/// `GET path`: the status and the JSON answer (`Value::Null` if it is not JSON).
pub async fn get_json(mcpo: &Mcpo, path: &str) -> (StatusCode, Value) {
    let r = get(mcpo, path, None).await;
    (r.status, r.body)
}

/// `GET path`, which must answer 200 with JSON.
pub async fn get_ok(mcpo: &Mcpo, path: &str) -> Value {
    let r = get(mcpo, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}");
    serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

/// `detail.message` of an mcpo error body; panics if there is none.
pub fn message(v: &Value) -> &str {
    v["detail"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail.message in {v}"))
}

/// An `Authorization` value for a bearer token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The entry of `server` in a `/status` body; panics if it is not there.
pub fn server_status<'a>(status: &'a Value, server: &str) -> &'a Value {
    status["servers"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["name"] == server))
        .unwrap_or_else(|| panic!("no server {server} in /status: {status}"))
}

/// `GET /status` (which must answer 200) and the entry of `server`.
pub async fn fetch_server_status(mcpo: &Mcpo, server: &str) -> Value {
    let r = get(mcpo, "/status", None).await;
    assert_eq!(r.status, StatusCode::OK, "/status: {r:?}");
    server_status(&r.body, server).clone()
}
