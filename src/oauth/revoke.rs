//! Token revocation (RFC 7009) for `mcpo auth logout`: deleting the token files only makes
//! mcpo forget; revoking makes the authorization server forget too, so a copy of the file
//! (a backup, a leaked volume) is worth nothing afterwards.
//!
//! Best effort: the tokens are deleted locally whatever the server says. The refresh token
//! goes first (servers revoke the whole grant with it, access tokens included), then the
//! access token. The client authenticates as it does at the token endpoint: HTTP Basic or
//! form secret, a `private_key_jwt` assertion, or just its `client_id` (public client).

use base64::Engine as _;
use rmcp::transport::auth::{AuthorizationMetadata, StoredCredentials};
use serde_json::Value;

use super::assertion;
use super::authorizer::Authorizer;
use super::error::OAuthError;
use super::options::AuthOptions;
use super::settings::Settings;
use super::store::Store;
use super::{discovery, register};
use crate::config::{ServerConfig, SigningKey};

/// What revocation achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// No tokens were stored.
    NothingStored,
    /// The authorization server publishes no `revocation_endpoint`.
    Unsupported,
    /// The server accepted the revocation of this many tokens.
    Revoked(usize),
    /// Revocation did not work (the reason; never a token).
    Failed(String),
}

/// How the client proves who it is to the revocation endpoint.
enum ClientAuth {
    /// A public client: its id in the form.
    Public,
    Basic(String),
    Post(String),
    Assertion(SigningKey),
}

/// Revokes `server`'s stored tokens at its authorization server (RFC 7009), when it offers
/// revocation. The tokens stay stored: [`super::logout`] deletes them.
pub async fn revoke(server: &ServerConfig, options: AuthOptions) -> Result<Revocation, OAuthError> {
    let auth = Authorizer::new(server, options)?;
    let settings = Settings::from_server(server)?;
    let store = auth.store();
    let stored = store.load_tokens().await.map_err(|e| OAuthError::Storage {
        server: server.name.clone(),
        message: e.to_string(),
    })?;
    let Some(tokens) = stored else {
        return Ok(Revocation::NothingStored);
    };
    let to_revoke = revocable(&tokens);
    if to_revoke.is_empty() {
        return Ok(Revocation::NothingStored);
    }
    let manager = discovery::manager(&settings).await?;
    let found = match discovery::discover(&manager, &settings, None).await {
        Ok(found) => found,
        Err(e) => return Ok(Revocation::Failed(e.to_string())),
    };
    let metadata = found.metadata;
    let Some(endpoint) = metadata
        .additional_fields
        .get("revocation_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Ok(Revocation::Unsupported);
    };
    if tokens.issuer.is_some() && metadata.issuer.is_some() && tokens.issuer != metadata.issuer {
        return Ok(Revocation::Failed(format!(
            "the stored tokens come from {}, not from {}",
            tokens.issuer.as_deref().unwrap_or_default(),
            metadata.issuer.as_deref().unwrap_or_default()
        )));
    }
    let client_auth = client_auth(&settings, store, &tokens, &metadata).await;
    let http = discovery::http_client(&settings);
    let mut revoked = 0;
    for (token, hint) in to_revoke {
        let outcome = revoke_one(
            &http,
            &endpoint,
            &tokens.client_id,
            &client_auth,
            &metadata,
            (token.as_str(), hint),
        )
        .await;
        match outcome {
            Ok(()) => revoked += 1,
            Err(why) => return Ok(Revocation::Failed(why)),
        }
    }
    Ok(Revocation::Revoked(revoked))
}

/// The stored tokens worth revoking, refresh token first, with their type hints.
fn revocable(tokens: &StoredCredentials) -> Vec<(String, &'static str)> {
    // Through JSON: the token response's accessors live in the `oauth2` crate, which mcpo
    // reaches only through rmcp.
    let Some(response) = tokens
        .token_response
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
    else {
        return Vec::new();
    };
    ["refresh_token", "access_token"]
        .into_iter()
        .filter_map(|kind| {
            let token = response.get(kind)?.as_str()?;
            (!token.is_empty()).then(|| (token.to_owned(), kind))
        })
        .collect()
}

