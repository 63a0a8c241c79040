use std::time::Duration;

use super::*;
use crate::config::signing_key_tests::EC_KEY;
use crate::config::{
    DEFAULT_OAUTH_LOGIN_TIMEOUT, OAuthGrant, SigningKey, TokenStorage, TransportConfig,
    from_str_with_env,
};

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
        ..
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
        lines[3].starts_with("config.json: server 'bad name': the server name can only contain")
    );
    assert!(lines[4].starts_with("config.json: server 'docs': the name is reserved"));
    let err = from_str_with_env("{\"mcpServers\": {\"a\": 1, \"b\": 2}}", "f", &env).unwrap_err();
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
        fail(r#"{"mcpServers": []}"#).contains("field 'mcpServers' must be an object of servers")
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
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("client-key.pem");
    std::fs::write(&key_file, EC_KEY).unwrap();
    let server = one_server(&wrap(&format!(
        r#"{{"type": "streamable-http", "url": "http://localhost:8000/mcp", "oauth": {{
            "server_url": "http://localhost:8000",
            "storage_type": "memory",
            "callback_port": 4040,
            "use_loopback": false,
            "client_id": "id",
            "client_metadata": {{"client_name": "mcpo", "redirect_uris": ["http://localhost:4040/callback"]}},
            "multi_user": false,
            "webui_secret_key": "k-0123456789abcdef",
            "session_timeout_minutes": 60,
            "max_sessions": 10,
            "grant_type": "client_credentials",
            "client_metadata_url": "https://example.com/client.json",
            "scopes": ["read", "write"],
            "login_timeout": 120,
            "signing_key_file": {:?},
            "signing_algorithm": "ES256"
        }}}}"#,
        key_file.display().to_string()
    )));
    let oauth = server.oauth.unwrap();
    assert_eq!(oauth.server_url.unwrap().as_str(), "http://localhost:8000/");
    assert_eq!(oauth.storage_type, TokenStorage::Memory);
    assert_eq!(oauth.callback_port, 4040);
    assert!(!oauth.use_loopback);
    assert_eq!(oauth.client_id.as_deref(), Some("id"));
    assert_eq!(oauth.client_secret, None);
    assert_eq!(oauth.client_metadata.unwrap()["client_name"], "mcpo");
    assert_eq!(oauth.grant, OAuthGrant::ClientCredentials);
    assert_eq!(
        oauth.client_metadata_url.as_deref(),
        Some("https://example.com/client.json")
    );
    assert_eq!(
        oauth.scopes,
        Some(vec!["read".to_owned(), "write".to_owned()])
    );
    assert_eq!(oauth.login_timeout, Duration::from_secs(120));
    let key = oauth.signing_key.expect("the key file was read");
    assert_eq!(key, SigningKey::from_pem(EC_KEY, Some("ES256")).unwrap());
    assert!(server.multi_user.is_none());

    let with_secret = one_server(&wrap(
        r#"{"type": "http", "url": "http://h/mcp", "oauth": {
            "client_id": "id", "client_secret": "${GITHUB_TOKEN}"}}"#,
    ))
    .oauth
    .unwrap();
    assert_eq!(with_secret.client_secret.as_deref(), Some("ghp_123"));

    let minimal = one_server(&wrap(
        r#"{"type": "http", "url": "http://h/mcp", "oauth": {}}"#,
    ))
    .oauth
    .unwrap();
    assert_eq!(minimal.server_url, None);
    assert_eq!(minimal.storage_type, TokenStorage::File);
    assert_eq!(minimal.callback_port, 3030);
    assert!(minimal.use_loopback);
    assert_eq!(minimal.grant, OAuthGrant::AuthorizationCode);
    assert_eq!(minimal.login_timeout, DEFAULT_OAUTH_LOGIN_TIMEOUT);
    assert_eq!(minimal.scopes, None);
    assert_eq!(minimal.signing_key, None);
}

/// The problems of a server `s` with this `oauth` block.
fn oauth_refused(block: serde_json::Value) -> String {
    let text = serde_json::json!({"mcpServers": {"s": {
        "type": "streamable-http", "url": "http://127.0.0.1:9/mcp", "oauth": block,
    }}});
    let err = fail(&text.to_string());
    assert!(err.contains("server 's': field 'oauth"), "{err}");
    err
}

