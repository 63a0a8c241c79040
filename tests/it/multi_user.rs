//! Multi-user mode (one upstream session per verified Open WebUI user) through the real `mcpo`
//! binary: callers present `Authorization: Bearer <Open WebUI JWT>`, minted here exactly as
//! Open WebUI 0.12 mints them (PyJWT, HS256 over the UTF-8 bytes of `WEBUI_SECRET_KEY`, header
//! `{"alg":"HS256","typ":"JWT"}`, claims `id`/`exp`/`iat`/`jti`/`typ`).
//!
//! The fixture's `whoami` tool answers `{"pid", "session", "calls"}`: over stdio every user
//! gets their own child process (so pids tell sessions apart); over streamable HTTP every MCP
//! session gets its own `session` number.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use base64::Engine;
use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const SECRET: &str = "owui-test-secret-9f2c";
const OTHER_SECRET: &str = "not-the-owui-secret";

// --- tokens -----------------------------------------------------------------------------------

/// A random UUIDv4 string (Open WebUI's user ids and `jti`s are UUID4s). No `uuid` crate in
/// the tree: `RandomState` is seeded from the OS, which is random enough for test ids.
pub(crate) fn uuid4() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Signs `claims` with `alg` and an HMAC `secret` (jsonwebtoken's header is
/// `{"typ":"JWT","alg":…}`, PyJWT's is `{"alg":…,"typ":"JWT"}`: the same JSON object).
fn sign_hmac(alg: Algorithm, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("encode JWT")
}

/// The claims `create_token` puts in a login session JWT (Open WebUI 0.12.4, `utils/auth.py`),
/// minus the `auth_method`/`session_stamp` extras that a bridge ignores.
fn session_claims(user: &str) -> Value {
    let t = now();
    json!({"id": user, "exp": t + 3600, "iat": t, "jti": uuid4(), "typ": "session"})
}

/// A valid session JWT for `user`, signed with `secret`.
fn token_for(user: &str, secret: &str) -> String {
    sign_hmac(Algorithm::HS256, &session_claims(user), secret.as_bytes())
}

pub(crate) fn token(user: &str) -> String {
    token_for(user, SECRET)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token assembled by hand: `header.payload.signature` (base64url, no padding).
fn hand_built(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}

/// A 2048-bit RSA key pair kept for the algorithm-confusion probes (generated once with
/// `openssl genrsa 2048`; nothing trusts it): the PKCS#1 DER private key (read without going
/// through PEM) and the SPKI PEM public key.
fn rsa_probe_key() -> (Vec<u8>, Vec<u8>) {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let read = |name: &str| {
        std::fs::read(data.join(name)).unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
    };
    (read("jwt-rsa-probe.der"), read("jwt-rsa-probe.pub.pem"))
}

// --- HTTP ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Who {
    pid: u32,
    session: u64,
    calls: u64,
}

fn who_of(r: &Reply) -> Who {
    let n = |k: &str| {
        r.body[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in whoami answer {r:?}"))
    };
    Who {
        pid: n("pid") as u32,
        session: n("session"),
        calls: n("calls"),
    }
}

/// `POST /{server}/whoami` as the holder of `jwt`; must answer 200.
async fn whoami(mcpo: &Mcpo, server: &str, jwt: &str) -> Who {
    let r = post(
        mcpo,
        &format!("/{server}/whoami"),
        Some(&bearer(jwt)),
        json!({}),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{server}/whoami: {r:?}\nmcpo stderr:\n{}",
        mcpo.stderr.text()
    );
    who_of(&r)
}

/// A 401 as the brief wants it: JSON `detail.message`, `WWW-Authenticate: Bearer`.
fn assert_401(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer"),
        "{what}: {r:?}"
    );
    let message = r.body["detail"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{what}: no detail.message in {r:?}");
}

// --- processes and logs ---------------------------------------------------------------------

/// Fixture processes `mcpo` currently runs (its direct children running `mcp_fixture`, zombies
/// included: a zombie child means mcpo has not reaped it yet).
fn fixture_children(mcpo: &Mcpo) -> Vec<u32> {
    let parent = mcpo.child.id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if proc_stat(pid).is_some_and(|s| s.ppid == parent)
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("mcp_fixture"))
        {
            found.push(pid);
        }
    }
    found.sort_unstable();
    found
}

// --- setups -------------------------------------------------------------------------------------

struct Multi {
    mcpo: Mcpo,
    _config: tempfile::NamedTempFile,
}

/// mcpo with one server `fx` (the stdio fixture, multi-user, `settings` merged into its entry),
/// started and past discovery (tool list learned, discovery session being closed).
async fn start_multi(settings: Value, args: &[&str], env: &[(&str, &str)]) -> Multi {
    let mut entry = fixture_stdio_entry();
    for (k, v) in settings.as_object().expect("settings object") {
        entry[k] = v.clone();
    }
    start_entries(json!({ "fx": entry }), args, env).await
}

async fn start_entries(servers: Value, args: &[&str], env: &[(&str, &str)]) -> Multi {
    let config = write_config(&json!({ "mcpServers": servers }).to_string());
    let mut all = vec!["--config", config.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let mcpo = Mcpo::start_with_env(&all, env);
    wait_log(
        &mcpo,
        &["closing the discovery session"],
        1,
        Duration::from_secs(30),
    )
    .await;
    Multi {
        mcpo,
        _config: config,
    }
}

fn multi_settings() -> Value {
    json!({"multi_user": true, "webui_secret_key": SECRET})
}

// --- 1. one session per user --------------------------------------------------------------------

/// Two users on a stdio server get two child processes of mcpo; each user's calls stay on their
/// own session (same pid, `calls` counting only their calls).
#[tokio::test]
async fn each_user_gets_their_own_stdio_session() {
    let m = start_multi(multi_settings(), &[], &[]).await;
    let (alice, bob) = (token(&uuid4()), token(&uuid4()));

    let a1 = whoami(&m.mcpo, "fx", &alice).await;
    let b1 = whoami(&m.mcpo, "fx", &bob).await;
    let a2 = whoami(&m.mcpo, "fx", &alice).await;
    let b2 = whoami(&m.mcpo, "fx", &bob).await;
    let a3 = whoami(&m.mcpo, "fx", &alice).await;

    assert_ne!(a1.pid, b1.pid, "two users share a process: {a1:?} {b1:?}");
    assert_eq!((a1.pid, a2.pid, a3.pid), (a1.pid, a1.pid, a1.pid));
    assert_eq!((a1.calls, a2.calls, a3.calls), (1, 2, 3), "alice's calls");
    assert_eq!((b1.pid, b2.pid), (b1.pid, b1.pid));
    assert_eq!((b1.calls, b2.calls), (1, 2), "bob's calls");

    // Both are mcpo's own children (the stdio server runs once per user, not once per call),
    // and the discovery session is gone: exactly these two fixtures run.
    for who in [a1, b1] {
        let ppid = proc_stat(who.pid).expect("user process is running").ppid;
        assert_eq!(ppid, m.mcpo.child.id(), "{who:?} is not a child of mcpo");
    }
    let children = poll(Duration::from_secs(10), || async {
        let c = fixture_children(&m.mcpo);
        (c.len() == 2).then_some(c)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "expected exactly the two user processes, found {:?}",
            fixture_children(&m.mcpo)
        )
    });
    let mut expected = vec![a1.pid, b1.pid];
    expected.sort_unstable();
    assert_eq!(children, expected);

    // A fresh token of the same user (new jti, new iat) is the same user: same session.
    let alice_id = uuid4();
    let t1 = token(&alice_id);
    let t2 = token(&alice_id);
    assert_ne!(t1, t2);
    let c1 = whoami(&m.mcpo, "fx", &t1).await;
    let c2 = whoami(&m.mcpo, "fx", &t2).await;
    assert_eq!((c2.pid, c2.calls), (c1.pid, c1.calls + 1));
}

