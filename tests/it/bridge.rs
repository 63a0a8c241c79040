//! The core bridge against the repo's fixture server over stdio: result mapping, error
//! statuses, validation, specs, docs and the root index, through the real `mcpo` binary.

use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// mcpo with the fixture over stdio as `fx` (one tool disabled, 2 s timeout) and a server
/// that cannot start as `down`, once `fx` is served.
async fn start(extra: &[&str]) -> Bridge {
    let mut fixture = fixture_stdio_entry();
    fixture["disabledTools"] = json!(["plain_text"]);
    fixture["timeout"] = json!(2);
    let b = start_config(
        json!({
            "fx": fixture,
            "down": { "command": "/nonexistent/mcp-server" },
        }),
        extra,
    );
    b.mcpo
        .wait_ok("/fx/openapi.json", Duration::from_secs(30))
        .await;
    b
}

#[tokio::test]
async fn tool_results_are_mapped_without_loss() {
    let b = start(&[]).await;
    assert_eq!(
        post_json(&b.mcpo, "/fx/echo", json!({"text": "héllo"})).await,
        (StatusCode::OK, json!("héllo"))
    );
    // A number as text is parsed as JSON.
    assert_eq!(
        post_json(&b.mcpo, "/fx/add", json!({"a": 2, "b": 3.5})).await,
        (StatusCode::OK, json!(5.5))
    );
    // JSON text becomes the object; structured content wins over text.
    assert_eq!(
        post_json(&b.mcpo, "/fx/json_text", json!({})).await,
        (StatusCode::OK, json!({"ok": true, "n": 1}))
    );
    let (s, user) = post_json(&b.mcpo, "/fx/create_user", json!({"user": {"name": "Ada", "address": {"street": "1 Loop", "zip": "12345"}, "role": "admin"}}))
    .await;
    assert_eq!(s, StatusCode::OK, "{user}");
    assert_eq!(user["id"], json!(1));
    assert_eq!(user["name"], json!("Ada"));
    // Images become data URLs.
    let (s, img) = post_json(&b.mcpo, "/fx/image", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        img.as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBOR"),
        "{img}"
    );
    // Several items keep their order; embedded resources and links are objects.
    let (s, mixed) = post_json(&b.mcpo, "/fx/mixed", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let items = mixed.as_array().expect("array");
    assert_eq!(items[0], json!("first"));
    assert!(
        items[1]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert_eq!(
        items[2],
        json!({"uri": "fixture://note", "mimeType": "text/plain", "text": "note body"})
    );
    if let Some(link) = items.get(3) {
        assert_eq!(link["uri"], json!("fixture://link"));
        assert_eq!(link["type"], json!("resource_link"));
    }
}

#[tokio::test]
async fn arguments_reach_the_tool_as_sent() {
    let b = start(&[]).await;
    // Explicit null is kept (Python mcpo drops it).
    assert_eq!(
        post_json(&b.mcpo, "/fx/null_echo", json!({"value": null}))
            .await
            .1,
        json!(null)
    );
    assert_eq!(
        post_json(&b.mcpo, "/fx/null_echo", json!({})).await.1,
        json!("missing")
    );
    // An empty body is `{}` for a tool without required arguments.
    let r = client()
        .post(b.mcpo.url("/fx/ping_all"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!("pong"));
    // enum + const + nullable all accepted when right.
    let (s, v) = post_json(
        &b.mcpo,
        "/fx/set_mode",
        json!({"mode": "fast", "level": 3, "note": null}),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!("mode=fast note=null")));
    // Refs into #/properties/... validate and pass through.
    let body = json!({"home": {"city": "Oslo"}, "work": {"city": "Bergen"}});
    assert_eq!(
        post_json(&b.mcpo, "/fx/refs_properties", body.clone()).await,
        (StatusCode::OK, body)
    );
}

#[tokio::test]
async fn bad_input_gets_a_readable_4xx() {
    let b = start(&[]).await;
    // Schema violations are 422 with the failing path, before the upstream is called.
    let (s, v) = post_json(
        &b.mcpo,
        "/fx/set_mode",
        json!({"mode": "medium", "level": 3}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(message(&v).contains("/mode"), "{v}");
    let (s, v) = post_json(&b.mcpo, "/fx/set_mode", json!({"mode": "fast", "level": 4})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(message(&v).contains("/level"), "{v}");
    let (s, v) = post_json(
        &b.mcpo,
        "/fx/create_user",
        json!({"user": {"name": "A", "address": {"street": "s", "zip": "12"}, "role": "admin"}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(message(&v).contains("/user/address/zip"), "{v}");
    // Missing required argument.
    let (s, _) = post_json(&b.mcpo, "/fx/echo", json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Not JSON at all → 400 with a JSON body.
    let r = client()
        .post(b.mcpo.url("/fx/echo"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(message(&v).contains("not valid JSON"), "{v}");
}

#[tokio::test]
async fn errors_map_to_statuses() {
    let b = start(&["--max-body-bytes", "1024"]).await;
    // isError → 500 with the tool's own text, not double wrapped.
    let (s, v) = post_json(&b.mcpo, "/fx/fail", json!({"message": "it broke"})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(message(&v), "it broke");
    // MCP -32602 → 422.
    let (s, v) = post_json(&b.mcpo, "/fx/invalid_params", json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(message(&v).contains("bad params from fixture"));
    // Unknown server / tool / disabled tool → 404.
    assert_eq!(
        post_json(&b.mcpo, "/nope/echo", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post_json(&b.mcpo, "/fx/nope", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post_json(&b.mcpo, "/fx/plain_text", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    // A server that cannot start → 503 with Retry-After, while the others work.
    let r = client()
        .post(b.mcpo.url("/down/anything"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get("retry-after").is_some());
    let v: Value = r.json().await.unwrap();
    // The state word; the reason (naming the command) is in /status (#19 item 8).
    assert!(message(&v).contains("'down' is not connected"), "{v}");
    let down = fetch_server_status(&b.mcpo, "down").await;
    assert!(
        down["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("/nonexistent/mcp-server")),
        "{down}"
    );
    // Per-call timeout (the server's `timeout: 2`) → 504, and the upstream is told.
    let started = std::time::Instant::now();
    let (s, v) = post_json(&b.mcpo, "/fx/slow", json!({"seconds": 30})).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        b.mcpo
            .stderr
            .wait_for(Duration::from_secs(5), |l| l
                .contains("slow cancelled")
                .then_some(()))
            .is_some(),
        "the fixture never saw the cancellation; stderr:\n{}",
        b.mcpo.stderr.text()
    );
    // The session survives all of that.
    assert_eq!(
        post_json(&b.mcpo, "/fx/echo", json!({"text": "still here"}))
            .await
            .1,
        json!("still here")
    );
    // Body over the limit → 413 JSON.
    let big = "x".repeat(4096);
    let (s, v) = post_json(&b.mcpo, "/fx/echo", json!({ "text": big })).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // Unknown route → JSON 404.
    let r = client()
        .get(b.mcpo.url("/no/such/route/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.json::<Value>().await.unwrap()["detail"]["message"].is_string());
}

#[tokio::test]
async fn concurrent_calls_share_one_session() {
    let b = start(&[]).await;
    let (_, first) = post_json(&b.mcpo, "/fx/whoami", json!({})).await;
    let calls = (0..40).map(|i| {
        let url = b.mcpo.url("/fx/echo");
        async move {
            let r = client()
                .post(url)
                .json(&json!({"text": format!("n{i}")}))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    });
    // A slow call in flight must not hold up the others.
    let slow = post_json(&b.mcpo, "/fx/slow", json!({"seconds": 1}));
    let (results, slow) = tokio::join!(futures::future::join_all(calls), slow);
    for (i, (s, v)) in results.into_iter().enumerate() {
        assert_eq!((s, v), (StatusCode::OK, json!(format!("n{i}"))));
    }
    assert_eq!(slow.0, StatusCode::OK);
    let (_, last) = post_json(&b.mcpo, "/fx/whoami", json!({})).await;
    assert_eq!(first["pid"], last["pid"]);
    assert_eq!(first["session"], last["session"]);
    assert!(last["calls"].as_u64() > first["calls"].as_u64());
}

#[tokio::test]
async fn specs_are_valid_openapi_and_lossless() {
    let b = start(&[]).await;
    let spec: Value = client()
        .get(b.mcpo.url("/fx/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid_openapi(&spec, "fixture spec");
    assert_eq!(spec["openapi"], json!("3.1.0"));
    assert_eq!(spec["info"]["title"], json!("mcp-fixture"));
    assert_eq!(spec["info"]["version"], json!("1.2.3"));
    assert_eq!(
        spec["info"]["description"],
        json!("Fixture server for mcpo tests.")
    );
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/echo"));
    assert!(
        !paths.contains_key("/plain_text"),
        "disabled tool is published"
    );
    assert_eq!(paths["/echo"]["post"]["operationId"], json!("echo"));
    // enum/const/nullable survive; $defs were hoisted and refs rewritten.
    assert_refs_resolve(&spec);
    let text = spec.to_string();
    assert!(text.contains("\"const\":3"), "const dropped");
    assert!(text.contains("\"admin\""), "enum dropped");
    assert!(text.contains("^[0-9]{5}$"), "pattern dropped");
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    assert!(schemas.keys().any(|k| k.contains("Address")), "{schemas:?}");
    // outputSchema → 200 response schema.
    let out =
        &paths["/create_user"]["post"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(out.is_object() && out != &json!({}), "{out}");

    let combined: Value = client()
        .get(b.mcpo.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid_openapi(&combined, "combined spec");
    assert_refs_resolve(&combined);
    assert_eq!(
        combined["paths"]["/fx/echo"]["post"]["operationId"],
        json!("fx_echo")
    );
    assert!(
        combined["info"]["description"]
            .as_str()
            .unwrap()
            .contains("down")
    );
}

#[tokio::test]
async fn docs_index_and_health_are_served_offline() {
    let b = start(&[]).await;
    let c = client();
    let health = c.get(b.mcpo.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    for path in ["/docs", "/fx/docs", "/fx/docs/"] {
        let r = c.get(b.mcpo.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("swagger-ui-bundle.js") && !html.contains("cdn"),
            "{html}"
        );
    }
    let js = c
        .get(b.mcpo.url("/fx/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.headers().get("content-encoding").is_none());
    let plain = js.bytes().await.unwrap();
    assert!(plain.len() > 100_000);
    assert!(
        std::str::from_utf8(&plain)
            .unwrap()
            .contains("SwaggerUIBundle")
    );
    // Browsers get the built-in gzip bytes; they inflate to the very same file.
    let gz = c
        .get(b.mcpo.url("/fx/docs/swagger-ui-bundle.js"))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let etag = gz.headers()["etag"].clone();
    let packed = gz.bytes().await.unwrap();
    assert!(packed.len() < plain.len() / 2, "{} bytes", packed.len());
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&packed[..]),
        &mut inflated,
    )
    .unwrap();
    assert_eq!(inflated, plain);
    let again = c
        .get(b.mcpo.url("/fx/docs/swagger-ui-bundle.js"))
        .header("accept-encoding", "gzip")
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let css = c
        .get(b.mcpo.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    let index: Value = c
        .get(b.mcpo.url("/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let servers = index["servers"].as_array().unwrap();
    assert_eq!(servers[0]["name"], json!("fx"));
    assert_eq!(servers[0]["status"], json!("connected"));
    assert_eq!(servers[1]["status"], json!("connecting"));
    // The reason is in /status, not in the open index (#19 item 8).
    let broken = fetch_server_status(&b.mcpo, servers[1]["name"].as_str().unwrap()).await;
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot start")
    );
    // The fixture's stderr is captured into our log with the server's name.
    assert!(
        b.mcpo
            .stderr
            .text()
            .lines()
            .any(|l| l.contains("fixture started") && l.contains("fx"))
    );
}
