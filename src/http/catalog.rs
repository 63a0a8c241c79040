//! What the HTTP side knows about each server: its prepared tools (schemas normalised,
//! validators compiled) and its serialized spec, rebuilt only when the upstream publishes a new
//! session or tool list (its `generation` changes), never per request.
//!
//! Multi-user servers also keep their **last known tools** (from any user's session, the
//! discovery session, or the tool cache file), which is what callers without credentials see:
//! Open WebUI fetches admin-registered specs without any. A multi-user OAuth server has no
//! shared session at all: every user signs in through the web login ([`WebLogins`]) and gets a
//! session with their own tokens; its documents carry a `{server}_login` operation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::config::MultiUser;
use crate::oauth::{LoginState, OAuthCounters, WebLogins};
use crate::openapi::{self, PreparedTool, SpecInfo};
use crate::sessions::UserPool;
use crate::upstream::{Session, Status, Upstream, UpstreamOptions};

use super::tool_cache::ToolCache;

/// Where the login operation sits in a server's document, relative to the server's base. Tool
/// names cannot contain `/`, so no tool route (`/{server}/{tool}`) can take it.
pub const LOGIN_PATH: &str = "/oauth/login";

/// One configured server and the cache derived from its current session.
pub struct ServerEntry {
    pub upstream: Upstream,
    cache: Mutex<Option<Arc<Catalog>>>,
    /// The last tools any session of this server showed; shared by a multi-user server and its
    /// users' entries.
    known: Arc<KnownSlot>,
    /// Multi-user mode: one entry (own upstream session, own spec cache) per caller.
    pub users: Option<Users>,
}

type KnownSlot = Mutex<Option<Arc<Known>>>;

/// The per-user side of a multi-user server.
pub struct Users {
    pub settings: MultiUser,
    pub pool: UserPool<ServerEntry>,
    options: UpstreamOptions,
    /// Multi-user OAuth: every user's own authorizer, login tickets and logins in progress.
    pub web: Option<Arc<WebLogins>>,
}

/// Tools and the document built from one tool list; what callers without a session of their
/// own are shown.
pub struct Known {
    /// Changes whenever the tool list does (cache key of the combined document).
    pub generation: u64,
    pub tools: Vec<PreparedTool>,
    index: HashMap<String, usize>,
    /// The per-server document as served at `{server}/openapi.json`.
    pub spec: Bytes,
}

impl Known {
    pub fn tool(&self, name: &str) -> Option<&PreparedTool> {
        self.index.get(name).map(|&i| &self.tools[i])
    }
}

/// A consistent snapshot: the session and the tools/spec that were built from it.
pub struct Catalog {
    pub session: Arc<Session>,
    known: Arc<Known>,
}

impl Catalog {
    /// The tools and spec without the session.
    pub fn known(&self) -> Arc<Known> {
        self.known.clone()
    }
}

impl std::ops::Deref for Catalog {
    type Target = Known;

    fn deref(&self) -> &Known {
        &self.known
    }
}

