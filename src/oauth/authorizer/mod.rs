//! [`Authorizer`]: the OAuth state of one upstream, kept across reconnects.
//!
//! This file holds the authorizer itself: tokens on hand, rmcp's client, the login
//! sequence and the client identity. The rest is split by concern: `state` (the login
//! state machine and its cool-down), `step_up` (logins for more scope), `interactive`
//! (loopback, browser, pasted URL), `grant` (client credentials) and `web` (multi-user
//! web logins and their PKCE states).

mod grant;
mod interactive;
mod state;
mod step_up;
mod web;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::auth::{AuthClient, AuthError, AuthorizationManager};
use tokio::sync::{OnceCell, watch};

use super::discovery::{self, Discovered};
use super::error::OAuthError;
use super::options::AuthOptions;
use super::register::{self, Identity};
use super::settings::{Grant, Settings};
use super::store::{REFRESHED_ELSEWHERE, Store};
use crate::config::ServerConfig;
use crate::store::StoreError;
pub use state::LoginState;
use state::{DEFAULT_COOL_DOWN, LoginRecord};
use step_up::StepUps;
pub use web::TokenStatus;
pub(crate) use web::{WEB_LOGIN_TTL, WebOutcome};

/// How long discovery done when the client was created stands in for a login's own.
const JUST_DISCOVERED: Duration = Duration::from_secs(30);

/// The OAuth client of one upstream. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    options: AuthOptions,
    store: Store,
    /// rmcp's manager (behind its mutex), created on first use because creating it means
    /// discovery, which needs the network.
    client: OnceCell<AuthClient<reqwest::Client>>,
    /// What discovery found when `client` was created, for the first login to use rather
    /// than discover again right away.
    just_discovered: Mutex<Option<(Instant, Discovered)>>,
    /// One login at a time per server.
    login_lock: tokio::sync::Mutex<()>,
    /// The login state machine; every change is also published on `login_tx`.
    login: Mutex<LoginRecord>,
    login_tx: watch::Sender<LoginState>,
    /// Counts successful logins, so a request that was refused can tell whether a newer
    /// login already happened while it waited.
    generation: AtomicU64,
    /// Step-up logins per scope set, kept across requests and reconnects.
    step_ups: Mutex<StepUps>,
    /// Failed authorization attempts (not counting cool-down refusals), for `/metrics`.
    failures_total: AtomicU64,
    /// Multi-user mode: logins come through mcpo's own web routes, never a browser it opens.
    web: Option<web::WebMode>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthCounters {
    /// Successful interactive (or client-credentials) logins.
    pub logins: u64,
    /// Token refreshes (token sets saved beyond those logins).
    pub refreshes: u64,
    /// Failed authorization attempts.
    pub failures: u64,
}

/// What a login is for.
#[derive(Default)]
pub(crate) struct LoginRequest {
    /// `WWW-Authenticate` of the response that asked for it.
    pub challenge: Option<String>,
    /// Scopes to ask for instead of discovery's pick (step-up).
    pub scopes: Option<Vec<String>>,
    /// Ignore valid tokens and the cool-down (`mcpo auth login`).
    pub force: bool,
    /// The login generation the caller saw; if a newer login happened since, none is needed.
    pub seen_generation: Option<u64>,
}

enum TokenCheck {
    Valid,
    NeedLogin,
    ClientRejected,
    Failed(OAuthError),
}

