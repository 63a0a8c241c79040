//! A multi-user server: every caller gets an endpoint of their own (own upstream session, own
//! catalog, own OAuth tokens when the server has an `oauth` block), started on first use, closed
//! after the idle timeout, at most `max_sessions` alive.
//!
//! What callers without a session see is the server's **last known tools** (from any user's
//! session, the discovery session, or the tool cache file): Open WebUI fetches admin-registered
//! specs without credentials. Without OAuth a discovery session learns the tool list at start
//! and is closed once it has; with OAuth there is nobody to sign in for a shared session, so
//! there is none: users sign in through the web login ([`WebLogins`]) and the documents carry a
//! `{server}_login` operation until a user's own session brings the tools.
//!
//! With `user_secrets` each user's session starts with their own secrets and identity filled
//! into the config's templates (`secrets.rs`); a server with required secrets has no
//! discovery session either, and its documents carry a `{server}_credentials` operation.
//!
//! With `per_user_tools` (servers whose tool list differs per user) a list one user's session
//! showed is never shown to anyone else: the last known tools come from the discovery session
//! only (with OAuth: just the login operation), and nothing goes to the tool cache.

use std::sync::{Arc, Mutex};

use crate::config::{MultiUser, ServerConfig};
use crate::oauth::{Authorizer, OAuthCounters, WebLogins};
use crate::store::{RecordSecrets, Secrets, StoreError};
use crate::support::caller::{Caller, Profile};
use crate::upstream::{Stats, Status, Upstream, UpstreamOptions};

use super::catalog::{self, Catalog, LastCatalog, Links, SpecContext};
use super::credentials::Credentials;
use super::endpoint::Endpoint;
use super::pool::UserPool;
use super::tool_cache::SharedTools;

mod secrets;

/// Why a user gets no endpoint.
#[derive(Debug, thiserror::Error)]
pub enum NoEndpoint {
    /// Their stored secrets could not be read (a record that does not open, a shared store
    /// that does not answer): a 503 naming the store, never "no secrets".
    #[error("{0}")]
    Store(StoreError),
    /// Their OAuth client cannot be had.
    #[error("{0}")]
    Client(String),
}

/// Why a user's secrets were not taken.
#[derive(Debug, thiserror::Error)]
pub enum SecretsNotTaken {
    /// The upstream did not accept them (or no session could be tried): nothing was stored.
    #[error("{0}")]
    Refused(String),
    /// The upstream accepted them but the store did not take them: the session that came up
    /// with them is closed, and nothing was stored.
    #[error("{0}")]
    NotSaved(StoreError),
}

/// The per-user side of a multi-user server.
pub struct PerUser {
    config: ServerConfig,
    pub settings: MultiUser,
    options: UpstreamOptions,
    spec: Arc<SpecContext>,
    pool: UserPool<Endpoint>,
    /// The last tools any session of this server showed.
    last: Arc<LastCatalog>,
    /// Learns the tool list before anyone calls; closed once it has. `None` with OAuth.
    discovery: Option<Endpoint>,
    /// Multi-user OAuth: every user's own authorizer, login tickets and logins in progress,
    /// or why they cannot work (then nobody is served: never without the OAuth asked for).
    logins: Option<Result<Arc<WebLogins>, String>>,
    /// `user_secrets`: what users have supplied, and the links to the page where they do.
    credentials: Option<Arc<Credentials>>,
}

