//! MCP tool results and errors → HTTP bodies and statuses.
//!
//! The mapping keeps everything the tool returned: `structuredContent` when present; otherwise
//! each content item becomes a JSON value (text parsed as JSON when it is JSON, images and audio
//! as `data:` URLs, embedded resources and resource links as objects), a single item unwrapped,
//! several as an array in order.

use rmcp::model::{CallToolResult, ContentBlock, ErrorCode, ResourceContents};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::upstream::CallError;

/// Bytes of text and base64 data in `result`: what its answer will hold at least, to size
/// the answer's buffer once (a 15 MB text grew it by doubling: 16 MB of copies and up to
/// twice the memory).
pub fn size_hint(result: &CallToolResult) -> usize {
    result
        .content
        .iter()
        .map(|item| match item {
            ContentBlock::Text(t) => t.text.len(),
            ContentBlock::Image(i) => i.data.len(),
            ContentBlock::Audio(a) => a.data.len(),
            _ => 0,
        })
        .sum()
}

/// `value` as a JSON answer, serialized into a buffer of about `hint` bytes (see
/// [`size_hint`]); like axum's `Json`, a value that cannot be serialized is a 500.
pub fn json_answer(value: &Value, hint: usize) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Escapes (a newline is two bytes) and the quotes: 1/16 more.
    let mut body = Vec::with_capacity(hint.saturating_add(hint / 16).max(128));
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize the result: {e}"),
        )
            .into_response(),
    }
}

/// The body of a successful call, or the 500 of a tool that reported `isError`.
pub fn tool_result(result: CallToolResult) -> Result<Value, ApiError> {
    if result.is_error == Some(true) {
        let message = error_text(&result.content);
        let data = result.structured_content.or_else(|| {
            // Keep non-text items (an error screenshot, say) rather than dropping them.
            let rich: Vec<Value> = result
                .content
                .iter()
                .filter(|c| !matches!(c, ContentBlock::Text(_)))
                .map(content_value)
                .collect();
            (!rich.is_empty()).then_some(Value::Array(rich))
        });
        return Err(ApiError::ToolError { message, data });
    }
    // Image and audio data go into `data:…;base64,` URLs: anything but base64 there (a `"` or
    // `<`) would be markup in a client that writes the URL into a page.
    let not_base64 = result.content.iter().any(|c| match c {
        ContentBlock::Image(i) => !is_base64(&i.data),
        ContentBlock::Audio(a) => !is_base64(&a.data),
        _ => false,
    });
    if not_base64 {
        return Err(ApiError::BadGateway {
            message: "the tool's result has an image or audio whose data is not base64".into(),
            data: None,
        });
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    let mut content = result.content;
    Ok(match content.len() {
        1 => content_value_owned(content.remove(0)),
        _ => Value::Array(content.iter().map(content_value).collect()),
    })
}

/// Gives each `resource_link` item of a mapped tool result (`value`, a result without
/// `structuredContent`) the URL of its `resources/read` route, so a client can follow it
/// without speaking MCP. `base` is the server's route prefix (`/{server}` or `` in
/// single-server mode, after `--root-path` and `--path-prefix`).
pub(super) fn link_resources(value: &mut Value, base: &str) {
    let items: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        single => vec![single],
    };
    for item in items {
        if let Value::Object(map) = item
            && map.get("type").and_then(Value::as_str) == Some("resource_link")
            && let Some(uri) = map.get("uri").and_then(Value::as_str)
        {
            let encoded: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
            let url = format!("{base}/resources/read?uri={encoded}");
            map.insert("url".into(), Value::String(url));
        }
    }
}

/// The tool's own words for an `isError` result: its text items joined, used as-is (no
/// "Unexpected error" wrapping as in Python mcpo).
fn error_text(content: &[ContentBlock]) -> String {
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    if texts.is_empty() {
        "the tool reported an error without a message".to_owned()
    } else {
        texts.join("\n")
    }
}

/// Moves a text item's string instead of copying it: the common single-text result.
fn content_value_owned(item: ContentBlock) -> Value {
    match item {
        ContentBlock::Text(t) => text_value(t.text),
        other => content_value(&other),
    }
}

pub(super) fn content_value(item: &ContentBlock) -> Value {
    match item {
        ContentBlock::Text(t) => text_value(t.text.clone()),
        ContentBlock::Image(i) => Value::String(data_url(&i.mime_type, &i.data)),
        ContentBlock::Audio(a) => Value::String(data_url(&a.mime_type, &a.data)),
        ContentBlock::Resource(r) => resource_value(&r.resource),
        ContentBlock::ResourceLink(link) => {
            let mut v = serde_json::to_value(link).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                map.insert("type".into(), json!("resource_link"));
            }
            v
        }
        // Content kinds newer than this code: pass them on as MCP sent them.
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    }
}

