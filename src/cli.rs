//! Command-line flags (Python mcpo compatible), as a clap derive. Nothing else lives here:
//! [`crate::config::from_cli`] turns a [`Cli`] into the validated configuration.
//!
//! Two deliberate differences from Python mcpo: `-h` is `--help` (Python: host; use `--host`)
//! and `-V`/`--version` prints mcpo's own version (Python: the API version; use `--api-version`
//! or `-v`).
//!
//! The server command is only taken after `--` (`last = true`), so the subcommands
//! (`pub action: Option<Action>`: `mcpo validate`, `tools`, `auth`, …) never change how
//! `mcpo -- validate ...` parses; [`Cli::check_mode`] accepts a subcommand without a server.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  mcpo --port 8000 --api-key top-secret -- uvx mcp-server-time --local-timezone=America/New_York
  mcpo --type streamable-http -- http://127.0.0.1:8080/mcp
  mcpo --config config.json --hot-reload

Every option can also be set with an MCPO_* environment variable (shown in brackets).
Differences from Python mcpo: -h is --help (use --host), -V/--version prints mcpo's version
(use --api-version or -v for the API version).";

/// Publish the tools of MCP servers as a plain HTTP/OpenAPI tool server.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcpo", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "MCPO_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(short, long, env = "MCPO_PORT", default_value_t = 8000)]
    pub port: u16,

    /// API key that callers must send as `Authorization: Bearer <key>` on tool routes. On the
    /// command line it is visible to every local user: prefer MCPO_API_KEY or --api-key-file.
    #[arg(short = 'k', long, env = "MCPO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// File holding the API key (its final line break ignored), e.g. a Docker secret.
    #[arg(long, env = "MCPO_API_KEY_FILE", value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Also require the API key for /docs and the OpenAPI specs (HTTP Basic accepted too).
    #[arg(long, env = "MCPO_STRICT_AUTH", value_parser = BoolishValueParser::new())]
    pub strict_auth: bool,

    /// Origin allowed to call from a browser; repeat or separate with commas. "*" allows any,
    /// without credentials. Default: none (plus the origins of --public-url and --webui-url).
    #[arg(
        long,
        env = "MCPO_CORS_ALLOW_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_allow_origins: Vec<String>,

    /// Host names (or host:port) requests may be addressed to; "*" allows any. Default on a
    /// loopback --host: localhost, 127.0.0.1, [::1] and the hosts of --public-url/--webui-url.
    #[arg(
        long,
        env = "MCPO_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Set an environment variable for mcpo and every server it starts; repeatable.
    #[arg(short, long, env = "MCPO_ENV", value_name = "KEY=VALUE", value_parser = parse_env_assignment)]
    pub env: Vec<(String, String)>,

    /// Load environment variables from a dotenv file (variables already set win).
    #[arg(long, env = "MCPO_ENV_PATH", value_name = "FILE")]
    pub env_path: Option<PathBuf>,

    /// Transport of the server given after `--` [default: stdio].
    #[arg(
        long = "type",
        visible_alias = "server-type",
        env = "MCPO_TYPE",
        value_enum
    )]
    pub server_type: Option<ServerType>,

    /// Config file with several servers (Claude Desktop `mcpServers` format, comments allowed).
    #[arg(short, long, env = "MCPO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Watch the config file and apply changes without a restart.
    #[arg(long, env = "MCPO_HOT_RELOAD", value_parser = BoolishValueParser::new())]
    pub hot_reload: bool,

    /// Title of the OpenAPI documents.
    #[arg(short, long, env = "MCPO_NAME", default_value = "MCP OpenAPI Proxy")]
    pub name: String,

    /// Description of the OpenAPI documents.
    #[arg(
        short,
        long,
        env = "MCPO_DESCRIPTION",
        default_value = "Automatically generated API from MCP Tool Schemas"
    )]
    pub description: String,

    /// Version of the OpenAPI documents (Python mcpo's `--version`/`-v`).
    #[arg(short = 'v', long, env = "MCPO_API_VERSION", default_value = "1.0")]
    pub api_version: String,

    /// TLS certificate (PEM); serve HTTPS. Needs --ssl-keyfile.
    #[arg(short = 't', long, env = "MCPO_SSL_CERTFILE", value_name = "FILE")]
    pub ssl_certfile: Option<PathBuf>,

    /// TLS private key (PEM). Needs --ssl-certfile.
    #[arg(short = 'K', long, env = "MCPO_SSL_KEYFILE", value_name = "FILE")]
    pub ssl_keyfile: Option<PathBuf>,

    /// Sub-path a reverse proxy serves mcpo under (like /mcpo); used in links and specs.
    #[arg(long, env = "MCPO_ROOT_PATH", value_name = "PATH", default_value = "")]
    pub root_path: String,

    /// Prefix for the per-server routes: {prefix}{server}/{tool}.
    #[arg(
        long,
        env = "MCPO_PATH_PREFIX",
        value_name = "PREFIX",
        default_value = "/"
    )]
    pub path_prefix: String,

    /// What the spec of the server after `--` offers as operations: tools, resources, prompts
    /// (comma-separated; default tools). With --config, set "expose" per server instead.
    #[arg(long, env = "MCPO_EXPOSE", value_name = "KINDS", value_delimiter = ',')]
    pub expose: Vec<String>,

    /// Headers for the sse / streamable-http server after `--`: a JSON object, or `Name: value`; repeatable.
    #[arg(short = 'H', long, env = "MCPO_HEADER", value_name = "JSON")]
    pub header: Vec<String>,

    /// Log level: trace, debug, info, warn(ing), error, critical, off. RUST_LOG, if set, wins.
    #[arg(
        long,
        env = "MCPO_LOG_LEVEL",
        value_enum,
        ignore_case = true,
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Log line format: human-readable text, or one JSON object per line for log collectors.
    #[arg(long, env = "MCPO_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Let the MCP library log whole messages at debug/trace level (tool arguments and results,
    /// notifications, OAuth authorization codes). Off by default, whatever the log level or
    /// RUST_LOG say: those may hold secrets and personal data.
    #[arg(long, env = "MCPO_LOG_PAYLOADS", value_parser = BoolishValueParser::new())]
    pub log_payloads: bool,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MCPO_MAX_BODY_BYTES", value_name = "BYTES", default_value = "10485760", value_parser = parse_positive_bytes)]
    pub max_body_bytes: usize,

    /// Seconds a tool call may take when its server sets no `timeout` (fractions allowed).
    #[arg(long, env = "MCPO_TOOL_TIMEOUT", value_name = "SECONDS", default_value = "300", value_parser = parse_seconds)]
    pub tool_timeout: Duration,

    /// Seconds allowed for connecting to and initializing one server (fractions allowed).
    #[arg(long, env = "MCPO_CONNECT_TIMEOUT", value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub connect_timeout: Duration,

    /// Seconds in-flight calls may take to finish after SIGINT/SIGTERM before mcpo stops anyway.
    #[arg(long, env = "MCPO_SHUTDOWN_GRACE", value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub shutdown_grace: Duration,

    /// First delay before reconnecting a failed server; doubles up to --reconnect-max-delay.
    #[arg(long, env = "MCPO_RECONNECT_MIN_DELAY", value_name = "SECONDS", default_value = "1", value_parser = parse_seconds)]
    pub reconnect_min_delay: Duration,

    /// Longest delay between reconnect attempts.
    #[arg(long, env = "MCPO_RECONNECT_MAX_DELAY", value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub reconnect_max_delay: Duration,

    /// Seconds between MCP pings on an idle session, so dead connections are noticed before a
    /// call hits them.
    #[arg(long, env = "MCPO_KEEPALIVE_INTERVAL", value_name = "SECONDS", default_value = "30", value_parser = parse_seconds_or_zero)]
    pub keepalive_interval: Duration,

    /// Seconds a call to a server that is reconnecting waits for it before answering 503.
    #[arg(long, env = "MCPO_RECONNECT_WAIT", value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub reconnect_wait: Duration,

    /// Calls in flight at once per server; more wait in a queue.
    #[arg(
        long,
        env = "MCPO_MAX_CONCURRENT_CALLS",
        value_name = "N",
        default_value = "256"
    )]
    pub max_concurrent_calls: usize,

    /// Calls waiting per server beyond --max-concurrent-calls; more are refused with 503.
    #[arg(
        long,
        env = "MCPO_MAX_QUEUED_CALLS",
        value_name = "N",
        default_value = "1024"
    )]
    pub max_queued_calls: usize,

    /// Open WebUI's WEBUI_SECRET_KEY: verifies callers' JWTs for servers in multi-user mode.
    #[arg(
        long,
        env = "WEBUI_SECRET_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webui_secret_key: Option<String>,

    /// File holding Open WebUI's WEBUI_SECRET_KEY (its final line break ignored).
    #[arg(long, env = "WEBUI_SECRET_KEY_FILE", value_name = "FILE")]
    pub webui_secret_key_file: Option<PathBuf>,

    /// Open WebUI's base URL, used to resolve `sk-…` API keys to users.
    #[arg(long, env = "WEBUI_URL", value_name = "URL")]
    pub webui_url: Option<String>,

    /// Open WebUI's FORWARD_USER_INFO_HEADER_JWT_SECRET: verifies its signed X-OpenWebUI-User-Jwt
    /// header, then accepted as the caller's identity on multi-user servers.
    #[arg(
        long,
        env = "FORWARD_USER_INFO_HEADER_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webui_user_jwt_secret: Option<String>,

    /// File holding Open WebUI's FORWARD_USER_INFO_HEADER_JWT_SECRET (its final line break
    /// ignored).
    #[arg(
        long,
        env = "FORWARD_USER_INFO_HEADER_JWT_SECRET_FILE",
        value_name = "FILE"
    )]
    pub webui_user_jwt_secret_file: Option<PathBuf>,

    /// The URL users reach mcpo at (login links, the OAuth callback, an allowed origin and
    /// host); required for multi-user servers with OAuth.
    #[arg(long, env = "MCPO_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Believe X-Forwarded-Host/-Proto about the address a browser used (only behind a
    /// reverse proxy that sets them, replacing what clients send).
    #[arg(long, env = "MCPO_TRUST_FORWARDED_HEADERS", value_parser = BoolishValueParser::new())]
    pub trust_forwarded_headers: bool,

    /// Python mcpo's header-forwarding config; accepted so old command lines run, but ignored.
    #[arg(long, env = "MCPO_CLIENT_HEADER_FORWARDING", hide = true)]
    pub client_header_forwarding: Option<String>,

    /// The key that encrypts stored OAuth credentials: a file holding base64 of 32 random
    /// bytes. MCPO_STORE_KEY (the base64 itself) wins; with neither, store.key next to the
    /// token folder (~/.mcpo/store.key), created on first use.
    #[arg(long, env = "MCPO_STORE_KEY_FILE", value_name = "FILE", global = true)]
    pub store_key_file: Option<PathBuf>,

    /// Where tokens, client registrations and users' secrets are kept: `file` (the token
    /// folder, ~/.mcpo/tokens) or a Redis several replicas share, `redis://[user:pass@]host:port/db`
    /// or `rediss://…` (TLS); Redis needs MCPO_STORE_KEY or --store-key-file. A password on the
    /// command line is visible to every local user: prefer MCPO_STORE.
    #[arg(
        long,
        env = "MCPO_STORE",
        value_name = "URL",
        hide_env_values = true,
        default_value = "file",
        global = true
    )]
    pub store: String,

    /// Prefix of every key mcpo writes to a Redis store, so one Redis can serve several
    /// deployments.
    #[arg(
        long,
        env = "MCPO_STORE_PREFIX",
        value_name = "PREFIX",
        default_value = "mcpo:",
        global = true
    )]
    pub store_prefix: String,

    /// The MCP server: a command and its arguments, or (with --type sse|streamable-http) its URL.
    #[arg(last = true, value_name = "COMMAND_OR_URL", allow_hyphen_values = true)]
    pub command: Vec<String>,

    /// Something other than serving: check a config, list tools, shell completions, man page.
    #[command(subcommand)]
    pub action: Option<Action>,
}

