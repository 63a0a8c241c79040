//! `max_result_bytes` through the real binary and the fixture server: a result over the
//! server's limit is refused with 413 naming its size and the limit, or (`"mode": "truncate"`)
//! its text is cut to the limit and ends with a marker; a result within the limit passes
//! unchanged; a server without the key passes everything; a bad value is a config error that
//! names the file, the server and the field.

use crate::common::*;
use serde_json::{Value, json};

/// The fixture over stdio with this `max_result_bytes`, next to one without a limit.
fn bridge(limit: Value) -> Bridge {
    let mut limited = fixture_stdio_entry();
    limited["max_result_bytes"] = limit;
    start_config(
        json!({"limited": limited, "open": fixture_stdio_entry()}),
        &[],
    )
}

async fn ready(b: &Bridge) {
    for server in ["limited", "open"] {
        b.mcpo
            .wait_ok(
                &format!("/{server}/openapi.json"),
                std::time::Duration::from_secs(30),
            )
            .await;
    }
}

#[tokio::test]
async fn results_over_the_limit_are_refused_with_size_and_limit() {
    let b = bridge(json!(1000));
    ready(&b).await;
    let long = "x".repeat(5000);

    let r = post(&b.mcpo, "/limited/echo", None, json!({"text": long})).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["detail"]["size"], 5000, "{}", r.text);
    assert_eq!(r.body["detail"]["limit"], 1000, "{}", r.text);
    assert!(r.message().contains("max_result_bytes"), "{}", r.text);
    // Nothing of the result in the refusal.
    assert!(!r.text.contains("xxxx"), "{}", r.text);

    // Within the limit: unchanged.
    let r = post(&b.mcpo, "/limited/echo", None, json!({"text": "short"})).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!("short")));
    // Exactly at the limit passes too.
    let exact = "y".repeat(1000);
    let r = post(&b.mcpo, "/limited/echo", None, json!({"text": exact})).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!(exact)));

    // Structured content counts as its JSON.
    let user = json!({"user": {"name": "n".repeat(2000), "address": {"street": "s", "zip": "12345"}, "role": "admin"}});
    let r = post(&b.mcpo, "/limited/create_user", None, user.clone()).await;
    assert_eq!(r.status, 413, "{}", r.text);

    // Another server without the key: the same calls pass whole.
    let r = post(&b.mcpo, "/open/echo", None, json!({"text": long})).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!(long)));
    let r = post(&b.mcpo, "/open/create_user", None, user).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn truncate_mode_cuts_text_and_says_so() {
    let b = bridge(json!({"bytes": 1000, "mode": "truncate"}));
    ready(&b).await;
    // Multi-byte characters: the cut stays on a character boundary.
    let long = "é".repeat(3000); // 6000 bytes
    let r = post(&b.mcpo, "/limited/echo", None, json!({"text": long})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r
        .body
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {}", r.text));
    let (kept, marker) = text.split_once("\n[mcpo: ").expect("a truncation marker");
    assert_eq!(kept, "é".repeat(500), "1000 bytes of the text are kept");
    assert!(marker.contains("max_result_bytes (1000 bytes)"), "{marker}");
    assert!(marker.contains("1000 of 6000 bytes"), "{marker}");

    // Within the limit: no marker.
    let r = post(&b.mcpo, "/limited/echo", None, json!({"text": "short"})).await;
    assert_eq!(r.body, json!("short"));

    // What is not text is not cut: structured content over the limit is refused.
    let user = json!({"user": {"name": "n".repeat(2000), "address": {"street": "s", "zip": "12345"}, "role": "admin"}});
    let r = post(&b.mcpo, "/limited/create_user", None, user).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["detail"]["limit"], 1000, "{}", r.text);
}

#[tokio::test]
async fn non_text_over_the_limit_is_refused_even_in_truncate_mode() {
    // The fixture's 1x1 PNG is 92 bytes of base64.
    let b = bridge(json!({"bytes": 50, "mode": "truncate"}));
    ready(&b).await;
    let r = post(&b.mcpo, "/limited/image", None, json!({})).await;
    assert_eq!(r.status, 413, "{}", r.text);
    let r = post(&b.mcpo, "/open/image", None, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn bad_values_are_config_errors_naming_the_field() {
    for (value, expected) in [
        (json!(0), "must be a positive whole number of bytes"),
        (json!(-5), "must be a positive whole number of bytes"),
        (json!("1MB"), "must be a number of bytes or an object"),
        (
            json!({"bytes": 100, "mode": "cut"}),
            "must be \"refuse\" or \"truncate\"",
        ),
        (json!({"mode": "truncate"}), "needs \"bytes\""),
        (
            json!({"bytes": 100, "byte": 5}),
            "is not a key of max_result_bytes",
        ),
    ] {
        let mut entry = fixture_stdio_entry();
        entry["max_result_bytes"] = value.clone();
        let config = write_config(&json!({"mcpServers": {"big": entry}}).to_string());
        let path = config.path().to_str().unwrap().to_owned();
        let (status, stderr) = run_refused(&["--config", &path]);
        assert!(!status.success(), "{value}: {stderr}");
        assert!(stderr.contains(expected), "{value}: {stderr}");
        assert!(stderr.contains("big"), "names the server: {stderr}");
        assert!(
            stderr.contains("max_result_bytes"),
            "names the field: {stderr}"
        );
        let file = std::path::Path::new(&path)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(stderr.contains(file), "names the file: {stderr}");
    }
}
