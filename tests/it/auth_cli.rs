//! The daemon's edges through the real `mcpo` binary: `--api-key` / `--strict-auth`, CORS,
//! `--path-prefix` / `--root-path`, TLS, config-file syntax and `${VAR}` expansion (with `-e`
//! and `--env-path`), and how start-up fails on bad input (exit code 2, a located message).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

/// The API key of these tests: distinctive, so a leak into a log or a body cannot be missed.
const KEY: &str = "k3y-Zq8vT1-auth-cli-9f4e";
/// A wrong key a client might send; it must not be echoed either.
const WRONG_KEY: &str = "wr0ng-Hx2p-auth-cli-77aa";
/// Start-up failures must be reported well within this.
const QUICK: Duration = Duration::from_secs(5);
/// A direct run of the binary is killed (and the test fails) after this.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

// --- helpers -----------------------------------------------------------------------------------

/// A config with the fixture over stdio as server `fx`.
fn fx_config() -> tempfile::NamedTempFile {
    write_config(&json!({ "mcpServers": { "fx": fixture_stdio_entry() } }).to_string())
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn tls_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Every answer here passes through this: no response body, error or not, may contain
/// either test key.
fn keyless(reply: Reply) -> Reply {
    for secret in [KEY, WRONG_KEY] {
        assert!(
            !reply.text.contains(secret),
            "a response ({}) contains an API key: {}",
            reply.status,
            reply.text
        );
    }
    reply
}

/// `Mcpo::wait_ok`, but sending `Authorization: auth` (for `--strict-auth`).
async fn wait_ok_with(mcpo: &Mcpo, path: &str, auth: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client()
            .get(mcpo.url(path))
            .header("authorization", auth)
            .send()
            .await
            && r.status() == StatusCode::OK
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} did not answer 200; mcpo stderr:\n{}",
            mcpo.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts an `echo` call went through and answered `text`.
fn assert_echo(reply: &Reply, text: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json(), json!(text));
}

/// Neither key (nor the Basic form of the right one) is anywhere in mcpo's log.
fn assert_log_has_no_key(mcpo: &Mcpo) {
    let log = mcpo.stderr.text();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{KEY}"));
    for secret in [KEY, WRONG_KEY, encoded.as_str()] {
        assert!(
            !log.contains(secret),
            "mcpo's log contains {secret}:\n{log}"
        );
    }
    assert!(
        !mcpo.stdout.text().contains(KEY),
        "mcpo's stdout contains the key"
    );
}

