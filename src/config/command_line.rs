//! The parsed command line turned into [`ServeOptions`] and the servers to run: the config file
//! when `--config` is given, otherwise the single server after `--`. Also the one place that
//! sets variables in the process environment (`--env`, `--env-path`; `secrets` removes mcpo's
//! own).

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{Cli, ServerType};

use super::error::{COMMAND_LINE, ConfigError, ConfigWarning, Problem};
use super::file::{check_header, parse_http_url};
use super::secrets;
use super::{
    AllowedHosts, Config, Expose, ServeOptions, ServerConfig, TlsFiles, TransportConfig, dotenv,
    load_file,
};
use crate::store::Location;
use crate::store::key as store_key;

/// The variables `--env-path` and `--env` would set, in the order to set them.
///
/// Dotenv entries whose name `lookup` already knows are left out (the environment wins, as with
/// python-dotenv's default); `--env` values come last and always win.
pub fn planned_env(
    cli: &Cli,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut planned = Vec::new();
    if let Some(path) = &cli.env_path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let entries = dotenv::parse(&text, lookup).map_err(|err| ConfigError::EnvFile {
            path: path.clone(),
            line: err.line,
            message: err.message,
        })?;
        planned.extend(entries.into_iter().filter(|(key, _)| lookup(key).is_none()));
    }
    planned.extend(cli.env.iter().cloned());
    Ok(planned)
}

/// Apply `--env-path` and `--env` to mcpo's own environment, which every stdio server inherits
/// and `${VAR}` in the config file reads. Returns the names it set.
///
/// # Safety
///
/// Calls [`std::env::set_var`], so no other thread may exist: call it first thing in `main`,
/// before starting the tokio runtime, tracing's background workers or anything else that spawns.
pub unsafe fn apply_env_flags(cli: &Cli) -> Result<Vec<String>, ConfigError> {
    let lookup =
        |name: &str| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned());
    let mut names = Vec::new();
    for (key, value) in planned_env(cli, &lookup)? {
        // Both parsers reject these already; set_var would panic on them.
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            continue;
        }
        // SAFETY: the caller guarantees the process is still single-threaded.
        unsafe { std::env::set_var(&key, &value) };
        names.push(key);
    }
    Ok(names)
}

/// Validate the command line and load the servers it names. Call [`apply_env_flags`] first so
/// `${VAR}` in the config file sees `--env` and `--env-path`.
pub fn from_cli(cli: &Cli) -> Result<(Config, ServeOptions, Vec<ConfigWarning>), ConfigError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let options = serve_options(cli, &mut problems, &mut warnings);

    let servers = match &cli.config {
        Some(path) => {
            ignored_with_config(cli, &mut warnings);
            load_file(path)
        }
        None => single_server(cli, &mut problems, &mut warnings)
            .map(|server| {
                (
                    Config {
                        servers: vec![server],
                    },
                    Vec::new(),
                )
            })
            .ok_or_else(|| ConfigError::Invalid {
                problems: Vec::new(),
            }),
    };
    if let Ok((config, _)) = &servers {
        problems.extend(public_url_problems(cli.public_url.as_deref(), config));
        warn_unfilled_profile(&options, config, &mut warnings);
    }
    match servers {
        Ok((config, file_warnings)) if problems.is_empty() => {
            warnings.extend(file_warnings);
            Ok((config, options, warnings))
        }
        Ok(_) => Err(ConfigError::Invalid { problems }),
        Err(ConfigError::Invalid {
            problems: file_problems,
        }) => {
            problems.extend(file_problems);
            Err(ConfigError::Invalid { problems })
        }
        // A file that cannot be read or parsed: that alone, unless the flags are wrong too.
        Err(other) if problems.is_empty() => Err(other),
        Err(other) => {
            problems.push(Problem::new(COMMAND_LINE, None, None, other.to_string()));
            Err(ConfigError::Invalid { problems })
        }
    }
}

