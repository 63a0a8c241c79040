//! What is published of each server: its prepared tools (schemas normalised, validators
//! compiled) and its serialized spec, built once per tool list (a session's `generation`),
//! never per request; and the combined root document, cached by the generations it was built
//! from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::config::Expose;
use crate::openapi::{self, PreparedTool, SpecInfo};
use crate::upstream::{Listing, Session};

use super::tool_cache::ToolCache;

/// Where the login operation sits in a server's document, relative to the server's base. Tool
/// names cannot contain `/`, so no tool route (`/{server}/{tool}`) can take it.
pub const LOGIN_PATH: &str = "/oauth/login";
/// Where the credentials operation sits, relative to the server's base (two segments, so no
/// tool route can take it).
pub const CREDENTIALS_PATH: &str = "/credentials/link";

/// The operations a server's document carries besides its tools: `{server}_login`
/// (multi-user OAuth) and `{server}_credentials` (servers whose users supply secrets).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Links {
    pub login: bool,
    pub credentials: bool,
}

impl Links {
    pub(super) fn of(config: &crate::config::ServerConfig) -> Self {
        let multi = config.multi_user.as_ref();
        Self {
            login: multi.is_some() && config.oauth.is_some(),
            credentials: multi.is_some_and(|m| !m.user_secrets.is_empty()),
        }
    }
}

/// Tools and the document built from one tool list; what callers without a session of their
/// own are shown.
pub struct Catalog {
    /// Changes whenever the tool list does (cache key of the combined document).
    pub generation: u64,
    pub tools: Vec<PreparedTool>,
    /// By published name (the path segment a call names).
    index: HashMap<String, usize>,
    /// The per-server document as served at `{server}/openapi.json`.
    pub spec: Bytes,
    /// What the documents offer as operations (the server's `expose`).
    pub expose: Expose,
    /// The resources and prompts in the documents (see `offerings`), if any.
    pub listing: Option<Arc<Listing>>,
    /// What a live session of this run showed that this was built from (none for a list from
    /// the tool cache): lets another session with the same list and server info share this
    /// catalog, and a new user's session skip `tools/list` (`servers/per_user.rs`).
    pub source: Option<CatalogSource>,
}

/// The session's tool list and server info a catalog was built from.
pub struct CatalogSource {
    pub tools: Arc<Vec<rmcp::model::Tool>>,
    pub meta: crate::upstream::ServerMeta,
}

impl CatalogSource {
    /// Whether `session` shows the same tools and says the same about itself (then its catalog
    /// would be this one, byte for byte).
    pub fn matches(&self, session: &Session) -> bool {
        (Arc::ptr_eq(&self.tools, &session.tools) || self.tools == session.tools)
            && self.meta == session.meta
    }
}

impl Catalog {
    /// The tool published as `name` (its path segment, which is not always its MCP name: call
    /// upstream with [`PreparedTool::name`]).
    pub fn tool(&self, name: &str) -> Option<&PreparedTool> {
        self.index.get(name).map(|&i| &self.tools[i])
    }
}

/// A consistent snapshot: the session and the catalog that was built from it.
pub struct SessionCatalog {
    pub session: Arc<Session>,
    pub catalog: Arc<Catalog>,
}

/// The last catalog a server published, shared by a multi-user server and its users' endpoints.
pub(super) type LastCatalog = Mutex<Option<Arc<Catalog>>>;

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
            tool_cache: ToolCache::from_env(),
        }
    }
}

/// Numbers tool lists that did not come from a session (their own range, far above session
/// generations).
static KNOWN_GENERATION: AtomicU64 = AtomicU64::new(1 << 62);

/// Prepares `tools` and builds the server's document with the operations of `links`;
/// `expose` says whether tools, and `listing`'s resources and prompts, are operations in it.
pub(super) fn build(
    server: &str,
    tools: &[rmcp::model::Tool],
    session: Option<&Session>,
    ctx: &SpecContext,
    links: Links,
    (expose, listing): (Expose, Option<Arc<Listing>>),
) -> Catalog {
    let (tools, index) = publish(server, tools);
    let info = server_info(server, session, ctx);
    let shown: &[PreparedTool] = if expose.tools { &tools } else { &[] };
    let mut doc = openapi::server_document(&info, server, shown, |tool| format!("/{tool}"));
    if links.login {
        openapi::add_login_operation(&mut doc, server, LOGIN_PATH, &format!("{server}_login"));
    }
    if links.credentials {
        openapi::add_credentials_operation(
            &mut doc,
            server,
            CREDENTIALS_PATH,
            &format!("{server}_credentials"),
        );
    }
    if let Some(listing) = &listing {
        let at = openapi::ListingPlace {
            server,
            base: "",
            id_prefix: "",
        };
        super::offerings::add_to_document(&mut doc, listing, expose, at);
    }
    let spec = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    Catalog {
        generation: session.map_or_else(
            || KNOWN_GENERATION.fetch_add(1, Ordering::Relaxed),
            |s| s.generation,
        ),
        tools,
        index,
        spec,
        expose,
        listing,
        source: session.map(|s| CatalogSource {
            tools: s.tools.clone(),
            meta: s.meta.clone(),
        }),
    }
}

/// Prepares `tools` under their published names (see `openapi::path_segment`), logging each
/// renamed tool; a tool whose published name another tool of the list already has is left
/// out, with a warning (its route would be the other's). Returns the tools and their index by
/// published name.
fn publish(
    server: &str,
    tools: &[rmcp::model::Tool],
) -> (Vec<PreparedTool>, HashMap<String, usize>) {
    let mut prepared: Vec<PreparedTool> = Vec::with_capacity(tools.len());
    let mut index = HashMap::with_capacity(tools.len());
    for tool in tools {
        let tool = openapi::prepare_tool(server, tool);
        if let Some(&first) = index.get(tool.published_name()) {
            let first: &PreparedTool = &prepared[first];
            tracing::warn!(
                server,
                tool = ?tool.name(),
                published = tool.published_name(),
                other = ?first.name(),
                "tool left out: its path would be that of another tool of this server; the server's other tools are served"
            );
            continue;
        }
        if tool.renamed() {
            tracing::warn!(
                server,
                tool = ?tool.name(),
                published = tool.published_name(),
                "tool name is not a safe URL path segment ([A-Za-z0-9_.-], 1-128 characters, not . or ..): published under a safe name; calls to it call the tool"
            );
        }
        index.insert(tool.published_name().to_owned(), prepared.len());
        prepared.push(tool);
    }
    (prepared, index)
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
    pub fn get(&self, servers: &[(String, Arc<Catalog>)], build: impl FnOnce() -> Bytes) -> Bytes {
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