#[test]
fn oauth_defaults_and_scopes() {
    let block = |oauth: &str| {
        one_server(&wrap(&format!(
            r#"{{"type": "streamable-http", "url": "http://h/mcp", "oauth": {oauth}}}"#
        )))
        .oauth
        .unwrap()
    };
    let oauth = block(r#"{"scopes": "a b", "login_timeout": 2.5}"#);
    assert_eq!(oauth.scopes, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(oauth.login_timeout, Duration::from_millis(2500));
    assert_eq!(block(r#"{"scopes": " "}"#).scopes, None);
    assert_eq!(
        block(r#"{"scopes": ["a b", "c"]}"#).scopes,
        Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()])
    );
}

#[test]
fn oauth_rules_between_keys() {
    use serde_json::json;
    for (block, needle) in [
        (json!({"grant_type": "password"}), "grant_type"),
        (json!({"client_secret": "s"}), "without oauth.client_id"),
        (
            json!({"grant_type": "client_credentials", "client_id": "c"}),
            "needs oauth.client_id and either oauth.client_secret or oauth.signing_key_file",
        ),
        (json!({"login_timeout": 0}), "login_timeout"),
        (
            json!({"client_metadata_url": "http://mcpo.example/client.json"}),
            "https URL",
        ),
    ] {
        let err = oauth_refused(block);
        assert!(err.contains(needle), "{err}");
    }
    // The documented wording of the two most common ones.
    assert!(
        oauth_refused(json!({"grant_type": "password"})).contains(
            "config.json: server 's': field 'oauth' sets grant_type to \"password\"; use \"authorization_code\""
        )
    );
    assert!(oauth_refused(json!({"client_secret": "s"})).contains(
        "config.json: server 's': field 'oauth.client_secret' is set without oauth.client_id"
    ));
}

#[test]
fn oauth_private_key_jwt() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key.pem");
    std::fs::write(&file, EC_KEY).unwrap();
    let file = file.display().to_string();
    let read = |block: serde_json::Value| {
        let text = json!({"mcpServers": {"s": {
            "type": "streamable-http", "url": "http://127.0.0.1:9/mcp", "oauth": block,
        }}});
        load(&text.to_string()).0.servers.remove(0).oauth.unwrap()
    };
    let oauth = read(json!({
        "grant_type": "client_credentials", "client_id": "c", "signing_key_file": file,
    }));
    assert!(oauth.signing_key.is_some());
    let oauth = read(json!({
        "grant_type": "client_credentials", "client_id": "c", "signing_key": EC_KEY,
        "signing_algorithm": "ES256",
    }));
    assert!(!format!("{oauth:?}").contains("MIGH"));

    let missing = dir.path().join("nope.pem").display().to_string();
    for (block, needle) in [
        (
            json!({"client_id": "c", "signing_key": EC_KEY}),
            "only used with oauth.grant_type",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "c",
                   "client_secret": "s", "signing_key": EC_KEY}),
            "both set",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "c",
                   "signing_key_file": missing}),
            "nope.pem",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "c",
                   "signing_key": EC_KEY, "signing_algorithm": "RS256"}),
            "field 'oauth.signing_key' is not usable: the key cannot sign with RS256",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "c",
                   "signing_key": EC_KEY, "signing_algorithm": "HS256"}),
            "field 'oauth.signing_algorithm' must be one of ES256",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "c",
                   "signing_algorithm": "ES256"}),
            "without oauth.signing_key_file",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "c",
                   "signing_key_file": file, "signing_key": EC_KEY}),
            "both set; use one",
        ),
    ] {
        let err = oauth_refused(block);
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("MIGH"), "{err}");
    }
}

#[test]
fn oauth_debug_hides_the_key() {
    let oauth = one_server(&wrap(&format!(
        r#"{{"type": "streamable-http", "url": "http://h/mcp", "oauth": {{
            "grant_type": "client_credentials", "client_id": "c", "signing_key": {:?}}}}}"#,
        EC_KEY
    )))
    .oauth
    .unwrap();
    assert!(!format!("{oauth:?}").contains("MIGH"));
}

#[test]
fn oauth_servers_can_be_multi_user() {
    // The OAuth guide's place: inside the `oauth` block.
    let server = one_server(&wrap(
        r#"{"type": "streamable-http", "url": "http://h/mcp", "oauth": {
            "multi_user": true, "webui_secret_key": "k-0123456789abcdef", "session_timeout_minutes": 0.5,
            "max_sessions": 7
        }}"#,
    ));
    let multi = server.multi_user.expect("multi-user");
    assert_eq!(multi.secret, "k-0123456789abcdef");
    assert_eq!(multi.session_timeout, Duration::from_secs(30));
    assert_eq!(multi.max_sessions, 7);
    assert!(server.oauth.is_some());
    // On the server itself works too; without `multi_user: true` it stays single-user.
    let server = one_server(&wrap(
        r#"{"type": "streamable-http", "url": "http://h/mcp", "multi_user": true,
            "webui_secret_key": "k-0123456789abcdef", "oauth": {}}"#,
    ));
    assert!(server.multi_user.is_some() && server.oauth.is_some());
    let server = one_server(&wrap(
        r#"{"type": "streamable-http", "url": "http://h/mcp", "oauth": {"webui_secret_key": "k-0123456789abcdef"}}"#,
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
fn unknown_oauth_keys_are_ignored_with_a_warning() {
    let (config, warnings) = load(&wrap(
        r#"{"type": "streamable-http", "url": "http://h/mcp", "oauth": {"callbackport": 1}}"#,
    ));
    assert_eq!(
        config.servers[0].oauth.as_ref().unwrap().callback_port,
        3030
    );
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .to_string()
            .contains("field 'oauth.callbackport' is not a key mcpo knows")
    );
    assert!(
        warnings[0]
            .to_string()
            .ends_with("ignored; did you mean 'callback_port'?"),
        "{}",
        warnings[0]
    );
}

#[test]
fn debug_output_hides_the_client_secret() {
    let (config, _) = from_str_with_env(
        r#"{"mcpServers": {"o": {"type": "streamable-http", "url": "https://h/mcp",
            "oauth": {"client_id": "app", "client_secret": "s3cr3t-value",
                      "grant_type": "client_credentials"}}}}"#,
        "t.json",
        &env,
    )
    .unwrap();
    let shown = format!("{:?}", config.servers[0]);
    assert!(shown.contains("client_id: Some(\"app\")"), "{shown}");
    assert!(!shown.contains("s3cr3t-value"), "{shown}");
    assert!(shown.contains("[REDACTED]"), "{shown}");
}

