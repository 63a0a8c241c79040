//! A server's MCP resources over HTTP, through the caller's own session:
//! `GET {server}/resources` (every page of `resources/list`), `GET {server}/resources/templates`,
//! `GET {server}/resources/read?uri=` and `POST {server}/resources/read` (`{"uri": …}`, the
//! operation a model calls), mapped like tool results, and `GET {server}/resources/raw?uri=`:
//! the first content's bytes under its own `Content-Type`. A server that did not declare the
//! `resources` capability has none of them (404).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rmcp::model::{ReadResourceResult, ResourceContents};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::reply::{MediaType, data_url_type, is_base64};
use super::session::{self, Opened, server_of};
use super::{reply, tools};
use crate::servers::Server;

/// Longest URI accepted: MCP URIs name things, they do not carry them.
const MAX_URI_BYTES: usize = 8 * 1024;

/// The caller's session of the server, if it offers resources.
async fn open(state: &AppState, server: &Server, headers: &HeaderMap) -> Result<Opened, ApiError> {
    session::open_offering(state, server, headers, session::Offering::Resources).await
}

pub(super) async fn list(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let server = server_of(state, params)?;
    let opened = open(state, &server, headers).await?;
    let name = server.name();
    let listed = session::run(state, &server, &opened, "resources/list", async {
        let list = opened.session.list_resources().await;
        list.map_err(|e| session::upstream_error(name, "resources/list", e))
    })
    .await?;
    Ok(Json(json!({ "resources": listed })).into_response())
}

/// `GET {server}/resources/templates`: every page of `resources/templates/list`.
pub async fn templates(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let server = server_of(&state, &params)?;
    let opened = open(&state, &server, &headers).await?;
    let name = server.name();
    let what = "resources/templates/list";
    let listed = session::run(&state, &server, &opened, what, async {
        let list = opened.session.list_resource_templates().await;
        list.map_err(|e| session::upstream_error(name, what, e))
    })
    .await?;
    Ok(Json(json!({ "resourceTemplates": listed })).into_response())
}

/// `GET {server}/resources/read?uri=…`.
pub async fn read_get(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let server = server_of(&state, &params)?;
    let uri = uri_in_query(query.as_deref())?;
    let result = read(&state, &server, &headers, &uri).await?;
    Ok(Json(read_value(server.name(), &uri, result)?).into_response())
}

/// `POST {server}/resources/read` with `{"uri": …}`: what a model calls.
pub async fn read_post(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let server = server_of(&state, &params)?;
    let body = body.map_err(|r| body_error(&state, r))?;
    tools::json_body(&headers, &body)?;
    let uri = match tools::parse_body(&body)?.get("uri") {
        Some(Value::String(uri)) => checked_uri(uri)?,
        _ => {
            return Err(ApiError::Unprocessable {
                message: "give the resource's URI as {\"uri\": \"…\"}".into(),
                data: None,
            });
        }
    };
    let result = read(&state, &server, &headers, &uri).await?;
    Ok(Json(read_value(server.name(), &uri, result)?).into_response())
}