fn serve_options(
    cli: &Cli,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<ConfigWarning>,
) -> ServeOptions {
    let mut problem = |flag: &str, message: String| {
        problems.push(Problem::new(COMMAND_LINE, None, Some(flag), message));
    };
    let mut warn = |flag: &str, message: &str| {
        warnings.push(ConfigWarning::new(COMMAND_LINE, None, Some(flag), message));
    };

    let host = cli.host.trim().to_owned();
    if host.is_empty() {
        problem(
            "--host",
            "must not be empty (0.0.0.0 listens everywhere)".to_owned(),
        );
    }
    let api_key = match cli.api_key.as_deref() {
        Some("") => {
            warn("--api-key", "is empty, so tool routes are not protected");
            None
        }
        other => other.map(str::to_owned),
    };
    // Weak secrets: the API key and the user-info secret only weaken mcpo's own check (a
    // warning); whoever guesses WEBUI_SECRET_KEY can sign in to Open WebUI as anyone (refused).
    if let Some(why) = api_key.as_deref().and_then(secrets::weakness) {
        warn("--api-key", &why);
    }
    if let Some(why) = cli
        .webui_user_jwt_secret
        .as_deref()
        .and_then(secrets::weakness)
    {
        warn("--webui-user-jwt-secret", &why);
    }
    if let Some(why) = cli.webui_secret_key.as_deref().and_then(secrets::weakness) {
        problem("--webui-secret-key", why);
    }
    if cli.strict_auth && api_key.is_none() {
        warn("--strict-auth", "has no effect without --api-key");
    }
    let path_prefix = match path_segments(&cli.path_prefix) {
        Ok(segments) if segments.is_empty() => "/".to_owned(),
        Ok(segments) => format!("/{}/", segments.join("/")),
        Err(message) => {
            problem("--path-prefix", message);
            "/".to_owned()
        }
    };
    let root_path = match path_segments(&cli.root_path) {
        Ok(segments) if segments.is_empty() => String::new(),
        Ok(segments) => format!("/{}", segments.join("/")),
        Err(message) => {
            problem("--root-path", message);
            String::new()
        }
    };
    let tls = match (&cli.ssl_certfile, &cli.ssl_keyfile) {
        (Some(cert), Some(key)) => {
            for (flag, path) in [("--ssl-certfile", cert), ("--ssl-keyfile", key)] {
                if !path.is_file() {
                    problem(
                        flag,
                        format!("is '{}', which is not a file", path.display()),
                    );
                }
            }
            Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
        }
        (Some(_), None) => {
            problem(
                "--ssl-keyfile",
                "is required with --ssl-certfile (give both or neither)".to_owned(),
            );
            None
        }
        (None, Some(_)) => {
            problem(
                "--ssl-certfile",
                "is required with --ssl-keyfile (give both or neither)".to_owned(),
            );
            None
        }
        (None, None) => None,
    };
    if cli.hot_reload && cli.config.is_none() {
        warn("--hot-reload", "only applies with --config; ignored");
    }
    if let Some(url) = cli.webui_url.as_deref().map(str::trim)
        && !url.is_empty()
        && !url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    {
        problem(
            "--webui-url",
            format!(
                "is '{url}'; it must be Open WebUI's http(s) base URL, like http://localhost:8080"
            ),
        );
    }
    let public_url = cli
        .public_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .and_then(|url| match public_url(url) {
            Ok(url) => Some(url),
            Err(why) => {
                let shown = crate::support::redact::url(url);
                problem("--public-url", format!("is '{shown}'; {why}"));
                None
            }
        });
    let mut cors_allow_origins = Vec::new();
    for given in cli.cors_allow_origins.iter().map(|o| o.trim()) {
        match origin_of(given) {
            _ if given.is_empty() => {}
            Ok(origin) => cors_allow_origins.push(origin),
            Err(why) => problem("--cors-allow-origins", format!("has '{given}'; {why}")),
        }
    }
    let ours = [
        public_url.as_deref(),
        cli.webui_url.as_deref().map(str::trim),
    ];
    // The pages users open mcpo at, and Open WebUI's (direct tool server connections).
    for url in ours.into_iter().flatten() {
        if let Ok(url) = url::Url::parse(url)
            && url.origin().is_tuple()
        {
            cors_allow_origins.push(url.origin().ascii_serialization());
        }
    }
    dedup(&mut cors_allow_origins);
    let allowed_hosts = match allowed_hosts(cli, &host, &ours) {
        Ok(hosts) => hosts,
        Err(why) => {
            problem("--allowed-hosts", why);
            AllowedHosts::Any
        }
    };
    let store = match store_location(cli) {
        Ok(store) => store,
        Err((flag, why)) => {
            problem(flag, why);
            Location::File
        }
    };
    if cli.client_header_forwarding.is_some() {
        warn(
            "--client-header-forwarding",
            "is not supported (it has no effect in Python mcpo either); ignored",
        );
    }
    ServeOptions {
        host,
        port: cli.port,
        api_key,
        strict_auth: cli.strict_auth,
        cors_allow_origins,
        allowed_hosts,
        path_prefix,
        root_path,
        tls,
        name: cli.name.clone(),
        description: cli.description.clone(),
        api_version: cli.api_version.clone(),
        max_body_bytes: cli.max_body_bytes,
        single_server: cli.config.is_none(),
        config_path: cli.config.clone(),
        webui_url: cli.webui_url.clone(),
        webui_user_jwt_secret: cli.webui_user_jwt_secret.clone().filter(|s| !s.is_empty()),
        public_url,
        trust_forwarded_headers: cli.trust_forwarded_headers,
        upstream: super::UpstreamOptions {
            connect_timeout: cli.connect_timeout,
            tool_timeout: cli.tool_timeout,
            shutdown_grace: cli.shutdown_grace,
            reconnect_min_delay: cli.reconnect_min_delay,
            reconnect_max_delay: cli.reconnect_max_delay.max(cli.reconnect_min_delay),
            keepalive_interval: cli.keepalive_interval,
            reconnect_wait: cli.reconnect_wait,
            max_concurrent_calls: cli.max_concurrent_calls.max(1),
            max_queued_calls: cli.max_queued_calls,
            // The files this command line names hold mcpo's settings and secrets: a sandboxed
            // server sees none of them.
            private_paths: [
                &cli.config,
                &cli.env_path,
                &cli.api_key_file,
                &cli.webui_secret_key_file,
                &cli.webui_user_jwt_secret_file,
                &cli.store_key_file,
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        },
        hot_reload: cli.hot_reload && cli.config.is_some(),
        store,
    }
}

/// `--store` and `--store-prefix` (also `mcpo validate`'s check): the location, or the flag
/// at fault and why (never quoting a password). A Redis store needs the store key given
/// explicitly: every replica seals and opens the same records, and a default `store.key`
/// would be a different key on every machine. Call after `store::key::install`.
pub fn store_location(cli: &Cli) -> Result<Location, (&'static str, String)> {
    let location = Location::parse(Some(&cli.store), Some(&cli.store_prefix)).map_err(|why| {
        match why.strip_prefix("--store-prefix ") {
            Some(rest) => ("--store-prefix", rest.to_owned()),
            None => (
                "--store",
                format!("is not usable ({})", why.trim_start_matches("--store ")),
            ),
        }
    })?;
    if let Location::Redis(redis) = &location
        && store_key::given().is_none()
    {
        let why = match &cli.store_key_file {
            Some(path) if !store_key::is_default() => match store_key::read_key_file(path) {
                Err(e) => format!("the store key does not read: {e}"),
                Ok(_) => "the store key does not read".to_owned(),
            },
            _ => format!("needs {} or --store-key-file", store_key::STORE_KEY_ENV),
        };
        return Err((
            "--store",
            format!(
                "is the Redis store {}, which {why}: every replica seals and opens the same \
                 records, so they share one key given explicitly (no default store.key)",
                redis.shown()
            ),
        ));
    }
    Ok(location)
}

/// `--public-url` checked and without its trailing `/`: login links and the OAuth callback
/// are built on it, so it is a plain http(s) base URL.
fn public_url(text: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(text).map_err(
        |_| "it must be the http(s) URL users reach mcpo at, like https://mcpo.example.com",
    )?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err("it must be an http(s) URL, like https://mcpo.example.com");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not carry credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it must not have a query ('?') or fragment ('#')");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `*`, or the origin (`scheme://host[:port]`, lowercase, default port left out) of an http(s)
/// URL without a path: what a browser sends as `Origin`. `null` (sandboxed frames, `file:`
/// pages, some redirects) is refused: anything could be behind it.
fn origin_of(text: &str) -> Result<String, &'static str> {
    if text == "*" {
        return Ok(text.to_owned());
    }
    if text.eq_ignore_ascii_case("null") {
        return Err(
            "the 'null' origin is never allowed: any sandboxed page or local file sends it",
        );
    }
    let url = url::Url::parse(text)
        .map_err(|_| "origins look like https://webui.example or http://localhost:3000")?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err("origins look like https://webui.example or http://localhost:3000");
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err("an origin is a scheme, host and port only, like https://webui.example");
    }
    Ok(url.origin().ascii_serialization())
}