/// What a direct run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit code {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `mcpo args` to completion (no `MCPO_*` variables inherited, `RUST_LOG=info`), killing
/// it through its handle and failing the test if it runs longer than [`RUN_TIMEOUT`].
fn run_mcpo(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(mcpo_bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MCPO_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn mcpo");
    let read_all = |mut stream: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
        rx
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            stop_child(&mut child, Duration::from_secs(2));
            let err = stderr
                .recv_timeout(Duration::from_secs(2))
                .unwrap_or_default();
            panic!("mcpo {args:?} still running after {RUN_TIMEOUT:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let collect = |rx: mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("mcpo's output pipe stayed open after it exited")
    };
    Run {
        code: status.code(),
        stdout: collect(stdout),
        stderr: collect(stderr),
        elapsed,
    }
}

/// Runs `mcpo --config <text as a file>` and asserts it refuses to start with exit code 2, fast,
/// without listening or starting a server, printing every line of `expected` (each may use
/// `{path}` for the config file's path).
fn assert_config_rejected(what: &str, text: &str, expected: &[&str]) {
    let config = write_config(text);
    let path = path_str(config.path());
    let run = run_mcpo(
        &["--host", "127.0.0.1", "--port", "0", "--config", path],
        &[],
    );
    let out = run.describe();
    assert_eq!(run.code, Some(2), "{what}: {out}");
    assert!(run.elapsed < QUICK, "{what}: too slow: {out}");
    assert!(
        run.stderr.starts_with("mcpo: invalid configuration:\n"),
        "{what}: {out}"
    );
    for line in expected {
        let line = line.replace("{path}", path);
        assert!(run.stderr.contains(&line), "{what}: no `{line}` in {out}");
    }
    assert!(!run.stderr.contains("listening on"), "{what}: {out}");
    assert!(
        !run.stderr.contains("fixture started"),
        "{what}: a server was started: {out}"
    );
}

// --- 1. API key -------------------------------------------------------------------------------

#[tokio::test]
async fn api_key_guards_tool_calls_and_leaves_docs_open() {
    let config = fx_config();
    let mcpo = Mcpo::start(&["--config", path_str(config.path()), "--api-key", KEY]);
    // Specs are open without --strict-auth, so the harness's unauthenticated wait works.
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;

    // No credentials: 401 JSON, telling the client which scheme to use.
    let r = keyless(post(&mcpo, "/fx/echo", None, json!({"text": "hi"})).await);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.all("www-authenticate"), ["Bearer"]);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"detail": {"message": "missing API key: send 'Authorization: Bearer <key>'"}})
    );

    // A wrong key: 403, the key not echoed.
    let r = keyless(
        post(
            &mcpo,
            "/fx/echo",
            Some(&bearer(WRONG_KEY)),
            json!({"text": "hi"}),
        )
        .await,
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.json(), json!({"detail": {"message": "invalid API key"}}));
    // A prefix of the key is still wrong.
    let r = keyless(
        post(
            &mcpo,
            "/fx/echo",
            Some(&bearer(&KEY[..KEY.len() - 1])),
            json!({"text": "hi"}),
        )
        .await,
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Basic is only accepted with --strict-auth: refused here even with the right password.
    let r = keyless(
        post(
            &mcpo,
            "/fx/echo",
            Some(&basic("anyone", KEY)),
            json!({"text": "hi"}),
        )
        .await,
    );
    assert!(
        matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
        "{} {}",
        r.status,
        r.text
    );

    // The right key: the call goes through (the scheme name is case-insensitive).
    assert_echo(
        &keyless(post(&mcpo, "/fx/echo", Some(&bearer(KEY)), json!({"text": "hi"})).await),
        "hi",
    );
    assert_echo(
        &keyless(
            post(
                &mcpo,
                "/fx/echo",
                Some(&format!("bearer {KEY}")),
                json!({"text": "lower"}),
            )
            .await,
        ),
        "lower",
    );

    // Specs, docs, the index and health stay open without --strict-auth.
    for path in [
        "/",
        "/openapi.json",
        "/docs",
        "/fx/openapi.json",
        "/fx/docs",
        "/healthz",
    ] {
        let r = keyless(get(&mcpo, path, None).await);
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text);
    }
    // Both specs tell clients (Open WebUI) to send the key as a bearer token.
    for path in ["/fx/openapi.json", "/openapi.json"] {
        let spec = keyless(get(&mcpo, path, None).await).json();
        let schemes = spec["components"]["securitySchemes"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: no securitySchemes in {spec}"));
        let (name, scheme) = schemes.iter().next().expect("a security scheme");
        assert_eq!(
            scheme,
            &json!({"type": "http", "scheme": "bearer"}),
            "{path}"
        );
        assert_eq!(spec["security"], json!([{ name.as_str(): [] }]), "{path}");
    }
    assert_log_has_no_key(&mcpo);
}

