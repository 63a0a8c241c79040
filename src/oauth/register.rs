//! Client identity: which `client_id` mcpo presents to the authorization server.
//!
//! In the MCP spec's order of preference: a pre-registered `oauth.client_id` (with its
//! secret), a Client ID Metadata Document URL (`oauth.client_metadata_url`) when the server
//! advertises `client_id_metadata_document_supported`, a registration kept from an earlier
//! run, and else RFC 7591 dynamic registration with `oauth.client_metadata` merged over
//! mcpo's defaults. mcpo registers itself (rather than through rmcp's `register_client`) so
//! the configured metadata is honoured and the full response can be stored.

use rmcp::transport::auth::{AuthorizationManager, AuthorizationMetadata, OAuthClientConfig};
use serde_json::{Value, json};

use super::error::OAuthError;
use super::outbound::OAuthHttp;
use super::settings::Settings;
use super::store::{Registration, Store};

/// The identity chosen for one login or restart.
pub(crate) struct Identity {
    pub config: OAuthClientConfig,
    /// `token_endpoint_auth_method` the client must use, when it is not rmcp's default pick.
    pub auth_method: Option<String>,
}

impl Identity {
    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }
}

/// The identity from the configuration alone (static client or metadata-document URL).
pub(crate) fn configured(
    settings: &Settings,
    metadata: &AuthorizationMetadata,
) -> Option<Identity> {
    let redirect = settings.redirect_uri();
    if let Some(id) = &settings.client_id {
        let mut config = OAuthClientConfig::new(id.clone(), redirect);
        if let Some(secret) = &settings.client_secret {
            config = config.with_client_secret(secret.clone());
        }
        let auth_method = settings
            .client_metadata
            .as_ref()
            .and_then(|m| m.get("token_endpoint_auth_method"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Some(Identity {
            config,
            auth_method,
        });
    }
    let supports_cimd = metadata
        .additional_fields
        .get("client_id_metadata_document_supported")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match &settings.client_metadata_url {
        Some(url) if supports_cimd => Some(Identity {
            config: OAuthClientConfig::new(url.clone(), redirect),
            auth_method: Some("none".to_owned()),
        }),
        _ => None,
    }
}

/// A stored registration, usable when it came from this issuer for this redirect URI and,
/// when a login asks for `scopes`, was registered for them: an authorization server that
/// keeps a client's registered `scope` (oidc-provider does) refuses a step-up beyond it with
/// `invalid_scope`, so such a login registers a client for the wider scope instead.
pub(crate) fn stored(
    registration: Option<Registration>,
    settings: &Settings,
    metadata: &AuthorizationMetadata,
    scopes: Option<&[String]>,
) -> Option<Identity> {
    let reg = registration?;
    if reg.issuer != metadata.issuer || !settings.fits_redirect(&reg.redirect_uri, scopes.is_some())
    {
        tracing::info!(
            "server '{}': the stored OAuth client was registered with another authorization \
             server or callback port; registering again",
            settings.server
        );
        return None;
    }
    if let Some(scopes) = scopes
        && !covers(&reg, scopes)
    {
        tracing::info!(
            "server '{}': the stored OAuth client was registered for scope '{}', not '{}'; \
             registering a client for the wider scope",
            settings.server,
            registered_scope(&reg).unwrap_or_default(),
            scopes.join(" ")
        );
        return None;
    }
    Some(from_registration(&reg))
}

/// The `scope` the authorization server registered the client for, when it said.
fn registered_scope(reg: &Registration) -> Option<&str> {
    reg.response.get("scope").and_then(Value::as_str)
}

/// Whether `reg` may ask for every one of `scopes`. A registration response without a
/// `scope` restricts nothing that mcpo can know of.
pub(crate) fn covers(reg: &Registration, scopes: &[String]) -> bool {
    let Some(registered) = registered_scope(reg) else {
        return true;
    };
    let registered: Vec<&str> = registered.split_whitespace().collect();
    scopes.iter().all(|s| registered.contains(&s.as_str()))
}

/// Puts back the registration a failed step-up login replaced (see [`stored`]): the tokens
/// in use still belong to that client, and its refresh token only works with it.
pub(crate) async fn restore(
    store: &Store,
    manager: &tokio::sync::Mutex<AuthorizationManager>,
    before: Option<Registration>,
    server: &str,
) {
    let Some(before) = before else {
        return;
    };
    if store
        .load_registration()
        .await
        .ok()
        .flatten()
        .is_some_and(|now| now.client_id == before.client_id)
    {
        return;
    }
    if let Err(e) = store.save_registration(&before).await {
        tracing::warn!("server '{server}': cannot restore the previous OAuth client: {e}");
        return;
    }
    if let Err(e) = manager
        .lock()
        .await
        .configure_client(from_registration(&before).config)
    {
        tracing::warn!("server '{server}': cannot restore the previous OAuth client: {e}");
        return;
    }
    tracing::info!(
        "server '{server}': the step-up login failed; back to the OAuth client {} and its tokens",
        before.client_id
    );
}

pub(crate) fn from_registration(reg: &Registration) -> Identity {
    let mut config = OAuthClientConfig::new(reg.client_id.clone(), reg.redirect_uri.clone());
    if let Some(secret) = &reg.client_secret {
        config = config.with_client_secret(secret.clone());
    }
    Identity {
        config,
        auth_method: reg.token_endpoint_auth_method.clone(),
    }
}

/// RFC 7591 registration at the server's `registration_endpoint`.
pub(crate) async fn register(
    http: &OAuthHttp,
    settings: &Settings,
    metadata: &AuthorizationMetadata,
    scopes: &[String],
) -> Result<Registration, OAuthError> {
    let fail = |message: String| OAuthError::Registration {
        server: settings.server.clone(),
        message,
    };
    let Some(endpoint) = &metadata.registration_endpoint else {
        return Err(fail(
            "the authorization server offers no dynamic client registration; set \
             oauth.client_id (and oauth.client_secret) to a client registered there"
                .to_owned(),
        ));
    };
    let redirect = settings.registration_redirect_uri();
    let body = request_body(settings, &redirect, scopes)?;
    let request = http
        .post(endpoint)
        .header("Accept", "application/json")
        .json(&body);
    let response = http
        .send(request)
        .await
        .map_err(|e| fail(format!("POST {endpoint}: {e}")))?;
    let status = response.status();
    let answer = http
        .body(response)
        .await
        .map_err(|e| fail(format!("{endpoint}: {e}")))?;
    let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_slice(&answer).ok();
    if !status.is_success() {
        let detail = parsed
            .as_ref()
            .map(|m| {
                let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
                format!(": {} {}", field("error"), field("error_description"))
            })
            .unwrap_or_default();
        return Err(fail(format!(
            "{endpoint} answered {status}{}",
            detail.trim_end()
        )));
    }
    let Some(response) = parsed else {
        return Err(fail(format!(
            "{endpoint} answered with something that is not JSON"
        )));
    };
    let Some(client_id) = response.get("client_id").and_then(Value::as_str) else {
        return Err(fail(format!("{endpoint} answered without a client_id")));
    };
    let client_secret = response
        .get("client_secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let auth_method = response
        .get("token_endpoint_auth_method")
        .or_else(|| body.get("token_endpoint_auth_method"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    tracing::info!(
        "server '{}': registered OAuth client {client_id} at {endpoint}",
        settings.server
    );
    Ok(Registration {
        issuer: metadata.issuer.clone(),
        redirect_uri: redirect,
        client_id: client_id.to_owned(),
        client_secret,
        token_endpoint_auth_method: auth_method,
        registered_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        response,
    })
}

/// mcpo's registration request: a native public client using PKCE, with
/// `oauth.client_metadata` merged over it.
pub(crate) fn request_body(
    settings: &Settings,
    redirect: &str,
    scopes: &[String],
) -> Result<serde_json::Map<String, Value>, OAuthError> {
    let Value::Object(mut body) = json!({
        "client_name": format!("mcpo ({})", settings.server),
        "redirect_uris": [redirect],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    }) else {
        unreachable!("a JSON object literal")
    };
    if !scopes.is_empty() {
        body.insert("scope".to_owned(), Value::String(scopes.join(" ")));
    }
    for (key, value) in settings.client_metadata.iter().flatten() {
        if key == "redirect_uris" {
            let listed = value
                .as_array()
                .is_some_and(|uris| uris.iter().any(|u| u.as_str() == Some(redirect)));
            if !listed {
                return Err(OAuthError::Config {
                    server: settings.server.clone(),
                    message: format!(
                        "oauth.client_metadata.redirect_uris must include {redirect} (the \
                         callback for oauth.callback_port {})",
                        settings.callback_port
                    ),
                });
            }
        }
        body.insert(key.clone(), value.clone());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::settings::tests_support::server;

    fn settings(block: Value) -> Settings {
        Settings::from_server(&server(block)).unwrap()
    }

    #[test]
    fn default_registration_is_a_public_native_client() {
        let body = request_body(
            &settings(json!({})),
            "http://localhost:3030/callback",
            &["mcp:tools".to_owned()],
        )
        .unwrap();
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert_eq!(
            body["redirect_uris"],
            json!(["http://localhost:3030/callback"])
        );
        assert_eq!(body["scope"], "mcp:tools");
        assert_eq!(body["client_name"], "mcpo (srv)");
    }

    #[test]
    fn client_metadata_overrides_defaults() {
        let mut s = settings(json!({}));
        s.client_metadata = Some(
            json!({"client_name": "Mine", "token_endpoint_auth_method": "client_secret_post",
                   "redirect_uris": ["http://localhost:3030/callback"]})
            .as_object()
            .unwrap()
            .clone(),
        );
        let body = request_body(&s, "http://localhost:3030/callback", &[]).unwrap();
        assert_eq!(body["client_name"], "Mine");
        assert_eq!(body["token_endpoint_auth_method"], "client_secret_post");
        assert!(body.get("scope").is_none());

        s.client_metadata = Some(
            json!({"redirect_uris": ["http://localhost:9999/callback"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        let err = request_body(&s, "http://localhost:3030/callback", &[]).unwrap_err();
        assert!(err.to_string().contains("must include"), "{err}");
    }

    #[test]
    fn a_registration_covers_the_scopes_it_was_registered_for() {
        let mut reg = Registration {
            issuer: None,
            redirect_uri: "http://localhost:3030/callback".to_owned(),
            client_id: "c".to_owned(),
            client_secret: None,
            token_endpoint_auth_method: None,
            response: Default::default(),
            registered_at: 0,
        };
        let scopes = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        // The server did not say: nothing mcpo knows of is restricted.
        assert!(covers(&reg, &scopes("a b")));
        reg.response.insert("scope".to_owned(), json!("a"));
        assert!(covers(&reg, &scopes("a")));
        assert!(covers(&reg, &[]));
        assert!(!covers(&reg, &scopes("a b")));
    }

    #[test]
    fn metadata_document_only_where_supported() {
        let mut s = settings(json!({}));
        s.client_metadata_url = Some("https://mcpo.example/client.json".to_owned());
        let mut metadata = AuthorizationMetadata::default();
        assert!(configured(&s, &metadata).is_none());
        metadata.additional_fields.insert(
            "client_id_metadata_document_supported".to_owned(),
            json!(true),
        );
        let id = configured(&s, &metadata).unwrap();
        assert_eq!(id.client_id(), "https://mcpo.example/client.json");
    }
}
