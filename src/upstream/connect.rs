//! Opening one MCP session: pick the transport from the config, run `initialize`, list tools.

use crate::support::redact::Hidden;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rmcp::ServiceExt;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, Tool};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};
use tokio::io::BufReader;
use tokio::sync::Notify;

use super::incoming::{LineRead, read_cut_line};
use super::stdio::ChildTransport;
use super::{UpstreamOptions, sse};
use crate::config::{ServerConfig, TransportConfig};
use crate::support::{error_chain, http_client};

/// What the server said about itself at `initialize`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerMeta {
    pub name: Option<String>,
    pub title: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub instructions: Option<String>,
}

/// Longest stderr line we log (its `\n` included); the rest is cut so a chatty child can't
/// flood memory or logs.
const MAX_STDERR_LINE: usize = 8 * 1024;
/// Stderr lines kept to explain why a stdio server exited.
const STDERR_TAIL: usize = 20;
/// Largest single SSE event accepted from an HTTP upstream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Why a connection attempt failed; shown in logs and in 503 bodies, so it names causes, not
/// header values or tokens.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot start '{command}': {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// The server's sandbox cannot be set up (no `bwrap`, no namespaces, a missing path).
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("invalid header '{0}'")]
    Header(String),
    #[error("legacy SSE connection failed: {0}")]
    Sse(#[from] sse::SseError),
    #[error("MCP initialize failed: {0}{1}")]
    Initialize(String, String),
    #[error("tools/list failed: {0}")]
    ListTools(String),
    /// The upstream answered 401/403 to `initialize`: the credentials it was given are refused.
    #[error("the server refused the credentials (HTTP 401/403): {0}")]
    Refused(String),
}

/// A freshly initialized session and what the supervisor needs to watch it.
pub struct Live {
    pub service: RunningService<RoleClient, McpoClient>,
    pub meta: ServerMeta,
    pub tools: Arc<Vec<Tool>>,
    pub tools_changed: Arc<Notify>,
    pub diagnostics: Diagnostics,
}

/// Our side of the MCP session: identifies as mcpo and turns `tools/list_changed`
/// notifications into a wake-up for the supervisor.
pub struct McpoClient {
    info: ClientConfig,
    tools_changed: Arc<Notify>,
    /// What the specs show: a changed resource or prompt list matters only when they do.
    expose: crate::config::Expose,
}

impl ClientHandler for McpoClient {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    // A changed resource or prompt list is published as a new session too when the specs show
    // them (`expose`); otherwise nothing mcpo keeps changed (the routes ask the server each
    // time), and re-listing everything would be wasted work.
    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if self.expose.resources {
            self.tools_changed.notify_one();
        }
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if self.expose.prompts {
            self.tools_changed.notify_one();
        }
    }
}

/// Last words of a stdio child, to explain a lost connection.
#[derive(Clone, Default)]
pub struct Diagnostics {
    stderr_tail: Option<Arc<Mutex<VecDeque<String>>>>,
}

