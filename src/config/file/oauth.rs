//! The `oauth` block of a streamable-HTTP server, read once into a typed [`OAuthConfig`]:
//! first each key's type and value, then the rules that tie keys together (the grant type,
//! the client credentials it needs, the signing key), each a located problem.
//!
//! Cross-key rules are reported on the block (`field 'oauth' …`), rules about one key on
//! that key (`field 'oauth.login_timeout' …`). `oauth.signing_key_file` is read here, when
//! the config is loaded (start-up, reload, `mcpo validate`), and parsed with `signing_key`.

use serde_json::Value;

use super::fields::Report;
use super::fields::{
    Fields, bool_field, http_url, kind_of, must_be_string, non_empty_string, positive_seconds, show,
};
use crate::config::{
    DEFAULT_OAUTH_CALLBACK_PORT, DEFAULT_OAUTH_LOGIN_TIMEOUT, OAuthConfig, OAuthGrant, SigningKey,
    TokenStorage, TransportConfig,
};

/// Every key of an `oauth` block.
const OAUTH_KEYS: &[&str] = &[
    "server_url",
    "storage_type",
    "callback_port",
    "use_loopback",
    "client_id",
    "client_secret",
    "client_metadata",
    "client_metadata_url",
    "grant_type",
    "scopes",
    "login_timeout",
    "signing_key_file",
    "signing_key",
    "signing_algorithm",
    "multi_user",
    "webui_secret_key",
    "session_timeout_minutes",
    "max_sessions",
];

/// The multi-user keys the OAuth guide puts in the `oauth` block, type-checked; the server
/// entry's own keys win over them (see `read_multi_user`).
#[derive(Default)]
pub(super) struct MultiUserKeys {
    pub multi_user: Option<bool>,
    /// Non-empty (an empty one counts as absent).
    pub webui_secret_key: Option<String>,
    pub session_timeout_minutes: Option<f64>,
    pub max_sessions: Option<usize>,
}

/// The block, or `None` with every problem in it reported.
pub(super) fn read_oauth(
    report: &mut Report<'_>,
    value: Value,
    transport: Option<&TransportConfig>,
) -> Option<(OAuthConfig, MultiUserKeys)> {
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
        broken: Default::default(),
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
    let client_metadata_url = client_metadata_url(report, &mut fields);
    let grant = grant(report, &mut fields);
    let scopes = scopes(report, &mut fields);
    let login_timeout = fields
        .take("login_timeout")
        .and_then(|v| positive_seconds(report, "oauth.login_timeout", &v))
        .unwrap_or(DEFAULT_OAUTH_LOGIN_TIMEOUT);
    let (has_key, signing_key) = signing_key(report, &mut fields);
    let multi_user = multi_user_keys(report, &mut fields);

    check_client(
        report,
        grant,
        client_id.is_some(),
        client_secret.is_some(),
        has_key,
    );
    warn_unknown_keys(report, &fields);
    if report.problems.len() != problems_before {
        return None;
    }
    let oauth = OAuthConfig {
        server_url,
        storage_type,
        callback_port,
        use_loopback,
        grant,
        client_id,
        client_secret,
        signing_key,
        client_metadata,
        client_metadata_url,
        scopes,
        login_timeout,
    };
    Some((oauth, multi_user))
}

/// `grant_type`. An unknown grant is a problem of the block: it decides which other keys
/// the block needs.
fn grant(report: &mut Report<'_>, fields: &mut Fields) -> OAuthGrant {
    match fields.take("grant_type") {
        None => OAuthGrant::AuthorizationCode,
        Some(Value::String(s)) if s == "authorization_code" => OAuthGrant::AuthorizationCode,
        Some(Value::String(s)) if s == "client_credentials" => OAuthGrant::ClientCredentials,
        Some(Value::String(other)) => {
            report.problem(
                Some("oauth"),
                format!(
                    "sets grant_type to \"{other}\"; use \"authorization_code\" (a user signs \
                     in) or \"client_credentials\" (machine-to-machine)"
                ),
            );
            OAuthGrant::AuthorizationCode
        }
        Some(other) => {
            report.problem(Some("oauth.grant_type"), wrong("a string", &other));
            OAuthGrant::AuthorizationCode
        }
    }
}

/// The rules between the grant and the client's credentials.
fn check_client(
    report: &mut Report<'_>,
    grant: OAuthGrant,
    has_id: bool,
    has_secret: bool,
    has_key: bool,
) {
    if has_secret && !has_id {
        report.problem(
            Some("oauth.client_secret"),
            "is set without oauth.client_id; a secret belongs to a pre-registered client: \
             set its id too",
        );
    }
    if has_key {
        if grant != OAuthGrant::ClientCredentials {
            report.problem(
                Some("oauth"),
                "has a signing key (oauth.signing_key_file / oauth.signing_key, \
                 private_key_jwt), which is only used with oauth.grant_type \
                 \"client_credentials\"",
            );
        }
        if has_secret {
            report.problem(
                Some("oauth"),
                "has oauth.client_secret and a signing key both set; the client authenticates \
                 with one of them",
            );
        }
    }
    if grant == OAuthGrant::ClientCredentials && (!has_id || (!has_secret && !has_key)) {
        report.problem(
            Some("oauth"),
            "with grant_type \"client_credentials\" needs oauth.client_id and either \
             oauth.client_secret or oauth.signing_key_file (private_key_jwt)",
        );
    }
}

