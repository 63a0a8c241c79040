//! Two mcpo replicas sharing one real Redis (`--store redis://…`, #18) in front of the real
//! OAuth peers (oidc-provider with refresh-token rotation, the MCP Python SDK resource
//! server): a web login begun on one replica finishes on the other and both serve the user;
//! a token due on both replicas at once is refreshed once; Redis stopped mid-run leaves the
//! tokens in memory serving and answers a new login 503 naming the store, and Redis back
//! serves again without a restart; nothing in Redis is plain text.
//!
//! Each replica has its own token folder, so nothing is shared through files. The browser
//! (the peers' fake browser, a cookie jar like a real one: cookies are per host, not per
//! port) opens the login link on replica A, whose `--public-url` names replica B, as a load
//! balancer in front of both would: the authorization server sends the browser back to B.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::multi_user_oauth::{
    SECRET, SERVER, call, call_ok, forbidden_browser, identity, jwt, login_url_of, sign_in, user_id,
};
use crate::peers::{PeerOptions, Peers, peers_or_skip};
use mcpo::oauth::sealed::{self, Format};
use reqwest::StatusCode;
use serde_json::json;

/// The store key both replicas seal with.
fn key_text() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// One replica: the multi-user OAuth server on Redis, listening on `port`, its links built
/// on `public` (the balancer's address), its token folder its own.
fn replica(peers: &Peers, redis: &Redis, port: u16, public: u16, name: &str) -> Mcpo {
    let config = write_config(
        &json!({"mcpServers": {SERVER: {
            "type": "streamable-http",
            "url": peers.mcp_url,
            "oauth": {"multi_user": true, "webui_secret_key": SECRET, "max_sessions": 10},
        }}})
        .to_string(),
    );
    let (browser, _) = forbidden_browser(peers.dir.path());
    let tokens = peers.dir.path().join(format!("tokens-{name}"));
    let cache = peers.dir.path().join(format!("cache-{name}"));
    let (port, public) = (port.to_string(), format!("http://127.0.0.1:{public}"));
    let store = redis.url();
    let key = key_text();
    let mcpo = Mcpo::start_with_env(
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--port",
            &port,
            "--public-url",
            &public,
            "--store",
            &store,
        ],
        &[
            ("BROWSER", browser.as_str()),
            ("MCPO_TOKEN_DIR", tokens.to_str().unwrap()),
            ("MCPO_CACHE_DIR", cache.to_str().unwrap()),
            ("MCPO_STORE_KEY", key.as_str()),
            ("RUST_LOG", "info,mcpo=debug"),
            ("NO_COLOR", "1"),
        ],
    );
    drop(config);
    mcpo
}

/// Two replicas, A and B, whose links both name B (the balancer, here B itself).
fn replicas(peers: &Peers, redis: &Redis) -> (Mcpo, Mcpo) {
    let (a, b) = (free_port(), free_port());
    (
        replica(peers, redis, a, b, "a"),
        replica(peers, redis, b, b, "b"),
    )
}

/// `link` (on B) opened on A instead: same path and ticket, A's address.
fn on(mcpo: &Mcpo, link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    format!("{}{}?{}", mcpo.base, url.path(), url.query().unwrap_or(""))
}

/// Signs `account` in with the link a call through A got, opened on A; the callback lands
/// on B.
async fn sign_in_across(peers: &Peers, a: &Mcpo, b: &Mcpo, token: &str, account: &str) {
    let answer = call(a, "whoami_subject", Some(token)).await;
    let link = login_url_of(b, &answer, SERVER);
    sign_in(peers, &on(a, &link), account);
}

fn refreshes(peers: &Peers) -> usize {
    peers
        .as_events_named("grant")
        .iter()
        .filter(|g| g["grant_type"] == "refresh_token")
        .count()
}

