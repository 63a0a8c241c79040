//! Per-user templates of multi-user servers: `{{USER_SECRET:name}}`, `{{USER_ID}}`,
//! `{{USER_EMAIL}}`, `{{USER_NAME}}` and `{{USER_ROLE}}` in `headers` values (remote servers)
//! and `env` values and `args` (stdio servers), read once when the config is loaded into
//! [`Template`]s, and filled in for one user when that user's session starts
//! ([`ServerConfig::for_user`]).
//!
//! `${VAR}` is expanded first, and only in the text between templates: a template is found in
//! the file's own text, never in a value that came from the environment, so a variable whose
//! value happens to hold `{{USER_SECRET:x}}` stays that literal text.

use std::collections::BTreeMap;

use super::{ServerConfig, TransportConfig};

/// One secret each user supplies for a server (`user_secrets.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSecret {
    /// What the credentials page calls it.
    pub title: String,
    pub description: Option<String>,
    /// Where the user gets one (shown as a link on the page).
    pub help_url: Option<String>,
    /// `optional: true`: a user without it is served anyway (it expands to "").
    pub optional: bool,
}

/// What a template stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{USER_SECRET:name}}`: the user's secret `name` (declared in `user_secrets`).
    Secret(String),
    /// `{{USER_ID}}`: the verified caller's id.
    Id,
    /// `{{USER_EMAIL}}`, `{{USER_NAME}}`, `{{USER_ROLE}}`: where the caller's identity carries
    /// them (the signed `X-OpenWebUI-User-Jwt`), else "".
    Email,
    Name,
    Role,
}

impl Placeholder {
    /// The template as written in the file.
    pub fn written(&self) -> String {
        match self {
            Placeholder::Secret(name) => format!("{{{{USER_SECRET:{name}}}}}"),
            Placeholder::Id => "{{USER_ID}}".to_owned(),
            Placeholder::Email => "{{USER_EMAIL}}".to_owned(),
            Placeholder::Name => "{{USER_NAME}}".to_owned(),
            Placeholder::Role => "{{USER_ROLE}}".to_owned(),
        }
    }
}

/// A config string with templates in it: literal text (`${VAR}` already expanded) and
/// placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// Where a template sits in a server's transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// `headers.<name>` of a remote server.
    Header(String),
    /// `env.<name>` of a stdio server.
    Env(String),
    /// `args[i]` of a stdio server.
    Arg(usize),
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Header(name) => write!(f, "headers.{name}"),
            Slot::Env(name) => write!(f, "env.{name}"),
            Slot::Arg(i) => write!(f, "args[{i}]"),
        }
    }
}

/// The templates of one multi-user server, by where they sit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserTemplates {
    pub slots: Vec<(Slot, Template)>,
}

impl UserTemplates {
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every placeholder used, with its slot.
    pub fn placeholders(&self) -> impl Iterator<Item = (&Slot, &Placeholder)> {
        self.slots.iter().flat_map(|(slot, t)| {
            t.pieces.iter().filter_map(move |p| match p {
                Piece::Value(v) => Some((slot, v)),
                Piece::Text(_) => None,
            })
        })
    }

    /// Whether `{{USER_EMAIL}}`, `{{USER_NAME}}` or `{{USER_ROLE}}` is used.
    pub fn uses_profile(&self) -> bool {
        self.placeholders().any(|(_, p)| {
            matches!(
                p,
                Placeholder::Email | Placeholder::Name | Placeholder::Role
            )
        })
    }
}

