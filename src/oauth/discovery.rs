//! Finding the authorization server of an MCP endpoint, per the MCP authorization spec.
//!
//! rmcp's `AuthorizationManager::resolve_metadata_from_challenge` does the main walk: the
//! 401 challenge's `resource_metadata`, RFC 9728 protected-resource metadata (path-based,
//! then root), then RFC 8414 / OpenID configuration (issuer paths included), then the
//! 2025-03-26 default endpoints. Around it this module adds what mcpo needs:
//! - the RFC 8707 resource: the metadata's `resource`, else the MCP endpoint, never a bare
//!   base URL; a document that names another resource stops the login (rmcp skips a guessed
//!   one silently and would go on to authorize);
//! - `oauth.server_url`: where authorization-server metadata (and the 2025-03-26 defaults)
//!   are looked for when the MCP endpoint leads nowhere;
//! - the 2025-03-26 discovery for servers without protected-resource metadata: RFC 8414
//!   metadata at the MCP origin's root is the server's own even when its issuer names a
//!   path, which rmcp's RFC 8414 issuer check refuses (that check stays on the modern path).

use reqwest::StatusCode;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, AuthorizationMetadataSource,
    ProtectedResourceMetadataInvalidReason, WWWAuthenticateParams,
};
use serde_json::Value;
use url::Url;

use super::error::OAuthError;
use super::outbound::{OAuthHttp, SendError};
use super::settings::{Grant, Settings};

/// The client for mcpo's own OAuth requests on behalf of `settings`' server: no redirects
/// (a metadata or registration endpoint that redirects is refused), bounded time, rmcp's
/// address policy; see [`OAuthHttp`].
pub(crate) fn http_client(settings: &Settings) -> OAuthHttp {
    OAuthHttp::new(settings)
}

/// What discovery settled on.
#[derive(Clone)]
pub(crate) struct Discovered {
    pub metadata: AuthorizationMetadata,
    /// The RFC 8707 resource indicator mcpo asks tokens for.
    pub resource: String,
}

/// A manager for the MCP endpoint. Discovered hosts may be private addresses (mcpo bridges
/// internal servers: docker service names, corporate SSO), loopback only when the endpoint
/// itself is loopback; link-local and cloud-metadata addresses are always refused.
pub(crate) async fn manager(settings: &Settings) -> Result<AuthorizationManager, OAuthError> {
    AuthorizationManager::new_allowing_private_addresses(settings.resource_url.as_str())
        .await
        .map_err(|e| OAuthError::Discovery {
            server: settings.server.clone(),
            message: e.to_string(),
        })
}

pub(crate) async fn discover(
    manager: &AuthorizationManager,
    settings: &Settings,
    challenge: Option<&str>,
) -> Result<Discovered, OAuthError> {
    let http = http_client(settings);
    let failed = |message: String| OAuthError::Discovery {
        server: settings.server.clone(),
        message,
    };
    // Without a challenge in hand, ask the endpoint for one: it may name the metadata URL
    // and the scope to ask for.
    let probed = match challenge {
        Some(_) => None,
        None => probe_challenge(&http, &settings.resource_url).await,
    };
    let challenge = challenge.or(probed.as_deref());
    let resource = protected_resource(&http, settings, challenge).await?;
    let resolved = manager
        .resolve_metadata_from_challenge(challenge)
        .await
        .map(|r| (r.metadata, r.source));
    // 2025-03-26 servers publish no protected-resource metadata; their authorization-server
    // metadata sits at the MCP origin's root, whatever issuer it names.
    let resolved = match resolved {
        Err(e @ AuthError::AuthorizationServerMismatch { .. })
            if resource.is_none()
                && !publishes_resource_metadata(&http, settings, challenge).await =>
        {
            match legacy_root_metadata(&http, settings).await {
                Some(metadata) => Ok((
                    metadata,
                    AuthorizationMetadataSource::AuthorizationServerMetadata,
                )),
                None => Err(e),
            }
        }
        other => other,
    };
    let (mut metadata, source) = resolved.map_err(|e| match e {
        AuthError::ProtectedResourceMetadataInvalid { url, reason } => match *reason {
            ProtectedResourceMetadataInvalidReason::ResourceMismatch { permitted, .. } => {
                OAuthError::ResourceMismatch {
                    server: settings.server.clone(),
                    url: settings.resource_url.to_string(),
                    resource: format!("{permitted} (in {url})"),
                }
            }
            reason => failed(format!(
                "protected resource metadata at {url} is unusable: {reason}"
            )),
        },
        other => failed(other.to_string()),
    })?;
    if source == AuthorizationMetadataSource::LegacyEndpointFallback
        && let Some(server_url) = &settings.server_url
    {
        metadata = match authorization_server_metadata(&http, server_url).await {
            Some(found) => found,
            None => legacy_endpoints(server_url),
        };
    }
    if source == AuthorizationMetadataSource::LegacyEndpointFallback {
        tracing::info!(
            "server '{}': no OAuth metadata published; using the 2025-03-26 default endpoints \
             ({})",
            settings.server,
            metadata.authorization_endpoint
        );
    }
    authorization_server_trusted(settings, &metadata, source)?;
    if settings.grant == Grant::AuthorizationCode {
        openable(
            &settings.server,
            "authorization_endpoint",
            &metadata.authorization_endpoint,
        )?;
    }
    Ok(Discovered {
        metadata,
        resource: resource.unwrap_or_else(|| settings.resource_url.to_string()),
    })
}

