//! MCP prompts over HTTP (`GET {server}/prompts`, `POST {server}/prompts/{name}`) against the
//! repo's fixture with `FIXTURE_RESOURCES=1` (pages, an image message, an embedded resource, a
//! name that is no path segment) and the real `@modelcontextprotocol/server-everything`
//! (`simple-prompt`, `args-prompt` with a required and an optional argument,
//! `resource-prompt` with an embedded resource).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::resources::{everything_stdio, fixture_with_resources};

#[tokio::test]
async fn fixture_prompts_every_page_arguments_content_and_errors() {
    let b = start_config(
        json!({"fx": fixture_with_resources(), "plain": fixture_stdio_entry()}),
        &[],
    );
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;
    m.wait_ok("/plain/openapi.json", Duration::from_secs(30))
        .await;

    // Every page (two prompts per page), each with its arguments.
    let list = get_ok(m, "/fx/prompts").await;
    let prompts = list["prompts"].as_array().expect("prompts");
    let names: Vec<&str> = prompts
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["greet", "picture", "embedded", "odd/name?"]);
    assert_eq!(
        prompts[0]["arguments"],
        json!([{"name": "name", "description": "Who to greet", "required": true},
               {"name": "style", "description": "How (optional)"}])
    );

    // With the required argument, then with the optional one too.
    let r = post(m, "/fx/prompts/greet", None, json!({"name": "Bob"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.body,
        json!({"description": "the greet prompt", "messages": [
            {"role": "user", "content": "Hello Bob"},
            {"role": "assistant", "content": "Hi!"}]})
    );
    let r = post(
        m,
        "/fx/prompts/greet",
        None,
        json!({"name": "Bob", "style": "warmly"}),
    )
    .await;
    assert_eq!(
        r.body["messages"][0]["content"], "Hello Bob (warmly)",
        "{r:?}"
    );
    // A missing required argument is named; a non-string one refused; an unknown prompt 404.
    let r = post(m, "/fx/prompts/greet", None, json!({"style": "x"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("'name'"), "{r:?}");
    assert_eq!(r.body["detail"]["data"]["missing"], json!(["name"]));
    let r = post(
        m,
        "/fx/prompts/greet",
        None,
        json!({"name": {"first": "B"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r = post(m, "/fx/prompts/nope", None, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    // No body at all means no arguments.
    let r = send(client().post(m.url("/fx/prompts/picture"))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let image = r.body["messages"][0]["content"].as_str().unwrap();
    assert!(image.starts_with("data:image/png;base64,iVBOR"), "{image}");
    let r = post(m, "/fx/prompts/embedded", None, json!({})).await;
    assert_eq!(
        r.body["messages"][0]["content"],
        json!({"uri": "fixture://items/3", "mimeType": "text/plain", "text": "embedded text"})
    );

    // A name that is no path segment is reached under its published name, and only there.
    let published = mcpo::openapi::path_segment("odd/name?").into_owned();
    assert_ne!(published, "odd/name?");
    let r = post(m, &format!("/fx/prompts/{published}"), None, json!({})).await;
    assert_eq!(r.body["messages"][0]["content"], "odd", "{r:?}");
    let r = post(m, "/fx/prompts/odd%2Fname%3F", None, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");

    // A server without the prompts capability has no prompt routes.
    for r in [
        get(m, "/plain/prompts", None).await,
        post(m, "/plain/prompts/greet", None, json!({})).await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        assert!(r.message().contains("offers no prompts"), "{r:?}");
    }
}

#[tokio::test]
async fn server_everything_prompts() {
    let b = start_config(json!({"ev": everything_stdio()}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/ev/openapi.json", Duration::from_secs(60)).await;

    let list = get_ok(m, "/ev/prompts").await;
    let args = list["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "args-prompt")
        .map(|p| p["arguments"].clone())
        .expect("args-prompt listed");
    assert_eq!(args[0]["name"], "city");
    assert_eq!(args[0]["required"], true);
    assert_eq!(args[1]["name"], "state");

    let r = post(m, "/ev/prompts/simple-prompt", None, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["messages"][0]["role"], "user");
    assert!(r.body["messages"][0]["content"].is_string(), "{r:?}");

    let r = post(m, "/ev/prompts/args-prompt", None, json!({"city": "Paris"})).await;
    assert_eq!(
        r.body["messages"][0]["content"], "What's weather in Paris?",
        "{r:?}"
    );
    let r = post(
        m,
        "/ev/prompts/args-prompt",
        None,
        json!({"city": "Austin", "state": "TX"}),
    )
    .await;
    assert_eq!(
        r.body["messages"][0]["content"], "What's weather in Austin, TX?",
        "{r:?}"
    );
    let r = post(m, "/ev/prompts/args-prompt", None, json!({"state": "TX"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("'city'"), "{r:?}");

    let r = post(
        m,
        "/ev/prompts/resource-prompt",
        None,
        json!({"resourceType": "Text", "resourceId": 2}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let embedded = &r.body["messages"][1]["content"];
    assert_eq!(embedded["uri"], "demo://resource/dynamic/text/2", "{r:?}");
    assert!(
        embedded["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Resource 2: ")),
        "{r:?}"
    );
}