/// What the templates of one user's session are filled in with. `Debug` never shows the
/// secrets.
#[derive(Clone, Default)]
pub struct UserValues {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for UserValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserValues")
            .field("id", &self.id)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses the templates in `raw` (the file's text, before `${VAR}`), expanding `${VAR}` in
    /// the text between them with `expand`. `Ok(None)`: no template in it. Only `{{USER_…}}`
    /// is a template; other `{{…}}` stay text.
    pub(crate) fn parse<E>(
        raw: &str,
        expand: &dyn Fn(&str) -> Result<String, E>,
    ) -> Result<Option<Template>, TemplateError<E>> {
        if !raw.contains("{{USER_") {
            return Ok(None);
        }
        let mut pieces = Vec::new();
        let mut rest = raw;
        let mut text = String::new();
        while let Some(start) = rest.find("{{USER_") {
            text.push_str(&rest[..start]);
            let inner = &rest[start + 2..];
            let end = inner
                .find("}}")
                .ok_or_else(|| TemplateError::Unterminated(inner.chars().take(24).collect()))?;
            let placeholder = match &inner[..end] {
                "USER_ID" => Placeholder::Id,
                "USER_EMAIL" => Placeholder::Email,
                "USER_NAME" => Placeholder::Name,
                "USER_ROLE" => Placeholder::Role,
                other => match other.strip_prefix("USER_SECRET:") {
                    Some(name) if valid_secret_name(name) => Placeholder::Secret(name.to_owned()),
                    Some(name) => return Err(TemplateError::BadSecretName(name.to_owned())),
                    None => return Err(TemplateError::Unknown(other.to_owned())),
                },
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(expand(&text).map_err(TemplateError::Expand)?));
                text.clear();
            }
            pieces.push(Piece::Value(placeholder));
            rest = &inner[end + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(expand(&text).map_err(TemplateError::Expand)?));
        }
        Ok(Some(Template { pieces }))
    }

    /// The text with every placeholder filled in from `values` (an absent secret is "").
    pub fn fill(&self, values: &UserValues) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Value(Placeholder::Id) => out.push_str(&values.id),
                Piece::Value(Placeholder::Email) => out.push_str(&values.email),
                Piece::Value(Placeholder::Name) => out.push_str(&values.name),
                Piece::Value(Placeholder::Role) => out.push_str(&values.role),
                Piece::Value(Placeholder::Secret(name)) => {
                    out.push_str(values.secrets.get(name).map_or("", String::as_str))
                }
            }
        }
        out
    }
}

/// A secret's name: what `{{USER_SECRET:name}}` and the credentials form call it.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Why a string's templates cannot be read.
#[derive(Debug)]
pub(crate) enum TemplateError<E> {
    Unterminated(String),
    Unknown(String),
    BadSecretName(String),
    Expand(E),
}

impl ServerConfig {
    /// This server's config for one user: every template filled in with `values`. A server
    /// without templates is returned as it is.
    pub fn for_user(&self, values: &UserValues) -> ServerConfig {
        let mut config = self.clone();
        let Some(multi) = &self.multi_user else {
            return config;
        };
        if let Some(own) = &mut config.multi_user {
            own.hidden = crate::support::redact::Hidden::new(values.secrets.values().cloned());
        }
        for (slot, template) in &multi.templates.slots {
            let filled = template.fill(values);
            match (&mut config.transport, slot) {
                (
                    TransportConfig::StreamableHttp { headers, .. }
                    | TransportConfig::Sse { headers, .. },
                    Slot::Header(name),
                ) => {
                    headers.insert(name.clone(), filled);
                }
                (TransportConfig::Stdio { env, .. }, Slot::Env(name)) => {
                    env.insert(name.clone(), filled);
                }
                (TransportConfig::Stdio { args, .. }, Slot::Arg(i)) => {
                    if let Some(arg) = args.get_mut(*i) {
                        *arg = filled;
                    }
                }
                _ => {}
            }
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Template {
        let env = |s: &str| -> Result<String, ()> { Ok(s.replace("${V}", "{{USER_SECRET:x}}")) };
        Template::parse(raw, &env).unwrap().unwrap()
    }

    #[test]
    fn templates_fill_in_per_user_and_never_come_from_the_environment() {
        let t = parse("Bearer {{USER_SECRET:token}} for {{USER_ID}} ${V}");
        let values = UserValues {
            id: "u1".into(),
            secrets: [("token".to_owned(), "s3".to_owned())].into(),
            ..Default::default()
        };
        // `${V}` expanded to a template's text, which stays text.
        assert_eq!(t.fill(&values), "Bearer s3 for u1 {{USER_SECRET:x}}");
        assert_eq!(
            t.fill(&UserValues::default()),
            "Bearer  for  {{USER_SECRET:x}}"
        );
        let no = |s: &str| -> Result<String, ()> { Ok(s.to_owned()) };
        assert!(Template::parse("{{OTHER}}", &no).unwrap().is_none());
        assert!(matches!(
            Template::parse("{{USER_X}}", &no),
            Err(TemplateError::Unknown(_))
        ));
        assert!(matches!(
            Template::parse("{{USER_SECRET:a b}}", &no),
            Err(TemplateError::BadSecretName(_))
        ));
        assert!(matches!(
            Template::parse("{{USER_ID", &no),
            Err(TemplateError::Unterminated(_))
        ));
    }
}
