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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::support::bounded_map::BoundedMap;
use crate::support::http_client;

/// How long a resolved key is trusted without asking again. A revoked key keeps working for
/// at most this long.
const VALID_TTL: Duration = Duration::from_secs(60);
/// How long a refused key is answered 401 without asking again.
const REFUSED_TTL: Duration = Duration::from_secs(10);
/// Cached keys at most; beyond it, expired entries go first, then the oldest
/// ([`BoundedMap`]).
const MAX_ENTRIES: usize = 4096;
/// Longer "keys" are refused without asking Open WebUI.
const MAX_KEY_LEN: usize = 256;
/// Open WebUI's user record is small; a larger answer is not what we asked for.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Different keys being checked at once. Anyone can send a made-up `sk-` key, so without a
/// bound a burst of them would open as many connections to Open WebUI.
const MAX_LOOKUPS: usize = 64;

/// Resolves API keys through Open WebUI's user-status endpoint, with a bounded cache.
pub struct ApiKeys {
    /// `{webui_url}/api/v1/users/user/status`, or why there is none.
    endpoint: Result<url::Url, String>,
    /// Built on the first key to check: building one loads the system's root certificates
    /// (~0.1 MiB of heap, and the code that parses them), which most deployments never use.
    client: OnceLock<reqwest::Client>,
    known: Arc<Mutex<ResolvedKeys>>,
}

/// The cache (the user id, or `None` for a key Open WebUI refused), and the lookups under way
/// (so a burst of calls with a new key asks Open WebUI once, and all of them get that one
/// answer, failures included).
struct ResolvedKeys {
    answers: BoundedMap<[u8; 32], Option<String>>,
    pending: HashMap<[u8; 32], Lookup>,
}

impl Default for ResolvedKeys {
    fn default() -> Self {
        Self {
            answers: BoundedMap::new(MAX_ENTRIES),
            pending: HashMap::new(),
        }
    }
}

type Lookup = Shared<BoxFuture<'static, Result<Option<String>, Failure>>>;

/// Why Open WebUI gave no usable answer (never cached).
#[derive(Clone, Debug)]
enum Failure {
    Timeout,
    Unreachable,
    Status(reqwest::StatusCode),
    NotOpenWebUi,
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
            && webui_url.is_some_and(|u| !u.trim().is_empty())
        {
            tracing::error!("{why}");
        }
        Self {
            endpoint,
            client: OnceLock::new(),
            known: Default::default(),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(http_client::webui_lookups)
    }

    /// The Open WebUI user id behind `key`. 401 for a refused key (or no `--webui-url`); 503
    /// when Open WebUI can't be reached, 504 when it does not answer in time, 502 when it
    /// answers something unexpected.
    pub async fn resolve(&self, key: &str) -> Result<String, ApiError> {
        let endpoint = self
            .endpoint
            .as_ref()
            .map_err(|why| ApiError::Unauthorized(why.clone()))?;
        // Open WebUI's keys are `sk-` and 32 hex digits: something far longer is not one, and
        // is not forwarded.
        if key.len() > MAX_KEY_LEN {
            return Err(refused());
        }
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let lookup = {
            let mut known = lock(&self.known);
            if let Some(user) = known.answers.get(&digest, Instant::now()) {
                return user.clone().ok_or_else(refused);
            }
            if !known.pending.contains_key(&digest) && known.pending.len() >= MAX_LOOKUPS {
                return Err(ApiError::Unavailable {
                    message: "too many API keys are being checked with Open WebUI right now; \
                              retry in a moment"
                        .into(),
                    retry_after_secs: 1,
                });
            }
            known
                .pending
                .entry(digest)
                .or_insert_with(|| self.start_lookup(endpoint, key, digest))
                .clone()
        };
        match lookup.await {
            Ok(user) => user.ok_or_else(refused),
            Err(failure) => Err(failure.to_api_error(endpoint)),
        }
    }

    /// Asks Open WebUI in a task of its own, so the answer is cached even when every caller
    /// waiting for it has gone away.
    fn start_lookup(&self, endpoint: &url::Url, key: &str, digest: [u8; 32]) -> Lookup {
        let (client, endpoint, key) = (self.client().clone(), endpoint.clone(), key.to_owned());
        let known = self.known.clone();
        let task = tokio::spawn(async move {
            let outcome = ask(&client, &endpoint, &key).await;
            let mut known = lock(&known);
            known.pending.remove(&digest);
            if let Ok(user) = &outcome {
                let ttl = if user.is_some() {
                    VALID_TTL
                } else {
                    REFUSED_TTL
                };
                let expires = Instant::now() + ttl;
                known.remember(digest, user.clone(), expires);
            }
            outcome
        });
        async move { task.await.unwrap_or(Err(Failure::Unreachable)) }
            .boxed()
            .shared()
    }
}

impl ResolvedKeys {
    fn remember(&mut self, digest: [u8; 32], user: Option<String>, expires: Instant) {
        self.answers.insert(digest, user, expires, Instant::now());
    }
}

