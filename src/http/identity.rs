//! Who is calling: the `--api-key` service caller, an Open WebUI user (verified session JWT),
//! or nobody.
//!
//! Open WebUI signs session JWTs with HS256 over the UTF-8 bytes of `WEBUI_SECRET_KEY`, with
//! claims `id`, `exp`, `iat`, `jti` and `typ` (`session`/`automation`/`subagent`; absent in
//! older tokens). Only HS256 is accepted (no `none`, no RS256 key confusion); `exp` is
//! required. Tokens are never logged or echoed.

use axum::http::{HeaderMap, header};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::{MultiUser, ServeOptions};

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;

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

#[derive(Deserialize)]
struct Claims {
    id: Option<serde_json::Value>,
    typ: Option<String>,
}

/// Verifies an Open WebUI session JWT and returns the user id.
pub fn verify_webui_jwt(token: &str, secret: &str) -> Result<String, String> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| {
        use jsonwebtoken::errors::ErrorKind::*;
        match e.kind() {
            ExpiredSignature => "the token has expired".to_owned(),
            InvalidSignature => "the token's signature does not verify".to_owned(),
            InvalidAlgorithm => "the token is not signed with HS256".to_owned(),
            MissingRequiredClaim(c) => format!("the token has no '{c}' claim"),
            _ => "the token is not a valid Open WebUI JWT".to_owned(),
        }
    })?;
    if let Some(typ) = &data.claims.typ
        && !matches!(typ.as_str(), "session" | "automation" | "subagent")
    {
        return Err(format!("tokens of type '{typ}' are not accepted"));
    }
    match data.claims.id {
        Some(serde_json::Value::String(id)) if !id.is_empty() => Ok(id),
        _ => Err("the token has no string 'id' claim".to_owned()),
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
pub fn authorize(
    opts: &ServeOptions,
    multi: Option<&MultiUser>,
    headers: &HeaderMap,
    tool_call: bool,
) -> Result<Caller, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn accepts_open_webui_session_tokens() {
        let t = token(
            json!({"id": "u1", "exp": now() + 60, "typ": "session"}),
            "s",
        );
        assert_eq!(verify_webui_jwt(&t, "s"), Ok("u1".into()));
        let old = token(json!({"id": "u2", "exp": now() + 60}), "s");
        assert_eq!(verify_webui_jwt(&old, "s"), Ok("u2".into()));
    }

    #[test]
    fn rejects_forgeries_and_bad_claims() {
        let exp = now() + 60;
        assert!(verify_webui_jwt(&token(json!({"id": "u", "exp": exp}), "other"), "s").is_err());
        assert!(
            verify_webui_jwt(&token(json!({"id": "u", "exp": now() - 600}), "s"), "s").is_err()
        );
        assert!(verify_webui_jwt(&token(json!({"exp": exp}), "s"), "s").is_err());
        assert!(verify_webui_jwt(&token(json!({"id": 5, "exp": exp}), "s"), "s").is_err());
        assert!(verify_webui_jwt(&token(json!({"id": "u"}), "s"), "s").is_err());
        assert!(
            verify_webui_jwt(
                &token(json!({"id": "u", "exp": exp, "typ": "refresh"}), "s"),
                "s"
            )
            .is_err()
        );
        // alg: none
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(json!({"id": "u", "exp": exp}))
        );
        assert!(verify_webui_jwt(&none, "s").is_err());
        // HS512 with the right secret is still refused (only HS256).
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &json!({"id": "u", "exp": exp}),
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert!(verify_webui_jwt(&hs512, "s").is_err());
    }
}
