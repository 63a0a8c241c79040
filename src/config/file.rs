//! The `{"mcpServers": {...}}` file (Claude Desktop's format, as Python mcpo reads it) checked
//! field by field into a [`Config`]. Every problem in the file is collected, not just the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::{ConfigError, ConfigWarning, Problem};
use super::expand;
use super::jsonc;
use super::{
    Config, DEFAULT_OAUTH_CALLBACK_PORT, MultiUser, OAuthConfig, ServerConfig, TokenStorage,
    TransportConfig,
};

/// Names a server cannot take because mcpo serves its own routes there.
pub const RESERVED_SERVER_NAMES: &[&str] = &[
    "docs",
    "openapi.json",
    "healthz",
    "readyz",
    "status",
    "metrics",
    "oauth",
];

/// Keys of a server entry that mcpo reads (or knowingly ignores).
const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "type",
    "url",
    "headers",
    "disabledTools",
    "disabled_tools",
    "timeout",
    "oauth",
    "multi_user",
    "webui_secret_key",
    "session_timeout_minutes",
    "max_sessions",
    "description",
    "disabled",
    "alwaysAllow",
    "client_header_forwarding",
];

/// Keys of an `oauth` block beyond the ones [`OAuthConfig`] has fields for; kept in `extra`.
pub const OAUTH_EXTRA_KEYS: &[&str] = &[
    "multi_user",
    "webui_secret_key",
    "session_timeout_minutes",
    "max_sessions",
    "grant_type",
    "client_metadata_url",
    "scopes",
    "login_timeout",
    "signing_key_file",
    "signing_key",
    "signing_algorithm",
];

const OAUTH_KEYS: &[&str] = &[
    "server_url",
    "storage_type",
    "callback_port",
    "use_loopback",
    "client_id",
    "client_secret",
    "client_metadata",
];

/// Parse and validate a whole file. `lookup` resolves `${VAR}` (the process environment in
/// production).
pub(crate) fn parse_config(
    text: &str,
    source: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let root = jsonc::parse(text).map_err(|err| ConfigError::Syntax {
        source_name: source.to_owned(),
        line: err.line,
        column: err.column,
        message: err.message,
    })?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for name in duplicate_server_names(text) {
        warnings.push(ConfigWarning::new(
            source,
            Some(&name),
            None,
            "the name appears more than once in 'mcpServers'; only the last definition is used",
        ));
    }
    let Some(entries) = server_entries(root, source, &mut problems) else {
        return Err(ConfigError::Invalid { problems });
    };
    let mut servers = Vec::new();
    for (name, value) in entries {
        let mut report = Report {
            source,
            server: &name,
            problems: &mut problems,
            warnings: &mut warnings,
        };
        match read_server(&mut report, &name, value, lookup) {
            Entry::Server(server) => servers.push(*server),
            Entry::Disabled => tracing::info!("{source}: server '{name}' is disabled; skipping it"),
            Entry::Invalid => {}
        }
    }
    if problems.is_empty() && servers.is_empty() {
        problems.push(Problem::new(
            source,
            None,
            None,
            "every server in 'mcpServers' is disabled; enable at least one",
        ));
    }
    if problems.is_empty() {
        Ok((Config { servers }, warnings))
    } else {
        Err(ConfigError::Invalid { problems })
    }
}

/// Server names that appear twice: a JSON object keeps only the last, which hides a copy-paste
/// mistake, so a second, order-keeping read of the (already valid) text finds them.
fn duplicate_server_names(text: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Root {
        #[serde(rename = "mcpServers", default)]
        servers: Option<KeysOnly>,
    }
    struct KeysOnly(Vec<String>);
    impl<'de> serde::Deserialize<'de> for KeysOnly {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Keys;
            impl<'de> serde::de::Visitor<'de> for Keys {
                type Value = KeysOnly;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<KeysOnly, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(key);
                    }
                    Ok(KeysOnly(keys))
                }
            }
            d.deserialize_map(Keys)
        }
    }
    let Ok(json) = jsonc::to_json(text) else {
        return Vec::new();
    };
    let Ok(Root {
        servers: Some(KeysOnly(keys)),
    }) = serde_json::from_str::<Root>(&json)
    else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    let mut duplicates = Vec::new();
    for key in keys {
        if !seen.insert(key.clone()) && !duplicates.contains(&key) {
            duplicates.push(key);
        }
    }
    duplicates
}

/// The non-empty `mcpServers` object, or `None` with the reason recorded.
fn server_entries(
    root: Value,
    source: &str,
    problems: &mut Vec<Problem>,
) -> Option<Map<String, Value>> {
    let example = r#"expected {"mcpServers": {"name": {"command": "..."}}}"#;
    let Value::Object(mut root) = root else {
        problems.push(Problem::new(
            source,
            None,
            None,
            format!(
                "the top level is {}, not an object; {example}",
                kind_of(&root)
            ),
        ));
        return None;
    };
    match root.shift_remove("mcpServers") {
        Some(Value::Object(entries)) if entries.is_empty() => {
            problems.push(Problem::new(
                source,
                None,
                Some("mcpServers"),
                "is empty; add at least one server",
            ));
            None
        }
        Some(Value::Object(entries)) => Some(entries),
        Some(other) => {
            problems.push(Problem::new(
                source,
                None,
                Some("mcpServers"),
                format!(
                    "must be an object of servers, not {}; {example}",
                    kind_of(&other)
                ),
            ));
            None
        }
        None => {
            let hint = match root.keys().find(|k| k.eq_ignore_ascii_case("mcpServers")) {
                Some(k) => format!(" ('{k}' is close: the key is case-sensitive)"),
                None if root.contains_key("servers") => {
                    " (this looks like a VS Code file: rename 'servers' to 'mcpServers')".to_owned()
                }
                None => String::new(),
            };
            problems.push(Problem::new(
                source,
                None,
                None,
                format!("has no 'mcpServers' key{hint}; {example}"),
            ));
            None
        }
    }
}

enum Entry {
    Server(Box<ServerConfig>),
    Disabled,
    Invalid,
}

