//! Credentials checks and reports for mcpo's per-user secrets tests (additive; off unless
//! their variables are set, so the fixed tool list stays as the other tests expect it):
//!
//! - `FIXTURE_ACCEPTED_KEYS=<file>`: the keys the server accepts, one per line, read on every
//!   request (a test rewrites the file to revoke one). Over streamable HTTP a request whose
//!   `Authorization: Bearer <key>` is not listed gets 401 with `WWW-Authenticate: Bearer`;
//!   over stdio, with `FIXTURE_KEY_VAR=<NAME>`, a process whose `$NAME` is not listed exits
//!   with status 3 before answering `initialize`.
//! - `FIXTURE_REPORT=1`: two more tools, `report_headers` (the HTTP request headers of the
//!   call: `authorization` and every `x-…`, as received) and `report_env` (`{"names": [...]}`:
//!   those environment variables' values, and the process's command line).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use std::sync::Arc;

fn accepted() -> Option<Vec<String>> {
    let path = std::env::var_os("FIXTURE_ACCEPTED_KEYS")?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// Streamable HTTP: 401 unless the bearer key is accepted (when keys are configured).
pub async fn require_key(request: Request, next: Next) -> Response {
    if let Some(keys) = accepted() {
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        if !keys.contains(&presented) {
            eprintln!("fixture refused a request: key not accepted");
            return (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Bearer")],
                "key not accepted",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Stdio: exits (status 3) when `$FIXTURE_KEY_VAR`'s value is not accepted.
pub fn check_stdio_key() {
    let (Some(keys), Some(var)) = (accepted(), std::env::var_os("FIXTURE_KEY_VAR")) else {
        return;
    };
    let value = std::env::var_os(&var).unwrap_or_default();
    if !keys.iter().any(|k| value.to_str() == Some(k.as_str())) {
        eprintln!("fixture: key not accepted; exiting");
        std::process::exit(3);
    }
}

pub fn enabled() -> bool {
    std::env::var_os("FIXTURE_REPORT").is_some_and(|v| v == "1")
}

pub fn tools() -> Vec<Tool> {
    let object = |v: Value| Arc::new(v.as_object().cloned().unwrap_or_default());
    vec![
        Tool::new(
            "report_headers",
            "The HTTP request headers this call arrived with (authorization and x-*).",
            object(json!({"type": "object"})),
        ),
        Tool::new(
            "report_env",
            "The values of the named environment variables, and the command line.",
            object(json!({
                "type": "object",
                "properties": {"names": {"type": "array", "items": {"type": "string"}}},
                "required": ["names"]
            })),
        ),
    ]
}

/// `report_headers` and `report_env`; `None` for other names.
pub fn call(
    name: &str,
    args: &JsonObject,
    context: &RequestContext<RoleServer>,
) -> Option<Result<CallToolResult, ErrorData>> {
    if !enabled() {
        return None;
    }
    let value = match name {
        "report_headers" => {
            let Some(parts) = context.extensions.get::<axum::http::request::Parts>() else {
                return Some(Err(ErrorData::invalid_params(
                    "no HTTP request (not streamable HTTP)",
                    None,
                )));
            };
            let mut headers = serde_json::Map::new();
            for (k, v) in &parts.headers {
                let k = k.as_str();
                if k == "authorization" || k.starts_with("x-") {
                    headers.insert(
                        k.to_owned(),
                        Value::String(v.to_str().unwrap_or("").to_owned()),
                    );
                }
            }
            Value::Object(headers)
        }
        "report_env" => {
            let names: Vec<String> = args
                .get("names")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            let env: serde_json::Map<String, Value> = names
                .into_iter()
                .map(|n| {
                    let v = std::env::var(&n).map_or(Value::Null, Value::String);
                    (n, v)
                })
                .collect();
            json!({"env": env, "args": std::env::args().collect::<Vec<_>>()})
        }
        _ => return None,
    };
    Some(Ok(CallToolResult::success(vec![ContentBlock::text(
        value.to_string(),
    )])))
}