/// `--allowed-hosts`, or its default: checked when mcpo listens on a loopback address only
/// (elsewhere it is reached by names and addresses it cannot know), allowing the loopback
/// names and the hosts of `ours` (`--public-url`, `--webui-url`).
fn allowed_hosts(cli: &Cli, listen: &str, ours: &[Option<&str>]) -> Result<AllowedHosts, String> {
    let given: Vec<String> = cli
        .allowed_hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if given.iter().any(|h| h == "*") {
        return Ok(AllowedHosts::Any);
    }
    for host in &given {
        let valid = host.len() <= 255
            && url::Url::parse(&format!("http://{host}/"))
                .is_ok_and(|u| u.has_host() && u.path() == "/" && u.username().is_empty());
        if !valid {
            return Err(format!(
                "has '{host}'; give host names or addresses, optionally with a port                  (localhost, mcpo.example.com, 127.0.0.1:8000, [::1]), or '*' for any"
            ));
        }
    }
    let loopback = match listen.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => true,
        ip => ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    };
    if given.is_empty() && !loopback {
        return Ok(AllowedHosts::Any);
    }
    let mut hosts = given;
    if hosts.is_empty() {
        hosts.extend(["localhost", "127.0.0.1", "[::1]"].map(str::to_owned));
    }
    for url in ours.iter().flatten() {
        if let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
        {
            hosts.push(host.to_ascii_lowercase());
        }
    }
    dedup(&mut hosts);
    Ok(AllowedHosts::Only(hosts))
}