/// Where problems and warnings about one server go.
struct Report<'a> {
    source: &'a str,
    server: &'a str,
    problems: &'a mut Vec<Problem>,
    warnings: &'a mut Vec<ConfigWarning>,
}

impl Report<'_> {
    fn problem(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.problems
            .push(Problem::new(self.source, Some(self.server), field, message));
    }

    fn warn(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning::new(
            self.source,
            Some(self.server),
            field,
            message,
        ));
    }
}

/// The keys of one JSON object still to be read; what is left at the end is unknown.
struct Fields {
    map: Map<String, Value>,
    /// Keys whose `${VAR}` expansion failed: present, already reported, not to be read.
    broken: BTreeSet<String>,
    /// `""` for a server entry, `"oauth."` inside its `oauth` block.
    prefix: &'static str,
}

impl Fields {
    /// The value of `key`, removed; `None` when absent, `null` or broken.
    fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.shift_remove(key) {
            Some(Value::Null) | None => None,
            Some(value) => Some(value),
        }
    }

    fn present(&self, key: &str) -> bool {
        self.broken.contains(key) || matches!(self.map.get(key), Some(v) if !v.is_null())
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn read_server(
    report: &mut Report<'_>,
    name: &str,
    value: Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Entry {
    let problems_before = report.problems.len();
    let Value::Object(mut map) = value else {
        report.problem(
            None,
            format!(
                r#"must be an object like {{"command": "...", "args": [...]}} or {{"type": "streamable-http", "url": "..."}}, not {}"#,
                kind_of(&value)
            ),
        );
        return Entry::Invalid;
    };
    match map.shift_remove("disabled") {
        Some(Value::Bool(true)) => return Entry::Disabled,
        Some(Value::Bool(false) | Value::Null) | None => {}
        Some(other) => report.problem(Some("disabled"), must_be_bool(&other)),
    }
    check_name(report, name);

    let mut fields = Fields {
        map,
        broken: BTreeSet::new(),
        prefix: "",
    };
    expand_fields(report, &mut fields, lookup);
    let transport = read_transport(report, &mut fields);

    let mut disabled_tools = BTreeSet::new();
    for key in ["disabledTools", "disabled_tools"] {
        if let Some(tools) = string_list(report, &mut fields, key) {
            disabled_tools.extend(tools);
        }
    }
    let timeout = fields
        .take("timeout")
        .and_then(|v| positive_seconds(report, &fields.path("timeout"), &v));
    let oauth = fields
        .take("oauth")
        .and_then(|v| read_oauth(report, v, transport.as_ref()));
    let multi_user = read_multi_user(report, &mut fields, oauth.as_ref(), lookup);

    // Accepted for Claude Desktop / Python mcpo files; nothing to do with them.
    fields.take("description");
    fields.take("alwaysAllow");
    if fields.take("client_header_forwarding").is_some() {
        report.warn(
            Some("client_header_forwarding"),
            "is not supported (it has no effect in Python mcpo either); ignored",
        );
    }
    warn_unknown_keys(report, &fields, SERVER_KEYS);

    match transport {
        Some(transport) if report.problems.len() == problems_before => {
            Entry::Server(Box::new(ServerConfig {
                name: name.to_owned(),
                transport,
                disabled_tools,
                timeout,
                oauth,
                multi_user,
            }))
        }
        _ => Entry::Invalid,
    }
}

/// Multi-user settings, from the server entry or (the OAuth guide's place) its `oauth` block.
///
/// The OAuth guide turns `multi_user` on by default for OAuth servers and skips signature checks
/// without a secret, which lets anyone claim any identity. mcpo turns it on only where a secret
/// is configured, and `multi_user: true` without one is an error that names the key to set.
fn read_multi_user(
    report: &mut Report<'_>,
    fields: &mut Fields,
    oauth: Option<&OAuthConfig>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<MultiUser> {
    let extra = oauth.map(|o| &o.extra);
    let from_extra = |key: &str| extra.and_then(|e| e.get(key)).cloned();
    let explicit = match fields.take("multi_user") {
        Some(Value::Bool(b)) => Some(b),
        Some(other) => {
            report.problem(Some("multi_user"), must_be_bool(&other));
            None
        }
        None => from_extra("multi_user").and_then(|v| v.as_bool()),
    };
    let secret = match fields.take("webui_secret_key") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(Value::String(_)) => {
            report.problem(
                Some("webui_secret_key"),
                "must not be empty: set it to Open WebUI's WEBUI_SECRET_KEY",
            );
            None
        }
        Some(other) => {
            report.problem(Some("webui_secret_key"), must_be_string(&other));
            None
        }
        None => from_extra("webui_secret_key")
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty()),
    }
    .or_else(|| lookup("WEBUI_SECRET_KEY").filter(|s| !s.is_empty()));
    let minutes = match fields.take("session_timeout_minutes") {
        Some(v) => match v.as_f64() {
            Some(n) if n > 0.0 => Some(n),
            _ => {
                report.problem(
                    Some("session_timeout_minutes"),
                    format!("must be a positive number of minutes, not {}", show(&v)),
                );
                None
            }
        },
        None => from_extra("session_timeout_minutes").and_then(|v| v.as_f64()),
    };
    let max_sessions = match fields.take("max_sessions") {
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Some(n as usize),
            _ => {
                report.problem(
                    Some("max_sessions"),
                    format!("must be a positive whole number, not {}", show(&v)),
                );
                None
            }
        },
        None => from_extra("max_sessions")
            .and_then(|v| v.as_u64())
            .map(|n| n as usize),
    };
    // The OAuth guide makes OAuth servers multi-user by default. mcpo keeps an OAuth server
    // single-user (one login for every caller, the daemon's own) unless it asks: turning every
    // OAuth server into per-user web logins because WEBUI_SECRET_KEY happens to be set would
    // change who the upstream sees without anyone asking for it.
    if explicit != Some(true) {
        return None;
    }
    let Some(secret) = secret else {
        if explicit == Some(true) {
            report.problem(
                Some("multi_user"),
                "needs the Open WebUI secret to verify callers: set \"webui_secret_key\" on this server (or in its \"oauth\" block), or start mcpo with --webui-secret-key / WEBUI_SECRET_KEY",
            );
        }
        return None;
    };
    Some(MultiUser {
        secret,
        session_timeout: Duration::from_secs_f64(minutes.unwrap_or(30.0) * 60.0),
        max_sessions: max_sessions.unwrap_or(100),
    })
}

