//! The `oauth` block of one server, checked once and turned into what the flows read.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::OAuthError;
use super::assertion::SigningKey;
use crate::config::{OAuthConfig, ServerConfig, TokenStorage, TransportConfig};

/// Default bound on waiting for the user to finish signing in.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// How mcpo gets tokens for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// A user signs in through a browser (loopback or copy/paste).
    AuthorizationCode,
    /// Machine-to-machine: the client's own credentials, no user.
    ClientCredentials,
}

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
    pub client_metadata: Option<serde_json::Map<String, Value>>,
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
    pub fn from_server(server: &ServerConfig) -> Result<Self, OAuthError> {
        let fail = |message: String| OAuthError::Config {
            server: server.name.clone(),
            message,
        };
        let TransportConfig::StreamableHttp { url, .. } = &server.transport else {
            return Err(fail(
                "OAuth is only supported on streamable-http servers".to_owned(),
            ));
        };
        let Some(oauth) = &server.oauth else {
            return Err(fail("has no \"oauth\" block".to_owned()));
        };
        let grant = match oauth.extra.get("grant_type").and_then(Value::as_str) {
            None | Some("authorization_code") => Grant::AuthorizationCode,
            Some("client_credentials") => Grant::ClientCredentials,
            Some(other) => {
                return Err(fail(format!(
                    "oauth.grant_type must be \"authorization_code\" or \"client_credentials\", \
                     not \"{other}\""
                )));
            }
        };
        if oauth.client_secret.is_some() && oauth.client_id.is_none() {
            return Err(fail(
                "oauth.client_secret is set without oauth.client_id".to_owned(),
            ));
        }
        let signing_key = signing_key(oauth).map_err(fail)?;
        if signing_key.is_some() {
            if grant != Grant::ClientCredentials {
                return Err(fail(
                    "oauth.signing_key_file / oauth.signing_key (private_key_jwt) are only used \
                     with oauth.grant_type \"client_credentials\""
                        .to_owned(),
                ));
            }
            if oauth.client_secret.is_some() {
                return Err(fail(
                    "oauth.client_secret and a signing key are both set; the client \
                     authenticates with one of them"
                        .to_owned(),
                ));
            }
        }
        if grant == Grant::ClientCredentials
            && (oauth.client_id.is_none()
                || (oauth.client_secret.is_none() && signing_key.is_none()))
        {
            return Err(fail(
                "oauth.grant_type \"client_credentials\" needs oauth.client_id and either \
                 oauth.client_secret or oauth.signing_key_file (private_key_jwt)"
                    .to_owned(),
            ));
        }
        let client_metadata_url = oauth
            .extra
            .get("client_metadata_url")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(url) = &client_metadata_url {
            let usable = Url::parse(url)
                .is_ok_and(|u| u.scheme() == "https" && u.path() != "/" && u.host().is_some());
            if !usable {
                return Err(fail(format!(
                    "oauth.client_metadata_url must be an https URL with a path (a Client ID \
                     Metadata Document), not {url}"
                )));
            }
        }
        let login_timeout = match oauth.extra.get("login_timeout") {
            None => DEFAULT_LOGIN_TIMEOUT,
            Some(v) => match v.as_f64() {
                Some(secs) if secs > 0.0 && secs.is_finite() => Duration::from_secs_f64(secs),
                _ => {
                    return Err(fail(
                        "oauth.login_timeout must be a positive number of seconds".to_owned(),
                    ));
                }
            },
        };
        Ok(Settings {
            server: server.name.clone(),
            resource_url: url.clone(),
            server_url: oauth.server_url.clone(),
            storage: oauth.storage_type,
            callback_port: oauth.callback_port,
            use_loopback: oauth.use_loopback,
            login_timeout,
            grant,
            client_id: oauth.client_id.clone(),
            client_secret: oauth.client_secret.clone(),
            signing_key,
            client_metadata: oauth.client_metadata.clone(),
            client_metadata_url,
            scopes: scopes(oauth),
            web_redirect: None,
        })
    }

    /// Where the authorization server sends the browser back to.
    pub fn redirect_uri(&self) -> String {
        match &self.web_redirect {
            Some(uri) => uri.clone(),
            None => format!("http://localhost:{}/callback", self.callback_port),
        }
    }
}

/// The private key of `oauth.signing_key_file` (a path) or `oauth.signing_key` (the PEM
/// text, e.g. from `${VAR}`), as the Python SDK's `signing_key` / `signing_algorithm`.
fn signing_key(oauth: &OAuthConfig) -> Result<Option<SigningKey>, String> {
    let text = |key: &str| -> Result<Option<&str>, String> {
        match oauth.extra.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("oauth.{key} must be a string")),
        }
    };
    let (file, inline, algorithm) = (
        text("signing_key_file")?,
        text("signing_key")?,
        text("signing_algorithm")?,
    );
    let (pem, source) = match (file, inline) {
        (Some(_), Some(_)) => {
            return Err(
                "oauth.signing_key_file and oauth.signing_key are both set; use one".to_owned(),
            );
        }
        (Some(path), None) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("oauth.signing_key_file: cannot read {path}: {e}"))?;
            (pem, format!("oauth.signing_key_file ({path})"))
        }
        (None, Some(pem)) => (pem.to_owned(), "oauth.signing_key".to_owned()),
        (None, None) if algorithm.is_some() => {
            return Err("oauth.signing_algorithm is set without oauth.signing_key_file".to_owned());
        }
        (None, None) => return Ok(None),
    };
    SigningKey::from_pem(&pem, algorithm)
        .map(Some)
        .map_err(|why| format!("{source}: {why}"))
}

