//! #19 item 11: a multi-user server's last known tool list, which callers without a session of
//! their own are shown (Open WebUI's admin connections fetch specs without credentials), came
//! from whichever user listed last. With `"per_user_tools": true` a list one user's session
//! showed is never shown to anyone else nor written to the shared tool cache; the cache files
//! are the owner's only either way.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::*;

const SECRET: &str = "owui-hardening-secret-4b1d";
const PRIVATE: &str = "private_tool_of_alice";

/// An Open WebUI session JWT for `user`.
fn token(user: &str) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"id": user, "exp": t + 3600, "iat": t, "typ": "session"});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn has_private(doc: &Value, path: &str) -> bool {
    doc["paths"].get(path).is_some()
}

/// Whether any tool cache file mentions the private tool.
fn cache_has_private(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("tools")).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|text| text.contains(PRIVATE)))
    })
}

#[derive(Debug)]
struct Seen {
    anonymous: bool,
    combined: bool,
    bob: bool,
    cache: bool,
}

/// Alice adds a tool to her own session's list; what do the others see?
async fn alice_adds_a_private_tool(per_user_tools: bool, cache: &Path) -> Seen {
    let mut entry = fixture_stdio_entry();
    entry["env"] = json!({"FIXTURE_CHANGE_TOOLS": "1"});
    entry["multi_user"] = json!(true);
    entry["webui_secret_key"] = json!(SECRET);
    if per_user_tools {
        entry["per_user_tools"] = json!(true);
    }
    let config = write_config(&json!({"mcpServers": {"fx": entry}}).to_string());
    let mcpo = Mcpo::start_with_env(
        &["--config", config.path().to_str().unwrap()],
        &[("MCPO_CACHE_DIR", cache.to_str().unwrap())],
    );
    // The discovery session's list (nobody's) is the anonymous spec's.
    poll(Duration::from_secs(30), || async {
        let spec = get(&mcpo, "/fx/openapi.json", None).await;
        has_private(&spec.body, "/change_tools").then_some(())
    })
    .await
    .expect("the tool list was never learned");

    let (alice, bob) = (bearer(&token("alice")), bearer(&token("bob")));
    let r = post(
        &mcpo,
        "/fx/change_tools",
        Some(&alice),
        json!({"add": PRIVATE}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    poll(Duration::from_secs(10), || async {
        let own = get(&mcpo, "/fx/openapi.json", Some(&alice)).await;
        has_private(&own.body, &format!("/{PRIVATE}")).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("alice never saw her own tool:\n{}", mcpo.stderr.text()));
    // Alice's catalog, and with it the server's last known tools, was built by that fetch;
    // the cache file is written in the background just after.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let anonymous = get(&mcpo, "/fx/openapi.json", None).await.body;
    let combined = get(&mcpo, "/openapi.json", None).await.body;
    // Before bob's session lists (its list would become the last known one in turn).
    let cached = cache_has_private(cache);
    let bob_spec = get(&mcpo, "/fx/openapi.json", Some(&bob)).await.body;
    assert!(
        has_private(&bob_spec, "/change_tools"),
        "bob's spec has no tools at all: {bob_spec}"
    );
    Seen {
        anonymous: has_private(&anonymous, &format!("/{PRIVATE}")),
        combined: has_private(&combined, &format!("/fx/{PRIVATE}")),
        bob: has_private(&bob_spec, &format!("/{PRIVATE}")),
        cache: cached,
    }
}

/// Permission bits in octal, as `ls -l` people read them: `"600"`.
fn mode(path: &Path) -> String {
    format!(
        "{:o}",
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

#[tokio::test]
async fn by_default_the_last_list_is_published_and_cached_owner_only() {
    let cache = tempfile::tempdir().unwrap();
    let seen = alice_adds_a_private_tool(false, cache.path()).await;
    // The default stays: the last known list, whoever's it was (most servers give every user
    // the same tools, and Open WebUI fetches admin-registered specs without credentials).
    assert!(seen.anonymous && seen.combined && seen.cache, "{seen:?}");
    // A new user's session takes the last known list instead of listing (issue #16: a first
    // call costs initialize + initialized + the call); only `per_user_tools` keeps lists apart.
    assert!(seen.bob, "bob's new session takes the last known list");
    let tools = cache.path().join("tools");
    assert_eq!(mode(&tools), "700", "the tool cache folder");
    let files: Vec<_> = std::fs::read_dir(&tools).unwrap().flatten().collect();
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(mode(&f.path()), "600", "{}", f.path().display());
    }
}

#[tokio::test]
async fn with_per_user_tools_one_users_list_is_shown_to_nobody_else() {
    let cache = tempfile::tempdir().unwrap();
    let seen = alice_adds_a_private_tool(true, cache.path()).await;
    assert!(
        !seen.anonymous,
        "the anonymous spec lists alice's private tool"
    );
    assert!(
        !seen.combined,
        "the combined spec lists alice's private tool"
    );
    assert!(!seen.bob, "bob's spec lists alice's private tool");
    assert!(!seen.cache, "alice's list went to the shared tool cache");
}
