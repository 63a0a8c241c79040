//! The `mcpServers` file (or the single server given after `--`) turned into a validated
//! [`Config`]. Everything past this module reads these types, never raw JSON or clap types.
//!
//! Start-up order (see [`apply_env_flags`] for why): parse the [`crate::cli::Cli`], call
//! `apply_env_flags`, then [`secrets::resolve`] and [`secrets::remove_from_env`] while the
//! process has one thread, then [`from_cli`]. Hot reload calls [`load_file`] again.

mod command_line;
mod dotenv;
mod error;
mod expand;
mod file;
mod jsonc;
pub mod secrets;
mod signing_key;
mod templates;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use command_line::{
    apply_env_flags, from_cli, planned_env, public_url_problems, store_location,
};
pub use error::{COMMAND_LINE, ConfigError, ConfigWarning, Problem};
pub use file::RESERVED_SERVER_NAMES;
pub use signing_key::SigningKey;
#[cfg(test)]
pub(crate) use signing_key::tests as signing_key_tests;
pub use templates::{
    Placeholder, Slot, Template, UserSecret, UserTemplates, UserValues, valid_secret_name,
};

/// Default `--max-body-bytes`: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default `--tool-timeout`.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(300);
/// Default `--connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `oauth.callback_port`.
pub const DEFAULT_OAUTH_CALLBACK_PORT: u16 = 3030;
/// Default `oauth.login_timeout`: how long a login waits for the user to sign in.
pub const DEFAULT_OAUTH_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Read and validate a config file; `${VAR}` is resolved from the process environment.
///
/// The one loading call of start-up, hot reload and `mcpo validate`: what it accepts is
/// ready to run, including every rule of the `oauth` blocks. It reads the file, and the
/// `oauth.signing_key_file` of each server (see [`OAuthConfig::signing_key`]).
pub fn load_file(path: &Path) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_str(&text, &path.display().to_string())
}

/// Validate config text; `source_name` (usually the file name) starts every message.
pub fn from_str(
    text: &str,
    source_name: &str,
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    // mcpo's own secrets were moved out of the environment at start-up (`secrets`).
    from_str_with_env(text, source_name, &secrets::lookup)
}

/// [`from_str`] with `${VAR}` looked up through `lookup` instead of the process environment.
pub fn from_str_with_env(
    text: &str,
    source_name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    file::parse_config(text, source_name, lookup)
}

/// Every upstream server mcpo should connect to, in the order the file lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub servers: Vec<ServerConfig>,
}

/// One entry of `mcpServers`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The key in `mcpServers`; also the URL segment `/{name}/...`.
    pub name: String,
    pub transport: TransportConfig,
    /// Tools hidden from routes and specs (`disabledTools` / `disabled_tools`).
    pub disabled_tools: BTreeSet<String>,
    /// `expose`: what of the server its specs offer a model as operations.
    pub expose: Expose,
    /// Per-call timeout (`timeout`, seconds); `None` means the global default.
    pub timeout: Option<Duration>,
    /// The `oauth` block, validated; only meaningful for streamable HTTP.
    pub oauth: Option<OAuthConfig>,
    /// Open WebUI multi-user mode: one upstream session per verified caller.
    pub multi_user: Option<MultiUser>,
    /// `max_result_bytes`: the most bytes of one tool result passed on; `None`: no limit.
    pub max_result: Option<ResultLimit>,
}

/// How large one tool result may be (`max_result_bytes`), and what happens past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultLimit {
    /// Bytes of the result's text, data and structured content (as JSON), summed.
    pub bytes: usize,
    pub mode: ResultLimitMode,
}

/// What mcpo does with a result over its server's [`ResultLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultLimitMode {
    /// Answer 413 naming the result's size and the limit (the default).
    Refuse,
    /// Cut the text to fit and say so at its end; refused like `Refuse` when what is not
    /// text (images, structured content) alone is over the limit.
    Truncate,
}

