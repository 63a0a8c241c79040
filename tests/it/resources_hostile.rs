//! What a hostile MCP server's resources, or a hostile caller's URIs, can do through
//! `/resources/raw` and `/resources/read`: the fixture's `fixture://hostile/…` contents (an SVG
//! with a script, HTML under an odd type, a list of types, a type with CR/LF, a blob that is
//! not base64) are served so that a browser neither runs nor renders them as mcpo's origin,
//! every `Content-Type` is a valid media type, and errors do not echo what they were given.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::multi_user::{SECRET, token, uuid4};
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
            "text/html; charset=utf-8",
            true,
        ),
        // MCP text is UTF-8, whatever charset the server names.
        ("fixture://hostile/utf7", "text/plain; charset=utf-8", false),
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

    // A blob's type that would end a data: URL's type early (`text/html,<script>…`) is not
    // used: the read maps the blob to a data: URL of a valid type only.
    let q: String = url::form_urlencoded::byte_serialize(b"fixture://hostile/data-type").collect();
    let r = get(m, &format!("/fx/resources/read?uri={q}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.json(),
        json!("data:application/octet-stream;base64,PHNjcmlwdD4=")
    );
    let r = get(m, &raw_path("fixture://hostile/data-type"), None).await;
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-disposition"), Some("attachment"));

    // A blob that is not base64: 502 with a readable reason, raw or read (where it would
    // otherwise be put into a data: URL as it is).
    let q: String = url::form_urlencoded::byte_serialize(b"fixture://hostile/bad-base64").collect();
    for path in [
        raw_path("fixture://hostile/bad-base64"),
        format!("/fx/resources/read?uri={q}"),
    ] {
        let r = get(m, &path, None).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{path}: {r:?}");
        assert!(
            r.json()["detail"]["message"]
                .as_str()
                .is_some_and(|s| s.contains("not base64")),
            "{r:?}"
        );
    }
    let r = post(
        m,
        "/fx/resources/read",
        None,
        json!({"uri": "fixture://hostile/bad-base64"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{r:?}");
}

#[tokio::test]
async fn refusals_do_not_echo_a_long_uri_or_prompt_name() {
    let b = start_config(json!({"fx": fixture_with_resources()}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;

    // Over the URI limit (8 KiB), through each route that takes one.
    let long = format!("fixture://items/{}", "a".repeat(20_000));
    let q: String = url::form_urlencoded::byte_serialize(long.as_bytes()).collect();
    let replies = [
        get(m, &format!("/fx/resources/read?uri={q}"), None).await,
        get(m, &format!("/fx/resources/raw?uri={q}"), None).await,
        post(m, "/fx/resources/read", None, json!({ "uri": long })).await,
    ];
    for r in replies {
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.status);
        let message = r.json()["detail"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("longer than 8192 bytes"), "{message:.300}");
        assert!(message.len() < 400, "{} bytes echoed", message.len());
    }
    // A control character is refused and shown escaped, never raw.
    let r = get(m, "/fx/resources/read?uri=fixture%3A%2F%2Fa%0D%0Ab", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = r.json()["detail"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(r"a\r\nb") && !message.contains('\n'),
        "{message}"
    );

    // A percent-encoding that is not UTF-8 is refused, not read as another URI (U+FFFD).
    let r = get(
        m,
        "/fx/resources/read?uri=fixture%3A%2F%2Fecho%2Fa%FFb",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let message = r.json()["detail"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("UTF-8"), "{message}");
    let r = get(
        m,
        "/fx/resources/read?uri=fixture%3A%2F%2Fecho%2Fa%C3%A9+b",
        None,
    )
    .await;
    assert_eq!(r.json(), json!("aé b"), "{r:?}");

    // An unknown prompt's name, as long as a URL allows.
    let name = "p".repeat(6_000);
    let r = post(m, &format!("/fx/prompts/{name}"), None, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let message = r.json()["detail"]["message"].as_str().unwrap().to_owned();
    assert!(message.len() < 400, "{} bytes echoed", message.len());
}

/// `POST {server}/prompts/{name}` looks the prompt up with a `prompts/list` (every page) when
/// the session's listing does not have it, as by default (prompts not exposed): that listing
/// takes a slot of the server's limiter and is counted like any request, so a flood of prompt
/// requests is bounded like tool calls.
#[tokio::test]
async fn a_prompts_lookup_is_a_counted_request_within_the_limiter() {
    let b = start_config(json!({"fx": fixture_with_resources()}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;
    let r = post(m, "/fx/prompts/greet", None, json!({"name": "Ada"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = post(m, "/fx/prompts/nothing", None, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let metrics = get(m, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .text
            .contains(r#"mcpo_tool_calls_total{server="fx",tool="prompts/list",status="200"} 2"#),
        "{}",
        metrics.text
    );
}

/// Multi-user: after a user's session listed resources and prompts, the combined root
/// document that callers without a session see has the routes, never those names, and no
/// resource or prompt route answers a caller without credentials.
#[tokio::test]
async fn the_shared_combined_document_names_no_users_resources() {
    let mut fx = fixture_with_resources();
    fx["expose"] = json!(["tools", "resources", "prompts"]);
    fx["multi_user"] = json!(true);
    fx["webui_secret_key"] = json!(SECRET);
    let b = start_config(json!({"fx": fx}), &[]);
    let m = &b.mcpo;
    wait_log(
        m,
        &["closing the discovery session"],
        1,
        Duration::from_secs(30),
    )
    .await;
    let alice = format!("Bearer {}", token(&uuid4()));
    let r = get(
        m,
        "/fx/resources/read?uri=fixture%3A%2F%2Fitems%2F1",
        Some(&alice),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let own = get(m, "/fx/openapi.json", Some(&alice)).await;
    assert!(own.text.contains("fixture://items/1"), "{}", own.text);

    let shared = get(m, "/openapi.json", None).await;
    assert_eq!(shared.status, StatusCode::OK);
    assert!(!shared.text.contains("fixture://"), "{}", shared.text);
    assert!(!shared.text.contains("fx_prompt_greet"), "{}", shared.text);
    assert!(
        shared.text.contains("/fx/resources/read"),
        "{}",
        shared.text
    );

    // Without credentials no route reaches a session (not the discovery one, not a user's).
    for path in [
        "/fx/resources",
        "/fx/resources/templates",
        "/fx/resources/read?uri=fixture%3A%2F%2Fitems%2F1",
        "/fx/resources/raw?uri=fixture%3A%2F%2Fitems%2F1",
        "/fx/prompts",
    ] {
        let r = get(m, path, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {r:?}");
    }
    let r = post(m, "/fx/prompts/greet", None, json!({"name": "x"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
}
