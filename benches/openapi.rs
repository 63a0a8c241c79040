//! Hot paths of mcpo that need no network: `cargo bench --bench openapi`.
//!
//! * catalog build for a large, realistic tool list (100 tools, built below from the shapes real
//!   servers send: pydantic/FastMCP `$defs` + nullable `anyOf`, zod/TypeScript draft-07 with
//!   `additionalProperties: false`, schemars 2020-12 `oneOf` enums, recursive `$ref`s, output
//!   schemas): `prepare_tool` (schema normalisation + validator compilation), `server_document`,
//!   `combined_document`, and serialisation, as `http::catalog` does on every tool-list change;
//! * the per-request path: body parse, `PreparedTool::validate` (valid and invalid bodies),
//!   `PreparedTool::arguments`;
//! * result mapping (`http::reply::tool_result`): what every answer goes through on its way
//!   back, for the shapes tools return (one text item, JSON in text, structured content, mixed
//!   text + image).

use std::hint::black_box;

use mcpo::http::reply::tool_result;
use mcpo::openapi::{PreparedTool, SpecInfo, combined_document, prepare_tool, server_document};
use serde_json::{Value, json};

fn main() {
    divan::main();
}

const TOOLS: usize = 100;

fn info() -> SpecInfo {
    SpecInfo {
        title: "bench".into(),
        version: "1.0.0".into(),
        description: Some("A large tool server".into()),
        server_url: Some("/bench".into()),
        api_key_security: true,
    }
}

/// FastMCP / pydantic v2: titles everywhere, `$defs` for models and enums, nullable optionals.
fn pydantic(i: usize) -> Value {
    json!({
        "name": format!("create_ticket_{i}"),
        "description": "Create a support ticket for a customer, with an optional address and a list of line items.",
        "inputSchema": {
            "$defs": {
                "Address": {
                    "properties": {
                        "street": {"title": "Street", "type": "string"},
                        "city": {"title": "City", "type": "string"},
                        "zip": {"anyOf": [{"type": "string", "pattern": "^[0-9]{5}$"}, {"type": "null"}], "default": null, "title": "Zip"},
                        "country": {"default": "US", "title": "Country", "type": "string", "minLength": 2, "maxLength": 2}
                    },
                    "required": ["street", "city"],
                    "title": "Address",
                    "type": "object"
                },
                "Priority": {"enum": ["low", "normal", "high", "urgent"], "title": "Priority", "type": "string"},
                "LineItem": {
                    "properties": {
                        "sku": {"title": "Sku", "type": "string"},
                        "quantity": {"exclusiveMinimum": 0, "title": "Quantity", "type": "integer"},
                        "price": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": null, "title": "Price"},
                        "tags": {"items": {"type": "string"}, "title": "Tags", "type": "array"}
                    },
                    "required": ["sku", "quantity"],
                    "title": "LineItem",
                    "type": "object"
                }
            },
            "properties": {
                "customer_id": {"title": "Customer Id", "type": "integer", "minimum": 1},
                "subject": {"title": "Subject", "type": "string", "maxLength": 200},
                "body": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "title": "Body"},
                "priority": {"$ref": "#/$defs/Priority", "default": "normal"},
                "address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": null},
                "items": {"items": {"$ref": "#/$defs/LineItem"}, "title": "Items", "type": "array"},
                "due": {"anyOf": [{"format": "date-time", "type": "string"}, {"type": "null"}], "default": null, "title": "Due"}
            },
            "required": ["customer_id", "subject", "items"],
            "title": format!("create_ticket_{i}Arguments"),
            "type": "object"
        },
        "outputSchema": {
            "$defs": {
                "Ticket": {
                    "properties": {"id": {"type": "integer"}, "status": {"type": "string", "enum": ["open", "closed"]}, "url": {"type": "string", "format": "uri"}},
                    "required": ["id", "status"],
                    "type": "object"
                }
            },
            "properties": {"result": {"$ref": "#/$defs/Ticket"}},
            "required": ["result"],
            "type": "object"
        }
    })
}

/// zod-to-json-schema (TypeScript SDK servers): draft-07, `additionalProperties: false`.
fn zod(i: usize) -> Value {
    json!({
        "name": format!("search_issues_{i}"),
        "description": "Search issues and pull requests across repositories.",
        "inputSchema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "q": {"type": "string", "description": "Search query"},
                "sort": {"type": "string", "enum": ["comments", "reactions", "created", "updated"]},
                "order": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
                "per_page": {"type": "number", "minimum": 1, "maximum": 100},
                "page": {"type": "number", "minimum": 1},
                "labels": {"type": "array", "items": {"type": "string"}},
                "filters": {
                    "type": "object",
                    "properties": {
                        "state": {"type": "string", "enum": ["open", "closed", "all"]},
                        "author": {"type": "string"},
                        "since": {"type": "string", "format": "date-time"}
                    },
                    "additionalProperties": false
                }
            },
            "required": ["q"],
            "additionalProperties": false
        }
    })
}