/// A server name becomes one URL path segment, `{prefix}{name}/...`.
fn check_name(report: &mut Report<'_>, name: &str) {
    if name.is_empty() {
        report.problem(
            None,
            "the server name is empty; give it a name like \"time\"",
        );
    } else if name == "." || name == ".." {
        report.problem(None, "the server name cannot be '.' or '..'");
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        report.problem(
            None,
            "the server name can only contain letters, digits, '.', '_' and '-' \
             (it becomes the URL path /<name>/); rename it",
        );
    } else if RESERVED_SERVER_NAMES.contains(&name) {
        report.problem(
            None,
            format!("the name is reserved for mcpo's own route /{name}; rename the server"),
        );
    }
}

/// Expand `${VAR}` in every string of every field; a field that fails is reported and set aside.
fn expand_fields(
    report: &mut Report<'_>,
    fields: &mut Fields,
    lookup: &dyn Fn(&str) -> Option<String>,
) {
    let mut failed = Vec::new();
    for (key, value) in fields.map.iter_mut() {
        let mut failures = Vec::new();
        expand::expand_value(value, key, lookup, &mut failures);
        for (path, err) in &failures {
            report.problem(Some(path), err.describe());
        }
        if !failures.is_empty() {
            failed.push(key.clone());
        }
    }
    for key in failed {
        fields.map.shift_remove(&key);
        fields.broken.insert(key);
    }
}

/// Which transport the `type` field names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stdio,
    Sse,
    StreamableHttp,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        match name.to_ascii_lowercase().as_str() {
            "stdio" => Some(Kind::Stdio),
            "sse" => Some(Kind::Sse),
            "streamable-http" | "streamable_http" | "streamablehttp" | "http" => {
                Some(Kind::StreamableHttp)
            }
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Stdio => "stdio",
            Kind::Sse => "sse",
            Kind::StreamableHttp => "streamable-http",
        }
    }
}

fn read_transport(report: &mut Report<'_>, fields: &mut Fields) -> Option<TransportConfig> {
    let type_broken = fields.broken.contains("type");
    let kind = match fields.take("type") {
        None => None,
        Some(Value::String(name)) => match Kind::parse(&name) {
            Some(kind) => Some(kind),
            None => {
                report.problem(
                    Some("type"),
                    format!(
                        "is '{name}'; use 'stdio', 'sse' or 'streamable-http' \
                         (also accepted: 'http', 'streamable_http', 'streamablehttp')"
                    ),
                );
                return None;
            }
        },
        Some(other) => {
            report.problem(Some("type"), must_be_string(&other));
            return None;
        }
    };
    if type_broken {
        return None;
    }
    let has_command = fields.present("command");
    let has_url = fields.present("url");
    match (kind, has_command, has_url) {
        (_, true, true) => {
            report.problem(
                None,
                "has both 'command' and 'url'; keep 'command' for a local stdio server \
                 or 'url' (with 'type') for a remote one",
            );
            None
        }
        (None, false, false) => {
            report.problem(
                None,
                "has neither 'command' (a local stdio server) nor 'url' \
                 (a remote sse / streamable-http server)",
            );
            None
        }
        (Some(kind), false, false) => {
            let field = if kind == Kind::Stdio {
                "command"
            } else {
                "url"
            };
            report.problem(
                Some(field),
                format!("is required for a {} server", kind.name()),
            );
            None
        }
        (Some(Kind::Stdio) | None, true, false) => read_stdio(report, fields),
        (Some(Kind::Stdio), false, true) => {
            report.problem(
                Some("type"),
                "is 'stdio', which runs a 'command', but this server has a 'url'; \
                 set 'type' to 'sse' or 'streamable-http'",
            );
            None
        }
        (Some(remote), true, false) => {
            report.problem(
                Some("command"),
                format!(
                    "is for stdio servers; a {} server needs 'url' instead",
                    remote.name()
                ),
            );
            None
        }
        (remote, false, true) => {
            let kind = remote.unwrap_or(Kind::Sse);
            let transport = read_remote(report, fields, kind)?;
            if remote.is_none() && looks_like_streamable_http(&transport) {
                report.warn(
                    Some("url"),
                    "has no 'type' next to it, so it is used as legacy SSE (as Python mcpo does), \
                     but it looks like a streamable-HTTP endpoint; add \"type\": \"streamable-http\" \
                     if it is one",
                );
            }
            Some(transport)
        }
    }
}

fn looks_like_streamable_http(transport: &TransportConfig) -> bool {
    match transport {
        TransportConfig::Sse { url, .. } => {
            let path = url.path().trim_end_matches('/');
            path.ends_with("/mcp")
        }
        _ => false,
    }
}

fn read_stdio(report: &mut Report<'_>, fields: &mut Fields) -> Option<TransportConfig> {
    let command = non_empty_string(report, fields, "command");
    let args = string_list(report, fields, "args").unwrap_or_default();
    let env = string_map(report, fields, "env").unwrap_or_default();
    let cwd = non_empty_string(report, fields, "cwd").map(PathBuf::from);
    for name in env.keys() {
        if name.is_empty() || name.contains(['=', '\0']) {
            report.problem(
                Some(&format!("env.{name}")),
                "is not a usable environment variable name (empty, or has '=' or NUL)",
            );
        }
    }
    let has_nul = |s: &String| s.contains('\0');
    if command.as_ref().is_some_and(has_nul)
        || args.iter().any(has_nul)
        || env.values().any(has_nul)
    {
        report.problem(None, "has a NUL character in 'command', 'args' or 'env'");
    }
    if fields.take("headers").is_some() {
        report.warn(
            Some("headers"),
            "only applies to sse / streamable-http servers; ignored",
        );
    }
    Some(TransportConfig::Stdio {
        command: command?,
        args,
        env,
        cwd,
    })
}

