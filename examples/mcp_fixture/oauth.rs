//! An OAuth-protected streamable HTTP mode for the bench and tests (additive; off unless its
//! variables are set): a resource server as fast as the fixture itself, so that a benchmark of
//! mcpo's OAuth call path measures mcpo rather than the Python SDK's resource server
//! (`tests/oauth/peer/mcp_server.py`), which it otherwise mirrors.
//!
//! - `FIXTURE_OAUTH_ISSUER=<issuer URL>` and `FIXTURE_OAUTH_RS_SECRET=<secret>` (both needed):
//!   RFC 9728 protected-resource metadata at `/.well-known/oauth-protected-resource/mcp` (and
//!   without the suffix) naming the issuer and `scopes_supported: ["mcp:tools"]`; every request
//!   to `/mcp` needs `Authorization: Bearer <token>` that RFC 7662 introspection at
//!   `<issuer>/token/introspection` (HTTP Basic `mcp-resource-server:<secret>`) says is active,
//!   for this server (`aud`, RFC 8707) and with the `mcp:tools` scope. Otherwise 401 with
//!   `WWW-Authenticate: Bearer resource_metadata="…", scope="mcp:tools"` (403
//!   `insufficient_scope` for an active token without the scope).
//! - An active token's answer is kept until its `exp` (at most 10,000 tokens): one
//!   introspection per token, not per request. A token revoked before it expires is therefore
//!   still taken until then; the fixture is for benchmarks and tests, not for revocation.
//!
//! The resource is `http://127.0.0.1:<bound port>/mcp`, the address the fixture listens on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const SCOPE: &str = "mcp:tools";
const CACHE_MAX: usize = 10_000;

struct Settings {
    issuer: String,
    secret: String,
    client: reqwest::Client,
    /// Active tokens and their `exp` (seconds since the epoch).
    active: Mutex<HashMap<String, u64>>,
}

static SETTINGS: OnceLock<Option<Settings>> = OnceLock::new();
static RESOURCE: OnceLock<String> = OnceLock::new();

fn settings() -> Option<&'static Settings> {
    SETTINGS
        .get_or_init(|| {
            let issuer = std::env::var("FIXTURE_OAUTH_ISSUER").ok()?;
            let secret = std::env::var("FIXTURE_OAUTH_RS_SECRET").ok()?;
            Some(Settings {
                issuer: issuer.trim_end_matches('/').to_owned(),
                secret,
                client: reqwest::Client::builder()
                    .no_proxy()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .expect("HTTP client"),
                active: Mutex::new(HashMap::new()),
            })
        })
        .as_ref()
}

/// Records the address the fixture listens on (the resource is named after it).
pub fn bound(addr: SocketAddr) {
    let _ = RESOURCE.set(format!("http://{addr}/mcp"));
}

fn resource() -> &'static str {
    RESOURCE.get().map_or("", String::as_str)
}

fn metadata_url() -> String {
    let base = resource().trim_end_matches("/mcp");
    format!("{base}/.well-known/oauth-protected-resource/mcp")
}

/// `router` behind the token check, plus the metadata routes, when the OAuth variables are
/// set; `router` unchanged otherwise.
pub fn protect(router: axum::Router) -> axum::Router {
    let Some(enabled) = settings() else {
        return router;
    };
    eprintln!("fixture: OAuth protected, issuer {}", enabled.issuer);
    let metadata = axum::routing::get(|| async {
        axum::Json(json!({
            "resource": resource(),
            "authorization_servers": [settings().map(|s| s.issuer.as_str())],
            "scopes_supported": [SCOPE],
            "bearer_methods_supported": ["header"],
        }))
    });
    router
        .layer(axum::middleware::from_fn(require_token))
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            metadata.clone(),
        )
        .route("/.well-known/oauth-protected-resource", metadata)
}

enum Verdict {
    Active,
    InsufficientScope,
    Refused,
}

async fn require_token(request: Request, next: Next) -> Response {
    let Some(settings) = settings() else {
        return next.run(request).await;
    };
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let verdict = match &token {
        Some(token) => check(settings, token).await,
        None => Verdict::Refused,
    };
    match verdict {
        Verdict::Active => next.run(request).await,
        Verdict::InsufficientScope => challenge(
            StatusCode::FORBIDDEN,
            format!(
                r#"Bearer error="insufficient_scope", scope="{SCOPE}", resource_metadata="{}""#,
                metadata_url()
            ),
        ),
        Verdict::Refused => {
            let error = if token.is_some() {
                r#"error="invalid_token", "#
            } else {
                ""
            };
            challenge(
                StatusCode::UNAUTHORIZED,
                format!(
                    r#"Bearer {error}resource_metadata="{}", scope="{SCOPE}""#,
                    metadata_url()
                ),
            )
        }
    }
}

fn challenge(status: StatusCode, header: String) -> Response {
    (
        status,
        [("www-authenticate", header)],
        axum::Json(json!({"error": if status == StatusCode::FORBIDDEN { "insufficient_scope" } else { "invalid_token" }})),
    )
        .into_response()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The cached answer for `token`, or the authorization server's.
async fn check(settings: &Settings, token: &str) -> Verdict {
    let t = now();
    let cached = settings.active.lock().unwrap().get(token).copied();
    if cached.is_some_and(|exp| exp > t) {
        return Verdict::Active;
    }
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let answer = settings
        .client
        .post(format!("{}/token/introspection", settings.issuer))
        .basic_auth("mcp-resource-server", Some(&settings.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await;
    let data: Value = match answer {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        Ok(r) => {
            eprintln!("fixture: introspection answered {}", r.status());
            return Verdict::Refused;
        }
        Err(e) => {
            eprintln!("fixture: introspection failed: {e}");
            return Verdict::Refused;
        }
    };
    if data["active"] != true {
        return Verdict::Refused;
    }
    let for_us = match &data["aud"] {
        Value::String(aud) => aud == resource(),
        Value::Array(auds) => auds.iter().any(|a| a == resource()),
        _ => false,
    };
    let exp = data["exp"].as_u64().unwrap_or(0);
    if !for_us || exp <= t {
        eprintln!(
            "fixture: token refused (audience {}, exp {exp})",
            data["aud"]
        );
        return Verdict::Refused;
    }
    let scopes = data["scope"].as_str().unwrap_or_default();
    if !scopes.split_whitespace().any(|s| s == SCOPE) {
        return Verdict::InsufficientScope;
    }
    let mut active = settings.active.lock().unwrap();
    if active.len() >= CACHE_MAX {
        active.retain(|_, &mut exp| exp > t);
        if active.len() >= CACHE_MAX {
            active.clear();
        }
    }
    active.insert(token.to_owned(), exp);
    Verdict::Active
}
