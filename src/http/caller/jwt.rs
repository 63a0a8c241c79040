//! Offline checks of the JWTs Open WebUI signs: its session tokens (`Authorization: Bearer`)
//! and its signed user-info header (`X-OpenWebUI-User-Jwt`). Each has its own secret; both are
//! HS256 over the secret's UTF-8 bytes, and no other algorithm is accepted (no `none`, no RS256
//! key confusion). Error texts name what is wrong, never the token.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::support::caller::Profile;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

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
    // A token that says it is not valid yet is not (jsonwebtoken ignores `nbf` by default).
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| refusal_reason(&e))?;
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

#[derive(Deserialize)]
struct UserInfoClaims {
    sub: serde_json::Value,
    #[serde(default)]
    email: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<serde_json::Value>,
    #[serde(default)]
    role: Option<serde_json::Value>,
}

/// Verifies Open WebUI's signed user-info header (`X-OpenWebUI-User-Jwt`, sent when Open WebUI
/// has `FORWARD_USER_INFO_HEADER_JWT_SECRET`) and returns the user id (`sub`). Open WebUI mints
/// it per request with `sub`, `email`, `name`, `role`, `iss: "open-webui"`, `iat` and a short
/// `exp` (300 s by default), so `exp` and `sub` are required and `iss`, when present, must be
/// `open-webui`.
pub fn verify_user_info_jwt(token: &str, secret: &str) -> Result<String, String> {
    verify_user_info(token, secret).map(|(id, _)| id)
}

/// [`verify_user_info_jwt`], with what the token says about the user besides the id (its
/// `email`, `name` and `role` claims, where they are non-empty strings).
pub fn verify_user_info(token: &str, secret: &str) -> Result<(String, Profile), String> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    // A token that says it is not valid yet is not (jsonwebtoken ignores `nbf` by default).
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.set_issuer(&["open-webui"]);
    let data = jsonwebtoken::decode::<UserInfoClaims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| refusal_reason(&e))?;
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let profile = Profile {
        email: text(data.claims.email),
        name: text(data.claims.name),
        role: text(data.claims.role),
    };
    match data.claims.sub {
        serde_json::Value::String(id) if !id.is_empty() => Ok((id, profile)),
        _ => Err("the token has no string 'sub' claim".to_owned()),
    }
}

fn refusal_reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind::*;
    match e.kind() {
        ExpiredSignature => "the token has expired".to_owned(),
        ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        InvalidSignature => "the token's signature does not verify".to_owned(),
        InvalidAlgorithm => "the token is not signed with HS256".to_owned(),
        InvalidIssuer => "the token was not issued by Open WebUI".to_owned(),
        MissingRequiredClaim(c) => format!("the token has no '{c}' claim"),
        _ => "the token is not a valid Open WebUI JWT".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
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

    #[test]
    fn user_info_header_tokens_as_open_webui_mints_them() {
        let claims = |extra: serde_json::Value| {
            let mut c = json!({"sub": "u-7", "email": "a@b.c", "name": "A", "role": "user",
                               "iss": "open-webui", "iat": now(), "exp": now() + 300});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let ok = token(claims(json!({})), "h");
        assert_eq!(verify_user_info_jwt(&ok, "h"), Ok("u-7".into()));
        // The session secret does not verify it, and a session token is no user-info token.
        assert!(verify_user_info_jwt(&ok, "s").is_err());
        let session = token(json!({"id": "u", "exp": now() + 60}), "h");
        assert!(verify_user_info_jwt(&session, "h").is_err());
        assert!(verify_webui_jwt(&ok, "h").is_err());
        for bad in [
            json!({"exp": now() - 600}),
            json!({"iss": "someone-else"}),
            json!({"sub": 7}),
            json!({"sub": ""}),
        ] {
            let t = token(claims(bad.clone()), "h");
            assert!(verify_user_info_jwt(&t, "h").is_err(), "{bad}");
        }
        let no_exp = {
            let mut c = claims(json!({}));
            c.as_object_mut().unwrap().remove("exp");
            token(c, "h")
        };
        assert!(verify_user_info_jwt(&no_exp, "h").is_err());
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(claims(json!({})))
        );
        assert!(verify_user_info_jwt(&none, "h").is_err());
    }

    #[test]
    fn tokens_not_valid_yet_are_refused_within_the_leeway() {
        let session = |nbf: u64| token(json!({"id": "u", "exp": now() + 600, "nbf": nbf}), "s");
        let refused = verify_webui_jwt(&session(now() + 3600), "s");
        assert!(
            refused
                .as_ref()
                .is_err_and(|why| why.contains("not valid yet")),
            "{refused:?}"
        );
        assert_eq!(verify_webui_jwt(&session(now() + 5), "s"), Ok("u".into()));
        let info = |nbf: u64| {
            token(
                json!({"sub": "u", "iss": "open-webui", "exp": now() + 600, "nbf": nbf}),
                "h",
            )
        };
        assert!(verify_user_info_jwt(&info(now() + 3600), "h").is_err());
        assert_eq!(verify_user_info_jwt(&info(now() - 5), "h"), Ok("u".into()));
    }
}