/// Every value under mcpo's prefix is a sealed record in which none of `plain` appears.
fn assert_sealed(redis: &Redis, plain: &[&str]) {
    let values = redis.raw_values();
    assert!(
        values.iter().any(|(k, _)| k.ends_with("_tokens.json")),
        "no token record in Redis: {:?}",
        values.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for (key, value) in &values {
        assert!(key.starts_with("mcpo:"), "{key} is outside the prefix");
        if key.starts_with("mcpo:lock:") || key.starts_with("mcpo:ticket/") {
            continue;
        }
        assert_eq!(sealed::format(value), Format::Sealed, "{key} is not sealed");
        for p in plain {
            assert!(
                !value.windows(p.len()).any(|w| w == p.as_bytes()),
                "{key} holds {p} in plain text"
            );
        }
    }
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn a_login_begun_on_one_replica_finishes_on_the_other_and_both_serve_it() {
    let Some(redis) = Redis::start() else { return };
    let peers = peers_or_skip!(PeerOptions::default());
    let (a, b) = replicas(&peers, &redis);
    let alice = user_id("alice");
    let token = jwt(&alice);

    sign_in_across(&peers, &a, &b, &token, "alice").await;
    // The callback was B's: A never saw it.
    assert!(
        b.stderr.text().contains("OAuth web login complete"),
        "B did not finish the login:\n{}",
        b.stderr.text()
    );
    assert!(!a.stderr.text().contains("OAuth web login complete"));
    // A serves alice with the tokens B stored, with no new login; so does B.
    let me = identity(&a, &token).await;
    assert_eq!(me["subject"], "alice");
    assert_eq!(identity(&b, &token).await, me);
    assert_eq!(peers.browser_invocations(), 1, "a second login was needed");
    // Signed in, a call reads its tokens from the replica's memory: no Redis command.
    redis.reset_command_stats();
    for _ in 0..10 {
        call_ok(&a, "whoami_subject", &token).await;
        call_ok(&b, "whoami_subject", &token).await;
    }
    let stats = redis.command_stats();
    let used: Vec<_> = stats
        .iter()
        .filter(|(c, _)| !matches!(c.as_str(), "ping" | "info" | "config|resetstat"))
        .collect();
    assert!(used.is_empty(), "20 calls sent Redis {used:?}");
    // The login in progress was used up; only sealed records remain.
    assert!(redis.keys("mcpo:login/*").is_empty());
    let client_id = me["client_id"].as_str().unwrap();
    // (The owner of a record, user id included, is its associated data: in its header, in
    // the clear, as in the file store.)
    assert_sealed(&redis, &[client_id, "access_token", "refresh_token"]);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn a_token_due_on_both_replicas_at_once_is_refreshed_once() {
    let Some(redis) = Redis::start() else { return };
    // rmcp refreshes a token with less than 30 s left: 5 s after a login this one is due.
    // oidc-provider rotates refresh tokens: a second refresh with the spent one would fail.
    let peers = peers_or_skip!(PeerOptions {
        access_ttl: 34,
        ..Default::default()
    });
    let (a, b) = replicas(&peers, &redis);
    let token = jwt(&user_id("alice"));
    sign_in_across(&peers, &a, &b, &token, "alice").await;
    let me = identity(&a, &token).await;
    assert_eq!(identity(&b, &token).await, me);
    let before = refreshes(&peers);
    let login_done = Instant::now();
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(login_done.elapsed())).await;
    // Both replicas find the token due at once, several calls each.
    let calls = (0..4)
        .flat_map(|_| [&a, &b])
        .map(|r| call_ok(r, "whoami_subject", &token));
    let answers = futures::future::join_all(calls).await;
    assert_eq!(answers.len(), 8);
    assert!(
        peers.as_events_named("grant.error").is_empty(),
        "a refresh was refused: {:?}",
        peers.as_events()
    );
    assert_eq!(refreshes(&peers) - before, 1, "{:?}", peers.as_events());
    // Nobody was logged out: both still serve alice, with no new login.
    assert_eq!(identity(&a, &token).await, me);
    assert_eq!(identity(&b, &token).await, me);
    assert_eq!(peers.browser_invocations(), 1);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn redis_away_keeps_tokens_in_memory_serving_and_a_new_login_waits_for_it() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let peers = peers_or_skip!(PeerOptions::default());
    let (a, b) = replicas(&peers, &redis);
    let alice = jwt(&user_id("alice"));
    sign_in_across(&peers, &a, &b, &alice, "alice").await;
    let me = identity(&a, &alice).await;

    // Redis hangs (accepts, never answers): no call hangs with it. Alice is served from
    // memory; Bob, whose state only Redis has, gets a 503 within the store's timeouts.
    redis.freeze();
    assert_eq!(identity(&a, &alice).await, me);
    let bob = jwt(&user_id("bob"));
    let started = Instant::now();
    let answer = call(&a, "whoami_subject", Some(&bob)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a hung Redis held the call {:?}",
        started.elapsed()
    );
    redis.thaw();

    redis.stop();
    // Alice's tokens are in A's memory: she is served while Redis is away.
    assert_eq!(identity(&a, &alice).await, me);
    // Bob has none anywhere: a 503 that names the store, not a login link that could not
    // be finished (or a 401 that would send him to sign in for nothing).
    let answer = call(&a, "whoami_subject", Some(&bob)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    let text = answer.body.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", redis.port())) && text.contains("unavailable"),
        "the 503 does not name the store: {text}"
    );
    // Redis reconnects by itself: retry in seconds, not the minutes of a record that does
    // not open.
    assert!(
        answer.retry_after().is_some_and(|s| s <= 10),
        "Retry-After {:?}",
        answer.retry_after()
    );

    // Redis back (empty: it keeps nothing on disk): served again without a restart, within
    // 30 s; Bob now gets his login link and signs in.
    redis.restart();
    let link = poll(Duration::from_secs(30), || async {
        let answer = call(&a, "whoami_subject", Some(&bob)).await;
        (answer.status == StatusCode::UNAUTHORIZED).then_some(answer)
    })
    .await
    .expect("no login link within 30 s of Redis coming back");
    sign_in(&peers, &on(&a, &login_url_of(&b, &link, SERVER)), "bob");
    assert_eq!(identity(&a, &bob).await["subject"], "bob");
    assert_eq!(identity(&a, &alice).await, me);
    drop(b);
}