/// `GET {server}/resources/raw?uri=…`: the first content's bytes with its MIME type, so a
/// browser or an `<img>` can use a resource directly.
pub async fn raw(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let server = server_of(&state, &params)?;
    let uri = uri_in_query(query.as_deref())?;
    let result = read(&state, &server, &headers, &uri).await?;
    let Some(first) = result.contents.into_iter().next() else {
        return Err(ApiError::NotFound(format!(
            "resource '{}' of server '{}' has no contents",
            shown(&uri),
            server.name()
        )));
    };
    let (bytes, content_type) = match first {
        ResourceContents::TextResourceContents {
            text, mime_type, ..
        } => (
            Bytes::from(text),
            ContentType::of_text(mime_type.as_deref()),
        ),
        ResourceContents::BlobResourceContents {
            blob, mime_type, ..
        } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(blob.trim())
                .map_err(|e| ApiError::BadGateway {
                    message: format!(
                        "server '{}' sent resource '{}' as a blob that is not base64: {e}",
                        server.name(),
                        shown(&uri)
                    ),
                    data: None,
                })?;
            (
                Bytes::from(bytes),
                ContentType::of_blob(mime_type.as_deref()),
            )
        }
        _ => {
            return Err(ApiError::BadGateway {
                message: format!(
                    "server '{}' sent resource '{}' in a form this mcpo does not know",
                    server.name(),
                    shown(&uri)
                ),
                data: None,
            });
        }
    };
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.value),
            // The bytes and their type come from the upstream: a browser must neither guess
            // another type nor run what they hold (an HTML or SVG resource) as mcpo's origin.
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'"),
            ),
        ],
        bytes,
    )
        .into_response();
    if !content_type.inline {
        // Nor open it as a page at all: a browser that ignores the CSP `sandbox` would run it.
        // An `<img>`, `<audio>` or `fetch` ignores the disposition and still gets the bytes.
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    Ok(response)
}

/// The `Content-Type` `/resources/raw` answers with, from the upstream's `mimeType`, and
/// whether a browser may show it in place.
struct ContentType {
    value: HeaderValue,
    inline: bool,
}

impl ContentType {
    /// A text content: its type, with `charset=utf-8` added to a `text/*` type without one
    /// (MCP text is UTF-8); `text/plain; charset=utf-8` when it has none, or one that is not a
    /// valid media type.
    fn of_text(mime: Option<&str>) -> Self {
        match mime.and_then(MediaType::parse) {
            // MCP text is UTF-8 whatever charset the server names: a `text/*` type, or one
            // that names a charset, says `charset=utf-8` (a wrong one, UTF-7 say, would have
            // a browser read other characters than were sent).
            Some(m) if m.essence.starts_with("text/") || m.has_charset => {
                let mut value = m.essence.clone();
                for p in &m.others {
                    value.push_str("; ");
                    value.push_str(p);
                }
                value.push_str("; charset=utf-8");
                Self::new(&value, &m.essence)
            }
            Some(m) => Self::new(m.text, &m.essence),
            None => Self::new("text/plain; charset=utf-8", "text/plain"),
        }
    }

    /// A blob: its type, or `application/octet-stream` when it has none or one that is not
    /// a valid media type.
    fn of_blob(mime: Option<&str>) -> Self {
        match mime.and_then(MediaType::parse) {
            Some(m) => Self::new(m.text, &m.essence),
            None => Self::new("application/octet-stream", "application/octet-stream"),
        }
    }

    fn new(text: &str, essence: &str) -> Self {
        Self {
            value: HeaderValue::from_str(text)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
            inline: shown_in_place(essence),
        }
    }
}

/// Whether a browser shows a resource of this (lowercased) type in place without running
/// anything: images other than SVG, audio, video, plain text, CSV, Markdown and JSON. Any other
/// type (HTML, SVG, XML, JavaScript, PDF, …) is sent as an attachment.
fn shown_in_place(essence: &str) -> bool {
    let passive_image = essence.starts_with("image/") && !essence.contains("svg");
    passive_image
        || essence.starts_with("audio/")
        || essence.starts_with("video/")
        || matches!(
            essence,
            "text/plain" | "text/csv" | "text/markdown" | "application/json"
        )
}

/// `resources/read` of `uri` on the caller's session.
async fn read(
    state: &AppState,
    server: &Server,
    headers: &HeaderMap,
    uri: &str,
) -> Result<ReadResourceResult, ApiError> {
    let opened = open(state, server, headers).await?;
    let name = server.name();
    session::run(state, server, &opened, "resources/read", async {
        let read = opened.session.read_resource(uri).await;
        read.map_err(|e| session::upstream_error(name, "resources/read", e))
    })
    .await
}

