//! Issue #19, item 13: what reaches mcpo's log. A value holding a line break (here an Open
//! WebUI user id, which the per-call line names) cannot write a line of its own; URLs' query
//! strings and userinfo (a `${VAR}` secret in an upstream URL) never appear, in our lines or in
//! rmcp's, in either format and at every level; and rmcp's payload logging (whole tool arguments
//! and results at debug/trace) stays off unless `--log-payloads` asks for it.

use std::time::Duration;

use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Long enough for the start-up check on webui secrets.
const WEBUI_SECRET: &str = "hardening-logs-webui-secret-0123456789";

/// A line that would look like one of mcpo's own if it started a line.
const FORGED: &str = "2026-01-01T00:00:00.000000Z  INFO mcpo::app: forged line";

fn session_token(user: &str) -> String {
    let t = now();
    let claims = json!({"id": user, "exp": t + 3600, "iat": t, "typ": "session"});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(WEBUI_SECRET.as_bytes()),
    )
    .expect("encode JWT")
}

/// mcpo with the fixture as a multi-user stdio server, in `format`.
async fn multi_user_mcpo(format: &str) -> (Mcpo, tempfile::NamedTempFile) {
    let mut entry = fixture_stdio_entry();
    entry["multi_user"] = json!(true);
    let config = write_config(&json!({"mcpServers": {"fx": entry}}).to_string());
    let mcpo = Mcpo::start_with_env(
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--log-format",
            format,
        ],
        &[("WEBUI_SECRET_KEY", WEBUI_SECRET)],
    );
    (mcpo, config)
}

#[tokio::test]
async fn a_user_id_with_line_breaks_does_not_forge_log_lines() {
    let user = format!("alice\n{FORGED}\r\x1b[2J");
    for format in ["text", "json"] {
        let (mcpo, _config) = multi_user_mcpo(format).await;
        let auth = bearer(&session_token(&user));
        let r = poll(Duration::from_secs(30), || async {
            let r = post(&mcpo, "/fx/echo", Some(&auth), json!({"text": "hi"})).await;
            (r.status == StatusCode::OK).then_some(r)
        })
        .await;
        assert!(
            r.is_some(),
            "{format}: no call succeeded:\n{}",
            mcpo.stderr.text()
        );
        wait_log(&mcpo, &["tool call"], 1, Duration::from_secs(10)).await;
        let log = mcpo.stderr.text();
        for line in log.lines() {
            assert!(
                !line.starts_with("2026-01-01T00:00:00") && !line.contains('\x1b'),
                "{format}: a forged line or a raw ESC in the log: {line:?}\n{log}"
            );
            if format == "json" {
                let parsed: Result<Value, _> = serde_json::from_str(line);
                assert!(parsed.is_ok(), "not one JSON object: {line:?}");
            }
        }
        let call = log
            .lines()
            .find(|l| l.contains("tool call") && l.contains("forged line"))
            .unwrap_or_else(|| panic!("{format}: the call's line does not name the user:\n{log}"));
        if format == "text" {
            assert!(
                call.contains(r"caller=alice\n2026-01-01T00:00:00.000000Z  INFO mcpo::app: forged line\r\x1b[2J"),
                "{call}"
            );
        } else {
            let parsed: Value = serde_json::from_str(call).unwrap();
            assert_eq!(parsed["caller"], json!(user), "{call}");
        }
    }
}

/// The fixture's own log stays at warnings (its stderr reaches mcpo's log): only mcpo's and
/// rmcp's lines are judged.
fn quiet_fixture() -> Value {
    let mut entry = fixture_stdio_entry();
    entry["env"] = json!({"RUST_LOG": "warn"});
    entry
}

#[tokio::test]
async fn rmcp_payloads_stay_out_of_the_log_unless_asked_for() {
    for (extra, shown) in [(None, false), (Some("--log-payloads"), true)] {
        let marker = format!("payload-marker-{}", free_port());
        let config = write_config(&json!({"mcpServers": {"fx": quiet_fixture()}}).to_string());
        let mut args = vec![
            "--config",
            config.path().to_str().unwrap(),
            "--log-level",
            "trace",
        ];
        args.extend(extra);
        // RUST_LOG=trace as well: an explicit filter does not turn payloads on either.
        let mcpo = Mcpo::start_with_env(&args, &[("RUST_LOG", "trace")]);
        mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(20))
            .await;
        let r = post(&mcpo, "/fx/echo", None, json!({"text": marker})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        wait_log(
            &mcpo,
            &["tool call", "status=200"],
            1,
            Duration::from_secs(10),
        )
        .await;
        let log = mcpo.stderr.text();
        // Something of rmcp's is logged at trace either way (its lines are not all dropped).
        assert!(
            log.contains("rmcp::"),
            "no rmcp line at all:\n{}",
            tail(&log, 40)
        );
        assert_eq!(
            log.contains(&marker),
            shown,
            "{extra:?}: the tool's argument {} in the trace log:\n{}",
            if shown {
                "must appear"
            } else {
                "must not appear"
            },
            tail(&log, 60)
        );
    }
}

#[tokio::test]
async fn query_secrets_and_userinfo_in_upstream_urls_never_reach_the_log() {
    const SECRET: &str = "sekrit-query-token-4b1d";
    const PASSWORD: &str = "sekrit-password-77aa";
    for format in ["text", "json"] {
        // Nothing listens on these ports: every connect fails and is logged, with the URL.
        let servers = json!({
            "web": {"type": "streamable-http",
                    "url": format!("http://127.0.0.1:{}/mcp?token=${{UPSTREAM_TOKEN}}", free_port())},
            "legacy": {"type": "sse",
                       "url": format!("http://user:${{UPSTREAM_PASSWORD}}@127.0.0.1:{}/sse?key=${{UPSTREAM_TOKEN}}", free_port())},
        });
        let config = write_config(&json!({"mcpServers": servers}).to_string());
        let mcpo = Mcpo::start_with_env(
            &[
                "--config",
                config.path().to_str().unwrap(),
                "--log-format",
                format,
                "--log-level",
                "trace",
                "--reconnect-min-delay",
                "0.2",
            ],
            &[
                ("RUST_LOG", "trace"),
                ("UPSTREAM_TOKEN", SECRET),
                ("UPSTREAM_PASSWORD", PASSWORD),
            ],
        );
        wait_log(
            &mcpo,
            &["cannot connect", "web"],
            2,
            Duration::from_secs(20),
        )
        .await;
        wait_log(
            &mcpo,
            &["cannot connect", "legacy"],
            2,
            Duration::from_secs(20),
        )
        .await;
        let log = mcpo.stderr.text();
        for secret in [SECRET, PASSWORD] {
            let leaks: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
            assert!(
                leaks.is_empty(),
                "{format}: secret in the log:\n{}",
                leaks.join("\n")
            );
        }
        assert!(
            log.contains("[redacted]"),
            "{format}: no URL was logged at all?\n{log}"
        );
    }
}
