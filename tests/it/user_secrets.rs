//! Per-user secrets and identity templates (`user_secrets`, `{{USER_SECRET:…}}`,
//! `{{USER_ID}}`…) through the real `mcpo` binary and the repo's fixture: over streamable HTTP
//! the fixture accepts only the keys listed in a file (401 to any other) and reports the
//! headers each call arrived with; over stdio it exits during `initialize` on a key it does not
//! accept and reports its environment and command line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const WEBUI_SECRET: &str = "owui-secrets-test-7d1e4b";
pub(crate) const INFO_SECRET: &str = "forward-user-info-secret-5a90";
pub(crate) const KEY_ALICE: &str = "alice-key-Zq81vKx2";
pub(crate) const KEY_BOB: &str = "bob-key-Hh40pLm7";
const KEY_WRONG: &str = "wrong-key-Uu55tTr9";

pub(crate) fn session_jwt(user: &str) -> String {
    let t = now();
    let claims = json!({"id": user, "exp": t + 3600, "iat": t, "jti": format!("j-{user}-{t}"), "typ": "session"});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(WEBUI_SECRET.as_bytes()),
    )
    .unwrap()
}

pub(crate) fn info_jwt(user: &str, email: &str, name: &str, role: &str) -> String {
    let t = now();
    let claims = json!({"sub": user, "email": email, "name": name, "role": role,
                        "iss": "open-webui", "iat": t, "exp": t + 300});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(INFO_SECRET.as_bytes()),
    )
    .unwrap()
}

/// The fixture in streamable-HTTP mode with the credentials check and reports on.
pub(crate) struct HttpFixture {
    child: Child,
    pub(crate) base: String,
}

impl HttpFixture {
    pub(crate) fn start(keys: &Path) -> Self {
        let mut child = Command::new(fixture_bin())
            .arg("http")
            .env("FIXTURE_ACCEPTED_KEYS", keys)
            .env("FIXTURE_REPORT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fixture");
        // The fixture prints exactly one line on stdout once it listens.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("fixture stdout");
        let base = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("fixture did not start: {line:?}"))
            .to_owned();
        Self { child, base }
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

/// A temporary home for one test: the token folder (and the store key next to it), the
/// fixture's accepted keys, the config.
pub(crate) struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub(crate) fn tokens(&self) -> PathBuf {
        self.dir.path().join("state").join("tokens")
    }
    pub(crate) fn keys(&self) -> PathBuf {
        self.dir.path().join("keys.txt")
    }
    pub(crate) fn accept(&self, keys: &[&str]) {
        std::fs::write(self.keys(), keys.join("\n")).unwrap();
    }
    pub(crate) fn config(&self, servers: Value) -> PathBuf {
        let path = self.dir.path().join("config.json");
        std::fs::write(&path, json!({ "mcpServers": servers }).to_string()).unwrap();
        path
    }
    /// Every byte of every file under the state folder.
    fn all_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("state"), &mut out);
        out
    }
}

fn start_mcpo(home: &Home, config: &Path, port: u16, env: &[(&str, &str)]) -> Mcpo {
    let public = format!("http://127.0.0.1:{port}");
    let port = port.to_string();
    let tokens = home.tokens();
    let mut all = vec![("MCPO_TOKEN_DIR", tokens.to_str().unwrap())];
    all.extend_from_slice(env);
    Mcpo::start_with_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--port",
            &port,
            "--public-url",
            &public,
            "--webui-user-jwt-secret",
            INFO_SECRET,
        ],
        &all,
    )
}

pub(crate) fn http_server(fixture: &HttpFixture) -> Value {
    json!({
        "type": "streamable-http",
        "url": format!("{}/mcp", fixture.base),
        "multi_user": true,
        "webui_secret_key": WEBUI_SECRET,
        "user_secrets": {
            "token": {"title": "Personal access token", "description": "Read access is enough.",
                      "help_url": "https://example.com/settings/tokens"}
        },
        "headers": {
            "Authorization": "Bearer {{USER_SECRET:token}}",
            "X-User-Id": "{{USER_ID}}",
            "X-User-Email": "{{USER_EMAIL}}",
            "X-User-Name": "{{USER_NAME}}",
            "X-User-Role": "{{USER_ROLE}}"
        }
    })
}