/// The `uri` of a query string (`+` a space, percent-decoded), checked. A decoding that is
/// not UTF-8 is a 422: decoded leniently (U+FFFD for each bad byte) it would read another URI
/// than the one asked for.
fn uri_in_query(query: Option<&str>) -> Result<String, ApiError> {
    let raw = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("uri="));
    let Some(raw) = raw else {
        return Err(ApiError::Unprocessable {
            message: "give the resource's URI as ?uri=… (percent-encoded)".into(),
            data: None,
        });
    };
    let spaced = raw.replace('+', " ");
    match percent_encoding::percent_decode_str(&spaced).decode_utf8() {
        Ok(uri) => checked_uri(&uri),
        Err(_) => Err(ApiError::Unprocessable {
            message: format!(
                "'{}' is not a resource URI: its percent-decoded bytes are not UTF-8",
                shown(raw)
            ),
            data: None,
        }),
    }
}

/// `uri` when it is an absolute URI (a scheme, then anything) of reasonable length; 422 else.
fn checked_uri(uri: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::Unprocessable {
        message: format!("'{}' is not a resource URI: {why}", shown(uri)),
        data: None,
    };
    if uri.len() > MAX_URI_BYTES {
        return Err(bad(&format!("longer than {MAX_URI_BYTES} bytes")));
    }
    if uri.chars().any(char::is_control) {
        return Err(bad("it holds control characters"));
    }
    url::Url::parse(uri).map_err(|e| bad(&format!("{e} (an absolute URI like file:///a.txt)")))?;
    Ok(uri.to_owned())
}

/// Most characters of a caller's or server's text (a URI, a prompt name) repeated in an error.
const MAX_SHOWN_CHARS: usize = 100;

/// `text` as an error message repeats it: control characters escaped, at most
/// [`MAX_SHOWN_CHARS`] characters of it, `…` when cut.
pub(super) fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_SHOWN_CHARS).collect::<String>();
    let cut = out.len() < text.len();
    out = out.escape_debug().to_string();
    if cut {
        out.push('…');
    }
    out
}

fn body_error(state: &AppState, rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(state.options.max_body_bytes)
    } else {
        ApiError::BadRequest {
            message: format!("cannot read the request body: {rejection}"),
            data: None,
        }
    }
}

/// A read result as tool results are mapped: text as text (JSON when it is JSON), blobs as
/// `data:` URLs (of the blob's `type/subtype` when it is a valid media type, else
/// `application/octet-stream`); one content unwrapped, several as an array in order. A blob
/// that is not base64 is a 502, as for `/resources/raw`: put in a `data:` URL as it is, a
/// `"` or `<` in it would be markup in a client that writes the URL into a page.
fn read_value(server: &str, uri: &str, result: ReadResourceResult) -> Result<Value, ApiError> {
    let mut contents = Vec::with_capacity(result.contents.len());
    for c in result.contents {
        if let ResourceContents::BlobResourceContents { blob, .. } = &c
            && !is_base64(blob)
        {
            return Err(ApiError::BadGateway {
                message: format!(
                    "server '{server}' sent resource '{}' as a blob that is not base64",
                    shown(uri)
                ),
                data: None,
            });
        }
        contents.push(contents_value(c));
    }
    Ok(match contents.len() {
        1 => contents.remove(0),
        _ => Value::Array(contents),
    })
}