impl PerUser {
    /// Starts the discovery session (not for OAuth servers) and the idle sweep.
    pub(super) fn start(
        config: ServerConfig,
        settings: MultiUser,
        options: UpstreamOptions,
        spec: Arc<SpecContext>,
        stats: Arc<Stats>,
    ) -> Arc<Self> {
        let name = config.name.clone();
        let last: Arc<LastCatalog> = Arc::new(Mutex::new(None));
        let logins = config.oauth.as_ref().map(|_| {
            WebLogins::new(&config, settings.max_sessions.max(32) * 2)
                .map(Arc::new)
                .map_err(|e| {
                    tracing::error!(server = %name, "{e}");
                    e.to_string()
                })
        });
        let oauth = config.oauth.is_some();
        let credentials =
            Credentials::new(&config, Arc::new(RecordSecrets::default())).map(Arc::new);
        // Without a user's secrets there is nobody to start a shared discovery session as.
        let anonymous_session = !oauth && !settings.requires_secrets();
        // The tools of the last run, if any, until a session shows the current ones; an OAuth
        // server's document has at least its login operation.
        // Not with `per_user_tools`: the file may hold a user's list from a run without it.
        let cached = spec
            .tool_cache
            .as_ref()
            .filter(|_| !settings.per_user_tools)
            .and_then(|c| c.load(&config));
        if cached.is_some() || !anonymous_session {
            let tools = cached.unwrap_or_default();
            let links = Links::of(&config);
            let built = catalog::build(&name, &tools, None, &spec, links, (config.expose, None));
            *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(built));
        }
        let discovery = anonymous_session.then(|| {
            let upstream = Upstream::start(config.clone(), options.clone(), None, stats);
            Endpoint::new(upstream, last.clone(), spec.clone())
        });
        let server = Arc::new(Self {
            pool: UserPool::new(settings.max_sessions, settings.session_timeout),
            config,
            settings,
            options,
            spec,
            last,
            discovery,
            logins,
            credentials,
        });
        if server.discovery.is_some() {
            tokio::spawn(close_discovery_when_known(Arc::downgrade(&server)));
        }
        // Not with `per_user_tools`, like the file: a shared list may be a user's own.
        if let Some(shared) = SharedTools::installed()
            && !server.settings.per_user_tools
        {
            tokio::spawn(follow_shared_tools(Arc::downgrade(&server), shared));
        }
        tokio::spawn(sweep_idle(
            Arc::downgrade(&server),
            server.pool.sweep_interval(),
        ));
        server
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Multi-user OAuth: the web logins of this server.
    pub fn logins(&self) -> Option<&Arc<WebLogins>> {
        self.logins.as_ref()?.as_ref().ok()
    }