#[tokio::test]
async fn strict_auth_protects_docs_specs_and_index() {
    let config = fx_config();
    // Debug logging: the key must stay out of the log even then.
    let mcpo = Mcpo::start_with_env(
        &[
            "--config",
            path_str(config.path()),
            "--api-key",
            KEY,
            "--strict-auth",
        ],
        &[("RUST_LOG", "debug")],
    );
    wait_ok_with(&mcpo, "/fx/openapi.json", &bearer(KEY)).await;

    let good_basic = basic("anyone", KEY);
    for path in [
        "/",
        "/openapi.json",
        "/docs",
        "/docs/swagger-ui.css",
        "/fx/openapi.json",
        "/fx/docs",
        "/fx/docs/",
        "/fx/docs/swagger-ui-bundle.js",
    ] {
        // Without the key: 401, offering Bearer (Basic: see the next test).
        let r = keyless(get(&mcpo, path, None).await);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "GET {path}: {}", r.text);
        let challenges = r.all("www-authenticate");
        assert!(
            challenges.iter().any(|c| c == "Bearer"),
            "GET {path}: {challenges:?}"
        );
        assert!(
            r.json()["detail"]["message"].is_string(),
            "GET {path}: {}",
            r.text
        );
        // The key as a bearer token, or as the Basic password with any user name.
        for auth in [bearer(KEY), good_basic.clone(), basic("", KEY)] {
            let r = keyless(get(&mcpo, path, Some(&auth)).await);
            assert_eq!(r.status, StatusCode::OK, "GET {path} with {auth}");
        }
        // Wrong credentials: 403.
        for auth in [
            bearer(WRONG_KEY),
            basic("anyone", WRONG_KEY),
            basic(KEY, WRONG_KEY), // the key as the user name is not the password
            "Basic %%%not-base64".to_owned(),
        ] {
            let r = keyless(get(&mcpo, path, Some(&auth)).await);
            assert_eq!(r.status, StatusCode::FORBIDDEN, "GET {path} with {auth}");
        }
    }
    // Liveness stays open for probes.
    assert_eq!(
        keyless(get(&mcpo, "/healthz", None).await).status,
        StatusCode::OK
    );

    // Tool calls: Bearer only; nothing works without the key. HTTP Basic (which a browser
    // caches and sends with any page's requests) is refused even with the right key (#19 item 7).
    let r = keyless(post(&mcpo, "/fx/echo", None, json!({"text": "x"})).await);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_echo(
        &keyless(post(&mcpo, "/fx/echo", Some(&bearer(KEY)), json!({"text": "b"})).await),
        "b",
    );
    let r = keyless(post(&mcpo, "/fx/echo", Some(&good_basic), json!({"text": "c"})).await);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("Bearer"), "{}", r.text);
    let r = keyless(
        post(
            &mcpo,
            "/fx/echo",
            Some(&basic("anyone", WRONG_KEY)),
            json!({"text": "x"}),
        )
        .await,
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_log_has_no_key(&mcpo);
}

