//! `private_key_jwt` client authentication (RFC 7523 §2.2) for the `client_credentials` grant:
//! the client proves who it is with a short-lived JWT signed by its private key instead of a
//! shared secret (SEP-1046, conformance `auth/client-credentials-jwt`).
//!
//! mcpo signs and sends the token request itself: rmcp's `auth-client-credentials-jwt`
//! feature does the same, but its token-request future is not `Send` (it keeps a
//! `form_urlencoded::Serializer` across an await), so it cannot run on mcpo's tasks. The
//! tokens go to the server's credential store, where rmcp's `AuthClient` picks them up.

use std::time::{SystemTime, UNIX_EPOCH};

use rmcp::transport::auth::{
    AuthorizationManager, AuthorizationMetadata, CredentialStore, OAuthClientConfig,
    OAuthTokenResponse, StoredCredentials,
};
use serde_json::{Value, json};

use super::error::OAuthError;
use super::outbound::OAuthHttp;
use super::settings::Settings;
use super::store::Store;
use crate::config::SigningKey;

/// How long an assertion is valid: long enough for clock skew, short enough to be useless
/// if it leaks.
const ASSERTION_LIFETIME_SECS: u64 = 300;

pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An RFC 7523 client assertion signed with `key`: issued by and about `client_id`, for
/// `audience`.
pub(crate) fn assertion(
    key: &SigningKey,
    client_id: &str,
    audience: &str,
) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECS,
        "jti": unique_id(),
    });
    key.sign(&claims)
        .map_err(|e| format!("signing the client assertion failed: {e}"))
}

/// `application/x-www-form-urlencoded` of `pairs` (reqwest is built without `form`).
fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A JWT ID no other assertion of this or another process uses (authorization servers
/// refuse a replayed `jti`): 128 random bits from the OS's generator; not a secret.
fn unique_id() -> String {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id).expect("the operating system's random number generator");
    base16ct::lower::encode_string(&id)
}

/// The `client_credentials` grant with a client assertion at `metadata`'s token endpoint;
/// the tokens are saved in `store` for rmcp's client to use.
///
/// `manager` is given the client (without a secret), so that when the access token runs out
/// rmcp finds no refresh token and asks for a new login, which is a new assertion.
pub(crate) async fn client_credentials(
    http: &OAuthHttp,
    store: &Store,
    manager: &mut AuthorizationManager,
    settings: &Settings,
    (key, metadata, scopes, resource): (&SigningKey, &AuthorizationMetadata, &[String], &str),
) -> Result<(), OAuthError> {
    let fail = |message: String| OAuthError::Token {
        server: settings.server.clone(),
        message,
    };
    let Some(client_id) = &settings.client_id else {
        return Err(fail("private_key_jwt needs oauth.client_id".to_owned()));
    };
    if let Some(methods) = metadata
        .additional_fields
        .get("token_endpoint_auth_methods_supported")
        .and_then(Value::as_array)
        && !methods
            .iter()
            .any(|m| m.as_str() == Some("private_key_jwt"))
    {
        tracing::warn!(
            "server '{}': the authorization server does not list private_key_jwt among its \
             token endpoint auth methods; trying it anyway",
            settings.server
        );
    }
    // RFC 7523bis: the audience is the authorization server's issuer identifier.
    let audience = metadata
        .issuer
        .as_deref()
        .unwrap_or(&metadata.token_endpoint);
    let assertion = assertion(key, client_id, audience).map_err(fail)?;
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
        ("resource", resource),
    ];
    let scope = scopes.join(" ");
    if !scope.is_empty() {
        form.push(("scope", &scope));
    }
    let endpoint = &metadata.token_endpoint;
    let request = http
        .post(endpoint)
        .header("Accept", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&form));
    let response = http
        .send(request)
        .await
        .map_err(|e| fail(format!("POST {endpoint}: {e}")))?;
    let status = response.status();
    let body = http
        .body(response)
        .await
        .map_err(|e| fail(format!("{endpoint}: {e}")))?;
    if !status.is_success() {
        // Only the error code and description: the body of a success would hold the token.
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .map(|v| {
                let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                format!(": {} {}", field("error"), field("error_description"))
            })
            .unwrap_or_default();
        return Err(fail(format!(
            "{endpoint} answered {status}{}",
            detail.trim_end()
        )));
    }
    // RFC 6749 §4.4.3: no refresh token for this grant. One sent anyway is dropped: rmcp
    // would refresh without client authentication, which the server must refuse.
    let mut body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(map) = body.as_object_mut() {
        map.remove("refresh_token");
    }
    let token: OAuthTokenResponse = serde_json::from_value(body.clone()).map_err(|e| {
        fail(format!(
            "{endpoint} answered with something that is not a token response ({:?} error at \
             line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let granted = body
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_else(|| scopes.to_vec());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let credentials = StoredCredentials::new(client_id.clone(), Some(token), granted, Some(now))
        .with_issuer(metadata.issuer.clone());
    store
        .save(credentials)
        .await
        .map_err(|e| OAuthError::Storage {
            server: settings.server.clone(),
            message: e.to_string(),
        })?;
    manager
        .configure_client(OAuthClientConfig::new(
            client_id.clone(),
            settings.redirect_uri(),
        ))
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::config::signing_key_tests::EC_KEY;

    #[test]
    fn an_ec_key_signs_es256_assertions_about_the_client() {
        let key = SigningKey::from_pem(EC_KEY, None).unwrap();
        assert_eq!(key.algorithm(), Algorithm::ES256);
        let jwt = assertion(&key, "cid", "https://as.example").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| -> Value {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["iss"], "cid");
        assert_eq!(claims["sub"], "cid");
        assert_eq!(claims["aud"], "https://as.example");
        assert!(claims["exp"].as_u64() > claims["iat"].as_u64());
        let other = assertion(&key, "cid", "https://as.example").unwrap();
        assert_ne!(
            decode(other.split('.').nth(1).unwrap())["jti"],
            claims["jti"]
        );
        assert!(!format!("{key:?}").contains("der"));
    }
}