fn read_remote(
    report: &mut Report<'_>,
    fields: &mut Fields,
    kind: Kind,
) -> Option<TransportConfig> {
    let url = fields
        .take("url")
        .and_then(|v| http_url(report, &fields.path("url"), &v));
    let headers = string_map(report, fields, "headers").unwrap_or_default();
    for (name, value) in &headers {
        if let Err(message) = check_header(name, value) {
            report.problem(Some(&format!("headers.{name}")), message);
        }
    }
    for key in ["args", "env", "cwd"] {
        if fields.take(key).is_some() {
            report.warn(Some(key), "only applies to stdio servers; ignored");
        }
    }
    let url = url?;
    Some(match kind {
        Kind::Sse => TransportConfig::Sse { url, headers },
        _ => TransportConfig::StreamableHttp { url, headers },
    })
}

fn read_oauth(
    report: &mut Report<'_>,
    value: Value,
    transport: Option<&TransportConfig>,
) -> Option<OAuthConfig> {
    match transport {
        Some(TransportConfig::StreamableHttp { .. }) | None => {}
        Some(other) => {
            let kind = match other {
                TransportConfig::Stdio { .. } => "stdio",
                _ => "sse",
            };
            report.problem(
                Some("oauth"),
                format!(
                    "is only supported on streamable-http servers, and this one is {kind}; \
                     set \"type\": \"streamable-http\" or remove the block"
                ),
            );
            return None;
        }
    }
    let Value::Object(map) = value else {
        report.problem(
            Some("oauth"),
            format!(
                "must be an object like {{\"server_url\": \"https://...\"}}, not {}",
                kind_of(&value)
            ),
        );
        return None;
    };
    let problems_before = report.problems.len();
    let mut fields = Fields {
        map,
        broken: BTreeSet::new(),
        prefix: "oauth.",
    };
    let server_url = fields
        .take("server_url")
        .and_then(|v| http_url(report, "oauth.server_url", &v));
    let storage_type = match fields.take("storage_type") {
        None => TokenStorage::File,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("file") => TokenStorage::File,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("memory") => TokenStorage::Memory,
        Some(other) => {
            report.problem(
                Some("oauth.storage_type"),
                format!("must be \"file\" or \"memory\", not {}", show(&other)),
            );
            TokenStorage::File
        }
    };
    let callback_port = match fields.take("callback_port") {
        None => DEFAULT_OAUTH_CALLBACK_PORT,
        Some(v) => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(port) if port > 0 => port,
            _ => {
                report.problem(
                    Some("oauth.callback_port"),
                    format!("must be a port number from 1 to 65535, not {}", show(&v)),
                );
                DEFAULT_OAUTH_CALLBACK_PORT
            }
        },
    };
    let use_loopback = bool_field(report, &mut fields, "use_loopback").unwrap_or(true);
    let client_id = non_empty_string(report, &mut fields, "client_id");
    let client_secret = non_empty_string(report, &mut fields, "client_secret");
    let client_metadata = match fields.take("client_metadata") {
        None => None,
        Some(Value::Object(map)) => Some(map),
        Some(other) => {
            report.problem(
                Some("oauth.client_metadata"),
                format!("must be an object, not {}", kind_of(&other)),
            );
            None
        }
    };
    check_oauth_extras(report, &fields);
    for key in fields.map.keys() {
        if !OAUTH_KEYS.contains(&key.as_str()) && !OAUTH_EXTRA_KEYS.contains(&key.as_str()) {
            report.warn(
                Some(&fields.path(key)),
                "is not a key mcpo knows; kept, but probably a typo",
            );
        }
    }
    if report.problems.len() != problems_before {
        return None;
    }
    Some(OAuthConfig {
        server_url,
        storage_type,
        callback_port,
        use_loopback,
        client_id,
        client_secret,
        client_metadata,
        extra: fields.map,
    })
}

/// Type-check the extra keys other modules read, leaving them in place for `extra`.
fn check_oauth_extras(report: &mut Report<'_>, fields: &Fields) {
    for (key, value) in &fields.map {
        let path = fields.path(key);
        let ok = match key.as_str() {
            "multi_user" => value.is_boolean(),
            "webui_secret_key" | "grant_type" => value.is_string(),
            "session_timeout_minutes" => value.as_f64().is_some_and(|n| n > 0.0),
            "max_sessions" => value.as_u64().is_some_and(|n| n > 0),
            "client_metadata_url" => {
                if let Value::String(_) = value {
                    http_url(report, &path, value);
                }
                value.is_string()
            }
            "scopes" => match value {
                Value::String(_) => true,
                Value::Array(items) => items.iter().all(Value::is_string),
                _ => false,
            },
            _ => true,
        };
        if !ok {
            let wanted = match key.as_str() {
                "multi_user" => "true or false",
                "session_timeout_minutes" => "a positive number of minutes",
                "max_sessions" => "a positive whole number",
                "scopes" => "a string or a list of strings",
                _ => "a string",
            };
            report.problem(
                Some(&path),
                format!("must be {wanted}, not {}", show(value)),
            );
        }
    }
}

/// Keys left unread that mcpo does not know; known keys left over belong to a server that
/// already has a problem, so they get no warning.
fn warn_unknown_keys(report: &mut Report<'_>, fields: &Fields, known: &[&str]) {
    for key in fields.map.keys().filter(|k| !known.contains(&k.as_str())) {
        let squashed = squash(key);
        let hint = match known.iter().find(|k| squash(k) == squashed) {
            Some(known) => format!("; did you mean '{known}'?"),
            None => String::new(),
        };
        report.warn(
            Some(&fields.path(key)),
            format!("is not a key mcpo knows; ignored{hint}"),
        );
    }
}

