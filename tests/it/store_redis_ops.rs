//! `--store redis://…` as an operator meets it (#18), against a real `redis-server` on a free
//! loopback port (`common::Redis`; skipped loudly without it): the flags and what mcpo refuses,
//! `/status`, `/readyz` and `/metrics` while Redis is up, stopped and back on the same port,
//! and the Redis password never in a log line, `/status`, `/metrics` or a stdio server's
//! environment.

use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::Value;

const PASSWORD: &str = "redis-pw-Xq73Lk0e";

/// A store key, as `MCPO_STORE_KEY` takes it.
fn key_text() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

/// The pids of `parent`'s children.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|s| s.ppid == parent))
        .collect()
}

async fn readyz(mcpo: &Mcpo) -> (StatusCode, Value) {
    get_json(mcpo, "/readyz").await
}

async fn metrics(mcpo: &Mcpo) -> String {
    let r = get(mcpo, "/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.text
}

/// The value of the unlabelled metric `name`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_redis_store_needs_an_explicit_key_and_a_usable_url() {
    // No MCPO_STORE_KEY or --store-key-file: every replica must seal with the same key.
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", free_port());
    let (status, stderr) = run_refused(&["--store", &url, "--", "true"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("option '--store'"), "{stderr}");
    assert!(
        stderr.contains("MCPO_STORE_KEY or --store-key-file"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    // Not a store URL: the flag is named, the password is not shown.
    for bad in [
        format!("postgres://u:{PASSWORD}@db.internal/x"),
        format!("redis://u:{PASSWORD}@:6379/0"),
        "memory".to_owned(),
    ] {
        let (status, stderr) = run_refused(&["--store", &bad, "--", "true"]);
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("option '--store' is not usable"),
            "{stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
    let (status, stderr) = run_refused(&["--store-prefix", "has space", "--", "true"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("option '--store-prefix'"), "{stderr}");
    // `mcpo validate` checks the same, from MCPO_STORE too; so does `mcpo tools`, which
    // stores credentials where the daemon finds them.
    let config =
        write_config(&serde_json::json!({"mcpServers": {"a": {"command": "true"}}}).to_string());
    for command in ["validate", "tools"] {
        let out = std::process::Command::new(mcpo_bin())
            .args([command, "--config", config.path().to_str().unwrap()])
            .env("MCPO_STORE", &url)
            .env_remove("MCPO_STORE_KEY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("option '--store'") && stderr.contains("MCPO_STORE_KEY"),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{command}: {stderr}");
    }
}

#[tokio::test]
async fn redis_down_at_start_up_is_not_an_error_and_a_password_on_the_command_line_is_warned() {
    let tokens = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
    let shown = format!("redis://127.0.0.1:{port}/0");
    let key = key_text();
    let mut mcpo = Mcpo::start_with_env(
        &[
            "--store",
            &url,
            "--",
            fixture_bin().to_str().unwrap(),
            "stdio",
        ],
        &[
            ("MCPO_STORE_KEY", key.as_str()),
            ("MCPO_TOKEN_DIR", tokens.path().to_str().unwrap()),
        ],
    );
    wait_log(
        &mcpo,
        &["store", &shown, "unavailable at start-up"],
        1,
        Duration::from_secs(15),
    )
    .await;
    let log = mcpo.stderr.text();
    assert!(
        log.contains("/proc/PID/cmdline") && log.contains("MCPO_STORE"),
        "{log}"
    );
    // Ready for nothing while the store does not answer; the store is named.
    let (status, body) = readyz(&mcpo).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["store"]["store"], shown.as_str(), "{body}");
    assert_eq!(body["store"]["state"], "unavailable", "{body}");
    let status = get_ok(&mcpo, "/status").await;
    assert_eq!(status["store"]["state"], "unavailable", "{status}");
    assert!(status["store"]["error"].is_string(), "{status}");
    assert!(!status.to_string().contains(PASSWORD), "{status}");
    mcpo.stop();
    assert!(
        !mcpo.stderr.text().contains(PASSWORD),
        "{}",
        mcpo.stderr.text()
    );
}

#[tokio::test]
async fn status_readyz_and_metrics_follow_redis_down_and_back_without_a_restart() {
    let Some(mut redis) = Redis::start_with_password(PASSWORD) else {
        return;
    };
    let tokens = tempfile::tempdir().unwrap();
    let shown = format!("redis://127.0.0.1:{}/0", redis.port());
    // `inherit_env`: the server gets all of mcpo's environment that is left, so it would see
    // MCPO_STORE had mcpo kept it.
    let mut server = fixture_stdio_entry();
    server["inherit_env"] = true.into();
    let config = write_config(&serde_json::json!({ "mcpServers": { "fx": server } }).to_string());
    let key = key_text();
    let url = redis.url();
    let mut mcpo = Mcpo::start_with_env(
        &["--config", config.path().to_str().unwrap()],
        &[
            ("MCPO_STORE", url.as_str()),
            ("MCPO_STORE_KEY", key.as_str()),
            ("MCPO_TOKEN_DIR", tokens.path().to_str().unwrap()),
        ],
    );
    let ready = poll(Duration::from_secs(30), || async {
        (readyz(&mcpo).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert!(ready.is_some(), "never ready:\n{}", mcpo.stderr.text());
    wait_log(
        &mcpo,
        &["store", &shown, "is available"],
        1,
        Duration::from_secs(5),
    )
    .await;

    // The URL came through MCPO_STORE: no warning, and the stdio server did not inherit it.
    assert!(!mcpo.stderr.text().contains("/proc/PID/cmdline"));
    let kids = children(mcpo.child.id());
    assert!(!kids.is_empty(), "no stdio child found");
    for pid in kids {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !environ
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "child {pid} inherited the Redis password"
        );
        assert!(
            !environ.windows(11).any(|w| w == b"MCPO_STORE="),
            "child {pid} inherited MCPO_STORE"
        );
    }

    let status = get_ok(&mcpo, "/status").await;
    assert_eq!(
        status["store"],
        serde_json::json!({ "store": shown, "state": "available" }),
        "{status}"
    );
    let text = metrics(&mcpo).await;
    assert_eq!(metric(&text, "mcpo_store_available"), 1.0, "{text}");
    let operations = metric(&text, "mcpo_store_operations_total");
    assert!(operations >= 1.0, "{text}");
    let count = metric(&text, "mcpo_store_operation_duration_seconds_count");
    assert!(count >= 1.0, "{text}");
    assert!(metric(&text, "mcpo_store_operation_duration_seconds_sum") > 0.0);
    // A histogram: cumulative buckets up to +Inf, which is the count. A loopback PING takes
    // well under a second.
    assert_eq!(
        metric(
            &text,
            "mcpo_store_operation_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        count,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "mcpo_store_operation_duration_seconds_bucket{le=\"1\"}"
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "mcpo_store_failures_total"), 0.0, "{text}");
    metric(&text, "mcpo_store_lock_waits_total");
    metric(&text, "mcpo_store_lock_wait_seconds_total");
    assert!(!text.contains(PASSWORD));

    // Redis goes away: within the probe's ten seconds (and its timeouts) mcpo says so.
    redis.stop();
    let down = poll(Duration::from_secs(20), || async {
        let (status, body) = readyz(&mcpo).await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "/readyz stayed 200 with Redis stopped:\n{}",
            mcpo.stderr.text()
        )
    });
    assert_eq!(down["store"]["store"], shown.as_str(), "{down}");
    assert_eq!(down["store"]["state"], "unavailable", "{down}");
    // The servers are fine: only the store is waited for.
    assert_eq!(down["waiting_for"], serde_json::json!([]), "{down}");
    let status = get_ok(&mcpo, "/status").await;
    assert_eq!(status["store"]["state"], "unavailable", "{status}");
    assert!(
        status["store"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    let text = metrics(&mcpo).await;
    assert_eq!(metric(&text, "mcpo_store_available"), 0.0, "{text}");
    assert!(metric(&text, "mcpo_store_failures_total") >= 1.0, "{text}");
    assert!(
        metric(&text, "mcpo_store_operations_total") > operations,
        "{text}"
    );
    wait_log(
        &mcpo,
        &["store", &shown, "is unavailable"],
        1,
        Duration::from_secs(5),
    )
    .await;

    // Back on the same port (with its password): ready again within 30 s, same process.
    let pid = mcpo.child.id();
    redis.restart();
    let back = poll(Duration::from_secs(30), || async {
        (readyz(&mcpo).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "not ready again within 30 s:\n{}",
        mcpo.stderr.text()
    );
    assert_eq!(mcpo.child.id(), pid);
    assert!(mcpo.child.try_wait().unwrap().is_none(), "mcpo exited");
    let status = get_ok(&mcpo, "/status").await;
    assert_eq!(status["store"]["state"], "available", "{status}");
    assert!(status["store"].get("error").is_none(), "{status}");
    let text = metrics(&mcpo).await;
    assert_eq!(metric(&text, "mcpo_store_available"), 1.0, "{text}");

    mcpo.stop();
    let log = mcpo.stderr.text();
    assert!(
        !log.contains(PASSWORD),
        "the Redis password is in the log:\n{log}"
    );
}

#[tokio::test]
async fn the_file_store_is_named_in_status_and_adds_no_store_metrics() {
    let tokens = tempfile::tempdir().unwrap();
    let mcpo = Mcpo::start_with_env(
        &["--", fixture_bin().to_str().unwrap(), "stdio"],
        &[("MCPO_TOKEN_DIR", tokens.path().to_str().unwrap())],
    );
    let status = get_ok(&mcpo, "/status").await;
    assert_eq!(
        status["store"],
        serde_json::json!({ "store": "file", "state": "available" }),
        "{status}"
    );
    assert!(!metrics(&mcpo).await.contains("mcpo_store_"));
}