/// `mcpo <action>`: tools for operators, run instead of the daemon.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Check a config file without starting anything; prints every problem, exit code 0 or 2.
    Validate {
        /// The config file to check.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Connect to the servers of a config file and list the tools each one exposes.
    Tools {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Only this server.
        server: Option<String>,
    },
    /// Log in to an OAuth-protected server ahead of time, or forget its tokens.
    Auth {
        #[command(subcommand)]
        op: AuthOp,
    },
    /// Stored credentials: list them (no values), or encrypt them under a new key.
    Store {
        #[command(subcommand)]
        op: StoreOp,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// `mcpo auth login|logout`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuthOp {
    /// Run the OAuth login for a server now (browser or pasted URL, as configured).
    Login {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The server to log in to.
        server: String,
    },
    /// Delete a server's stored tokens and client registration.
    Logout {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The server to forget.
        server: String,
    },
}

/// `mcpo store list|rekey`: the store key and token folder as the daemon finds them
/// (`MCPO_STORE_KEY`, `--store-key-file`, `MCPO_TOKEN_DIR`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StoreOp {
    /// Show which servers and users have stored credentials, and whether the store key opens
    /// them; never their values.
    List {
        /// Accepted for symmetry with the other commands; the store needs no config.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Re-encrypt every stored credential with a new key, each file replaced atomically.
    /// Stop mcpo first; then start it with the new key.
    Rekey {
        /// The new key: a file holding base64 of 32 random bytes (else MCPO_NEW_STORE_KEY;
        /// with neither, a new random key replaces the default store.key when done).
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        /// Accepted for symmetry with the other commands; the store needs no config.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How to reach the single server given after `--`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerType {
    /// Run a local command and talk over its stdin/stdout.
    Stdio,
    /// Legacy HTTP+SSE.
    Sse,
    /// Streamable HTTP.
    #[value(
        name = "streamable-http",
        alias = "streamable_http",
        alias = "streamablehttp",
        alias = "http"
    )]
    StreamableHttp,
}