impl Authorizer {
    /// The authorizer of `server`, whose `oauth` block the config loader checked; no I/O
    /// (tokens are read when first needed). Fails for a server without an `oauth` block.
    pub fn new(server: &ServerConfig, options: AuthOptions) -> Result<Authorizer, OAuthError> {
        let settings = Settings::from_server(server)?;
        let store = match &options.user {
            Some(user) => Store::for_user(
                settings.storage,
                &settings.server,
                settings.resource_url.as_str(),
                user,
                options.token_dir.as_deref(),
            ),
            None => Store::new(
                settings.storage,
                &settings.server,
                settings.resource_url.as_str(),
                options.token_dir.as_deref(),
            ),
        }
        .map_err(|message| OAuthError::Storage {
            server: settings.server.clone(),
            message,
        })?;
        let web = options.user.is_some().then(web::WebMode::default);
        Ok(Authorizer {
            inner: Arc::new(Inner {
                settings,
                options,
                store,
                client: OnceCell::new(),
                just_discovered: Mutex::new(None),
                login_lock: tokio::sync::Mutex::new(()),
                login: Mutex::new(LoginRecord::new()),
                login_tx: watch::Sender::new(LoginState::Unknown),
                generation: AtomicU64::new(0),
                step_ups: Mutex::new(StepUps::default()),
                failures_total: AtomicU64::new(0),
                web,
            }),
        })
    }

    /// Returns once there are usable tokens: stored ones (refreshed if needed), else after a
    /// login (browser or paste, as configured; untimed apart from `login_timeout`). During
    /// the cool-down after a failed login it fails at once with [`OAuthError::CoolingDown`].
    pub async fn ensure_authorized(&self) -> Result<(), OAuthError> {
        self.check_store().await?;
        if let Some(web) = &self.inner.web {
            return self.wait_for_web_login(web).await;
        }
        if self.stored_tokens_usable().await? {
            return Ok(());
        }
        self.login(LoginRequest::default()).await
    }

    /// Whether the stored tokens are usable now (refreshed if needed; the state becomes
    /// authorized); `false` when a login is needed, also after dropping a registration the
    /// server no longer knows.
    async fn stored_tokens_usable(&self) -> Result<bool, OAuthError> {
        let client = self.client().await.inspect_err(|e| self.failed(e, false))?;
        match self.check_tokens(client).await {
            TokenCheck::Valid => {
                self.authorized();
                Ok(true)
            }
            TokenCheck::NeedLogin => Ok(false),
            TokenCheck::ClientRejected => self.client_rejected().await.map(|()| false),
            TokenCheck::Failed(e) => {
                self.failed(&e, false);
                Err(e)
            }
        }
    }

    /// Whether the stored tokens and registration can be read with the store key (plaintext
    /// files of an earlier mcpo are sealed now): a sealed file that does not open is an
    /// error naming the store and the file, and nothing is logged in over it.
    pub async fn check_store(&self) -> Result<(), OAuthError> {
        self.inner
            .store
            .check()
            .await
            .map_err(|message| OAuthError::Storage {
                server: self.server().to_owned(),
                message,
            })
    }

    /// Logins, refreshes and failures so far.
    pub fn counters(&self) -> OAuthCounters {
        let logins = self.inner.generation.load(Ordering::Relaxed);
        OAuthCounters {
            logins,
            refreshes: self.inner.store.saves().saturating_sub(logins),
            failures: self.inner.failures_total.load(Ordering::Relaxed),
        }
    }

    /// Where the login stands now.
    pub fn state(&self) -> LoginState {
        self.record().state(Instant::now())
    }

    /// Every change of [`Self::state`], as it happens (a failure's `retry_after` as of the
    /// change): for whoever waits for a login to start or end, instead of polling.
    pub fn watch_login(&self) -> watch::Receiver<LoginState> {
        self.inner.login_tx.subscribe()
    }

