//! Two mcpo replicas sharing one real Redis (`--store redis://…`, #18) in front of the repo's
//! fixture over streamable HTTP with `user_secrets` (it accepts only the keys listed in a file
//! and reports the headers each call arrived with): a secret entered through one replica is
//! used through the other, also in place of one the other's session found revoked; a
//! credentials link issued by one opens on the other and, once used on either, is refused on
//! both; what Redis holds is sealed; Redis stopped answers a user without a live session 503
//! naming the store (never "enter your secrets"), while live sessions keep serving, and Redis
//! back serves again without a restart; the anonymous spec of one replica shows the tool list
//! the other's user session saw.
//!
//! Each replica has its own token folder and tool cache folder, so nothing is shared through
//! files; both have the same store key and `--public-url` naming themselves (a link is moved
//! to the other replica the way a load balancer would send it there).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::user_secrets::{
    Home, HttpFixture, INFO_SECRET, KEY_ALICE, KEY_BOB, call, contains, credentials_url,
    http_server, open_page, session_jwt, submit,
};
use mcpo::oauth::sealed::{self, Format};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Alice's second key, after her first is revoked.
const KEY_ALICE_NEW: &str = "alice-key-new-Rb27wQe5";

/// The store key both replicas seal with.
fn key_text() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One replica of the `gh` server on `redis`, with folders of its own under `dir`.
fn replica(redis: &Redis, config: &Path, dir: &Path, name: &str, key: &str) -> Mcpo {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let (tokens, cache) = (
        dir.join(format!("tokens-{name}")),
        dir.join(format!("cache-{name}")),
    );
    Mcpo::start_with_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--public-url",
            &public,
            "--webui-user-jwt-secret",
            INFO_SECRET,
            "--store",
            &redis.url(),
        ],
        &[
            ("MCPO_TOKEN_DIR", tokens.to_str().unwrap()),
            ("MCPO_CACHE_DIR", cache.to_str().unwrap()),
            ("MCPO_STORE_KEY", key),
            ("RUST_LOG", "info,mcpo=debug"),
        ],
    )
}

/// `link` (made by one replica) as the same path and ticket on `mcpo`.
fn on(mcpo: &Mcpo, link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    format!("{}{}?{}", mcpo.base, url.path(), url.query().unwrap_or(""))
}

/// The headers the fixture saw on a call that succeeded.
fn seen(r: &Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    serde_json::from_str(r.body.as_str().unwrap_or(&r.text)).unwrap_or(r.body.clone())
}