/// `--log-level`, accepting Python's names too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    #[value(alias = "warning")]
    Warn,
    #[value(alias = "critical", alias = "fatal")]
    Error,
    Off,
}

impl LogLevel {
    /// The `tracing_subscriber::EnvFilter` directive for this level (used when RUST_LOG is unset).
    pub fn as_directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

impl Cli {
    /// Parse `std::env::args_os()`; print help, version or a usage error and exit (code 2 on
    /// errors) like clap does, including when neither `--config` nor a command is given.
    pub fn parse_and_check() -> Cli {
        let cli = Cli::parse();
        if let Err(err) = cli.check_mode() {
            err.exit();
        }
        cli
    }

    /// [`Cli::parse_and_check`] for given arguments, returning the error instead of exiting.
    pub fn try_parse_and_check_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        cli.check_mode()?;
        Ok(cli)
    }

    /// A server must come from somewhere: `--config FILE` or a command after `--`.
    pub fn check_mode(&self) -> Result<(), clap::Error> {
        if self.action.is_some() || self.config.is_some() || !self.command.is_empty() {
            return Ok(());
        }
        Err(Cli::command().error(
            ErrorKind::MissingRequiredArgument,
            "no MCP server given: use --config FILE, or put the server command after '--'\n\n\
             Examples:\n  \
             mcpo --port 8000 -- uvx mcp-server-time --local-timezone=America/New_York\n  \
             mcpo --config config.json",
        ))
    }
}

