//! Adding operations to a finished document (resources, prompts): a path and method a tool
//! already has keeps the tool, an operationId already taken gets `_2`, `_3`…, a tag is declared
//! once, and the shared components are put in place.

use serde_json::{Map, Value, json};

use super::document::ERROR_SCHEMA;
use super::schema::COMPONENTS;

/// A `$ref` to a component schema.
pub(super) fn component(name: &str) -> Value {
    json!({ "$ref": format!("{COMPONENTS}{name}") })
}

/// The error answers of a resource or prompt route (`security`: 401/403 too), each with the
/// shared error body; `found` describes the 404.
pub(super) fn error_responses(security: bool, found: &str) -> Map<String, Value> {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": component(ERROR_SCHEMA) } },
        })
    };
    let mut r = Map::new();
    if security {
        r.insert("401".into(), error("Missing credentials"));
        r.insert("403".into(), error("Credentials not accepted"));
    }
    r.insert("404".into(), error(found));
    r.insert(
        "422".into(),
        error("The request is not valid (its message says why)"),
    );
    r.insert(
        "502".into(),
        error("The MCP server answered with an error, or the connection broke"),
    );
    r.insert(
        "503".into(),
        error("The MCP server is not connected; retry after the Retry-After header's seconds"),
    );
    r.insert("504".into(), error("The MCP server did not answer in time"));
    r
}

/// Whether the document declares HTTP bearer security (then every route may answer 401/403).
pub(super) fn has_security(doc: &Value) -> bool {
    doc.get("security").is_some()
}

/// Adds `method path` with `op` (its `operationId` made unique in the document), unless a tool
/// has that method on that path already; declares `tag`. Returns whether it was added.
pub(super) fn insert(doc: &mut Value, path: &str, method: &str, tag: &str, mut op: Value) -> bool {
    let Some(root) = doc.as_object_mut() else {
        return false;
    };
    let taken = root
        .get("paths")
        .and_then(|p| p.get(path))
        .and_then(|item| item.get(method))
        .is_some();
    if taken {
        return false;
    }
    let wanted = op["operationId"].as_str().unwrap_or("operation").to_owned();
    let id = unique_id(root.get("paths"), &wanted);
    op["operationId"] = Value::String(id);
    op["tags"] = json!([tag]);
    let tags = root.entry("tags").or_insert_with(|| json!([]));
    if let Some(tags) = tags.as_array_mut()
        && !tags.iter().any(|t| t["name"] == tag)
    {
        tags.push(json!({ "name": tag }));
    }
    let paths = root.entry("paths").or_insert_with(|| json!({}));
    let Some(paths) = paths.as_object_mut() else {
        return false;
    };
    let item = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
    if let Some(item) = item.as_object_mut() {
        item.insert(method.to_owned(), op);
    }
    true
}

/// Puts `schemas` into `components.schemas` (a name already there is kept).
pub(super) fn add_schemas(
    doc: &mut Value,
    schemas: impl IntoIterator<Item = (&'static str, Value)>,
) {
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    let components = root.entry("components").or_insert_with(|| json!({}));
    let Some(components) = components.as_object_mut() else {
        return;
    };
    let map = components.entry("schemas").or_insert_with(|| json!({}));
    if let Some(map) = map.as_object_mut() {
        for (name, schema) in schemas {
            map.entry(name).or_insert(schema);
        }
    }
}

/// `wanted`, or `wanted_2`, `wanted_3`, … if an operation of `paths` already has it.
fn unique_id(paths: Option<&Value>, wanted: &str) -> String {
    let taken = |id: &str| {
        paths.and_then(Value::as_object).is_some_and(|paths| {
            paths.values().filter_map(Value::as_object).any(|item| {
                item.values()
                    .any(|op| op.get("operationId").and_then(Value::as_str) == Some(id))
            })
        })
    };
    if !taken(wanted) {
        return wanted.to_owned();
    }
    (2usize..)
        .map(|n| format!("{wanted}_{n}"))
        .find(|id| !taken(id))
        .unwrap_or_else(|| wanted.to_owned())
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(super) fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `text` on one line and cut as [`bounded`] cuts it: a server's name, URI or description put
/// in a list a model reads, where a line break would let it write lines of its own.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    bounded(&flat, max)
}