fn contents_value(contents: ResourceContents) -> Value {
    match contents {
        ResourceContents::TextResourceContents { text, .. } => reply::text_value(text),
        ResourceContents::BlobResourceContents {
            blob, mime_type, ..
        } => {
            // Only a valid type's `type/subtype`: a server's `text/html,<script>…` would end
            // the URL's type early and make the rest an HTML document.
            let mime = data_url_type(mime_type.as_deref().unwrap_or_default());
            Value::String(reply::data_url(&mime, &blob))
        }
        // Kinds newer than this code: as MCP sent them.
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_must_be_absolute() {
        assert!(checked_uri("demo://resource/static/document/a.md").is_ok());
        assert!(checked_uri("file:///tmp/a b").is_ok());
        for bad in [
            "",
            "relative/path",
            "a\nb",
            &format!("x://{}", "a".repeat(9000)),
        ] {
            assert!(
                matches!(checked_uri(bad), Err(ApiError::Unprocessable { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            uri_in_query(Some("uri=a%3A%2F%2Fb%3Fc%3Dd")).unwrap(),
            "a://b?c=d"
        );
        assert!(uri_in_query(Some("url=x://y")).is_err());
        assert_eq!(
            uri_in_query(Some("a=1&uri=x%3A%2F%2Fh%2Fa+b")).unwrap(),
            "x://h/a b"
        );
        assert!(uri_in_query(Some("uri=x%3A%2F%2F%FF")).is_err());
    }

    #[test]
    fn blobs_must_be_base64() {
        for ok in ["", "iVBORw0K", "YQ==", "YWI=", "a+/b"] {
            assert!(is_base64(ok), "{ok:?}");
        }
        for bad in ["not base64!!", "YQ===", "a\"><img", "a b", "a-_b", "YQ==YQ"] {
            assert!(!is_base64(bad), "{bad:?}");
        }
    }

    #[test]
    fn errors_show_a_bounded_escaped_text() {
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = "é".repeat(500);
        assert_eq!(shown(&long), format!("{}…", "é".repeat(MAX_SHOWN_CHARS)));
        assert_eq!(shown("x"), "x");
    }

    #[test]
    fn raw_content_types_are_valid_and_active_ones_are_attachments() {
        let text = |m: Option<&str>| {
            let t = ContentType::of_text(m);
            (t.value.to_str().unwrap().to_owned(), t.inline)
        };
        let blob = |m: Option<&str>| {
            let t = ContentType::of_blob(m);
            (t.value.to_str().unwrap().to_owned(), t.inline)
        };
        let s = |v: &str, inline| (v.to_owned(), inline);
        assert_eq!(text(None), s("text/plain; charset=utf-8", true));
        assert_eq!(
            text(Some("text/plain")),
            s("text/plain; charset=utf-8", true)
        );
        assert_eq!(
            text(Some("text/csv; charset=ascii")),
            s("text/csv; charset=utf-8", true)
        );
        assert_eq!(text(Some("application/json")), s("application/json", true));
        assert_eq!(
            text(Some("text/html")),
            s("text/html; charset=utf-8", false)
        );
        assert_eq!(
            text(Some("TEXT/HTML")),
            s("text/html; charset=utf-8", false)
        );
        assert_eq!(
            text(Some("text/plain; charset=utf-7")),
            s("text/plain; charset=utf-8", true)
        );
        assert_eq!(
            text(Some("text/markdown; variant=GFM; Charset=latin1")),
            s("text/markdown; variant=GFM; charset=utf-8", true)
        );
        assert_eq!(
            text(Some("application/json; charset=utf-16")),
            s("application/json; charset=utf-8", true)
        );
        assert_eq!(text(Some("image/svg+xml")), s("image/svg+xml", false));
        assert!(!text(Some("application/xhtml+xml")).1);
        assert!(!text(Some("text/javascript")).1);
        for bad in [
            "text/html, image/png",
            "text/plain\r\nSet-Cookie: a=b",
            "text/plain; x",
            "text",
            "/x",
            "text/pläin",
            "",
        ] {
            assert_eq!(
                text(Some(bad)),
                s("text/plain; charset=utf-8", true),
                "{bad:?}"
            );
            assert_eq!(
                blob(Some(bad)),
                s("application/octet-stream", false),
                "{bad:?}"
            );
        }
        assert_eq!(blob(Some("image/png")), s("image/png", true));
        assert_eq!(blob(Some("application/pdf")), s("application/pdf", false));
        assert_eq!(blob(None), s("application/octet-stream", false));
    }
}