impl Diagnostics {
    pub async fn describe_exit(&self) -> Option<String> {
        let tail = self.stderr_tail.as_ref()?;
        // Give the stderr reader a moment to drain what the child wrote before dying.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let lines = tail.lock().ok()?;
        if lines.is_empty() {
            return None;
        }
        Some(format!(
            "last stderr lines: {}",
            lines.iter().cloned().collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// Opens one session. `auth` is the server's OAuth client (kept by the supervisor across
/// reconnects); it must already hold usable tokens (see `Authorizer::ensure_authorized`).
/// `known_tools`, when given, is the server's tool list as another session of this run
/// listed it, taken instead of a `tools/list` (see `Upstream::start_with_known_tools`).
pub async fn connect(
    config: &ServerConfig,
    options: &UpstreamOptions,
    auth: Option<&crate::oauth::Authorizer>,
    known_tools: Option<Arc<Vec<Tool>>>,
) -> Result<Live, ConnectError> {
    let tools_changed = Arc::new(Notify::new());
    let handler = McpoClient {
        info: ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcpo", env!("CARGO_PKG_VERSION")),
        ),
        tools_changed: tools_changed.clone(),
        expose: config.expose,
    };
    let mut diagnostics = Diagnostics::default();
    let service = match &config.transport {
        TransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
            inherit_env,
        } => {
            let sandbox = match config.multi_user.as_ref().and_then(|m| m.sandbox.as_ref()) {
                Some(sandbox) => Some(
                    super::sandbox::wrap(
                        sandbox,
                        &options.private_paths,
                        cwd.as_deref(),
                        (command, args),
                    )
                    .await
                    .map_err(ConnectError::Sandbox)?,
                ),
                None => None,
            };
            let (transport, stderr) =
                spawn_child(command, args, env, cwd.as_deref(), *inherit_env, sandbox)?;
            if let Some(stderr) = stderr {
                let hidden = config
                    .multi_user
                    .as_ref()
                    .map(|m| m.hidden.clone())
                    .unwrap_or_default();
                diagnostics.stderr_tail = Some(forward_stderr(config.name.clone(), stderr, hidden));
            }
            handler.serve(transport).await
        }
        TransportConfig::StreamableHttp { url, headers } => {
            let (bearer, custom) = split_headers(headers)?;
            let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(custom)
                .max_sse_event_size(MAX_EVENT_BYTES)
                // Bridge callers come in parallel; rmcp's default of 16 in-flight POSTs
                // would queue them behind each other.
                .max_concurrent_requests(256)
                .reinit_on_expired_session(true);
            match auth {
                // The OAuth client puts its own (refreshed) bearer token on every request; a
                // static header would win over it, so it is not set.
                Some(authorizer) => {
                    let client = authorizer.http_client(http_client::upstream_transport());
                    let transport = StreamableHttpClientTransport::with_client(client, cfg);
                    handler.serve(transport).await
                }
                None => {
                    if let Some(token) = bearer {
                        cfg = cfg.auth_header(token);
                    }
                    let transport = StreamableHttpClientTransport::with_client(
                        http_client::upstream_transport(),
                        cfg,
                    );
                    handler.serve(transport).await
                }
            }
        }
        TransportConfig::Sse { url, headers } => {
            let mut map = reqwest::header::HeaderMap::new();
            for (k, v) in headers {
                let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| ConnectError::Header(k.clone()))?;
                let value = reqwest::header::HeaderValue::from_str(v)
                    .map_err(|_| ConnectError::Header(k.clone()))?;
                map.insert(name, value);
            }
            let opts = sse::SseOptions {
                max_event_bytes: MAX_EVENT_BYTES,
                ..Default::default()
            };
            let transport =
                sse::connect(http_client::upstream_transport(), url.clone(), map, opts).await?;
            handler.serve(transport).await
        }
    };
    let service = match service {
        Ok(s) => s,
        Err(e) if super::refusal::refused_credentials(&e) => {
            return Err(ConnectError::Refused(error_chain(&e)));
        }
        Err(e) => {
            let extra = diagnostics
                .describe_exit()
                .await
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(ConnectError::Initialize(error_chain(&e), extra));
        }
    };
    let meta = service
        .peer()
        .peer_info()
        .map(|info| {
            let implementation = info.server_info.clone();
            ServerMeta {
                name: implementation.as_ref().map(|i| i.name.clone()),
                title: implementation.as_ref().and_then(|i| i.title.clone()),
                version: implementation.as_ref().map(|i| i.version.clone()),
                description: implementation.as_ref().and_then(|i| i.description.clone()),
                instructions: info.instructions.clone(),
            }
        })
        .unwrap_or_default();
    let has_tools = service
        .peer()
        .peer_info()
        .map(|i| i.capabilities.tools.is_some())
        .unwrap_or(true);
    // A server without the tools capability is served with zero tools, not failed:
    // Python mcpo crashed on those (its issue #237).
    let tools = match known_tools {
        _ if !has_tools => Arc::default(),
        Some(known) => known,
        None => Arc::new(list_tools(service.peer()).await?),
    };
    Ok(Live {
        service,
        meta,
        tools,
        tools_changed,
        diagnostics,
    })
}

/// Pages of one `tools/list` mcpo reads at most: a server that keeps answering with a
/// `nextCursor` is cut off (and refused) instead of being listed forever.
pub const MAX_TOOL_PAGES: usize = 100;
/// Tools one server may list.
pub const MAX_TOOLS: usize = 10_000;
/// Bytes (as JSON) of one server's whole tool list. Each page, like every message, is also
/// bounded on the way in: 16 MiB (a stdio line, a streamable-HTTP body, an SSE event).
pub const MAX_TOOL_LIST_BYTES: usize = 8 * 1024 * 1024;

/// The server's whole tool list, page after page (`nextCursor`), within [`MAX_TOOL_PAGES`],
/// [`MAX_TOOLS`] and [`MAX_TOOL_LIST_BYTES`]: past one of them the listing stops and fails,
/// so a server that pages forever or lists without end costs bounded memory and time.
pub async fn list_tools(peer: &rmcp::Peer<RoleClient>) -> Result<Vec<Tool>, ConnectError> {
    let (mut tools, mut bytes, mut cursor) = (Vec::new(), 0usize, None);
    for page in 1..=MAX_TOOL_PAGES {
        let params = rmcp::model::PaginatedRequestParams::default().with_cursor(cursor);
        let result = peer
            .list_tools(Some(params))
            .await
            .map_err(|e| ConnectError::ListTools(error_chain(&e)))?;
        bytes += result
            .tools
            .iter()
            .map(|t| serde_json::to_vec(t).map_or(0, |v| v.len()))
            .sum::<usize>();
        tools.extend(result.tools);
        if tools.len() > MAX_TOOLS {
            return Err(ConnectError::ListTools(format!(
                "the server lists more than {MAX_TOOLS} tools (page {page}); mcpo stops there"
            )));
        }
        if bytes > MAX_TOOL_LIST_BYTES {
            return Err(ConnectError::ListTools(format!(
                "the tool list is larger than {} MiB (page {page}); mcpo stops there",
                MAX_TOOL_LIST_BYTES >> 20
            )));
        }
        cursor = result.next_cursor;
        if cursor.is_none() {
            return Ok(tools);
        }
    }
    Err(ConnectError::ListTools(format!(
        "the server answered more than {MAX_TOOL_PAGES} pages (a nextCursor on each); mcpo stops \
         there"
    )))
}

/// Splits the configured headers into rmcp's bearer slot and the rest. rmcp owns the
/// `Authorization` header of streamable HTTP, so a configured `Bearer …` goes there.
fn split_headers(
    headers: &BTreeMap<String, String>,
) -> Result<(Option<String>, HashMap<http::HeaderName, http::HeaderValue>), ConnectError> {
    let mut auth = None;
    let mut custom = HashMap::new();
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("authorization")
            && let Some(token) = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        {
            auth = Some(token.trim().to_owned());
            continue;
        }
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| ConnectError::Header(k.clone()))?;
        let value = http::HeaderValue::from_str(v).map_err(|_| ConnectError::Header(k.clone()))?;
        custom.insert(name, value);
    }
    Ok((auth, custom))
}

