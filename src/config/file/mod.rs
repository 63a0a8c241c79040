//! The `{"mcpServers": {...}}` file (Claude Desktop's format, as Python mcpo reads it) checked
//! field by field into a [`Config`]. Every problem in the file is collected, not just the first.

mod expose;
mod fields;
mod oauth;
mod result_limit;
mod sandbox;
mod transport;
mod user_secrets;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::{ConfigError, ConfigWarning, Problem};
use super::expand;
use super::jsonc;
use super::{Config, MultiUser, Sandbox, ServerConfig};
use fields::{
    Fields, Report, must_be_bool, must_be_string, positive_seconds, show, string_list,
    warn_unknown_keys,
};
pub(crate) use fields::{check_header, kind_of, parse_http_url};
use oauth::{MultiUserKeys, read_oauth};
use sandbox::read_sandbox;
use transport::read_transport;

/// Names a server cannot take because mcpo serves its own routes there.
pub const RESERVED_SERVER_NAMES: &[&str] = &[
    "docs",
    "openapi.json",
    "healthz",
    "readyz",
    "status",
    "metrics",
    "oauth",
    "credentials",
];

/// Keys of a server entry that mcpo reads (or knowingly ignores).
const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "inherit_env",
    "type",
    "url",
    "headers",
    "disabledTools",
    "disabled_tools",
    "expose",
    "timeout",
    "max_result_bytes",
    "oauth",
    "multi_user",
    "webui_secret_key",
    "session_timeout_minutes",
    "max_sessions",
    "per_user_tools",
    "sandbox",
    "description",
    "disabled",
    "alwaysAllow",
    "client_header_forwarding",
    "user_secrets",
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
    let templates = expand_fields(report, &mut fields, lookup);
    let transport = read_transport(report, &mut fields);

    let mut disabled_tools = BTreeSet::new();
    for key in ["disabledTools", "disabled_tools"] {
        if let Some(tools) = string_list(report, &mut fields, key) {
            disabled_tools.extend(tools);
        }
    }
    let expose = expose::read_expose(report, &mut fields);
    let timeout = fields
        .take("timeout")
        .and_then(|v| positive_seconds(report, &fields.path("timeout"), &v));
    let max_result = result_limit::read_result_limit(report, &mut fields);
    let (oauth, in_oauth) = match fields
        .take("oauth")
        .and_then(|v| read_oauth(report, v, transport.as_ref()))
    {
        Some((oauth, keys)) => (Some(oauth), keys),
        None => (None, MultiUserKeys::default()),
    };
    let sandbox = read_sandbox(report, &mut fields, transport.as_ref());
    let wants_multi_user = match fields.map.get("multi_user") {
        Some(Value::Bool(b)) => *b,
        _ => in_oauth.multi_user == Some(true),
    };
    let user_secrets = user_secrets::read_user_secrets(report, &mut fields);
    let templates = user_secrets::check(
        report,
        templates,
        &user_secrets,
        wants_multi_user,
        transport.as_ref(),
    );
    let multi_user =
        read_multi_user(report, &mut fields, &in_oauth, sandbox, lookup).map(|m| MultiUser {
            user_secrets,
            templates,
            ..m
        });

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
                expose,
                timeout,
                oauth,
                multi_user,
                max_result,
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
    in_oauth: &MultiUserKeys,
    sandbox: Option<Sandbox>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<MultiUser> {
    let explicit = match fields.take("multi_user") {
        Some(Value::Bool(b)) => Some(b),
        Some(other) => {
            report.problem(Some("multi_user"), must_be_bool(&other));
            None
        }
        None => in_oauth.multi_user,
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
        None => in_oauth.webui_secret_key.clone(),
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
        None => in_oauth.session_timeout_minutes,
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
        None => in_oauth.max_sessions,
    };
    let per_user_tools = match fields.take("per_user_tools") {
        Some(Value::Bool(b)) => b,
        Some(other) => {
            report.problem(Some("per_user_tools"), must_be_bool(&other));
            false
        }
        None => false,
    };
    if per_user_tools && explicit != Some(true) {
        report.problem(
            Some("per_user_tools"),
            "applies only to multi-user servers: set \"multi_user\": true on this server, or remove \"per_user_tools\"",
        );
    }
    // A server shared by every caller has no users to keep apart; running it sandboxed anyway
    // would look like protection that is not asked for here.
    if sandbox.is_some() && explicit != Some(true) {
        report.problem(
            Some("sandbox"),
            "applies only to multi-user servers (it keeps users' processes apart): set \"multi_user\": true on this server, or remove \"sandbox\"",
        );
    }
    // The OAuth guide makes OAuth servers multi-user by default. mcpo keeps an OAuth server
    // single-user (one login for every caller, the daemon's own) unless it asks: turning every
    // OAuth server into per-user web logins because WEBUI_SECRET_KEY happens to be set would
    // change who the upstream sees without anyone asking for it.
    if explicit != Some(true) {
        return None;
    }
    if let Some(why) = secret.as_deref().and_then(super::secrets::weakness) {
        // Whoever guesses it signs in to Open WebUI as anyone, and to this server as any user.
        report.problem(
            Some("webui_secret_key"),
            format!("(or the global WEBUI_SECRET_KEY it falls back to) {why}"),
        );
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
        per_user_tools,
        sandbox,
        user_secrets: Default::default(),
        templates: Default::default(),
        hidden: Default::default(),
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
/// The `{{USER_…}}` templates are taken out first (their text expanded on its own) and returned.
fn expand_fields(
    report: &mut Report<'_>,
    fields: &mut Fields,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> super::UserTemplates {
    let taken = user_secrets::take_templates(report, fields, lookup);
    let mut failed = Vec::new();
    for (key, value) in fields.map.iter_mut() {
        let mut failures = Vec::new();
        expand::expand_value(value, key, lookup, &mut failures);
        for (path, err) in &failures {
            report.problem(Some(path), err.completion());
        }
        if !failures.is_empty() {
            failed.push(key.clone());
        }
    }
    for key in failed {
        fields.map.shift_remove(&key);
        fields.broken.insert(key);
    }
    user_secrets::put_back(fields, &taken)
}

#[cfg(test)]
mod tests;