impl ServerEntry {
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            cache: Mutex::new(None),
            known: Arc::default(),
            users: None,
        }
    }

    /// A multi-user server. `discovery` is a first session used only to learn the tool list
    /// (so the spec lists tools before anyone calls); once its catalog is cached it is closed.
    /// With OAuth it is never started (see `servers::never_connect`).
    /// A background sweep closes users' sessions after the idle timeout.
    pub fn new_multi(
        discovery: Upstream,
        settings: MultiUser,
        options: UpstreamOptions,
        spec: Arc<SpecContext>,
    ) -> Arc<Self> {
        let pool = UserPool::new(settings.max_sessions, settings.session_timeout);
        let sweep = pool.sweep_interval();
        let web = match &discovery.config.oauth {
            None => None,
            Some(_) => match WebLogins::new(&discovery.config, settings.max_sessions.max(32) * 2) {
                Ok(web) => Some(Arc::new(web)),
                Err(e) => {
                    tracing::error!(server = %discovery.name, "{e}");
                    None
                }
            },
        };
        let oauth = discovery.config.oauth.is_some();
        let entry = Arc::new(Self {
            upstream: discovery,
            cache: Mutex::new(None),
            known: Arc::default(),
            users: Some(Users {
                settings,
                pool,
                options,
                web,
            }),
        });
        // The tools of the last run, if any, until a session shows the current ones.
        let cached = spec
            .tool_cache
            .as_ref()
            .and_then(|c| c.load(&entry.upstream.config));
        if cached.is_some() || oauth {
            let tools = cached.unwrap_or_default();
            *entry.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(build_known(
                entry.name(),
                &tools,
                None,
                &spec,
                oauth,
            )));
        }
        // With OAuth, no session is shared: there is nobody to sign in for it, so `discovery`
        // was stopped before it started (`servers::never_connect`). Users' own sessions bring
        // the tool list; until one does, the document has the login operation.
        let weak = Arc::downgrade(&entry);
        let mut status = entry.upstream.subscribe();
        tokio::spawn(async move {
            let ready = status
                .wait_for(|s| matches!(s, Status::Ready(_) | Status::Stopped))
                .await
                .map(|s| s.clone());
            if let (Ok(Status::Ready(session)), Some(entry)) = (ready, weak.upgrade()) {
                entry.catalog_for(session, &spec);
                tracing::info!(server = %entry.name(), "tool list learned; closing the discovery session");
                entry.upstream.shutdown().await;
            }
        });
        let weak = Arc::downgrade(&entry);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(sweep).await;
                let Some(entry) = weak.upgrade() else { break };
                let Some(users) = &entry.users else { break };
                let idle = users.pool.take_idle();
                if !idle.is_empty() {
                    tracing::info!(server = %entry.name(), closed = idle.len(), live = users.pool.len(), "closing idle user sessions");
                }
                for e in idle {
                    tokio::spawn(async move { e.shutdown().await });
                }
            }
        });
        entry
    }

    /// The entry serving `user`: their own session, started on first use. Sessions evicted to
    /// keep within `max_sessions` are closed in the background.
    pub fn for_user(&self, user: &str) -> Option<Arc<ServerEntry>> {
        let users = self.users.as_ref()?;
        let authorizer = match &users.web {
            Some(web) => Some(
                web.authorizer(user)
                    .inspect_err(|e| tracing::error!(server = %self.name(), "{e}"))
                    .ok()?,
            ),
            None => None,
        };
        let (entry, evicted) = users.pool.get_or_create(user, || {
            let config = self.upstream.config.clone();
            let options = users.options.clone();
            let upstream = match authorizer {
                Some(own) => Upstream::start_with_oauth(config, options, own),
                None => Upstream::start(config, options),
            };
            ServerEntry {
                upstream,
                cache: Mutex::new(None),
                known: self.known.clone(),
                users: None,
            }
        });
        for e in evicted {
            tracing::info!(server = %self.name(), "closing the least recently used user session (max_sessions reached)");
            tokio::spawn(async move { e.shutdown().await });
        }
        Some(entry)
    }

    /// Ready to serve: connected, or (multi-user) its tool list is known and users get their
    /// own sessions on demand.
    pub fn is_ready(&self) -> bool {
        matches!(self.upstream.status(), Status::Ready(_))
            || (self.users.is_some() && self.cached_catalog().is_some())
    }

    /// The last tools known, even if their session is gone (multi-user discovery, users'
    /// sessions, the tool cache); a multi-user OAuth server always has one (maybe only the
    /// login operation).
    pub fn cached_catalog(&self) -> Option<Arc<Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// OAuth logins, refreshes and failures for `/metrics`: the server's own authorizer, or
    /// for a multi-user OAuth server the sum over its users' (forgotten ones included).
    pub fn oauth_counters(&self) -> Option<OAuthCounters> {
        match self.web_logins() {
            Some(web) => Some(web.counters()),
            None => self.upstream.oauth.as_ref().map(|a| a.counters()),
        }
    }

    /// Multi-user OAuth: the web logins of this server.
    pub fn web_logins(&self) -> Option<&Arc<WebLogins>> {
        self.users.as_ref()?.web.as_ref()
    }

    /// The entry serving `user` if they can be served without signing in first: always for
    /// servers without OAuth; with OAuth only when the user has usable tokens (nobody's session
    /// is started just to wait for a login).
    pub fn for_signed_in_user(&self, user: &str) -> Option<Arc<ServerEntry>> {
        if let Some(web) = self.web_logins()
            && web.authorizer(user).map_or(true, |a| a.needs_login())
        {
            return None;
        }
        self.for_user(user)
    }

    /// Stops the shared session and every user session.
    pub fn shutdown(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let drained = self
                .users
                .as_ref()
                .map(|u| u.pool.drain())
                .unwrap_or_default();
            let users = futures::future::join_all(drained.iter().map(|e| e.shutdown()));
            futures::future::join(self.upstream.shutdown(), users).await;
        })
    }

    pub fn name(&self) -> &str {
        &self.upstream.name
    }

    /// The catalog of the current session, or the reason there is none.
    pub fn catalog(&self, spec: &SpecContext) -> Result<Arc<Catalog>, Status> {
        match self.upstream.status() {
            Status::Ready(session) => Ok(self.catalog_for(session, spec)),
            other => Err(other),
        }
    }

    /// Like [`ServerEntry::catalog`], but waits up to `wait` for a (re)connecting server.
    /// A session waiting for its user's web login stops the wait at once: only the user can
    /// end that wait, and the caller is better told to sign in.
    pub async fn catalog_waiting(
        &self,
        spec: &SpecContext,
        wait: std::time::Duration,
    ) -> Result<Arc<Catalog>, Status> {
        let session = match self.upstream.oauth.as_ref().filter(|a| a.is_web()) {
            Some(authorizer) => tokio::select! {
                ready = self.upstream.ready_session(wait) => ready?,
                () = login_pending(authorizer) => return Err(self.upstream.status()),
            },
            None => self.upstream.ready_session(wait).await?,
        };
        Ok(self.catalog_for(session, spec))
    }

    fn catalog_for(&self, session: Arc<Session>, spec: &SpecContext) -> Arc<Catalog> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref()
            && c.session.generation == session.generation
        {
            return c.clone();
        }
        let config = &self.upstream.config;
        let login = config.multi_user.is_some() && config.oauth.is_some();
        let known = Arc::new(build_known(
            self.name(),
            &session.tools,
            Some(&session),
            spec,
            login,
        ));
        if let (Some(_), Some(tool_cache)) = (&config.multi_user, &spec.tool_cache) {
            let (tool_cache, config, tools) =
                (tool_cache.clone(), config.clone(), session.tools.clone());
            tokio::task::spawn_blocking(move || tool_cache.save(&config, &tools));
        }
        let built = Arc::new(Catalog { session, known });
        *cache = Some(built.clone());
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(built.known());
        built
    }
}

