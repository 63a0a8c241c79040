//! `${VAR}` and `${VAR:-default}` in config strings, so secrets stay out of the file.
//!
//! `$$` is a literal `$`. A `$` not followed by `{` or `$` is kept as it is, so existing
//! Python mcpo configs (which had no expansion) with a `$` in a password keep working.

use serde_json::Value;

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// `${VAR}` without a default, and `VAR` is not set.
    Unset { var: String },
    /// `${` with no closing `}`.
    Unterminated,
    /// `${...}` whose inside is not `NAME` or `NAME:-default`.
    BadReference { text: String },
}

impl ExpandError {
    /// Completes "field 'x' ..." in a problem message.
    pub(crate) fn completion(&self) -> String {
        match self {
            ExpandError::Unset { var } => format!(
                "uses ${{{var}}}, but the environment variable {var} is not set; \
                 set it (also possible with --env or --env-path) or give a default: ${{{var}:-value}}"
            ),
            ExpandError::Unterminated => {
                "has a '${' without a closing '}'; write $$ for a literal '$'".to_owned()
            }
            ExpandError::BadReference { text } => format!(
                "has '${{{text}}}', which is not ${{NAME}} or ${{NAME:-default}} \
                 (NAME is letters, digits and '_'); write $$ for a literal '$'"
            ),
        }
    }
}

/// How `$` sequences are read: config files know `$$`, dotenv files do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `${VAR}` must be set (or have a default); `$$` is `$`.
    Config,
    /// python-dotenv: an unset `${VAR}` is empty; `$$` stays `$$`.
    Dotenv,
}

/// Expand every `${...}` in `input`, looking variables up with `lookup`.
pub(crate) fn expand(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    dialect: Dialect,
) -> Result<String, ExpandError> {
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if dialect == Dialect::Config && after.starts_with('$') {
            out.push('$');
            rest = &after[1..];
        } else if let Some(body) = after.strip_prefix('{') {
            let close = body.find('}').ok_or(ExpandError::Unterminated)?;
            out.push_str(&resolve(&body[..close], lookup, dialect)?);
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(
    reference: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    dialect: Dialect,
) -> Result<String, ExpandError> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    if !is_var_name(name) {
        return Err(ExpandError::BadReference {
            text: reference.to_owned(),
        });
    }
    // Shell semantics: `:-` also replaces a variable that is set but empty.
    match (lookup(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) if dialect == Dialect::Dotenv => Ok(String::new()),
        (None, None) => Err(ExpandError::Unset {
            var: name.to_owned(),
        }),
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expand every string inside `value` in place (object keys are left alone). Each failure is
/// returned with its path below `value`, like `args[2]` or `env.TOKEN`, appended to `path`.
pub(crate) fn expand_value(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    failures: &mut Vec<(String, ExpandError)>,
) {
    match value {
        Value::String(s) => match expand(s, lookup, Dialect::Config) {
            Ok(expanded) => *s = expanded,
            Err(err) => failures.push((path.to_owned(), err)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{path}[{i}]"), lookup, failures);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                expand_value(item, &child, lookup, failures);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn config(input: &str) -> Result<String, ExpandError> {
        expand(input, &env, Dialect::Config)
    }

    #[test]
    fn plain_references_and_defaults() {
        assert_eq!(config("${HOME}/data").unwrap(), "/home/me/data");
        assert_eq!(config("Bearer ${TOKEN}").unwrap(), "Bearer s3cret");
        assert_eq!(config("${MISSING:-fallback}").unwrap(), "fallback");
        assert_eq!(config("${MISSING:-}").unwrap(), "");
        assert_eq!(config("${EMPTY:-used}").unwrap(), "used");
        assert_eq!(config("${TOKEN:-unused}").unwrap(), "s3cret");
        assert_eq!(config("${MISSING:-a:-b}").unwrap(), "a:-b");
        assert_eq!(config("no dollars").unwrap(), "no dollars");
    }

    #[test]
    fn dollar_escapes_and_lone_dollars() {
        assert_eq!(config("$$").unwrap(), "$");
        assert_eq!(config("$${TOKEN}").unwrap(), "${TOKEN}");
        assert_eq!(config("pa$$word").unwrap(), "pa$word");
        assert_eq!(config("pa$word").unwrap(), "pa$word");
        assert_eq!(config("costs 5$").unwrap(), "costs 5$");
        assert_eq!(config("$$$TOKEN").unwrap(), "$$TOKEN");
    }

    #[test]
    fn missing_variable_and_bad_syntax_are_errors() {
        assert_eq!(
            config("${NOPE}"),
            Err(ExpandError::Unset { var: "NOPE".into() })
        );
        assert_eq!(config("${TOKEN"), Err(ExpandError::Unterminated));
        assert!(matches!(
            config("${1X}"),
            Err(ExpandError::BadReference { .. })
        ));
        assert!(matches!(
            config("${}"),
            Err(ExpandError::BadReference { .. })
        ));
        assert!(matches!(
            config("${A-b}"),
            Err(ExpandError::BadReference { .. })
        ));
        let msg = ExpandError::Unset { var: "NOPE".into() }.completion();
        assert!(
            msg.contains("NOPE") && msg.contains("${NOPE:-value}"),
            "{msg}"
        );
    }

    #[test]
    fn dotenv_dialect_keeps_double_dollar_and_empties_unset() {
        assert_eq!(expand("$$", &env, Dialect::Dotenv).unwrap(), "$$");
        assert_eq!(expand("a${NOPE}b", &env, Dialect::Dotenv).unwrap(), "ab");
    }

    #[test]
    fn values_are_expanded_with_paths_for_failures() {
        let mut value = json!({
            "command": "${HOME}/bin/server",
            "args": ["--token", "${TOKEN}", "${NOPE}"],
            "env": {"${KEY}": "${ALSO_NOPE}"},
            "timeout": 5
        });
        let mut failures = Vec::new();
        expand_value(&mut value, "", &env, &mut failures);
        assert_eq!(value["command"], "/home/me/bin/server");
        assert_eq!(value["args"][1], "s3cret");
        // Keys are not expanded.
        assert!(value["env"].get("${KEY}").is_some());
        let paths: Vec<_> = failures.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["args[2]", "env.${KEY}"]);
    }
}
