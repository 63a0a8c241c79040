//! [`OAuthHttp`]: the client of the requests mcpo's OAuth code makes itself (discovery
//! probes and metadata, registration, the `private_key_jwt` grant, revocation), with the
//! address policy rmcp applies to its own (see [`super::address`]) checked on every request.

use std::sync::Arc;

use super::address::AddressPolicy;
use super::settings::Settings;
use crate::support::error_chain;

/// The largest response body mcpo reads from an OAuth endpoint (protected-resource and
/// authorization-server metadata, registration, token, revocation), the limit rmcp keeps for
/// its own OAuth responses: such documents are a few KiB, and reading stops here.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// One server's OAuth request client. Cheap to clone.
#[derive(Clone)]
pub(crate) struct OAuthHttp {
    client: reqwest::Client,
    policy: AddressPolicy,
    server: String,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("refused by the address rule of OAuth requests ({0}); see docs/oauth.md#addresses")]
    Refused(String),
    /// The HTTP client's error and its causes, without the URL (the caller names it).
    #[error("{0}")]
    Http(String),
    #[error(
        "the response is larger than {} KiB, more than any OAuth document needs; mcpo stopped \
         reading it",
        MAX_RESPONSE_BYTES >> 10
    )]
    TooLarge,
}

impl OAuthHttp {
    /// The client for `settings`' server: its MCP endpoint decides what loopback may be
    /// reached; no redirects, 30 s per request (see `support::http_client::oauth_requests`).
    pub fn new(settings: &Settings) -> OAuthHttp {
        let policy = AddressPolicy::for_base(&settings.resource_url);
        let client = crate::support::http_client::oauth_requests(Arc::new(policy.clone()));
        OAuthHttp {
            client,
            policy,
            server: settings.server.clone(),
        }
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

impl OAuthHttp {
    /// `response`'s body, read chunk by chunk up to [`MAX_RESPONSE_BYTES`]: a longer one
    /// (or one that announces it) is refused, having cost at most that much memory.
    pub async fn body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, SendError> {
        let url = crate::support::redact::url(response.url().as_str()).into_owned();
        let too_large = || {
            tracing::warn!("server '{}': {url}: {}", self.server, SendError::TooLarge);
            SendError::TooLarge
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http_error)? {
            if chunk.len() > MAX_RESPONSE_BYTES - body.len() {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn http_error(e: reqwest::Error) -> SendError {
    SendError::Http(error_chain(&e.without_url()))
}
