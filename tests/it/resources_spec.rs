//! Resources and prompts in the OpenAPI documents: `expose` (per server, `--expose` /
//! `MCPO_EXPOSE` for the single server) off by default so today's documents do not change; on,
//! the routes are documented (valid 3.1, every `$ref` resolving, tags `resources`/`prompts`),
//! with `read_resource` naming the known resources and one operation per prompt; a server
//! without the capability gets none; `list_changed` refreshes them; in multi-user mode the
//! shared document never names what one user's session listed.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::multi_user::{SECRET, token, uuid4};
use crate::resources::fixture_with_resources;

const ALL: [&str; 3] = ["tools", "resources", "prompts"];

fn operation_ids(doc: &Value) -> Vec<String> {
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap().to_owned())
        .collect()
}

fn listing_paths(doc: &Value) -> Vec<String> {
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.contains("/resources") || p.contains("/prompts"))
        .cloned()
        .collect()
}

/// Default `expose`: a server that offers resources and prompts has the very document of one
/// that does not (the fixture with and without `FIXTURE_RESOURCES`), byte for byte but for its
/// name; and the combined document has no such operations either.
#[tokio::test]
async fn by_default_documents_do_not_change() {
    let b = start_config(
        json!({"aa": fixture_with_resources(), "bb": fixture_stdio_entry()}),
        &[],
    );
    let m = &b.mcpo;
    m.wait_ok("/aa/openapi.json", Duration::from_secs(30)).await;
    m.wait_ok("/bb/openapi.json", Duration::from_secs(30)).await;
    let offered = get(m, "/aa/openapi.json", None).await.text;
    let plain = get(m, "/bb/openapi.json", None).await.text;
    assert_eq!(
        offered
            .replace("/aa\"", "/bb\"")
            .replace("\"aa\"", "\"bb\""),
        plain
    );
    // The resources themselves are still served.
    assert_eq!(get(m, "/aa/resources", None).await.status, StatusCode::OK);
    let combined = get_ok(m, "/openapi.json").await;
    assert!(listing_paths(&combined).is_empty(), "{combined}");
}