/// `expose`: which of the server's offerings its OpenAPI documents carry as operations. Every
/// operation becomes a tool the model sees, so resources and prompts are the operator's choice;
/// their HTTP routes are served either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expose {
    pub tools: bool,
    pub resources: bool,
    pub prompts: bool,
}

impl Default for Expose {
    /// `["tools"]`: the documents mcpo has always served.
    fn default() -> Self {
        Self {
            tools: true,
            resources: false,
            prompts: false,
        }
    }
}

impl Expose {
    /// The words `expose` accepts, in the order they are listed.
    pub const WORDS: [&str; 3] = ["tools", "resources", "prompts"];

    /// The set named by `words` (each one of [`Expose::WORDS`]), or the first word that is not.
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut expose = Self {
            tools: false,
            resources: false,
            prompts: false,
        };
        for word in words {
            match word {
                "tools" => expose.tools = true,
                "resources" => expose.resources = true,
                "prompts" => expose.prompts = true,
                other => return Err(other.to_owned()),
            }
        }
        Ok(expose)
    }
}

/// Per-user sessions for one server (`multi_user`, on the server or in its `oauth` block).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiUser {
    /// HS256 secret Open WebUI signs its JWTs with (server's `webui_secret_key`, else the
    /// global `--webui-secret-key` / `WEBUI_SECRET_KEY`).
    pub secret: String,
    /// A user's session closes after this long without a call or spec fetch.
    pub session_timeout: Duration,
    /// Live per-user sessions kept at most; the least recently used is closed first.
    pub max_sessions: usize,
    /// `per_user_tools`: the tool list differs per user, so a list one user's session showed
    /// is never shown to anyone else (nor written to the shared tool cache).
    pub per_user_tools: bool,
    /// `sandbox` (stdio servers only): every process of this server runs under bubblewrap.
    pub sandbox: Option<Sandbox>,
    /// `user_secrets`: what each user supplies for this server (name → how the credentials
    /// page asks for it).
    pub user_secrets: BTreeMap<String, UserSecret>,
    /// The `{{USER_…}}` templates in `headers`, `env` and `args`, filled in per user.
    pub templates: UserTemplates,
    /// In one user's own config ([`ServerConfig::for_user`]): the secret values filled in,
    /// which the server's stderr and failure texts are scrubbed of. Empty in the loaded file.
    pub hidden: crate::support::redact::Hidden,
}

impl MultiUser {
    /// Whether a user must have supplied secrets before a session of theirs can start.
    pub fn requires_secrets(&self) -> bool {
        self.user_secrets.values().any(|s| !s.optional)
    }
}

/// `"sandbox": true` or `{"writable": [...], "network": false}` on a multi-user stdio server:
/// each user's process runs under bubblewrap in its own pid namespace, with a private `/tmp`,
/// the file system read-only and mcpo's own files hidden (see `upstream::sandbox`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sandbox {
    /// Absolute paths the server may write to (bound read-write); nothing else is writable
    /// but its private `/tmp`.
    pub writable: Vec<PathBuf>,
    /// `network: false`: a network namespace of its own (loopback only, no way out).
    pub network: bool,
}

/// How to reach one upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportConfig {
    Stdio {
        command: String,
        args: Vec<String>,
        /// Merged over the environment the server is given (see `inherit_env`).
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
        /// `inherit_env: true`: the server gets all of mcpo's environment (its own secrets
        /// excepted) instead of the allow-list of `upstream::child_env`. Always so for the
        /// single server given after `--`, which the command line describes whole.
        inherit_env: bool,
    },
    /// Legacy HTTP+SSE (2024-11-05 protocol).
    Sse {
        url: url::Url,
        headers: BTreeMap<String, String>,
    },
    StreamableHttp {
        url: url::Url,
        headers: BTreeMap<String, String>,
    },
}

/// Where OAuth tokens are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenStorage {
    #[default]
    File,
    Memory,
}