/// Returns once `authorizer`'s session is waiting for a web login.
async fn login_pending(authorizer: &crate::oauth::Authorizer) {
    let mut login = authorizer.watch_login();
    // At once when the login is already pending; never when the authorizer is gone.
    let pending = login.wait_for(|state| matches!(state, LoginState::Pending { .. }));
    if pending.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What every spec needs from the serve options.
pub struct SpecContext {
    /// `--root-path` + `--path-prefix`, without the trailing `/`: where server routes live.
    pub base: String,
    pub root_path: String,
    pub api_key_security: bool,
    pub single_server: bool,
    /// Where multi-user servers' last known tool lists survive restarts.
    pub tool_cache: Option<ToolCache>,
}

impl SpecContext {
    pub fn from_options(o: &crate::config::ServeOptions) -> Self {
        Self {
            base: format!("{}{}", o.root_path, o.path_prefix.trim_end_matches('/')),
            root_path: o.root_path.clone(),
            api_key_security: o.api_key.is_some(),
            single_server: o.single_server,
            tool_cache: Some(ToolCache::from_env()),
        }
    }
}

/// Numbers tool lists that did not come from a session (their own range, far above session
/// generations).
static KNOWN_GENERATION: AtomicU64 = AtomicU64::new(1 << 62);

/// Prepares `tools` and builds the server's document; `login` adds the `{server}_login`
/// operation of multi-user OAuth servers.
fn build_known(
    server: &str,
    tools: &[rmcp::model::Tool],
    session: Option<&Session>,
    ctx: &SpecContext,
    login: bool,
) -> Known {
    let tools: Vec<PreparedTool> = tools
        .iter()
        .map(|t| openapi::prepare_tool(server, t))
        .collect();
    let index = tools
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name().to_owned(), i))
        .collect();
    let info = server_info(server, session, ctx);
    let mut doc = openapi::server_document(&info, server, &tools, |tool| format!("/{tool}"));
    if login {
        openapi::add_login_operation(&mut doc, server, LOGIN_PATH, &format!("{server}_login"));
    }
    let spec = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    Known {
        generation: session.map_or_else(
            || KNOWN_GENERATION.fetch_add(1, Ordering::Relaxed),
            |s| s.generation,
        ),
        tools,
        index,
        spec,
    }
}

/// Title, version and description of a server's own document: what the server said about
/// itself, falling back to its configured name.
fn server_info(server: &str, session: Option<&Session>, ctx: &SpecContext) -> SpecInfo {
    let meta = session.map(|s| s.meta.clone()).unwrap_or_default();
    let title = meta
        .title
        .clone()
        .or_else(|| meta.name.clone())
        .unwrap_or_else(|| server.to_owned());
    let description = match (&meta.instructions, &meta.description) {
        (Some(i), _) => Some(i.clone()),
        (None, Some(d)) => Some(d.clone()),
        (None, None) if session.is_none() => Some(format!(
            "{server} MCP server. Tools as last seen; each user's own list is served to them."
        )),
        (None, None) => Some(format!("{server} MCP server")),
    };
    let server_url = if ctx.single_server {
        ctx.base.clone()
    } else {
        format!("{}/{server}", ctx.base)
    };
    SpecInfo {
        title,
        version: meta.version.clone().unwrap_or_else(|| "1.0.0".into()),
        description,
        server_url: Some(if server_url.is_empty() {
            "/".into()
        } else {
            server_url
        }),
        api_key_security: ctx.api_key_security,
    }
}

/// The combined root document, cached by the generations of the sessions it was built from.
#[derive(Default)]
pub struct CombinedCache {
    inner: Mutex<Option<(Vec<u64>, Bytes)>>,
}

impl CombinedCache {
    pub fn get(&self, servers: &[(String, Arc<Known>)], build: impl FnOnce() -> Bytes) -> Bytes {
        let key: Vec<u64> = servers.iter().map(|(_, c)| c.generation).collect();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, bytes)) = inner.as_ref()
            && *k == key
        {
            return bytes.clone();
        }
        let bytes = build();
        *inner = Some((key, bytes.clone()));
        bytes
    }
}