fn scopes(oauth: &OAuthConfig) -> Option<Vec<String>> {
    let list: Vec<String> = match oauth.extra.get("scopes")? {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A throwaway P-256 key (PKCS#8), generated for these tests only.
    pub(crate) const EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsAPEOYIYVCXBSnFp
orynW8lHeYDwm+nvexo9XgsJnkihRANCAASeDdMv4r32KXRqNOqbBVQIVfqS56mS
iZzGab0Hx0sSRWBNvbyv6NWM8x92uWwzckZnhqT6nTueRMWFT3kzfmwI
-----END PRIVATE KEY-----
";

    /// A streamable-HTTP server `srv` at `http://127.0.0.1:9/mcp` with this `oauth` block.
    pub(crate) fn server(oauth: serde_json::Value) -> ServerConfig {
        let Value::Object(mut map) = oauth else {
            panic!("object")
        };
        let take_str = |map: &mut serde_json::Map<String, Value>, k: &str| {
            map.remove(k).and_then(|v| v.as_str().map(str::to_owned))
        };
        let client_id = take_str(&mut map, "client_id");
        let client_secret = take_str(&mut map, "client_secret");
        ServerConfig {
            name: "srv".to_owned(),
            transport: TransportConfig::StreamableHttp {
                url: Url::parse("http://127.0.0.1:9/mcp").unwrap(),
                headers: Default::default(),
            },
            disabled_tools: Default::default(),
            timeout: None,
            oauth: Some(OAuthConfig {
                server_url: None,
                storage_type: TokenStorage::Memory,
                callback_port: 3030,
                use_loopback: true,
                client_id,
                client_secret,
                client_metadata: None,
                extra: map,
            }),
            multi_user: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{EC_KEY, server};
    use super::*;

    /// The error for this `oauth` block, which names the server.
    fn refused(block: Value) -> String {
        let err = Settings::from_server(&server(block))
            .unwrap_err()
            .to_string();
        assert!(err.contains("'srv'"), "{err}");
        err
    }

    #[test]
    fn defaults_and_extras() {
        let s = Settings::from_server(&server(serde_json::json!({}))).unwrap();
        assert_eq!(s.grant, Grant::AuthorizationCode);
        assert_eq!(s.login_timeout, DEFAULT_LOGIN_TIMEOUT);
        assert_eq!(s.redirect_uri(), "http://localhost:3030/callback");
        assert_eq!(s.scopes, None);

        let s = Settings::from_server(&server(serde_json::json!({
            "scopes": "a b", "login_timeout": 2.5
        })))
        .unwrap();
        assert_eq!(s.scopes, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(s.login_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn rejects_inconsistent_blocks() {
        for (block, needle) in [
            (serde_json::json!({"grant_type": "password"}), "grant_type"),
            (
                serde_json::json!({"client_secret": "s"}),
                "without oauth.client_id",
            ),
            (
                serde_json::json!({"grant_type": "client_credentials", "client_id": "c"}),
                "needs oauth.client_id and either oauth.client_secret or oauth.signing_key_file",
            ),
            (serde_json::json!({"login_timeout": 0}), "login_timeout"),
            (
                serde_json::json!({"client_metadata_url": "http://mcpo.example/client.json"}),
                "https URL",
            ),
        ] {
            let err = refused(block);
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn private_key_jwt_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(&file, EC_KEY).unwrap();
        let file = file.display().to_string();
        let s = Settings::from_server(&server(serde_json::json!({
            "grant_type": "client_credentials", "client_id": "c", "signing_key_file": file,
        })))
        .unwrap();
        assert!(s.signing_key.is_some());
        let s = Settings::from_server(&server(serde_json::json!({
            "grant_type": "client_credentials", "client_id": "c", "signing_key": EC_KEY,
            "signing_algorithm": "ES256",
        })))
        .unwrap();
        assert!(!format!("{s:?}").contains("MIGH"));

        let missing = dir.path().join("nope.pem").display().to_string();
        for (block, needle) in [
            (
                serde_json::json!({"client_id": "c", "signing_key": EC_KEY}),
                "only used with oauth.grant_type",
            ),
            (
                serde_json::json!({"grant_type": "client_credentials", "client_id": "c",
                                   "client_secret": "s", "signing_key": EC_KEY}),
                "both set",
            ),
            (
                serde_json::json!({"grant_type": "client_credentials", "client_id": "c",
                                   "signing_key_file": missing}),
                "nope.pem",
            ),
            (
                serde_json::json!({"grant_type": "client_credentials", "client_id": "c",
                                   "signing_key": EC_KEY, "signing_algorithm": "RS256"}),
                "oauth.signing_key: the key cannot sign with RS256",
            ),
            (
                serde_json::json!({"grant_type": "client_credentials", "client_id": "c",
                                   "signing_algorithm": "ES256"}),
                "without oauth.signing_key_file",
            ),
        ] {
            let err = refused(block);
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains("MIGH"), "{err}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = Settings::from_server(&server(serde_json::json!({
            "client_id": "c", "client_secret": "hunter2"
        })))
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
