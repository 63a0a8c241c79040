//! One served server: what every server has (config, call bounds, counters) and, as an enum,
//! how callers reach a session: one [`Endpoint`] shared by every caller, or one per caller.

use std::sync::Arc;
use std::time::Instant;

use crate::config::{MultiUser, ServerConfig};
use crate::oauth::{AuthOptions, Authorizer, OAuthCounters, WebLogins};
use crate::support::caller::{Caller, Profile};
use crate::upstream::{CallLimiter, Failure, Stats, Status, Upstream, UpstreamOptions};

use super::catalog::{Catalog, SpecContext};
use super::credentials::Credentials;
use super::endpoint::Endpoint;
use super::per_user::{NoEndpoint, PerUser};
use super::state::ServerState;

/// A configured server as it is served.
pub struct Server {
    pub config: ServerConfig,
    /// Bounds the calls to this server, whichever session they go to.
    pub limiter: CallLimiter,
    /// Calls, refusals, and (of the shared or discovery session) reconnects.
    pub stats: Arc<Stats>,
    /// When the server was started (for uptime in `/status`).
    pub started_at: Instant,
    kind: Kind,
}

/// How callers reach a session.
pub enum Kind {
    /// One upstream session for every caller.
    Shared(Arc<Endpoint>),
    /// Multi-user: one session per verified caller.
    PerUser(Arc<PerUser>),
}

/// Why a caller gets no session.
#[derive(Debug)]
pub enum Refusal {
    /// Multi-user OAuth: the caller has not signed in (or their sign-in expired); they sign in
    /// through these web logins.
    SignIn(Arc<WebLogins>),
    /// No session can be opened for the caller, for this reason.
    NoSession(String),
    /// The caller's stored credentials do not open with the store key (another key, another
    /// owner's file): nothing is served or stored for them until the operator fixes it.
    StoreUnreadable(String),
    /// The shared store (`--store redis://…`) does not answer and the caller's state is not
    /// in this replica's memory: a 503 naming it, to be retried in seconds.
    StoreUnavailable(String),
    /// `user_secrets`: the caller has not supplied theirs (or the upstream refused them);
    /// they do through these credentials' page.
    Credentials(Arc<Credentials>),
}