    /// The server this authorizer is for.
    pub fn server(&self) -> &str {
        &self.inner.settings.server
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The token file (`None` with memory storage).
    pub fn token_file(&self) -> Option<std::path::PathBuf> {
        self.inner.store.tokens_path()
    }

    /// A fresh interactive login now (`mcpo auth login`).
    pub(crate) async fn login_now(&self) -> Result<(), OAuthError> {
        self.check_store().await?;
        self.login(LoginRequest {
            force: true,
            ..Default::default()
        })
        .await
    }

    /// Forgets stored tokens and registration (`mcpo auth logout`).
    pub(crate) async fn forget(&self) -> Result<bool, OAuthError> {
        let tokens = self
            .inner
            .store
            .clear_tokens()
            .await
            .map_err(|e| self.storage(e))?;
        let client = self
            .inner
            .store
            .clear_registration()
            .await
            .map_err(|e| self.storage(e))?;
        Ok(tokens || client)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Counts a step-up login asking for `scopes`, or says why none may be made: at most
    /// `max` per scope set, then none until a cool-down has passed.
    pub(crate) fn allow_step_up(&self, scopes: &[String], max: u32) -> Result<(), String> {
        let wait = self.inner.options.cool_down.unwrap_or(DEFAULT_COOL_DOWN);
        self.inner
            .step_ups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(scopes, max, wait, Instant::now())
    }

    /// rmcp's client, created (with discovery and the stored identity) on first use.
    pub(crate) async fn client(&self) -> Result<&AuthClient<reqwest::Client>, OAuthError> {
        self.inner
            .client
            .get_or_try_init(|| async {
                let settings = &self.inner.settings;
                let mut manager = discovery::manager(settings).await?;
                manager.set_credential_store(self.inner.store.clone());
                if let Some(web) = &self.inner.web {
                    // Web logins can be started again and again; keep their PKCE states bounded.
                    manager.set_state_store(web.states.clone());
                }
                let found = discovery::discover(&manager, settings, None).await?;
                *self
                    .inner
                    .just_discovered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), found.clone()));
                self.adopt(&mut manager, found, None).await?;
                // A placeholder: `AuthorizedClient` hands each request the transport's own
                // client; built in the one place clients are, like every other.
                let client = crate::support::http_client::upstream_transport();
                Ok(AuthClient::new(client, manager))
            })
            .await
    }

    /// Runs a login unless one is no longer needed; see [`LoginRequest`].
    pub(crate) async fn login(&self, request: LoginRequest) -> Result<(), OAuthError> {
        let _one_at_a_time = self.inner.login_lock.lock().await;
        let client = self.client().await.inspect_err(|e| self.failed(e, false))?;
        if let Some(seen) = request.seen_generation
            && seen != self.generation()
        {
            return Ok(());
        }
        if !request.force && request.scopes.is_none() && request.seen_generation.is_none() {
            // Another caller may have finished a login while this one waited for the lock.
            if let TokenCheck::Valid = self.check_tokens(client).await {
                self.authorized();
                return Ok(());
            }
        }
        if !request.force
            && let Some(e) = self.cooling_down()
        {
            return Err(e);
        }
        let prompted = AtomicBool::new(false);
        let interrupted = Interrupted(self);
        let result = match self.inner.settings.grant {
            Grant::ClientCredentials => self.client_credentials(client).await,
            Grant::AuthorizationCode => self.interactive(client, &request, &prompted).await,
        };
        std::mem::forget(interrupted);
        match &result {
            Ok(()) => {
                self.inner.generation.fetch_add(1, Ordering::SeqCst);
                self.authorized();
                tracing::info!("server '{}': OAuth login complete", self.server());
            }
            Err(e) => {
                tracing::warn!("{e}");
                // Only a failure after the user was asked imposes a wait: retrying at once
                // would open another browser window.
                self.failed(e, prompted.load(Ordering::SeqCst));
            }
        }
        result
    }

    /// Drops a registration the server no longer knows (`invalid_client`), so the next
    /// login registers again; a configured client cannot be replaced, so that is an error.
    pub(crate) async fn client_rejected(&self) -> Result<(), OAuthError> {
        let settings = &self.inner.settings;
        if let Some(id) = &settings.client_id {
            let e = OAuthError::Token {
                server: settings.server.clone(),
                message: format!(
                    "the authorization server rejected client '{id}' (invalid_client); check \
                     oauth.client_id and oauth.client_secret"
                ),
            };
            self.failed(&e, false);
            return Err(e);
        }
        tracing::warn!(
            "server '{}': the authorization server no longer knows mcpo's OAuth client \
             (invalid_client); registering again",
            settings.server
        );
        let _ = self.inner.store.clear_tokens().await;
        self.inner
            .store
            .clear_registration()
            .await
            .map_err(|e| self.storage(e))?;
        Ok(())
    }

    async fn check_tokens(&self, client: &AuthClient<reqwest::Client>) -> TokenCheck {
        let manager = client.auth_manager.lock().await;
        let mut result = manager.get_access_token().await;
        if matches!(&result, Err(AuthError::CredentialStoreError(m)) if m == REFRESHED_ELSEWHERE) {
            // Another process refreshed while this one waited for the lock: its tokens are
            // the stored ones now.
            result = manager.get_access_token().await;
        }
        if let Err(AuthError::TokenRefreshFailed(m)) = &result
            && !m.contains("invalid_client")
        {
            // Often a pooled connection the server closed (it restarted); one more try.
            tokio::time::sleep(Duration::from_millis(300)).await;
            result = manager.get_access_token().await;
        }
        match result {
            Ok(_) => TokenCheck::Valid,
            Err(AuthError::AuthorizationRequired | AuthError::TokenRefreshRejected(_)) => {
                TokenCheck::NeedLogin
            }
            // Tokens stored without a usable client (the registration was lost).
            Err(AuthError::InternalError(_)) => TokenCheck::NeedLogin,
            Err(AuthError::TokenRefreshFailed(m)) if m.contains("invalid_client") => {
                TokenCheck::ClientRejected
            }
            Err(e) => TokenCheck::Failed(OAuthError::Token {
                server: self.server().to_owned(),
                message: format!("refreshing the access token failed: {e}"),
            }),
        }
    }

    /// Installs discovered metadata and the client identity in `manager`; registers a new
    /// client when `register` gives the scopes to register with and none is usable.
    async fn adopt(
        &self,
        manager: &mut AuthorizationManager,
        found: Discovered,
        register: Option<&[String]>,
    ) -> Result<(), OAuthError> {
        let settings = &*self.settings().await;
        let mut metadata = found.metadata;
        let identity: Option<Identity> = match settings.grant {
            Grant::ClientCredentials => None,
            Grant::AuthorizationCode => match register::configured(settings, &metadata) {
                Some(id) => Some(id),
                None => match register::stored(
                    self.inner
                        .store
                        .load_registration()
                        .await
                        .map_err(|e| self.storage(e))?,
                    settings,
                    &metadata,
                    register,
                ) {
                    Some(id) => Some(id),
                    None => match register {
                        Some(scopes) => {
                            let reg = register::register(
                                &discovery::http_client(settings),
                                settings,
                                &metadata,
                                scopes,
                            )
                            .await?;
                            self.inner
                                .store
                                .save_registration(&reg)
                                .await
                                .map_err(|e| self.storage(e))?;
                            Some(register::from_registration(&reg))
                        }
                        None => None,
                    },
                },
            },
        };
        // rmcp picks HTTP Basic unless the server offers only client_secret_post; narrow
        // what it sees to the method this client was registered (or configured) with.
        if let Some(method) = identity.as_ref().and_then(|i| i.auth_method.as_deref())
            && matches!(method, "client_secret_basic" | "client_secret_post")
        {
            metadata.additional_fields.insert(
                "token_endpoint_auth_methods_supported".to_owned(),
                serde_json::json!([method]),
            );
        }
        let issuer = metadata.issuer.clone();
        manager.set_metadata(metadata);
        let expected_client = match &identity {
            Some(id) => {
                manager
                    .configure_client(id.config.clone())
                    .map_err(|e| OAuthError::Login {
                        server: settings.server.clone(),
                        message: e.to_string(),
                    })?;
                Some(id.client_id().to_owned())
            }
            None => settings.client_id.clone(),
        };
        // Tokens of another client or authorization server are of no use here; but a login
        // (`register`) keeps them in use until its own arrive (a step-up may be refused).
        if register.is_none()
            && let Some(stored) = self
                .inner
                .store
                .load_tokens()
                .await
                .map_err(|e| self.storage(e))?
        {
            let other_client = expected_client.as_deref() != Some(stored.client_id.as_str());
            let other_issuer =
                issuer.is_some() && stored.issuer.is_some() && stored.issuer != issuer;
            if other_client || other_issuer {
                tracing::info!(
                    "server '{}': discarding stored OAuth tokens of another client or \
                     authorization server",
                    settings.server
                );
                self.inner
                    .store
                    .clear_tokens()
                    .await
                    .map_err(|e| self.storage(e))?;
            }
        }
        Ok(())
    }

    fn cooling_down(&self) -> Option<OAuthError> {
        let (reason, retry_after) = self.record().cooling_down(Instant::now())?;
        Some(OAuthError::CoolingDown {
            server: self.server().to_owned(),
            reason,
            retry_after,
        })
    }

    fn authorized(&self) {
        self.update_login(LoginRecord::authorized);
    }

    /// A login is under way; `url` is where the user signs in, once known.
    fn pending(&self, url: Option<String>) {
        self.update_login(|record| record.pending(url));
    }

    /// Records a failed attempt; `cool_down`: the user was asked, so a wait is imposed.
    fn failed(&self, e: &OAuthError, cool_down: bool) {
        if let OAuthError::CoolingDown { .. } | OAuthError::LoginRequired { .. } = e {
            return;
        }
        self.inner.failures_total.fetch_add(1, Ordering::Relaxed);
        let base = self.inner.options.cool_down.unwrap_or(DEFAULT_COOL_DOWN);
        let cool_down = cool_down.then_some(base);
        self.update_login(|record| record.failed(e.to_string(), cool_down, Instant::now()));
    }

    /// Changes the login record and publishes the new state to [`Self::watch_login`].
    fn update_login(&self, change: impl FnOnce(&mut LoginRecord)) {
        let mut record = self.record();
        change(&mut record);
        let state = record.state(Instant::now());
        self.inner.login_tx.send_if_modified(|published| {
            let changed = *published != state;
            if changed {
                *published = state;
            }
            changed
        });
    }

    fn record(&self) -> std::sync::MutexGuard<'_, LoginRecord> {
        self.inner.login.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn login_error(&self, message: String) -> OAuthError {
        OAuthError::Login {
            server: self.server().to_owned(),
            message,
        }
    }

    fn storage(&self, e: StoreError) -> OAuthError {
        let file = self
            .inner
            .store
            .tokens_path()
            .and_then(|p| p.parent().map(|d| format!("{}: ", d.display())))
            .unwrap_or_default();
        OAuthError::Storage {
            server: self.server().to_owned(),
            message: format!("{file}{e}"),
        }
    }
}