/// Starts a stdio server in its own process group, with the environment `child_env` allows
/// (or all of mcpo's with `inherit_env`) and its own `env` over it; under `bwrap` with the
/// arguments `sandbox` gives (see `sandbox::wrap`), which passes that environment on as is.
fn spawn_child(
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&std::path::Path>,
    inherit_env: bool,
    sandbox: Option<(std::path::PathBuf, Vec<String>)>,
) -> Result<(ChildTransport, Option<tokio::process::ChildStderr>), ConnectError> {
    let mut cmd = match sandbox {
        Some((bwrap, wrapper)) => {
            let mut cmd = tokio::process::Command::new(bwrap);
            cmd.args(wrapper).arg(command);
            cmd
        }
        None => tokio::process::Command::new(command),
    };
    if !inherit_env {
        cmd.env_clear().envs(super::child_env::allowed());
    }
    // mcpo's own secrets (Open WebUI's signing keys, the API key) are for verifying callers,
    // not for the tools to read; main removed them from the environment already, and a server
    // that needs one can still get it through `env`.
    for secret in crate::config::secrets::VARIABLES {
        cmd.env_remove(secret);
    }
    cmd.args(args)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
    // Own process group: stopping the server stops the grandchildren npx/uvx start, and a
    // Ctrl-C in mcpo's terminal reaches mcpo only, which then shuts children down in order.
    #[cfg(unix)]
    wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
    wrapped.wrap(process_wrap::tokio::KillOnDrop);
    wrapped
        .spawn()
        .and_then(ChildTransport::new)
        .map_err(|source| ConnectError::Spawn {
            command: command.to_owned(),
            source,
        })
}

/// Logs the child's stderr line by line under the server's name and keeps the last lines,
/// both without the `hidden` values (a user's secrets the child may print).
fn forward_stderr(
    server: String,
    stderr: tokio::process::ChildStderr,
    hidden: Hidden,
) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
    let keep = tail.clone();
    tokio::spawn(async move {
        // Servers write little to stderr, and every server has this task for its whole life:
        // 1 KiB instead of the default 8 KiB (a longer line only takes more reads).
        let mut reader = BufReader::with_capacity(1024, stderr);
        let (mut buf, mut discarding) = (Vec::new(), false);
        loop {
            let more = match read_cut_line(&mut reader, &mut buf, &mut discarding, MAX_STDERR_LINE)
                .await
            {
                LineRead::Line | LineRead::Oversized => true,
                // The child's last words may lack a newline; they are in `buf`.
                LineRead::Eof => false,
                LineRead::Io(_) => break,
            };
            let line = String::from_utf8_lossy(&buf);
            let line = hidden.scrub(line.trim_end());
            let line = line.as_ref();
            if !line.is_empty() {
                tracing::info!(target: "mcpo::upstream::stderr", server = %server, "{line}");
                if let Ok(mut t) = keep.lock() {
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line.to_owned());
                }
            }
            buf.clear();
            if !more {
                break;
            }
        }
    });
    tail
}