/// Drops repeated entries, keeping the first of each.
fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|entry| seen.insert(entry.clone()));
}

/// Multi-user servers with OAuth sign their users in through mcpo's web login, whose links
/// and OAuth callback are built on `--public-url` alone (never on a request's `Host` or
/// `X-Forwarded-Host`, which a caller chooses): each of them needs it, and so does every
/// server whose users enter `user_secrets` on mcpo's credentials page. Also `mcpo validate`'s
/// check, so a config it passes is one the daemon starts with the same flags and environment.
pub fn public_url_problems(public_url: Option<&str>, config: &Config) -> Vec<Problem> {
    // An unusable --public-url is reported as such.
    if public_url.is_some_and(|u| !u.trim().is_empty()) {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for server in &config.servers {
        let secrets = server
            .multi_user
            .as_ref()
            .is_some_and(|m| !m.user_secrets.is_empty());
        if secrets && server.oauth.is_none() {
            problems.push(Problem::new(
                COMMAND_LINE,
                Some(&server.name),
                Some("--public-url"),
                "is required: this server's users enter their secrets on mcpo's credentials \
                 page, whose links are built on the URL users reach mcpo at (like \
                 --public-url https://mcpo.example.com, or MCPO_PUBLIC_URL)",
            ));
        }
        if server.multi_user.is_some() && server.oauth.is_some() {
            problems.push(Problem::new(
                COMMAND_LINE,
                Some(&server.name),
                Some("--public-url"),
                "is required: this multi-user server signs its users in through mcpo, and \
                 the login links and OAuth callback are built on the URL users reach mcpo at \
                 (like --public-url https://mcpo.example.com, or MCPO_PUBLIC_URL)",
            ));
        }
    }
    problems
}

/// `{{USER_EMAIL}}`, `{{USER_NAME}}` and `{{USER_ROLE}}` come only from the signed
/// `X-OpenWebUI-User-Jwt`, which mcpo reads only with `--webui-user-jwt-secret`: without it
/// they are always empty, which the operator should hear about at start-up.
fn warn_unfilled_profile(
    options: &ServeOptions,
    config: &Config,
    warnings: &mut Vec<ConfigWarning>,
) {
    if options.webui_user_jwt_secret.is_some() {
        return;
    }
    for server in &config.servers {
        if server
            .multi_user
            .as_ref()
            .is_some_and(|m| m.templates.uses_profile())
        {
            warnings.push(ConfigWarning::new(
                COMMAND_LINE,
                Some(&server.name),
                Some("--webui-user-jwt-secret"),
                "is not set, so {{USER_EMAIL}}, {{USER_NAME}} and {{USER_ROLE}} are always \
                 empty for this server: only Open WebUI's signed X-OpenWebUI-User-Jwt header \
                 carries them (set ENABLE_FORWARD_USER_INFO_HEADERS in Open WebUI and give mcpo \
                 its FORWARD_USER_INFO_HEADER_JWT_SECRET)",
            ));
        }
    }
}

/// The non-empty segments of a URL path given on the command line.
fn path_segments(text: &str) -> Result<Vec<&str>, String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) || text.contains(['?', '#']) {
        return Err(format!(
            "is '{text}'; it must be a URL path like /tools (no spaces, '?' or '#')"
        ));
    }
    let segments: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(format!("is '{text}'; '.' and '..' are not allowed in it"));
    }
    Ok(segments)
}

/// Python mcpo lets `--config` win over everything meant for a single server; so do we, loudly.
fn ignored_with_config(cli: &Cli, warnings: &mut Vec<ConfigWarning>) {
    let mut warn = |field: Option<&str>, message: String| {
        warnings.push(ConfigWarning::new(COMMAND_LINE, None, field, message));
    };
    if !cli.command.is_empty() {
        warn(
            None,
            format!(
                "the server after '--' ({}) is ignored because --config is given",
                cli.command.join(" ")
            ),
        );
    }
    if cli.server_type.is_some() {
        warn(
            Some("--type"),
            "only applies to the server after '--'; ignored with --config".to_owned(),
        );
    }
    if !cli.expose.is_empty() {
        warn(
            Some("--expose"),
            "only applies to the server after '--'; set 'expose' in the config file instead"
                .to_owned(),
        );
    }
    if !cli.header.is_empty() {
        warn(
            Some("--header"),
            "only applies to the server after '--'; set 'headers' in the config file instead"
                .to_owned(),
        );
    }
}

