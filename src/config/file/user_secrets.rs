//! `user_secrets` and the `{{USER_…}}` templates of a server entry (see `config::templates`).
//!
//! Templates are taken out of `headers`, `env` and `args` before `${VAR}` expansion runs on
//! the entry (so a variable's value is never read as a template), parsed with `${VAR}`
//! expanded between them, and put back as the text a caller without identity or secrets
//! would get: that is what checks of the field (header syntax…) see.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::{Fields, Report, kind_of, must_be_bool, must_be_string, parse_http_url};
use crate::config::expand::{self, Dialect};
use crate::config::templates::TemplateError;
use crate::config::{
    Placeholder, Slot, Template, TransportConfig, UserSecret, UserTemplates, UserValues,
    valid_secret_name,
};

/// A template taken out of the entry, to be put back once `${VAR}` expansion is done.
pub(super) struct Taken {
    slot: Slot,
    key: &'static str,
    template: Template,
}

/// Takes every string with a `{{USER_…}}` template out of `headers`, `env` and `args`
/// (leaving `null` in its place), parsed; a template that cannot be read is reported.
pub(super) fn take_templates(
    report: &mut Report<'_>,
    fields: &mut Fields,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<Taken> {
    let expand = |text: &str| expand::expand(text, lookup, Dialect::Config);
    let mut taken = Vec::new();
    for key in ["headers", "env", "args"] {
        let mut entries: Vec<(Slot, &mut Value)> = match fields.map.get_mut(key) {
            Some(Value::Object(map)) => map
                .iter_mut()
                .map(|(name, v)| {
                    let slot = if key == "headers" {
                        Slot::Header(name.clone())
                    } else {
                        Slot::Env(name.clone())
                    };
                    (slot, v)
                })
                .collect(),
            Some(Value::Array(items)) if key == "args" => items
                .iter_mut()
                .enumerate()
                .map(|(i, v)| (Slot::Arg(i), v))
                .collect(),
            _ => continue,
        };
        for (slot, value) in entries.iter_mut() {
            let Value::String(raw) = &**value else {
                continue;
            };
            let path = slot.to_string();
            match Template::parse(raw, &expand) {
                Ok(None) => {}
                Ok(Some(template)) => {
                    **value = Value::Null;
                    taken.push(Taken {
                        slot: slot.clone(),
                        key,
                        template,
                    });
                }
                Err(TemplateError::Expand(e)) => report.problem(Some(&path), e.completion()),
                Err(TemplateError::Unterminated(start)) => report.problem(
                    Some(&path),
                    format!("has '{{{{{start}…' without a closing '}}}}'"),
                ),
                Err(TemplateError::Unknown(name)) => report.problem(
                    Some(&path),
                    format!(
                        "has '{{{{{name}}}}}', which is not a template mcpo knows: use \
                         {{{{USER_SECRET:name}}}}, {{{{USER_ID}}}}, {{{{USER_EMAIL}}}}, \
                         {{{{USER_NAME}}}} or {{{{USER_ROLE}}}}"
                    ),
                ),
                Err(TemplateError::BadSecretName(name)) => report.problem(
                    Some(&path),
                    format!(
                        "names the secret '{name}'; a secret's name is 1 to 64 letters, digits, \
                         '_' or '-'"
                    ),
                ),
            }
        }
    }
    taken
}

/// Puts the taken strings back as a caller without identity or secrets would have them.
pub(super) fn put_back(fields: &mut Fields, taken: &[Taken]) -> UserTemplates {
    let empty = UserValues::default();
    for t in taken {
        let text = Value::String(t.template.fill(&empty));
        match (fields.map.get_mut(t.key), &t.slot) {
            (Some(Value::Object(map)), Slot::Header(name) | Slot::Env(name)) => {
                if let Some(v) = map.get_mut(name) {
                    *v = text;
                }
            }
            (Some(Value::Array(items)), Slot::Arg(i)) => {
                if let Some(v) = items.get_mut(*i) {
                    *v = text;
                }
            }
            _ => {}
        }
    }
    UserTemplates {
        slots: taken
            .iter()
            .map(|t| (t.slot.clone(), t.template.clone()))
            .collect(),
    }
}

/// `user_secrets`: `{"name": {"title": …, "description"?, "help_url"?, "optional"?}}`.
pub(super) fn read_user_secrets(
    report: &mut Report<'_>,
    fields: &mut Fields,
) -> BTreeMap<String, UserSecret> {
    let mut secrets = BTreeMap::new();
    let Some(value) = fields.take("user_secrets") else {
        return secrets;
    };
    let Value::Object(map) = value else {
        report.problem(
            Some("user_secrets"),
            format!(
                "must be an object like {{\"token\": {{\"title\": \"Personal access token\"}}}}, not {}",
                kind_of(&value)
            ),
        );
        return secrets;
    };
    for (name, spec) in map {
        let path = format!("user_secrets.{name}");
        if !valid_secret_name(&name) {
            report.problem(
                Some(&path),
                "a secret's name is 1 to 64 letters, digits, '_' or '-'",
            );
            continue;
        }
        let Value::Object(mut spec) = spec else {
            report.problem(
                Some(&path),
                format!("must be an object with a \"title\", not {}", kind_of(&spec)),
            );
            continue;
        };
        let mut text = |key: &str, report: &mut Report<'_>| match spec.shift_remove(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
            Some(Value::String(_)) => {
                report.problem(Some(&format!("{path}.{key}")), "must not be empty");
                None
            }
            Some(other) => {
                report.problem(Some(&format!("{path}.{key}")), must_be_string(&other));
                None
            }
        };
        let title = text("title", report);
        let description = text("description", report);
        let help_url = text("help_url", report);
        if let Some(url) = &help_url
            && let Err(e) = parse_http_url(url)
        {
            report.problem(Some(&format!("{path}.help_url")), e);
        }
        let optional = match spec.shift_remove("optional") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                report.problem(Some(&format!("{path}.optional")), must_be_bool(&other));
                false
            }
        };
        for key in spec.keys() {
            report.warn(
                Some(&format!("{path}.{key}")),
                "is not a key of a user secret (title, description, help_url, optional); ignored",
            );
        }
        let Some(title) = title else {
            report.problem(
                Some(&format!("{path}.title")),
                "is required: what the credentials page calls this secret",
            );
            continue;
        };
        secrets.insert(
            name,
            UserSecret {
                title,
                description,
                help_url,
                optional,
            },
        );
    }
    secrets
}