/// How mcpo gets tokens for an OAuth server (`oauth.grant_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OAuthGrant {
    /// A user signs in through a browser (loopback or copy/paste) or mcpo's web login.
    #[default]
    AuthorizationCode,
    /// Machine-to-machine: the client's own credentials, no user.
    ClientCredentials,
}

/// The `oauth` block of a streamable-HTTP server (see the OAuth guide), with every rule
/// between its keys already checked: a `ClientCredentials` grant has a `client_id` and
/// exactly one of `client_secret` and `signing_key`; a `signing_key` only comes with that
/// grant; a `client_secret` only with a `client_id`.
#[derive(Clone, PartialEq)]
pub struct OAuthConfig {
    /// Where discovery looks for authorization-server metadata when the MCP endpoint
    /// leads to none (`server_url`).
    pub server_url: Option<url::Url>,
    pub storage_type: TokenStorage,
    pub callback_port: u16,
    pub use_loopback: bool,
    pub grant: OAuthGrant,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `private_key_jwt` (`client_credentials` only): the key of `signing_key_file`, read
    /// when the config is loaded, or of `signing_key` (the PEM text), with
    /// `signing_algorithm`.
    pub signing_key: Option<SigningKey>,
    /// Static RFC 7591 client metadata, kept as given.
    pub client_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// SEP-991 Client ID Metadata Document URL (`client_metadata_url`): https, with a path.
    /// Kept as written: it is the client id, compared as a string.
    pub client_metadata_url: Option<String>,
    /// `scopes` (a string split on spaces, or a list): asked for instead of discovery's
    /// pick. Never empty.
    pub scopes: Option<Vec<String>>,
    /// `login_timeout`: how long a login waits for the user.
    pub login_timeout: Duration,
}

/// By hand so that `client_secret` never reaches a log line or a panic message.
impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("server_url", &self.server_url)
            .field("storage_type", &self.storage_type)
            .field("callback_port", &self.callback_port)
            .field("use_loopback", &self.use_loopback)
            .field("grant", &self.grant)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("signing_key", &self.signing_key)
            .field("client_metadata", &self.client_metadata)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("scopes", &self.scopes)
            .field("login_timeout", &self.login_timeout)
            .finish()
    }
}

/// How the HTTP side is served: everything from the command line that is not a server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    /// `--api-key`: required as `Authorization: Bearer` on tool routes.
    pub api_key: Option<String>,
    /// `--strict-auth`: the key also protects docs and specs; HTTP Basic accepted.
    pub strict_auth: bool,
    /// Origins browsers may call from: `--cors-allow-origins` plus the origins of
    /// `--public-url` and `--webui-url`, each as `scheme://host[:port]`; `*` means any origin
    /// (without credentials). Empty by default: no cross-origin access.
    pub cors_allow_origins: Vec<String>,
    /// `--allowed-hosts`: which `Host` headers are answered (against DNS rebinding).
    pub allowed_hosts: AllowedHosts,
    /// Normalised to start and end with `/` (`"/"` by default).
    pub path_prefix: String,
    /// `--root-path`: the sub-path a reverse proxy serves us under ("" by default, no trailing `/`).
    pub root_path: String,
    pub tls: Option<TlsFiles>,
    /// Root document title (`--name`), description (`--description`), version (`--api-version`).
    pub name: String,
    pub description: String,
    pub api_version: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Single-server mode (`mcpo -- cmd`): the one server's routes sit at the prefix root.
    pub single_server: bool,
    /// The `--config` file the servers came from (`None` in single-server mode).
    pub config_path: Option<PathBuf>,
    /// `--hot-reload`: watch `config_path` (only ever true when there is one).
    pub hot_reload: bool,
    /// How the upstream supervisors behave (timeouts, backoff, limits).
    pub upstream: UpstreamOptions,
    /// `--webui-url`: Open WebUI's base URL (resolves `sk-…` API keys).
    pub webui_url: Option<String>,
    /// `--webui-user-jwt-secret`: verifies Open WebUI's signed `X-OpenWebUI-User-Jwt` header.
    pub webui_user_jwt_secret: Option<String>,
    /// `--public-url`: where users reach mcpo (login links, the OAuth callback), an http(s)
    /// URL without a trailing `/`, query or credentials.
    pub public_url: Option<String>,
    /// `--trust-forwarded-headers`: `X-Forwarded-Host`/`-Proto` tell the address a browser
    /// used (a reverse proxy sets them); otherwise they are never read.
    pub trust_forwarded_headers: bool,
    /// `--store` and `--store-prefix`: the token folder, or a Redis several replicas share
    /// (installed as the process's shared store at start-up, `app::run`).
    pub store: crate::store::Location,
}

