//! The fixture's OAuth-protected mode (`FIXTURE_OAUTH_ISSUER`, `FIXTURE_OAUTH_RS_SECRET`;
//! examples/mcp_fixture/oauth.rs), the fast upstream of `bench/run.sh replicas`: it refuses
//! calls without a token the authorization server (the real oidc-provider peer) vouches for,
//! names itself in RFC 9728 metadata, and mcpo signs a multi-user caller in against it through
//! the web login (the peers' fake browser) and calls its `echo` tool.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::multi_user_oauth::{SECRET, forbidden_browser, jwt, user_id};
use reqwest::StatusCode;
use serde_json::{Value, json};

const RS_SECRET: &str = "fixture-rs-secret";

/// A child stopped through its own handle when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        stop_child(&mut self.0, Duration::from_secs(5));
    }
}

fn peer_script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oauth/peer")
        .join(name)
        .display()
        .to_string()
}

/// oidc-provider for `resource`; returns it and its issuer URL.
fn auth_server(installed: &crate::peers::Installed, resource: &str, log: &Path) -> (Proc, String) {
    let mut child = Command::new(&installed.node)
        .arg(peer_script("auth_server.mjs"))
        .arg("--modules")
        .arg(&installed.as_modules)
        .args([
            "--resource",
            resource,
            "--port",
            "0",
            "--access-ttl",
            "3600",
        ])
        .args(["--rs-secret", RS_SECRET])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start the authorization server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let proc = Proc(child);
    let issuer = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "no authorization server: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    (proc, issuer)
}

/// The fixture in OAuth mode on `port`, trusting `issuer`.
fn oauth_fixture(port: u16, issuer: &str, log: &Path) -> Proc {
    let child = Command::new(fixture_bin())
        .args(["http", "--port", &port.to_string()])
        .env("FIXTURE_OAUTH_ISSUER", issuer)
        .env("FIXTURE_OAUTH_RS_SECRET", RS_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start the fixture");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "fixture did not listen: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    proc
}

async fn post_mcp(url: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("POST /mcp")
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn the_oauth_fixture_takes_only_vouched_tokens_and_mcpo_signs_a_user_in_to_it() {
    let Some(installed) = crate::peers::installed() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let resource = format!("{base}/mcp");
    let (_as, issuer) = auth_server(&installed, &resource, &dir.path().join("as.log"));
    let _fixture = oauth_fixture(port, &issuer, &dir.path().join("fixture.log"));

    // No token, or one the authorization server never issued: 401 naming the metadata.
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    for bearer in [None, Some("not-a-token")] {
        let answer = post_mcp(&resource, bearer).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let challenge = answer.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer ")
                && challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#))
                && challenge.contains(r#"scope="mcp:tools""#),
            "{challenge}"
        );
        assert_eq!(
            bearer.is_some(),
            challenge.contains(r#"error="invalid_token""#)
        );
    }
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let doc: Value = client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["resource"], resource.as_str());
        assert_eq!(doc["authorization_servers"], json!([issuer]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
    }

    // mcpo, multi-user: a caller's first call gets a login link, the browser signs in, and
    // the echo tool answers with the token the fixture checked.
    let config = write_config(
        &json!({"mcpServers": {"fx": {
            "type": "streamable-http",
            "url": resource,
            "oauth": {"multi_user": true, "webui_secret_key": SECRET},
        }}})
        .to_string(),
    );
    let (browser, launches) = forbidden_browser(dir.path());
    let mcpo_port = free_port().to_string();
    let public = format!("http://127.0.0.1:{mcpo_port}");
    let tokens = dir.path().join("tokens");
    let mcpo = Mcpo::start_with_env(
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--port",
            &mcpo_port,
            "--public-url",
            &public,
        ],
        &[
            ("BROWSER", browser.as_str()),
            ("MCPO_TOKEN_DIR", tokens.to_str().unwrap()),
            ("NO_COLOR", "1"),
        ],
    );
    let auth = bearer(&jwt(&user_id("alice")));
    let echo = || post(&mcpo, "/fx/echo", Some(&auth), json!({"text": "hi"}));
    let answer = echo().await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let link = answer.body["detail"]["login_url"]
        .as_str()
        .expect("login_url")
        .to_owned();
    let status = Command::new(&installed.python)
        .arg(peer_script("fake_browser.py"))
        .args(["--login", "alice", "--strict", "--log"])
        .arg(dir.path().join("browser.log"))
        .arg(&link)
        .status()
        .expect("fake browser");
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(dir.path().join("browser.log")).unwrap_or_default()
    );
    let served = poll(Duration::from_secs(30), || async {
        let answer = echo().await;
        (answer.status == StatusCode::OK).then_some(answer.body)
    })
    .await
    .unwrap_or_else(|| panic!("never served; mcpo:\n{}", mcpo.stderr.text()));
    assert_eq!(served, json!("hi"));
    assert!(!launches.exists(), "mcpo launched a browser");
}
