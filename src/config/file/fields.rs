//! The typed readers every part of the file uses: each takes one key out of [`Fields`],
//! reports a located problem when its value has the wrong type, and returns `None` then.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::error::{ConfigWarning, Problem};

/// The keys of one JSON object still to be read; what is left at the end is unknown.
pub(super) struct Fields {
    pub(super) map: Map<String, Value>,
    /// Keys whose `${VAR}` expansion failed: present, already reported, not to be read.
    pub(super) broken: BTreeSet<String>,
    /// `""` for a server entry, `"oauth."` inside its `oauth` block.
    pub(super) prefix: &'static str,
}

impl Fields {
    /// The value of `key`, removed; `None` when absent, `null` or broken.
    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.shift_remove(key) {
            Some(Value::Null) | None => None,
            Some(value) => Some(value),
        }
    }

    pub(super) fn present(&self, key: &str) -> bool {
        self.broken.contains(key) || matches!(self.map.get(key), Some(v) if !v.is_null())
    }

    pub(super) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

pub(super) fn non_empty_string(
    report: &mut Report<'_>,
    fields: &mut Fields,
    key: &str,
) -> Option<String> {
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

pub(super) fn bool_field(report: &mut Report<'_>, fields: &mut Fields, key: &str) -> Option<bool> {
    let path = fields.path(key);
    match fields.take(key)? {
        Value::Bool(b) => Some(b),
        other => {
            report.problem(Some(&path), must_be_bool(&other));
            None
        }
    }
}

pub(super) fn string_list(
    report: &mut Report<'_>,
    fields: &mut Fields,
    key: &str,
) -> Option<Vec<String>> {
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

pub(super) fn string_map(
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

pub(super) fn positive_seconds(
    report: &mut Report<'_>,
    path: &str,
    value: &Value,
) -> Option<Duration> {
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

pub(super) fn http_url(report: &mut Report<'_>, path: &str, value: &Value) -> Option<url::Url> {
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

pub(super) fn must_be_string(value: &Value) -> String {
    format!("must be a string, not {}", kind_of(value))
}

pub(super) fn must_be_bool(value: &Value) -> String {
    let hint = match value {
        Value::String(s) if s == "true" || s == "false" => " (write it without quotes)",
        _ => "",
    };
    format!("must be true or false, not {}{hint}", show(value))
}

pub(super) fn quote_hint(value: &Value) -> &'static str {
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
pub(super) fn show(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => kind_of(value).to_owned(),
        Value::String(s) if s.chars().count() > 40 => "a long string".to_owned(),
        scalar => scalar.to_string(),
    }
}

/// Where problems and warnings about one server go.
pub(super) struct Report<'a> {
    pub(super) source: &'a str,
    pub(super) server: &'a str,
    pub(super) problems: &'a mut Vec<Problem>,
    pub(super) warnings: &'a mut Vec<ConfigWarning>,
}

impl Report<'_> {
    pub(super) fn problem(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.problems
            .push(Problem::new(self.source, Some(self.server), field, message));
    }

    pub(super) fn warn(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning::new(
            self.source,
            Some(self.server),
            field,
            message,
        ));
    }
}

/// Keys left unread that mcpo does not know; known keys left over belong to a server that
/// already has a problem, so they get no warning.
pub(super) fn warn_unknown_keys(report: &mut Report<'_>, fields: &Fields, known: &[&str]) {
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
