//! MCP resources over HTTP (`GET {server}/resources`, `/resources/templates`,
//! `/resources/read?uri=`, `POST /resources/read`, `/resources/raw?uri=`) against the repo's
//! fixture with `FIXTURE_RESOURCES=1` (pages, blobs, several contents, -32002) and the real
//! `@modelcontextprotocol/server-everything` (static and dynamic text/blob resources, templates,
//! `resource_link` tool results, session-scoped resources kept apart per user).

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::multi_user::{SECRET, token, uuid4};

/// The fixture over stdio with its resources and prompts on.
pub(crate) fn fixture_with_resources() -> Value {
    let mut entry = fixture_stdio_entry();
    entry["env"] = json!({"FIXTURE_RESOURCES": "1"});
    entry
}

pub(crate) fn everything_stdio() -> Value {
    let script = peer("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    json!({"command": "node", "args": [script.to_str().unwrap(), "stdio"]})
}

/// A 1x1 PNG: the fixture's `fixture://blob/pixel.png`.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// The bytes of a `data:…;base64,…` URL and its MIME type.
fn data_url(v: &Value) -> (String, Vec<u8>) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a data URL: {v}"));
    let rest = s.strip_prefix("data:").expect("data: URL");
    let (mime, data) = rest.split_once(";base64,").expect(";base64,");
    (mime.to_owned(), b64(data))
}

fn read_path(server: &str, uri: &str) -> String {
    let q: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
    format!("/{server}/resources/read?uri={q}")
}

fn raw_path(server: &str, uri: &str) -> String {
    read_path(server, uri).replace("/resources/read?", "/resources/raw?")
}

