//! Open WebUI API keys (`sk-…`) → user ids, by asking Open WebUI.
//!
//! A key is an opaque database entry, so it can't be checked offline: `GET
//! {webui_url}/api/v1/users/user/status` with the key as bearer answers the user's record, whose
//! `id` is the same user id Open WebUI puts in its session JWTs (so a user gets the same
//! upstream session whichever credential Open WebUI forwards). Answers are cached for a short
//! time in a bounded map keyed by a SHA-256 of the key: the raw key is never stored or logged.
//! A refused key is cached too (briefly), so a client retrying a bad key does not hammer Open
//! WebUI; a failure to reach Open WebUI is not cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::http::error::ApiError;

/// How long a resolved key is trusted without asking again. A revoked key keeps working for
/// at most this long.
const VALID_TTL: Duration = Duration::from_secs(60);
/// How long a refused key is answered 401 without asking again.
const REFUSED_TTL: Duration = Duration::from_secs(10);
/// Cached keys at most; beyond it, expired entries go first, then the oldest.
const MAX_ENTRIES: usize = 4096;
/// The whole lookup, connect included: a dead Open WebUI must not hang tool calls.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Open WebUI's user record is small; a larger answer is not what we asked for.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Resolves API keys through Open WebUI's user-status endpoint, with a bounded cache.
pub struct ApiKeys {
    /// `{webui_url}/api/v1/users/user/status`, or why there is none.
    endpoint: Result<url::Url, String>,
    client: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Entry>>,
}

#[derive(Clone)]
struct Entry {
    /// The user id, or `None` for a key Open WebUI refused.
    user: Option<String>,
    expires: Instant,
}

impl ApiKeys {
    /// A resolver for `--webui-url` / `WEBUI_URL` (`None`: every key is refused with a hint).
    pub fn new(webui_url: Option<&str>) -> Self {
        let endpoint = match webui_url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Err(
                "Open WebUI API keys (sk-…) need mcpo to know Open WebUI's address: \
                 start mcpo with --webui-url / WEBUI_URL, or use the 'session' auth type \
                 so Open WebUI forwards the user's JWT"
                    .to_owned(),
            ),
            Some(base) => status_endpoint(base),
        };
        if let Err(why) = &endpoint
            && webui_url.is_some()
        {
            tracing::error!("{why}");
        }
        let client = reqwest::Client::builder()
            .timeout(LOOKUP_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            endpoint,
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The Open WebUI user id behind `key`. 401 for a refused key (or no `--webui-url`); 503
    /// when Open WebUI can't be reached, 504 when it does not answer in time, 502 when it
    /// answers something unexpected.
    pub async fn resolve(&self, key: &str) -> Result<String, ApiError> {
        let endpoint = self
            .endpoint
            .as_ref()
            .map_err(|why| ApiError::Unauthorized(why.clone()))?;
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some(entry) = self.cached(&digest) {
            return entry.user.ok_or_else(refused);
        }
        let user = self.ask(endpoint, key).await?;
        let ttl = if user.is_some() {
            VALID_TTL
        } else {
            REFUSED_TTL
        };
        self.remember(
            digest,
            Entry {
                user: user.clone(),
                expires: Instant::now() + ttl,
            },
        );
        user.ok_or_else(refused)
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Entry> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(digest)
            .filter(|e| e.expires > Instant::now())
            .cloned()
    }

    fn remember(&self, digest: [u8; 32], entry: Entry) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_ENTRIES && !cache.contains_key(&digest) {
            let now = Instant::now();
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= MAX_ENTRIES
                && let Some(oldest) = cache.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k)
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(digest, entry);
    }