/// A tool call as Open WebUI makes it: the session JWT, and the signed user-info header.
pub(crate) async fn call(mcpo: &Mcpo, path: &str, user: &str, body: Value) -> Reply {
    send(
        client()
            .post(mcpo.url(path))
            .header("authorization", bearer(&session_jwt(user)))
            .header(
                "x-openwebui-user-jwt",
                info_jwt(
                    user,
                    &format!("{user}@example.com"),
                    &format!("Name {user}"),
                    "user",
                ),
            )
            .json(&body),
    )
    .await
}

/// The credentials link of a 401.
pub(crate) fn credentials_url(r: &Reply) -> String {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    r.body["detail"]["credentials_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no credentials_url: {}", r.text))
        .to_owned()
}

pub(crate) fn ticket_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
        .expect("ticket")
}

/// Opens the link like a browser: the page, and the form's cookie (`name=value`).
pub(crate) async fn open_page(url: &str) -> (Reply, String) {
    let page = send(client().get(url)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let cookie = page
        .header("set-cookie")
        .expect("the page sets its form cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (page, cookie)
}

/// Submits the page's form from the page (same origin, its cookie).
pub(crate) async fn submit(
    url: &str,
    cookie: Option<&str>,
    site: &str,
    fields: &[(&str, &str)],
) -> Reply {
    let action = url.split('?').next().unwrap();
    let mut form: Vec<(&str, String)> = vec![("ticket", ticket_of(url))];
    form.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = client()
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", site)
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(request).await
}

/// Whether `needle` occurs anywhere in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn each_user_reaches_the_upstream_with_their_own_key_entered_on_the_page() {
    let home = Home::new();
    home.accept(&[KEY_ALICE, KEY_BOB]);
    let fixture = HttpFixture::start(&home.keys());
    let config = home.config(json!({ "gh": http_server(&fixture) }));
    let port = free_port();
    // The most verbose level mcpo has, rmcp's own output included.
    let mut mcpo = start_mcpo(&home, &config, port, &[("RUST_LOG", "trace")]);

    // Before anyone entered a key there is no session: the spec offers the credentials link.
    let spec = get_ok(&mcpo, "/gh/openapi.json").await;
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/credentials/link"), "{spec}");
    assert_eq!(
        paths["/credentials/link"]["post"]["operationId"],
        "gh_credentials"
    );

    // A user without a key: 401 with a link; the credentials operation gives a fresh one.
    let r = call(&mcpo, "/gh/report_headers", "alice", json!({})).await;
    let url = credentials_url(&r);
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/credentials/gh?ticket=")),
        "{url}"
    );
    let op = call(&mcpo, "/gh/credentials/link", "alice", json!({})).await;
    assert_eq!(op.status, StatusCode::OK, "{}", op.text);
    assert_eq!(op.body["stored"], false);
    assert_ne!(op.body["credentials_url"], url.as_str());

    // A link previewer's GET uses nothing up; the page is locked down.
    let (page, cookie) = open_page(&url).await;
    let (again, _) = open_page(&url).await;
    assert!(page.text.contains("Personal access token") && again.text.contains("alice"));
    assert!(page.text.contains("https://example.com/settings/tokens"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(
        page.header("set-cookie")
            .unwrap()
            .contains("SameSite=Strict")
    );

    // Refused submissions store nothing: cross-site, and without the page's cookie.
    let cross = submit(
        &url,
        Some(&cookie),
        "cross-site",
        &[("action", "save"), ("s_token", KEY_ALICE)],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "{}", cross.text);
    let no_cookie = submit(
        &url,
        None,
        "same-origin",
        &[("action", "save"), ("s_token", KEY_ALICE)],
    )
    .await;
    assert_eq!(
        no_cookie.status,
        StatusCode::FORBIDDEN,
        "{}",
        no_cookie.text
    );
    // A key the upstream refuses is not stored, and the page says why; the link still works.
    let wrong = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_token", KEY_WRONG)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert!(wrong.text.contains("did not accept"), "{}", wrong.text);
    assert!(!wrong.text.contains(KEY_WRONG));
    let status = send(
        client()
            .get(mcpo.url("/credentials/gh/status"))
            .header("authorization", bearer(&session_jwt("alice"))),
    )
    .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(status.body["stored"], false, "{}", status.text);
    assert_eq!(status.body["missing"], json!(["token"]));
    assert!(
        !home
            .all_bytes()
            .iter()
            .any(|(p, _)| p.to_string_lossy().ends_with("_secrets.json")),
        "a refused key was stored"
    );

    // The right key is tried, stored and used; the used link cannot be replayed.
    let ok = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_token", KEY_ALICE)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(ok.text.contains("accepted"), "{}", ok.text);
    let replay = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_token", KEY_ALICE)],
    )
    .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.text.contains("already used"), "{}", replay.text);
    let (_, _) = (page, again);
    let r = send(client().get(&url)).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a used link still opens the form"
    );

    // Bob enters his own.
    let bob_url = credentials_url(&call(&mcpo, "/gh/report_headers", "bob", json!({})).await);
    let (_, bob_cookie) = open_page(&bob_url).await;
    let ok = submit(
        &bob_url,
        Some(&bob_cookie),
        "same-origin",
        &[("action", "save"), ("s_token", KEY_BOB)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    // Each reaches the upstream with their own key and identity, and only theirs.
    for (user, key) in [("alice", KEY_ALICE), ("bob", KEY_BOB)] {
        let r = call(&mcpo, "/gh/report_headers", user, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let seen: Value =
            serde_json::from_str(r.body.as_str().unwrap_or(&r.text)).unwrap_or(r.body.clone());
        assert_eq!(seen["authorization"], format!("Bearer {key}"), "{seen}");
        assert_eq!(seen["x-user-id"], user);
        assert_eq!(seen["x-user-email"], format!("{user}@example.com"));
        assert_eq!(seen["x-user-name"], format!("Name {user}"));
        assert_eq!(seen["x-user-role"], "user");
    }
    let status = send(
        client()
            .get(mcpo.url("/credentials/gh/status"))
            .header("authorization", bearer(&session_jwt("alice"))),
    )
    .await;
    assert_eq!(status.body["stored"], true, "{}", status.text);
    assert_eq!(status.body["missing"], json!([]));
    assert!(!status.text.contains(KEY_ALICE));

    // On disk: sealed records, no key in plain text anywhere.
    let files = home.all_bytes();
    let sealed: Vec<_> = files
        .iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with("_secrets.json"))
        .collect();
    assert_eq!(
        sealed.len(),
        2,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        for key in [KEY_ALICE, KEY_BOB] {
            assert!(
                !contains(bytes, key),
                "{} holds a key in plain text",
                path.display()
            );
        }
    }
    assert!(sealed.iter().all(|(_, b)| b.starts_with(b"MCPOSR")));

    // Alice's key is revoked upstream: her next call gets a 401 with a new link (the
    // upstream's 401 is not passed on as a 502, nor retried).
    home.accept(&[KEY_BOB]);
    let asked = call(&mcpo, "/gh/report_headers", "alice", json!({})).await;
    let new_url = credentials_url(&asked);
    assert!(
        asked.body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    let again = call(&mcpo, "/gh/report_headers", "alice", json!({})).await;
    credentials_url(&again);
    let bob = call(&mcpo, "/gh/report_headers", "bob", json!({})).await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.text);

    // Alice forgets hers on the same page.
    let (forget_page, forget_cookie) = open_page(&new_url).await;
    assert!(forget_page.text.contains("Forget my credentials"));
    let forgot = submit(
        &new_url,
        Some(&forget_cookie),
        "same-origin",
        &[("action", "forget")],
    )
    .await;
    assert_eq!(forgot.status, StatusCode::OK, "{}", forgot.text);
    let status = send(
        client()
            .get(mcpo.url("/credentials/gh/status"))
            .header("authorization", bearer(&session_jwt("alice"))),
    )
    .await;
    assert_eq!(status.body["stored"], false, "{}", status.text);
    assert_eq!(
        home.all_bytes()
            .iter()
            .filter(|(p, _)| p.to_string_lossy().ends_with("_secrets.json"))
            .count(),
        1
    );

    // Nor in /status, /metrics or the specs.
    for path in ["/status", "/metrics", "/gh/openapi.json", "/openapi.json"] {
        let r = get(&mcpo, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert!(
            !r.text.contains(KEY_ALICE) && !r.text.contains(KEY_BOB),
            "{path}"
        );
    }

    // Nothing of either key in the log, at trace level.
    mcpo.stop();
    let log = mcpo.stderr.text();
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "not a trace log"
    );
    for key in [KEY_ALICE, KEY_BOB, KEY_WRONG] {
        assert!(!log.contains(key), "a key is in the log");
    }

    // `mcpo store list` shows whose secrets are stored, no values; `mcpo store rekey`
    // re-seals them under a new key.
    let store_cli = |args: &[&str]| {
        let out = Command::new(mcpo_bin())
            .args(args)
            .env("MCPO_TOKEN_DIR", home.tokens())
            .env_remove("MCPO_STORE_KEY")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let listed = store_cli(&["store", "list"]);
    assert!(
        listed.contains("secrets") && listed.contains("bob"),
        "{listed}"
    );
    assert!(!listed.contains(KEY_BOB));
    let key_file = home.dir.path().join("state").join("store.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let rekeyed = store_cli(&["store", "rekey"]);
    assert!(rekeyed.contains("1 file(s) re-encrypted"), "{rekeyed}");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_key);

    // A restart (with the new key) keeps Bob's key: he is served without entering it again.
    let mut mcpo = start_mcpo(&home, &config, free_port(), &[]);
    let r = call(&mcpo, "/gh/report_headers", "bob", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains(KEY_BOB));
    let r = call(&mcpo, "/gh/report_headers", "alice", json!({})).await;
    credentials_url(&r);
    mcpo.stop();

    // Bob's key revoked while mcpo was down: his session is refused at `initialize`, and his
    // call gets the 401 at once (not a 503 after retries), twice.
    home.accept(&[]);
    let mcpo = start_mcpo(&home, &config, free_port(), &[]);
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let r = call(&mcpo, "/gh/report_headers", "bob", json!({})).await;
        credentials_url(&r);
        assert!(r.text.contains("refused"), "{}", r.text);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// The fixture over stdio as a multi-user "search" server: each user's `api_key` in
/// `SEARCH_API_KEY` (refused at start unless listed in `keys`), their id and email in `WHO`,
/// the `report_env` tool; `extra` variables on top.
fn search_entry(keys: &Path, extra: Value) -> Value {
    let mut entry = fixture_stdio_entry();
    entry["multi_user"] = json!(true);
    entry["webui_secret_key"] = json!(WEBUI_SECRET);
    entry["user_secrets"] = json!({"api_key": {"title": "Search API key"}});
    let mut env = json!({
        "SEARCH_API_KEY": "{{USER_SECRET:api_key}}",
        "WHO": "{{USER_ID}} <{{USER_EMAIL}}>",
        "FIXTURE_KEY_VAR": "SEARCH_API_KEY",
        "FIXTURE_ACCEPTED_KEYS": keys.to_str().unwrap(),
        "FIXTURE_REPORT": "1"
    });
    if let (Some(env), Some(extra)) = (env.as_object_mut(), extra.as_object()) {
        env.extend(extra.clone());
    }
    entry["env"] = env;
    entry
}

#[tokio::test]
async fn stdio_servers_get_each_users_key_in_their_environment_never_on_the_command_line() {
    let home = Home::new();
    home.accept(&[KEY_ALICE]);
    let keys = home.keys();
    let entry = search_entry(&keys, json!({}));
    let config = home.config(json!({ "search": entry }));
    let mcpo = start_mcpo(&home, &config, free_port(), &[]);

    let url =
        credentials_url(&call(&mcpo, "/search/report_env", "alice", json!({"names": []})).await);
    let (_, cookie) = open_page(&url).await;
    // A key the server refuses (it exits during initialize): nothing stored.
    let wrong = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_api_key", KEY_WRONG)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert!(
        !home
            .all_bytes()
            .iter()
            .any(|(p, _)| p.to_string_lossy().ends_with("_secrets.json"))
    );
    let ok = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_api_key", KEY_ALICE)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    let r = call(
        &mcpo,
        "/search/report_env",
        "alice",
        json!({"names": ["SEARCH_API_KEY", "WHO"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen: Value =
        serde_json::from_str(r.body.as_str().unwrap_or(&r.text)).unwrap_or(r.body.clone());
    assert_eq!(seen["env"]["SEARCH_API_KEY"], KEY_ALICE, "{seen}");
    assert_eq!(seen["env"]["WHO"], "alice <alice@example.com>");
    assert!(!seen["args"].to_string().contains(KEY_ALICE));
    // Bob has none: he is asked, and never gets Alice's.
    credentials_url(&call(&mcpo, "/search/report_env", "bob", json!({"names": []})).await);
    drop(mcpo);

    // Under another store key Alice's record does not open: 503 naming the store and the
    // file, and the file is left as it was.
    let record = home
        .all_bytes()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().ends_with("_secrets.json"))
        .expect("alice's record");
    let other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mcpo = start_mcpo(
        &home,
        &config,
        free_port(),
        &[("MCPO_STORE_KEY", other_key)],
    );
    let r = call(&mcpo, "/search/report_env", "alice", json!({"names": []})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(
        r.text.contains("secret store") && r.text.contains("_secrets.json"),
        "{}",
        r.text
    );
    assert!(!r.text.contains(KEY_ALICE));
    assert_eq!(std::fs::read(&record.0).unwrap(), record.1);
}

fn validate(config: &Value) -> (Option<i32>, String) {
    let file = write_config(&json!({ "mcpServers": config }).to_string());
    let out = Command::new(mcpo_bin())
        .args(["validate", "--config", file.path().to_str().unwrap()])
        .env_remove("MCPO_API_KEY")
        .env("SNEAKY", "{{USER_SECRET:token}}")
        // The daemon's own rule, which validate checks too: the credentials page's links
        // need it.
        .env("MCPO_PUBLIC_URL", "https://mcpo.example.com")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn template_and_user_secrets_mistakes_are_config_errors_naming_server_and_secret() {
    let remote = |extra: Value| {
        let mut entry = json!({"type": "streamable-http", "url": "http://127.0.0.1:9/mcp"});
        entry
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        entry
    };
    let multi = json!({"multi_user": true, "webui_secret_key": WEBUI_SECRET});
    let with = |a: &Value, b: Value| {
        let mut a = a.clone();
        a.as_object_mut()
            .unwrap()
            .extend(b.as_object().unwrap().clone());
        a
    };

    // A template naming an undeclared secret.
    let (code, out) = validate(&json!({"gh": remote(with(&multi, json!({
        "user_secrets": {"token": {"title": "Token"}},
        "headers": {"Authorization": "Bearer {{USER_SECRET:tokn}}"}
    })))}));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("server 'gh'")
            && out.contains("'tokn'")
            && out.contains("headers.Authorization"),
        "{out}"
    );

    // `user_secrets` on a shared server.
    let (code, out) = validate(&json!({"gh": remote(json!({
        "user_secrets": {"token": {"title": "Token"}}
    }))}));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("server 'gh'") && out.contains("user_secrets") && out.contains("multi_user"),
        "{out}"
    );

    // `{{USER_ID}}` on a shared server.
    let (code, out) = validate(&json!({"gh": remote(json!({
        "headers": {"X-User": "{{USER_ID}}"}
    }))}));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("server 'gh'") && out.contains("{{USER_ID}}") && out.contains("shared"),
        "{out}"
    );

    // An unknown template.
    let (code, out) = validate(&json!({"gh": remote(with(&multi, json!({
        "headers": {"X-User": "{{USER_PHONE}}"}
    })))}));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("USER_PHONE"), "{out}");

    // A `${VAR}` whose value looks like a template is text, never a template: valid on a
    // shared server, and the server needs no secret.
    let (code, out) = validate(&json!({"gh": remote(json!({
        "headers": {"X-Literal": "${SNEAKY}"}
    }))}));
    assert_eq!(code, Some(0), "{out}");

    // The declared, used secret on a multi-user server is fine.
    let (code, out) = validate(&json!({"gh": remote(with(&multi, json!({
        "user_secrets": {"token": {"title": "Token"}},
        "headers": {"Authorization": "Bearer {{USER_SECRET:token}}"}
    })))}));
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn startup_needs_public_url_and_warns_when_no_identity_source_fills_email() {
    let home = Home::new();
    let mut entry = fixture_stdio_entry();
    entry["multi_user"] = json!(true);
    entry["webui_secret_key"] = json!(WEBUI_SECRET);
    entry["user_secrets"] = json!({"api_key": {"title": "API key"}});
    entry["env"] = json!({"KEY": "{{USER_SECRET:api_key}}", "WHO": "{{USER_EMAIL}}"});
    let config = home.config(json!({ "search": entry }));
    // The credentials links are built on --public-url alone: no start without it.
    let (status, err) = run_refused(&["--config", config.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("server 'search'") && err.contains("--public-url"),
        "{err}"
    );
    // With it, but without --webui-user-jwt-secret, {{USER_EMAIL}} stays empty: a warning.
    let mut mcpo = Mcpo::start_with_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--public-url",
            "http://127.0.0.1:9",
        ],
        &[("MCPO_TOKEN_DIR", home.tokens().to_str().unwrap())],
    );
    mcpo.stop();
    let log = mcpo.stderr.text();
    assert!(
        log.contains("--webui-user-jwt-secret") && log.contains("{{USER_EMAIL}}"),
        "{log}"
    );
}

/// A server that prints the key it was given (as many do when they refuse one) must not put
/// it in mcpo's log, the page or `/status`: its stderr and failure texts are scrubbed of the
/// secrets its session was started with.
#[tokio::test]
async fn a_server_echoing_its_key_to_stderr_does_not_put_it_in_the_log() {
    let home = Home::new();
    home.accept(&[KEY_ALICE]);
    let keys = home.keys();
    let fixture = fixture_bin();
    let entry = json!({
        "command": "sh",
        "args": ["-c", "echo \"starting with key $SEARCH_API_KEY\" >&2; exec \"$0\" stdio",
                 fixture.to_str().unwrap()],
        "multi_user": true,
        "webui_secret_key": WEBUI_SECRET,
        "user_secrets": {"api_key": {"title": "Search API key"}},
        "env": {
            "SEARCH_API_KEY": "{{USER_SECRET:api_key}}",
            "FIXTURE_KEY_VAR": "SEARCH_API_KEY",
            "FIXTURE_ACCEPTED_KEYS": keys.to_str().unwrap()
        }
    });
    let config = home.config(json!({ "search": entry }));
    let mcpo = start_mcpo(&home, &config, free_port(), &[]);

    let url = credentials_url(&call(&mcpo, "/search/echo", "alice", json!({"text": "hi"})).await);
    let (_, cookie) = open_page(&url).await;
    // Refused: the server printed the wrong key, then exited during initialize.
    let wrong = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_api_key", KEY_WRONG)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert!(!wrong.text.contains(KEY_WRONG), "{}", wrong.text);
    let ok = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_api_key", KEY_ALICE)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let r = call(&mcpo, "/search/echo", "alice", json!({"text": "hi"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Two sessions printed it: the refused trial and the one that came up.
    let echoed = |log: &str| log.matches("starting with key [secret]").count();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while echoed(&mcpo.stderr.text()) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = echoed(&mcpo.stderr.text()) >= 2;
    let log = mcpo.stderr.text();
    assert!(seen, "the server's stderr lines were not logged:\n{log}");
    assert!(
        !log.contains(KEY_ALICE) && !log.contains(KEY_WRONG),
        "{log}"
    );
    let status = client()
        .get(mcpo.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !status.contains(KEY_ALICE) && !status.contains(KEY_WRONG),
        "{status}"
    );
}

/// Resources and prompts reach a user's server through the same routing as tool calls: a
/// user without secrets gets the 401 with a credentials link there too (not a 503 without
/// one), and their session, once started from such a route, has their identity.
#[tokio::test]
async fn resource_routes_ask_for_secrets_like_tool_calls() {
    let home = Home::new();
    home.accept(&[KEY_ALICE]);
    let keys = home.keys();
    let entry = search_entry(&keys, json!({"FIXTURE_RESOURCES": "1"}));
    let config = home.config(json!({ "search": entry }));
    let mcpo = start_mcpo(&home, &config, free_port(), &[]);

    let read = json!({"uri": "fixture://json/config"});
    let url = credentials_url(&call(&mcpo, "/search/resources/read", "alice", read.clone()).await);
    let (_, cookie) = open_page(&url).await;
    let ok = submit(
        &url,
        Some(&cookie),
        "same-origin",
        &[("action", "save"), ("s_api_key", KEY_ALICE)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let r = call(&mcpo, "/search/resources/read", "alice", read).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The session a resource route started carries the caller's identity.
    let r = call(
        &mcpo,
        "/search/report_env",
        "alice",
        json!({"names": ["WHO"]}),
    )
    .await;
    let seen: Value =
        serde_json::from_str(r.body.as_str().unwrap_or(&r.text)).unwrap_or(r.body.clone());
    assert_eq!(seen["env"]["WHO"], "alice <alice@example.com>", "{seen}");
}
