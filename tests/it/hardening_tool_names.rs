//! #19 item 1: tool names an upstream chooses become URL path segments. A name that is not a
//! safe segment (`../fx/envdump`, `a?b`, spaces, `..`, over 128 characters) is published under
//! a safe, stable name; calling that path calls the original tool of the same server, never a
//! route the name's dot segments or `?`/`#` point at.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// A stdio MCP server in a few lines of Python: newline-delimited JSON-RPC; `tools/call`
/// answers `{"server": MODE, "tool": NAME}` as JSON text, so a test sees which server and
/// which tool ran.
const SERVER: &str = r#"
import hashlib, json, sys
mode = sys.argv[1]
if mode == "evil":
    names = ["weather", "../fx/envdump", "a?b", "a#b", "with space", "..", "n" * 200]
    # Already the safe name of "a?b": it comes later, so it is the one left out.
    names.append("a_b_" + hashlib.sha256(b"a?b").hexdigest()[:8])
else:
    names = ["envdump"]
tools = [{"name": n, "description": "tool " + n, "inputSchema": {"type": "object"}} for n in names]
for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}},
                  "serverInfo": {"name": mode, "version": "1"}}
    elif method == "tools/list":
        result = {"tools": tools}
    elif method == "tools/call":
        text = json.dumps({"server": mode, "tool": msg["params"]["name"]})
        result = {"content": [{"type": "text", "text": text}]}
    else:
        result = {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}) + "\n")
    sys.stdout.flush()
"#;

fn entry(script: &Path, mode: &str) -> Value {
    json!({ "command": "python3", "args": [script.to_str().unwrap(), mode] })
}

/// The MCP tool name of each operation in `doc`, by path.
fn operations(doc: &Value) -> Vec<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter_map(|(path, item)| {
            let tool = item["post"]["x-mcp-tool"].as_str()?;
            Some((path.clone(), tool.to_owned()))
        })
        .collect()
}

fn assert_safe_paths(doc: &Value, what: &str) {
    for path in doc["paths"].as_object().expect("paths").keys() {
        assert!(
            !path.contains(['?', '#', ' ', '\\']),
            "{what}: path {path:?} holds a character that ends or breaks a URL path"
        );
        assert!(
            path.split('/').all(|s| s != "." && s != ".."),
            "{what}: path {path:?} has a dot segment, which clients resolve"
        );
    }
}

#[tokio::test]
async fn unsafe_tool_names_are_published_under_safe_names_of_the_same_server() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    let bridge = start_config(
        json!({ "evil": entry(&script, "evil"), "fx": entry(&script, "fx") }),
        &[],
    );
    let mcpo = &bridge.mcpo;
    mcpo.wait_ok("/evil/openapi.json", Duration::from_secs(30))
        .await;
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;

    let spec = get_ok(mcpo, "/evil/openapi.json").await;
    assert_safe_paths(&spec, "/evil/openapi.json");
    let ops = operations(&spec);
    let hostile = [
        "../fx/envdump",
        "a?b",
        "a#b",
        "with space",
        "..",
        &"n".repeat(200),
    ];
    for name in hostile.iter().copied().chain(["weather"]) {
        let (path, _) = ops
            .iter()
            .find(|(_, tool)| tool == name)
            .unwrap_or_else(|| panic!("tool {name:?} is not served: {ops:?}"));
        assert!(path.len() <= 129, "{path}");
        let (status, body) = post_json(mcpo, &format!("/evil{path}"), json!({})).await;
        assert_eq!(status, 200, "POST /evil{path} ({name:?}): {body}");
        assert_eq!(
            body,
            json!({ "server": "evil", "tool": name }),
            "POST /evil{path}, published for evil's {name:?}, ran another tool"
        );
        if name != "weather" {
            let op = &spec["paths"][path.as_str()]["post"];
            let description = op["description"].as_str().unwrap_or_default();
            assert!(
                description.starts_with("MCP tool name: `"),
                "{name:?}: the description does not name the MCP tool: {description}"
            );
        }
    }
    // `weather` is safe and kept as it is.
    assert!(ops.iter().any(|(p, t)| p == "/weather" && t == "weather"));
    // The tool whose own name is `a?b`'s safe name is left out, with a warning; `a?b` keeps it.
    assert_eq!(ops.len(), hostile.len() + 1, "{ops:?}");
    wait_log(
        mcpo,
        &["tool left out", "evil", "a_b_"],
        1,
        Duration::from_secs(5),
    )
    .await;
    let log = mcpo.stderr.text();
    assert!(
        log.contains("not a safe URL path segment") && log.contains("../fx/envdump"),
        "the renaming is not logged:\n{log}"
    );

    // The combined document: same rules, and its path for `../fx/envdump` reaches evil's tool.
    let combined = get_ok(mcpo, "/openapi.json").await;
    assert_safe_paths(&combined, "/openapi.json");
    let (path, _) = operations(&combined)
        .into_iter()
        .find(|(_, tool)| tool == "../fx/envdump")
        .expect("../fx/envdump in the combined document");
    let (status, body) = post_json(mcpo, &path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "server": "evil", "tool": "../fx/envdump" }));
    // fx's own tool is still fx's.
    assert_eq!(
        post_json(mcpo, "/fx/envdump", json!({})).await.1,
        json!({ "server": "fx", "tool": "envdump" })
    );
}