/// `client_metadata_url`: an http(s) URL first, then https with a path (a Client ID
/// Metadata Document is fetched by the authorization server, and its URL is the client id).
fn client_metadata_url(report: &mut Report<'_>, fields: &mut Fields) -> Option<String> {
    let path = "oauth.client_metadata_url";
    let value = fields.take("client_metadata_url")?;
    let url = http_url(report, path, &value)?;
    let text = value.as_str().unwrap_or_default().to_owned();
    if url.scheme() != "https" || url.path() == "/" {
        report.problem(
            Some(path),
            format!("must be an https URL with a path (a Client ID Metadata Document), not {text}"),
        );
        return None;
    }
    Some(text)
}

/// `scopes`: a string split on spaces, or a list of strings (each split too); an empty
/// result means discovery's pick.
fn scopes(report: &mut Report<'_>, fields: &mut Fields) -> Option<Vec<String>> {
    let value = fields.take("scopes")?;
    let list: Vec<String> = match &value {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect(),
        _ => {
            report.problem(
                Some("oauth.scopes"),
                wrong("a string or a list of strings", &value),
            );
            return None;
        }
    };
    (!list.is_empty()).then_some(list)
}

/// The private key of `signing_key_file` (a path, read now) or `signing_key` (the PEM
/// text, e.g. from `${VAR}`), as the Python SDK's `signing_key` / `signing_algorithm`.
/// Returns whether a key is configured, and the key when it is usable (problems reported
/// otherwise). Messages never carry the key.
fn signing_key(report: &mut Report<'_>, fields: &mut Fields) -> (bool, Option<SigningKey>) {
    let mut text = |key: &str| match fields.take(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err((format!("oauth.{key}"), must_be_string(&other))),
    };
    let (file, inline, algorithm) = (
        text("signing_key_file"),
        text("signing_key"),
        text("signing_algorithm"),
    );
    let mut typed = |r: Result<Option<String>, (String, String)>| match r {
        Ok(value) => Some(value),
        Err((path, message)) => {
            report.problem(Some(&path), message);
            None
        }
    };
    let (file, inline, algorithm) = (typed(file), typed(inline), typed(algorithm));
    let configured = matches!(file, Some(Some(_))) || matches!(inline, Some(Some(_)));
    let (Some(file), Some(inline), Some(algorithm)) = (file, inline, algorithm) else {
        return (configured, None);
    };
    if let Some(name) = &algorithm
        && !SigningKey::ALGORITHMS
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        let names: Vec<&str> = SigningKey::ALGORITHMS.iter().map(|(n, _)| *n).collect();
        report.problem(
            Some("oauth.signing_algorithm"),
            format!(
                "must be one of {}, not {}",
                names.join(", "),
                show(&Value::String(name.clone()))
            ),
        );
        return (configured, None);
    }
    let (pem, path) = match (file, inline) {
        (Some(_), Some(_)) => {
            report.problem(
                Some("oauth"),
                "has oauth.signing_key_file and oauth.signing_key both set; use one",
            );
            return (true, None);
        }
        (Some(file), None) => match std::fs::read_to_string(&file) {
            Ok(pem) => (pem, "oauth.signing_key_file"),
            Err(e) => {
                report.problem(
                    Some("oauth.signing_key_file"),
                    format!("cannot be read: {file}: {e}"),
                );
                return (true, None);
            }
        },
        (None, Some(pem)) => (pem, "oauth.signing_key"),
        (None, None) => {
            if algorithm.is_some() {
                report.problem(
                    Some("oauth.signing_algorithm"),
                    "is set without oauth.signing_key_file or oauth.signing_key",
                );
            }
            return (false, None);
        }
    };
    match SigningKey::from_pem(&pem, algorithm.as_deref()) {
        Ok(key) => (true, Some(key)),
        Err(why) => {
            report.problem(Some(path), format!("is not usable: {why}"));
            (true, None)
        }
    }
}

/// `multi_user`, `webui_secret_key`, `session_timeout_minutes`, `max_sessions` in the block.
fn multi_user_keys(report: &mut Report<'_>, fields: &mut Fields) -> MultiUserKeys {
    let multi_user = bool_field(report, fields, "multi_user");
    let webui_secret_key = match fields.take("webui_secret_key") {
        None => None,
        Some(Value::String(s)) => Some(s).filter(|s| !s.is_empty()),
        Some(other) => {
            report.problem(Some("oauth.webui_secret_key"), wrong("a string", &other));
            None
        }
    };
    let session_timeout_minutes = fields.take("session_timeout_minutes").and_then(|v| {
        let minutes = v.as_f64().filter(|n| *n > 0.0);
        if minutes.is_none() {
            report.problem(
                Some("oauth.session_timeout_minutes"),
                wrong("a positive number of minutes", &v),
            );
        }
        minutes
    });
    let max_sessions = fields.take("max_sessions").and_then(|v| {
        let max = v.as_u64().filter(|n| *n > 0);
        if max.is_none() {
            report.problem(
                Some("oauth.max_sessions"),
                wrong("a positive whole number", &v),
            );
        }
        max.map(|n| n as usize)
    });
    MultiUserKeys {
        multi_user,
        webui_secret_key,
        session_timeout_minutes,
        max_sessions,
    }
}

/// Keys left in the block: typos, since every key mcpo knows has been read.
fn warn_unknown_keys(report: &mut Report<'_>, fields: &Fields) {
    super::fields::warn_unknown_keys(report, fields, OAUTH_KEYS);
}

fn wrong(wanted: &str, value: &Value) -> String {
    format!("must be {wanted}, not {}", show(value))
}