/// The same over streamable HTTP: one MCP session (the fixture's `session` number) per user.
#[tokio::test]
async fn each_user_gets_their_own_streamable_http_session() {
    let fixture = Fixture::start("http");
    let mut entry = json!({"type": "streamable-http", "url": format!("{}/mcp", fixture.base)});
    for (k, v) in multi_settings().as_object().unwrap() {
        entry[k] = v.clone();
    }
    let m = start_entries(json!({ "web": entry }), &[], &[]).await;
    let users: Vec<String> = (0..3).map(|_| token(&uuid4())).collect();

    let mut firsts = Vec::new();
    for t in &users {
        firsts.push(whoami(&m.mcpo, "web", t).await);
    }
    for (t, first) in users.iter().zip(&firsts) {
        let again = whoami(&m.mcpo, "web", t).await;
        assert_eq!(
            (again.session, again.calls),
            (first.session, first.calls + 1),
            "a user's second call left their session"
        );
        assert_eq!(again.pid, fixture.child.id());
    }
    let sessions: BTreeSet<u64> = firsts.iter().map(|w| w.session).collect();
    assert_eq!(sessions.len(), 3, "users share MCP sessions: {firsts:?}");
    assert!(firsts.iter().all(|w| w.calls == 1), "{firsts:?}");
}

// --- 2. who is let in -------------------------------------------------------------------------

#[tokio::test]
async fn forged_expired_and_malformed_credentials_get_401() {
    let m = start_multi(multi_settings(), &[], &[]).await;
    let mcpo = &m.mcpo;
    let user = uuid4();
    let t = now();
    let good = session_claims(&user);

    let mut cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("empty bearer", Some("Bearer ".into())),
        (
            "signed with another secret",
            Some(bearer(&token_for(&user, OTHER_SECRET))),
        ),
        (
            "alg none, empty signature",
            Some(bearer(&hand_built(
                &json!({"alg": "none", "typ": "JWT"}),
                &good,
                b"",
            ))),
        ),
        (
            "alg none, HS256 signature of the right secret appended",
            Some(bearer(&{
                // Valid HS256 signature, but the header claims `none`: must not pass either.
                let valid = token(&user);
                let sig = valid.rsplit('.').next().unwrap().to_owned();
                format!(
                    "{}.{}.{sig}",
                    b64url(br#"{"alg":"none","typ":"JWT"}"#),
                    valid.split('.').nth(1).unwrap()
                )
            })),
        ),
        (
            "HS512 with the right secret",
            Some(bearer(&sign_hmac(
                Algorithm::HS512,
                &good,
                SECRET.as_bytes(),
            ))),
        ),
        (
            "HS384 with the right secret",
            Some(bearer(&sign_hmac(
                Algorithm::HS384,
                &good,
                SECRET.as_bytes(),
            ))),
        ),
        (
            "expired 120 s ago (beyond the 30 s leeway)",
            Some(bearer(&sign_hmac(
                Algorithm::HS256,
                &json!({"id": user, "exp": t - 120, "iat": t - 3720, "jti": uuid4(), "typ": "session"}),
                SECRET.as_bytes(),
            ))),
        ),
        (
            "no exp claim",
            Some(bearer(&sign_hmac(
                Algorithm::HS256,
                &json!({"id": user, "iat": t, "jti": uuid4(), "typ": "session"}),
                SECRET.as_bytes(),
            ))),
        ),
        (
            "no id claim",
            Some(bearer(&sign_hmac(
                Algorithm::HS256,
                &json!({"exp": t + 3600, "iat": t, "jti": uuid4(), "typ": "session"}),
                SECRET.as_bytes(),
            ))),
        ),
        (
            "numeric id",
            Some(bearer(&sign_hmac(
                Algorithm::HS256,
                &json!({"id": 42, "exp": t + 3600, "iat": t, "jti": uuid4(), "typ": "session"}),
                SECRET.as_bytes(),
            ))),
        ),
        (
            "empty id",
            Some(bearer(&sign_hmac(
                Algorithm::HS256,
                &json!({"id": "", "exp": t + 3600, "iat": t, "jti": uuid4(), "typ": "session"}),
                SECRET.as_bytes(),
            ))),
        ),
        (
            "typ refresh",
            Some(bearer(&sign_hmac(
                Algorithm::HS256,
                &json!({"id": user, "exp": t + 3600, "iat": t, "jti": uuid4(), "typ": "refresh"}),
                SECRET.as_bytes(),
            ))),
        ),
        (
            "Open WebUI API key",
            Some(bearer("sk-0123456789abcdef0123456789abcdef")),
        ),
        ("not a JWT at all", Some(bearer("hello"))),
        (
            "tampered payload (id swapped after signing)",
            Some(bearer(&{
                let valid = token(&user);
                let parts: Vec<&str> = valid.split('.').collect();
                let forged = b64url(session_claims("admin").to_string().as_bytes());
                format!("{}.{forged}.{}", parts[0], parts[2])
            })),
        ),
    ];

    // RS256 / key confusion. mcpo verifies with an HMAC secret and pins HS256, so the classic
    // confusion (a verifier that takes the algorithm from the token) is probed both ways:
    // (a) a genuine RS256 token signed with a real RSA key, which an alg-trusting verifier
    //     holding that public key would accept;
    // (b) HS256 with the RSA *public key PEM* as the HMAC secret, the textbook forgery against
    //     a verifier that feeds its RSA public key to HMAC when the token says HS256.
    // Both must be refused: (a) by the algorithm pin, (b) because the PEM is not the secret.
    let (private_der, public_pem) = rsa_probe_key();
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &good,
        &EncodingKey::from_rsa_der(&private_der),
    )
    .expect("RS256 encode");
    let hs256_pubkey = sign_hmac(Algorithm::HS256, &good, &public_pem);
    cases.push(("RS256 signed with a real RSA key", Some(bearer(&rs256))));
    cases.push((
        "HS256 keyed with an RSA public key PEM",
        Some(bearer(&hs256_pubkey)),
    ));

    for (what, auth) in &cases {
        let r = post(mcpo, "/fx/whoami", auth.as_deref(), json!({})).await;
        assert_401(&r, what);
        // Algorithm confusions are named as such, not as a bad signature.
        if what.starts_with("HS512") || what.starts_with("HS384") || what.starts_with("RS256") {
            let message = r.body["detail"]["message"].as_str().unwrap_or("");
            assert!(message.contains("HS256"), "{what}: {message}");
        }
    }
    // No user session was started by any of them (the discovery process is gone too).
    let left = poll(Duration::from_secs(10), || async {
        fixture_children(mcpo).is_empty().then_some(())
    })
    .await;
    assert!(
        left.is_some(),
        "fixture processes run after only rejected calls: {:?}",
        fixture_children(mcpo)
    );

    // Accepted: expired 10 s ago (inside the 30 s leeway); the full claim set Open WebUI 0.12.4
    // puts in a login token; the automation and subagent types; and an old token without typ.
    let accepted = [
        (
            "expired 10 s ago (leeway)",
            json!({"id": uuid4(), "exp": t - 10, "iat": t - 3610, "jti": uuid4(), "typ": "session"}),
        ),
        (
            "Open WebUI 0.12.4 login claims",
            json!({"id": uuid4(), "typ": "session", "auth_method": "password", "auth_time": t,
                   "session_stamp": uuid4(), "mfa_verified": false, "exp": t + 2_419_200,
                   "jti": uuid4(), "iat": t}),
        ),
        (
            "automation",
            json!({"id": uuid4(), "typ": "automation", "session_stamp": uuid4(),
                   "exp": t + 3600, "jti": uuid4(), "iat": t}),
        ),
        (
            "subagent",
            json!({"id": uuid4(), "typ": "subagent", "exp": t + 3600, "jti": uuid4(), "iat": t}),
        ),
        (
            "pre-0.12 token without typ",
            json!({"id": uuid4(), "exp": t + 3600}),
        ),
    ];
    for (what, claims) in accepted {
        let jwt = sign_hmac(Algorithm::HS256, &claims, SECRET.as_bytes());
        let r = post(mcpo, "/fx/whoami", Some(&bearer(&jwt)), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {r:?}");
        assert_eq!(
            who_of(&r).calls,
            1,
            "{what}: a fresh user has a fresh session"
        );
    }
    // The scheme name is case-insensitive (RFC 7235).
    let r = post(
        mcpo,
        "/fx/whoami",
        Some(&format!("bearer {}", token(&uuid4()))),
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "lower-case scheme: {r:?}");
}