/// The paths of `mcpo`'s anonymous spec of `gh` (no credentials, as Open WebUI fetches it).
async fn anonymous_paths(mcpo: &Mcpo) -> Vec<String> {
    let spec = get_ok(mcpo, "/gh/openapi.json").await;
    spec["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Enters `key` for the user of `link` on `page_on`'s page and submits it to `submit_on`;
/// the answer, and the page's cookie.
async fn enter(link: &str, page_on: &Mcpo, submit_on: &Mcpo, key: &str) -> (Reply, String) {
    let (_, cookie) = open_page(&on(page_on, link)).await;
    let answer = submit(
        &on(submit_on, link),
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_token", key)],
    )
    .await;
    (answer, cookie)
}

#[tokio::test]
async fn two_replicas_share_users_secrets_links_and_tool_lists_through_redis() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let home = Home::new();
    home.accept(&[KEY_ALICE, KEY_BOB]);
    let fixture = HttpFixture::start(&home.keys());
    let config = home.config(json!({ "gh": http_server(&fixture) }));
    let dir = tempfile::tempdir().unwrap();
    let key = key_text();
    let a = replica(&redis, &config, dir.path(), "a", &key);
    let b = replica(&redis, &config, dir.path(), "b", &key);

    // Nobody has a session yet: neither spec lists the fixture's tools.
    for mcpo in [&a, &b] {
        let paths = anonymous_paths(mcpo).await;
        assert!(paths.contains(&"/credentials/link".to_owned()), "{paths:?}");
        assert!(!paths.contains(&"/report_headers".to_owned()), "{paths:?}");
    }

    // A link issued by A opens on B, and a form whose page A served posts to B: alice's key
    // is entered through B.
    let link = credentials_url(&call(&a, "/gh/report_headers", "alice", json!({})).await);
    let (page, _) = open_page(&on(&b, &link)).await;
    assert!(page.text.contains("alice"), "{}", page.text);
    let (saved, cookie) = enter(&link, &a, &b, KEY_ALICE).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    assert!(saved.text.contains("accepted"), "{}", saved.text);

    // Used on B, the link is refused on A (and on B), page and form alike.
    for mcpo in [&a, &b] {
        let again = send(client().get(on(mcpo, &link))).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.text);
        assert!(again.text.contains("already used"), "{}", again.text);
    }
    let fields = [("action", "save"), ("s_token", KEY_ALICE)];
    let replay = submit(&on(&a, &link), Some(&cookie), "same-origin", &fields).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text);
    assert!(replay.text.contains("already used"), "{}", replay.text);

    // The key entered through B is used through A at once.
    let r = call(&a, "/gh/report_headers", "alice", json!({})).await;
    assert_eq!(seen(&r)["authorization"], format!("Bearer {KEY_ALICE}"));
    assert_eq!(seen(&r)["x-user-id"], "alice");

    // B has no session (the page's trial session closed: the server's templates need the
    // user's profile), yet its anonymous spec comes to show the list alice's session on A saw.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let paths = anonymous_paths(&b).await;
        if paths.contains(&"/report_headers".to_owned()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's anonymous spec never showed A's tool list: {paths:?}\nB's log:\n{}",
            b.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A link B's credentials operation issued, posted to both replicas at once: one of them
    // uses it (the mark in Redis is set once), the other refuses it.
    let op = call(&b, "/gh/credentials/link", "bob", json!({})).await;
    assert_eq!(op.status, StatusCode::OK, "{}", op.text);
    let bob_link = op.body["credentials_url"].as_str().unwrap().to_owned();
    let (_, cookie) = open_page(&on(&b, &bob_link)).await;
    let fields = [("action", "save"), ("s_token", KEY_BOB)];
    let (link_a, link_b) = (on(&a, &bob_link), on(&b, &bob_link));
    let (on_a, on_b) = tokio::join!(
        submit(&link_a, Some(&cookie), "same-origin", &fields),
        submit(&link_b, Some(&cookie), "same-origin", &fields),
    );
    let mut answers = [on_a.status, on_b.status];
    answers.sort();
    assert_eq!(
        answers,
        [StatusCode::OK, StatusCode::BAD_REQUEST],
        "A: {}\nB: {}",
        on_a.text,
        on_b.text
    );
    let loser = if on_a.status == StatusCode::OK {
        &on_b
    } else {
        &on_a
    };
    assert!(loser.text.contains("already used"), "{}", loser.text);
    // Used on one, refused on the other afterwards too.
    let winner = if on_a.status == StatusCode::OK {
        &b
    } else {
        &a
    };
    let again = submit(
        &on(winner, &bob_link),
        Some(&cookie),
        "same-origin",
        &fields,
    )
    .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.text);

    // Alice's key is revoked: her session on A is refused and she is asked for a new one,
    // which she enters through B; A uses it at once (its refusal was of the old key).
    home.accept(&[KEY_ALICE_NEW, KEY_BOB]);
    let r = call(&a, "/gh/report_headers", "alice", json!({})).await;
    let link = credentials_url(&r);
    assert!(r.text.contains("refused"), "{}", r.text);
    let (saved, _) = enter(&link, &a, &b, KEY_ALICE_NEW).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    let r = call(&a, "/gh/report_headers", "alice", json!({})).await;
    assert_eq!(seen(&r)["authorization"], format!("Bearer {KEY_ALICE_NEW}"));

    // Redis holds both users' secrets, sealed; no key appears anywhere in it.
    let values = redis.raw_values();
    let secrets: Vec<&String> = values
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with("_secrets.json"))
        .collect();
    assert_eq!(
        secrets.len(),
        2,
        "{:?}",
        values.iter().map(|v| &v.0).collect::<Vec<_>>()
    );
    assert!(
        values.iter().any(|(k, _)| k.starts_with("mcpo:tools/gh/")),
        "no shared tool list"
    );
    for (key, value) in &values {
        for secret in [KEY_ALICE, KEY_ALICE_NEW, KEY_BOB] {
            assert!(!contains(value, secret), "{key} holds a key in plain text");
        }
        if key.ends_with("_secrets.json") || key.starts_with("mcpo:tools/") {
            assert_eq!(sealed::format(value), Format::Sealed, "{key} is not sealed");
        }
    }

    let carol_link = credentials_url(&call(&a, "/gh/report_headers", "carol", json!({})).await);

    // Redis goes away. Alice's live session on A needs nothing from it and keeps serving.
    let kept = values.clone();
    redis.stop();
    let r = call(&a, "/gh/report_headers", "alice", json!({})).await;
    assert_eq!(seen(&r)["authorization"], format!("Bearer {KEY_ALICE_NEW}"));
    // Bob stored his key but has no session on B; carol stored none. Neither is asked for
    // secrets: the store is named, and nothing is forgotten.
    let shown = format!("127.0.0.1:{}", redis.port());
    for user in ["bob", "carol"] {
        let r = call(&b, "/gh/report_headers", user, json!({})).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{user}: {}",
            r.text
        );
        assert!(r.text.contains(&shown), "{user}: {}", r.text);
        assert!(r.body["detail"]["credentials_url"].is_null(), "{}", r.text);
    }
    // A credentials page cannot check its link either: 503 naming the store, nothing used
    // up; the status route likewise.
    let page = send(client().get(on(&b, &carol_link))).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text
    );
    assert!(page.text.contains(&shown), "{}", page.text);
    let status = send(
        client()
            .get(b.url("/credentials/gh/status"))
            .header("authorization", bearer(&session_jwt("bob"))),
    )
    .await;
    assert_eq!(
        status.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        status.text
    );

    // Redis comes back (with what it held, as a persistent one would): served again within
    // 30 s, without restarting either replica.
    redis.restart();
    {
        let mut con = redis.connection();
        for (key, value) in &kept {
            let () = ::redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query(&mut con)
                .unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call(&b, "/gh/report_headers", "bob", json!({})).await;
        if r.status == StatusCode::OK {
            assert_eq!(seen(&r)["authorization"], format!("Bearer {KEY_BOB}"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B did not serve bob within 30 s of Redis being back: {} {}",
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // And carol, who never stored any, is asked for them again; her link still works.
    let r = call(&b, "/gh/report_headers", "carol", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let (page, _) = open_page(&on(&b, &carol_link)).await;
    assert!(page.text.contains("carol"), "{}", page.text);

    // Nothing of either key in either replica's log.
    for (name, mcpo) in [("A", &a), ("B", &b)] {
        let log = mcpo.stderr.text();
        for secret in [KEY_ALICE, KEY_ALICE_NEW, KEY_BOB] {
            assert!(!log.contains(secret), "{name}'s log holds a key");
        }
    }
}

/// Runs one command on the test Redis as its `default` user (mcpo's).
fn redis_command(redis: &Redis, args: &[&str]) {
    let mut cmd = ::redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let () = cmd.query(&mut redis.connection()).unwrap();
}

#[tokio::test]
async fn secrets_the_store_does_not_take_are_not_used_and_the_page_says_so() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let home = Home::new();
    home.accept(&[KEY_ALICE]);
    let fixture = HttpFixture::start(&home.keys());
    let config = home.config(json!({ "gh": http_server(&fixture) }));
    let dir = tempfile::tempdir().unwrap();
    let mcpo = replica(&redis, &config, dir.path(), "a", &key_text());
    let link = credentials_url(&call(&mcpo, "/gh/report_headers", "alice", json!({})).await);

    // The server accepts alice's key, but Redis refuses to write users' secrets (an ACL
    // leaves mcpo only reading them): the page says so, and nothing serves her with them.
    redis_command(
        &redis,
        &[
            "ACL",
            "SETUSER",
            "default",
            "resetkeys",
            "~mcpo:ticket/*",
            "~mcpo:tools/*",
            "%R~mcpo:gh/*",
        ],
    );
    let (answer, cookie) = enter(&link, &mcpo, &mcpo, KEY_ALICE).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text
    );
    assert!(
        answer.text.contains("could not be saved"),
        "{}",
        answer.text
    );
    assert!(!answer.text.contains(KEY_ALICE));
    let r = call(&mcpo, "/gh/report_headers", "alice", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(redis.keys("*_secrets.json").is_empty());

    // Writable again: the same link (not used up) stores them, and they serve her.
    redis_command(&redis, &["ACL", "SETUSER", "default", "allkeys"]);
    let fields = [("action", "save"), ("s_token", KEY_ALICE)];
    let saved = submit(&on(&mcpo, &link), Some(&cookie), "same-origin", &fields).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    let r = call(&mcpo, "/gh/report_headers", "alice", json!({})).await;
    assert_eq!(seen(&r)["authorization"], format!("Bearer {KEY_ALICE}"));
}