/// Text that is JSON becomes that JSON value (a tool returning `{"a":1}` as text yields an
/// object); anything else stays a string.
pub(super) fn text_value(text: String) -> Value {
    let trimmed = text.trim_start();
    let looks_json = matches!(
        trimmed.as_bytes().first(),
        Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
    );
    if looks_json && let Ok(v) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    Value::String(text)
}

pub(super) fn data_url(mime: &str, base64: &str) -> String {
    // Only a valid type's `type/subtype`: a server's `text/html,<script>…` would end the
    // URL's type early and make the rest an HTML document.
    let mime = data_url_type(mime);
    let mime = if mime.is_empty() {
        "application/octet-stream"
    } else {
        &mime
    };
    format!("data:{mime};base64,{base64}")
}

/// A `mimeType` that is a valid media type (`type/subtype`, then `;` parameters of visible
/// ASCII): its text as given and its lowercased `type/subtype`. A server's `mimeType` goes
/// into a response header: anything else (CR/LF, a list of types, non-ASCII) is not used.
pub(super) struct MediaType<'a> {
    pub text: &'a str,
    pub essence: String,
    pub has_charset: bool,
    /// The parameters other than `charset`, as given (`name=value`).
    pub others: Vec<&'a str>,
}

impl<'a> MediaType<'a> {
    pub(super) fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim_matches([' ', '\t']);
        if text.len() > 256
            || !text
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return None;
        }
        let mut parts = text.split(';');
        let essence = parts.next()?.trim_matches([' ', '\t']).to_ascii_lowercase();
        let (kind, sub) = essence.split_once('/')?;
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        if !token(kind) || !token(sub) {
            return None;
        }
        let (mut has_charset, mut others) = (false, Vec::new());
        for param in parts {
            let (name, _) = param.split_once('=')?;
            let name = name.trim_matches([' ', '\t']);
            if !token(name) {
                return None;
            }
            if name.eq_ignore_ascii_case("charset") {
                has_charset = true;
            } else {
                others.push(param.trim_matches([' ', '\t']));
            }
        }
        Some(Self {
            text,
            essence,
            has_charset,
            others,
        })
    }
}

/// The type a server's `mimeType` gives a `data:` URL: its lowercased `type/subtype` when it
/// is a valid media type, else empty (`application/octet-stream`). Never what would end the
/// URL's type early (`text/html,<script>…`).
pub(super) fn data_url_type(mime: &str) -> String {
    MediaType::parse(mime)
        .map(|m| m.essence)
        .unwrap_or_default()
}

/// Whether `text` is made of the standard base64 alphabet and its `=` padding only (what a
/// `data:…;base64,` URL may hold); checked without decoding it.
pub(super) fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn resource_value(resource: &ResourceContents) -> Value {
    let mut map = Map::new();
    match resource {
        ResourceContents::TextResourceContents {
            uri,
            mime_type,
            text,
            ..
        } => {
            map.insert("uri".into(), json!(uri));
            if let Some(m) = mime_type {
                map.insert("mimeType".into(), json!(m));
            }
            map.insert("text".into(), json!(text));
        }
        ResourceContents::BlobResourceContents {
            uri,
            mime_type,
            blob,
            ..
        } => {
            map.insert("uri".into(), json!(uri));
            if let Some(m) = mime_type {
                map.insert("mimeType".into(), json!(m));
            }
            map.insert("blob".into(), json!(blob));
        }
        other => return serde_json::to_value(other).unwrap_or(Value::Null),
    }
    Value::Object(map)
}

