//! #19 item 8: failure texts carry a child's stderr, upstream URLs and the pending login's
//! authorization URL. With `--api-key` but without `--strict-auth` (the documented Open WebUI
//! set-up) `/` and specs are open to everyone: they, and 503 bodies, give the state word only;
//! `/status` (key-holders) gives the reason, with URLs redacted.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

const KEY: &str = "hardening-key-0123456789";

/// A stdio server that prints its database URL (with a password) and dies before answering
/// `initialize`: its stderr tail becomes the failure text.
const LEAKY: &str = r#"
import sys
sys.stderr.write("connecting with DATABASE_URL=postgres://app:hunter2@db.internal:5432/app?sslpassword=s3cret\n")
sys.stderr.write("fatal: the database is unreachable\n")
sys.exit(1)
"#;

fn assert_no_details(text: &str, what: &str) {
    for secret in [
        "hunter2",
        "s3cret",
        "DATABASE_URL",
        "db.internal",
        "unreachable",
    ] {
        assert!(
            !text.contains(secret),
            "{what} shows the failure's detail ({secret}): {text}"
        );
    }
}

#[tokio::test]
async fn failure_details_reach_key_holders_only_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("leaky.py");
    std::fs::write(&script, LEAKY).unwrap();
    let bridge = start_config(
        json!({
            "db": { "command": "python3", "args": [script.to_str().unwrap()] },
            "fx": fixture_stdio_entry(),
        }),
        &["--api-key", KEY, "--reconnect-wait", "0.2"],
    );
    let mcpo = &bridge.mcpo;
    let key = bearer(KEY);
    // Wait until the reason is known (in /status).
    let status = poll(Duration::from_secs(20), || async {
        let r = get(mcpo, "/status", Some(&key)).await;
        let db = server_status(&r.body, "db").clone();
        (db["state"] == "failed").then_some(db)
    })
    .await
    .expect("db never reached the failed state");

    // Everyone else: the state word.
    let index = get(mcpo, "/", None).await;
    assert_eq!(index.status, 200, "{}", index.text);
    assert_no_details(&index.text, "GET / without the key");
    let db = index.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "db")
        .unwrap()
        .clone();
    assert_eq!(db["state"], "failed", "{db}");

    let spec = get(mcpo, "/db/openapi.json", None).await;
    assert_eq!(spec.status, 503, "{}", spec.text);
    assert_no_details(&spec.text, "the 503 spec without the key");
    assert!(spec.message().contains("(failed)"), "{}", spec.text);

    let combined = get(mcpo, "/openapi.json", None).await;
    assert_eq!(combined.status, 200);
    assert_no_details(&combined.text, "the combined spec");

    // A tool call needs the key; its 503 (which Open WebUI hands to the model and the user)
    // names the state, not the reason.
    let call = post(mcpo, "/db/query", Some(&key), json!({})).await;
    assert_eq!(call.status, 503, "{}", call.text);
    assert_no_details(&call.text, "a tool call's 503");
    assert!(call.message().contains("/status"), "{}", call.text);

    // Key-holders: the reason, the stderr tail with its URL redacted.
    let last_error = status["last_error"].as_str().expect("last_error");
    assert!(
        last_error.contains("postgres://[redacted]@db.internal:5432/app?[redacted]")
            && last_error.contains("the database is unreachable"),
        "/status: {status}"
    );
    assert!(
        !last_error.contains("hunter2") && !last_error.contains("s3cret"),
        "{status}"
    );

    // Nothing in the log with the password either: the failure is logged redacted.
    let log = mcpo.stderr.text();
    let failure_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot connect to upstream"))
        .collect();
    assert!(!failure_lines.is_empty(), "{log}");
    for line in failure_lines {
        assert!(
            !line.contains("hunter2") && !line.contains("s3cret"),
            "{line}"
        );
    }
}

/// A pending single-user OAuth login: its authorization URL (with the `state` that lets whoever
/// opens it sign the server in to their own account) is in `/status` for key-holders only.
#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn the_pending_login_link_reaches_key_holders_only() {
    use crate::peers::{PeerOptions, peers_or_skip};
    let peers = peers_or_skip!(PeerOptions::default());
    let dir = peers.dir.path();
    // A browser that only records the URL it is given: nobody signs in.
    let urls = dir.join("hardening-browser-urls");
    let browser = dir.join("hardening-browser");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n", urls.display()),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let oauth =
        json!({"storage_type": "memory", "callback_port": free_port(), "login_timeout": 120});
    let config = write_config(
        &json!({"mcpServers": {"secure": {"type": "streamable-http", "url": peers.mcp_url, "oauth": oauth}}})
            .to_string(),
    );
    let token_dir = peers.token_dir().display().to_string();
    let mcpo = Mcpo::start_with_env(
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--api-key",
            KEY,
        ],
        &[
            ("BROWSER", browser.to_str().unwrap()),
            ("MCPO_TOKEN_DIR", &token_dir),
        ],
    );
    let key = bearer(KEY);
    let sign_in = poll(Duration::from_secs(30), || async {
        std::fs::read_to_string(&urls)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
    })
    .await
    .expect("the browser was never launched");
    let (before_query, _) = sign_in.split_once('?').expect("a query");
    let status = poll(Duration::from_secs(10), || async {
        let r = get(&mcpo, "/status", Some(&key)).await;
        let s = server_status(&r.body, "secure").clone();
        (s["state"] == "waiting_for_login").then_some(s)
    })
    .await
    .expect("never waiting_for_login");
    let no_link = |text: &str, what: &str| {
        assert!(
            !text.contains(before_query) && !text.contains("state="),
            "{what} shows the sign-in link: {text}"
        );
    };
    let index = get(&mcpo, "/", None).await;
    assert_eq!(index.status, 200);
    no_link(&index.text, "GET /");
    let spec = get(&mcpo, "/secure/openapi.json", None).await;
    assert_eq!(spec.status, 503, "{}", spec.text);
    no_link(&spec.text, "the 503 spec");
    assert!(
        spec.message().contains("waiting_for_login"),
        "{}",
        spec.text
    );
    no_link(
        &get(&mcpo, "/openapi.json", None).await.text,
        "the combined spec",
    );
    let call = post(&mcpo, "/secure/add", Some(&key), json!({"a": 1, "b": 2})).await;
    assert_eq!(call.status, 503, "{}", call.text);
    no_link(&call.text, "a tool call's 503");
    // Key-holders: the link itself, and the failure text with it redacted.
    assert_eq!(status["login_url"], json!(sign_in), "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("{before_query}?[redacted]"))),
        "{status}"
    );

    assert_eq!(get(&mcpo, "/status", None).await.status, 401);
}