/// schemars (rmcp servers): 2020-12, `oneOf` enums with descriptions, type arrays.
fn schemars(i: usize) -> Value {
    json!({
        "name": format!("run_query_{i}"),
        "description": "Run a read-only SQL query.",
        "inputSchema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "QueryArgs",
            "type": "object",
            "properties": {
                "sql": {"type": "string"},
                "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
                "format": {"$ref": "#/$defs/OutputFormat"},
                "params": {"type": "array", "items": {"$ref": "#/$defs/Param"}}
            },
            "required": ["sql", "format"],
            "$defs": {
                "OutputFormat": {"oneOf": [
                    {"description": "Rows as JSON objects.", "type": "string", "const": "json"},
                    {"description": "Comma separated.", "type": "string", "const": "csv"},
                    {"description": "A Markdown table.", "type": "string", "const": "markdown"}
                ]},
                "Param": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "value": {"$ref": "#/$defs/Scalar"}},
                    "required": ["name", "value"]
                },
                "Scalar": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
            }
        }
    })
}

/// A recursive schema (a tree of nodes, and a reference to the root).
fn recursive(i: usize) -> Value {
    json!({
        "name": format!("write_outline_{i}"),
        "description": "Write a nested outline.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "root": {"$ref": "#/$defs/Node"},
                "also": {"$ref": "#/properties/root"}
            },
            "required": ["title", "root"],
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                    },
                    "required": ["text"]
                }
            }
        }
    })
}

/// Small tools: one string, or no arguments.
fn small(i: usize) -> Value {
    if i.is_multiple_of(2) {
        json!({"name": format!("get_time_{i}"), "description": "Current time in a timezone.",
               "inputSchema": {"type": "object", "properties": {"timezone": {"type": "string", "description": "IANA name"}}, "required": ["timezone"]}})
    } else {
        json!({"name": format!("list_things_{i}"), "description": "List everything.", "inputSchema": {"type": "object"}})
    }
}

fn tool_list() -> Vec<rmcp::model::Tool> {
    (0..TOOLS)
        .map(|i| {
            let raw = match i % 5 {
                0 => pydantic(i),
                1 => zod(i),
                2 => schemars(i),
                3 => recursive(i),
                _ => small(i),
            };
            serde_json::from_value(raw).expect("bench tool deserializes")
        })
        .collect()
}

fn prepared() -> Vec<PreparedTool> {
    tool_list()
        .iter()
        .map(|t| prepare_tool("bench", t))
        .collect()
}

// --- catalog build (once per tools/list) -------------------------------------------------------

#[divan::bench]
fn prepare_100_tools(bencher: divan::Bencher) {
    let tools = tool_list();
    bencher.bench(|| {
        black_box(&tools)
            .iter()
            .map(|t| prepare_tool("bench", t))
            .collect::<Vec<_>>()
    });
}

#[divan::bench]
fn server_document_100_tools(bencher: divan::Bencher) {
    let tools = prepared();
    let info = info();
    bencher.bench(|| server_document(&info, "bench", black_box(&tools), |t| format!("/{t}")));
}

#[divan::bench]
fn server_document_100_tools_serialized(bencher: divan::Bencher) {
    let tools = prepared();
    let info = info();
    bencher.bench(|| {
        let doc = server_document(&info, "bench", black_box(&tools), |t| format!("/{t}"));
        serde_json::to_vec(&doc).expect("serializes")
    });
}

/// What `http::catalog` does when a server publishes a new tool list: prepare, document,
/// serialise.
#[divan::bench]
fn catalog_rebuild_100_tools(bencher: divan::Bencher) {
    let tools = tool_list();
    let info = info();
    bencher.bench(|| {
        let prepared: Vec<PreparedTool> = black_box(&tools)
            .iter()
            .map(|t| prepare_tool("bench", t))
            .collect();
        let doc = server_document(&info, "bench", &prepared, |t| format!("/{t}"));
        serde_json::to_vec(&doc).expect("serializes")
    });
}

/// The root `/openapi.json` over 4 servers of 100 tools each.
#[divan::bench]
fn combined_document_4x100_tools(bencher: divan::Bencher) {
    let tools = prepared();
    let info = info();
    let names = ["alpha", "beta", "gamma", "delta"];
    bencher.bench(|| {
        let servers: Vec<(&str, &[PreparedTool])> =
            names.iter().map(|n| (*n, tools.as_slice())).collect();
        let doc = combined_document(&info, &servers, |s, t| format!("/{s}/{t}"));
        serde_json::to_vec(&doc).expect("serializes")
    });
}

// --- per request --------------------------------------------------------------------------------

fn one(raw: Value) -> PreparedTool {
    prepare_tool("bench", &serde_json::from_value(raw).expect("tool"))
}

fn echo_tool() -> PreparedTool {
    one(json!({"name": "echo", "inputSchema": {"type": "object",
        "properties": {"message": {"type": "string"}}, "required": ["message"]}}))
}