/// `mcpo [--type T] -- <command args… | URL>` as one [`ServerConfig`].
fn single_server(
    cli: &Cli,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<ServerConfig> {
    let Some((first, rest)) = cli.command.split_first() else {
        problems.push(Problem::new(
            COMMAND_LINE,
            None,
            None,
            "no MCP server given: use --config FILE, or put the server command after '--'",
        ));
        return None;
    };
    let before = problems.len();
    let kind = cli.server_type.unwrap_or(ServerType::Stdio);
    let transport = match kind {
        ServerType::Stdio => {
            if parse_http_url(first).is_ok() {
                problems.push(Problem::new(
                    COMMAND_LINE,
                    None,
                    Some("--type"),
                    format!(
                        "is needed to connect to the URL '{first}': add --type streamable-http \
                         (or --type sse for a legacy SSE server)"
                    ),
                ));
                return None;
            }
            if !cli.header.is_empty() {
                warnings.push(ConfigWarning::new(
                    COMMAND_LINE,
                    None,
                    Some("--header"),
                    "only applies with --type sse or streamable-http; ignored",
                ));
            }
            TransportConfig::Stdio {
                command: first.clone(),
                args: rest.to_vec(),
                env: BTreeMap::new(),
                cwd: None,
                // The command line is this server's whole configuration: it keeps the
                // environment it was started in (mcpo's own secrets excepted).
                inherit_env: true,
            }
        }
        ServerType::Sse | ServerType::StreamableHttp => {
            if !rest.is_empty() {
                problems.push(Problem::new(
                    COMMAND_LINE,
                    None,
                    None,
                    format!(
                        "with --type {}, give exactly one URL after '--' (found {} words)",
                        kind_name(kind),
                        cli.command.len()
                    ),
                ));
            }
            let headers = cli_headers(&cli.header, problems);
            let url = match parse_http_url(first) {
                Ok(url) => url,
                Err(message) => {
                    problems.push(Problem::new(
                        COMMAND_LINE,
                        None,
                        None,
                        format!("the URL after '--' {message}"),
                    ));
                    return None;
                }
            };
            if kind == ServerType::Sse {
                TransportConfig::Sse { url, headers }
            } else {
                TransportConfig::StreamableHttp { url, headers }
            }
        }
    };
    let words = cli
        .expose
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty());
    let expose = match Expose::from_words(words) {
        Ok(_) if cli.expose.is_empty() => Expose::default(),
        Ok(expose) => expose,
        Err(word) => {
            problems.push(Problem::new(
                COMMAND_LINE,
                None,
                Some("--expose"),
                format!("'{word}' is not one of {}", Expose::WORDS.join(", ")),
            ));
            Expose::default()
        }
    };
    if problems.len() != before {
        return None;
    }
    Some(ServerConfig {
        name: single_server_name(&transport),
        transport,
        disabled_tools: Default::default(),
        expose,
        timeout: None,
        oauth: None,
        multi_user: None,
        max_result: None,
    })
}

fn kind_name(kind: ServerType) -> &'static str {
    match kind {
        ServerType::Stdio => "stdio",
        ServerType::Sse => "sse",
        ServerType::StreamableHttp => "streamable-http",
    }
}

/// Every `-H`: a JSON object of strings (Python mcpo's form) or one `Name: value`.
fn cli_headers(values: &[String], problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let mut problem = |message: String| {
        problems.push(Problem::new(COMMAND_LINE, None, Some("--header"), message));
    };
    let mut headers = BTreeMap::new();
    for text in values {
        let trimmed = text.trim();
        if trimmed.starts_with('{') {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(trimmed) {
                Ok(map) => {
                    for (name, value) in map {
                        match value {
                            serde_json::Value::String(value) => {
                                headers.insert(name, value);
                            }
                            other => problem(format!(
                                "must map header names to strings, but '{name}' is {}",
                                super::file::kind_of(&other)
                            )),
                        }
                    }
                }
                Err(err) => problem(format!(
                    "is not a JSON object ({err}); write it like '{{\"Authorization\": \"Bearer ...\"}}'"
                )),
            }
        } else if let Some((name, value)) = trimmed.split_once(':') {
            headers.insert(name.trim().to_owned(), value.trim().to_owned());
        } else {
            problem(format!(
                "is '{text}'; give a JSON object like '{{\"X-Key\": \"v\"}}' or 'X-Key: v'"
            ));
        }
    }
    for (name, value) in &headers {
        if let Err(message) = check_header(name, value) {
            problem(format!("{message} (header '{name}')"));
        }
    }
    headers
}

