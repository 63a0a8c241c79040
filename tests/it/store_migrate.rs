//! `mcpo store migrate` (#18) with real sealed records: a user's secret entered on mcpo's
//! credentials page (the real binary, the repo's fixture over streamable HTTP) is copied from
//! the token folder into a real `redis-server` and back into another token folder, byte for
//! byte, and an mcpo on that folder serves the user without asking again. Redis holds the
//! sealed bytes only (its raw values are scanned for the secret), a record that differs at the
//! destination is not overwritten unless asked, `mcpo store list --store redis://…` lists the
//! records, and an unreachable Redis is a clear failure naming it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::user_secrets::HttpFixture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WEBUI_SECRET: &str = "owui-migrate-test-5c2a9e";
const INFO_SECRET: &str = "forward-user-info-migrate-81f0";
const KEY_ALICE: &str = "alice-key-Mg27rTq9";
const PASSWORD: &str = "redis-pw-Mg55wQ1z";

fn store_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

fn session_jwt(user: &str) -> String {
    let t = now();
    let claims = json!({"id": user, "exp": t + 3600, "iat": t, "jti": format!("j-{user}-{t}"), "typ": "session"});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(WEBUI_SECRET.as_bytes()),
    )
    .unwrap()
}

fn info_jwt(user: &str) -> String {
    let t = now();
    let claims = json!({"sub": user, "email": format!("{user}@example.com"), "name": user,
                        "role": "user", "iss": "open-webui", "iat": t, "exp": t + 300});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(INFO_SECRET.as_bytes()),
    )
    .unwrap()
}

/// mcpo serving the multi-user server `gh` (one user secret, `token`) on the token folder
/// `tokens`, sealing with [`store_key`].
fn start_mcpo(config: &Path, tokens: &Path) -> Mcpo {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let key = store_key();
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
        ],
        &[
            ("MCPO_TOKEN_DIR", tokens.to_str().unwrap()),
            ("MCPO_STORE_KEY", key.as_str()),
        ],
    )
}

async fn call(mcpo: &Mcpo, user: &str) -> Reply {
    send(
        client()
            .post(mcpo.url("/gh/report_headers"))
            .header("authorization", bearer(&session_jwt(user)))
            .header("x-openwebui-user-jwt", info_jwt(user))
            .json(&json!({})),
    )
    .await
}

/// Alice enters her key on the credentials page, as a browser does.
async fn enter_key(mcpo: &Mcpo) {
    let r = call(mcpo, "alice").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let url = r.body["detail"]["credentials_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no credentials_url: {}", r.text))
        .to_owned();
    let page = send(client().get(&url)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let cookie = page
        .header("set-cookie")
        .expect("the form cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let ticket = reqwest::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
        .expect("ticket");
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("ticket", ticket.as_str()),
            ("action", "save"),
            ("s_token", KEY_ALICE),
        ])
        .finish();
    let saved = send(
        client()
            .post(url.split('?').next().unwrap())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .header("cookie", cookie)
            .body(body),
    )
    .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
}

/// Alice's call reaches the upstream with her key.
async fn assert_served_with_her_key(mcpo: &Mcpo) {
    let r = call(mcpo, "alice").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen: Value =
        serde_json::from_str(r.body.as_str().unwrap_or(&r.text)).unwrap_or(r.body.clone());
    assert_eq!(
        seen["authorization"],
        format!("Bearer {KEY_ALICE}"),
        "{seen}"
    );
}