/// Which `Host` a request may name (`--allowed-hosts`). A page on a domain that resolves to
/// 127.0.0.1 (DNS rebinding) reaches a loopback mcpo as a same-origin page, with its own name
/// as `Host`, so a loopback mcpo answers only the names it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// No check (`*`, and the default when listening on a non-loopback address).
    Any,
    /// Lowercase `host` (any port) or `host:port` entries; IPv6 addresses in brackets.
    Only(Vec<String>),
}

/// How every upstream session is supervised: the command line's knobs, applied to every server
/// (the one type `upstream` and `servers` read; its defaults are the flags' defaults, which a
/// test in `command_line.rs` keeps equal).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamOptions {
    /// Time allowed for spawning/connecting plus the MCP `initialize` handshake and `tools/list`.
    pub connect_timeout: Duration,
    /// Per-call timeout when the server entry sets none.
    pub tool_timeout: Duration,
    /// How long the daemon waits for calls in flight when it stops.
    pub shutdown_grace: Duration,
    /// First retry delay after a failed connect; doubles up to `reconnect_max_delay`.
    pub reconnect_min_delay: Duration,
    pub reconnect_max_delay: Duration,
    /// Idle time between MCP pings; zero disables them.
    pub keepalive_interval: Duration,
    /// How long a call waits for a reconnecting server before 503.
    pub reconnect_wait: Duration,
    /// Calls in flight at once per server, and calls allowed to wait for a slot.
    pub max_concurrent_calls: usize,
    pub max_queued_calls: usize,
    /// mcpo's own files a sandboxed server must not see, besides those the sandbox finds
    /// itself (`~/.mcpo` and the token folder): the config file, the tool cache folder.
    pub private_paths: Vec<PathBuf>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tool_timeout: DEFAULT_TOOL_TIMEOUT,
            shutdown_grace: Duration::from_secs(10),
            reconnect_min_delay: Duration::from_secs(1),
            reconnect_max_delay: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(30),
            reconnect_wait: Duration::from_secs(5),
            max_concurrent_calls: 256,
            max_queued_calls: 1024,
            private_paths: Vec::new(),
        }
    }
}

impl Default for ServeOptions {
    /// The command-line defaults, with no API key, TLS or config file.
    fn default() -> Self {
        ServeOptions {
            host: "0.0.0.0".to_owned(),
            port: 8000,
            api_key: None,
            strict_auth: false,
            cors_allow_origins: Vec::new(),
            allowed_hosts: AllowedHosts::Any,
            path_prefix: "/".to_owned(),
            root_path: String::new(),
            tls: None,
            name: "MCP OpenAPI Proxy".to_owned(),
            description: "Automatically generated API from MCP Tool Schemas".to_owned(),
            api_version: "1.0".to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            single_server: false,
            config_path: None,
            hot_reload: false,
            upstream: UpstreamOptions::default(),
            webui_url: None,
            webui_user_jwt_secret: None,
            public_url: None,
            trust_forwarded_headers: false,
            store: crate::store::Location::File,
        }
    }
}

/// `--ssl-certfile` / `--ssl-keyfile`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