    /// `user`'s own OAuth client (multi-user OAuth), or why there is none.
    fn authorizer(&self, user: &Caller) -> Result<Option<Authorizer>, String> {
        match &self.logins {
            None => Ok(None),
            Some(Ok(web)) => web.authorizer(user).map(Some).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// Whether `user` has to sign in (through the web login) before they can be served; the
    /// error says why their OAuth client cannot be had.
    pub async fn needs_login(&self, user: &Caller) -> Result<bool, String> {
        match self.authorizer(user)? {
            Some(authorizer) => authorizer.needs_login().await.map_err(|e| e.to_string()),
            None => Ok(false),
        }
    }

    /// Why `user`'s stored credentials cannot be used: a sealed file that does not open with
    /// the store key (it is neither replaced by a login nor deleted). Looked at only while
    /// their authorizer has not found usable tokens, so a signed-in call reads no file.
    pub async fn store_unreadable(&self, user: &Caller) -> Option<String> {
        let authorizer = self.authorizer(user).ok()??;
        if authorizer.state() == crate::oauth::LoginState::Authorized {
            return None;
        }
        authorizer.check_store().await.err().map(|e| e.to_string())
    }

    /// The endpoint serving `user`: their own session, started on first use. Sessions evicted
    /// to keep within `max_sessions` are closed in the background.
    pub async fn endpoint(&self, user: &Caller) -> Result<Arc<Endpoint>, NoEndpoint> {
        self.endpoint_as(user, &Profile::default()).await
    }

    /// [`Self::endpoint`]; a new session's templates are filled in with `user`'s id, `profile`
    /// and stored secrets (see `secrets.rs`).
    pub async fn endpoint_as(
        &self,
        user: &Caller,
        profile: &Profile,
    ) -> Result<Arc<Endpoint>, NoEndpoint> {
        self.endpoint_with(user, profile, None).await
    }

    /// [`Self::endpoint_as`] with `user`'s `secrets` already read (`None`: read them from the
    /// store if a new session needs them).
    pub async fn endpoint_with(
        &self,
        user: &Caller,
        profile: &Profile,
        secrets: Option<Secrets>,
    ) -> Result<Arc<Endpoint>, NoEndpoint> {
        if let Some(live) = self.pool.get(user) {
            return Ok(live);
        }
        let secrets = match (secrets, &self.credentials) {
            (None, Some(credentials)) => credentials.load(user).await.map_err(NoEndpoint::Store)?,
            (secrets, _) => secrets,
        };
        if let (Some(credentials), Some(secrets)) = (&self.credentials, &secrets) {
            credentials.started_with(user, secrets);
        }
        let config = self
            .config_for(user, profile, secrets)
            .await
            .map_err(NoEndpoint::Store)?;
        let authorizer = self.authorizer(user).map_err(NoEndpoint::Client)?;
        let options = self.options.clone();
        Ok(self.insert(user, || match self.settings.per_user_tools {
            // Every session shows the same list: a new one takes the last a live session of
            // this run showed instead of asking for it (`tools/list_changed` still lists).
            false => Upstream::start_with_known_tools(
                config,
                options,
                authorizer,
                Arc::default(),
                known_tools(&self.last),
            ),
            true => Upstream::start(config, options, authorizer, Arc::default()),
        }))
    }

    /// `user`'s endpoint, made with `upstream` if they have none.
    fn insert(&self, user: &Caller, upstream: impl FnOnce() -> Upstream) -> Arc<Endpoint> {
        let (endpoint, evicted) = self.pool.get_or_create(user, || {
            // With `per_user_tools` a user's list stays theirs: their endpoint publishes into a
            // slot of its own, never the server's last known tools.
            let last = if self.settings.per_user_tools {
                Arc::default()
            } else {
                self.last.clone()
            };
            Endpoint::new(upstream(), last, self.spec.clone())
        });
        for e in evicted {
            tracing::info!(server = %self.name(), "closing the least recently used user session (max_sessions reached)");
            tokio::spawn(async move { e.shutdown().await });
        }
        endpoint
    }

    /// `user_secrets`: what users supplied, and their links.
    pub fn credentials(&self) -> Option<&Arc<Credentials>> {
        self.credentials.as_ref()
    }

    /// Whether the last known tools came from a live session of this replica (not from the
    /// tool cache or the shared store).
    fn shows_live_tools(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|c| c.source.is_some())
    }

    /// Whether `user` has a session now.
    pub fn has_session(&self, user: &Caller) -> bool {
        self.pool.get(user).is_some()
    }

    /// The endpoint serving `user` if they can be served without signing in first: always for
    /// servers without OAuth; with OAuth only when the user has usable tokens (nobody's session
    /// is started just to wait for a login), and with `user_secrets` only when they supplied
    /// theirs.
    pub async fn signed_in_endpoint(&self, user: &Caller) -> Option<Arc<Endpoint>> {
        if self.needs_login(user).await.unwrap_or(true) {
            return None;
        }
        if let Some(credentials) = &self.credentials
            && !self.has_session(user)
            && credentials.needed(user).await.unwrap_or(true)
        {
            return None;
        }
        self.endpoint(user)
            .await
            .inspect_err(|e| tracing::error!(server = %self.name(), "{e}"))
            .ok()
    }

    /// Marks `user`'s session active (the end of a long call is activity too).
    pub fn touch(&self, user: &Caller) {
        self.pool.touch(user);
    }

    /// Live user sessions.
    pub fn sessions(&self) -> usize {
        self.pool.len()
    }

    /// The tools callers without a session of their own are shown: the discovery session's
    /// while it is up, else the last known ones.
    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        if let Some(Ok(live)) = self.discovery.as_ref().map(Endpoint::catalog) {
            return Some(live.catalog.clone());
        }
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The discovery session's status, while the tool list is not known yet.
    pub fn discovery_status(&self) -> Option<Status> {
        self.discovery.as_ref().map(|d| d.upstream.status())
    }

    /// A receiver of the discovery session's status changes (start-up summary).
    pub fn subscribe_discovery(&self) -> Option<tokio::sync::watch::Receiver<Status>> {
        self.discovery.as_ref().map(|d| d.upstream.subscribe())
    }

    /// OAuth logins, refreshes and failures summed over the users (forgotten ones included).
    pub fn oauth_counters(&self) -> Option<OAuthCounters> {
        self.logins().map(|web| web.counters())
    }

    /// Stops the discovery session and every user session.
    pub async fn shutdown(&self) {
        let users = self.pool.drain();
        let users = futures::future::join_all(users.iter().map(|e| e.shutdown()));
        let discovery = async {
            if let Some(d) = &self.discovery {
                d.shutdown().await;
            }
        };
        futures::future::join(discovery, users).await;
    }
}

/// The rule for a new user's session of a server without `per_user_tools` (its tool list is
/// the same for everyone): it takes the tool list a live session of this run last showed
/// (the discovery session's or another user's) instead of asking with `tools/list`; before
/// any session has shown one (a list from the tool cache file is not used), it lists them.
fn known_tools(last: &Arc<LastCatalog>) -> crate::upstream::KnownTools {
    let last = last.clone();
    Arc::new(move || {
        let last = last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()?.source.as_ref().map(|s| s.tools.clone())
    })
}

/// Once the discovery session is up, its catalog becomes the last known tools (and goes to the
/// tool cache), and the session is closed: users have their own.
async fn close_discovery_when_known(server: std::sync::Weak<PerUser>) {
    let Some(mut status) = server.upgrade().and_then(|s| s.subscribe_discovery()) else {
        return;
    };
    let ready = status
        .wait_for(|s| matches!(s, Status::Ready(_) | Status::Stopped))
        .await
        .map(|s| s.clone());
    let (Ok(Status::Ready(session)), Some(server)) = (ready, server.upgrade()) else {
        return;
    };
    if let Some(discovery) = &server.discovery {
        discovery.catalog_for(session);
        tracing::info!(server = %server.name(), "tool list learned; closing the discovery session");
        discovery.shutdown().await;
    }
}

/// How often a replica whose sessions have shown no tool list reads the shared one.
const SHARED_TOOLS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// With a shared store: until a live session of this replica shows the tool list, what
/// callers without a session see is the list the shared store holds (another replica's
/// session saw it), read now and every [`SHARED_TOOLS_EVERY`], so a replica that started
/// later, or whose users never called, shows the same spec as the others. A store that does
/// not answer leaves the list as it is (the file cache's, or none).
async fn follow_shared_tools(server: std::sync::Weak<PerUser>, shared: &'static SharedTools) {
    let mut applied: Option<Vec<rmcp::model::Tool>> = None;
    loop {
        // Not held across the read: a reload or shutdown drops the server at once.
        let config = match server.upgrade() {
            Some(server) if !server.shows_live_tools() => Some(server.config.clone()),
            Some(_) => None,
            None => return,
        };
        let fetched = match &config {
            Some(config) => shared.load(config).await,
            None => None,
        };
        if let Some(tools) = fetched.filter(|t| applied.as_ref() != Some(t)) {
            let Some(server) = server.upgrade() else {
                return;
            };
            let built = catalog::build(
                server.name(),
                &tools,
                None,
                &server.spec,
                Links::of(&server.config),
                (server.config.expose, None),
            );
            let mut last = server.last.lock().unwrap_or_else(|p| p.into_inner());
            // A live session may have shown its list meanwhile: it wins.
            if last.as_ref().is_none_or(|c| c.source.is_none()) {
                *last = Some(Arc::new(built));
                tracing::debug!(server = %server.name(), tools = tools.len(), "tool list from the shared store");
            }
            applied = Some(tools);
        }
        tokio::time::sleep(SHARED_TOOLS_EVERY).await;
    }
}

/// Closes users' sessions idle for longer than the server's `session_timeout`.
async fn sweep_idle(server: std::sync::Weak<PerUser>, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(server) = server.upgrade() else {
            break;
        };
        let idle = server.pool.take_idle();
        if !idle.is_empty() {
            tracing::info!(server = %server.name(), closed = idle.len(), live = server.pool.len(), "closing idle user sessions");
        }
        for e in idle {
            tokio::spawn(async move { e.shutdown().await });
        }
    }
}
