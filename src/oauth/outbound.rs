//! [`OAuthHttp`]: the client of the requests mcpo's OAuth code makes itself (discovery
//! probes and metadata, registration, the `private_key_jwt` grant, revocation), with the
//! address policy rmcp applies to its own (see [`super::address`]) checked on every request.

use std::sync::Arc;

use super::address::AddressPolicy;
use super::settings::Settings;
use crate::support::error_chain;

/// One server's OAuth request client. Cheap to clone.
#[derive(Clone)]
pub(crate) struct OAuthHttp {
    client: reqwest::Client,
    policy: AddressPolicy,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("refused by the address rule of OAuth requests ({0}); see docs/oauth.md#addresses")]
    Refused(String),
    /// The HTTP client's error and its causes, without the URL (the caller names it).
    #[error("{0}")]
    Http(String),
}

impl OAuthHttp {
    /// The client for `settings`' server: its MCP endpoint decides what loopback may be
    /// reached; no redirects, 30 s per request (see `support::http_client::oauth_requests`).
    pub fn new(settings: &Settings) -> OAuthHttp {
        let policy = AddressPolicy::for_base(&settings.resource_url);
        let client = crate::support::http_client::oauth_requests(Arc::new(policy.clone()));
        OAuthHttp { client, policy }
    }

    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` unless its URL is refused (names are filtered when resolved; an IP
    /// literal, which is not resolved, is checked here).
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        let request = request.build().map_err(http_error)?;
        if let Err(why) = self.policy.check_url(request.url()) {
            tracing::warn!(
                "OAuth request to {} refused: {why}",
                crate::support::redact::url(request.url().as_str())
            );
            return Err(SendError::Refused(why));
        }
        self.client.execute(request).await.map_err(http_error)
    }
}

fn http_error(e: reqwest::Error) -> SendError {
    SendError::Http(error_chain(&e.without_url()))
}