/// `KEY=VALUE` for `--env`.
fn parse_env_assignment(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))?;
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        return Err(format!("'{text}' is not KEY=VALUE with a non-empty KEY"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// A positive, finite number of seconds, like `30` or `2.5`.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!("'{text}' must be more than 0 seconds"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' seconds is too long"))
}

/// Like [`parse_seconds`], but 0 is allowed (it turns the feature off).
fn parse_seconds_or_zero(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text)
}

fn parse_positive_bytes(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1 byte".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a whole number of bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_and_check_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        match Cli::try_parse_and_check_from(args) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn python_style_stdio_invocation() {
        let cli = parse(&[
            "mcpo",
            "--port",
            "8000",
            "--api-key",
            "top-secret",
            "--",
            "uvx",
            "mcp-server-time",
            "--local-timezone=America/New_York",
        ]);
        assert_eq!(cli.port, 8000);
        assert_eq!(cli.api_key.as_deref(), Some("top-secret"));
        assert_eq!(
            cli.command,
            [
                "uvx",
                "mcp-server-time",
                "--local-timezone=America/New_York"
            ]
        );
        assert_eq!(cli.server_type, None);
        assert!(cli.config.is_none());
    }

    #[test]
    fn python_style_remote_invocation() {
        let cli = parse(&[
            "mcpo",
            "--type",
            "streamable-http",
            "--",
            "http://127.0.0.1:8080/mcp",
        ]);
        assert_eq!(cli.server_type, Some(ServerType::StreamableHttp));
        assert_eq!(cli.command, ["http://127.0.0.1:8080/mcp"]);
    }

    #[test]
    fn python_style_config_invocation() {
        let cli = parse(&["mcpo", "-c", "config.json", "--hot-reload"]);
        assert_eq!(cli.config, Some(PathBuf::from("config.json")));
        assert!(cli.hot_reload);
        assert!(cli.command.is_empty());
    }

    #[test]
    fn defaults_match_python_mcpo() {
        let cli = parse(&["mcpo", "--", "cmd"]);
        assert_eq!(cli.host, "0.0.0.0");
        assert_eq!(cli.port, 8000);
        // Python mcpo allows any origin; mcpo allows none unless told (#19 item 7).
        assert!(cli.cors_allow_origins.is_empty());
        assert_eq!(cli.name, "MCP OpenAPI Proxy");
        assert_eq!(
            cli.description,
            "Automatically generated API from MCP Tool Schemas"
        );
        assert_eq!(cli.api_version, "1.0");
        assert_eq!(cli.path_prefix, "/");
        assert_eq!(cli.root_path, "");
        assert_eq!(cli.log_level, LogLevel::Info);
        assert_eq!(cli.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(cli.tool_timeout, Duration::from_secs(300));
        assert_eq!(cli.connect_timeout, Duration::from_secs(30));
        assert!(!cli.strict_auth && !cli.hot_reload);
    }

    #[test]
    fn short_flags() {
        let cli = parse(&[
            "mcpo", "-p", "9000", "-k", "key", "-e", "A=1", "-e", "B=x=y", "-n", "N", "-d", "D",
            "-v", "2.0", "-t", "c.pem", "-K", "k.pem", "-H", "{}", "-c", "f.json",
        ]);
        assert_eq!(cli.port, 9000);
        assert_eq!(cli.api_key.as_deref(), Some("key"));
        assert_eq!(
            cli.env,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!((cli.name.as_str(), cli.description.as_str()), ("N", "D"));
        assert_eq!(cli.api_version, "2.0");
        assert_eq!(cli.ssl_certfile, Some(PathBuf::from("c.pem")));
        assert_eq!(cli.ssl_keyfile, Some(PathBuf::from("k.pem")));
        assert_eq!(cli.header, ["{}"]);
    }

    #[test]
    fn server_type_aliases() {
        for (value, expected) in [
            ("stdio", ServerType::Stdio),
            ("sse", ServerType::Sse),
            ("streamable-http", ServerType::StreamableHttp),
            ("streamable_http", ServerType::StreamableHttp),
            ("streamablehttp", ServerType::StreamableHttp),
            ("http", ServerType::StreamableHttp),
        ] {
            let cli = parse(&["mcpo", "--server-type", value, "--", "x"]);
            assert_eq!(cli.server_type, Some(expected), "{value}");
        }
        parse_err(&["mcpo", "--type", "websocket", "--", "x"]);
    }

    #[test]
    fn python_log_level_names() {
        for (value, expected) in [
            ("DEBUG", LogLevel::Debug),
            ("INFO", LogLevel::Info),
            ("WARNING", LogLevel::Warn),
            ("warn", LogLevel::Warn),
            ("ERROR", LogLevel::Error),
            ("CRITICAL", LogLevel::Error),
            ("trace", LogLevel::Trace),
        ] {
            let cli = parse(&["mcpo", "--log-level", value, "--", "x"]);
            assert_eq!(cli.log_level, expected, "{value}");
        }
        assert_eq!(LogLevel::Warn.as_directive(), "warn");
    }

    #[test]
    fn repeatable_and_comma_separated_origins() {
        let cli = parse(&[
            "mcpo",
            "--cors-allow-origins",
            "https://a.example",
            "--cors-allow-origins",
            "https://b.example,https://c.example",
            "--",
            "x",
        ]);
        assert_eq!(
            cli.cors_allow_origins,
            [
                "https://a.example",
                "https://b.example",
                "https://c.example"
            ]
        );
    }

    #[test]
    fn command_keeps_hyphens_and_is_only_taken_after_double_dash() {
        let cli = parse(&["mcpo", "-p", "1", "--", "npx", "-y", "--port", "9", "--"]);
        assert_eq!(cli.command, ["npx", "-y", "--port", "9", "--"]);
        assert_eq!(cli.port, 1);
        // Without `--` a bare word is refused (Python mcpo also requires `--`).
        assert_eq!(
            parse_err(&["mcpo", "uvx", "mcp-server-time"]).kind(),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn neither_config_nor_command_is_a_usage_error() {
        for args in [&["mcpo"][..], &["mcpo", "--port", "1"], &["mcpo", "--"]] {
            let err = parse_err(args);
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
            assert_eq!(err.exit_code(), 2);
            let text = err.to_string();
            assert!(
                text.contains("--config") && text.contains("mcpo --port 8000 --"),
                "{text}"
            );
        }
    }

    #[test]
    fn config_and_command_together_parse() {
        // from_cli decides (the config wins, with a warning).
        let cli = parse(&["mcpo", "--config", "c.json", "--", "uvx", "x"]);
        assert!(cli.config.is_some() && !cli.command.is_empty());
    }

    #[test]
    fn help_and_version_are_ours() {
        assert_eq!(parse_err(&["mcpo", "-h"]).kind(), ErrorKind::DisplayHelp);
        assert_eq!(parse_err(&["mcpo", "-V"]).kind(), ErrorKind::DisplayVersion);
        assert_eq!(
            parse_err(&["mcpo", "--version"]).kind(),
            ErrorKind::DisplayVersion
        );
    }

    #[test]
    fn numeric_flags_are_checked() {
        let cli = parse(&[
            "mcpo",
            "--tool-timeout",
            "2.5",
            "--connect-timeout",
            "0.25",
            "--max-body-bytes",
            "1024",
            "--",
            "x",
        ]);
        assert_eq!(cli.tool_timeout, Duration::from_millis(2500));
        assert_eq!(cli.connect_timeout, Duration::from_millis(250));
        assert_eq!(cli.max_body_bytes, 1024);
        for bad in [
            &["mcpo", "--tool-timeout", "0", "--", "x"][..],
            &["mcpo", "--tool-timeout=-1", "--", "x"],
            &["mcpo", "--tool-timeout", "NaN", "--", "x"],
            &["mcpo", "--connect-timeout", "soon", "--", "x"],
            &["mcpo", "--max-body-bytes", "0", "--", "x"],
            &["mcpo", "--port", "70000", "--", "x"],
            &["mcpo", "-e", "NOEQUALS", "--", "x"],
            &["mcpo", "-e", "=value", "--", "x"],
        ] {
            assert_eq!(parse_err(bad).kind(), ErrorKind::ValueValidation, "{bad:?}");
        }
    }

    #[test]
    fn hidden_python_flag_is_accepted() {
        let cli = parse(&["mcpo", "--client-header-forwarding", "{}", "--", "x"]);
        assert_eq!(cli.client_header_forwarding.as_deref(), Some("{}"));
    }
}
