//! #19 item 2: every body mcpo reads from an upstream or an authorization server is bounded.
//! - A protected MCP endpoint whose protected-resource metadata is a 256 MiB body: mcpo stops
//!   reading at 1 MiB (the fake server counts what it could hand over), its memory stays
//!   small, and the server's state says why.
//! - stdio servers that page `tools/list` forever (a `nextCursor` on every page), or list
//!   without end: the listing stops at the page or tool cap, the server fails with that
//!   reason, and a healthy server next to them keeps working.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::common::*;
use crate::hardening_fake_http::{FakeHttp, reply};

/// Resident memory of `pid` in MiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024
}

const HUGE: usize = 128 << 20;

/// A JSON-looking body of `HUGE` bytes, produced as the client reads it; `sent` counts what
/// it handed over.
fn huge_body(sent: Arc<AtomicUsize>) -> Body {
    let chunk = bytes::Bytes::from(vec![b'a'; 64 << 10]);
    let stream = futures::stream::iter(0..HUGE / chunk.len() + 1).map(move |i| {
        let piece = if i == 0 {
            bytes::Bytes::from_static(b"{\"resource\": \"")
        } else {
            chunk.clone()
        };
        sent.fetch_add(piece.len(), Ordering::Relaxed);
        Ok::<_, std::io::Error>(piece)
    });
    Body::from_stream(stream)
}

#[tokio::test]
async fn a_huge_metadata_body_is_cut_off_at_the_limit() {
    let sent = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let (counter, requests) = (sent.clone(), served.clone());
    let mcp = FakeHttp::start(move |hit, addr| match hit.path() {
        "/mcp" => reply(
            401,
            &[(
                "www-authenticate",
                &format!(
                    "Bearer resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\""
                ),
            )],
            "",
        ),
        p if p.starts_with("/.well-known/oauth-protected-resource") => {
            requests.fetch_add(1, Ordering::Relaxed);
            let mut response = reply(200, &[("content-type", "application/json")], "");
            *response.body_mut() = huge_body(counter.clone());
            response
        }
        _ => reply(404, &[], ""),
    })
    .await;
    let b = start_config(
        json!({
            "huge-metadata": {"type": "streamable-http", "url": mcp.url("/mcp"),
                "oauth": {"callback_port": free_port(), "storage_type": "memory"}},
            "fx": fixture_stdio_entry(),
        }),
        &["--connect-timeout", "10"],
    );
    // Whatever the outcome, the first attempt is over once the server has an error.
    wait_last_error(&b.mcpo, "huge-metadata", "", Duration::from_secs(60)).await;
    let requests = served.load(Ordering::Relaxed).max(1);
    let per_request = sent.load(Ordering::Relaxed) / requests;
    // 1 MiB read, plus what the kernel's socket buffers took before mcpo hung up.
    assert!(
        per_request < 32 << 20,
        "mcpo read on: {} MiB per request of the {} MiB body",
        per_request >> 20,
        HUGE >> 20
    );
    let rss = rss_mib(b.mcpo.child.id());
    assert!(rss < 100, "mcpo's resident memory is {rss} MiB");
    let error = wait_last_error(
        &b.mcpo,
        "huge-metadata",
        "larger than 1024 KiB",
        Duration::from_secs(40),
    )
    .await;
    assert!(error.contains("protected resource metadata"), "{error}");
    // The other server is not affected.
    b.mcpo
        .wait_ok("/fx/openapi.json", Duration::from_secs(20))
        .await;
    let log = b.mcpo.stderr.text();
    assert!(
        log.lines()
            .any(|l| l.contains("huge-metadata") && l.contains("larger than 1024 KiB")),
        "{}",
        tail(&log, 30)
    );
}

/// A stdio MCP server in Python whose `tools/list` pages never end: `per_page` tools on each,
/// every page with a `nextCursor`.
fn endless_pager(dir: &std::path::Path, per_page: usize) -> Value {
    let script = dir.join(format!("pager_{per_page}.py"));
    std::fs::write(
        &script,
        r#"import json, sys
per_page = int(sys.argv[1])
def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "pager", "version": "1"}}})
    elif method == "tools/list":
        page = int((msg.get("params") or {}).get("cursor") or 0)
        tools = [{"name": "t%d_%d" % (page, i), "description": "x" * 100,
                  "inputSchema": {"type": "object"}} for i in range(per_page)]
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": tools, "nextCursor": str(page + 1)}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
"#,
    )
    .unwrap();
    json!({"command": "python3", "args": [script.to_str().unwrap(), per_page.to_string()]})
}

#[tokio::test]
async fn endless_tool_list_pagination_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let b = start_config(
        json!({
            "endless-pages": endless_pager(dir.path(), 1),
            "endless-tools": endless_pager(dir.path(), 2000),
            "fx": fixture_stdio_entry(),
        }),
        &["--connect-timeout", "20"],
    );
    let pages = wait_last_error(
        &b.mcpo,
        "endless-pages",
        "more than 100 pages",
        Duration::from_secs(40),
    )
    .await;
    assert!(pages.contains("tools/list"), "{pages}");
    let tools = wait_last_error(
        &b.mcpo,
        "endless-tools",
        "more than 10000 tools",
        Duration::from_secs(40),
    )
    .await;
    assert!(tools.contains("tools/list"), "{tools}");
    let rss = rss_mib(b.mcpo.child.id());
    assert!(rss < 100, "mcpo's resident memory is {rss} MiB");
    b.mcpo
        .wait_ok("/fx/openapi.json", Duration::from_secs(20))
        .await;
    let log = b.mcpo.stderr.text();
    assert!(
        log.lines()
            .any(|l| l.contains("endless-pages") && l.contains("more than 100 pages")),
        "{}",
        tail(&log, 30)
    );
}