impl Server {
    /// Starts the server's shared session, or its multi-user side (a discovery session unless
    /// it uses OAuth). Each connects in the background.
    pub(super) fn start(
        config: ServerConfig,
        options: &UpstreamOptions,
        spec: &Arc<SpecContext>,
    ) -> Self {
        let stats = Arc::new(Stats::default());
        let limiter = CallLimiter::new(options.max_concurrent_calls, options.max_queued_calls);
        let kind = match config.multi_user.clone() {
            Some(settings) => Kind::PerUser(PerUser::start(
                config.clone(),
                settings,
                options.clone(),
                spec.clone(),
                stats.clone(),
            )),
            None => {
                let upstream = shared_upstream(&config, options, stats.clone());
                Kind::Shared(Arc::new(Endpoint::new(
                    upstream,
                    Arc::default(),
                    spec.clone(),
                )))
            }
        };
        Self {
            config,
            limiter,
            stats,
            started_at: Instant::now(),
            kind,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The multi-user side, if this is a multi-user server.
    pub fn per_user(&self) -> Option<&Arc<PerUser>> {
        match &self.kind {
            Kind::PerUser(p) => Some(p),
            Kind::Shared(_) => None,
        }
    }

    /// The multi-user settings (which credentials identify a caller), if multi-user.
    pub fn multi_user(&self) -> Option<&MultiUser> {
        self.per_user().map(|p| &p.settings)
    }

    /// Multi-user OAuth: the server's web logins.
    pub fn logins(&self) -> Option<&Arc<WebLogins>> {
        self.per_user()?.logins()
    }

    /// The session that serves `user` (the key of a verified caller; ignored by a shared
    /// server), started on first use, or why there is none.
    pub async fn route(&self, user: &Caller) -> Result<Arc<Endpoint>, Refusal> {
        self.route_as(user, &Profile::default()).await
    }

    /// [`Self::route`]; a session started now has its templates filled in with `profile`
    /// (what the caller's identity says besides the id).
    pub async fn route_as(
        &self,
        user: &Caller,
        profile: &Profile,
    ) -> Result<Arc<Endpoint>, Refusal> {
        let per_user = match &self.kind {
            Kind::Shared(endpoint) => return Ok(endpoint.clone()),
            Kind::PerUser(p) => p,
        };
        if let Some(logins) = self.sign_in_needed(user).await? {
            return Err(Refusal::SignIn(logins));
        }
        // The store is read only for a user without a live session: a signed-in call reads
        // nothing. A store that cannot be read (or does not answer) is a 503 naming it, never
        // "no secrets", which would send the user to enter them again.
        let mut secrets = None;
        if let Some(credentials) = per_user.credentials()
            && !per_user.has_session(user)
        {
            match credentials.usable(user).await {
                Ok(None) => return Err(Refusal::Credentials(credentials.clone())),
                Ok(Some(stored)) => secrets = Some(stored),
                Err(e) => {
                    tracing::warn!(server = %self.name(), "{e}");
                    return Err(store_refusal(e.to_string()));
                }
            }
        }
        per_user
            .endpoint_with(user, profile, secrets)
            .await
            .map_err(|e| match e {
                NoEndpoint::Store(e) => {
                    tracing::warn!(server = %self.name(), "{e}");
                    store_refusal(e.to_string())
                }
                NoEndpoint::Client(reason) => {
                    tracing::error!(server = %self.name(), "{reason}");
                    Refusal::NoSession(reason)
                }
            })
    }

    /// Multi-user OAuth: the web logins `user` must sign in through, when they have no usable
    /// tokens (checked again when their session fails: tokens can stop working).
    pub async fn sign_in_needed(&self, user: &Caller) -> Result<Option<Arc<WebLogins>>, Refusal> {
        let (Some(per_user), Some(logins)) = (self.per_user(), self.logins()) else {
            return Ok(None);
        };
        if let Some(reason) = per_user.store_unreadable(user).await {
            tracing::warn!(server = %self.name(), "{reason}");
            return Err(store_refusal(reason));
        }
        match per_user.needs_login(user).await {
            Ok(true) => Ok(Some(logins.clone())),
            Ok(false) => Ok(None),
            Err(reason) if store_down() => Err(Refusal::StoreUnavailable(reason)),
            Err(reason) => Err(Refusal::NoSession(reason)),
        }
    }

    /// After `user`'s session failed with `status`: when the upstream refused the secrets the
    /// user supplied, their session is closed and they are asked for new ones.
    pub fn secrets_refused(&self, user: &Caller, status: &Status) -> Option<Refusal> {
        let Status::Connecting {
            failure: Some(Failure::Refused(_)),
            ..
        } = status
        else {
            return None;
        };
        self.refused_by_upstream(user)
    }

    /// The upstream refused `user`'s session's credentials (a call got HTTP 401/403): on a
    /// server whose users supply secrets, their session is closed and they are asked for new
    /// ones; `None` on other servers.
    pub fn refused_by_upstream(&self, user: &Caller) -> Option<Refusal> {
        let per_user = self.per_user()?;
        let credentials = per_user.credentials()?;
        per_user.secrets_refused(user);
        Some(Refusal::Credentials(credentials.clone()))
    }

    /// Where the server stands: its shared session's state, or for a multi-user server
    /// `multi-user` once its tool list is known (its discovery session's state before that).
    pub fn state(&self) -> ServerState {
        match &self.kind {
            Kind::Shared(endpoint) => endpoint.upstream.status().into(),
            Kind::PerUser(p) => match (p.catalog(), p.discovery_status()) {
                (Some(catalog), _) => ServerState::MultiUser {
                    tools: catalog.tools.len(),
                },
                (None, Some(status)) => status.into(),
                (None, None) => ServerState::MultiUser { tools: 0 },
            },
        }
    }

    /// The tools callers without a session of their own see: the shared session's current
    /// catalog, or a multi-user server's last known one.
    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        match &self.kind {
            Kind::Shared(endpoint) => endpoint.catalog().ok().map(|c| c.catalog.clone()),
            Kind::PerUser(p) => p.catalog(),
        }
    }

    /// OAuth logins, refreshes and failures for `/metrics`: the server's own authorizer, or for
    /// a multi-user OAuth server the sum over its users'.
    pub fn oauth_counters(&self) -> Option<OAuthCounters> {
        match &self.kind {
            Kind::Shared(endpoint) => endpoint.upstream.authorizer.as_ref().map(|a| a.counters()),
            Kind::PerUser(p) => p.oauth_counters(),
        }
    }

    /// Returns once the server's first connection attempt has ended, one way or another.
    pub async fn settle(&self) {
        let status = match &self.kind {
            Kind::Shared(endpoint) => Some(endpoint.upstream.subscribe()),
            Kind::PerUser(p) => p.subscribe_discovery(),
        };
        if let Some(mut rx) = status {
            let _ = rx
                .wait_for(|s| !ServerState::from(s.clone()).is_unsettled())
                .await;
        }
    }

    /// Stops every session of the server (and their child processes).
    pub async fn shutdown(&self) {
        match &self.kind {
            Kind::Shared(endpoint) => endpoint.shutdown().await,
            Kind::PerUser(p) => p.shutdown().await,
        }
    }
}

/// The one session of a shared server (and of `mcpo tools`), with its OAuth client when it has
/// an `oauth` block. A block that cannot work keeps the server down with the reason
/// (the config loader refuses such blocks, so this is a last line of defence).
pub fn shared_upstream(
    config: &ServerConfig,
    options: &UpstreamOptions,
    stats: Arc<Stats>,
) -> Upstream {
    let (config, options) = (config.clone(), options.clone());
    match &config.oauth {
        None => Upstream::start(config, options, None, stats),
        Some(_) => match Authorizer::new(&config, AuthOptions::default()) {
            Ok(authorizer) => Upstream::start(config, options, Some(authorizer), stats),
            Err(e) => Upstream::misconfigured(config, options, e.to_string(), stats),
        },
    }
}

/// Whether the shared store is installed and does not answer now.
fn store_down() -> bool {
    crate::store::shared::shared().is_some_and(|store| !store.available())
}

/// A store problem as its refusal: the shared store not answering (retried in seconds), or
/// a record that does not open (the operator must act).
fn store_refusal(reason: String) -> Refusal {
    if store_down() {
        Refusal::StoreUnavailable(reason)
    } else {
        Refusal::StoreUnreadable(reason)
    }
}
