//! `/metrics` parses as Prometheus text (checked with the official Python client's parser) and
//! counts what happened.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

/// Parses Prometheus text with `prometheus_client` and returns `{family: [[labels, value]]}`.
fn parse_prometheus(text: &str) -> Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    out.setdefault(fam.name, [])
    for s in fam.samples:
        out[fam.name].append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new(peer("venv/bin/python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sample(fams: &Value, family: &str, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
    fams[family].as_array()?.iter().find_map(|s| {
        let ok = s[0] == sample && labels.iter().all(|(k, v)| s[1][k] == *v);
        ok.then(|| s[2].as_f64()).flatten()
    })
}

#[tokio::test]
async fn metrics_count_calls_and_parse_as_prometheus_text() {
    let cfg = json!({"mcpServers": {"fx": fixture_stdio_entry()}});
    let config = write_config(&cfg.to_string());
    let mcpo = Mcpo::start(&[
        "--config",
        config.path().to_str().unwrap(),
        "--api-key",
        "k",
    ]);
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;
    let c = client();
    for _ in 0..3 {
        let r = c
            .post(mcpo.url("/fx/echo"))
            .bearer_auth("k")
            .json(&json!({"text": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c
        .post(mcpo.url("/fx/fail"))
        .bearer_auth("k")
        .json(&json!({"message": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    // Behind the API key.
    assert_eq!(
        c.get(mcpo.url("/metrics")).send().await.unwrap().status(),
        401
    );
    let text = c
        .get(mcpo.url("/metrics"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fams = parse_prometheus(&text);
    let calls = |tool: &str, status: &str| {
        sample(
            &fams,
            "mcpo_tool_calls",
            "mcpo_tool_calls_total",
            &[("server", "fx"), ("tool", tool), ("status", status)],
        )
    };
    assert_eq!(calls("echo", "200"), Some(3.0), "{text}");
    assert_eq!(calls("fail", "500"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &fams,
            "mcpo_tool_call_duration_seconds",
            "mcpo_tool_call_duration_seconds_count",
            &[("server", "fx")]
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &fams,
            "mcpo_tool_call_duration_seconds",
            "mcpo_tool_call_duration_seconds_bucket",
            &[("server", "fx"), ("le", "+Inf")]
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &fams,
            "mcpo_upstream_connected",
            "mcpo_upstream_connected",
            &[("server", "fx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &fams,
            "mcpo_tool_calls_in_flight",
            "mcpo_tool_calls_in_flight",
            &[]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &fams,
            "mcpo_upstream_reconnects",
            "mcpo_upstream_reconnects_total",
            &[("server", "fx")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn json_logs_have_one_line_per_tool_call_without_arguments() {
    let cfg = json!({"mcpServers": {"fx": fixture_stdio_entry()}});
    let config = write_config(&cfg.to_string());
    let mcpo = Mcpo::start(&[
        "--config",
        config.path().to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;
    let r = client()
        .post(mcpo.url("/fx/echo"))
        .json(&json!({"text": "secret-looking-argument-value"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = mcpo
        .stderr
        .wait_for(Duration::from_secs(5), |l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["message"] == "tool call").then_some(v)
        })
        .unwrap_or_else(|| panic!("no JSON 'tool call' line:\n{}", mcpo.stderr.text()));
    assert_eq!(line["server"], json!("fx"));
    assert_eq!(line["tool"], json!("echo"));
    assert_eq!(line["status"], json!(200));
    assert_eq!(line["level"], json!("INFO"));
    // A number, in whole microseconds (no `0.44737299999999997`).
    let ms = line["elapsed_ms"].as_f64().expect("elapsed_ms is a number");
    assert!(
        ms >= 0.0 && ((ms * 1e3).round() - ms * 1e3).abs() < 1e-6,
        "{ms}"
    );
    // Every line is JSON, and arguments never reach the log.
    let text = mcpo.stderr.text();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<Value>(l).is_ok(), "not JSON: {l}");
    }
    assert!(!text.contains("secret-looking-argument-value"));
}

/// mcpo leaves half the cores to the servers it starts, unless told otherwise.
#[tokio::test]
async fn runtime_workers_are_half_the_cores_unless_tokio_worker_threads_says() {
    let cfg = json!({"mcpServers": {"fx": fixture_stdio_entry()}});
    let config = write_config(&cfg.to_string());
    let path = config.path().to_str().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    for (env, expected) in [(None, (cores / 2).max(1)), (Some("3"), 3)] {
        let vars: Vec<(&str, &str)> = env
            .map(|n| ("TOKIO_WORKER_THREADS", n))
            .into_iter()
            .collect();
        let mcpo = Mcpo::start_with_env(&["--config", path], &vars);
        mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
            .await;
        // The runtime's own count (tokio's blocking-pool threads share the workers' thread
        // name, so counting threads by name could not tell them apart).
        let plural = if expected == 1 { "" } else { "s" };
        let banner = format!("({expected} worker thread{plural})");
        assert!(
            mcpo.stderr
                .text()
                .lines()
                .any(|l| l.contains("listening on") && l.contains(&banner)),
            "TOKIO_WORKER_THREADS={env:?}, {cores} cores, expected {banner}:\n{}",
            mcpo.stderr.text()
        );
    }
}
