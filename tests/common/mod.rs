//! Shared fixtures for the integration tests: the real `mcpo` binary on a loopback port chosen
//! by the OS, the repo's MCP fixture server, and the published test peers installed by
//! `scripts/install-test-peers.sh`. Every process is stopped through its own handle.
#![allow(dead_code)]

mod http;
mod process;
mod redis;
mod wait;

pub use http::*;
pub use process::*;
pub use redis::Redis;
pub use wait::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn mcpo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcpo"))
}

/// `target/debug/examples/mcp_fixture`, built by `cargo test`/`cargo build --all-targets`.
pub fn fixture_bin() -> PathBuf {
    let bin = mcpo_bin();
    let dir = bin.parent().expect("target dir");
    let path = dir.join("examples").join("mcp_fixture");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Where `scripts/install-test-peers.sh` put npm and PyPI peers.
pub fn peers_dir() -> PathBuf {
    std::env::var_os("MCPO_TEST_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-peers"))
}

pub fn peer(rel: &str) -> PathBuf {
    let p = peers_dir().join(rel);
    assert!(
        p.exists(),
        "test peer {} is missing: run scripts/install-test-peers.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Lines a child wrote, collected by a reader thread so the pipe never fills up.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    fn collect(&self, stream: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
    }

    /// Waits until a line satisfies `pick`, returning what it picked.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.0.lock().unwrap().iter().find_map(|l| pick(l)) {
                return Some(found);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends SIGTERM to a child we started (by its pid, from our own handle), then waits; kills
/// it if it has not exited within `grace`.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running `mcpo`.
pub struct Mcpo {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    pub stderr: Output,
    pub stdout: Output,
}

impl Mcpo {
    /// Starts `mcpo` with `args` on an OS-chosen loopback port and waits until it listens.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(mcpo_bin());
        // A test that must know the port before mcpo starts (`--public-url`) gives `--port`.
        let port = if args.contains(&"--port") {
            &[][..]
        } else {
            &["--port", "0"][..]
        };
        cmd.args(["--host", "127.0.0.1"])
            .args(port)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("MCPO_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mcpo");
        let stderr = Output::default();
        stderr.collect(child.stderr.take().expect("stderr"));
        let stdout = Output::default();
        stdout.collect(child.stdout.take().expect("stdout"));
        let tls = args.contains(&"--ssl-certfile");
        let addr = stderr.wait_for(Duration::from_secs(30), |line| {
            // Text or JSON log lines: the address is the run of host:port characters.
            line.split("listening on ").nth(1).map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                    .collect::<String>()
            })
        });
        let Some(addr) = addr else {
            let mut child = child;
            stop_child(&mut child, Duration::from_secs(2));
            panic!("mcpo did not start listening; stderr:\n{}", stderr.text());
        };
        let scheme = if tls { "https" } else { "http" };
        Self {
            child,
            base: format!("{scheme}://{addr}"),
            stderr,
            stdout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Waits until `GET path` answers 200 (a server's spec does once it is connected).
    pub async fn wait_ok(&self, path: &str, timeout: Duration) {
        let client = client();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(self.url(path)).send().await
                && r.status() == 200
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "GET {path} did not answer 200 within {timeout:?}; mcpo stderr:\n{}",
                    self.stderr.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(15));
    }
}

impl Drop for Mcpo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `mcpo` on a config file that stays alive as long as the value.
pub struct Bridge {
    pub mcpo: Mcpo,
    _config: tempfile::NamedTempFile,
}

/// Starts `mcpo` on a config of `servers` (the `mcpServers` object) with `extra` flags.
pub fn start_config(servers: Value, extra: &[&str]) -> Bridge {
    let config = write_config(&serde_json::json!({ "mcpServers": servers }).to_string());
    let mut args = vec!["--config", config.path().to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    Bridge {
        mcpo: Mcpo::start(&args),
        _config: config,
    }
}

/// Runs `mcpo` with `args` on a loopback port where it must refuse to start: returns its exit
/// status and stderr once it has exited without listening; stops it and panics if it still runs
/// after 20 s. It runs in an empty working directory, without `MCPO_API_KEY` or
/// `WEBUI_SECRET_KEY` from the test's environment.
pub fn run_refused(args: &[&str]) -> (std::process::ExitStatus, String) {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(mcpo_bin())
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .current_dir(cwd.path())
        .env("RUST_LOG", "info")
        .env_remove("MCPO_API_KEY")
        .env_remove("WEBUI_SECRET_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcpo");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            stop_child(&mut child, Duration::from_secs(2));
            panic!("mcpo {args:?} started; it should have refused to");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("listening on"), "{stderr}");
    (out.status, stderr)
}

/// The repo's MCP fixture server in `http` (streamable) or `sse` mode.
pub struct Fixture {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub stderr: Output,
}

impl Fixture {
    pub fn start(mode: &str) -> Self {
        let mut child = Command::new(fixture_bin())
            .arg(mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fixture");
        let stdout = Output::default();
        stdout.collect(child.stdout.take().expect("stdout"));
        let stderr = Output::default();
        stderr.collect(child.stderr.take().expect("stderr"));
        let base = stdout
            .wait_for(Duration::from_secs(20), |l| {
                l.strip_prefix("LISTENING ").map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("fixture did not start; stderr:\n{}", stderr.text()));
        Self {
            child,
            base,
            stderr,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
}

/// Writes `text` to a fresh temp file and returns it (kept alive by the returned handle).
pub fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .expect("tempfile");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write config");
    f
}

/// Runs `openapi-spec-validator` (PyPI) on a document; panics with its output if invalid.
pub fn assert_valid_openapi(doc: &Value, what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spec.json");
    std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = Command::new(peer("venv/bin/openapi-spec-validator"))
        .arg(&path)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "{what}: openapi-spec-validator rejected the document:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        serde_json::to_string_pretty(doc).unwrap()
    );
}

/// A config entry running the fixture over stdio.
pub fn fixture_stdio_entry() -> Value {
    serde_json::json!({ "command": fixture_bin().to_str().unwrap(), "args": ["stdio"] })
}

/// Every `$ref` in `doc` points into `#/components/schemas` (Open WebUI follows no other) and
/// names a schema that exists.
pub fn assert_refs_resolve(doc: &Value) {
    fn walk(v: &Value, doc: &Value, seen: &mut usize) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let name = r
                        .strip_prefix("#/components/schemas/")
                        .unwrap_or_else(|| panic!("$ref outside components: {r}"));
                    assert!(
                        doc["components"]["schemas"].get(name).is_some(),
                        "dangling $ref {r}"
                    );
                    *seen += 1;
                }
                map.values().for_each(|x| walk(x, doc, seen));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, doc, seen)),
            _ => {}
        }
    }
    let mut seen = 0;
    walk(doc, doc, &mut seen);
    assert!(seen > 0, "no $ref at all: the test would prove nothing");
}