/// JSON-RPC error codes (rmcp's names for them) and transport failures → HTTP statuses.
pub fn call_error(server: &str, tool: &str, err: CallError) -> ApiError {
    match err {
        CallError::Mcp(data) => {
            let message = data.message.to_string();
            let extra = data.data.clone();
            match data.code {
                ErrorCode::PARSE_ERROR | ErrorCode::INVALID_REQUEST => ApiError::BadRequest {
                    message,
                    data: extra,
                },
                ErrorCode::METHOD_NOT_FOUND | ErrorCode::RESOURCE_NOT_FOUND => {
                    ApiError::NotFound(message)
                }
                ErrorCode::INVALID_PARAMS => ApiError::Unprocessable {
                    message,
                    data: extra,
                },
                ErrorCode(code) => ApiError::BadGateway {
                    message,
                    data: Some(json!({ "code": code, "data": extra })),
                },
            }
        }
        CallError::Timeout(after) => ApiError::GatewayTimeout(format!(
            "tool '{tool}' on server '{server}' did not answer within {:.1} s; the call was cancelled upstream",
            after.as_secs_f64()
        )),
        CallError::Disconnected(reason) => ApiError::BadGateway {
            message: format!(
                "the connection to server '{server}' was lost during the call ({reason}); it was not retried because the tool may have run"
            ),
            data: None,
        },
        CallError::NotSent(reason) => ApiError::Unavailable {
            message: format!("server '{server}' is reconnecting ({reason}); retry shortly"),
            retry_after_secs: 1,
        },
        CallError::Forbidden(reason) => ApiError::Forbidden(reason),
        CallError::Refused(reason) => ApiError::BadGateway {
            message: format!(
                "server '{server}' refused the credentials mcpo sent it: {}",
                crate::support::redact::urls_in(&reason)
            ),
            data: None,
        },
        CallError::Other(reason) => ApiError::BadGateway {
            message: format!("server '{server}' failed to answer: {reason}"),
            data: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ContentBlock as Content, ErrorData};

    fn ok(items: Vec<ContentBlock>) -> Value {
        tool_result(CallToolResult::success(items)).expect("success")
    }

    /// A tool's image or audio goes into a `data:` URL: only a valid media type's
    /// `type/subtype` and base64 data, so the URL cannot become an HTML document or carry
    /// markup into a client that writes it into a page.
    #[test]
    fn a_tools_image_or_audio_makes_a_data_url_of_a_valid_type_and_base64_only() {
        let png = "iVBORw0KGgo=";
        assert_eq!(
            ok(vec![Content::image(
                png,
                "text/html,<script>alert(1)</script>"
            )]),
            json!(format!("data:application/octet-stream;base64,{png}"))
        );
        assert_eq!(
            ok(vec![Content::image(png, "Image/PNG; x=1")]),
            json!(format!("data:image/png;base64,{png}"))
        );
        for item in [
            Content::image("\"><img src=x onerror=alert(1)>", "image/png"),
            Content::audio("not base64!", "audio/wav"),
        ] {
            let refused = tool_result(CallToolResult::success(vec![item]));
            assert!(
                matches!(&refused, Err(ApiError::BadGateway { message, .. }) if message.contains("not base64")),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn links_get_their_read_route() {
        let mut v = json!(["text", {"type": "resource_link", "uri": "demo://a b?c", "name": "a"}]);
        link_resources(&mut v, "/srv");
        assert_eq!(v[1]["url"], "/srv/resources/read?uri=demo%3A%2F%2Fa+b%3Fc");
        let mut one = json!({"type": "resource_link", "uri": "x://y"});
        link_resources(&mut one, "");
        assert_eq!(one["url"], "/resources/read?uri=x%3A%2F%2Fy");
    }

    #[test]
    fn single_text_that_is_json_is_parsed() {
        assert_eq!(ok(vec![Content::text("{\"a\": 1}")]), json!({"a": 1}));
        assert_eq!(ok(vec![Content::text("5")]), json!(5));
        assert_eq!(ok(vec![Content::text("not json {")]), json!("not json {"));
        assert_eq!(ok(vec![Content::text("true story")]), json!("true story"));
    }

    #[test]
    fn images_become_data_urls_and_items_keep_their_order() {
        let v = ok(vec![
            Content::text("first"),
            Content::image("AAAA", "image/png"),
            ContentBlock::Resource(rmcp::model::EmbeddedResource::new(ResourceContents::text(
                "body",
                "fixture://n",
            ))),
        ]);
        assert_eq!(
            v,
            json!(["first", "data:image/png;base64,AAAA", {"uri": "fixture://n", "mimeType": "text/plain", "text": "body"}])
        );
    }

    #[test]
    fn structured_content_wins() {
        let mut r = CallToolResult::success(vec![Content::text("ignored")]);
        r.structured_content = Some(json!({"x": 1}));
        assert_eq!(tool_result(r).expect("ok"), json!({"x": 1}));
    }

    #[test]
    fn is_error_is_a_500_with_the_tools_own_text() {
        let r = CallToolResult::error(vec![Content::text("boom")]);
        match tool_result(r) {
            Err(ApiError::ToolError { message, .. }) => assert_eq!(message, "boom"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_codes_map_to_statuses() {
        let e = |code| CallError::Mcp(ErrorData::new(ErrorCode(code), "m", None));
        assert!(matches!(
            call_error("s", "t", e(-32700)),
            ApiError::BadRequest { .. }
        ));
        assert!(matches!(
            call_error("s", "t", e(-32600)),
            ApiError::BadRequest { .. }
        ));
        assert!(matches!(
            call_error("s", "t", e(-32601)),
            ApiError::NotFound(_)
        ));
        assert!(matches!(
            call_error("s", "t", e(-32602)),
            ApiError::Unprocessable { .. }
        ));
        assert!(matches!(
            call_error("s", "t", e(-32603)),
            ApiError::BadGateway { .. }
        ));
        // Any other code reaches the caller as the number the server sent.
        match call_error("s", "t", e(-32001)) {
            ApiError::BadGateway { data, .. } => {
                assert_eq!(data, Some(json!({ "code": -32001, "data": null })))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            call_error(
                "s",
                "t",
                CallError::Timeout(std::time::Duration::from_secs(1))
            ),
            ApiError::GatewayTimeout(_)
        ));
    }
}
