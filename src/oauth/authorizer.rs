//! [`Authorizer`]: the OAuth state of one upstream, kept across reconnects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::auth::{
    AuthClient, AuthError, AuthorizationManager, ClientCredentialsConfig, StateStore,
    StoredAuthorizationState,
};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use super::assertion;
use super::browser;
use super::callback::{self, CallbackListener, Page, Params, PasteSource};
use super::discovery::{self, Discovered};
use super::error::OAuthError;
use super::options::AuthOptions;
use super::register::{self, Identity};
use super::settings::{Grant, Settings};
use super::store::Store;
use crate::config::ServerConfig;

/// Default first cool-down after a login the user did not complete.
const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(60);
/// How long discovery done when the client was created stands in for a login's own.
const JUST_DISCOVERED: Duration = Duration::from_secs(30);
/// Longest cool-down, reached by doubling.
const MAX_COOL_DOWN: Duration = Duration::from_secs(15 * 60);

/// Where a server's login stands, for status pages and 503 bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginState {
    /// Nothing checked yet.
    Unknown,
    /// Tokens are there and were usable at the last check.
    Authorized,
    /// A login is under way; `url` is where the user signs in, once known.
    Pending { url: Option<String> },
    /// The last attempt failed. `retry_after`: time left before mcpo will start another
    /// interactive login on its own (`None`: it may retry at any time).
    Failed {
        reason: String,
        retry_after: Option<Duration>,
    },
}

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
    status: Mutex<Status>,
    /// Counts successful logins, so a request that was refused can tell whether a newer
    /// login already happened while it waited.
    generation: AtomicU64,
    /// Step-up logins per scope set, kept across requests and reconnects.
    step_ups: Mutex<StepUps>,
    /// Failed authorization attempts (not counting cool-down refusals), for `/metrics`.
    failures_total: AtomicU64,
    /// Multi-user mode: logins come through mcpo's own web routes, never a browser it opens.
    web: Option<WebMode>,
}

/// The web-login side of a multi-user caller's authorizer.
#[derive(Default)]
struct WebMode {
    /// The callback URL of the latest login (`<public>/oauth/{server}/callback`); the client
    /// registration is made for it, and registered again when it changes.
    redirect: Mutex<Option<String>>,
    /// Woken when a web login completes, so a session waiting for one connects at once.
    signed_in: tokio::sync::Notify,
}

/// What mcpo knows about a caller's tokens, for `/oauth/{server}/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenStatus {
    /// Tokens are stored and usable: the access token has not expired, or it can be refreshed.
    pub authenticated: bool,
    /// When the access token expires (seconds since the Unix epoch), if the server said.
    pub expires_at: Option<u64>,
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

/// Step-up logins made for one scope set.
#[derive(Default)]
struct StepUps {
    /// The scope set asked for (sorted).
    scopes: Vec<String>,
    count: u32,
    /// Once `count` reached the limit: no step-up for this scope set before then.
    cool_down_until: Option<Instant>,
}

