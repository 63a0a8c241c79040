//! The `oauth` block of one server as the flows read it: a projection of the typed
//! [`OAuthConfig`] (checked by the config loader) with the server's name and MCP endpoint.

use std::time::Duration;

use url::Url;

use super::error::OAuthError;
pub(crate) use crate::config::OAuthGrant as Grant;
use crate::config::{OAuthConfig, ServerConfig, SigningKey, TokenStorage, TransportConfig};

/// Everything the OAuth flows need about one server, validated.
#[derive(Clone)]
pub(crate) struct Settings {
    pub server: String,
    /// The MCP endpoint: the default RFC 8707 resource and where discovery starts.
    pub resource_url: Url,
    /// `oauth.server_url`: where authorization-server metadata is looked for when the MCP
    /// endpoint does not lead to any.
    pub server_url: Option<Url>,
    pub storage: TokenStorage,
    pub callback_port: u16,
    pub use_loopback: bool,
    pub login_timeout: Duration,
    pub grant: Grant,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `private_key_jwt` (client_credentials only): `oauth.signing_key_file` or
    /// `oauth.signing_key`, with `oauth.signing_algorithm`.
    pub signing_key: Option<SigningKey>,
    /// RFC 7591 metadata sent when registering (`oauth.client_metadata`).
    pub client_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// SEP-991 Client ID Metadata Document URL (`oauth.client_metadata_url`).
    pub client_metadata_url: Option<String>,
    /// `oauth.scopes`: overrides the scopes discovery would pick.
    pub scopes: Option<Vec<String>>,
    /// Multi-user web login: mcpo's own `/oauth/{server}/callback` replaces the loopback one.
    pub web_redirect: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("resource_url", &self.resource_url.as_str())
            .field("grant", &self.grant)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The flows' view of `server`: its name, its MCP endpoint and its `oauth` block, which
    /// the config loader has already checked (and whose signing key it has already read).
    /// Fails only for a server that is not streamable HTTP or has no `oauth` block.
    pub fn from_server(server: &ServerConfig) -> Result<Self, OAuthError> {
        let fail = |message: &str| OAuthError::Config {
            server: server.name.clone(),
            message: message.to_owned(),
        };
        let TransportConfig::StreamableHttp { url, .. } = &server.transport else {
            return Err(fail("OAuth is only supported on streamable-http servers"));
        };
        let Some(oauth) = &server.oauth else {
            return Err(fail("has no \"oauth\" block"));
        };
        let OAuthConfig {
            server_url,
            storage_type,
            callback_port,
            use_loopback,
            grant,
            client_id,
            client_secret,
            signing_key,
            client_metadata,
            client_metadata_url,
            scopes,
            login_timeout,
        } = oauth.clone();
        Ok(Settings {
            server: server.name.clone(),
            resource_url: url.clone(),
            server_url,
            storage: storage_type,
            callback_port,
            use_loopback,
            login_timeout,
            grant,
            client_id,
            client_secret,
            signing_key,
            client_metadata,
            client_metadata_url,
            scopes,
            web_redirect: None,
        })
    }

    /// Where the authorization server sends the browser back to when the configuration fixes
    /// it: mcpo's web callback, else the loopback `/callback` a pre-registered client
    /// (`client_id`, a metadata document, `client_metadata.redirect_uris`) is registered with.
    pub fn redirect_uri(&self) -> String {
        match &self.web_redirect {
            Some(uri) => uri.clone(),
            None => format!("http://localhost:{}/callback", self.callback_port),
        }
    }

    /// The redirect URI for a client mcpo registers itself: on loopback, `/callback/<128
    /// random bits>`, new for every registration, unless `client_metadata.redirect_uris`
    /// fixes it. The loopback callback port is well known, so a page the user visits, or any
    /// local process, can send a request to `/callback`; one carrying an attacker's code (and
    /// a leaked `state`) would sign the session into the attacker's account. Only the
    /// authorization server, through the browser, knows this path.
    pub fn registration_redirect_uri(&self) -> String {
        if self.web_redirect.is_some() || self.operator_fixed_redirect() {
            return self.redirect_uri();
        }
        let mut secret = [0u8; 16];
        getrandom::getrandom(&mut secret).expect("the operating system's random number generator");
        format!(
            "{}/{}",
            self.redirect_uri(),
            base16ct::lower::encode_string(&secret)
        )
    }

    /// Whether `client_metadata.redirect_uris` names the redirect URI.
    fn operator_fixed_redirect(&self) -> bool {
        self.client_metadata
            .as_ref()
            .is_some_and(|m| m.contains_key("redirect_uris"))
    }

    /// Whether a stored registration's redirect URI fits this server: the web callback in
    /// multi-user mode; else the loopback callback on the configured port, as a
    /// `/callback/<secret>` mcpo registered, or `/callback` itself. `for_login`: the browser
    /// is about to be sent there, and a plain `/callback` that mcpo registered (before its
    /// registrations had their own path) is no longer used for that: the login registers
    /// again.
    pub fn fits_redirect(&self, uri: &str, for_login: bool) -> bool {
        if self.web_redirect.is_some() {
            return uri == self.redirect_uri();
        }
        let fixed = self.redirect_uri();
        if uri == fixed {
            return !for_login || self.operator_fixed_redirect();
        }
        uri.strip_prefix(fixed.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|secret| {
                secret.len() == 32 && secret.bytes().all(|b| b.is_ascii_hexdigit())
            })
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use serde_json::{Value, json};

    use crate::config::ServerConfig;

    /// A streamable-HTTP server `srv` at `http://127.0.0.1:9/mcp` with this `oauth` block
    /// (tokens in memory unless it says otherwise), read by the config loader.
    pub(crate) fn server(oauth: Value) -> ServerConfig {
        load(oauth).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The config loader's verdict on a server with this `oauth` block.
    pub(crate) fn load(mut oauth: Value) -> Result<ServerConfig, String> {
        if let Some(block) = oauth.as_object_mut() {
            block.entry("storage_type").or_insert(json!("memory"));
        }
        let text = json!({"mcpServers": {"srv": {
            "type": "streamable-http", "url": "http://127.0.0.1:9/mcp", "oauth": oauth,
        }}});
        crate::config::from_str_with_env(&text.to_string(), "config.json", &|_| None)
            .map(|(mut config, _)| config.servers.remove(0))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::server;
    use super::*;

    #[test]
    fn registrations_get_a_callback_path_of_their_own() {
        let s = Settings::from_server(&server(serde_json::json!({"callback_port": 4000}))).unwrap();
        let (a, b) = (s.registration_redirect_uri(), s.registration_redirect_uri());
        assert!(a.starts_with("http://localhost:4000/callback/"), "{a}");
        assert_ne!(a, b);
        assert!(s.fits_redirect(&a, true));
        // mcpo's own earlier registrations at the bare /callback: tokens only, no login.
        assert!(s.fits_redirect("http://localhost:4000/callback", false));
        assert!(!s.fits_redirect("http://localhost:4000/callback", true));
        assert!(!s.fits_redirect("http://localhost:4001/callback/0123", false));

        let fixed = Settings::from_server(&server(serde_json::json!({
            "callback_port": 4000,
            "client_metadata": {"redirect_uris": ["http://localhost:4000/callback"]},
        })))
        .unwrap();
        assert_eq!(
            fixed.registration_redirect_uri(),
            "http://localhost:4000/callback"
        );
        assert!(fixed.fits_redirect("http://localhost:4000/callback", true));
    }
}