fn squash(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

// --- typed field readers: each reports a problem and returns None on a wrong type ---

fn non_empty_string(report: &mut Report<'_>, fields: &mut Fields, key: &str) -> Option<String> {
    let path = fields.path(key);
    match fields.take(key)? {
        Value::String(s) if s.trim().is_empty() => {
            report.problem(Some(&path), "must not be empty");
            None
        }
        Value::String(s) => Some(s),
        other => {
            report.problem(Some(&path), must_be_string(&other));
            None
        }
    }
}

fn bool_field(report: &mut Report<'_>, fields: &mut Fields, key: &str) -> Option<bool> {
    let path = fields.path(key);
    match fields.take(key)? {
        Value::Bool(b) => Some(b),
        other => {
            report.problem(Some(&path), must_be_bool(&other));
            None
        }
    }
}

fn string_list(report: &mut Report<'_>, fields: &mut Fields, key: &str) -> Option<Vec<String>> {
    let path = fields.path(key);
    let items = match fields.take(key)? {
        Value::Array(items) => items,
        other => {
            report.problem(
                Some(&path),
                format!("must be a list of strings, not {}", kind_of(&other)),
            );
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(s) => out.push(s),
            other => {
                report.problem(
                    Some(&path),
                    format!(
                        "must be a list of strings, but item {} is {}{}",
                        i + 1,
                        kind_of(&other),
                        quote_hint(&other)
                    ),
                );
                return None;
            }
        }
    }
    Some(out)
}

fn string_map(
    report: &mut Report<'_>,
    fields: &mut Fields,
    key: &str,
) -> Option<BTreeMap<String, String>> {
    let path = fields.path(key);
    let map = match fields.take(key)? {
        Value::Object(map) => map,
        other => {
            report.problem(
                Some(&path),
                format!("must be an object of strings, not {}", kind_of(&other)),
            );
            return None;
        }
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (name, value) in map {
        match value {
            Value::String(s) => {
                out.insert(name, s);
            }
            other => {
                report.problem(
                    Some(&format!("{path}.{name}")),
                    format!(
                        "must be a string, not {}{}",
                        kind_of(&other),
                        quote_hint(&other)
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn positive_seconds(report: &mut Report<'_>, path: &str, value: &Value) -> Option<Duration> {
    let seconds = value.as_f64().filter(|s| *s > 0.0);
    match seconds.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        Some(duration) => Some(duration),
        None => {
            report.problem(
                Some(path),
                format!(
                    "must be a positive number of seconds (like 30 or 2.5), not {}",
                    show(value)
                ),
            );
            None
        }
    }
}

fn http_url(report: &mut Report<'_>, path: &str, value: &Value) -> Option<url::Url> {
    let Value::String(text) = value else {
        report.problem(Some(path), must_be_string(value));
        return None;
    };
    match parse_http_url(text) {
        Ok(url) => Some(url),
        Err(message) => {
            report.problem(Some(path), message);
            None
        }
    }
}

/// An absolute `http://` or `https://` URL, or a message completing "field 'url' ...".
pub(crate) fn parse_http_url(text: &str) -> Result<url::Url, String> {
    match url::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(url) => Err(format!(
            "must be an http:// or https:// URL, not '{text}' ({} URLs are not supported)",
            url.scheme()
        )),
        Err(err) => Err(format!(
            "is not a valid URL ('{text}': {err}); write it like https://example.com/mcp"
        )),
    }
}

/// A header mcpo can send: an RFC 9110 token name and a value without control characters.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("is not a valid HTTP header name ('{name}')"));
    }
    if value
        .chars()
        .any(|c| (c.is_control() && c != '\t') || c == '\u{7f}')
    {
        return Err("has a line break or control character in its value".to_owned());
    }
    Ok(())
}

fn must_be_string(value: &Value) -> String {
    format!("must be a string, not {}", kind_of(value))
}

fn must_be_bool(value: &Value) -> String {
    let hint = match value {
        Value::String(s) if s == "true" || s == "false" => " (write it without quotes)",
        _ => "",
    };
    format!("must be true or false, not {}{hint}", show(value))
}

fn quote_hint(value: &Value) -> &'static str {
    match value {
        Value::Number(_) | Value::Bool(_) => " (put it in quotes)",
        _ => "",
    }
}

/// "a string", "a number", ... for messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a scalar (`"abc"`, `42`), or its kind for lists and objects.
fn show(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => kind_of(value).to_owned(),
        Value::String(s) if s.chars().count() > 40 => "a long string".to_owned(),
        scalar => scalar.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_str_with_env;

    fn env(name: &str) -> Option<String> {
        match name {
            "GITHUB_TOKEN" => Some("ghp_123".into()),
            "HOME" => Some("/home/me".into()),
            _ => None,
        }
    }

    fn load(text: &str) -> (Config, Vec<ConfigWarning>) {
        from_str_with_env(text, "config.json", &env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The whole error text (one problem per line).
    fn fail(text: &str) -> String {
        match from_str_with_env(text, "config.json", &env) {
            Ok(result) => panic!("accepted: {result:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn one_server(text: &str) -> ServerConfig {
        let (config, warnings) = load(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.servers.len(), 1);
        config.servers.into_iter().next().unwrap()
    }

    fn wrap(server: &str) -> String {
        format!(r#"{{"mcpServers": {{"s": {server}}}}}"#)
    }

    #[test]
    fn claude_desktop_file_with_comments_and_trailing_commas() {
        let (config, warnings) = load(
            r#"{
  // Claude Desktop style
  "mcpServers": {
    "time": {
      "command": "uvx",
      "args": ["mcp-server-time", "--local-timezone=America/New_York",],
      /* secrets come from the environment */
      "env": {"TOKEN": "${GITHUB_TOKEN}", "URL": "http://x//y"},
      "cwd": "${HOME}/srv",
      "disabledTools": ["slow"],
      "disabled_tools": ["slower"],
      "timeout": 2.5,
      "description": "ignored",
      "alwaysAllow": ["x"],
    },
    "memory": {"type": "streamable-http", "url": "https://example.com/mcp", "headers": {"X-Key": "k"}},
    "legacy": {"url": "http://127.0.0.1:9000/sse"},
    "off": {"disabled": true, "command": "${UNSET_BUT_DISABLED}"},
  },
  "globalShortcut": "ignored too",
}"#,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let names: Vec<_> = config.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["time", "memory", "legacy"]);
        let time = &config.servers[0];
        let TransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
        } = &time.transport
        else {
            panic!("{time:?}")
        };
        assert_eq!(command, "uvx");
        assert_eq!(
            args,
            &["mcp-server-time", "--local-timezone=America/New_York"]
        );
        assert_eq!(env["TOKEN"], "ghp_123");
        assert_eq!(env["URL"], "http://x//y");
        assert_eq!(cwd.as_deref(), Some(std::path::Path::new("/home/me/srv")));
        assert_eq!(
            time.disabled_tools,
            BTreeSet::from(["slow".to_owned(), "slower".to_owned()])
        );
        assert_eq!(time.timeout, Some(Duration::from_millis(2500)));
        assert!(matches!(
            &config.servers[1].transport,
            TransportConfig::StreamableHttp { headers, .. } if headers["X-Key"] == "k"
        ));
        // A url without type is legacy SSE, as in Python mcpo.
        assert!(matches!(
            &config.servers[2].transport,
            TransportConfig::Sse { url, .. } if url.as_str() == "http://127.0.0.1:9000/sse"
        ));
    }

    #[test]
    fn type_names_and_aliases() {
        for (name, streamable) in [
            ("sse", false),
            ("streamable-http", true),
            ("streamable_http", true),
            ("streamablehttp", true),
            ("http", true),
        ] {
            let server = one_server(&wrap(&format!(
                r#"{{"type": "{name}", "url": "http://localhost/x"}}"#
            )));
            assert_eq!(
                matches!(server.transport, TransportConfig::StreamableHttp { .. }),
                streamable,
                "{name}"
            );
        }
        let server = one_server(&wrap(r#"{"type": "stdio", "command": "srv"}"#));
        assert!(matches!(server.transport, TransportConfig::Stdio { .. }));
        let msg = fail(&wrap(r#"{"type": "websocket", "url": "ws://x"}"#));
        assert!(
            msg.starts_with("config.json: server 's': field 'type' is 'websocket'; use 'stdio'"),
            "{msg}"
        );
    }

    #[test]
    fn untyped_mcp_url_gets_a_hint() {
        let (config, warnings) = load(&wrap(r#"{"url": "http://localhost:8080/mcp"}"#));
        assert!(matches!(
            config.servers[0].transport,
            TransportConfig::Sse { .. }
        ));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .to_string()
                .contains("\"type\": \"streamable-http\"")
        );
    }

    #[test]
    fn error_messages_name_file_server_and_field() {
        let cases = [
            (
                r#"{"command": "uvx", "args": "mcp-server-time"}"#,
                "config.json: server 's': field 'args' must be a list of strings, not a string",
            ),
            (
                r#"{"command": "uvx", "args": ["a", 3]}"#,
                "config.json: server 's': field 'args' must be a list of strings, but item 2 is a number (put it in quotes)",
            ),
            (
                r#"{"command": ""}"#,
                "config.json: server 's': field 'command' must not be empty",
            ),
            (
                r#"{"command": ["uvx"]}"#,
                "config.json: server 's': field 'command' must be a string, not a list",
            ),
            (
                r#"{"command": "x", "env": {"PORT": 8080}}"#,
                "config.json: server 's': field 'env.PORT' must be a string, not a number (put it in quotes)",
            ),
            (
                r#"{"command": "x", "env": {"A=B": "1"}}"#,
                "config.json: server 's': field 'env.A=B' is not a usable environment variable name",
            ),
            (
                r#"{"command": "x", "args": ["a\u0000b"]}"#,
                "config.json: server 's': has a NUL character",
            ),
            (
                r#"{"command": "x", "env": []}"#,
                "config.json: server 's': field 'env' must be an object of strings, not a list",
            ),
            (
                r#"{"command": "x", "url": "http://x"}"#,
                "config.json: server 's': has both 'command' and 'url'",
            ),
            (
                r#"{"args": []}"#,
                "config.json: server 's': has neither 'command'",
            ),
            (
                r#"{"type": "sse"}"#,
                "config.json: server 's': field 'url' is required for a sse server",
            ),
            (
                r#"{"type": "stdio", "url": "http://x"}"#,
                "config.json: server 's': field 'type' is 'stdio', which runs a 'command'",
            ),
            (
                r#"{"type": "sse", "command": "x"}"#,
                "config.json: server 's': field 'command' is for stdio servers",
            ),
            (
                r#"{"url": "localhost:8080"}"#,
                "config.json: server 's': field 'url' must be an http:// or https:// URL",
            ),
            (
                r#"{"url": "not a url"}"#,
                "config.json: server 's': field 'url' is not a valid URL",
            ),
            (
                r#"{"url": "http://x", "headers": {"X": true}}"#,
                "config.json: server 's': field 'headers.X' must be a string, not a boolean",
            ),
            (
                r#"{"url": "http://x", "headers": {"Bad Name": "v"}}"#,
                "config.json: server 's': field 'headers.Bad Name' is not a valid HTTP header name",
            ),
            (
                r#"{"url": "http://x", "headers": {"X": "a\nb"}}"#,
                "config.json: server 's': field 'headers.X' has a line break",
            ),
            (
                r#"{"command": "x", "disabledTools": "a"}"#,
                "config.json: server 's': field 'disabledTools' must be a list of strings, not a string",
            ),
            (
                r#"{"command": "x", "timeout": 0}"#,
                "config.json: server 's': field 'timeout' must be a positive number of seconds (like 30 or 2.5), not 0",
            ),
            (
                r#"{"command": "x", "timeout": "30"}"#,
                "config.json: server 's': field 'timeout' must be a positive number of seconds (like 30 or 2.5), not \"30\"",
            ),
            (
                r#"{"command": "x", "disabled": "true"}"#,
                "config.json: server 's': field 'disabled' must be true or false, not \"true\" (write it without quotes)",
            ),
            (
                r#"{"command": "x", "cwd": 1}"#,
                "config.json: server 's': field 'cwd' must be a string, not a number",
            ),
            (
                r#"{"command": "${NOPE}"}"#,
                "config.json: server 's': field 'command' uses ${NOPE}, but the environment variable NOPE is not set",
            ),
            (
                r#"{"command": "x", "args": ["${A"]}"#,
                "config.json: server 's': field 'args[0]' has a '${' without a closing '}'",
            ),
            (
                r#""uvx""#,
                "config.json: server 's': must be an object like",
            ),
        ];
        for (server, expected) in cases {
            let msg = fail(&wrap(server));
            assert!(
                msg.starts_with(expected),
                "{server}\n  got:  {msg}\n  want: {expected}"
            );
            assert_eq!(msg.lines().count(), 1, "{server}: {msg}");
        }
    }

    #[test]
    fn unset_variable_error_names_server_field_and_variable() {
        let msg = fail(
            r#"{"mcpServers": {"github": {"command": "x", "env": {"TOKEN": "${MISSING_TOKEN}"}}}}"#,
        );
        assert!(
            msg.starts_with("config.json: server 'github': field 'env.TOKEN' uses ${MISSING_TOKEN}, but the environment variable MISSING_TOKEN is not set"),
            "{msg}"
        );
        // Only the expansion problem, not a follow-up about the same field.
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }

    #[test]
    fn defaults_and_dollar_escapes_in_values() {
        let server = one_server(&wrap(
            r#"{"command": "x", "args": ["${NOPE:-fallback}", "pa$$word", "$HOME"], "env": {"K": "${GITHUB_TOKEN:-unused}"}}"#,
        ));
        let TransportConfig::Stdio { args, env, .. } = server.transport else {
            panic!()
        };
        assert_eq!(args, ["fallback", "pa$word", "$HOME"]);
        assert_eq!(env["K"], "ghp_123");
    }

    #[test]
    fn all_problems_in_a_file_are_collected() {
        let msg = fail(
            r#"{"mcpServers": {
                "a": {"command": 1},
                "b": {"command": "x", "args": {}, "timeout": -1},
                "bad name": {"command": "x"},
                "docs": {"command": "x"}
            }}"#,
        );
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 5, "{msg}");
        assert!(lines[0].starts_with("config.json: server 'a': field 'command'"));
        assert!(lines[1].starts_with("config.json: server 'b': field 'args'"));
        assert!(lines[2].starts_with("config.json: server 'b': field 'timeout'"));
        assert!(
            lines[3]
                .starts_with("config.json: server 'bad name': the server name can only contain")
        );
        assert!(lines[4].starts_with("config.json: server 'docs': the name is reserved"));
        let err =
            from_str_with_env("{\"mcpServers\": {\"a\": 1, \"b\": 2}}", "f", &env).unwrap_err();
        assert_eq!(err.problems().len(), 2);
    }

    #[test]
    fn server_name_rules() {
        for good in ["time", "my-server_2", "a.b", "Docs"] {
            load(&format!(
                r#"{{"mcpServers": {{"{good}": {{"command": "x"}}}}}}"#
            ));
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "ü",
            ".",
            "..",
            "docs",
            "openapi.json",
            "healthz",
            "readyz",
            "status",
            "metrics",
            "oauth",
        ] {
            let msg = fail(&format!(
                r#"{{"mcpServers": {{"{bad}": {{"command": "x"}}}}}}"#
            ));
            assert!(
                msg.starts_with(&format!("config.json: server '{bad}': ")),
                "{msg}"
            );
        }
    }

    #[test]
    fn top_level_shape() {
        assert!(fail("{}").contains("has no 'mcpServers' key"));
        assert!(fail(r#"{"mcpservers": {}}"#).contains("'mcpservers' is close"));
        assert!(fail(r#"{"servers": {}}"#).contains("VS Code"));
        assert!(fail("[]").contains("the top level is a list"));
        assert_eq!(
            fail(r#"{"mcpServers": {}}"#),
            "config.json: field 'mcpServers' is empty; add at least one server"
        );
        assert!(
            fail(r#"{"mcpServers": []}"#)
                .contains("field 'mcpServers' must be an object of servers")
        );
        assert!(
            fail(r#"{"mcpServers": {"a": {"disabled": true, "command": "x"}}}"#)
                .contains("every server")
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = from_str_with_env(
            "{\n  \"mcpServers\": {\n    \"a\": {\"command\" \"x\"}\n  }\n}",
            "config.json",
            &env,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("config.json:3:21: expected `:`"), "{msg}");
        assert!(matches!(
            err,
            ConfigError::Syntax {
                line: 3,
                column: 21,
                ..
            }
        ));
    }

    #[test]
    fn unknown_keys_warn_with_file_server_and_key() {
        let (config, warnings) = load(&wrap(
            r#"{"command": "x", "Args": ["y"], "autoApprove": [], "client_header_forwarding": {}}"#,
        ));
        assert_eq!(config.servers.len(), 1);
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text.contains(&"config.json: server 's': field 'Args' is not a key mcpo knows; ignored; did you mean 'args'?".to_owned()), "{text:?}");
        assert!(
            text.contains(
                &"config.json: server 's': field 'autoApprove' is not a key mcpo knows; ignored"
                    .to_owned()
            ),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|w| w.contains("'client_header_forwarding' is not supported"))
        );
        assert_eq!(warnings[0].server.as_deref(), Some("s"));
        assert_eq!(warnings[0].source, "config.json");
    }

    #[test]
    fn duplicate_server_names_warn() {
        let (config, warnings) = load(
            r#"{"mcpServers": {"a": {"command": "first"}, "b": {"command": "x"}, "a": {"command": "second"}}}"#,
        );
        assert_eq!(config.servers.len(), 2);
        assert!(matches!(
            &config.servers[0].transport,
            TransportConfig::Stdio { command, .. } if command == "second"
        ));
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            warnings[0].to_string(),
            "config.json: server 'a': the name appears more than once in 'mcpServers'; only the last definition is used"
        );
    }

    #[test]
    fn keys_of_the_other_transport_are_ignored_with_a_warning() {
        let (_, warnings) = load(&wrap(
            r#"{"type": "sse", "url": "http://x/sse", "env": {}}"#,
        ));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .to_string()
                .contains("field 'env' only applies to stdio servers")
        );
        let (_, warnings) = load(&wrap(r#"{"command": "x", "headers": {}}"#));
        assert!(
            warnings[0]
                .to_string()
                .contains("field 'headers' only applies to sse")
        );
    }

    #[test]
    fn oauth_block_is_validated() {
        let server = one_server(&wrap(
            r#"{"type": "streamable-http", "url": "http://localhost:8000/mcp", "oauth": {
                "server_url": "http://localhost:8000",
                "storage_type": "memory",
                "callback_port": 4040,
                "use_loopback": false,
                "client_id": "id",
                "client_secret": "${GITHUB_TOKEN}",
                "client_metadata": {"client_name": "mcpo", "redirect_uris": ["http://localhost:4040/callback"]},
                "multi_user": false,
                "webui_secret_key": "k",
                "session_timeout_minutes": 60,
                "max_sessions": 10,
                "grant_type": "authorization_code",
                "client_metadata_url": "https://example.com/client.json",
                "scopes": ["read", "write"],
                "login_timeout": 120,
                "signing_key_file": "/etc/mcpo/client-key.pem",
                "signing_key": "-----BEGIN PRIVATE KEY-----",
                "signing_algorithm": "RS256"
            }}"#,
        ));
        let oauth = server.oauth.unwrap();
        assert_eq!(oauth.server_url.unwrap().as_str(), "http://localhost:8000/");
        assert_eq!(oauth.storage_type, TokenStorage::Memory);
        assert_eq!(oauth.callback_port, 4040);
        assert!(!oauth.use_loopback);
        assert_eq!(oauth.client_id.as_deref(), Some("id"));
        assert_eq!(oauth.client_secret.as_deref(), Some("ghp_123"));
        assert_eq!(oauth.client_metadata.unwrap()["client_name"], "mcpo");
        let extra: Vec<&str> = oauth.extra.keys().map(String::as_str).collect();
        assert_eq!(extra, OAUTH_EXTRA_KEYS);

        let minimal = one_server(&wrap(
            r#"{"type": "http", "url": "http://h/mcp", "oauth": {}}"#,
        ))
        .oauth
        .unwrap();
        assert_eq!(minimal.server_url, None);
        assert_eq!(minimal.storage_type, TokenStorage::File);
        assert_eq!(minimal.callback_port, 3030);
        assert!(minimal.use_loopback);
        assert!(minimal.extra.is_empty());
    }

    #[test]
    fn oauth_servers_can_be_multi_user() {
        // The OAuth guide's place: inside the `oauth` block.
        let server = one_server(&wrap(
            r#"{"type": "streamable-http", "url": "http://h/mcp", "oauth": {
                "multi_user": true, "webui_secret_key": "k", "session_timeout_minutes": 0.5,
                "max_sessions": 7
            }}"#,
        ));
        let multi = server.multi_user.expect("multi-user");
        assert_eq!(multi.secret, "k");
        assert_eq!(multi.session_timeout, Duration::from_secs(30));
        assert_eq!(multi.max_sessions, 7);
        assert!(server.oauth.is_some());
        // On the server itself works too; without `multi_user: true` it stays single-user.
        let server = one_server(&wrap(
            r#"{"type": "streamable-http", "url": "http://h/mcp", "multi_user": true,
                "webui_secret_key": "k", "oauth": {}}"#,
        ));
        assert!(server.multi_user.is_some() && server.oauth.is_some());
        let server = one_server(&wrap(
            r#"{"type": "streamable-http", "url": "http://h/mcp", "oauth": {"webui_secret_key": "k"}}"#,
        ));
        assert!(server.multi_user.is_none());
    }

    #[test]
    fn oauth_errors() {
        let remote = |oauth: &str| {
            wrap(&format!(
                r#"{{"type": "streamable-http", "url": "http://h/mcp", "oauth": {oauth}}}"#
            ))
        };
        let cases = [
            (
                remote(r#"{"storage_type": "disk"}"#),
                "field 'oauth.storage_type' must be \"file\" or \"memory\", not \"disk\"",
            ),
            (
                remote(r#"{"callback_port": 0}"#),
                "field 'oauth.callback_port' must be a port number from 1 to 65535, not 0",
            ),
            (
                remote(r#"{"callback_port": 70000}"#),
                "field 'oauth.callback_port' must be a port number",
            ),
            (
                remote(r#"{"use_loopback": "yes"}"#),
                "field 'oauth.use_loopback' must be true or false",
            ),
            (
                remote(r#"{"server_url": "nope"}"#),
                "field 'oauth.server_url' is not a valid URL",
            ),
            (
                remote(r#"{"client_metadata": []}"#),
                "field 'oauth.client_metadata' must be an object, not a list",
            ),
            (
                remote(r#"{"multi_user": 1}"#),
                "field 'oauth.multi_user' must be true or false, not 1",
            ),
            (
                remote(r#"{"session_timeout_minutes": -5}"#),
                "field 'oauth.session_timeout_minutes' must be a positive number of minutes",
            ),
            (
                remote(r#"{"max_sessions": 1.5}"#),
                "field 'oauth.max_sessions' must be a positive whole number",
            ),
            (
                remote(r#"{"webui_secret_key": 5}"#),
                "field 'oauth.webui_secret_key' must be a string",
            ),
            (
                remote(r#"{"scopes": [1]}"#),
                "field 'oauth.scopes' must be a string or a list of strings",
            ),
            (
                remote(r#"{"client_metadata_url": "ftp://x/y"}"#),
                "field 'oauth.client_metadata_url' must be an http:// or https:// URL",
            ),
            (remote("true"), "field 'oauth' must be an object"),
            (
                wrap(r#"{"url": "http://h/sse", "oauth": {}}"#),
                "field 'oauth' is only supported on streamable-http servers, and this one is sse",
            ),
            (
                wrap(r#"{"command": "x", "oauth": {}}"#),
                "field 'oauth' is only supported on streamable-http servers, and this one is stdio",
            ),
        ];
        for (text, expected) in cases {
            let msg = fail(&text);
            assert!(
                msg.starts_with(&format!("config.json: server 's': {expected}")),
                "{text}\n  got:  {msg}\n  want: {expected}"
            );
        }
    }

    #[test]
    fn unknown_oauth_keys_are_kept_with_a_warning() {
        let (config, warnings) = load(&wrap(
            r#"{"type": "streamable-http", "url": "http://h/mcp", "oauth": {"callbackport": 1}}"#,
        ));
        assert_eq!(
            config.servers[0].oauth.as_ref().unwrap().extra["callbackport"],
            1
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .to_string()
                .contains("field 'oauth.callbackport' is not a key mcpo knows")
        );
    }
}
