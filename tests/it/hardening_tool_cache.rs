//! #19 item 14 (the tool cache's side of "no shared folder"): the last known tool lists of
//! multi-user servers are what mcpo publishes before a session lists the tools. A cache folder
//! that other users may write to (or a symbolic link) lets them plant the tools mcpo publishes,
//! so such a folder is not used; without a home directory there is no disk cache at all rather
//! than one in a shared temporary folder.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const PLANTED: &str = "planted_tool";

/// A multi-user server that starts the fixture, until a file `fail` appears next to its script:
/// then it exits at once, so mcpo has only the cache to publish.
fn entry(dir: &Path) -> Value {
    let script = dir.join("server.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -e '{}' ] && exit 1\nexec '{}' stdio\n",
            dir.join("fail").display(),
            fixture_bin().display()
        ),
    )
    .unwrap();
    json!({
        "command": "sh",
        "args": [script.to_str().unwrap()],
        "multi_user": true,
        "webui_secret_key": "owui-hardening-secret-4b1d",
    })
}

/// Runs mcpo until the spec of `fx` lists `wait_for`.
async fn run_until_listed(cache: &Path, config: &Path, wait_for: &str) {
    let mut mcpo = Mcpo::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("MCPO_CACHE_DIR", cache.to_str().unwrap())],
    );
    let paths = poll(Duration::from_secs(30), || async {
        let spec = get(&mcpo, "/fx/openapi.json", None).await;
        let paths = spec.body["paths"].clone();
        paths.get(wait_for).is_some().then_some(paths)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the spec never listed {wait_for}\n{}",
            tail(&mcpo.stderr.text(), 30)
        )
    });
    mcpo.stop();
    assert!(paths.is_object());
}

#[tokio::test]
async fn a_cache_folder_others_can_write_to_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = write_config(&json!({"mcpServers": {"fx": entry(dir.path())}}).to_string());

    // A first run lists the fixture's tools and caches them.
    run_until_listed(&cache, config.path(), "/echo").await;
    let tools = cache.join("tools");
    let file = std::fs::read_dir(&tools)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("fx-"))
        .expect("the first run cached fx's tools")
        .path();

    // Another local user plants a tool in the cache, which someone left group/world-writable.
    let mut cached: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mut planted = cached["tools"][0].clone();
    planted["name"] = json!(PLANTED);
    cached["tools"].as_array_mut().unwrap().push(planted);
    std::fs::write(&file, serde_json::to_vec(&cached).unwrap()).unwrap();
    std::fs::set_permissions(&tools, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("fail"), b"").unwrap();

    // The server cannot start now: without the cache the spec has only the login-free
    // anonymous shape, i.e. no tool at all; with the planted cache it would list PLANTED.
    let mut mcpo = Mcpo::start_with_env(
        &["--config", config.path().to_str().unwrap()],
        &[("MCPO_CACHE_DIR", cache.to_str().unwrap())],
    );
    // Either the planted tool is published, or mcpo says why it does not use the cache.
    let spec = poll(Duration::from_secs(30), || async {
        let spec = get(&mcpo, "/fx/openapi.json", None).await;
        let refused = mcpo.stderr.text().contains("not using the tool cache");
        (spec.body.to_string().contains(PLANTED) || refused).then_some(spec)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "neither outcome within 30 s\n{}",
            tail(&mcpo.stderr.text(), 30)
        )
    });
    mcpo.stop();
    let paths: Vec<&String> = spec.body["paths"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    assert!(
        !spec.body.to_string().contains(PLANTED),
        "mcpo published a tool planted in a cache folder others can write to: {paths:?}"
    );
    assert!(
        mcpo.stderr.text().contains("writable by other users"),
        "the log does not say why the cache is not used:\n{}",
        tail(&mcpo.stderr.text(), 30)
    );
}
