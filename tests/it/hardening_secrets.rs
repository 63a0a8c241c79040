//! Issue #19, item 12: a stdio server cannot read mcpo's secrets. A server (a python3 script
//! written here) reports what it sees: mcpo's `/proc/PID/environ` and `/proc/PID/cmdline`, and
//! its own environment. mcpo's secrets (the API key, Open WebUI's `WEBUI_SECRET_KEY` and
//! user-info JWT secret), given through variables or `*_FILE` files, appear nowhere, nor does
//! another server's `${VAR}` secret; `inherit_env: true` gives a server the rest of mcpo's
//! environment. Weak secrets are warned about (refused for `WEBUI_SECRET_KEY`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const API_KEY: &str = "api-key-secret-7d1e0c9b5a";
const WEBUI_SECRET: &str = "webui-secret-key-3f8a2e6d41";
const USER_JWT_SECRET: &str = "user-info-jwt-secret-b7c4a1";
/// A `${VAR}` secret of another server.
const OTHER_TOKEN: &str = "other-servers-token-5e9f02";

/// A minimal MCP server over stdio whose one tool reports what the process can see.
const ENVDUMP: &str = r#"
import json, os, sys

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except Exception as e:
        return "ERROR " + repr(e)

for line in sys.stdin:
    msg = json.loads(line)
    mid, method = msg.get("id"), msg.get("method")
    if mid is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}},
                  "serverInfo": {"name": "envdump", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "envdump", "description": "What this process sees.",
                             "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        ppid = os.getppid()
        report = {"parent_environ": read("/proc/%d/environ" % ppid),
                  "parent_cmdline": read("/proc/%d/cmdline" % ppid),
                  "own_environ": {k: v for k, v in os.environ.items()}}
        result = {"content": [{"type": "text", "text": json.dumps(report)}]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}), flush=True)
"#;

fn envdump_entry(dir: &Path, extra: Value) -> Value {
    let script = dir.join("envdump.py");
    std::fs::write(&script, ENVDUMP).expect("write script");
    let mut entry = json!({"command": "python3", "args": [script.to_str().unwrap()]});
    for (k, v) in extra.as_object().unwrap() {
        entry[k] = v.clone();
    }
    entry
}

/// What the envdump tool saw, through mcpo.
async fn envdump(mcpo: &Mcpo, server: &str, auth: Option<&str>) -> Value {
    mcpo.wait_ok(&format!("/{server}/openapi.json"), Duration::from_secs(20))
        .await;
    let r = post(mcpo, &format!("/{server}/envdump"), auth, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}\n{}", mcpo.stderr.text());
    match r.body {
        Value::String(text) => serde_json::from_str(&text).expect("report JSON"),
        other => other,
    }
}

/// `secrets` appear nowhere the server looked; `others` (`${VAR}` values mcpo itself keeps
/// for reloads) not in the server's own environment. Whether it can read mcpo's environ at all
/// is for a non-root server to find out (`a_server_cannot_read_mcpos_process`): root reads
/// every process's.
fn assert_sees_none(report: &Value, secrets: &[&str], others: &[&str], what: &str) {
    let text = report.to_string();
    for other in others {
        assert!(
            !report["own_environ"].to_string().contains(other),
            "{what}: the stdio server inherited {other:?}: {}",
            report["own_environ"]
        );
    }
    for secret in secrets {
        for part in ["parent_environ", "parent_cmdline", "own_environ"] {
            assert!(
                !report[part].to_string().contains(secret),
                "{what}: the stdio server read {secret:?} in {part}: {}",
                report[part]
            );
        }
    }
    // Reading worked (an unreadable file would prove nothing).
    assert!(
        !report["parent_environ"]
            .as_str()
            .unwrap_or("ERROR")
            .starts_with("ERROR"),
        "{text}"
    );
    assert!(
        report["parent_cmdline"]
            .as_str()
            .unwrap_or("")
            .contains("--config"),
        "{text}"
    );
}

#[tokio::test]
async fn stdio_servers_see_none_of_mcpos_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = json!({
        "dump": envdump_entry(dir.path(), json!({})),
        "other": {"command": "python3", "args": [dir.path().join("envdump.py").to_str().unwrap()],
                  "env": {"TOKEN": "${OTHER_TOKEN}"}},
    });
    let config = write_config(&json!({"mcpServers": servers}).to_string());
    let path = config.path().to_str().unwrap();

    // The secrets as variables.
    let mcpo = Mcpo::start_with_env(
        &["--config", path],
        &[
            ("MCPO_API_KEY", API_KEY),
            ("WEBUI_SECRET_KEY", WEBUI_SECRET),
            ("FORWARD_USER_INFO_HEADER_JWT_SECRET", USER_JWT_SECRET),
            ("OTHER_TOKEN", OTHER_TOKEN),
        ],
    );
    let auth = bearer(API_KEY);
    let report = envdump(&mcpo, "dump", Some(&auth)).await;
    assert_sees_none(
        &report,
        &[API_KEY, WEBUI_SECRET, USER_JWT_SECRET],
        &[OTHER_TOKEN],
        "secrets in variables",
    );
    // Still an environment to work with: the allow-list.
    assert!(report["own_environ"]["PATH"].is_string(), "{report}");
    // The server that asked for the token got it, through its own `env`.
    let other = envdump(&mcpo, "other", Some(&auth)).await;
    assert_eq!(other["own_environ"]["TOKEN"], json!(OTHER_TOKEN));
    // The key still protects the tools.
    let r = post(&mcpo, "/dump/envdump", None, json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    drop(mcpo);

    // The secrets as files, named by `*_FILE` variables (Docker secrets).
    let file = |name: &str, secret: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{secret}\n")).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (api, webui, jwt) = (
        file("api_key", API_KEY),
        file("webui", WEBUI_SECRET),
        file("jwt", USER_JWT_SECRET),
    );
    let mcpo = Mcpo::start_with_env(
        &["--config", path],
        &[
            ("MCPO_API_KEY_FILE", api.as_str()),
            ("WEBUI_SECRET_KEY_FILE", webui.as_str()),
            ("FORWARD_USER_INFO_HEADER_JWT_SECRET_FILE", jwt.as_str()),
            ("OTHER_TOKEN", OTHER_TOKEN),
        ],
    );
    let report = envdump(&mcpo, "dump", Some(&auth)).await;
    assert_sees_none(
        &report,
        &[API_KEY, WEBUI_SECRET, USER_JWT_SECRET],
        &[OTHER_TOKEN, &api],
        "secrets in files",
    );
    let r = post(&mcpo, "/dump/envdump", None, json!({})).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the key from the file protects the tools"
    );
}