/// Only used in logs (single-server routes sit at the root): the command's file name or the
/// URL's host, reduced to the characters a server name may have.
fn single_server_name(transport: &TransportConfig) -> String {
    let raw = match transport {
        TransportConfig::Stdio { command, .. } => Path::new(command)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        TransportConfig::Sse { url, .. } | TransportConfig::StreamableHttp { url, .. } => {
            url.host_str().unwrap_or_default().to_owned()
        }
    };
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(['-', '.']);
    if name.is_empty() {
        "mcp".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_TOOL_TIMEOUT;
    use clap::Parser;
    use std::path::PathBuf;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["mcpo"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn ok(args: &[&str]) -> (Config, ServeOptions, Vec<ConfigWarning>) {
        from_cli(&cli(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> String {
        match from_cli(&cli(args)) {
            Ok(result) => panic!("{args:?} was accepted: {result:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn store_flags_are_checked_without_quoting_a_password() {
        let e = err(&["--store", "postgres://u:hunter2@h/db", "--", "x"]);
        assert!(e.contains("option '--store' is not usable"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = err(&["--store-prefix", "a b", "--", "x"]);
        assert!(e.contains("option '--store-prefix' must be"), "{e}");
        // Unit tests install no store key: a Redis store is refused without one.
        let e = err(&["--store", "redis://u:hunter2@127.0.0.1:6379/0", "--", "x"]);
        assert!(e.contains("MCPO_STORE_KEY or --store-key-file"), "{e}");
        assert!(
            e.contains("redis://127.0.0.1:6379/0") && !e.contains("hunter2"),
            "{e}"
        );
        let (_, options, _) = ok(&["--store", "file", "--", "x"]);
        assert_eq!(options.store, Location::File);
    }

    fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn single_stdio_server() {
        let (config, options, warnings) = ok(&[
            "--port",
            "8000",
            "--api-key",
            "top-secret-0123456789",
            "--",
            "uvx",
            "mcp-server-time",
            "--local-timezone=America/New_York",
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(options.single_server);
        assert_eq!(options.api_key.as_deref(), Some("top-secret-0123456789"));
        assert_eq!(options.upstream.tool_timeout, DEFAULT_TOOL_TIMEOUT);
        let server = &config.servers[0];
        assert_eq!(server.name, "uvx");
        assert_eq!(
            server.transport,
            TransportConfig::Stdio {
                command: "uvx".into(),
                args: vec![
                    "mcp-server-time".into(),
                    "--local-timezone=America/New_York".into()
                ],
                env: BTreeMap::new(),
                cwd: None,
                inherit_env: true,
            }
        );
    }

    #[test]
    fn single_remote_server_with_headers() {
        let (config, _, _) = ok(&[
            "--type",
            "streamable-http",
            "-H",
            r#"{"Authorization": "Bearer t"}"#,
            "-H",
            "X-Extra: 1",
            "--",
            "http://127.0.0.1:8080/mcp",
        ]);
        let server = &config.servers[0];
        assert_eq!(server.name, "127.0.0.1");
        let TransportConfig::StreamableHttp { url, headers } = &server.transport else {
            panic!("{server:?}");
        };
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/mcp");
        assert_eq!(headers["Authorization"], "Bearer t");
        assert_eq!(headers["X-Extra"], "1");

        let (config, _, _) = ok(&["--type", "sse", "--", "https://example.com/sse"]);
        assert!(matches!(
            config.servers[0].transport,
            TransportConfig::Sse { .. }
        ));
    }

    #[test]
    fn single_server_mistakes() {
        let msg = err(&["--", "http://127.0.0.1:8080/mcp"]);
        assert!(msg.contains("--type streamable-http"), "{msg}");
        let msg = err(&["--type", "sse", "--", "uvx", "x"]);
        assert!(msg.contains("exactly one URL"), "{msg}");
        let msg = err(&["--type", "sse", "--", "ftp://x/y"]);
        assert!(msg.contains("the URL after '--' must be an http"), "{msg}");
        let msg = err(&["--type", "sse", "-H", "not json", "--", "http://x/"]);
        assert!(msg.starts_with("command line: option '--header'"), "{msg}");
        let msg = err(&["--type", "sse", "-H", r#"{"A": 1}"#, "--", "http://x/"]);
        assert!(msg.contains("'A' is a number"), "{msg}");
        let msg = err(&["--type", "sse", "-H", "Bad Name: x", "--", "http://x/"]);
        assert!(msg.contains("header name"), "{msg}");
        assert!(err(&[]).contains("no MCP server given"));
    }

    #[test]
    fn header_with_stdio_is_a_warning() {
        let (_, _, warnings) = ok(&["-H", "{}", "--", "cmd"]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].to_string().contains("--header"));
    }

    #[test]
    fn prefix_and_root_path_are_normalised() {
        for (given, expected) in [
            ("/", "/"),
            ("", "/"),
            ("api", "/api/"),
            ("/api", "/api/"),
            ("api/", "/api/"),
            ("//a//b//", "/a/b/"),
        ] {
            let (_, options, _) = ok(&["--path-prefix", given, "--", "x"]);
            assert_eq!(options.path_prefix, expected, "{given:?}");
        }
        for (given, expected) in [("", ""), ("/", ""), ("/mcpo/", "/mcpo"), ("mcpo", "/mcpo")] {
            let (_, options, _) = ok(&["--root-path", given, "--", "x"]);
            assert_eq!(options.root_path, expected, "{given:?}");
        }
        let msg = err(&["--path-prefix", "/a b", "--", "x"]);
        assert!(msg.contains("option '--path-prefix'"), "{msg}");
        assert!(err(&["--root-path", "/../x", "--", "x"]).contains("'..'"));
    }

    #[test]
    fn tls_needs_both_files() {
        let msg = err(&["--ssl-certfile", "cert.pem", "--", "x"]);
        assert!(
            msg.contains("option '--ssl-keyfile' is required with --ssl-certfile"),
            "{msg}"
        );
        let msg = err(&["--ssl-keyfile", "key.pem", "--", "x"]);
        assert!(msg.contains("option '--ssl-certfile' is required"), "{msg}");
        let msg = err(&[
            "-t",
            "/nonexistent/c.pem",
            "-K",
            "/nonexistent/k.pem",
            "--",
            "x",
        ]);
        assert!(msg.contains("/nonexistent/c.pem") && msg.contains("/nonexistent/k.pem"));

        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "x").unwrap();
        std::fs::write(&key, "x").unwrap();
        let (_, options, _) = ok(&[
            "-t",
            cert.to_str().unwrap(),
            "-K",
            key.to_str().unwrap(),
            "--",
            "x",
        ]);
        assert_eq!(options.tls, Some(TlsFiles { cert, key }));
    }

    #[test]
    fn options_are_copied_and_defaults_match_serve_options_default() {
        let (_, options, _) = ok(&["--", "x"]);
        assert_eq!(
            options,
            ServeOptions {
                single_server: true,
                ..ServeOptions::default()
            }
        );
        let (_, options, _) = ok(&[
            "--host",
            "127.0.0.1",
            "--cors-allow-origins",
            "https://a.example",
            "--strict-auth",
            "-k",
            "k",
            "--max-body-bytes",
            "5",
            "--",
            "x",
        ]);
        assert_eq!(options.host, "127.0.0.1");
        assert_eq!(options.cors_allow_origins, ["https://a.example"]);
        assert!(options.strict_auth);
        assert_eq!(options.max_body_bytes, 5);
    }

    #[test]
    fn doubtful_flags_warn() {
        let (_, options, warnings) =
            ok(&["--api-key", "", "--strict-auth", "--hot-reload", "--", "x"]);
        assert_eq!(options.api_key, None);
        assert!(!options.hot_reload);
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|w| w.contains("'--api-key' is empty")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|w| w.contains("'--strict-auth' has no effect")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|w| w.contains("'--hot-reload' only applies")),
            "{text:?}"
        );
    }

    /// A sandboxed server must not see the files mcpo's settings and secrets came from
    /// (`secrets::resolve` leaves the file names; it is not called here: it sets what
    /// `secrets::lookup` answers for the whole test process).
    #[test]
    fn the_files_mcpo_reads_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, r#"{"mcpServers": {"time": {"command": "uvx"}}}"#);
        let key = dir.path().join("key");
        let (_, options, _) = ok(&[
            "-c",
            path.to_str().unwrap(),
            "--api-key-file",
            key.to_str().unwrap(),
        ]);
        assert_eq!(options.upstream.private_paths, [path, key]);
    }

    #[test]
    fn config_file_wins_over_command_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, r#"{"mcpServers": {"time": {"command": "uvx"}}}"#);
        let (config, options, warnings) = ok(&[
            "-c",
            path.to_str().unwrap(),
            "--hot-reload",
            "--type",
            "sse",
            "--",
            "other",
            "cmd",
        ]);
        assert_eq!(config.servers.len(), 1);
        assert_eq!(config.servers[0].name, "time");
        assert!(!options.single_server);
        assert!(options.hot_reload);
        assert_eq!(options.config_path, Some(path));
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|w| w.contains("(other cmd) is ignored")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|w| w.contains("option '--type'")),
            "{text:?}"
        );
    }

    #[test]
    fn file_and_flag_problems_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, r#"{"mcpServers": {"time": {"command": 1}}}"#);
        let msg = err(&["-c", path.to_str().unwrap(), "--ssl-certfile", "c.pem"]);
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 2, "{msg}");
        assert!(lines[0].contains("--ssl-keyfile"));
        assert!(
            lines[1].ends_with("server 'time': field 'command' must be a string, not a number")
        );
    }

    #[test]
    fn missing_config_file_names_it() {
        let msg = err(&["-c", "/nonexistent/mcpo.json"]);
        assert!(
            msg.starts_with("/nonexistent/mcpo.json: cannot read the file"),
            "{msg}"
        );
    }

    #[test]
    fn env_plan_from_dotenv_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "export A=from-file\nHOME=/not/used\nB=\"${A}-2\"\n").unwrap();
        let lookup = |name: &str| (name == "HOME").then(|| "/home/me".to_owned());
        let cli = cli(&[
            "--env-path",
            path.to_str().unwrap(),
            "-e",
            "A=from-flag",
            "--",
            "x",
        ]);
        let planned = planned_env(&cli, &lookup).unwrap();
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            planned,
            [
                kv("A", "from-file"),
                kv("B", "from-file-2"),
                kv("A", "from-flag")
            ]
        );

        std::fs::write(&path, "OK=1\nbroken line\n").unwrap();
        let msg = planned_env(&cli, &lookup).unwrap_err().to_string();
        assert!(
            msg.ends_with(
                ".env:2: expected '=' after broken (write KEY=VALUE; quote values with spaces)"
            ),
            "{msg}"
        );

        let cli = cli_missing_env_file();
        let msg = planned_env(&cli, &lookup).unwrap_err().to_string();
        assert!(msg.contains("missing.env: cannot read the file"), "{msg}");
    }

    fn cli_missing_env_file() -> Cli {
        cli(&["--env-path", "/nonexistent/missing.env", "--", "x"])
    }

    #[test]
    fn single_server_names_are_sanitised() {
        let stdio = |command: &str| TransportConfig::Stdio {
            command: command.into(),
            args: vec![],
            env: BTreeMap::new(),
            cwd: None,
            inherit_env: false,
        };
        assert_eq!(single_server_name(&stdio("/usr/bin/python3")), "python3");
        assert_eq!(single_server_name(&stdio("my server!")), "my-server");
        assert_eq!(single_server_name(&stdio("/")), "mcp");
    }

    #[test]
    fn browsers_get_no_cross_origin_access_unless_told() {
        let (_, options, _) = ok(&["--", "x"]);
        assert!(options.cors_allow_origins.is_empty());
        assert_eq!(
            options.allowed_hosts,
            AllowedHosts::Any,
            "0.0.0.0: no host check"
        );
        let (_, options, _) = ok(&[
            "--host",
            "127.0.0.1",
            "--cors-allow-origins",
            "https://WebUI.example:443/,*",
            "--public-url",
            "https://mcpo.example.com:8443/tools/",
            "--webui-url",
            "http://[::1]:3000",
            "--",
            "x",
        ]);
        assert_eq!(
            options.cors_allow_origins,
            [
                "https://webui.example",
                "*",
                "https://mcpo.example.com:8443",
                "http://[::1]:3000"
            ]
        );
        assert_eq!(
            options.allowed_hosts,
            AllowedHosts::Only(
                ["localhost", "127.0.0.1", "[::1]", "mcpo.example.com"]
                    .map(str::to_owned)
                    .to_vec()
            )
        );
        let (_, options, _) = ok(&["--host", "::1", "--allowed-hosts", "*", "--", "x"]);
        assert_eq!(options.allowed_hosts, AllowedHosts::Any);
        let (_, options, _) = ok(&["--allowed-hosts", "Box.LAN:8000", "--", "x"]);
        assert_eq!(
            options.allowed_hosts,
            AllowedHosts::Only(vec!["box.lan:8000".to_owned()])
        );
        for bad in [
            "null",
            "webui.example",
            "https://webui.example/path",
            "ftp://x",
        ] {
            let e = err(&["--cors-allow-origins", bad, "--", "x"]);
            assert!(e.contains("--cors-allow-origins"), "{bad}: {e}");
        }
        let e = err(&["--allowed-hosts", "a/b", "--", "x"]);
        assert!(e.contains("--allowed-hosts"), "{e}");
    }
}