struct Status {
    state: LoginState,
    cool_down_until: Option<Instant>,
    failures: u32,
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

/// What the flow makes of one authorization response.
enum Verdict {
    /// Not for this login (or not usable): answer the browser, keep waiting.
    Ignore(String),
    Done(Result<(), OAuthError>),
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
        };
        let web = options.user.is_some().then(WebMode::default);
        Ok(Authorizer {
            inner: Arc::new(Inner {
                settings,
                options,
                store,
                client: OnceCell::new(),
                just_discovered: Mutex::new(None),
                login_lock: tokio::sync::Mutex::new(()),
                status: Mutex::new(Status {
                    state: LoginState::Unknown,
                    cool_down_until: None,
                    failures: 0,
                }),
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
            TokenCheck::ClientRejected => self.client_rejected().map(|()| false),
            TokenCheck::Failed(e) => {
                self.failed(&e, false);
                Err(e)
            }
        }
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
        let status = self.status();
        match &status.state {
            LoginState::Failed { reason, .. } => LoginState::Failed {
                reason: reason.clone(),
                retry_after: status
                    .cool_down_until
                    .and_then(|until| until.checked_duration_since(Instant::now()))
                    .filter(|left| !left.is_zero()),
            },
            other => other.clone(),
        }
    }

    /// The server this authorizer is for.
    pub fn server(&self) -> &str {
        &self.inner.settings.server
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The token file (`None` with memory storage).
    pub fn token_file(&self) -> Option<&std::path::Path> {
        self.inner.store.tokens_path()
    }

    /// A fresh interactive login now (`mcpo auth login`).
    pub(crate) async fn login_now(&self) -> Result<(), OAuthError> {
        self.login(LoginRequest {
            force: true,
            ..Default::default()
        })
        .await
    }

    /// Forgets stored tokens and registration (`mcpo auth logout`).
    pub(crate) fn forget(&self) -> Result<bool, OAuthError> {
        let tokens = self
            .inner
            .store
            .clear_tokens()
            .map_err(|e| self.storage(e))?;
        let client = self
            .inner
            .store
            .clear_registration()
            .map_err(|e| self.storage(e))?;
        Ok(tokens || client)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Counts a step-up login asking for `scopes`, or says why none may be made: at most
    /// `max` per scope set, then none until a cool-down has passed.
    pub(crate) fn allow_step_up(&self, scopes: &[String], max: u32) -> Result<(), String> {
        let mut key = scopes.to_vec();
        key.sort();
        key.dedup();
        let mut step_ups = self
            .inner
            .step_ups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if step_ups.scopes != key || step_ups.cool_down_until.is_some_and(|until| until <= now) {
            *step_ups = StepUps {
                scopes: key,
                count: 0,
                cool_down_until: None,
            };
        }
        if step_ups.count >= max {
            let left = step_ups
                .cool_down_until
                .map(|until| until.saturating_duration_since(now).as_secs())
                .unwrap_or_default();
            return Err(format!(
                "the server still answers 403 insufficient_scope after {max} step-up logins \
                 for scope '{}'; no new login for {left} s",
                step_ups.scopes.join(" ")
            ));
        }
        step_ups.count += 1;
        if step_ups.count >= max {
            let wait = self.inner.options.cool_down.unwrap_or(DEFAULT_COOL_DOWN);
            step_ups.cool_down_until = Some(now + wait.max(Duration::from_secs(1)));
        }
        Ok(())
    }

    /// rmcp's client, created (with discovery and the stored identity) on first use.
    pub(crate) async fn client(&self) -> Result<&AuthClient<reqwest::Client>, OAuthError> {
        self.inner
            .client
            .get_or_try_init(|| async {
                let settings = &self.inner.settings;
                let mut manager = discovery::manager(settings).await?;
                manager.set_credential_store(self.inner.store.clone());
                if self.inner.web.is_some() {
                    // Web logins can be started again and again; keep their PKCE states bounded.
                    manager.set_state_store(BoundedStates::default());
                }
                let found = discovery::discover(&manager, settings, None).await?;
                *self
                    .inner
                    .just_discovered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), found.clone()));
                self.adopt(&mut manager, found, None).await?;
                Ok(AuthClient::new(reqwest::Client::new(), manager))
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
    pub(crate) fn client_rejected(&self) -> Result<(), OAuthError> {
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
        let _ = self.inner.store.clear_tokens();
        self.inner
            .store
            .clear_registration()
            .map_err(|e| self.storage(e))?;
        Ok(())
    }

    async fn check_tokens(&self, client: &AuthClient<reqwest::Client>) -> TokenCheck {
        let manager = client.auth_manager.lock().await;
        let mut result = manager.get_access_token().await;
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
        let settings = &*self.settings();
        let mut metadata = found.metadata;
        let identity: Option<Identity> = match settings.grant {
            Grant::ClientCredentials => None,
            Grant::AuthorizationCode => match register::configured(settings, &metadata) {
                Some(id) => Some(id),
                None => match register::stored(
                    self.inner.store.load_registration(),
                    settings,
                    &metadata,
                    register,
                ) {
                    Some(id) => Some(id),
                    None => match register {
                        Some(scopes) => {
                            let reg = register::register(
                                &discovery::http_client(),
                                settings,
                                &metadata,
                                scopes,
                            )
                            .await?;
                            self.inner
                                .store
                                .save_registration(&reg)
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
            && let Some(stored) = self.inner.store.load_tokens()
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
                    .map_err(|e| self.storage(e))?;
            }
        }
        Ok(())
    }

    /// The authorization-code login: discovery, identity, URL, browser or paste, callback,
    /// code exchange.
    async fn interactive(
        &self,
        client: &AuthClient<reqwest::Client>,
        request: &LoginRequest,
        prompted: &AtomicBool,
    ) -> Result<(), OAuthError> {
        let settings = &self.inner.settings;
        let server = settings.server.clone();
        if self.inner.web.is_some() {
            // Nobody is at this machine's screen: the user signs in through the login link
            // the next tool call answers with.
            self.set_state(LoginState::Pending { url: None });
            return Err(OAuthError::LoginRequired { server });
        }
        let lock = if settings.use_loopback {
            callback::port_lock(settings.callback_port)
        } else {
            callback::stdin_lock()
        };
        self.set_state(LoginState::Pending { url: None });
        let _port = lock.lock_owned().await;
        // Listen before the browser can come back.
        let mut listener = if settings.use_loopback {
            Some(
                CallbackListener::bind(settings.callback_port)
                    .await
                    .map_err(|e| OAuthError::CallbackPort {
                        server: server.clone(),
                        port: settings.callback_port,
                        message: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        let (url, expected_state) = match self.prepare_login(client, request).await {
            Ok(prepared) => prepared,
            Err(e) => {
                if let Some(listener) = listener {
                    listener.close().await;
                }
                return Err(e);
            }
        };
        prompted.store(true, Ordering::SeqCst);
        self.set_state(LoginState::Pending {
            url: Some(url.clone()),
        });
        tracing::info!(
            "server '{server}': waiting up to {} s for the OAuth login",
            settings.login_timeout.as_secs()
        );
        browser::print_url(&server, &url, settings.use_loopback);
        let wait = async {
            match listener.as_mut() {
                Some(listener) => {
                    if let Err(why) = browser::open(&url, self.inner.options.browser.as_ref()).await
                    {
                        eprintln!(
                            "mcpo: {why}; open the URL above yourself. Waiting for the login..."
                        );
                    }
                    self.wait_for_callback(client, listener, &expected_state)
                        .await
                }
                None => self.wait_for_paste(client, &expected_state).await,
            }
        };
        let result = tokio::time::timeout(settings.login_timeout, wait).await;
        if let Some(listener) = listener {
            listener.close().await;
        }
        match result {
            Ok(done) => done,
            Err(_) => Err(OAuthError::TimedOut {
                server,
                timeout: settings.login_timeout,
            }),
        }
    }

    /// Discovery, client identity and the authorization URL; returns it with its `state`.
    async fn prepare_login(
        &self,
        client: &AuthClient<reqwest::Client>,
        request: &LoginRequest,
    ) -> Result<(String, String), OAuthError> {
        let settings = &self.inner.settings;
        let server = settings.server.clone();
        let mut manager = client.auth_manager.lock().await;
        let recent = self
            .inner
            .just_discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .filter(|(at, _)| request.challenge.is_none() && at.elapsed() < JUST_DISCOVERED)
            .map(|(_, found)| found);
        let found = match recent {
            Some(found) => found,
            None => discovery::discover(&manager, settings, request.challenge.as_deref()).await?,
        };
        let scopes = match (&request.scopes, &settings.scopes) {
            (Some(scopes), _) | (None, Some(scopes)) => scopes.clone(),
            (None, None) => manager.select_initial_scopes(&[]).await,
        };
        self.adopt(&mut manager, found, Some(&scopes)).await?;
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let url = manager
            .get_authorization_url(&refs)
            .await
            .map_err(|e| OAuthError::Login {
                server: server.clone(),
                message: e.to_string(),
            })?;
        let state = url::Url::parse(&url)
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or_else(|| OAuthError::Login {
                server: server.clone(),
                message: "the authorization URL has no state".to_owned(),
            })?;
        Ok((url, state))
    }

    async fn wait_for_callback(
        &self,
        client: &AuthClient<reqwest::Client>,
        listener: &mut CallbackListener,
        expected_state: &str,
    ) -> Result<(), OAuthError> {
        let server = self.server();
        loop {
            let Some(callback) = listener.next().await else {
                return Err(self.login_error("the callback listener stopped".to_owned()));
            };
            match self
                .consider(client, &callback.params, expected_state)
                .await
            {
                Verdict::Ignore(why) => {
                    let _ = callback.reply.send(Page::failure(
                        reqwest::StatusCode::BAD_REQUEST,
                        format!("{why} It was ignored; mcpo is still waiting for the login."),
                    ));
                }
                Verdict::Done(Ok(())) => {
                    let _ = callback.reply.send(Page::success(server));
                    return Ok(());
                }
                Verdict::Done(Err(e)) => {
                    let _ = callback.reply.send(Page::failure(
                        reqwest::StatusCode::BAD_REQUEST,
                        e.to_string(),
                    ));
                    return Err(e);
                }
            }
        }
    }

    async fn wait_for_paste(
        &self,
        client: &AuthClient<reqwest::Client>,
        expected_state: &str,
    ) -> Result<(), OAuthError> {
        let settings = &self.inner.settings;
        let source = self
            .inner
            .options
            .paste
            .clone()
            .unwrap_or(PasteSource::Stdin);
        eprintln!(
            "After you approve, the browser is sent to {}?code=... (the page may not load: \
             that is expected).\nPaste that whole address here and press Enter:",
            settings.redirect_uri()
        );
        loop {
            let Some(line) = source.next_line().await else {
                return Err(self.login_error(
                    "standard input closed before a callback URL was pasted; run `mcpo auth \
                     login` in a terminal"
                        .to_owned(),
                ));
            };
            if line.trim().is_empty() {
                continue;
            }
            let params = match callback::params_of_url(&line) {
                Ok(params) => params,
                Err(why) => {
                    eprintln!("mcpo: {why}");
                    continue;
                }
            };
            if !params.contains_key("code") && !params.contains_key("error") {
                return Err(self.login_error(
                    "the pasted URL has no `code` parameter: after approving, copy the whole \
                     address of the page the browser was sent to (it starts with the callback \
                     URL)"
                        .to_owned(),
                ));
            }
            match self.consider(client, &params, expected_state).await {
                Verdict::Ignore(why) => eprintln!("mcpo: {why} Paste the URL of the latest login:"),
                Verdict::Done(result) => return result,
            }
        }
    }

    /// Checks one authorization response and, when it carries this login's code, exchanges
    /// it for tokens.
    async fn consider(
        &self,
        client: &AuthClient<reqwest::Client>,
        params: &Params,
        expected_state: &str,
    ) -> Verdict {
        let state_ok = params
            .get("state")
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected_state.as_bytes())));
        if !state_ok {
            tracing::warn!(
                "server '{}': ignored an OAuth callback whose state does not match the login \
                 in progress",
                self.server()
            );
            return Verdict::Ignore(
                "This sign-in response does not belong to the login mcpo is waiting for \
                 (wrong or missing state)."
                    .to_owned(),
            );
        }
        if let Some(error) = params.get("error") {
            return Verdict::Done(Err(OAuthError::Denied {
                server: self.server().to_owned(),
                error: error.clone(),
                description: params.get("error_description").cloned(),
            }));
        }
        let Some(code) = params.get("code") else {
            return Verdict::Done(Err(self.login_error(
                "the authorization response has neither a code nor an error".to_owned(),
            )));
        };
        let issuer = params.get("iss").map(String::as_str);
        let manager = client.auth_manager.lock().await;
        // rmcp logs the code and the token response at debug level here.
        let exchanged = manager
            .exchange_code_for_token_with_issuer(code, expected_state, issuer)
            .with_subscriber(NoSubscriber::default())
            .await;
        match exchanged {
            Ok(_) => Verdict::Done(Ok(())),
            // rmcp keeps the PKCE verifier in this case, so the genuine response still works.
            Err(
                e @ (AuthError::AuthorizationServerMismatch { .. }
                | AuthError::AuthorizationServerMissingIssuer { .. }),
            ) => {
                tracing::warn!("server '{}': ignored an OAuth callback: {e}", self.server());
                Verdict::Ignore(format!(
                    "This sign-in response came from the wrong server ({e})."
                ))
            }
            Err(e) => Verdict::Done(Err(OAuthError::Token {
                server: self.server().to_owned(),
                message: format!("exchanging the authorization code failed: {e}"),
            })),
        }
    }

    /// The `client_credentials` grant: no user, no browser.
    async fn client_credentials(
        &self,
        client: &AuthClient<reqwest::Client>,
    ) -> Result<(), OAuthError> {
        let settings = &self.inner.settings;
        let mut manager = client.auth_manager.lock().await;
        let found = discovery::discover(&manager, settings, None).await?;
        let (resource, metadata) = (found.resource.clone(), found.metadata.clone());
        self.adopt(&mut manager, found, None).await?;
        let scopes = match &settings.scopes {
            Some(scopes) => scopes.clone(),
            None => manager.select_initial_scopes(&[]).await,
        };
        if let Some(key) = &settings.signing_key {
            let (store, http) = (&self.inner.store, discovery::http_client());
            let grant = (key, &metadata, scopes.as_slice(), resource.as_str());
            return assertion::client_credentials(&http, store, &mut manager, settings, grant)
                .await;
        }
        let (Some(client_id), Some(client_secret)) = (&settings.client_id, &settings.client_secret)
        else {
            return Err(
                self.login_error("client_credentials needs a client id and secret".to_owned())
            );
        };
        let config = ClientCredentialsConfig::ClientSecret {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            scopes,
            resource: Some(resource),
        };
        let token_error = |e: AuthError| OAuthError::Token {
            server: settings.server.clone(),
            message: e.to_string(),
        };
        manager
            .validate_client_credentials_metadata(&config)
            .map_err(token_error)?;
        manager
            .configure_client_credentials(&config)
            .map_err(token_error)?;
        manager
            .exchange_client_credentials(&config)
            .with_subscriber(NoSubscriber::default())
            .await
            .map_err(token_error)?;
        Ok(())
    }

    fn cooling_down(&self) -> Option<OAuthError> {
        let status = self.status();
        let left = status
            .cool_down_until?
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())?;
        let reason = match &status.state {
            LoginState::Failed { reason, .. } => reason.clone(),
            _ => "the last login did not complete".to_owned(),
        };
        Some(OAuthError::CoolingDown {
            server: self.server().to_owned(),
            reason,
            retry_after: left,
        })
    }

    fn authorized(&self) {
        let mut status = self.status();
        status.state = LoginState::Authorized;
        status.cool_down_until = None;
        status.failures = 0;
    }

    fn failed(&self, e: &OAuthError, cool_down: bool) {
        if let OAuthError::CoolingDown { .. } | OAuthError::LoginRequired { .. } = e {
            return;
        }
        self.inner.failures_total.fetch_add(1, Ordering::Relaxed);
        let base = self.inner.options.cool_down.unwrap_or(DEFAULT_COOL_DOWN);
        let mut status = self.status();
        if cool_down {
            let wait = base
                .saturating_mul(1 << status.failures.min(10))
                .min(MAX_COOL_DOWN.max(base));
            status.failures = status.failures.saturating_add(1);
            status.cool_down_until = Some(Instant::now() + wait);
        }
        status.state = LoginState::Failed {
            reason: e.to_string(),
            retry_after: None,
        };
    }

    fn set_state(&self, state: LoginState) {
        self.status().state = state;
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.inner.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn login_error(&self, message: String) -> OAuthError {
        OAuthError::Login {
            server: self.server().to_owned(),
            message,
        }
    }

    fn storage(&self, e: std::io::Error) -> OAuthError {
        let file = self
            .inner
            .store
            .tokens_path()
            .and_then(|p| p.parent())
            .map(|d| format!("{}: ", d.display()))
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
        let mut status = self.0.status();
        if let LoginState::Pending { .. } = status.state {
            status.state = LoginState::Failed {
                reason: "the login was interrupted".to_owned(),
                retry_after: None,
            };
        }
    }
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
    fn settings(&self) -> std::borrow::Cow<'_, Settings> {
        let Some(web) = &self.inner.web else {
            return std::borrow::Cow::Borrowed(&self.inner.settings);
        };
        let redirect = web
            .redirect
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .or_else(|| self.inner.store.load_registration().map(|r| r.redirect_uri));
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
    pub fn needs_login(&self) -> bool {
        match self.state() {
            // The last check (a connect, a refresh, a login) found usable tokens; a request
            // that finds otherwise moves the state to `Pending`. No file read per call.
            LoginState::Authorized => false,
            LoginState::Pending { .. } => true,
            _ => !self.token_status().authenticated,
        }
    }

    /// Whether the stored tokens look usable, and when the access token expires.
    pub fn token_status(&self) -> TokenStatus {
        let Some(stored) = self.inner.store.load_tokens() else {
            return TokenStatus {
                authenticated: false,
                expires_at: None,
            };
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
        TokenStatus {
            authenticated: has_access && (fresh || refreshable),
            expires_at,
        }
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
    async fn wait_for_web_login(&self, web: &WebMode) -> Result<(), OAuthError> {
        loop {
            let signed_in = web.signed_in.notified();
            tokio::pin!(signed_in);
            signed_in.as_mut().enable();
            if self.stored_tokens_usable().await? {
                return Ok(());
            }
            self.set_state(LoginState::Pending { url: None });
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
/// few, and states older than the login window are dropped.
#[derive(Default)]
pub(crate) struct BoundedStates {
    states: Mutex<HashMap<String, StoredAuthorizationState>>,
}

#[async_trait::async_trait]
impl StateStore for BoundedStates {
    async fn save(&self, csrf: &str, state: StoredAuthorizationState) -> Result<(), AuthError> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let oldest_kept = unix_now().saturating_sub(WEB_LOGIN_TTL.as_secs());
        states.retain(|_, s| s.created_at >= oldest_kept);
        while states.len() >= MAX_STATES_PER_USER {
            let Some(oldest) = states
                .iter()
                .min_by_key(|(_, s)| s.created_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            states.remove(&oldest);
        }
        states.insert(csrf.to_owned(), state);
        Ok(())
    }

    async fn load(&self, csrf: &str) -> Result<Option<StoredAuthorizationState>, AuthError> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        Ok(states.get(csrf).cloned())
    }

    async fn delete(&self, csrf: &str) -> Result<(), AuthError> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(csrf);
        Ok(())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
