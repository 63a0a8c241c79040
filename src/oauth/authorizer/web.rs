//! Multi-user web logins from the authorizer's side: the redirect of the latest login, the
//! wait of a session for its user to sign in, the login's start and its callback, what the
//! stored tokens say for `/oauth/{server}/status`, and rmcp's PKCE states kept bounded.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::auth::{AuthError, StateStore, StoredAuthorizationState};

use super::interactive::Verdict;
use super::{Authorizer, LoginRequest, LoginState};
use crate::oauth::callback::Params;
use crate::oauth::error::OAuthError;
use crate::oauth::settings::Settings;
use crate::store::StoreError;
use crate::support::bounded_map::BoundedMap;

/// The web-login side of a multi-user caller's authorizer.
#[derive(Default)]
pub(super) struct WebMode {
    /// The callback URL of the latest login (`<public>/oauth/{server}/callback`); the client
    /// registration is made for it, and registered again when it changes.
    redirect: Mutex<Option<String>>,
    /// Woken when a web login completes, so a session waiting for one connects at once.
    signed_in: tokio::sync::Notify,
    /// rmcp's PKCE states of this user's logins (shared with their `AuthorizationManager`),
    /// so a login begun on another replica can be finished here.
    pub(super) states: BoundedStates,
}

/// What mcpo knows about a caller's tokens, for `/oauth/{server}/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenStatus {
    /// Tokens are stored and usable: the access token has not expired, or it can be refreshed.
    pub authenticated: bool,
    /// When the access token expires (seconds since the Unix epoch), if the server said.
    pub expires_at: Option<u64>,
}

/// What a web-login callback came to.
pub(crate) enum WebOutcome {
    /// Tokens are stored: the user is signed in.
    SignedIn,
    /// The response is not usable for this login (wrong issuer…); the login stays open.
    Ignored(String),
    Failed(OAuthError),
}

/// Multi-user web login: the user signs in through mcpo's `/oauth/{server}/login` and
/// `/callback` routes (see `WebLogins`) instead of a browser mcpo opens.
impl Authorizer {
    /// The settings a login uses now: in web mode, the redirect URI of the latest login (or,
    /// before any, the one the stored registration was made for, so stored tokens stay valid)
    /// and a `web` application type for registration.
    pub(super) async fn settings(&self) -> std::borrow::Cow<'_, Settings> {
        let Some(web) = &self.inner.web else {
            return std::borrow::Cow::Borrowed(&self.inner.settings);
        };
        let latest = web
            .redirect
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let redirect = match latest {
            Some(redirect) => Some(redirect),
            None => self
                .inner
                .store
                .load_registration()
                .await
                .ok()
                .flatten()
                .map(|r| r.redirect_uri),
        };
        let mut settings = self.inner.settings.clone();
        settings.web_redirect = redirect;
        // A callback on a web server, not a native app's loopback port: authorization servers
        // check redirect URIs by application type.
        settings
            .client_metadata
            .get_or_insert_with(Default::default)
            .entry("application_type")
            .or_insert_with(|| serde_json::Value::String("web".to_owned()));
        std::borrow::Cow::Owned(settings)
    }

    /// Whether the user of this (web-mode) authorizer has to sign in before a call can work:
    /// no tokens stored, the access token expired with no refresh token, or a session found
    /// out that the tokens no longer work and is waiting for a login.
    pub async fn needs_login(&self) -> Result<bool, StoreError> {
        match self.state() {
            // The last check (a connect, a refresh, a login) found usable tokens; a request
            // that finds otherwise moves the state to `Pending`. No file read per call.
            LoginState::Authorized => Ok(false),
            LoginState::Pending { .. } => {
                // With replicas the login may have finished on another one: its tokens are
                // in the shared store, and a session here waiting for them goes on.
                if self.inner.store.reload_tokens().await?
                    && self.token_status().await?.authenticated
                {
                    if let Some(web) = &self.inner.web {
                        web.signed_in.notify_waiters();
                    }
                    return Ok(false);
                }
                Ok(true)
            }
            _ => Ok(!self.token_status().await?.authenticated),
        }
    }

    /// Whether the stored tokens look usable, and when the access token expires.
    pub async fn token_status(&self) -> Result<TokenStatus, StoreError> {
        let Some(stored) = self.inner.store.load_tokens().await? else {
            return Ok(TokenStatus {
                authenticated: false,
                expires_at: None,
            });
        };
        // Read through JSON: the typed accessors need oauth2's trait, which rmcp keeps to itself.
        let response = stored
            .token_response
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or_default();
        let has_access = response.get("access_token").is_some_and(|t| t.is_string());
        let refreshable = response.get("refresh_token").is_some_and(|t| t.is_string());
        let expires_at = match (
            response
                .get("expires_in")
                .and_then(serde_json::Value::as_u64),
            stored.token_received_at,
        ) {
            (Some(lifetime), Some(at)) => Some(at.saturating_add(lifetime)),
            _ => None,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let fresh = expires_at.is_none_or(|at| at > now);
        Ok(TokenStatus {
            authenticated: has_access && (fresh || refreshable),
            expires_at,
        })
    }

    /// A multi-user caller's authorizer: logins come through the web login.
    pub fn is_web(&self) -> bool {
        self.inner.web.is_some()
    }

    /// Something besides the caller holds this authorizer (a session, a login in progress).
    pub(crate) fn is_shared(&self) -> bool {
        Arc::strong_count(&self.inner) > 1
    }

    /// The supervisor's wait in web mode: returns once the stored tokens are usable
    /// (refreshed if needed), waiting for the user's web login as long as it takes; the
    /// supervisor drops this future when the session is closed.
    pub(super) async fn wait_for_web_login(&self, web: &WebMode) -> Result<(), OAuthError> {
        loop {
            let signed_in = web.signed_in.notified();
            tokio::pin!(signed_in);
            signed_in.as_mut().enable();
            if self.stored_tokens_usable().await? {
                return Ok(());
            }
            self.pending(None);
            signed_in.await;
        }
    }

    /// Starts a web login whose callback is `redirect_uri`: discovery, the client identity
    /// (registered for that callback when needed), PKCE and `state`. Returns the
    /// authorization URL and its `state`.
    pub(crate) async fn begin_web_login(
        &self,
        redirect_uri: &str,
    ) -> Result<(String, String), OAuthError> {
        if let Some(web) = &self.inner.web {
            *web.redirect.lock().unwrap_or_else(|e| e.into_inner()) = Some(redirect_uri.to_owned());
        }
        let client = self.client().await.inspect_err(|e| self.failed(e, false))?;
        let request = LoginRequest::default();
        self.prepare_login(client, &request)
            .await
            .inspect_err(|e| self.failed(e, false))
    }

    /// The PKCE state of this user's login `csrf` (to share it with other replicas).
    pub(crate) fn web_login_state(&self, csrf: &str) -> Option<StoredAuthorizationState> {
        let web = self.inner.web.as_ref()?;
        web.states
            .states()
            .get(&csrf.to_owned(), Instant::now())
            .cloned()
    }

    /// Adopts a login begun on another replica: its PKCE state, and its callback URL (the
    /// token request must name the same one).
    pub(crate) fn adopt_web_login(
        &self,
        csrf: &str,
        state: StoredAuthorizationState,
        redirect_uri: &str,
    ) {
        let Some(web) = &self.inner.web else { return };
        let now = Instant::now();
        web.states
            .states()
            .insert(csrf.to_owned(), state, now + WEB_LOGIN_TTL, now);
        *web.redirect.lock().unwrap_or_else(|e| e.into_inner()) = Some(redirect_uri.to_owned());
    }

    /// Completes a web login with the authorization response `params` of the login whose
    /// `state` is `expected_state`; wakes a session waiting for it.
    pub(crate) async fn finish_web_login(
        &self,
        params: &Params,
        expected_state: &str,
    ) -> WebOutcome {
        let client = match self.client().await {
            Ok(client) => client,
            Err(e) => return WebOutcome::Failed(e),
        };
        match self.consider(client, params, expected_state).await {
            Verdict::Ignore(why) => WebOutcome::Ignored(why),
            Verdict::Done(Ok(())) => {
                self.inner.generation.fetch_add(1, Ordering::SeqCst);
                self.authorized();
                tracing::info!("server '{}': OAuth web login complete", self.server());
                if let Some(web) = &self.inner.web {
                    web.signed_in.notify_waiters();
                }
                WebOutcome::SignedIn
            }
            Verdict::Done(Err(e)) => {
                tracing::warn!("{e}");
                self.failed(&e, false);
                WebOutcome::Failed(e)
            }
        }
    }
}