/// The client's authentication: the configured secret or key, else the stored
/// registration's secret, else none (public client).
async fn client_auth(
    settings: &Settings,
    store: &Store,
    tokens: &StoredCredentials,
    metadata: &AuthorizationMetadata,
) -> ClientAuth {
    if let Some(key) = &settings.signing_key {
        return ClientAuth::Assertion(key.clone());
    }
    let (secret, method) = if settings.client_id.as_deref() == Some(tokens.client_id.as_str()) {
        let method = settings
            .client_metadata
            .as_ref()
            .and_then(|m| m.get("token_endpoint_auth_method"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        (settings.client_secret.clone(), method)
    } else {
        match store
            .load_registration()
            .await
            .ok()
            .flatten()
            .filter(|r| r.client_id == tokens.client_id)
        {
            Some(reg) => {
                let identity = register::from_registration(&reg);
                (reg.client_secret.clone(), identity.auth_method)
            }
            None => (None, None),
        }
    };
    let Some(secret) = secret else {
        return ClientAuth::Public;
    };
    let offered: Vec<&str> = metadata
        .additional_fields
        .get("revocation_endpoint_auth_methods_supported")
        .or_else(|| {
            metadata
                .additional_fields
                .get("token_endpoint_auth_methods_supported")
        })
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let post = match method.as_deref() {
        Some("client_secret_post") => true,
        Some("client_secret_basic") => false,
        _ => offered.contains(&"client_secret_post") && !offered.contains(&"client_secret_basic"),
    };
    if post {
        ClientAuth::Post(secret)
    } else {
        ClientAuth::Basic(secret)
    }
}

async fn revoke_one(
    http: &super::outbound::OAuthHttp,
    endpoint: &str,
    client_id: &str,
    client_auth: &ClientAuth,
    metadata: &AuthorizationMetadata,
    (token, hint): (&str, &str),
) -> Result<(), String> {
    let mut form: Vec<(&str, String)> = vec![
        ("token", token.to_owned()),
        ("token_type_hint", hint.to_owned()),
    ];
    let mut request = http.post(endpoint);
    match client_auth {
        ClientAuth::Public => form.push(("client_id", client_id.to_owned())),
        ClientAuth::Post(secret) => {
            form.push(("client_id", client_id.to_owned()));
            form.push(("client_secret", secret.clone()));
        }
        ClientAuth::Basic(secret) => {
            // RFC 6749 §2.3.1: both parts form-encoded before Base64.
            let encode = |s: &str| -> String {
                url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
            };
            let pair = format!("{}:{}", encode(client_id), encode(secret));
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header("Authorization", format!("Basic {basic}"));
        }
        ClientAuth::Assertion(key) => {
            let audience = metadata
                .issuer
                .as_deref()
                .unwrap_or(&metadata.token_endpoint);
            form.push((
                "client_assertion_type",
                assertion::ASSERTION_TYPE.to_owned(),
            ));
            form.push((
                "client_assertion",
                assertion::assertion(key, client_id, audience)?,
            ));
        }
    }
    let body = {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &form {
            serializer.append_pair(k, v);
        }
        serializer.finish()
    };
    let request = request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    let response = http
        .send(request)
        .await
        .map_err(|e| format!("POST {endpoint}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // The error code and description only, never the request.
    let detail = http
        .body(response)
        .await
        .ok()
        .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
        .map(|v| {
            let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            format!(": {} {}", field("error"), field("error_description"))
        })
        .unwrap_or_default();
    Err(format!("{endpoint} answered {status}{}", detail.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_token_first_then_access_token() {
        let response: rmcp::transport::auth::OAuthTokenResponse =
            serde_json::from_value(serde_json::json!({
                "access_token": "at", "token_type": "Bearer", "refresh_token": "rt",
            }))
            .unwrap();
        let tokens = StoredCredentials::new("c".to_owned(), Some(response), vec![], None);
        assert_eq!(
            revocable(&tokens),
            vec![
                ("rt".to_owned(), "refresh_token"),
                ("at".to_owned(), "access_token")
            ]
        );
        let empty = StoredCredentials::new("c".to_owned(), None, vec![], None);
        assert!(revocable(&empty).is_empty());
    }
}
