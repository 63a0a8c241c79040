//! What a hostile MCP server's resources, or a hostile caller's URIs, can do through
//! `/resources/raw` and `/resources/read`: the fixture's `fixture://hostile/…` contents (an SVG
//! with a script, HTML under an odd type, a list of types, a type with CR/LF, a blob that is
//! not base64) are served so that a browser neither runs nor renders them as mcpo's origin,
//! every `Content-Type` is a valid media type, and errors do not echo what they were given.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::resources::fixture_with_resources;

fn raw_path(uri: &str) -> String {
    let q: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
    format!("/fx/resources/raw?uri={q}")
}

#[tokio::test]
async fn hostile_resource_types_are_never_rendered_as_mcpos_origin() {
    let b = start_config(json!({"fx": fixture_with_resources()}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;

    // (URI, Content-Type served, whether it must be an attachment)
    let cases = [
        ("fixture://page.html", "text/html; charset=utf-8", true),
        ("fixture://hostile/svg", "image/svg+xml", true),
        (
            "fixture://hostile/upper-html",
            "TEXT/HTML; charset=utf-8",
            true,
        ),
        // Not a media type: the bytes are served as plain text, never as HTML.
        (
            "fixture://hostile/two-types",
            "text/plain; charset=utf-8",
            false,
        ),
        (
            "fixture://hostile/crlf-type",
            "text/plain; charset=utf-8",
            false,
        ),
        ("fixture://items/3", "text/plain; charset=utf-8", false),
        ("fixture://blob/pixel.png", "image/png", false),
    ];
    for (uri, content_type, attachment) in cases {
        let r = get(m, &raw_path(uri), None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {r:?}");
        assert_eq!(r.header("content-type"), Some(content_type), "{uri}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{uri}");
        assert_eq!(
            r.header("content-security-policy"),
            Some("sandbox; default-src 'none'"),
            "{uri}"
        );
        assert_eq!(
            r.header("content-disposition"),
            attachment.then_some("attachment"),
            "{uri}: {:?}",
            r.headers
        );
        assert!(r.header("set-cookie").is_none(), "{uri}");
    }

    // A blob that is not base64: 502 with a readable reason.
    let r = get(m, &raw_path("fixture://hostile/bad-base64"), None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{r:?}");
    assert!(
        r.json()["detail"]["message"]
            .as_str()
            .is_some_and(|s| s.contains("not base64")),
        "{r:?}"
    );
}