/// How long a web login may take between its start and its callback; older PKCE states are
/// dropped.
pub(crate) const WEB_LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// PKCE states kept per user (oldest dropped beyond it).
pub(crate) const MAX_STATES_PER_USER: usize = 8;

/// rmcp's PKCE state store, bounded: a user who starts many logins keeps only the latest
/// few (a full store drops the expired, then the oldest), and states older than the login
/// window are gone.
#[derive(Clone)]
pub(crate) struct BoundedStates {
    states: Arc<Mutex<BoundedMap<String, StoredAuthorizationState>>>,
}

impl Default for BoundedStates {
    fn default() -> Self {
        Self {
            states: Arc::new(Mutex::new(BoundedMap::new(MAX_STATES_PER_USER))),
        }
    }
}

impl BoundedStates {
    fn states(&self) -> std::sync::MutexGuard<'_, BoundedMap<String, StoredAuthorizationState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl StateStore for BoundedStates {
    async fn save(&self, csrf: &str, state: StoredAuthorizationState) -> Result<(), AuthError> {
        let now = Instant::now();
        self.states()
            .insert(csrf.to_owned(), state, now + WEB_LOGIN_TTL, now);
        Ok(())
    }

    async fn load(&self, csrf: &str) -> Result<Option<StoredAuthorizationState>, AuthError> {
        Ok(self.states().get(&csrf.to_owned(), Instant::now()).cloned())
    }

    async fn delete(&self, csrf: &str) -> Result<(), AuthError> {
        self.states().remove(&csrf.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(csrf: &str) -> StoredAuthorizationState {
        serde_json::from_value(serde_json::json!({
            "pkce_verifier": format!("verifier-{csrf}"),
            "csrf_token": csrf,
            "created_at": 0,
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn pkce_states_are_bounded_per_user_and_deleted_once_used() {
        let store = BoundedStates::default();
        for i in 0..=MAX_STATES_PER_USER {
            store
                .save(&format!("s{i}"), state(&format!("s{i}")))
                .await
                .unwrap();
        }
        // One login too many: the oldest state went, the latest ones are kept.
        assert!(store.load("s0").await.unwrap().is_none());
        let last = format!("s{MAX_STATES_PER_USER}");
        let kept = store.load(&last).await.unwrap().unwrap();
        assert_eq!(kept.pkce_verifier, format!("verifier-{last}"));
        store.delete(&last).await.unwrap();
        assert!(store.load(&last).await.unwrap().is_none());
        assert_eq!(store.states().len(), MAX_STATES_PER_USER - 1);
    }
}
