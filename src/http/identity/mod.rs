//! Who is calling: the `--api-key` service caller, an Open WebUI user (verified session JWT),
//! or nobody.
//!
//! Open WebUI signs session JWTs with HS256 over the UTF-8 bytes of `WEBUI_SECRET_KEY`, with
//! claims `id`, `exp`, `iat`, `jti` and `typ` (`session`/`automation`/`subagent`; absent in
//! older tokens). Only HS256 is accepted (no `none`, no RS256 key confusion); `exp` is
//! required. Tokens are never logged or echoed.

mod jwt;

use axum::http::{HeaderMap, header};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::{MultiUser, ServeOptions};
pub use jwt::verify_webui_jwt;

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Presented the `--api-key` (a shared "service" identity).
    Service,
    /// An Open WebUI user, by the `id` claim of their JWT.
    User(String),
    /// No credentials, and none were required for this route.
    Anonymous,
}

impl Caller {
    /// How logs name the caller (user ids are not secrets; tokens never appear).
    pub fn log_id(&self) -> &str {
        match self {
            Caller::User(id) => id,
            Caller::Service => "service",
            Caller::Anonymous => "anonymous",
        }
    }

    /// The key of this caller's own upstream session in multi-user mode.
    pub fn session_key(&self) -> &str {
        match self {
            Caller::User(id) => id,
            Caller::Service => "\u{0}service",
            Caller::Anonymous => "\u{0}anonymous",
        }
    }
}

/// What the `Authorization` header carries.
enum Presented {
    None,
    Bearer(String),
    /// HTTP Basic password (only honoured with `--strict-auth`).
    Basic(Vec<u8>),
    Other,
}

fn presented(headers: &HeaderMap) -> Presented {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Presented::None;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Bearer(rest.trim().to_owned())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let password = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|d| {
                d.iter()
                    .position(|&b| b == b':')
                    .map(|i| d[i + 1..].to_vec())
            });
        password.map_or(Presented::Other, Presented::Basic)
    } else {
        Presented::Other
    }
}

fn is_key(opts: &ServeOptions, candidate: &[u8]) -> bool {
    opts.api_key
        .as_deref()
        .is_some_and(|k| bool::from(candidate.ct_eq(k.as_bytes())))
}

/// Decides who is calling a server route. `tool_call` routes always need credentials when the
/// server is multi-user or an API key is set; spec and docs routes need them only with
/// `--strict-auth` (and are answered for anonymous callers in multi-user mode, because Open
/// WebUI fetches admin-registered specs without credentials).
pub async fn authorize(
    state: &AppState,
    multi: Option<&MultiUser>,
    headers: &HeaderMap,
    tool_call: bool,
) -> Result<Caller, ApiError> {
    let opts = &state.options;
    let needs_key = opts.api_key.is_some() && (tool_call || opts.strict_auth);
    match (presented(headers), multi) {
        (Presented::Bearer(t), _) if is_key(opts, t.as_bytes()) => Ok(Caller::Service),
        (Presented::Basic(p), _) if opts.strict_auth && is_key(opts, &p) => Ok(Caller::Service),
        (Presented::Bearer(t), Some(m)) => {
            if t.starts_with("sk-") {
                return Err(ApiError::Unauthorized(
                    "Open WebUI API keys (sk-…) are not accepted here: use the 'session' auth type so Open WebUI forwards the user's JWT".into(),
                ));
            }
            verify_webui_jwt(&t, &m.secret)
                .map(Caller::User)
                .map_err(|why| ApiError::Unauthorized(format!("invalid Open WebUI token: {why}")))
        }
        // Multi-user tool calls need a verified identity: no header, Basic or any other
        // scheme is refused (only the API key and user JWTs got through above).
        (_, Some(_)) if tool_call || needs_key => Err(ApiError::Unauthorized(
            "this server is in multi-user mode: send 'Authorization: Bearer <Open WebUI JWT>' (tool server auth type 'session')".into(),
        )),
        (Presented::None, _) if needs_key => Err(ApiError::Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'".into(),
        )),
        (_, _) if needs_key => Err(ApiError::Forbidden("invalid API key".into())),
        _ => Ok(Caller::Anonymous),
    }
}