async fn bytes_of(mcpo: &Mcpo, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let r = client().get(mcpo.url(path)).send().await.expect("GET");
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, ct, r.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn fixture_resources_every_page_reads_raw_bytes_and_errors() {
    let b = start_config(
        json!({"fx": fixture_with_resources(), "plain": fixture_stdio_entry()}),
        &[],
    );
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;
    m.wait_ok("/plain/openapi.json", Duration::from_secs(30))
        .await;

    // Every page of resources/list (10 per page): 25 items and 3 others, as the server gave them.
    let list = get_ok(m, "/fx/resources").await;
    let resources = list["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 28, "{list}");
    let uris: Vec<&str> = resources
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert!(
        uris.contains(&"fixture://items/25"),
        "the third page is missing: {uris:?}"
    );
    assert_eq!(
        resources[0],
        json!({"uri": "fixture://items/1", "name": "item-1", "title": "Item 1",
               "description": "The 1th item", "mimeType": "text/plain", "size": 6})
    );
    // Templates, one per page.
    let templates = get_ok(m, "/fx/resources/templates").await;
    let names: Vec<&str> = templates["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fixture://items/{id}", "fixture://echo/{text}"]);

    // Text, JSON text, a blob and several contents, mapped like tool results.
    assert_eq!(
        get_ok(m, &read_path("fx", "fixture://items/7")).await,
        json!("item 7")
    );
    assert_eq!(
        get_ok(m, &read_path("fx", "fixture://json/config")).await,
        json!({"answer": 42})
    );
    let blob = get_ok(m, &read_path("fx", "fixture://blob/pixel.png")).await;
    let (mime, bytes) = data_url(&blob);
    assert_eq!((mime.as_str(), &bytes), ("image/png", &b64(PNG_1X1)));
    let multi = get_ok(m, &read_path("fx", "fixture://multi")).await;
    assert_eq!(multi[0], json!("first"));
    assert_eq!(data_url(&multi[1]).1, b64(PNG_1X1));
    // The model's way: POST {"uri": …}.
    let r = post(
        m,
        "/fx/resources/read",
        None,
        json!({"uri": "fixture://echo/hi there"}),
    )
    .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::OK, json!("hi there"))
    );

    // Raw: the bytes themselves with their own Content-Type (a blob's bytes equal the read's).
    let (status, ct, raw) = bytes_of(m, &raw_path("fx", "fixture://blob/pixel.png")).await;
    assert_eq!((status, ct.as_deref()), (StatusCode::OK, Some("image/png")));
    assert_eq!(raw, bytes);
    let (status, ct, raw) = bytes_of(m, &raw_path("fx", "fixture://items/7")).await;
    assert_eq!(
        (status, ct.as_deref(), raw.as_slice()),
        (
            StatusCode::OK,
            Some("text/plain; charset=utf-8"),
            &b"item 7"[..]
        )
    );
    // An HTML resource is served as such, but sandboxed: it cannot run as mcpo's origin.
    let r = get(m, &raw_path("fx", "fixture://page.html"), None).await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.starts_with("sandbox")),
        "{:?}",
        r.headers
    );

    // Unknown URI (MCP -32002) 404; not a URI, or none, 422; a non-JSON POST 415.
    let r = get(m, &read_path("fx", "fixture://nothing/here"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(
        get(m, &raw_path("fx", "fixture://nothing"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = get(m, &read_path("fx", "not a uri"), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("not a resource URI"), "{r:?}");
    assert_eq!(
        get(m, "/fx/resources/read", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = post(
        m,
        "/fx/resources/read",
        None,
        json!({"url": "fixture://items/1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r = send(
        client()
            .post(m.url("/fx/resources/read"))
            .header("content-type", "text/plain")
            .body(r#"{"uri": "fixture://items/1"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r:?}");

    // A server without the resources capability has none of these routes.
    for path in [
        "/plain/resources".to_owned(),
        "/plain/resources/templates".to_owned(),
        read_path("plain", "fixture://items/1"),
        raw_path("plain", "fixture://items/1"),
    ] {
        let r = get(m, &path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {r:?}");
        assert!(r.message().contains("offers no resources"), "{path}: {r:?}");
    }
    let r = post(
        m,
        "/plain/resources/read",
        None,
        json!({"uri": "fixture://items/1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(
        get(m, "/nosuch/resources", None).await.status,
        StatusCode::NOT_FOUND
    );

    // Tools keep their routes: GET on a tool says to POST; POST still calls it.
    let r = get(m, "/fx/echo", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{r:?}");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = post(m, "/fx/echo", None, json!({"text": "still a tool"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

#[tokio::test]
async fn server_everything_resources_templates_blobs_and_resource_links() {
    let b = start_config(json!({"ev": everything_stdio()}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/ev/openapi.json", Duration::from_secs(60)).await;

    let list = get_ok(m, "/ev/resources").await;
    let statics: Vec<&Value> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["uri"]
                .as_str()
                .is_some_and(|u| u.starts_with("demo://resource/static/document/"))
        })
        .collect();
    assert!(!statics.is_empty(), "{list}");
    let doc = statics[0];
    let templates = get_ok(m, "/ev/resources/templates").await;
    let uri_templates: Vec<&str> = templates["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert!(
        uri_templates.contains(&"demo://resource/dynamic/text/{resourceId}")
            && uri_templates.contains(&"demo://resource/dynamic/blob/{resourceId}"),
        "{templates}"
    );

    // A static text document: read as text, raw as its own type with the same text.
    let uri = doc["uri"].as_str().unwrap();
    let text = get_ok(m, &read_path("ev", uri)).await;
    let text = text.as_str().expect("a markdown document is text");
    let (status, ct, raw) = bytes_of(m, &raw_path("ev", uri)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ct.as_deref(),
        Some(format!("{}; charset=utf-8", doc["mimeType"].as_str().unwrap()).as_str())
    );
    assert_eq!(raw, text.as_bytes());

    // A dynamic blob (from the template): the data URL's bytes are the raw bytes.
    let uri = "demo://resource/dynamic/blob/3";
    let (_, from_read) = data_url(&get_ok(m, &read_path("ev", uri)).await);
    let (status, _, raw) = bytes_of(m, &raw_path("ev", uri)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&raw).starts_with("Resource 3: This is a base64 blob"),
        "{raw:?}"
    );
    // The blob text carries the time in seconds: the two reads may straddle one.
    assert_eq!(from_read[..30], raw[..30]);
    let dynamic = get_ok(m, &read_path("ev", "demo://resource/dynamic/text/5")).await;
    assert!(
        dynamic
            .as_str()
            .is_some_and(|t| t.starts_with("Resource 5: This is a plaintext resource")),
        "{dynamic}"
    );

    // A tool's resource links carry the URL of their read route; following it reads them.
    let r = post(m, "/ev/get-resource-links", None, json!({"count": 2})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let links: Vec<&Value> = r
        .body
        .as_array()
        .expect("text and links")
        .iter()
        .filter(|v| v["type"] == "resource_link")
        .collect();
    assert_eq!(links.len(), 2, "{}", r.text);
    for link in links {
        let url = link["url"].as_str().expect("a url");
        assert!(url.starts_with("/ev/resources/read?uri="), "{url}");
        let followed = get_ok(m, url).await;
        let uri = link["uri"].as_str().unwrap();
        let expected = if uri.contains("/text/") {
            followed.as_str().unwrap().as_bytes().to_vec()
        } else {
            data_url(&followed).1
        };
        let id = uri.rsplit('/').next().unwrap();
        assert!(
            String::from_utf8_lossy(&expected).starts_with(&format!("Resource {id}: ")),
            "{uri} → {followed}"
        );
    }
}

/// server-everything's `gzip-file-as-resource` registers a resource in the caller's own MCP
/// session. In multi-user mode that is the caller's own process: user A reads it through the
/// link, user B (another session) cannot, and only A's list shows it.
#[tokio::test]
async fn a_users_session_scoped_resource_is_not_readable_by_another_user() {
    let mut entry = everything_stdio();
    entry["multi_user"] = json!(true);
    entry["webui_secret_key"] = json!(SECRET);
    let b = start_config(json!({"ev": entry}), &[]);
    let m = &b.mcpo;
    wait_log(
        m,
        &["closing the discovery session"],
        1,
        Duration::from_secs(60),
    )
    .await;
    let (alice, bob) = (bearer(&token(&uuid4())), bearer(&token(&uuid4())));

    let secret = "alice's private notes";
    let data = format!(
        "data:text/plain;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(secret)
    );
    let r = post(
        m,
        "/ev/gzip-file-as-resource",
        Some(&alice),
        json!({"name": "alice.txt.gz", "data": data, "outputType": "resourceLink"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}\n{}", m.stderr.text());
    let url = r.body["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no url: {r:?}"));
    let uri = r.body["uri"].as_str().unwrap().to_owned();

    // Alice reads her resource (gzip of her text) through the link.
    let mine = get(m, url, Some(&alice)).await;
    assert_eq!(mine.status, StatusCode::OK, "{mine:?}");
    let (mime, gz) = data_url(&mine.body);
    assert_eq!(mime, "application/gzip");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain)
        .expect("gzip");
    assert_eq!(plain, secret);
    let listed = |v: &Value| {
        v["resources"]
            .as_array()
            .is_some_and(|l| l.iter().any(|r| r["uri"] == uri.as_str()))
    };
    assert!(listed(&get(m, "/ev/resources", Some(&alice)).await.body));

    // Bob, on his own session, neither reads nor lists it; nobody without a token reads at all.
    let theirs = get(m, url, Some(&bob)).await;
    assert!(
        theirs.status.is_client_error(),
        "bob read alice's resource: {theirs:?}"
    );
    assert!(
        !theirs.text.contains(&mine.body.as_str().unwrap()[30..]),
        "{theirs:?}"
    );
    let raw = get(
        m,
        &url.replace("/resources/read?", "/resources/raw?"),
        Some(&bob),
    )
    .await;
    assert!(raw.status.is_client_error(), "{raw:?}");
    let bobs = get(m, "/ev/resources", Some(&bob)).await;
    assert_eq!(bobs.status, StatusCode::OK, "{bobs:?}");
    assert!(!listed(&bobs.body), "bob's list shows alice's resource");
    assert_eq!(get(m, url, None).await.status, StatusCode::UNAUTHORIZED);
}

/// Single-server mode (`mcpo -- fixture stdio`): the routes sit at the prefix root.
#[tokio::test]
async fn single_server_mode_serves_resources_and_prompts_at_the_root() {
    let bin = fixture_bin();
    let m = Mcpo::start_with_env(
        &["--", bin.to_str().unwrap(), "stdio"],
        &[("FIXTURE_RESOURCES", "1")],
    );
    m.wait_ok("/openapi.json", Duration::from_secs(30)).await;
    let list = get_ok(&m, "/resources").await;
    assert_eq!(list["resources"].as_array().map(Vec::len), Some(28));
    assert_eq!(
        get_ok(&m, "/resources/read?uri=fixture%3A%2F%2Fitems%2F2").await,
        json!("item 2")
    );
    let (status, ct, _) = bytes_of(&m, "/resources/raw?uri=fixture%3A%2F%2Fblob%2Fpixel.png").await;
    assert_eq!((status, ct.as_deref()), (StatusCode::OK, Some("image/png")));
    assert_eq!(
        get_ok(&m, "/prompts").await["prompts"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    let r = post(&m, "/prompts/greet", None, json!({"name": "Ann"})).await;
    assert_eq!(r.body["messages"][0]["content"], "Hello Ann", "{r:?}");
}

/// `resources/read` is bounded by the server's `timeout` like a tool call: 504, and the read is
/// cancelled upstream (the fixture logs it; its stderr is in mcpo's log); so is the read of a
/// caller that goes away.
#[tokio::test]
async fn a_hanging_read_times_out_and_is_cancelled_upstream() {
    let mut fx = fixture_with_resources();
    fx["timeout"] = json!(1);
    let b = start_config(json!({"fx": fx}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;
    let r = get(m, &read_path("fx", "fixture://slow"), None).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{r:?}");
    assert!(r.message().contains("resources/read"), "{r:?}");
    wait_log(m, &["slow read cancelled"], 1, Duration::from_secs(10)).await;
    // The session is still good.
    assert_eq!(
        get_ok(m, &read_path("fx", "fixture://items/1")).await,
        json!("item 1")
    );

    // A caller that goes away: the read is cancelled upstream too (after the 1 s grace).
    let b = start_config(json!({"fx": fixture_with_resources()}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;
    let gone = reqwest::Client::new()
        .get(m.url(&read_path("fx", "fixture://slow")))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the read answered: {gone:?}");
    wait_log(m, &["slow read cancelled"], 1, Duration::from_secs(10)).await;
}
