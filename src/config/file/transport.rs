//! Which transport a server entry names (`type`, `command`, `url`) and its fields.

use std::path::PathBuf;

use serde_json::Value;

use super::fields::Report;
use super::fields::{
    Fields, bool_field, check_header, http_url, must_be_string, non_empty_string, string_list,
    string_map,
};
use crate::config::TransportConfig;

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

pub(super) fn read_transport(
    report: &mut Report<'_>,
    fields: &mut Fields,
) -> Option<TransportConfig> {
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
    let inherit_env = bool_field(report, fields, "inherit_env").unwrap_or(false);
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
        inherit_env,
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
    for key in ["args", "env", "cwd", "inherit_env"] {
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