/// The rules between templates, `user_secrets` and `multi_user`; returns the templates that
/// apply to the server's transport.
pub(super) fn check(
    report: &mut Report<'_>,
    templates: UserTemplates,
    secrets: &BTreeMap<String, UserSecret>,
    multi_user: bool,
    transport: Option<&TransportConfig>,
) -> UserTemplates {
    if !multi_user && !secrets.is_empty() {
        report.problem(
            Some("user_secrets"),
            "applies only to multi-user servers (each user supplies their own): set \
             \"multi_user\": true on this server, or remove \"user_secrets\"",
        );
    }
    let stdio = matches!(transport, Some(TransportConfig::Stdio { .. }));
    let slots = templates
        .slots
        .into_iter()
        .filter(|(slot, _)| matches!(slot, Slot::Header(_)) != stdio)
        .collect();
    let templates = UserTemplates { slots };
    for (slot, placeholder) in templates.placeholders() {
        let path = slot.to_string();
        if !multi_user {
            report.problem(
                Some(&path),
                format!(
                    "uses {}, which is filled in per user, but this server is shared by every \
                     caller: set \"multi_user\": true on it, or remove the template",
                    placeholder.written()
                ),
            );
            continue;
        }
        if let Placeholder::Secret(name) = placeholder {
            if !secrets.contains_key(name) {
                report.problem(
                    Some(&path),
                    format!(
                        "uses {}, but \"user_secrets\" declares no secret '{name}': add \
                         \"user_secrets\": {{\"{name}\": {{\"title\": \"…\"}}}}",
                        placeholder.written()
                    ),
                );
            } else if matches!(slot, Slot::Arg(_)) {
                report.warn(
                    Some(&path),
                    format!(
                        "puts each user's secret '{name}' on the server's command line, where \
                         every local user can read it (ps, /proc); pass it in \"env\" instead"
                    ),
                );
            }
        }
    }
    templates
}