const ECHO_BODY: &[u8] = br#"{"message":"hello"}"#;

const TICKET_OK: &str = r#"{"customer_id": 42, "subject": "Printer on fire", "priority": "urgent",
  "address": {"street": "1 Main St", "city": "Springfield", "zip": "12345"},
  "items": [{"sku": "A-1", "quantity": 2, "price": 9.5, "tags": ["x", "y"]}, {"sku": "B-2", "quantity": 1}],
  "due": null}"#;

const TICKET_BAD: &str = r#"{"customer_id": 0, "subject": 7, "priority": "whenever",
  "address": {"city": "Springfield", "zip": "abc"},
  "items": [{"sku": "A-1", "quantity": 0}]}"#;

/// Everything `http::tools` does to a body before the upstream call: parse, validate,
/// turn into arguments.
#[divan::bench]
fn request_echo_parse_validate_arguments(bencher: divan::Bencher) {
    let tool = echo_tool();
    bencher.bench(|| {
        let value: Value = serde_json::from_slice(black_box(ECHO_BODY)).expect("json");
        tool.validate(&value).expect("valid");
        tool.arguments(value)
    });
}

#[divan::bench]
fn validate_echo_ok(bencher: divan::Bencher) {
    let tool = echo_tool();
    let body: Value = serde_json::from_slice(ECHO_BODY).expect("json");
    bencher.bench(|| tool.validate(black_box(&body)).is_ok());
}

#[divan::bench]
fn validate_pydantic_ok(bencher: divan::Bencher) {
    let tool = one(pydantic(0));
    let body: Value = serde_json::from_str(TICKET_OK).expect("json");
    assert!(tool.validate(&body).is_ok());
    bencher.bench(|| tool.validate(black_box(&body)).is_ok());
}

/// The 422 path: several issues collected with their paths.
#[divan::bench]
fn validate_pydantic_invalid(bencher: divan::Bencher) {
    let tool = one(pydantic(0));
    let body: Value = serde_json::from_str(TICKET_BAD).expect("json");
    assert!(tool.validate(&body).is_err());
    bencher.bench(|| tool.validate(black_box(&body)).is_err());
}

#[divan::bench]
fn validate_recursive_ok(bencher: divan::Bencher) {
    let tool = one(recursive(0));
    let body = json!({"title": "t", "root": {"text": "a", "children": [
        {"text": "b", "children": [{"text": "c"}, {"text": "d"}]}, {"text": "e"}]}});
    assert!(tool.validate(&body).is_ok());
    bencher.bench(|| tool.validate(black_box(&body)).is_ok());
}

#[divan::bench]
fn prepare_one_pydantic_tool(bencher: divan::Bencher) {
    let tool: rmcp::model::Tool = serde_json::from_value(pydantic(0)).expect("tool");
    bencher.bench(|| prepare_tool("bench", black_box(&tool)));
}

// --- result mapping -----------------------------------------------------------------------------

fn call_result(raw: Value) -> rmcp::model::CallToolResult {
    serde_json::from_value(raw).expect("CallToolResult")
}

/// Maps a fresh copy of `raw` per iteration (`tool_result` consumes the result, as the handler
/// does); the clone is outside the timed part.
fn bench_mapping(bencher: divan::Bencher, raw: Value) {
    let result = call_result(raw);
    assert!(tool_result(result.clone()).is_ok());
    bencher
        .with_inputs(|| result.clone())
        .bench_values(|r| tool_result(black_box(r)).is_ok());
}

/// The echo server's answer: one text item that is not JSON.
#[divan::bench]
fn map_result_plain_text(bencher: divan::Bencher) {
    bench_mapping(
        bencher,
        json!({"content": [{"type": "text", "text": "hello"}]}),
    );
}

/// A tool answering a JSON document as text (most Python servers): parsed back into JSON.
#[divan::bench]
fn map_result_json_text(bencher: divan::Bencher) {
    let doc = json!({"items": (0..20).map(|i| json!({"id": i, "name": format!("item {i}"),
        "tags": ["a", "b"], "price": 9.5})).collect::<Vec<_>>(), "total": 20});
    bench_mapping(
        bencher,
        json!({"content": [{"type": "text", "text": doc.to_string()}]}),
    );
}

/// `structuredContent` wins over content and is passed through.
#[divan::bench]
fn map_result_structured(bencher: divan::Bencher) {
    bench_mapping(
        bencher,
        json!({"content": [{"type": "text", "text": "{\"sum\": 3}"}],
               "structuredContent": {"sum": 3}}),
    );
}

/// Text plus a small PNG: an array with a `data:` URL.
#[divan::bench]
fn map_result_text_and_image(bencher: divan::Bencher) {
    bench_mapping(
        bencher,
        json!({"content": [{"type": "text", "text": "chart"},
            {"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo".repeat(200)}]}),
    );
}