#[test]
fn per_user_tools_is_for_multi_user_servers_only() {
    let server = one_server(&wrap(
        r#"{"command": "x", "multi_user": true, "webui_secret_key": "k-0123456789abcdef", "per_user_tools": true}"#,
    ));
    assert!(server.multi_user.expect("multi-user").per_user_tools);
    let server = one_server(&wrap(
        r#"{"command": "x", "multi_user": true, "webui_secret_key": "k-0123456789abcdef"}"#,
    ));
    assert!(!server.multi_user.expect("multi-user").per_user_tools);
    for (text, expected) in [
        (
            wrap(r#"{"command": "x", "per_user_tools": true}"#),
            "field 'per_user_tools' applies only to multi-user servers: set \"multi_user\": true",
        ),
        (
            wrap(
                r#"{"command": "x", "multi_user": true, "webui_secret_key": "k-0123456789abcdef", "per_user_tools": "yes"}"#,
            ),
            "field 'per_user_tools' must be true or false",
        ),
    ] {
        let msg = fail(&text);
        assert!(
            msg.starts_with(&format!("config.json: server 's': {expected}")),
            "{text}\n  got:  {msg}\n  want: {expected}"
        );
    }
}

#[test]
fn sandbox_is_for_multi_user_stdio_servers() {
    let multi = r#""multi_user": true, "webui_secret_key": "k-0123456789abcdef""#;
    let server = one_server(&wrap(&format!(
        r#"{{"command": "x", {multi}, "sandbox": true}}"#
    )));
    let sandbox = server.multi_user.expect("multi-user").sandbox;
    assert_eq!(
        sandbox,
        Some(crate::config::Sandbox {
            writable: Vec::new(),
            network: true
        })
    );
    let server = one_server(&wrap(&format!(
        r#"{{"command": "x", {multi}, "sandbox": {{"writable": ["${{HOME}}/.npm", "/srv/data"], "network": false}}}}"#
    )));
    let sandbox = server.multi_user.unwrap().sandbox.unwrap();
    assert_eq!(
        sandbox.writable,
        [
            std::path::PathBuf::from("/home/me/.npm"),
            std::path::PathBuf::from("/srv/data")
        ]
    );
    assert!(!sandbox.network);
    let server = one_server(&wrap(&format!(
        r#"{{"command": "x", {multi}, "sandbox": false}}"#
    )));
    assert_eq!(server.multi_user.unwrap().sandbox, None);
    for (text, expected) in [
        (
            wrap(r#"{"command": "x", "sandbox": true}"#),
            "field 'sandbox' applies only to multi-user servers",
        ),
        (
            wrap(&format!(
                r#"{{"type": "streamable-http", "url": "http://h/mcp", {multi}, "sandbox": true}}"#
            )),
            "field 'sandbox' applies only to stdio servers",
        ),
        (
            wrap(&format!(r#"{{"command": "x", {multi}, "sandbox": "yes"}}"#)),
            "field 'sandbox' must be true, false or an object",
        ),
        (
            wrap(&format!(
                r#"{{"command": "x", {multi}, "sandbox": {{"netwrok": false}}}}"#
            )),
            "field 'sandbox.netwrok' is not a sandbox setting; the settings are writable, network",
        ),
        (
            wrap(&format!(
                r#"{{"command": "x", {multi}, "sandbox": {{"network": "no"}}}}"#
            )),
            "field 'sandbox.network' must be true or false",
        ),
        (
            wrap(&format!(
                r#"{{"command": "x", {multi}, "sandbox": {{"writable": ["data"]}}}}"#
            )),
            "field 'sandbox.writable' item 1 ('data') must be an absolute path",
        ),
        (
            wrap(&format!(
                r#"{{"command": "x", {multi}, "sandbox": {{"writable": ["/srv/../etc"]}}}}"#
            )),
            "field 'sandbox.writable' item 1 ('/srv/../etc') must not contain '..'",
        ),
        (
            wrap(&format!(
                r#"{{"command": "x", {multi}, "sandbox": {{"writable": "/srv"}}}}"#
            )),
            "field 'sandbox.writable' must be a list of absolute paths, not a string",
        ),
    ] {
        let msg = fail(&text);
        assert!(
            msg.starts_with(&format!("config.json: server 's': {expected}")),
            "{text}\n  got:  {msg}\n  want: {expected}"
        );
    }
}
