//! Every transport mcpo speaks, against the repo's fixture and against published MCP servers:
//! streamable HTTP and legacy SSE (typed and untyped config) side by side, config `headers`,
//! `@modelcontextprotocol/server-everything` over stdio/SSE/streamable HTTP, `mcp-server-time`
//! (PyPI) over stdio, the single-server modes, and dead upstreams that must not hold up the
//! healthy ones. Everything listens on loopback only; every process is stopped by its handle.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Fetches a spec and checks it with openapi-spec-validator and the `$ref` walker.
async fn assert_spec_ok(mcpo: &Mcpo, path: &str) -> Value {
    let spec = get_ok(mcpo, path).await;
    assert_valid_openapi(&spec, path);
    assert_refs_resolve(&spec);
    spec
}

/// Polls `POST path` until it answers 503 with a message containing `needle`, then returns the
/// `Retry-After` header and the message.
async fn wait_503_naming(mcpo: &Mcpo, path: &str, needle: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let asked = Instant::now();
        let r = post(mcpo, path, None, json!({})).await;
        let (status, headers, v) = (r.status, r.headers.clone(), r.json());
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {v}");
        // Never held up by the dead upstream (the callers pass --reconnect-wait 0.2).
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "{path}: the 503 took {:?}",
            asked.elapsed()
        );
        let retry = headers
            .get("retry-after")
            .unwrap_or_else(|| panic!("{path}: 503 without Retry-After"))
            .to_str()
            .unwrap()
            .to_owned();
        let msg = message(&v).to_owned();
        if msg.contains(needle) {
            return (retry, msg);
        }
        if Instant::now() > deadline {
            panic!("{path}: the 503 never named {needle:?}; last: {msg}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lines of a child's output, read by a thread so the pipe never fills up.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn read(stream: impl Read + Send + 'static) -> (Self, mpsc::Receiver<String>) {
        let lines = Self::default();
        let (tx, rx) = mpsc::channel();
        let keep = lines.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        (lines, rx)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// @modelcontextprotocol/server-everything over HTTP
// ---------------------------------------------------------------------------------------------

fn everything_script() -> PathBuf {
    peer("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// server-everything in `sse` or `streamableHttp` mode on a loopback port chosen by the OS.
struct Everything {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    _stderr: Lines,
}

impl Everything {
    fn start(mode: &str) -> Self {
        let preload = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/loopback-only.cjs");
        let mut child = Command::new("node")
            .arg(everything_script())
            .arg(mode)
            .env("PORT", "0")
            .env(
                "NODE_OPTIONS",
                format!("--require \"{}\"", preload.display()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node server-everything");
        let (stdout, rx) = Lines::read(child.stdout.take().unwrap());
        let (stderr, _) = Lines::read(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(base) = line.strip_prefix("LISTENING ") {
                        break base.trim().to_owned();
                    }
                }
                Err(_) => {
                    stop_child(&mut child, Duration::from_secs(5));
                    panic!(
                        "server-everything {mode} did not announce its port\nstdout:\n{}\nstderr:\n{}",
                        stdout.text(),
                        stderr.text()
                    );
                }
            }
        };
        Self {
            child,
            base,
            _stderr: stderr,
        }
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

// ---------------------------------------------------------------------------------------------
// A loopback HTTP endpoint that records request heads (to see which headers mcpo sends)
// ---------------------------------------------------------------------------------------------

/// Accepts connections, keeps each request's head (lower-cased) and answers 503, so mcpo's
/// connect fails and it retries. Stopped on drop.
struct HeaderRecorder {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeaderRecorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (heads.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                h.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                let _ = stream.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self {
            port,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits for a request whose head contains `first_line` (lower case) and returns that head.
    fn wait_for(&self, first_line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(h) = self
                .heads
                .lock()
                .unwrap()
                .iter()
                .find(|h| h.starts_with(first_line))
            {
                return h.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no request starting with {first_line:?}; saw: {:?}",
                    self.heads.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HeaderRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The fixture over streamable HTTP and legacy SSE
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fixture_over_streamable_http_and_legacy_sse() {
    let http = Fixture::start("http");
    let sse = Fixture::start("sse");
    let legacy = Fixture::start("sse");
    let b = start_config(
        json!({
            "http": {"type": "streamable-http", "url": format!("{}/mcp", http.base), "timeout": 1},
            "sse": {"type": "sse", "url": format!("{}/sse", sse.base), "timeout": 1},
            // A url without `type` is legacy SSE, as in Python mcpo.
            "legacy": {"url": format!("{}/sse", legacy.base), "timeout": 1},
        }),
        &[],
    );
    for name in ["http", "sse", "legacy"] {
        b.mcpo
            .wait_ok(&format!("/{name}/openapi.json"), Duration::from_secs(30))
            .await;
    }

    for (name, fixture) in [("http", &http), ("sse", &sse), ("legacy", &legacy)] {
        let p = |tool: &str| format!("/{name}/{tool}");
        assert_eq!(
            post_json(&b.mcpo, &p("echo"), json!({"text": "héllo"})).await,
            (StatusCode::OK, json!("héllo")),
            "{name}"
        );
        assert_eq!(
            post_json(&b.mcpo, &p("add"), json!({"a": 2, "b": 3.5})).await,
            (StatusCode::OK, json!(5.5)),
            "{name}"
        );
        let user = json!({"name": "Ada", "address": {"street": "1 Loop", "zip": "12345"}, "role": "admin"});
        let mut created = user.clone();
        created["id"] = json!(1);
        assert_eq!(
            post_json(&b.mcpo, &p("create_user"), json!({ "user": user })).await,
            (StatusCode::OK, created),
            "{name}"
        );
        let (s, img) = post_json(&b.mcpo, &p("image"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{name}: {img}");
        assert_eq!(
            img,
            json!(
                "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
            ),
            "{name}"
        );
        // isError → 500 with the tool's own text.
        let (s, v) = post_json(&b.mcpo, &p("fail"), json!({"message": "it broke"})).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{name}: {v}");
        assert_eq!(message(&v), "it broke", "{name}");
        // JSON-RPC -32602 → 422.
        let (s, v) = post_json(&b.mcpo, &p("invalid_params"), json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
        assert!(
            message(&v).contains("bad params from fixture"),
            "{name}: {v}"
        );
        // The server's `timeout: 1` → 504 well before the tool's 30 s, and the upstream is
        // told to cancel (notifications/cancelled over this transport).
        let started = Instant::now();
        let (s, v) = post_json(&b.mcpo, &p("slow"), json!({"seconds": 30})).await;
        assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{name}: {v}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "{name}: 504 after {took:?}"
        );
        assert!(
            fixture
                .stderr
                .wait_for(Duration::from_secs(5), |l| l
                    .contains("slow cancelled")
                    .then_some(()))
                .is_some(),
            "{name}: the fixture never saw the cancellation; fixture stderr:\n{}",
            fixture.stderr.text()
        );
        // The session survives the timeout.
        assert_eq!(
            post_json(&b.mcpo, &p("echo"), json!({"text": "still here"})).await,
            (StatusCode::OK, json!("still here")),
            "{name}"
        );

        let spec = assert_spec_ok(&b.mcpo, &format!("/{name}/openapi.json")).await;
        assert_eq!(spec["info"]["title"], json!("mcp-fixture"), "{name}");
        assert_eq!(
            spec["paths"]["/create_user"]["post"]["operationId"],
            json!("create_user"),
            "{name}"
        );
    }

    // Every transport is listed as connected in the index.
    let index = get_ok(&b.mcpo, "/").await;
    let servers = index["servers"].as_array().expect("servers");
    let statuses: Vec<(&str, &str)> = servers
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("http", "connected"),
            ("sse", "connected"),
            ("legacy", "connected")
        ]
    );
    assert_eq!(servers[0]["tools"], json!(15));

    let combined = assert_spec_ok(&b.mcpo, "/openapi.json").await;
    for name in ["http", "sse", "legacy"] {
        assert_eq!(
            combined["paths"][format!("/{name}/echo")]["post"]["operationId"],
            json!(format!("{name}_echo"))
        );
    }
}

#[tokio::test]
async fn config_headers_reach_remote_upstreams() {
    let rec = HeaderRecorder::start();
    let headers = json!({"X-Test-Token": "abc-123", "Authorization": "Bearer sekrit-value"});
    // A short --reconnect-wait: calls to a server that is not connected answer 503 at once
    // instead of waiting (5 s by default) for it to come back.
    let b = start_config(
        json!({
            "http": {"type": "streamable-http", "url": format!("http://127.0.0.1:{}/mcp", rec.port), "headers": headers},
            "sse": {"type": "sse", "url": format!("http://127.0.0.1:{}/sse", rec.port), "headers": headers},
        }),
        &["--reconnect-wait", "0.2"],
    );
    let post_head = rec.wait_for("post /mcp ");
    let get_head = rec.wait_for("get /sse ");
    for (what, head) in [("streamable HTTP", &post_head), ("SSE", &get_head)] {
        assert!(
            head.contains("\r\nx-test-token: abc-123\r\n"),
            "{what}: custom header missing:\n{head}"
        );
        assert!(
            head.contains("\r\nauthorization: bearer sekrit-value\r\n"),
            "{what}: Authorization missing:\n{head}"
        );
    }
    // The upstream refused (503): the routes say so, without leaking the header values.
    for name in ["http", "sse"] {
        let (_, msg) = wait_503_naming(&b.mcpo, &format!("/{name}/anything"), "(failed)").await;
        assert!(
            !msg.contains("sekrit") && !msg.contains("abc-123"),
            "{name}: {msg}"
        );
    }
    let index = get_ok(&b.mcpo, "/").await;
    assert!(!index.to_string().contains("sekrit"), "{index}");
}

// ---------------------------------------------------------------------------------------------
// 2. @modelcontextprotocol/server-everything over stdio, SSE and streamable HTTP
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_everything_over_all_three_transports() {
    let sse = Everything::start("sse");
    let http = Everything::start("streamableHttp");
    let b = start_config(
        json!({
            "stdio": {"command": "node", "args": [everything_script().to_str().unwrap(), "stdio"]},
            "sse": {"type": "sse", "url": format!("{}/sse", sse.base)},
            "http": {"type": "streamable-http", "url": format!("{}/mcp", http.base)},
        }),
        &[],
    );
    let names = ["stdio", "sse", "http"];
    for name in names {
        b.mcpo
            .wait_ok(&format!("/{name}/openapi.json"), Duration::from_secs(60))
            .await;
    }

    for name in names {
        let p = |tool: &str| format!("/{name}/{tool}");
        // The echo tool answers one text block "Echo: <message>".
        assert_eq!(
            post_json(&b.mcpo, &p("echo"), json!({"message": "hi there"})).await,
            (StatusCode::OK, json!("Echo: hi there")),
            "{name}"
        );
        // get-sum answers a sentence with the sum.
        assert_eq!(
            post_json(&b.mcpo, &p("get-sum"), json!({"a": 2, "b": 3.5})).await,
            (StatusCode::OK, json!("The sum of 2 and 3.5 is 5.5.")),
            "{name}"
        );
        // Validated by mcpo before the call: a missing `b` is 422 naming it.
        let (s, v) = post_json(&b.mcpo, &p("get-sum"), json!({"a": 2})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
        assert!(message(&v).contains("\"b\""), "{name}: {v}");
        // get-tiny-image: text, the PNG as a data URL, text (order kept).
        let (s, v) = post_json(&b.mcpo, &p("get-tiny-image"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{name}: {v}");
        let items = v.as_array().unwrap_or_else(|| panic!("{name}: {v}"));
        assert_eq!(items.len(), 3, "{name}: {v}");
        assert_eq!(items[0], json!("Here's the image you requested:"), "{name}");
        assert!(
            items[1]
                .as_str()
                .is_some_and(|s| s.starts_with("data:image/png;base64,iVBORw0KGgo")),
            "{name}: {}",
            items[1]
        );
        assert_eq!(
            items[2],
            json!("The image above is the MCP logo."),
            "{name}"
        );
        // Structured content wins over the text copy.
        let (s, v) = post_json(
            &b.mcpo,
            &p("get-structured-content"),
            json!({"location": "Chicago"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{name}: {v}");
        assert_eq!(
            v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec![
                "temperature".to_owned(),
                "conditions".to_owned(),
                "humidity".to_owned()
            ]),
            "{name}: {v}"
        );
        assert!(v["temperature"].is_number(), "{name}: {v}");

        let spec = assert_spec_ok(&b.mcpo, &format!("/{name}/openapi.json")).await;
        assert_eq!(
            spec["info"]["title"],
            json!("Everything Reference Server"),
            "{name}"
        );
        for tool in [
            "echo",
            "get-sum",
            "get-tiny-image",
            "get-structured-content",
        ] {
            assert_eq!(
                spec["paths"][format!("/{tool}")]["post"]["operationId"],
                json!(tool),
                "{name}"
            );
        }
    }

    let combined = assert_spec_ok(&b.mcpo, "/openapi.json").await;
    for name in names {
        assert_eq!(
            combined["paths"][format!("/{name}/get-sum")]["post"]["operationId"],
            json!(format!("{name}_get-sum"))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. mcp-server-time (PyPI) over stdio
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn mcp_server_time_over_stdio() {
    let b = start_config(
        json!({
            "time": {"command": peer("venv/bin/mcp-server-time").to_str().unwrap()},
        }),
        &[],
    );
    b.mcpo
        .wait_ok("/time/openapi.json", Duration::from_secs(60))
        .await;

    let (s, v) = post_json(
        &b.mcpo,
        "/time/get_current_time",
        json!({"timezone": "Europe/Paris"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["timezone"], json!("Europe/Paris"), "{v}");
    let datetime = v["datetime"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(
        datetime.ends_with("+01:00") || datetime.ends_with("+02:00"),
        "{v}"
    );
    assert!(v["is_dst"].is_boolean(), "{v}");

    // Zones without DST give a fixed answer: 12:00 in Kolkata (+05:30) is 15:30 in Tokyo.
    let (s, v) = post_json(&b.mcpo, "/time/convert_time", json!({"source_timezone": "Asia/Kolkata", "time": "12:00", "target_timezone": "Asia/Tokyo"}))
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["source"]["timezone"], json!("Asia/Kolkata"), "{v}");
    assert_eq!(v["target"]["timezone"], json!("Asia/Tokyo"), "{v}");
    assert!(
        v["source"]["datetime"]
            .as_str()
            .is_some_and(|d| d.ends_with("T12:00:00+05:30")),
        "{v}"
    );
    assert!(
        v["target"]["datetime"]
            .as_str()
            .is_some_and(|d| d.ends_with("T15:30:00+09:00")),
        "{v}"
    );
    assert_eq!(v["time_difference"], json!("+3.5h"), "{v}");

    // An unknown zone is 500: mcp-server-time raises `ToolError`, which its SDK turns into an
    // `isError: true` result (a tool failure, not a JSON-RPC -32602 protocol error), and mcpo
    // maps isError to 500 with the tool's text.
    let (s, v) = post_json(
        &b.mcpo,
        "/time/get_current_time",
        json!({"timezone": "Mars/Olympus_Mons"}),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    let msg = message(&v);
    assert!(
        msg.contains("Invalid timezone") && msg.contains("Mars/Olympus_Mons"),
        "{v}"
    );
    // A missing argument never reaches the server: mcpo's own schema check answers 422.
    let (s, v) = post_json(&b.mcpo, "/time/get_current_time", json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(message(&v).contains("timezone"), "{v}");

    let spec = assert_spec_ok(&b.mcpo, "/time/openapi.json").await;
    assert_eq!(spec["info"]["title"], json!("mcp-time"));
    let required = &spec["paths"]["/get_current_time"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["required"];
    assert_eq!(required, &json!(["timezone"]));
    assert_spec_ok(&b.mcpo, "/openapi.json").await;
}

// ---------------------------------------------------------------------------------------------
// 4. Single-server modes
// ---------------------------------------------------------------------------------------------

/// In single-server mode the tools, the spec and the docs live at the root.
async fn assert_single_server_root(mcpo: &Mcpo) {
    mcpo.wait_ok("/openapi.json", Duration::from_secs(30)).await;
    assert_eq!(
        post_json(mcpo, "/echo", json!({"text": "solo"})).await,
        (StatusCode::OK, json!("solo"))
    );
    assert_eq!(
        post_json(mcpo, "/add", json!({"a": 40, "b": 2})).await,
        (StatusCode::OK, json!(42))
    );
    let spec = assert_spec_ok(mcpo, "/openapi.json").await;
    assert_eq!(spec["info"]["title"], json!("mcp-fixture"));
    assert_eq!(spec["paths"]["/echo"]["post"]["operationId"], json!("echo"));
    let docs = client().get(mcpo.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    // The server name is not part of the route in this mode.
    let (s, _) = post_json(mcpo, "/no_such_tool", json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn single_server_streamable_http() {
    let fixture = Fixture::start("http");
    let url = format!("{}/mcp", fixture.base);
    let mcpo = Mcpo::start(&["--type", "streamable-http", "--", &url]);
    assert_single_server_root(&mcpo).await;
}

#[tokio::test]
async fn single_server_sse() {
    let fixture = Fixture::start("sse");
    let url = format!("{}/sse", fixture.base);
    let mcpo = Mcpo::start(&["--type", "sse", "--", &url]);
    assert_single_server_root(&mcpo).await;
}

#[tokio::test]
async fn single_server_stdio() {
    let bin = fixture_bin();
    let mcpo = Mcpo::start(&["--", bin.to_str().unwrap(), "stdio"]);
    assert_single_server_root(&mcpo).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Dead upstreams never block the healthy ones
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dead_upstreams_answer_503_while_healthy_ones_serve() {
    let port = free_port();
    // Accepts TCP (the kernel completes the handshake) but never answers: a connect that
    // hangs until mcpo's connect timeout.
    let hang = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang_port = hang.local_addr().unwrap().port();
    let missing = "/nonexistent/mcpo-test/mcp-server";
    let started = Instant::now();
    // A long connect timeout keeps the hanging server in its first attempt for the whole test;
    // a short reconnect wait makes calls to servers that are not connected answer 503 at once
    // (by default they wait up to 5 s for the server to come back).
    let b = start_config(
        json!({
            "dead_stdio": {"command": missing},
            "dead_http": {"type": "streamable-http", "url": format!("http://127.0.0.1:{port}/mcp")},
            "dead_sse": {"type": "sse", "url": format!("http://127.0.0.1:{port}/sse")},
            "hang": {"type": "streamable-http", "url": format!("http://127.0.0.1:{hang_port}/mcp")},
            "ok": fixture_stdio_entry(),
        }),
        &["--connect-timeout", "120", "--reconnect-wait", "0.2"],
    );
    b.mcpo
        .wait_ok("/ok/openapi.json", Duration::from_secs(20))
        .await;
    // Long before the hanging server's connect attempt could time out.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "healthy server took {:?}",
        started.elapsed()
    );
    assert_eq!(
        post_json(&b.mcpo, "/ok/echo", json!({"text": "alive"})).await,
        (StatusCode::OK, json!("alive"))
    );

    let cases = [
        ("dead_stdio", missing.to_owned()),
        // The streamable-HTTP error names the URL it could not reach.
        ("dead_http", format!("http://127.0.0.1:{port}/mcp")),
        ("dead_sse", "Connection refused".to_owned()),
    ];
    for (name, needle) in &cases {
        // 503 bodies give the state word; the reason is in /status (#19 item 8).
        let (retry, msg) = wait_503_naming(&b.mcpo, &format!("/{name}/echo"), "(failed)").await;
        let status = fetch_server_status(&b.mcpo, name).await;
        assert!(
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(needle.as_str())),
            "{name}: {status}"
        );
        let secs: u64 = retry
            .parse()
            .unwrap_or_else(|_| panic!("{name}: Retry-After {retry:?}"));
        assert!((1..=120).contains(&secs), "{name}: Retry-After {secs}");
        assert!(msg.contains(&format!("'{name}'")), "{name}: {msg}");
        // The spec route of a dead server is 503 too, not an empty document.
        let r = client()
            .get(b.mcpo.url(&format!("/{name}/openapi.json")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{name}");
        assert!(r.headers().contains_key("retry-after"), "{name}");
    }
    let dead_stdio = fetch_server_status(&b.mcpo, "dead_stdio").await;
    assert!(
        dead_stdio["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("No such file or directory")),
        "{dead_stdio}"
    );
    // The hanging one is still in its first attempt: 503, retry soon.
    let r = post(&b.mcpo, "/hang/echo", None, json!({})).await;
    let (s, headers, v) = (r.status, r.headers.clone(), r.json());
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(
        headers.get("retry-after").and_then(|h| h.to_str().ok()),
        Some("1")
    );
    assert!(message(&v).contains("'hang'"), "{v}");

    // Still healthy after all of that, and the index tells them apart.
    assert_eq!(
        post_json(&b.mcpo, "/ok/echo", json!({"text": "still alive"})).await,
        (StatusCode::OK, json!("still alive"))
    );
    let index = get_ok(&b.mcpo, "/").await;
    let by_name = |n: &str| {
        index["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == json!(n))
            .unwrap_or_else(|| panic!("{n} missing from {index}"))
            .clone()
    };
    assert_eq!(by_name("ok")["status"], json!("connected"));
    for (name, _) in &cases {
        let s = by_name(name);
        assert_eq!(s["status"], json!("connecting"), "{s}");
        assert_eq!(s["state"], json!("failed"), "{s}");
        assert!(s.get("last_error").is_none(), "{s}");
    }
    // The combined spec holds the healthy server's tools only and stays valid.
    let combined = assert_spec_ok(&b.mcpo, "/openapi.json").await;
    let paths = combined["paths"].as_object().unwrap();
    assert!(paths.contains_key("/ok/echo"));
    assert!(paths.keys().all(|p| p.starts_with("/ok/")), "{paths:?}");
    drop(hang);
}
