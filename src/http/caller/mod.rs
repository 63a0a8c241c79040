//! Who is calling: the `--api-key` service caller, an Open WebUI user, or nobody.
//!
//! An Open WebUI user is recognised, on multi-user servers, by any of the credentials Open
//! WebUI forwards (see `docs/open-webui.md`):
//! - its session JWT (`Authorization: Bearer eyJ…`, auth type `session`), checked offline with
//!   `WEBUI_SECRET_KEY` ([`jwt`]);
//! - an API key (`Authorization: Bearer sk-…`, when the chat was started through Open WebUI's
//!   API), resolved online through `--webui-url` ([`api_key`]);
//! - its signed user-info header (`X-OpenWebUI-User-Jwt`), checked offline with
//!   `--webui-user-jwt-secret` ([`jwt`]). The unsigned `X-OpenWebUI-User-*` headers are never
//!   read: anyone can send them.
//!
//! All three name the same user id, so a user keeps one upstream session whichever arrives.
//! Credentials are never logged or echoed.

mod api_key;
mod jwt;

use axum::http::{HeaderMap, header};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::{MultiUser, ServeOptions};
pub use api_key::ApiKeys;
pub use jwt::{verify_user_info, verify_user_info_jwt, verify_webui_jwt};

pub use crate::support::caller::{Caller, Profile};

/// What the `Authorization` header carries.
enum Presented {
    None,
    Bearer(String),
    /// HTTP Basic password (only honoured with `--strict-auth`, on GET routes that are not
    /// tool calls).
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

/// Whether `candidate` is the `--api-key`. The SHA-256 digests are compared, in constant
/// time: comparing the raw bytes stops at the first length mismatch, so response times would
/// tell a caller how long the key is.
fn is_key(opts: &ServeOptions, candidate: &[u8]) -> bool {
    opts.api_key.as_deref().is_some_and(|key| {
        let (presented, expected) = (Sha256::digest(candidate), Sha256::digest(key.as_bytes()));
        bool::from(presented.as_slice().ct_eq(expected.as_slice()))
    })
}

/// Decides who is calling a server route. `tool_call` routes always need credentials when the
/// server is multi-user or an API key is set; spec and docs routes need them only with
/// `--strict-auth` (and are answered for anonymous callers in multi-user mode, because Open
/// WebUI fetches admin-registered specs without credentials). HTTP Basic is accepted on spec
/// and docs routes only: a browser that cached the password sends it to every request a page
/// makes, so for tool calls it would be a credential any site can use.
pub async fn identify(
    state: &AppState,
    multi: Option<&MultiUser>,
    headers: &HeaderMap,
    tool_call: bool,
) -> Result<Caller, ApiError> {
    identify_as(state, multi, headers, tool_call, !tool_call).await
}

/// [`identify`] for the GET pages that always need the key (`/status`, `/metrics`), where a
/// browser may answer the Basic challenge.
pub async fn identify_for_private_page(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    identify_as(state, None, headers, true, true).await
}

async fn identify_as(
    state: &AppState,
    multi: Option<&MultiUser>,
    headers: &HeaderMap,
    tool_call: bool,
    basic_allowed: bool,
) -> Result<Caller, ApiError> {
    let opts = &state.options;
    let needs_key = opts.api_key.is_some() && (tool_call || opts.strict_auth);
    // The signed user-info header names the user even when `Authorization` carries a static
    // key (Open WebUI's `bearer` auth type), so it is looked at first.
    if multi.is_some()
        && let Some(caller) = user_info_header(opts, headers)?
    {
        return Ok(caller);
    }
    match (presented(headers), multi) {
        (Presented::Bearer(t), _) if is_key(opts, t.as_bytes()) => Ok(Caller::Service),
        (Presented::Basic(p), _) if basic_allowed && opts.strict_auth && is_key(opts, &p) => {
            Ok(Caller::Service)
        }
        (Presented::Basic(_), _) if !basic_allowed && (needs_key || multi.is_some()) => {
            Err(ApiError::Unauthorized(
                "HTTP Basic is accepted on documentation pages only; send the key as                  'Authorization: Bearer <key>'"
                    .into(),
            ))
        }
        (Presented::Bearer(t), Some(_)) if t.starts_with("sk-") => {
            match state.api_keys.resolve(&t).await {
                Ok(id) => Ok(Caller::User(id)),
                // Open specs stay open while Open WebUI is unreachable: the caller gets the
                // server's shared tool list instead of an error.
                Err(e) if !tool_call && !needs_key && !matches!(e, ApiError::Unauthorized(_)) => {
                    Ok(Caller::Anonymous)
                }
                Err(e) => Err(e),
            }
        }
        (Presented::Bearer(t), Some(m)) => verify_webui_jwt(&t, &m.secret)
            .map(Caller::User)
            .map_err(|why| ApiError::Unauthorized(format!("invalid Open WebUI token: {why}"))),
        // Multi-user tool calls need a verified identity: no header, Basic or any other
        // scheme is refused (only the API key and user credentials got through above).
        (_, Some(_)) if tool_call || needs_key => {
            let mut message = "this server is in multi-user mode: send 'Authorization: Bearer \
                               <Open WebUI JWT>' (tool server auth type 'session')"
                .to_owned();
            if headers.contains_key(USER_INFO_HEADER) {
                message.push_str(
                    "; X-OpenWebUI-User-Jwt is ignored until mcpo is started with \
                     --webui-user-jwt-secret / FORWARD_USER_INFO_HEADER_JWT_SECRET",
                );
            }
            Err(ApiError::Unauthorized(message))
        }
        (Presented::None, _) if needs_key => Err(ApiError::Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'".into(),
        )),
        (_, _) if needs_key => Err(ApiError::Forbidden("invalid API key".into())),
        _ => Ok(Caller::Anonymous),
    }
}

/// Open WebUI's signed user-info header (its `FORWARD_USER_INFO_HEADER_JWT` default).
const USER_INFO_HEADER: &str = "x-openwebui-user-jwt";

/// The user named by a valid `X-OpenWebUI-User-Jwt`; `None` when the header is absent or no
/// secret is configured to check it; 401 when it does not verify.
fn user_info_header(opts: &ServeOptions, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let (Some(secret), Some(value)) = (&opts.webui_user_jwt_secret, headers.get(USER_INFO_HEADER))
    else {
        return Ok(None);
    };
    let token = value.to_str().unwrap_or_default().trim();
    verify_user_info_jwt(token, secret)
        .map(|id| Some(Caller::User(id)))
        .map_err(|why| ApiError::Unauthorized(format!("invalid X-OpenWebUI-User-Jwt: {why}")))
}

/// What the caller's identity says besides the id, for `{{USER_EMAIL}}`, `{{USER_NAME}}` and
/// `{{USER_ROLE}}`: the claims of a valid `X-OpenWebUI-User-Jwt` naming this same caller (the
/// header [`identify`] looks at first), else nothing. Kept apart from the [`Caller`], which
/// alone keys sessions.
pub fn profile(state: &AppState, headers: &HeaderMap, caller: &Caller) -> Profile {
    let (Some(secret), Some(value), Caller::User(id)) = (
        &state.options.webui_user_jwt_secret,
        headers.get(USER_INFO_HEADER),
        caller,
    ) else {
        return Profile::default();
    };
    match verify_user_info(value.to_str().unwrap_or_default().trim(), secret) {
        Ok((sub, profile)) if sub == *id => profile,
        _ => Profile::default(),
    }
}
