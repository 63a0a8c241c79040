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