/// Refuses an authorization server the operator did not choose when it matters: with
/// `oauth.server_url` set, the one the MCP server points to must be that issuer; with a
/// confidential client (`client_secret` or a signing key) and no `server_url`, it must be on
/// the MCP endpoint's own origin. Otherwise an upstream's protected-resource metadata could
/// name any server and receive the configured client's secret or signed assertion at its
/// token endpoint. Nothing has been sent to that server but metadata requests.
fn authorization_server_trusted(
    settings: &Settings,
    metadata: &AuthorizationMetadata,
    source: AuthorizationMetadataSource,
) -> Result<(), OAuthError> {
    // Metadata mcpo fetched from `server_url` itself (or its default endpoints).
    if source == AuthorizationMetadataSource::LegacyEndpointFallback
        && settings.server_url.is_some()
    {
        return Ok(());
    }
    // Without an issuer (the 2025-03-26 defaults) the server is where its tokens come from.
    let found = match &metadata.issuer {
        Some(issuer) => issuer.clone(),
        None => Url::parse(&metadata.token_endpoint)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| metadata.token_endpoint.clone()),
    };
    let refused = |message: String| OAuthError::Discovery {
        server: settings.server.clone(),
        message,
    };
    if let Some(expected) = &settings.server_url {
        let expected = expected.as_str().trim_end_matches('/');
        if found.trim_end_matches('/') != expected {
            return Err(refused(format!(
                "the MCP server points to the authorization server {}, not to oauth.server_url \
                 ({expected}); refusing to sign in or send client credentials there. If that \
                 server is the right one, set oauth.server_url to it",
                shown(&found)
            )));
        }
        return Ok(());
    }
    let confidential = settings.client_secret.is_some() || settings.signing_key.is_some();
    let same_origin =
        Url::parse(&found).is_ok_and(|u| u.origin() == settings.resource_url.origin());
    if confidential && !same_origin {
        return Err(refused(format!(
            "the MCP server points to the authorization server {} on another origin, and mcpo \
             sends a configured client's credentials only to an authorization server the \
             configuration names; set oauth.server_url to it if client '{}' is registered there",
            shown(&found),
            settings.client_id.as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

/// Refuses a URL that mcpo would open in a browser, print for the user or redirect a
/// browser to, unless it is `https:`, or `http:` on this machine (loopback). The
/// authorization server chooses the URL; another scheme (`file:`, `javascript:`, a
/// custom handler such as `x-app://`) handed to `$BROWSER` or `xdg-open` runs a local
/// program or opens a local file without the user doing anything (CVE-2025-6514).
pub(crate) fn openable(server: &str, what: &str, url: &str) -> Result<(), OAuthError> {
    let refused = |why: &str| OAuthError::Discovery {
        server: server.to_owned(),
        message: format!(
            "refusing the authorization server's {what} {}: {why}; mcpo opens, shows or \
             redirects to https: URLs only (http: on this machine's loopback)",
            shown(url)
        ),
    };
    let Ok(parsed) = Url::parse(url) else {
        return Err(refused("not an absolute URL"));
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if parsed.host().is_some_and(is_loopback) => Ok(()),
        "http" => Err(refused("plain http: to a host that is not loopback")),
        scheme => Err(refused(&format!("its scheme is '{scheme}:'"))),
    }
}

/// A URL for an error text: redacted, and short (an attacker chooses it).
fn shown(url: &str) -> String {
    let redacted = crate::support::redact::url(url);
    let cut: String = redacted.chars().take(120).collect();
    let cut = cut.replace(|c: char| c.is_control(), " ");
    if cut.len() < redacted.len() {
        format!("'{cut}…'")
    } else {
        format!("'{cut}'")
    }
}

/// `localhost`, `*.localhost`, or a loopback address.
fn is_loopback(host: url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// The `resource` of the endpoint's protected-resource metadata, checked against the
/// endpoint. `Ok(None)`: no metadata (or none naming a resource).
async fn protected_resource(
    http: &OAuthHttp,
    settings: &Settings,
    challenge: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let endpoint = &settings.resource_url;
    let advertised =
        challenge.and_then(|h| WWWAuthenticateParams::parse(h, endpoint).resource_metadata_url);
    // Path-based first (the document for exactly this endpoint), then the root one, which
    // may describe another resource on the same host: a mismatch there is not ours.
    let mut candidates: Vec<(Url, bool)> = Vec::new();
    // For the authorization-code grant rmcp reads (and checks) an advertised document
    // itself and the resource is its business; only client_credentials needs it here.
    if let Some(url) = advertised
        && settings.grant == Grant::ClientCredentials
    {
        candidates.push((url, true));
    }
    let path = endpoint.path().trim_matches('/');
    if !path.is_empty() {
        let mut url = endpoint.clone();
        url.set_query(None);
        url.set_path(&format!("/.well-known/oauth-protected-resource/{path}"));
        candidates.push((url, true));
    }
    let mut root = endpoint.clone();
    root.set_query(None);
    root.set_path("/.well-known/oauth-protected-resource");
    candidates.push((root, false));

    for (url, binding) in candidates {
        let document = fetch_json(http, &url)
            .await
            .map_err(|e| OAuthError::Discovery {
                server: settings.server.clone(),
                message: format!("protected resource metadata at {url}: {e}"),
            })?;
        let Some(document) = document else {
            continue;
        };
        let Some(resource) = document.get("resource").and_then(Value::as_str) else {
            continue;
        };
        if resource_matches(endpoint, resource) {
            return Ok(Some(resource.to_owned()));
        }
        if binding {
            return Err(OAuthError::ResourceMismatch {
                server: settings.server.clone(),
                url: endpoint.to_string(),
                resource: format!("{resource} (in {url})"),
            });
        }
    }
    Ok(None)
}

/// The `WWW-Authenticate` challenge of the endpoint's 401, if it answers one: to a GET
/// first, else to a POST of a JSON-RPC `initialize` (servers that refuse GET, or only
/// challenge real MCP requests).
async fn probe_challenge(http: &OAuthHttp, endpoint: &Url) -> Option<String> {
    let get = http
        .get(endpoint.as_str())
        .header("MCP-Protocol-Version", "2025-06-18")
        .header("Accept", "text/event-stream");
    if let Some(found) = challenge_of(http, get).await {
        return Some(found);
    }
    let initialize = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "mcpo", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let post = http
        .post(endpoint.as_str())
        .header("MCP-Protocol-Version", "2025-06-18")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(initialize.to_string());
    challenge_of(http, post).await
}

/// The Bearer challenge of a 401 answer to `request`.
async fn challenge_of(http: &OAuthHttp, request: reqwest::RequestBuilder) -> Option<String> {
    let response = http.send(request).await.ok()?;
    if response.status() != StatusCode::UNAUTHORIZED {
        return None;
    }
    let headers: Vec<String> = response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    headers
        .iter()
        .find(|h| h.trim_start().to_ascii_lowercase().starts_with("bearer"))
        .or_else(|| headers.first())
        .cloned()
}

/// The JSON object at `url`, or `None` (no answer, not 200, not a JSON object).
async fn get_json(http: &OAuthHttp, url: &Url) -> Option<serde_json::Map<String, Value>> {
    fetch_json(http, url).await.ok().flatten()
}

/// [`get_json`], except that a body over the size limit is an error: the one thing worth
/// stopping discovery for, since the metadata is there but unreadable.
async fn fetch_json(
    http: &OAuthHttp,
    url: &Url,
) -> Result<Option<serde_json::Map<String, Value>>, SendError> {
    let Ok(response) = http
        .send(http.get(url.as_str()).header("Accept", "application/json"))
        .await
    else {
        return Ok(None);
    };
    if response.status() != StatusCode::OK {
        return Ok(None);
    }
    let body = match http.body(response).await {
        Ok(body) => body,
        Err(e @ SendError::TooLarge) => return Err(e),
        Err(_) => return Ok(None),
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        _ => Ok(None),
    }
}

/// Whether the endpoint publishes any RFC 9728 protected-resource metadata (named in the
/// challenge, path-based or at the root): if it does, it is not a 2025-03-26 server.
async fn publishes_resource_metadata(
    http: &OAuthHttp,
    settings: &Settings,
    challenge: Option<&str>,
) -> bool {
    let endpoint = &settings.resource_url;
    if challenge
        .and_then(|h| WWWAuthenticateParams::parse(h, endpoint).resource_metadata_url)
        .is_some()
    {
        return true;
    }
    let path = endpoint.path().trim_matches('/');
    let mut candidates = vec!["/.well-known/oauth-protected-resource".to_owned()];
    if !path.is_empty() {
        candidates.insert(0, format!("/.well-known/oauth-protected-resource/{path}"));
    }
    for candidate in candidates {
        let mut url = endpoint.clone();
        url.set_query(None);
        url.set_path(&candidate);
        if get_json(http, &url).await.is_some() {
            return true;
        }
    }
    false
}

/// The 2025-03-26 spec's discovery: RFC 8414 metadata at the root of the MCP server's origin
/// (the path discarded), taken as the server's own. That spec predates RFC 9728, so the
/// metadata's issuer may name a path (`<origin>/oauth`) without a document there; the
/// metadata's endpoints are used as published. Only for servers without protected-resource
/// metadata: the modern path keeps RFC 8414's issuer check.
async fn legacy_root_metadata(
    http: &OAuthHttp,
    settings: &Settings,
) -> Option<AuthorizationMetadata> {
    let mut url = settings.resource_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.set_path("/.well-known/oauth-authorization-server");
    let document = get_json(http, &url).await?;
    let metadata = serde_json::from_value::<AuthorizationMetadata>(Value::Object(document)).ok()?;
    let origin = url.origin();
    let same_origin = |endpoint: &str| Url::parse(endpoint).is_ok_and(|u| u.origin() == origin);
    // The endpoints come from the MCP server's own origin's document; the issuer it names
    // is what the authorization response's `iss` is checked against.
    if !metadata.issuer.as_deref().is_some_and(same_origin) {
        tracing::warn!(
            "server '{}': ignoring the 2025-03-26 authorization server metadata at {url}: its \
             issuer is not on the MCP server's origin",
            settings.server
        );
        return None;
    }
    tracing::info!(
        "server '{}': no protected resource metadata; using the 2025-03-26 authorization \
         server metadata at {url} (issuer {})",
        settings.server,
        metadata.issuer.as_deref().unwrap_or_default()
    );
    Some(metadata)
}

/// RFC 9728 §3.3 as MCP applies it: the metadata's resource is the endpoint itself or a
/// path prefix of it on the same origin.
pub(crate) fn resource_matches(endpoint: &Url, resource: &str) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    if resource.fragment().is_some()
        || resource.scheme() != endpoint.scheme()
        || resource.host_str() != endpoint.host_str()
        || resource.port_or_known_default() != endpoint.port_or_known_default()
    {
        return false;
    }
    let (want, have) = (endpoint.path(), resource.path());
    want == have
        || want.trim_end_matches('/') == have.trim_end_matches('/')
        || (want.starts_with(have) && (have.ends_with('/') || want[have.len()..].starts_with('/')))
}

/// RFC 8414 / OpenID metadata of the issuer `server_url`, with the issuer checked.
async fn authorization_server_metadata(
    http: &OAuthHttp,
    server_url: &Url,
) -> Option<AuthorizationMetadata> {
    let path = server_url.path().trim_matches('/');
    let suffixes: Vec<String> = if path.is_empty() {
        vec![
            "/.well-known/oauth-authorization-server".to_owned(),
            "/.well-known/openid-configuration".to_owned(),
        ]
    } else {
        vec![
            format!("/.well-known/oauth-authorization-server/{path}"),
            format!("/.well-known/openid-configuration/{path}"),
            format!("/{path}/.well-known/openid-configuration"),
        ]
    };
    let expected = server_url.as_str().trim_end_matches('/');
    for suffix in suffixes {
        let mut url = server_url.clone();
        url.set_query(None);
        url.set_path(&suffix);
        let Some(document) = get_json(http, &url).await else {
            continue;
        };
        let Ok(metadata) = serde_json::from_value::<AuthorizationMetadata>(Value::Object(document))
        else {
            continue;
        };
        match metadata.issuer.as_deref() {
            Some(issuer) if issuer.trim_end_matches('/') == expected => return Some(metadata),
            other => tracing::warn!(
                "ignoring authorization server metadata at {url}: issuer {other:?} is not \
                 {expected}"
            ),
        }
    }
    None
}

/// The 2025-03-26 defaults (`/authorize`, `/token`, `/register`) on `base`'s origin.
fn legacy_endpoints(base: &Url) -> AuthorizationMetadata {
    let at = |path: &str| {
        let mut url = base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.set_path(path);
        url.to_string()
    };
    let mut metadata = AuthorizationMetadata::default();
    metadata.authorization_endpoint = at("/authorize");
    metadata.token_endpoint = at("/token");
    metadata.registration_endpoint = Some(at("/register"));
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_matching() {
        let endpoint = Url::parse("https://h.example/api/mcp").unwrap();
        assert!(resource_matches(&endpoint, "https://h.example/api/mcp"));
        assert!(resource_matches(&endpoint, "https://h.example/api/mcp/"));
        assert!(resource_matches(&endpoint, "https://h.example/api"));
        assert!(resource_matches(&endpoint, "https://h.example/"));
        assert!(resource_matches(&endpoint, "https://h.example:443/api/mcp"));
        assert!(!resource_matches(&endpoint, "https://h.example/ap"));
        assert!(!resource_matches(
            &endpoint,
            "https://other.example/api/mcp"
        ));
        assert!(!resource_matches(&endpoint, "http://h.example/api/mcp"));
        assert!(!resource_matches(&endpoint, "https://h.example/api/mcp#x"));
        assert!(!resource_matches(&endpoint, "not a url"));
    }

    #[test]
    fn only_https_or_loopback_http_is_openable() {
        let ok = |u: &str| openable("s", "authorization_endpoint", u).is_ok();
        assert!(ok("https://as.example/authorize?x=1"));
        assert!(ok("http://127.0.0.1:9/authorize"));
        assert!(ok("http://localhost:9/authorize"));
        assert!(ok("http://[::1]:9/authorize"));
        assert!(!ok("http://as.example/authorize"));
        assert!(!ok("http://10.0.0.1/authorize"));
        assert!(!ok("file:///etc/passwd"));
        assert!(!ok("x-evil-handler://run?cmd=1"));
        assert!(!ok("javascript:alert(1)"));
        assert!(!ok("/authorize"));
        let err = openable("s", "authorization_endpoint", "file:///etc/passwd")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server 's'") && err.contains("'file:'"),
            "{err}"
        );
    }

    #[test]
    fn legacy_endpoints_use_the_origin() {
        let m = legacy_endpoints(&Url::parse("http://127.0.0.1:5/base/path?q").unwrap());
        assert_eq!(m.authorization_endpoint, "http://127.0.0.1:5/authorize");
        assert_eq!(m.token_endpoint, "http://127.0.0.1:5/token");
        assert_eq!(
            m.registration_endpoint.as_deref(),
            Some("http://127.0.0.1:5/register")
        );
    }
}
