//! Specs served from cached bytes: an `ETag` per document, 304 to an `If-None-Match` naming it,
//! gzip to a client that accepts it (the same JSON once inflated), and a new ETag once the
//! tool list changes (`tools/list_changed`).

use std::io::Read;
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

async fn fetch(b: &Bridge, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().get(b.mcpo.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("GET")
}

fn etag(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn specs_have_etags_answer_304_and_gzip() {
    let mut entry = fixture_stdio_entry();
    entry["env"] = json!({"FIXTURE_CHANGE_TOOLS": "1"});
    let b = start_config(json!({"fx": entry}), &[]);
    b.mcpo
        .wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;

    for path in ["/openapi.json", "/fx/openapi.json"] {
        let plain = fetch(&b, path, &[]).await;
        assert_eq!(plain.status(), 200);
        assert!(plain.headers().get("content-encoding").is_none());
        let tag = etag(&plain);
        let doc: Value = serde_json::from_slice(&plain.bytes().await.unwrap()).unwrap();

        // The same document again: the same validator; named, 304 without a body.
        let again = fetch(&b, path, &[("if-none-match", &tag)]).await;
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(etag(&again), tag);
        assert!(again.bytes().await.unwrap().is_empty());
        let other = fetch(&b, path, &[("if-none-match", "\"something-else\"")]).await;
        assert_eq!(other.status(), 200, "{path}");

        // gzip when accepted: another validator, the same JSON once inflated.
        let packed = fetch(&b, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(packed.status(), 200);
        assert_eq!(packed.headers()["content-encoding"], "gzip", "{path}");
        assert!(
            packed.headers()["vary"]
                .to_str()
                .unwrap()
                .contains("accept-encoding")
        );
        let gz_tag = etag(&packed);
        assert_ne!(gz_tag, tag);
        let body = packed.bytes().await.unwrap();
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&inflated).unwrap(), doc);
        assert!(body.len() < inflated.len());
        let again = fetch(
            &b,
            path,
            &[("accept-encoding", "gzip"), ("if-none-match", &gz_tag)],
        )
        .await;
        assert_eq!(again.status(), 304, "{path}");
    }

    // A changed tool list is a new document with a new validator.
    let before = etag(&fetch(&b, "/openapi.json", &[]).await);
    let r = post(
        &b.mcpo,
        "/fx/change_tools",
        None,
        json!({"add": "fresh_tool"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let changed = poll(Duration::from_secs(10), || async {
        let r = fetch(&b, "/openapi.json", &[("if-none-match", &before)]).await;
        if r.status() != 200 {
            return None;
        }
        let tag = etag(&r);
        Some((tag, r.text().await.unwrap()))
    })
    .await
    .expect("the root document changed");
    assert_ne!(changed.0, before);
    assert!(changed.1.contains("fresh_tool"));
}
