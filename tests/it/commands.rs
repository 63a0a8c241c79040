//! The operator subcommands: `validate`, `tools`, `completions`, `man`.

use std::process::Command;

use crate::common::*;
use serde_json::json;

fn mcpo(args: &[&str]) -> std::process::Output {
    Command::new(mcpo_bin())
        .args(args)
        .env_remove("MCPO_API_KEY")
        .env_remove("MCPO_PUBLIC_URL")
        .output()
        .expect("run mcpo")
}

#[test]
fn validate_reports_every_problem_with_exit_codes_for_scripts() {
    let good = write_config(&json!({"mcpServers": {"fx": fixture_stdio_entry()}}).to_string());
    let out = mcpo(&["validate", "--config", good.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 server)"));

    let bad = write_config(r#"{"mcpServers": {"a": {"command": 5}, "b": {"url": "ftp://x"}}}"#);
    let out = mcpo(&["validate", "-c", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server 'a'") && err.contains("command"),
        "{err}"
    );
    assert!(err.contains("server 'b'") && err.contains("url"), "{err}");

    let oauth = write_config(
        r#"{"mcpServers": {"o": {"type": "streamable-http", "url": "http://127.0.0.1:9/mcp",
            "oauth": {"grant_type": "password"}}}}"#,
    );
    let out = mcpo(&["validate", "-c", oauth.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("server 'o': field 'oauth'"));
}

/// The daemon refuses to start a multi-user OAuth server without `--public-url`; `validate`
/// says so too instead of passing a config that will not start.
#[test]
fn validate_asks_for_the_public_url_a_multi_user_oauth_server_needs() {
    let cfg = write_config(
        r#"{"mcpServers": {"gh": {"type": "streamable-http", "url": "https://mcp.example.com/mcp",
            "multi_user": true, "webui_secret_key": "a-webui-secret-of-32-bytes-long!",
            "oauth": {}}}}"#,
    );
    let path = cfg.path().to_str().unwrap();
    let out = mcpo(&["validate", "-c", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server 'gh'") && err.contains("--public-url") && err.contains("required"),
        "{err}"
    );
    let out = mcpo(&[
        "--public-url",
        "https://mcpo.example.com",
        "validate",
        "-c",
        path,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tools_lists_each_servers_tools_and_fails_for_a_dead_one() {
    let cfg = write_config(
        &json!({"mcpServers": {
            "fx": fixture_stdio_entry(),
            "dead": {"command": "/nonexistent/server"},
        }})
        .to_string(),
    );
    let out = mcpo(&["tools", "-c", cfg.path().to_str().unwrap(), "fx"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fx (15 tools)"), "{text}");
    assert!(
        text.contains("  echo") && text.contains("- text (string, required)"),
        "{text}"
    );

    let out = mcpo(&["tools", "-c", cfg.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dead: not connected") && text.contains("/nonexistent/server"),
        "{text}"
    );
}

#[test]
fn completions_and_man_page_come_from_the_real_flags() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = mcpo(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("strict-auth") && text.contains("path-prefix"),
            "{shell}"
        );
    }
    let out = mcpo(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(".ie") || text.contains(".TH mcpo"),
        "{text}"
    );
    assert!(text.contains("api\\-key"), "man page lacks --api-key");
}