#[tokio::test]
async fn exposed_routes_are_documented_valid_and_callable() {
    let mut fx = fixture_with_resources();
    fx["expose"] = json!(ALL);
    let mut plain = fixture_stdio_entry();
    plain["expose"] = json!(ALL);
    let b = start_config(json!({"fx": fx, "plain": plain}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;
    m.wait_ok("/plain/openapi.json", Duration::from_secs(30))
        .await;

    let doc = get_ok(m, "/fx/openapi.json").await;
    assert_valid_openapi(&doc, "fx with resources and prompts");
    assert_refs_resolve(&doc);
    let ids = operation_ids(&doc);
    for id in [
        "echo",
        "list_resources",
        "list_resource_templates",
        "get_resource",
        "read_resource",
        "get_resource_raw",
        "list_prompts",
        "prompt_greet",
        "prompt_picture",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }
    let read = &doc["paths"]["/resources/read"]["post"];
    assert_eq!(read["tags"], json!(["resources"]));
    let about = read["description"].as_str().unwrap();
    assert!(about.contains("fixture://items/1 (Item 1)"), "{about}");
    assert!(about.contains("template fixture://echo/{text}"), "{about}");
    assert!(
        about.contains("fixture://page.html"),
        "every page is named: {about}"
    );
    assert_eq!(
        read["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["uri"])
    );
    let greet = &doc["paths"]["/prompts/greet"]["post"];
    assert_eq!(greet["tags"], json!(["prompts"]));
    let body = &greet["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], json!(["name"]));
    assert_eq!(body["properties"]["style"]["type"], "string");
    let odd = mcpo::openapi::path_segment("odd/name?").into_owned();
    assert_eq!(
        doc["paths"][format!("/prompts/{odd}")]["post"]["operationId"],
        format!("prompt_{odd}")
    );
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["fx", "resources", "prompts"]);

    // What the spec documents is what answers.
    let r = post(
        m,
        "/fx/resources/read",
        None,
        json!({"uri": "fixture://items/4"}),
    )
    .await;
    assert_eq!(r.body, json!("item 4"));
    let r = post(m, &format!("/fx/prompts/{odd}"), None, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    // No capability, no operations (even when exposed).
    let plain = get_ok(m, "/plain/openapi.json").await;
    assert!(listing_paths(&plain).is_empty(), "{plain}");

    // The combined document: {server}_… operation ids, valid, every $ref resolving.
    let all = get_ok(m, "/openapi.json").await;
    assert_valid_openapi(&all, "combined with resources and prompts");
    assert_refs_resolve(&all);
    let ids = operation_ids(&all);
    for id in [
        "fx_read_resource",
        "fx_prompt_greet",
        "fx_list_resources",
        "plain_echo",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }
    assert!(
        !ids.iter()
            .any(|i| i.starts_with("plain_") && i.contains("resource"))
    );
    assert!(all["paths"]["/fx/resources/read"]["post"].is_object());
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "operationIds repeat: {ids:?}");
}

/// `notifications/resources/list_changed` and `notifications/prompts/list_changed` refresh the
/// documents: the fixture adds a resource and a prompt when `fixture://control/add/{name}` is
/// read, and both appear in the spec without a reconnect.
#[tokio::test]
async fn list_changed_refreshes_the_documents() {
    let mut fx = fixture_with_resources();
    fx["expose"] = json!(ALL);
    let b = start_config(json!({"fx": fx}), &[]);
    let m = &b.mcpo;
    m.wait_ok("/fx/openapi.json", Duration::from_secs(30)).await;
    let before = get_ok(m, "/fx/openapi.json").await;
    assert!(before["paths"]["/prompts/added_fresh"].is_null());

    let r = get(
        m,
        "/fx/resources/read?uri=fixture%3A%2F%2Fcontrol%2Fadd%2Ffresh",
        None,
    )
    .await;
    assert_eq!(r.body, json!("added fresh"), "{r:?}");
    let after = poll(Duration::from_secs(20), || async {
        let doc = get_ok(m, "/fx/openapi.json").await;
        doc["paths"]["/prompts/added_fresh"]
            .is_object()
            .then_some(doc)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the spec did not show the new prompt; log:\n{}",
            m.stderr.text()
        )
    });
    let about = after["paths"]["/resources/read"]["post"]["description"]
        .as_str()
        .unwrap();
    assert!(about.contains("fixture://added/fresh"), "{about}");
    let combined = get_ok(m, "/openapi.json").await;
    assert!(combined["paths"]["/fx/prompts/added_fresh"].is_object());
    // The same session served it all: the refresh was no reconnect.
    assert_eq!(count_lines(&m.stderr.text(), &["fixture started"]), 1);
    let r = post(m, "/fx/prompts/added_fresh", None, json!({})).await;
    assert_eq!(r.body["messages"][0]["content"], "added_fresh", "{r:?}");
}

/// A resource or prompt list change re-lists and republishes only a server whose specs show
/// them: with the default `expose` nothing mcpo keeps changed, so the session stays as it was
/// (the server with everything exposed, changed the same way, shows that the change came).
#[tokio::test]
async fn list_changed_of_what_is_not_exposed_changes_nothing() {
    let mut shown = fixture_with_resources();
    shown["expose"] = json!(ALL);
    let b = start_config(
        json!({"quiet": fixture_with_resources(), "shown": shown}),
        &[],
    );
    let m = &b.mcpo;
    for server in ["quiet", "shown"] {
        m.wait_ok(&format!("/{server}/openapi.json"), Duration::from_secs(30))
            .await;
        let r = get(
            m,
            &format!("/{server}/resources/read?uri=fixture%3A%2F%2Fcontrol%2Fadd%2Ffresh"),
            None,
        )
        .await;
        assert_eq!(r.body, json!("added fresh"), "{r:?}");
    }
    let ready = |server: &str| {
        let tag = format!("server={server} ");
        count_lines(&m.stderr.text(), &["upstream ready", tag.as_str()])
    };
    let republished = poll(Duration::from_secs(20), || async {
        (ready("shown") >= 2).then_some(())
    })
    .await;
    assert!(
        republished.is_some(),
        "the exposed server was not republished; log:\n{}",
        m.stderr.text()
    );
    // Give the quiet server's notifications the same time, and more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ready("quiet"), 1, "log:\n{}", m.stderr.text());
}

/// Single-server mode: `--expose` (and `MCPO_EXPOSE`) choose the operations; without `tools`
/// the tools are not operations, yet still answer.
#[tokio::test]
async fn the_single_server_flag_and_its_variable() {
    let bin = fixture_bin();
    let m = Mcpo::start_with_env(
        &[
            "--expose",
            "resources,prompts",
            "--",
            bin.to_str().unwrap(),
            "stdio",
        ],
        &[("FIXTURE_RESOURCES", "1")],
    );
    m.wait_ok("/openapi.json", Duration::from_secs(30)).await;
    let doc = get_ok(&m, "/openapi.json").await;
    assert_valid_openapi(&doc, "single server, resources and prompts");
    let ids = operation_ids(&doc);
    assert!(ids.contains(&"read_resource".to_owned()), "{ids:?}");
    assert!(ids.contains(&"prompt_greet".to_owned()), "{ids:?}");
    assert!(
        !ids.contains(&"echo".to_owned()),
        "tools are not exposed: {ids:?}"
    );
    let r = post(&m, "/echo", None, json!({"text": "hi"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    drop(m);

    let m = Mcpo::start_with_env(
        &["--", bin.to_str().unwrap(), "stdio"],
        &[("FIXTURE_RESOURCES", "1"), ("MCPO_EXPOSE", "tools,prompts")],
    );
    m.wait_ok("/openapi.json", Duration::from_secs(30)).await;
    let ids = operation_ids(&get_ok(&m, "/openapi.json").await);
    assert!(ids.contains(&"echo".to_owned()) && ids.contains(&"prompt_greet".to_owned()));
    assert!(!ids.contains(&"read_resource".to_owned()), "{ids:?}");

    let (status, stderr) = run_refused(&["--expose", "tools,files", "--", "x"]);
    assert!(!status.success());
    assert!(
        stderr.contains("--expose") && stderr.contains("'files'"),
        "{stderr}"
    );
}

#[test]
fn bad_expose_values_are_config_errors_naming_the_field() {
    for bad in [json!(["tools", "files"]), json!("tools"), json!([1])] {
        let mut entry = fixture_stdio_entry();
        entry["expose"] = bad.clone();
        let config = write_config(&json!({"mcpServers": {"fx": entry}}).to_string());
        let (status, stderr) = run_refused(&["--config", config.path().to_str().unwrap()]);
        assert!(!status.success(), "{bad}");
        assert!(
            stderr.contains("'fx'") && stderr.contains("expose"),
            "{bad}: {stderr}"
        );
    }
}

/// Multi-user: the document callers without a session see (Open WebUI fetches it without
/// credentials) has the routes but never the resources and prompts a user's session listed;
/// the user's own document names them.
#[tokio::test]
async fn the_shared_multi_user_document_names_no_users_resources() {
    let mut fx = fixture_with_resources();
    fx["expose"] = json!(ALL);
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
    let alice = bearer(&token(&uuid4()));
    let own = get(m, "/fx/openapi.json", Some(&alice)).await.json();
    let about = own["paths"]["/resources/read"]["post"]["description"]
        .as_str()
        .unwrap();
    assert!(about.contains("fixture://items/1"), "{about}");
    assert!(own["paths"]["/prompts/greet"].is_object());

    let shared = get(m, "/fx/openapi.json", None).await.json();
    assert_valid_openapi(&shared, "shared multi-user document");
    let about = shared["paths"]["/resources/read"]["post"]["description"]
        .as_str()
        .expect("the route is documented");
    assert!(!about.contains("fixture://"), "{about}");
    assert!(shared["paths"]["/prompts/greet"].is_null(), "{shared}");
    assert!(shared["paths"]["/prompts"]["get"].is_object());
}