    /// One lookup: `Some(id)` for a valid key, `None` for a refused one.
    async fn ask(&self, endpoint: &url::Url, key: &str) -> Result<Option<String>, ApiError> {
        let sent = self
            .client
            .get(endpoint.clone())
            .bearer_auth(key)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(unreachable(endpoint, &e)),
        };
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403) {
            return Ok(None);
        }
        if !status.is_success() {
            tracing::warn!("Open WebUI answered {status} to an API key check at {endpoint}");
            return Err(ApiError::BadGateway {
                message: format!(
                    "Open WebUI at {} answered {status} when asked who this API key belongs \
                     to (is user status enabled there?)",
                    origin(endpoint)
                ),
                data: None,
            });
        }
        let body = read_limited(response)
            .await
            .map_err(|e| unreachable(endpoint, &e))?;
        match user_id(&body) {
            Some(id) => Ok(Some(id)),
            None => {
                tracing::warn!(
                    "Open WebUI's answer at {endpoint} has no string 'id'; is --webui-url \
                     Open WebUI's base URL?"
                );
                Err(ApiError::BadGateway {
                    message: format!(
                        "{} did not answer like Open WebUI when asked who this API key belongs \
                         to: check --webui-url",
                        origin(endpoint)
                    ),
                    data: None,
                })
            }
        }
    }
}

fn refused() -> ApiError {
    ApiError::Unauthorized("Open WebUI did not accept this API key".into())
}

/// `base` + `/api/v1/users/user/status`, keeping any sub-path Open WebUI is served under.
fn status_endpoint(base: &str) -> Result<url::Url, String> {
    let bad = |why: &str| format!("--webui-url / WEBUI_URL '{base}' {why}");
    let mut url = url::Url::parse(base).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("must be an http(s) URL like http://localhost:8080"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = format!(
        "{}/api/v1/users/user/status",
        url.path().trim_end_matches('/')
    );
    url.set_path(&path);
    Ok(url)
}

/// Scheme, host and port: what error bodies may name of the endpoint.
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

fn unreachable(endpoint: &url::Url, e: &reqwest::Error) -> ApiError {
    // reqwest's Display names the URL, never the Authorization header.
    tracing::warn!("cannot check an API key with Open WebUI at {endpoint}: {e}");
    if e.is_timeout() {
        ApiError::GatewayTimeout(format!(
            "Open WebUI at {} did not answer within {} s when asked who this API key belongs to",
            origin(endpoint),
            LOOKUP_TIMEOUT.as_secs()
        ))
    } else {
        ApiError::Unavailable {
            message: format!(
                "cannot reach Open WebUI at {} to check this API key",
                origin(endpoint)
            ),
            retry_after_secs: 5,
        }
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}

fn user_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.get("id")? {
        serde_json::Value::String(id) if !id.is_empty() => Some(id.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_a_sub_path() {
        let at = |b: &str| status_endpoint(b).map(|u| u.to_string());
        assert_eq!(
            at("http://localhost:8080").unwrap(),
            "http://localhost:8080/api/v1/users/user/status"
        );
        assert_eq!(
            at("https://chat.example/owui/?x=1").unwrap(),
            "https://chat.example/owui/api/v1/users/user/status"
        );
        assert!(at("localhost:8080").is_err());
        assert!(at("ftp://h").is_err());
        assert!(at("http://u:p@h").is_err());
    }

    #[tokio::test]
    async fn without_a_webui_url_keys_get_a_hint() {
        let keys = ApiKeys::new(None);
        let err = keys.resolve("sk-0123").await.unwrap_err();
        let ApiError::Unauthorized(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("--webui-url"), "{message}");
        assert!(!message.contains("sk-0123"));
    }

    #[test]
    fn the_cache_stays_bounded_and_drops_the_oldest() {
        let keys = ApiKeys::new(None);
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) as u64 {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&i.to_le_bytes());
            keys.remember(
                digest,
                Entry {
                    user: Some(i.to_string()),
                    expires: now + Duration::from_secs(i + 1),
                },
            );
        }
        let cache = keys.cache.lock().unwrap();
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(!cache.contains_key(&[0u8; 32]), "the oldest entry stayed");
    }

    #[test]
    fn only_a_string_id_is_a_user() {
        assert_eq!(user_id(br#"{"id":"u1","email":"a@b"}"#), Some("u1".into()));
        assert_eq!(user_id(br#"{"id":5}"#), None);
        assert_eq!(user_id(br#"{"id":""}"#), None);
        assert_eq!(user_id(b"<html>"), None);
    }
}
