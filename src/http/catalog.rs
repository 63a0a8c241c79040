//! What the HTTP side knows about each server: its prepared tools (schemas normalised,
//! validators compiled) and its serialized spec, rebuilt only when the upstream publishes a new
//! session or tool list (its `generation` changes), never per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::config::MultiUser;
use crate::openapi::{self, PreparedTool, SpecInfo};
use crate::sessions::UserPool;
use crate::upstream::{Session, Status, Upstream, UpstreamOptions};

/// One configured server and the cache derived from its current session.
pub struct ServerEntry {
    pub upstream: Upstream,
    cache: Mutex<Option<Arc<Catalog>>>,
    /// Multi-user mode: one entry (own upstream session, own spec cache) per caller.
    pub users: Option<Users>,
}

/// The per-user side of a multi-user server.
pub struct Users {
    pub settings: MultiUser,
    pub pool: UserPool<ServerEntry>,
    options: UpstreamOptions,
}

/// A consistent snapshot: the session and the tools/spec that were built from it.
pub struct Catalog {
    pub session: Arc<Session>,
    pub tools: Vec<PreparedTool>,
    index: HashMap<String, usize>,
    /// The per-server document as served at `{server}/openapi.json`.
    pub spec: Bytes,
}

impl Catalog {
    pub fn tool(&self, name: &str) -> Option<&PreparedTool> {
        self.index.get(name).map(|&i| &self.tools[i])
    }
}

impl ServerEntry {
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            cache: Mutex::new(None),
            users: None,
        }
    }

    /// A multi-user server. `discovery` is a first session used only to learn the tool list
    /// (so the spec lists tools before anyone calls); once its catalog is cached it is closed.
    /// A background sweep closes users' sessions after the idle timeout.
    pub fn new_multi(
        discovery: Upstream,
        settings: MultiUser,
        options: UpstreamOptions,
        spec: Arc<SpecContext>,
    ) -> Arc<Self> {
        let pool = UserPool::new(settings.max_sessions, settings.session_timeout);
        let sweep = pool.sweep_interval();
        let entry = Arc::new(Self {
            upstream: discovery,
            cache: Mutex::new(None),
            users: Some(Users {
                settings,
                pool,
                options,
            }),
        });
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
        let (entry, evicted) = users.pool.get_or_create(user, || {
            ServerEntry::new(Upstream::start(
                self.upstream.config.clone(),
                users.options.clone(),
            ))
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

    /// The last catalog built, even if its session is gone (multi-user discovery).
    pub fn cached_catalog(&self) -> Option<Arc<Catalog>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
    pub async fn catalog_waiting(
        &self,
        spec: &SpecContext,
        wait: std::time::Duration,
    ) -> Result<Arc<Catalog>, Status> {
        let session = self.upstream.ready_session(wait).await?;
        Ok(self.catalog_for(session, spec))
    }

    fn catalog_for(&self, session: Arc<Session>, spec: &SpecContext) -> Arc<Catalog> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref()
            && c.session.generation == session.generation
        {
            return c.clone();
        }
        let built = Arc::new(build(self.name(), session, spec));
        *cache = Some(built.clone());
        built
    }
}

/// What every spec needs from the serve options.
pub struct SpecContext {
    /// `--root-path` + `--path-prefix`, without the trailing `/`: where server routes live.
    pub base: String,
    pub root_path: String,
    pub api_key_security: bool,
    pub single_server: bool,
}

impl SpecContext {
    pub fn from_options(o: &crate::config::ServeOptions) -> Self {
        Self {
            base: format!("{}{}", o.root_path, o.path_prefix.trim_end_matches('/')),
            root_path: o.root_path.clone(),
            api_key_security: o.api_key.is_some(),
            single_server: o.single_server,
        }
    }
}

fn build(server: &str, session: Arc<Session>, ctx: &SpecContext) -> Catalog {
    let tools: Vec<PreparedTool> = session
        .tools
        .iter()
        .map(|t| openapi::prepare_tool(server, t))
        .collect();
    let index = tools
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name().to_owned(), i))
        .collect();
    let info = server_info(server, &session, ctx);
    let doc = openapi::server_document(&info, server, &tools, |tool| format!("/{tool}"));
    let spec = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    Catalog {
        session,
        tools,
        index,
        spec,
    }
}

/// Title, version and description of a server's own document: what the server said about
/// itself, falling back to its configured name.
fn server_info(server: &str, session: &Session, ctx: &SpecContext) -> SpecInfo {
    let meta = &session.meta;
    let title = meta
        .title
        .clone()
        .or_else(|| meta.name.clone())
        .unwrap_or_else(|| server.to_owned());
    let description = match (&meta.instructions, &meta.description) {
        (Some(i), _) => Some(i.clone()),
        (None, Some(d)) => Some(d.clone()),
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
    pub fn get(&self, servers: &[(String, Arc<Catalog>)], build: impl FnOnce() -> Bytes) -> Bytes {
        let key: Vec<u64> = servers.iter().map(|(_, c)| c.session.generation).collect();
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