#[tokio::test]
async fn inherit_env_gives_the_rest_of_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = json!({"dump": envdump_entry(dir.path(), json!({"inherit_env": true}))});
    let config = write_config(&json!({"mcpServers": servers}).to_string());
    let mcpo = Mcpo::start_with_env(
        &["--config", config.path().to_str().unwrap()],
        &[
            ("MCPO_API_KEY", API_KEY),
            ("WEBUI_SECRET_KEY", WEBUI_SECRET),
            ("OTHER_TOKEN", OTHER_TOKEN),
        ],
    );
    let report = envdump(&mcpo, "dump", Some(&bearer(API_KEY))).await;
    let own: BTreeMap<String, String> =
        serde_json::from_value(report["own_environ"].clone()).expect("environment");
    assert_eq!(
        own.get("OTHER_TOKEN").map(String::as_str),
        Some(OTHER_TOKEN),
        "{own:?}"
    );
    // mcpo's own secrets stay out even then.
    assert_sees_none(&report, &[API_KEY, WEBUI_SECRET], &[], "inherit_env");
}

#[test]
fn a_weak_webui_secret_is_refused_and_a_weak_api_key_warned_about() {
    let config = write_config(&json!({"mcpServers": {"fx": fixture_stdio_entry()}}).to_string());
    let path = config.path().to_str().unwrap();
    let (status, stderr) = run_refused(&["--config", path, "--webui-secret-key", "short"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--webui-secret-key") && stderr.contains("5 bytes"),
        "{stderr}"
    );
    let (status, stderr) = run_refused(&[
        "--config",
        path,
        "--webui-secret-key",
        "                    ",
    ]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("whitespace"), "{stderr}");

    let mut mcpo = Mcpo::start_with_env(&["--config", path], &[("MCPO_API_KEY", "short-key")]);
    let warned = mcpo.stderr.wait_for(Duration::from_secs(10), |l| {
        (l.contains("--api-key") && l.contains("9 bytes")).then_some(())
    });
    assert!(warned.is_some(), "{}", mcpo.stderr.text());
    mcpo.stop();

    // On the command line, every local user can read it: said at start-up.
    let key = "command-line-key-0123456789";
    let mut mcpo = Mcpo::start(&["--config", path, "--api-key", key]);
    let warned = mcpo.stderr.wait_for(Duration::from_secs(10), |l| {
        (l.contains("--api-key on the command line") && l.contains("--api-key-file")).then_some(())
    });
    assert!(warned.is_some(), "{}", mcpo.stderr.text());
    mcpo.stop();
}

/// mcpo is not dumpable: a server running as mcpo's (non-root) user cannot read mcpo's
/// `/proc/PID/environ`, where the `${VAR}` secrets of every server are. Runs mcpo as a uid
/// without a passwd entry, so only as root; elsewhere it says it did not run.
#[tokio::test]
async fn a_server_cannot_read_mcpos_process() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to run mcpo as another user");
        return;
    }
    const UID: u32 = 4243;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let servers = json!({"dump": envdump_entry(dir.path(), json!({}))});
    let config = dir.path().join("config.json");
    std::fs::write(&config, json!({"mcpServers": servers}).to_string()).unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(mcpo_bin())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--config",
        ])
        .arg(&config)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OTHER_TOKEN", OTHER_TOKEN)
        .uid(UID)
        .gid(UID)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn mcpo");
    let client = client();
    let url = format!("http://127.0.0.1:{port}/dump/envdump");
    let report = poll(Duration::from_secs(30), || async {
        let r = client.post(&url).json(&json!({})).send().await.ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        match r.json::<Value>().await.ok()? {
            Value::String(text) => serde_json::from_str::<Value>(&text).ok(),
            other => Some(other),
        }
    })
    .await;
    stop_child(&mut child, Duration::from_secs(10));
    let report = report.expect("the envdump tool never answered");
    let environ = report["parent_environ"].as_str().unwrap_or_default();
    assert!(
        environ.starts_with("ERROR") && environ.contains("Permission denied"),
        "a server of mcpo's own user read mcpo's environment: {environ:?}"
    );
    assert!(
        !report["own_environ"].to_string().contains(OTHER_TOKEN),
        "{report}"
    );
}