fn lock(known: &Mutex<ResolvedKeys>) -> std::sync::MutexGuard<'_, ResolvedKeys> {
    known.lock().unwrap_or_else(|e| e.into_inner())
}

/// One lookup: `Some(id)` for a valid key, `None` for a refused one. Failures are logged here,
/// once per lookup.
async fn ask(
    client: &reqwest::Client,
    endpoint: &url::Url,
    key: &str,
) -> Result<Option<String>, Failure> {
    // reqwest's error texts name the URL, never the Authorization header.
    let unreachable = |e: reqwest::Error| {
        tracing::warn!("cannot check an API key with Open WebUI at {endpoint}: {e}");
        if e.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Unreachable
        }
    };
    let response = client
        .get(endpoint.clone())
        .bearer_auth(key)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    if matches!(status.as_u16(), 401 | 403) {
        tracing::debug!("Open WebUI refused an API key ({status})");
        return Ok(None);
    }
    if !status.is_success() {
        tracing::warn!("Open WebUI answered {status} to an API key check at {endpoint}");
        return Err(Failure::Status(status));
    }
    let body = read_limited(response).await.map_err(unreachable)?;
    match user_id(&body) {
        Some(id) => Ok(Some(id)),
        None => {
            tracing::warn!(
                "the answer of {endpoint} to an API key check has no string 'id'; is \
                 --webui-url Open WebUI's base URL?"
            );
            Err(Failure::NotOpenWebUi)
        }
    }
}

impl Failure {
    /// Error bodies name Open WebUI's origin only (no path, nothing of the key).
    fn to_api_error(&self, endpoint: &url::Url) -> ApiError {
        let origin = endpoint.origin().ascii_serialization();
        match self {
            Failure::Timeout => ApiError::GatewayTimeout(format!(
                "Open WebUI at {origin} did not answer within {} s when asked who this API key \
                 belongs to",
                http_client::WEBUI_LOOKUP_TIMEOUT.as_secs()
            )),
            Failure::Unreachable => ApiError::Unavailable {
                message: format!("cannot reach Open WebUI at {origin} to check this API key"),
                retry_after_secs: 5,
            },
            Failure::Status(status) => ApiError::BadGateway {
                message: format!(
                    "Open WebUI at {origin} answered {status} when asked who this API key \
                     belongs to (is user status enabled there?)"
                ),
                data: None,
            },
            Failure::NotOpenWebUi => ApiError::BadGateway {
                message: format!(
                    "{origin} did not answer like Open WebUI when asked who this API key \
                     belongs to: check --webui-url"
                ),
                data: None,
            },
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

    #[tokio::test]
    async fn overlong_keys_are_refused_without_asking() {
        // Port 1 refuses connections: asking would be a 503, not a 401.
        let keys = ApiKeys::new(Some("http://127.0.0.1:1"));
        let long = format!("sk-{}", "a".repeat(MAX_KEY_LEN));
        assert!(matches!(
            keys.resolve(&long).await,
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            keys.resolve("sk-0123").await,
            Err(ApiError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn lookups_under_way_are_bounded() {
        // Accepts connections (the kernel's backlog) but never answers: every lookup hangs.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let keys = Arc::new(ApiKeys::new(Some(&format!(
            "http://{}",
            silent.local_addr().unwrap()
        ))));
        let hanging: Vec<_> = (0..MAX_LOOKUPS)
            .map(|i| {
                let keys = keys.clone();
                tokio::spawn(async move { keys.resolve(&format!("sk-{i:032}")).await })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(2);
        while lock(&keys.known).pending.len() < MAX_LOOKUPS {
            assert!(Instant::now() < deadline, "the lookups did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let refused = keys.resolve("sk-one-more").await;
        assert!(
            matches!(refused, Err(ApiError::Unavailable { .. })),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // A key already being checked still joins its lookup rather than being refused.
        let joined = tokio::time::timeout(
            Duration::from_millis(300),
            keys.resolve(&format!("sk-{:032}", 0)),
        )
        .await;
        assert!(joined.is_err(), "not waiting for the lookup: {joined:?}");
        assert_eq!(lock(&keys.known).pending.len(), MAX_LOOKUPS);
        for h in hanging {
            h.abort();
        }
    }

    #[test]
    fn the_cache_stays_bounded_and_drops_the_oldest() {
        let mut known = ResolvedKeys::default();
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) as u64 {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&i.to_le_bytes());
            known.remember(
                digest,
                Some(i.to_string()),
                now + Duration::from_secs(i + 1),
            );
        }
        assert_eq!(known.answers.len(), MAX_ENTRIES);
        assert!(
            !known.answers.contains_key(&[0u8; 32]),
            "the oldest entry stayed"
        );
    }

    #[test]
    fn only_a_string_id_is_a_user() {
        assert_eq!(user_id(br#"{"id":"u1","email":"a@b"}"#), Some("u1".into()));
        assert_eq!(user_id(br#"{"id":5}"#), None);
        assert_eq!(user_id(br#"{"id":""}"#), None);
        assert_eq!(user_id(b"<html>"), None);
    }
}