/// With `--strict-auth` a 401 also carries `WWW-Authenticate: Basic realm="mcpo"`, so a browser
/// opening any docs page (or spec) asks for the key instead of showing a JSON error.
#[tokio::test]
async fn strict_auth_401_prompts_browsers_for_basic_login() {
    let config = fx_config();
    let mcpo = Mcpo::start(&[
        "--config",
        path_str(config.path()),
        "--api-key",
        KEY,
        "--strict-auth",
    ]);
    wait_ok_with(&mcpo, "/fx/openapi.json", &bearer(KEY)).await;
    let mut missing = Vec::new();
    for path in [
        "/",
        "/openapi.json",
        "/docs",
        "/docs/",
        "/docs/swagger-ui.css",
        "/fx/openapi.json",
        "/fx/docs",
        "/fx/docs/",
        "/fx/docs/swagger-ui-bundle.js",
    ] {
        let r = keyless(get(&mcpo, path, None).await);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "GET {path}: {}", r.text);
        let challenges = r.all("www-authenticate");
        if !challenges.iter().any(|c| c == "Basic realm=\"mcpo\"") {
            missing.push(format!("{path} {challenges:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "401 without a Basic challenge on: {missing:#?}"
    );
}

#[tokio::test]
async fn api_key_and_strict_auth_from_environment() {
    let config = fx_config();
    let mcpo = Mcpo::start_with_env(
        &["--config", path_str(config.path())],
        &[("MCPO_API_KEY", KEY), ("MCPO_STRICT_AUTH", "true")],
    );
    wait_ok_with(&mcpo, "/fx/openapi.json", &bearer(KEY)).await;
    let r = keyless(post(&mcpo, "/fx/echo", None, json!({"text": "x"})).await);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = keyless(
        post(
            &mcpo,
            "/fx/echo",
            Some(&bearer(WRONG_KEY)),
            json!({"text": "x"}),
        )
        .await,
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_echo(
        &keyless(
            post(
                &mcpo,
                "/fx/echo",
                Some(&bearer(KEY)),
                json!({"text": "env"}),
            )
            .await,
        ),
        "env",
    );
    // MCPO_STRICT_AUTH took effect too.
    assert_eq!(
        keyless(get(&mcpo, "/openapi.json", None).await).status,
        StatusCode::UNAUTHORIZED
    );
    assert_log_has_no_key(&mcpo);
}

// --- 2. CORS ----------------------------------------------------------------------------------

async fn preflight(mcpo: &Mcpo, path: &str, origin: &str) -> Reply {
    keyless(
        send(
            client()
                .request(reqwest::Method::OPTIONS, mcpo.url(path))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
        )
        .await,
    )
}

/// An origin given with `--cors-allow-origins` (the default allows none since #19 item 7).
#[tokio::test]
async fn cors_preflight_allows_a_listed_origin() {
    let config = fx_config();
    let origin = "http://webui.example";
    // With an API key: a preflight carries no credentials and must still succeed.
    let mcpo = Mcpo::start(&[
        "--config",
        path_str(config.path()),
        "--api-key",
        KEY,
        "--cors-allow-origins",
        origin,
    ]);
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;

    let r = preflight(&mcpo, "/fx/echo", origin).await;
    assert!(r.status.is_success(), "preflight: {} {}", r.status, r.text);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let headers = r.items("access-control-allow-headers");
    for wanted in ["authorization", "content-type"] {
        assert!(
            headers.iter().any(|h| h == wanted),
            "{wanted} not in {headers:?}"
        );
    }
    let methods = r.items("access-control-allow-methods");
    assert!(methods.iter().any(|m| m == "post"), "{methods:?}");

    // The real request gets the header too, and so does a 401 (so the page can read it).
    let call = |auth: Option<String>| {
        let mut rb = client()
            .post(mcpo.url("/fx/echo"))
            .header("origin", origin)
            .json(&json!({"text": "cors"}));
        if let Some(auth) = auth {
            rb = rb.header("authorization", auth);
        }
        send(rb)
    };
    let r = keyless(call(Some(bearer(KEY))).await);
    assert_echo(&r, "cors");
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    let r = keyless(call(None).await);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
}

#[tokio::test]
async fn cors_allow_list_refuses_other_origins() {
    let config = fx_config();
    let mcpo = Mcpo::start(&[
        "--config",
        path_str(config.path()),
        "--cors-allow-origins",
        "http://a.example",
        "--cors-allow-origins",
        "http://c.example",
    ]);
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;

    let r = preflight(&mcpo, "/fx/echo", "http://b.example").await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "{:?}",
        r.headers
    );
    for allowed in ["http://a.example", "http://c.example"] {
        let r = preflight(&mcpo, "/fx/echo", allowed).await;
        assert!(r.status.is_success(), "{allowed}: {}", r.status);
        assert_eq!(r.header("access-control-allow-origin"), Some(allowed));
    }
    // A call from a foreign origin is not run at all (#19 item 7): a "simple" request needs no
    // preflight, so hiding the answer would not stop the tool from running.
    let r = keyless(
        send(
            client()
                .post(mcpo.url("/fx/echo"))
                .header("origin", "http://b.example")
                .json(&json!({"text": "b"})),
        )
        .await,
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

// --- 3. --path-prefix and --root-path ---------------------------------------------------------

#[tokio::test]
async fn path_prefix_moves_server_routes() {
    let config = fx_config();
    let mcpo = Mcpo::start(&[
        "--config",
        path_str(config.path()),
        "--path-prefix",
        "/tools/",
    ]);
    mcpo.wait_ok("/tools/fx/openapi.json", Duration::from_secs(30))
        .await;

    assert_echo(
        &keyless(post(&mcpo, "/tools/fx/echo", None, json!({"text": "p"})).await),
        "p",
    );
    // Not at the old place any more.
    let r = keyless(post(&mcpo, "/fx/echo", None, json!({"text": "p"})).await);
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        keyless(get(&mcpo, "/fx/openapi.json", None).await).status,
        StatusCode::NOT_FOUND
    );

    let spec = keyless(get(&mcpo, "/tools/fx/openapi.json", None).await).json();
    assert_eq!(spec["servers"], json!([{"url": "/tools/fx"}]));
    assert!(spec["paths"].get("/echo").is_some(), "{}", spec["paths"]);

    // The combined spec stays at the root; its paths carry the prefix.
    let combined = keyless(get(&mcpo, "/openapi.json", None).await).json();
    assert_eq!(combined["servers"], json!([{"url": "/"}]));
    let paths: Vec<&String> = combined["paths"].as_object().unwrap().keys().collect();
    assert!(paths.iter().any(|p| *p == "/tools/fx/echo"), "{paths:?}");
    assert!(
        paths.iter().all(|p| p.starts_with("/tools/fx/")),
        "{paths:?}"
    );

    // Docs and the index point at the prefixed spec.
    let docs = keyless(get(&mcpo, "/tools/fx/docs", None).await);
    assert_eq!(docs.status, StatusCode::OK);
    assert!(
        docs.text.contains(r#"url: "/tools/fx/openapi.json""#),
        "{}",
        docs.text
    );
    let index = keyless(get(&mcpo, "/", None).await).json();
    assert_eq!(
        index["servers"][0]["openapi"],
        json!("/tools/fx/openapi.json")
    );
    assert_eq!(index["servers"][0]["docs"], json!("/tools/fx/docs"));
}

#[tokio::test]
async fn root_path_is_used_in_spec_and_docs_urls() {
    let config = fx_config();
    // Written with a trailing slash: normalised away.
    let mcpo = Mcpo::start(&["--config", path_str(config.path()), "--root-path", "/api/"]);
    // The reverse proxy strips /api, so mcpo still serves at its own root.
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;
    assert_echo(
        &keyless(post(&mcpo, "/fx/echo", None, json!({"text": "r"})).await),
        "r",
    );

    let spec = keyless(get(&mcpo, "/fx/openapi.json", None).await).json();
    assert_eq!(spec["servers"], json!([{"url": "/api/fx"}]));
    let combined = keyless(get(&mcpo, "/openapi.json", None).await).json();
    assert_eq!(combined["servers"], json!([{"url": "/api"}]));
    assert!(
        combined["paths"].get("/fx/echo").is_some(),
        "{}",
        combined["paths"]
    );

    let docs = keyless(get(&mcpo, "/fx/docs", None).await).text;
    assert!(docs.contains(r#"url: "/api/fx/openapi.json""#), "{docs}");
    let docs = keyless(get(&mcpo, "/docs", None).await).text;
    assert!(docs.contains(r#"url: "/api/openapi.json""#), "{docs}");
    let index = keyless(get(&mcpo, "/", None).await).json();
    assert_eq!(index["openapi"], json!("/api/openapi.json"));
    assert_eq!(
        index["servers"][0]["openapi"],
        json!("/api/fx/openapi.json")
    );
}

// --- 4. TLS -----------------------------------------------------------------------------------

// Multi-threaded: the clients' connections (HTTP/2 over TLS) must keep being driven, answering
// the server's GOAWAY ping, while this thread blocks in `stop`; on one thread mcpo would wait
// out its whole shutdown grace period for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_with_the_given_certificate() {
    let config = fx_config();
    let cert = tls_file("cert.pem");
    let key = tls_file("key.pem");
    let mcpo = Mcpo::start(&[
        "--config",
        path_str(config.path()),
        "--ssl-certfile",
        path_str(&cert),
        "--ssl-keyfile",
        path_str(&key),
    ]);
    assert!(mcpo.base.starts_with("https://127.0.0.1:"), "{}", mcpo.base);
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;

    // A client that trusts only our certificate: proves mcpo serves exactly it, valid for
    // 127.0.0.1.
    let pem = std::fs::read(&cert).expect("read cert");
    let strict = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("PEM")])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let r = keyless(
        send(
            strict
                .post(mcpo.url("/fx/echo"))
                .json(&json!({"text": "over tls"})),
        )
        .await,
    );
    assert_echo(&r, "over tls");
    assert_eq!(
        strict
            .get(mcpo.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Plain HTTP on the TLS port gets no answer.
    let plain = mcpo.url("/healthz").replacen("https://", "http://", 1);
    if let Ok(r) = client().get(&plain).send().await {
        assert_ne!(r.status(), StatusCode::OK, "plain HTTP answered on {plain}");
    }

    // Shutdown with clients still connected is prompt.
    let mut mcpo = mcpo;
    let started = Instant::now();
    mcpo.stop();
    assert!(
        started.elapsed() < QUICK,
        "mcpo took {:?} to stop; stderr:\n{}",
        started.elapsed(),
        mcpo.stderr.text()
    );
}

#[test]
fn tls_flags_must_come_in_pairs() {
    let config = fx_config();
    let cfg = path_str(config.path());
    let cert = tls_file("cert.pem");
    let key = tls_file("key.pem");
    for (args, expected) in [
        (
            ["--ssl-certfile", path_str(&cert)],
            "command line: option '--ssl-keyfile' is required with --ssl-certfile",
        ),
        (
            ["--ssl-keyfile", path_str(&key)],
            "command line: option '--ssl-certfile' is required with --ssl-keyfile",
        ),
        (
            ["--ssl-certfile", "/nonexistent/cert.pem"],
            "command line: option '--ssl-keyfile' is required",
        ),
    ] {
        let mut all = vec!["--host", "127.0.0.1", "--port", "0", "--config", cfg];
        all.extend(args);
        let run = run_mcpo(&all, &[]);
        let out = run.describe();
        assert_eq!(run.code, Some(2), "{args:?}: {out}");
        assert!(run.elapsed < QUICK, "{args:?}: {out}");
        assert!(run.stderr.contains(expected), "{args:?}: {out}");
        assert!(!run.stderr.contains("listening on"), "{args:?}: {out}");
    }
    // Both given, but one is not a file.
    let run = run_mcpo(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--config",
            cfg,
            "--ssl-certfile",
            "/nonexistent/cert.pem",
            "--ssl-keyfile",
            path_str(&key),
        ],
        &[],
    );
    let out = run.describe();
    assert_eq!(run.code, Some(2), "{out}");
    assert!(
        run.stderr.contains(
            "command line: option '--ssl-certfile' is '/nonexistent/cert.pem', which is not a file"
        ),
        "{out}"
    );
}

#[test]
fn unusable_tls_key_fails_fast() {
    let config = fx_config();
    let cert = tls_file("cert.pem");
    // A certificate is not a private key.
    let run = run_mcpo(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--config",
            path_str(config.path()),
            "--ssl-certfile",
            path_str(&cert),
            "--ssl-keyfile",
            path_str(&cert),
        ],
        &[],
    );
    let out = run.describe();
    assert!(matches!(run.code, Some(c) if c != 0), "{out}");
    assert!(run.elapsed < QUICK, "{out}");
    assert!(
        run.stderr.contains(&format!(
            "cannot load TLS certificate '{}' / key '{}'",
            cert.display(),
            cert.display()
        )),
        "{out}"
    );
}

// --- 5. Config file syntax and variables -------------------------------------------------------

/// JSONC with every feature, and no literal path or mode: `command` comes from `FIXTURE_BIN`,
/// `args` from the `${FIXTURE_MODE:-stdio}` default, and the child's `RUST_LOG` from
/// `FIXTURE_LOG` through `env`.
const JSONC_CONFIG: &str = r#"// mcpo config with comments
{
  /* a block comment
     over two lines, with "quotes" and a , comma */
  "mcpServers": {
    "fx": {
      "command": "${FIXTURE_BIN}", // expanded from -e or --env-path
      "args": ["${FIXTURE_MODE:-stdio}",],
      "env": {
        "RUST_LOG": "${FIXTURE_LOG}", /* the fixture's log filter */
      },
      "description": "not a comment: http://example.com/* // still a string */",
    },
  },
}
"#;

/// The fixture only writes `DEBUG` lines when its `RUST_LOG` came from the config's `env`: mcpo
/// runs with `RUST_LOG=info`, which the child would otherwise inherit.
fn assert_child_got_debug_env(mcpo: &Mcpo) {
    let log = mcpo.stderr.text();
    assert!(
        log.lines()
            .any(|l| l.contains("mcpo::upstream::stderr") && l.contains(" DEBUG rmcp::")),
        "no DEBUG line from the fixture: RUST_LOG from `env` did not reach it:\n{log}"
    );
}

#[tokio::test]
async fn config_comments_trailing_commas_and_expansion_from_env_flags() {
    let config = write_config(JSONC_CONFIG);
    let fixture = fixture_bin();
    let bin = format!("FIXTURE_BIN={}", path_str(&fixture));
    let mcpo = Mcpo::start(&[
        "--config",
        path_str(config.path()),
        "-e",
        &bin,
        "--env",
        "FIXTURE_LOG=debug",
    ]);
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;
    assert_echo(
        &keyless(post(&mcpo, "/fx/echo", None, json!({"text": "jsonc"})).await),
        "jsonc",
    );
    assert_child_got_debug_env(&mcpo);
}

#[tokio::test]
async fn env_path_supplies_variables_and_env_flags_win() {
    let config = write_config(JSONC_CONFIG);
    let fixture = fixture_bin();
    let mut dotenv = tempfile::Builder::new()
        .suffix(".env")
        .tempfile()
        .expect("tempfile");
    let text = format!(
        "# variables for the test config\n\
         FIXTURE_BIN='{}'\n\
         export FIXTURE_LOG=\"debug\"\n\
         FIXTURE_MODE=not-a-mode # -e below must win over this\n",
        path_str(&fixture)
    );
    std::io::Write::write_all(&mut dotenv, text.as_bytes()).expect("write dotenv");
    let mcpo = Mcpo::start(&[
        "--config",
        path_str(config.path()),
        "--env-path",
        path_str(dotenv.path()),
        "-e",
        "FIXTURE_MODE=stdio",
    ]);
    // The fixture only starts with mode `stdio`, so this also proves -e beat the dotenv file.
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;
    assert_echo(
        &keyless(post(&mcpo, "/fx/echo", None, json!({"text": "dotenv"})).await),
        "dotenv",
    );
    assert_child_got_debug_env(&mcpo);
}

// --- 6. Bad input at start-up ------------------------------------------------------------------

#[test]
fn invalid_configs_exit_2_with_a_located_message() {
    let fx = fixture_bin();
    let bin = path_str(&fx);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "invalid JSON",
            // Line 3, column 22 is the `"x"` where a `:` belongs.
            format!("{{\n  \"mcpServers\": {{\n    \"fx\": {{\"command\" \"{bin}\"}}\n  }}\n}}\n"),
            vec!["{path}:3:22: expected `:`"],
        ),
        (
            "args not a list",
            json!({"mcpServers": {"fx": {"command": bin, "args": "stdio"}}}).to_string(),
            vec!["{path}: server 'fx': field 'args' must be a list of strings, not a string"],
        ),
        (
            "empty mcpServers",
            r#"{"mcpServers": {}}"#.to_owned(),
            vec!["{path}: field 'mcpServers' is empty; add at least one server"],
        ),
        (
            "oauth on stdio",
            json!({"mcpServers": {"fx": {"command": bin, "args": ["stdio"],
                "oauth": {"server_url": "https://auth.example"}}}})
            .to_string(),
            vec![
                "{path}: server 'fx': field 'oauth' is only supported on streamable-http servers, and this one is stdio",
            ],
        ),
        (
            "unset variable",
            json!({"mcpServers": {"fx": {"command": bin,
                "args": ["stdio", "${MCPO_AUTH_CLI_UNSET_VAR}"]}}})
            .to_string(),
            vec![
                "{path}: server 'fx': field 'args[1]' uses ${MCPO_AUTH_CLI_UNSET_VAR}, but the environment variable MCPO_AUTH_CLI_UNSET_VAR is not set",
            ],
        ),
        (
            "invalid server name",
            json!({"mcpServers": {"my tools": {"command": bin, "args": ["stdio"]}}}).to_string(),
            vec!["{path}: server 'my tools': the server name can only contain letters, digits"],
        ),
        (
            "reserved server name",
            json!({"mcpServers": {"docs": {"command": bin, "args": ["stdio"]}}}).to_string(),
            vec!["{path}: server 'docs': the name is reserved for mcpo's own route /docs"],
        ),
        (
            // Every problem is reported, not just the first; a valid server does not start.
            "several problems",
            json!({"mcpServers": {
                "ok": {"command": bin, "args": ["stdio"]},
                "a": {"command": bin, "args": [1]},
                "b": {"command": bin, "timeout": -1},
            }})
            .to_string(),
            vec![
                "{path}: server 'a': field 'args' must be a list of strings, but item 1 is a number",
                "{path}: server 'b': field 'timeout' must be a positive number of seconds",
            ],
        ),
    ];
    for (what, text, expected) in &cases {
        assert_config_rejected(what, text, expected);
    }

    // A config file that does not exist.
    let run = run_mcpo(&["--config", "/nonexistent/mcpo-config.json"], &[]);
    let out = run.describe();
    assert_eq!(run.code, Some(2), "{out}");
    assert!(
        run.stderr
            .contains("/nonexistent/mcpo-config.json: cannot read the file"),
        "{out}"
    );
}

#[tokio::test]
async fn unknown_keys_are_warned_about_and_the_server_starts() {
    let mut entry = fixture_stdio_entry();
    entry["disabled-tools"] = json!(["echo"]);
    entry["colour"] = json!("blue");
    let config = write_config(&json!({ "mcpServers": { "fx": entry } }).to_string());
    let path = path_str(config.path());
    let mcpo = Mcpo::start(&["--config", path]);
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;
    let log = mcpo.stderr.text();
    for warning in [
        format!(
            "{path}: server 'fx': field 'disabled-tools' is not a key mcpo knows; ignored; did you mean 'disabledTools'?"
        ),
        format!("{path}: server 'fx': field 'colour' is not a key mcpo knows; ignored"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(&warning)),
            "no warning `{warning}`:\n{log}"
        );
    }
    // `disabled-tools` was ignored, so echo is still there.
    assert_echo(
        &keyless(post(&mcpo, "/fx/echo", None, json!({"text": "still"})).await),
        "still",
    );
}

#[test]
fn no_arguments_prints_a_short_usage() {
    let run = run_mcpo(&[], &[]);
    let out = run.describe();
    assert_eq!(run.code, Some(2), "{out}");
    assert!(run.elapsed < QUICK, "{out}");
    assert_eq!(run.stdout, "", "{out}");
    for wanted in [
        "no MCP server given: use --config FILE, or put the server command after '--'",
        "Examples:",
        "mcpo --config config.json",
        "Usage: mcpo [OPTIONS]",
        "--help",
    ] {
        assert!(run.stderr.contains(wanted), "no `{wanted}` in {out}");
    }
    assert!(
        run.stderr.lines().count() <= 15,
        "usage is not short: {out}"
    );
    // Not the full option list.
    assert!(!run.stderr.contains("--strict-auth"), "{out}");
}

#[test]
fn version_and_help() {
    for flag in ["--version", "-V"] {
        let run = run_mcpo(&[flag], &[]);
        assert_eq!(run.code, Some(0), "{}", run.describe());
        assert_eq!(
            run.stdout,
            format!("mcpo {}\n", env!("CARGO_PKG_VERSION")),
            "{}",
            run.describe()
        );
    }
    // -h is help (not --host); an API key in the environment is never shown.
    for flag in ["-h", "--help"] {
        let run = run_mcpo(&[flag], &[("MCPO_API_KEY", KEY)]);
        let out = run.describe();
        assert_eq!(run.code, Some(0), "{out}");
        assert!(
            run.stdout.starts_with("Publish the tools of MCP servers"),
            "{out}"
        );
        for wanted in [
            "Usage: mcpo [OPTIONS]",
            "--api-key <API_KEY>",
            "[env: MCPO_API_KEY]",
            "--strict-auth",
            "--cors-allow-origins <ORIGIN>",
            "--path-prefix <PREFIX>",
            "--root-path <PATH>",
            "--ssl-certfile <FILE>",
            "--ssl-keyfile <FILE>",
            "--env <KEY=VALUE>",
            "--env-path <FILE>",
            "--max-body-bytes <BYTES>",
            "--tool-timeout <SECONDS>",
            "--config <FILE>",
            "Examples:",
        ] {
            assert!(
                run.stdout.contains(wanted),
                "{flag}: no `{wanted}` in {out}"
            );
        }
        assert!(!run.stdout.contains(KEY), "{flag} shows the API key: {out}");
    }
}

// --- 7. Port already in use --------------------------------------------------------------------

#[test]
fn port_in_use_fails_fast_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap();
    let port = addr.port().to_string();
    let config = fx_config();
    let run = run_mcpo(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--config",
            path_str(config.path()),
        ],
        &[],
    );
    let out = run.describe();
    assert!(matches!(run.code, Some(c) if c != 0), "{out}");
    assert!(run.elapsed < QUICK, "{out}");
    assert!(
        run.stderr
            .contains(&format!("mcpo: cannot listen on {addr}")),
        "{out}"
    );
    // It bound before starting any server.
    assert!(!run.stderr.contains("fixture started"), "{out}");
    assert!(!run.stderr.contains("listening on"), "{out}");
    drop(taken);
}