// --- 3. specs ---------------------------------------------------------------------------------

/// Open WebUI fetches an admin-registered spec server-side with no credentials, on every chat
/// without Redis, with a 10 s limit: it must list the tools from the cache after the discovery
/// session is closed, fast, and start no session.
#[tokio::test]
async fn specs_list_tools_without_credentials_and_per_user_with_a_jwt() {
    let m = start_multi(multi_settings(), &[], &[]).await;
    let mcpo = &m.mcpo;
    // The discovery process goes away.
    let gone = poll(Duration::from_secs(10), || async {
        fixture_children(mcpo).is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "discovery session still running: {:?}",
        fixture_children(mcpo)
    );

    let started = Instant::now();
    let r = get(mcpo, "/fx/openapi.json", None).await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(elapsed < Duration::from_secs(2), "spec took {elapsed:?}");
    assert!(r.body["paths"]["/whoami"]["post"].is_object(), "{}", r.text);
    assert!(r.body["paths"]["/echo"]["post"].is_object(), "{}", r.text);
    assert_eq!(r.body["servers"][0]["url"], json!("/fx"), "{}", r.text);
    // Answering anonymously started nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        fixture_children(mcpo).is_empty(),
        "an anonymous spec fetch started a session"
    );
    // Repeated anonymous fetches stay fast (Open WebUI refetches on every chat).
    for _ in 0..20 {
        let started = Instant::now();
        let r = get(mcpo, "/fx/openapi.json", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // With a user's JWT (a direct connection from the browser): that user's own session is
    // started and its tools listed; the user's next call lands on that same session.
    let jwt = token(&uuid4());
    let r = get(mcpo, "/fx/openapi.json", Some(&bearer(&jwt))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.body["paths"]["/whoami"]["post"].is_object(), "{}", r.text);
    let children = fixture_children(mcpo);
    assert_eq!(
        children.len(),
        1,
        "the user's spec fetch started {children:?}"
    );
    let me = whoami(mcpo, "fx", &jwt).await;
    assert_eq!((me.pid, me.calls), (children[0], 1));

    // A forged token is refused on the spec too (a caller that sends one is told so).
    let forged = token_for(&uuid4(), OTHER_SECRET);
    let r = get(mcpo, "/fx/openapi.json", Some(&bearer(&forged))).await;
    assert_401(&r, "spec with a forged JWT");

    // The combined document carries the multi-user server's operations.
    let r = get(mcpo, "/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        r.body["paths"]["/fx/whoami"]["post"].is_object(),
        "{}",
        r.text
    );
    assert!(
        r.body["paths"]["/fx/echo"]["post"].is_object(),
        "{}",
        r.text
    );
    let description = r.body["info"]["description"].as_str().unwrap_or("");
    assert!(
        !description.contains("Not connected yet"),
        "combined spec calls the multi-user server unconnected: {description}"
    );
}

// --- 4. idle expiry -----------------------------------------------------------------------------

#[tokio::test]
async fn idle_user_sessions_close_and_come_back_fresh() {
    // 0.05 min = 3 s.
    let mut settings = multi_settings();
    settings["session_timeout_minutes"] = json!(0.05);
    let m = start_multi(settings, &[], &[]).await;
    let mcpo = &m.mcpo;
    let (idle_user, busy_user) = (token(&uuid4()), token(&uuid4()));

    let started = Instant::now();
    let p1 = whoami(mcpo, "fx", &idle_user).await;
    let busy_first = whoami(mcpo, "fx", &busy_user).await;

    // The busy user calls every 750 ms while the idle one waits: activity keeps a session.
    let busy = async {
        let mut last = busy_first;
        while started.elapsed() < Duration::from_secs(6) {
            tokio::time::sleep(Duration::from_millis(750)).await;
            let w = whoami(mcpo, "fx", &busy_user).await;
            assert_eq!(
                (w.pid, w.calls),
                (last.pid, last.calls + 1),
                "an active user's session was replaced"
            );
            last = w;
        }
        last
    };
    let idle = async {
        wait_log(
            mcpo,
            &["closing idle user sessions"],
            1,
            Duration::from_secs(15),
        )
        .await;
        let logged = started.elapsed();
        let gone = poll(Duration::from_secs(10), || async {
            proc_stat(p1.pid).is_none().then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "the idle user's process {} still exists: {:?}\nmcpo stderr:\n{}",
            p1.pid,
            proc_stat(p1.pid),
            mcpo.stderr.text()
        );
        (logged, started.elapsed())
    };
    let (busy_last, (logged, gone_at)) = futures::join!(busy, idle);
    assert!(
        logged >= Duration::from_millis(2900),
        "closed after only {logged:?}"
    );
    assert!(busy_last.calls >= 5, "{busy_last:?}");
    eprintln!("idle close logged after {logged:?}, process gone after {gone_at:?}");

    // The idle user comes back: a new process, a fresh session.
    let p2 = whoami(mcpo, "fx", &idle_user).await;
    assert_ne!(p2.pid, p1.pid);
    assert_eq!(p2.calls, 1);
    // The busy user's process was never touched.
    assert!(proc_stat(busy_first.pid).is_some());
}

// --- 5. bound -----------------------------------------------------------------------------------

#[tokio::test]
async fn max_sessions_bounds_live_processes_across_200_users() {
    let mut settings = multi_settings();
    settings["max_sessions"] = json!(50);
    let m = start_multi(settings, &[], &[]).await;
    let mcpo = &m.mcpo;

    let started = Instant::now();
    let tokens: Vec<String> = (0..200).map(|_| token(&uuid4())).collect();
    let results: Vec<Reply> = futures::stream::iter(tokens.iter())
        .map(|t| async move { post(mcpo, "/fx/whoami", Some(&bearer(t)), json!({})).await })
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let failed: Vec<&Reply> = results
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 200 calls failed, first: {:?}\nmcpo stderr (tail):\n{}",
        failed.len(),
        failed[0],
        tail(&mcpo.stderr.text(), 40)
    );
    let pids: HashSet<u32> = results.iter().map(|r| who_of(r).pid).collect();
    assert_eq!(pids.len(), 200, "users shared processes");
    assert!(results.iter().all(|r| who_of(r).calls == 1));

    // Evicted sessions are shut down in the background: poll until at most 50 run.
    let live = |pids: &HashSet<u32>| pids.iter().filter(|p| proc_stat(**p).is_some()).count();
    let settled = poll(Duration::from_secs(15), || async {
        (live(&pids) <= 50).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "{} of the 200 user processes still exist",
        live(&pids)
    );
    let children = fixture_children(mcpo);
    assert!(
        children.len() <= 50,
        "mcpo runs {} fixtures",
        children.len()
    );
    eprintln!(
        "200 users in {elapsed:?}; {} processes live after settling",
        live(&pids)
    );

    // The most recent users are still served by their own sessions; the evicted first ones
    // come back on a new one.
    let r = post(mcpo, "/fx/whoami", Some(&bearer(&tokens[0])), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

// --- 6. --api-key alongside users ---------------------------------------------------------------

#[tokio::test]
async fn api_key_is_a_shared_service_caller_next_to_users() {
    const KEY: &str = "service-key-1234";
    let m = start_multi(multi_settings(), &["--api-key", KEY], &[]).await;
    let mcpo = &m.mcpo;

    let s1 = post(mcpo, "/fx/whoami", Some(&bearer(KEY)), json!({})).await;
    assert_eq!(s1.status, StatusCode::OK, "{s1:?}");
    let s2 = post(mcpo, "/fx/whoami", Some(&bearer(KEY)), json!({})).await;
    let (s1, s2) = (who_of(&s1), who_of(&s2));
    assert_eq!(
        (s2.pid, s2.calls),
        (s1.pid, 2),
        "the service caller has one session"
    );

    let u = whoami(mcpo, "fx", &token(&uuid4())).await;
    assert_ne!(u.pid, s1.pid, "a user shares the service caller's session");

    let wrong = post(
        mcpo,
        "/fx/whoami",
        Some(&bearer("service-key-9999")),
        json!({}),
    )
    .await;
    assert_401(&wrong, "wrong non-JWT bearer");
    let none = post(mcpo, "/fx/whoami", None, json!({})).await;
    assert_401(&none, "no credentials with --api-key");
    assert!(!wrong.text.contains(KEY) && !none.text.contains(KEY));
}

// --- 7. where the secret comes from ------------------------------------------------------------

#[test]
fn multi_user_without_a_secret_is_a_config_error() {
    let mut entry = fixture_stdio_entry();
    entry["multi_user"] = json!(true);
    let config = write_config(&json!({"mcpServers": {"fx": entry}}).to_string());
    let (status, stderr) = run_refused(&["--config", config.path().to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    for needle in ["multi_user", "webui_secret_key", "WEBUI_SECRET_KEY", "fx"] {
        assert!(stderr.contains(needle), "no `{needle}` in:\n{stderr}");
    }
}

#[tokio::test]
async fn webui_secret_key_from_the_environment_verifies_tokens() {
    const ENV_SECRET: &str = "secret-from-the-environment";
    let m = start_multi(
        json!({"multi_user": true}),
        &[],
        &[("WEBUI_SECRET_KEY", ENV_SECRET)],
    )
    .await;
    let mcpo = &m.mcpo;
    let me = whoami(mcpo, "fx", &token_for(&uuid4(), ENV_SECRET)).await;
    assert_eq!(me.calls, 1);
    let r = post(
        mcpo,
        "/fx/whoami",
        Some(&bearer(&token_for(&uuid4(), SECRET))),
        json!({}),
    )
    .await;
    assert_401(&r, "token signed with a secret other than WEBUI_SECRET_KEY");
    // stdio servers do not inherit the secret.
    let environ = std::fs::read(format!("/proc/{}/environ", me.pid)).expect("environ");
    assert!(
        !String::from_utf8_lossy(&environ).contains(ENV_SECRET),
        "the user's stdio server inherited WEBUI_SECRET_KEY"
    );

    // The same through --webui-secret-key, and a per-server key wins over the global one.
    drop(m);
    let m = start_multi(
        json!({"multi_user": true}),
        &["--webui-secret-key", ENV_SECRET],
        &[],
    )
    .await;
    whoami(&m.mcpo, "fx", &token_for(&uuid4(), ENV_SECRET)).await;
    drop(m);
    let m = start_multi(multi_settings(), &["--webui-secret-key", ENV_SECRET], &[]).await;
    whoami(&m.mcpo, "fx", &token_for(&uuid4(), SECRET)).await;
    let r = post(
        &m.mcpo,
        "/fx/whoami",
        Some(&bearer(&token_for(&uuid4(), ENV_SECRET))),
        json!({}),
    )
    .await;
    assert_401(&r, "global secret where the server has its own");
}

// --- 8. tokens stay secret ---------------------------------------------------------------------

#[tokio::test]
async fn tokens_never_reach_logs_or_error_bodies() {
    let m = start_multi(multi_settings(), &[], &[("RUST_LOG", "debug")]).await;
    let mcpo = &m.mcpo;
    let user = uuid4();
    let t = now();
    let good = token(&user);
    let tokens = [
        good.clone(),
        token_for(&user, OTHER_SECRET),
        sign_hmac(
            Algorithm::HS256,
            &json!({"id": user, "exp": t - 120, "iat": t - 200, "jti": uuid4(), "typ": "session"}),
            SECRET.as_bytes(),
        ),
        sign_hmac(
            Algorithm::HS256,
            &json!({"id": user, "exp": t + 60, "typ": "refresh", "jti": uuid4()}),
            SECRET.as_bytes(),
        ),
        sign_hmac(Algorithm::HS512, &session_claims(&user), SECRET.as_bytes()),
        "sk-fedcba9876543210fedcba9876543210".to_owned(),
        "definitely.not.ajwt".to_owned(),
    ];
    let mut bodies = Vec::new();
    for tok in &tokens {
        let auth = bearer(tok);
        bodies.push(post(mcpo, "/fx/whoami", Some(&auth), json!({})).await);
        bodies.push(get(mcpo, "/fx/openapi.json", Some(&auth)).await);
        // Errors after authentication: unknown tool (404), bad arguments (422), bad JSON (400).
        bodies.push(post(mcpo, "/fx/no_such_tool", Some(&auth), json!({})).await);
        bodies.push(post(mcpo, "/fx/add", Some(&auth), json!({"a": "x"})).await);
        bodies.push(
            send(
                client()
                    .post(mcpo.url("/fx/echo"))
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await,
        );
        bodies.push(post(mcpo, "/fx/fail", Some(&auth), json!({})).await);
    }
    assert_eq!(bodies[0].status, StatusCode::OK, "{:?}", bodies[0]);
    assert!(
        bodies
            .iter()
            .any(|r| r.status == StatusCode::UNPROCESSABLE_ENTITY),
        "no 422 among {:?}",
        bodies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // Let the debug logs of those requests flush.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stderr = mcpo.stderr.text();
    let stdout = mcpo.stdout.text();
    assert!(
        stderr.lines().any(|l| l.contains("DEBUG")),
        "RUST_LOG=debug did not take effect:\n{stderr}"
    );
    for tok in &tokens {
        // The whole token, and each part that is specific to it (the header part of every HS256
        // token is the same 36 characters, so it proves nothing).
        let mut needles = vec![tok.as_str()];
        needles.extend(tok.split('.').skip(1).filter(|p| p.len() >= 16));
        for needle in needles {
            assert!(
                !stderr.contains(needle),
                "mcpo's stderr holds `{needle}`:\n{stderr}"
            );
            assert!(!stdout.contains(needle), "mcpo's stdout holds `{needle}`");
            for r in &bodies {
                assert!(
                    !r.text.contains(needle),
                    "a response holds `{needle}`: {r:?}"
                );
                for (name, value) in &r.headers {
                    assert!(
                        !value.to_str().unwrap_or("").contains(needle),
                        "response header {name} holds `{needle}`"
                    );
                }
            }
        }
    }
    assert!(
        !stderr.contains(SECRET),
        "mcpo's stderr holds the WEBUI secret"
    );
    assert!(bodies.iter().all(|r| !r.text.contains(SECRET)));
}

// --- 9. CORS for direct connections -----------------------------------------------------------

/// A user-level ("direct") Open WebUI connection runs in the browser: it preflights the spec
/// fetch and every call with `authorization,content-type,x-session-id`.
#[tokio::test]
async fn cors_preflight_allows_open_webui_direct_connections() {
    // Open WebUI's origin, as docs/open-webui.md says to give it (no origin is allowed by
    // default since #19 item 7).
    let origin = "http://localhost:8080";
    let m = start_multi(multi_settings(), &["--cors-allow-origins", origin], &[]).await;
    let mcpo = &m.mcpo;
    for (path, method) in [("/fx/whoami", "POST"), ("/fx/openapi.json", "GET")] {
        let r = send(
            client()
                .request(reqwest::Method::OPTIONS, mcpo.url(path))
                .header("origin", origin)
                .header("access-control-request-method", method)
                .header(
                    "access-control-request-headers",
                    "authorization,content-type,x-session-id",
                ),
        )
        .await;
        assert!(r.status.is_success(), "preflight {path}: {r:?}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(origin),
            "{r:?}"
        );
        let headers = r.items("access-control-allow-headers");
        for wanted in ["authorization", "content-type", "x-session-id"] {
            assert!(
                headers.iter().any(|h| h == wanted || h == "*"),
                "{path}: {wanted} not allowed: {headers:?}"
            );
        }
        let methods = r.items("access-control-allow-methods");
        assert!(
            methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method) || m == "*"),
            "{path}: {method} not allowed: {methods:?}"
        );
    }
    // The call itself, as the browser makes it.
    let jwt = token(&uuid4());
    let r = send(
        client()
            .post(mcpo.url("/fx/whoami"))
            .header("origin", origin)
            .header("authorization", bearer(&jwt))
            .header("x-session-id", uuid4())
            .json(&json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    // A 401 carries the CORS headers too, so the page can read why.
    let r = send(
        client()
            .post(mcpo.url("/fx/whoami"))
            .header("origin", origin)
            .json(&json!({})),
    )
    .await;
    assert_401(&r, "cross-origin call without a token");
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
}

// --- probes for src/ bugs (ignored: they fail until src/ is fixed) -------------------------------

/// BUG (src/http/identity.rs, `authorize`): on a multi-user server without `--api-key`, a tool
/// call whose `Authorization` header is not `Bearer` (Basic, or any other scheme) falls through
/// to `_ => Ok(Caller::Anonymous)` and is served on a shared anonymous session: no JWT needed.
#[tokio::test]
async fn regression_non_bearer_authorization_is_refused() {
    let m = start_multi(multi_settings(), &[], &[]).await;
    for auth in ["Basic dXNlcjpwYXNz", "Token abc", "Digest x"] {
        let r = post(&m.mcpo, "/fx/whoami", Some(auth), json!({})).await;
        assert_401(&r, auth);
    }
}

/// BUG (src/http/status.rs + catalog.rs): once the discovery session of a multi-user server is
/// closed, its upstream is `Stopped`, so `/readyz` answers 503 for ever and `/` and `/status`
/// call the server stopped, although it serves every user.
#[tokio::test]
async fn regression_readyz_stays_ready_after_discovery_closes() {
    let m = start_multi(multi_settings(), &[], &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    whoami(&m.mcpo, "fx", &token(&uuid4())).await;
    let r = get(&m.mcpo, "/readyz", None).await;
    let index = get(&m.mcpo, "/", None).await;
    let status = get(&m.mcpo, "/status", None).await;
    assert_eq!(r.status, StatusCode::OK, "/readyz: {}", r.text);
    assert_ne!(
        index.body["servers"][0]["status"],
        json!("stopped"),
        "/: {}",
        index.text
    );
    assert_ne!(
        status.body["servers"][0]["state"],
        json!("stopped"),
        "/status: {}",
        status.text
    );
}

/// BUG (src/sessions.rs + catalog.rs): only the *start* of a call counts as activity, so a call
/// that runs longer than `session_timeout_minutes` has its session closed under it by the idle
/// sweep.
#[tokio::test]
async fn regression_idle_sweep_spares_running_calls() {
    let mut settings = multi_settings();
    settings["session_timeout_minutes"] = json!(0.05);
    let m = start_multi(settings, &[], &[]).await;
    let jwt = token(&uuid4());
    let r = post(
        &m.mcpo,
        "/fx/slow",
        Some(&bearer(&jwt)),
        json!({"seconds": 6}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

/// BUG (same root as above, src/http/catalog.rs `for_user`): LRU eviction at `max_sessions`
/// closes a session whose call is still running.
#[tokio::test]
async fn regression_eviction_spares_running_calls() {
    let mut settings = multi_settings();
    settings["max_sessions"] = json!(1);
    let m = start_multi(settings, &[], &[]).await;
    let (a, b) = (token(&uuid4()), token(&uuid4()));
    let auth_a = bearer(&a);
    let slow = post(&m.mcpo, "/fx/slow", Some(&auth_a), json!({"seconds": 3}));
    let other = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        whoami(&m.mcpo, "fx", &b).await
    };
    let (r, _) = futures::join!(slow, other);
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

/// BUG (same root): with more concurrent users than `max_sessions`, a user's session is evicted
/// while it is still connecting, and the call fails with a misleading 503 "server 'fx' has been
/// stopped" (the server is fine; the user's fresh session was closed by another user's call).
#[tokio::test]
async fn regression_eviction_does_not_fail_concurrent_users() {
    let mut settings = multi_settings();
    settings["max_sessions"] = json!(2);
    let m = start_multi(settings, &[], &[]).await;
    let mcpo = &m.mcpo;
    let users: Vec<String> = (0..4).map(|_| bearer(&token(&uuid4()))).collect();
    let results: Vec<Reply> = futures::stream::iter((0..40).map(|i| users[i % 4].clone()))
        .map(|a| async move { post(mcpo, "/fx/whoami", Some(&a), json!({})).await })
        .buffer_unordered(4)
        .collect()
        .await;
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .map(|r| format!("{} {}", r.status, r.text))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 40 calls failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}

// --- 10. Open WebUI API keys and the signed user-info header -------------------------------------

/// A stand-in for Open WebUI's `GET /api/v1/users/user/status`, on loopback in this test
/// process: answers the user record (`id`, `email`, `role`, …) for the keys it knows, 401
/// otherwise, after 200 ms, and counts the lookups per presented credential.
struct FakeOpenWebUi {
    base: String,
    hits: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOpenWebUi {
    async fn start(users: &[(&str, &str)]) -> Self {
        use axum::extract::State;
        use axum::http::HeaderMap as AxumHeaders;
        type Shared = (
            std::collections::HashMap<String, String>,
            std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
        );
        async fn status(
            State(shared): State<std::sync::Arc<Shared>>,
            headers: AxumHeaders,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let (users, hits) = &*shared;
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            *hits.lock().unwrap().entry(auth.clone()).or_default() += 1;
            // As slow as a real database lookup, so concurrent calls overlap.
            tokio::time::sleep(Duration::from_millis(200)).await;
            match auth.strip_prefix("Bearer ").and_then(|k| users.get(k)) {
                Some(id) => axum::Json(json!({
                    "id": id, "name": "A User", "email": "user@example.com", "role": "user",
                    "status_emoji": null, "status_message": null,
                }))
                .into_response(),
                None => (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"detail": "Not authenticated"})),
                )
                    .into_response(),
            }
        }
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Default::default()));
        let shared: Shared = (
            users
                .iter()
                .map(|(k, id)| (k.to_string(), id.to_string()))
                .collect(),
            hits.clone(),
        );
        let app = axum::Router::new()
            .route("/api/v1/users/user/status", axum::routing::get(status))
            .with_state(std::sync::Arc::new(shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Open WebUI");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, hits, task }
    }

    /// Lookups made with `key`.
    fn hits(&self, key: &str) -> u64 {
        let hits = self.hits.lock().unwrap();
        hits.get(&bearer(key)).copied().unwrap_or(0)
    }
}

impl Drop for FakeOpenWebUi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An Open WebUI API key: `sk-` and 32 hex digits.
fn api_key() -> String {
    format!("sk-{}", uuid4().replace('-', ""))
}

/// Every credential of `secrets` is absent from mcpo's output (whole, and its distinctive parts).
fn assert_not_logged(mcpo: &Mcpo, secrets: &[&str]) {
    let (stderr, stdout) = (mcpo.stderr.text(), mcpo.stdout.text());
    for secret in secrets {
        let mut needles = vec![*secret];
        needles.extend(secret.split('.').skip(1).filter(|p| p.len() >= 16));
        if let Some(hex) = secret.strip_prefix("sk-") {
            needles.push(hex);
        }
        for needle in needles {
            assert!(
                !stderr.contains(needle),
                "stderr holds `{needle}`:\n{stderr}"
            );
            assert!(!stdout.contains(needle), "stdout holds `{needle}`");
        }
    }
}

/// `sk-…` keys are resolved through Open WebUI to the user's id: the key holder gets the same
/// session as that user's JWT, other keys other sessions; answers are cached (one lookup per
/// key), refusals too; keys never reach the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_resolve_through_open_webui_to_the_users_own_session() {
    let (alice, bob, carol) = (uuid4(), uuid4(), uuid4());
    let (alice_key, bob_key, carol_key, stolen_key) = (api_key(), api_key(), api_key(), api_key());
    let owui =
        FakeOpenWebUi::start(&[(&alice_key, &alice), (&bob_key, &bob), (&carol_key, &carol)]).await;
    let m = start_multi(
        multi_settings(),
        &["--webui-url", &owui.base],
        &[("RUST_LOG", "debug")],
    )
    .await;
    let mcpo = &m.mcpo;

    let a1 = whoami(mcpo, "fx", &alice_key).await;
    let a2 = whoami(mcpo, "fx", &alice_key).await;
    assert_eq!((a2.pid, a2.calls), (a1.pid, 2), "alice's key: one session");
    let b1 = whoami(mcpo, "fx", &bob_key).await;
    assert_ne!(b1.pid, a1.pid, "bob's key landed on alice's session");
    // Alice's JWT is the same user as her key: same session.
    let a3 = whoami(mcpo, "fx", &token(&alice)).await;
    assert_eq!((a3.pid, a3.calls), (a1.pid, 3), "alice's JWT vs her key");
    // Her key also gets her own spec.
    let spec = get(mcpo, "/fx/openapi.json", Some(&bearer(&alice_key))).await;
    assert_eq!(spec.status, StatusCode::OK, "{spec:?}");
    assert!(spec.body["paths"].get("/whoami").is_some(), "{spec:?}");
    // One lookup per key however often it is used (cached for 60 s).
    assert_eq!(owui.hits(&alice_key), 1, "alice's key was looked up again");
    assert_eq!(owui.hits(&bob_key), 1);
    // A burst of calls with a new key asks Open WebUI once, and all land on one session.
    let carol_pids: HashSet<u32> = futures::stream::iter(0..8)
        .map(|_| async { whoami(mcpo, "fx", &carol_key).await.pid })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(carol_pids.len(), 1, "{carol_pids:?}");
    assert_eq!(
        owui.hits(&carol_key),
        1,
        "a burst looked the key up more than once"
    );

    // A key Open WebUI refuses: 401, and the refusal is cached too.
    for _ in 0..3 {
        let r = post(mcpo, "/fx/whoami", Some(&bearer(&stolen_key)), json!({})).await;
        assert_401(&r, "a key Open WebUI refuses");
        assert!(r.text.contains("did not accept"), "{r:?}");
        assert!(!r.text.contains(&stolen_key), "{r:?}");
    }
    assert_eq!(owui.hits(&stolen_key), 1, "refusals are not cached");
    // A refused key gets no per-user spec either.
    let r = get(mcpo, "/fx/openapi.json", Some(&bearer(&stolen_key))).await;
    assert_401(&r, "spec with a refused key");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        mcpo.stderr.text().lines().any(|l| l.contains("DEBUG")),
        "RUST_LOG=debug did not take effect"
    );
    assert_not_logged(mcpo, &[&alice_key, &bob_key, &carol_key, &stolen_key]);
}

/// Without `--webui-url` an API key gets a 401 that says what to set.
#[tokio::test]
async fn api_keys_without_webui_url_get_a_401_with_the_hint() {
    let m = start_multi(multi_settings(), &[], &[("WEBUI_URL", "")]).await;
    let key = api_key();
    let r = post(&m.mcpo, "/fx/whoami", Some(&bearer(&key)), json!({})).await;
    assert_401(&r, "API key without --webui-url");
    let message = r.body["detail"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("--webui-url") && message.contains("WEBUI_URL"),
        "{message}"
    );
    assert!(!r.text.contains(&key));
}

/// An Open WebUI that is down answers a clear 503 at once, one that never answers a 504 after
/// the lookup timeout (not a hung call); an anonymous-friendly spec fetch still gets the shared
/// tool list. Failures are not cached: the next call asks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_open_webui_is_a_quick_clear_error() {
    // Down: a port nobody listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let m = start_multi(multi_settings(), &["--webui-url", &down], &[]).await;
    let key = api_key();
    let started = Instant::now();
    let r = post(&m.mcpo, "/fx/whoami", Some(&bearer(&key)), json!({})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let message = r.body["detail"]["message"].as_str().unwrap_or("");
    assert!(message.contains("cannot reach Open WebUI"), "{message}");
    assert!(
        message.contains(&down),
        "the message names where: {message}"
    );
    assert!(r.header("retry-after").is_some(), "{r:?}");
    let spec = get(&m.mcpo, "/fx/openapi.json", Some(&bearer(&key))).await;
    assert_eq!(spec.status, StatusCode::OK, "{spec:?}");
    assert!(spec.body["paths"].get("/whoami").is_some(), "{spec:?}");
    assert_not_logged(&m.mcpo, &[&key]);
    drop(m);

    // Hung: accepts connections, never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("http://{}", hung.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let m = start_multi(multi_settings(), &["--webui-url", &hung_url], &[]).await;
    let started = Instant::now();
    let r = post(&m.mcpo, "/fx/whoami", Some(&bearer(&key)), json!({})).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{r:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let message = r.body["detail"]["message"].as_str().unwrap_or("");
    assert!(message.contains("did not answer within"), "{message}");
    holder.abort();

    // Open WebUI back: the failure was not cached.
    let user = uuid4();
    let owui = FakeOpenWebUi::start(&[(&key, &user)]).await;
    drop(m);
    let m = start_multi(multi_settings(), &["--webui-url", &owui.base], &[]).await;
    let me = whoami(&m.mcpo, "fx", &key).await;
    assert_eq!(me.calls, 1);
    assert_eq!(owui.hits(&key), 1);
}

const HEADER_SECRET: &str = "forward-user-info-secret-31c7";

/// `X-OpenWebUI-User-Jwt` as Open WebUI mints it (`_mint_forward_user_jwt`, utils/headers.py).
fn user_info_claims(user: &str) -> Value {
    let t = now();
    json!({"sub": user, "email": "u@example.com", "name": "U", "role": "user",
           "iss": "open-webui", "iat": t, "exp": t + 300})
}

fn user_info_jwt(user: &str, secret: &str) -> String {
    sign_hmac(Algorithm::HS256, &user_info_claims(user), secret.as_bytes())
}

async fn call_with(mcpo: &Mcpo, headers: &[(&str, &str)]) -> Reply {
    let mut rb = client().post(mcpo.url("/fx/whoami")).json(&json!({}));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    send(rb).await
}

/// With `FORWARD_USER_INFO_HEADER_JWT_SECRET`, Open WebUI's signed user-info header names the
/// user (also next to a static bearer key, Open WebUI's `bearer` auth type); forged, `alg:
/// none`, expired or foreign tokens get 401, and the unsigned `X-OpenWebUI-User-Id` is never
/// trusted.
#[tokio::test]
async fn signed_user_info_header_names_the_user() {
    let m = start_multi(
        multi_settings(),
        &[],
        &[("FORWARD_USER_INFO_HEADER_JWT_SECRET", HEADER_SECRET)],
    )
    .await;
    let mcpo = &m.mcpo;
    let alice = uuid4();
    let hdr = "x-openwebui-user-jwt";

    let good = user_info_jwt(&alice, HEADER_SECRET);
    let r1 = call_with(mcpo, &[(hdr, &good)]).await;
    assert_eq!(r1.status, StatusCode::OK, "{r1:?}");
    let w1 = who_of(&r1);
    // A static bearer (not a JWT, not mcpo's key) next to it: still alice.
    let r2 = call_with(
        mcpo,
        &[
            (hdr, &good),
            ("authorization", "Bearer static-connection-key"),
        ],
    )
    .await;
    assert_eq!(r2.status, StatusCode::OK, "{r2:?}");
    assert_eq!((who_of(&r2).pid, who_of(&r2).calls), (w1.pid, 2));
    // Her session JWT names the same user.
    let w3 = whoami(mcpo, "fx", &token(&alice)).await;
    assert_eq!((w3.pid, w3.calls), (w1.pid, 3));
    // Another user's header: another session.
    let bob = call_with(mcpo, &[(hdr, &user_info_jwt(&uuid4(), HEADER_SECRET))]).await;
    assert_eq!(bob.status, StatusCode::OK, "{bob:?}");
    assert_ne!(who_of(&bob).pid, w1.pid);

    let t = now();
    let mut expired = user_info_claims(&alice);
    expired["exp"] = json!(t - 120);
    let mut foreign = user_info_claims(&alice);
    foreign["iss"] = json!("someone-else");
    let forged: Vec<(&str, String)> = vec![
        (
            "signed with WEBUI_SECRET_KEY",
            user_info_jwt(&alice, SECRET),
        ),
        (
            "signed with another secret",
            user_info_jwt(&alice, OTHER_SECRET),
        ),
        (
            "alg none",
            hand_built(
                &json!({"alg": "none", "typ": "JWT"}),
                &user_info_claims(&alice),
                b"",
            ),
        ),
        (
            "HS512",
            sign_hmac(
                Algorithm::HS512,
                &user_info_claims(&alice),
                HEADER_SECRET.as_bytes(),
            ),
        ),
        (
            "expired",
            sign_hmac(Algorithm::HS256, &expired, HEADER_SECRET.as_bytes()),
        ),
        (
            "another issuer",
            sign_hmac(Algorithm::HS256, &foreign, HEADER_SECRET.as_bytes()),
        ),
        (
            "a session JWT in the header",
            sign_hmac(
                Algorithm::HS256,
                &session_claims(&alice),
                HEADER_SECRET.as_bytes(),
            ),
        ),
    ];
    for (what, tok) in &forged {
        let r = call_with(mcpo, &[(hdr, tok)]).await;
        assert_401(&r, what);
        let message = r.body["detail"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("X-OpenWebUI-User-Jwt"),
            "{what}: {message}"
        );
        // A bad header is refused even next to a valid session JWT (no silent fallback).
        let r = call_with(
            mcpo,
            &[(hdr, tok), ("authorization", &bearer(&token(&alice)))],
        )
        .await;
        assert_401(&r, what);
    }
    // The unsigned headers name nobody.
    let r = call_with(
        mcpo,
        &[
            ("x-openwebui-user-id", &alice),
            ("x-openwebui-user-role", "admin"),
        ],
    )
    .await;
    assert_401(&r, "unsigned X-OpenWebUI-User-Id");

    let mut secrets: Vec<&str> = forged.iter().map(|(_, t)| t.as_str()).collect();
    secrets.push(&good);
    assert_not_logged(mcpo, &secrets);
    assert!(!mcpo.stderr.text().contains(HEADER_SECRET));
}

/// Without the secret the header is ignored, and the 401 says what to set.
#[tokio::test]
async fn user_info_header_without_its_secret_is_ignored() {
    let m = start_multi(
        multi_settings(),
        &[],
        &[("FORWARD_USER_INFO_HEADER_JWT_SECRET", "")],
    )
    .await;
    let tok = user_info_jwt(&uuid4(), HEADER_SECRET);
    let r = call_with(&m.mcpo, &[("x-openwebui-user-jwt", &tok)]).await;
    assert_401(&r, "user-info header without its secret");
    let message = r.body["detail"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("--webui-user-jwt-secret"),
        "no hint in: {message}"
    );
}

/// A `--webui-url` that is not an http(s) URL stops mcpo at start, naming the flag.
#[test]
fn a_malformed_webui_url_is_a_startup_error() {
    let entry = fixture_stdio_entry();
    let config = write_config(&json!({"mcpServers": {"fx": entry}}).to_string());
    let config_path = config.path().to_str().unwrap();
    for bad in ["localhost:8080", "ftp://owui.example", "http//typo"] {
        let (status, stderr) = run_refused(&["--config", config_path, "--webui-url", bad]);
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("--webui-url") && stderr.contains(bad),
            "{bad}: {stderr}"
        );
    }
}