/// Leaves a clear state behind when a login is abandoned half-way (its future dropped:
/// the server was removed, the daemon is stopping).
struct Interrupted<'a>(&'a Authorizer);

impl Drop for Interrupted<'_> {
    fn drop(&mut self) {
        self.0.update_login(LoginRecord::interrupted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::settings::tests_support::server;

    #[test]
    fn login_changes_are_pushed_to_watchers() {
        let authorizer =
            Authorizer::new(&server(serde_json::json!({})), AuthOptions::default()).unwrap();
        let mut login = authorizer.watch_login();
        assert_eq!(*login.borrow_and_update(), LoginState::Unknown);
        let url = Some("https://as.example/authorize".to_owned());
        authorizer.pending(url.clone());
        assert!(login.has_changed().unwrap());
        assert_eq!(
            *login.borrow_and_update(),
            LoginState::Pending { url: url.clone() }
        );
        // The same state again wakes nobody.
        authorizer.pending(url);
        assert!(!login.has_changed().unwrap());
        drop(Interrupted(&authorizer));
        assert!(matches!(
            *login.borrow_and_update(),
            LoginState::Failed { .. }
        ));
        authorizer.authorized();
        assert_eq!(authorizer.state(), LoginState::Authorized);
        assert_eq!(*login.borrow_and_update(), LoginState::Authorized);
    }
}