/// Every record file under `root`, by its path relative to `root`.
fn records(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(".json") {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Runs `mcpo args` with `env` (and no store key or store from the test's environment):
/// exit code and stdout + stderr; stopped by its handle after 30 s.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(mcpo_bin());
    cmd.args(args)
        .env_remove("MCPO_STORE")
        .env_remove("MCPO_STORE_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn mcpo");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            stop_child(&mut child, Duration::from_secs(2));
            panic!("mcpo {args:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code(), text)
}

#[tokio::test]
async fn records_go_to_redis_sealed_and_come_back_byte_for_byte() {
    let Some(mut redis) = Redis::start_with_password(PASSWORD) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let keys = home.path().join("keys.txt");
    std::fs::write(&keys, KEY_ALICE).unwrap();
    let fixture = HttpFixture::start(&keys);
    let config = home.path().join("config.json");
    let server = json!({
        "type": "streamable-http",
        "url": format!("{}/mcp", fixture.base),
        "multi_user": true,
        "webui_secret_key": WEBUI_SECRET,
        "user_secrets": { "token": { "title": "Access token" } },
        "headers": { "Authorization": "Bearer {{USER_SECRET:token}}" }
    });
    std::fs::write(
        &config,
        json!({ "mcpServers": { "gh": server } }).to_string(),
    )
    .unwrap();
    let first: PathBuf = home.path().join("one").join("tokens");
    let second: PathBuf = home.path().join("two").join("tokens");

    // A real sealed record: Alice's key, entered through mcpo on the first token folder.
    let mut mcpo = start_mcpo(&config, &first);
    enter_key(&mcpo).await;
    assert_served_with_her_key(&mcpo).await;
    mcpo.stop();
    let stored = records(&first);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (name, bytes) = &stored[0];
    assert!(
        name.starts_with("gh/") && name.ends_with("_secrets.json"),
        "{name}"
    );

    // Into Redis, the URL on the command line (warned about; the password never printed).
    let url = redis.url();
    let shown = format!("redis://127.0.0.1:{}/0", redis.port());
    let first_dir = first.to_str().unwrap();
    let (code, out) = run(
        &["store", "migrate", "--from", "file", "--to", &url],
        &[("MCPO_TOKEN_DIR", first_dir)],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 record(s) copied"), "{out}");
    assert!(
        out.contains(&shown) && out.contains("/proc/PID/cmdline"),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");
    // The record's key is the prefix and its path; its value the file's bytes, sealed.
    let values = redis.raw_values();
    assert_eq!(
        values,
        vec![(format!("mcpo:{name}"), bytes.clone())],
        "Redis holds something else"
    );
    for (key, value) in &values {
        assert!(
            !contains(value, KEY_ALICE),
            "{key} holds the secret in plain text"
        );
    }
    // Run again: nothing new. A record that differs in Redis is not overwritten unless asked.
    let (code, out) = run(
        &["store", "migrate", "--from", "file"],
        &[("MCPO_TOKEN_DIR", first_dir), ("MCPO_STORE", url.as_str())],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("0 record(s) copied") && out.contains("1 already there"),
        "{out}"
    );
    assert!(!out.contains("/proc/PID/cmdline"), "{out}");
    let mut con = redis.connection();
    let () = redis::cmd("SET")
        .arg(format!("mcpo:{name}"))
        .arg("other bytes")
        .query(&mut con)
        .unwrap();
    let env = [("MCPO_TOKEN_DIR", first_dir), ("MCPO_STORE", url.as_str())];
    let (code, out) = run(&["store", "migrate", "--from", "file"], &env);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(name.as_str()) && out.contains("--overwrite"),
        "{out}"
    );
    let kept: Vec<u8> = redis::cmd("GET")
        .arg(format!("mcpo:{name}"))
        .query(&mut con)
        .unwrap();
    assert_eq!(kept, b"other bytes");
    let (code, out) = run(&["store", "migrate", "--from", "file", "--overwrite"], &env);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 overwritten"), "{out}");
    assert_eq!(
        redis.raw_values(),
        vec![(format!("mcpo:{name}"), bytes.clone())]
    );

    // `store list` on Redis: whose record, which kind, sealed; no value.
    let key = store_key();
    let (code, out) = run(
        &["store", "list"],
        &[
            ("MCPO_STORE", url.as_str()),
            ("MCPO_STORE_KEY", key.as_str()),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("gh\talice\tsecrets\tsealed (key id"), "{out}");
    assert!(out.contains(&format!("key mcpo:{name}")), "{out}");
    assert!(!out.contains(KEY_ALICE) && !out.contains(PASSWORD), "{out}");

    // Another prefix is another namespace.
    let (code, out) = run(
        &[
            "store",
            "migrate",
            "--from",
            "file",
            "--store-prefix",
            "tenant-b:",
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(redis.keys("tenant-b:*"), vec![format!("tenant-b:{name}")]);

    // Back into another token folder (the Redis side from MCPO_STORE): the same bytes, and an
    // mcpo there serves Alice with her key, without asking for it again. A key under the
    // prefix that is no record name inside the token folder is never a path.
    for hostile in [
        "mcpo:../escape_tokens.json",
        "mcpo:gh/../../escape_tokens.json",
    ] {
        let () = redis::cmd("SET")
            .arg(hostile)
            .arg(bytes.as_slice())
            .query(&mut con)
            .unwrap();
    }
    let second_dir = second.to_str().unwrap();
    let (code, out) = run(
        &["store", "migrate", "--to", "file"],
        &[("MCPO_TOKEN_DIR", second_dir), ("MCPO_STORE", url.as_str())],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 record(s) copied"), "{out}");
    assert_eq!(records(&second), stored);
    assert!(!home.path().join("two").join("escape_tokens.json").exists());
    assert!(!home.path().join("escape_tokens.json").exists());
    let mcpo = start_mcpo(&config, &second);
    assert_served_with_her_key(&mcpo).await;
    drop(mcpo);

    // Redis gone: a clear failure naming the store, quickly, and nothing written.
    redis.stop();
    let started = Instant::now();
    let (code, out) = run(&["store", "migrate", "--from", "file"], &env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&shown) && out.contains("unavailable"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let (code, out) = run(
        &["store", "migrate", "--to", "file"],
        &[
            (
                "MCPO_TOKEN_DIR",
                home.path().join("three").to_str().unwrap(),
            ),
            ("MCPO_STORE", url.as_str()),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&shown) && out.contains("unavailable"), "{out}");
    assert!(!home.path().join("three").exists());
}

#[test]
fn the_same_store_on_both_sides_or_a_bad_url_is_refused() {
    let (code, out) = run(&["store", "migrate", "--from", "file"], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("same store"), "{out}");
    let (code, out) = run(
        &[
            "store",
            "migrate",
            "--from",
            "file",
            "--to",
            &format!("mysql://u:{PASSWORD}@h/x"),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--to"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
}
