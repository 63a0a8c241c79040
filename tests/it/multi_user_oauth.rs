//! Multi-user mode with OAuth through the real `mcpo` binary: every Open WebUI user signs in to
//! the protected MCP server through mcpo's web login and acts upstream as themselves.
//!
//! The peers are the real ones of `tests/it/oauth.rs` (`tests/oauth/peers.rs`): oidc-provider as
//! the authorization server, the MCP Python SDK as the protected server (its `whoami_subject`
//! tool answers the account and client the caller's token belongs to), and the headless fake
//! browser, which here plays the user following the login link mcpo hands out (mcpo itself
//! must never launch a browser in this mode). Callers present Open WebUI session JWTs minted
//! exactly as Open WebUI 0.12 mints them (HS256 over the UTF-8 bytes of `WEBUI_SECRET_KEY`,
//! claims `id`/`exp`/`iat`/`jti`/`typ`). The tests are `#[ignore]`d as needing the
//! peers (scripts/test.sh includes them); included without the peers they skip loudly, or
//! fail when `MCPO_REQUIRE_OAUTH_PEERS` is set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{
    Mcpo, Reply, bearer, client, free_port, get, now, poll, post, send, write_config,
};
use crate::peers::{PeerOptions, Peers, peers_or_skip};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const SECRET: &str = "owui-secret-for-oauth-tests";
pub(crate) const SERVER: &str = "secure";

/// A distinct Open WebUI-like user id per call.
pub(crate) fn user_id(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A login session JWT as Open WebUI 0.12 mints it (`create_token`).
pub(crate) fn jwt(user: &str) -> String {
    let t = now();
    let claims = json!({
        "id": user, "exp": t + 3600, "iat": t, "jti": format!("jti-{user}-{t}"), "typ": "session"
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode JWT")
}

/// `$BROWSER` that records any launch: mcpo must never open a browser in multi-user mode.
pub(crate) fn forbidden_browser(dir: &Path) -> (String, PathBuf) {
    let record = dir.join("forbidden-browser-launches");
    let path = dir.join("forbidden-browser");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
            record.display()
        ),
    )
    .expect("write script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (path.display().to_string(), record)
}

/// mcpo with `servers` (each an OAuth multi-user entry for the protected server), tokens in
/// the peers' token directory and every log line there is. Multi-user OAuth needs
/// `--public-url`: unless `extra_args` give one, it is the loopback address mcpo listens on.
fn start(peers: &Peers, names: &[&str], extra_args: &[&str]) -> (Mcpo, PathBuf) {
    let servers = names
        .iter()
        .map(|name| ((*name).to_owned(), peers.mcp_url.clone()))
        .collect();
    start_at(peers, servers, extra_args)
}

/// Like [`start`], each server (name → MCP URL) where it is said to be.
fn start_at(peers: &Peers, urls: Vec<(String, String)>, extra_args: &[&str]) -> (Mcpo, PathBuf) {
    let mut servers = serde_json::Map::new();
    for (name, url) in urls {
        servers.insert(
            name,
            json!({
                "type": "streamable-http",
                "url": url,
                "oauth": {"multi_user": true, "webui_secret_key": SECRET, "max_sessions": 10},
            }),
        );
    }
    let config = write_config(&json!({ "mcpServers": servers }).to_string());
    let (browser, record) = forbidden_browser(peers.dir.path());
    let token_dir = peers.token_dir().display().to_string();
    let cache_dir = peers.dir.path().join("cache").display().to_string();
    let mut args = vec!["--config", config.path().to_str().unwrap()];
    let (port, public_url);
    if !extra_args.contains(&"--public-url") {
        port = free_port().to_string();
        public_url = format!("http://127.0.0.1:{port}");
        args.extend(["--port", &port, "--public-url", &public_url]);
    }
    args.extend_from_slice(extra_args);
    let mcpo = Mcpo::start_with_env(
        &args,
        &[
            ("BROWSER", browser.as_str()),
            ("MCPO_TOKEN_DIR", token_dir.as_str()),
            ("MCPO_CACHE_DIR", cache_dir.as_str()),
            ("RUST_LOG", "trace"),
            ("NO_COLOR", "1"),
        ],
    );
    // The config file must outlive the start-up read only.
    drop(config);
    (mcpo, record)
}

/// `POST /{SERVER}/{tool}` with `{}`, as the holder of `jwt` if given.
pub(crate) async fn call(mcpo: &Mcpo, tool: &str, jwt: Option<&str>) -> Reply {
    let auth = jwt.map(bearer);
    post(
        mcpo,
        &format!("/{SERVER}/{tool}"),
        auth.as_deref(),
        json!({}),
    )
    .await
}

/// The login link of a 401 answer (checked for shape).
pub(crate) fn login_url_of(mcpo: &Mcpo, answer: &Reply, server: &str) -> String {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    let url = answer.body["detail"]["login_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail.login_url in {}", answer.body))
        .to_owned();
    let prefix = mcpo.url(&format!("/oauth/{server}/login?ticket="));
    assert!(
        url.starts_with(&prefix),
        "{url} does not start with {prefix}"
    );
    let message = answer.body["detail"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(&url),
        "the message does not name the link: {message}"
    );
    url
}

pub(crate) fn ticket_of(login_url: &str) -> String {
    url::Url::parse(login_url)
        .expect("login URL")
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
        .expect("ticket")
}

/// A client that follows no redirects, to look at each step a browser takes.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Pressing "Continue" on a login link's confirmation page, as a current browser sends it:
/// a form POST of the hidden `ticket` to the link without its query, from mcpo's own page
/// (whose `Referrer-Policy: no-referrer` makes the `Origin` `null`). `extra` headers replace
/// those (an empty value leaves the header out).
async fn confirm(
    c: &reqwest::Client,
    link: &str,
    ticket: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let action = link.split('?').next().unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("ticket", ticket)
        .finish();
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in [("origin", "null"), ("sec-fetch-site", "same-origin")]
        .iter()
        .chain(extra)
    {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        if value.is_empty() {
            headers.remove(name);
        } else {
            headers.insert(name, value.parse().unwrap());
        }
    }
    c.post(action)
        .headers(headers)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST")
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The user following their login link in the fake browser, as `account` at the
/// authorization server; panics unless mcpo's callback page answers 200.
pub(crate) fn sign_in(peers: &Peers, login_url: &str, account: &str) {
    let (program, mut args) = peers.browser(&["--login", account, "--strict"]);
    args.push(login_url.to_owned());
    let status = Command::new(program).args(args).status().expect("browser");
    assert!(
        status.success(),
        "signing in as {account} failed ({status}):\n{}",
        peers.browser_log_text()
    );
}

/// Calls `tool` until it answers 200 (the user's session may still be connecting).
pub(crate) async fn call_ok(mcpo: &Mcpo, tool: &str, jwt: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = call(mcpo, tool, Some(jwt)).await;
        if answer.status == StatusCode::OK {
            return answer.body;
        }
        assert_ne!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "signed in, yet: {}",
            answer.body
        );
        if Instant::now() > deadline {
            panic!(
                "{tool}: still {} {} ; mcpo stderr:\n{}",
                answer.status,
                answer.body,
                mcpo.stderr.text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `{"subject", "client_id"}` of the caller's upstream identity.
pub(crate) async fn identity(mcpo: &Mcpo, jwt: &str) -> Value {
    let body = call_ok(mcpo, "whoami_subject", jwt).await;
    let text = body
        .get("result")
        .and_then(Value::as_str)
        .or_else(|| body.as_str())
        .unwrap_or_else(|| panic!("unexpected whoami_subject answer {body}"));
    serde_json::from_str(text).expect("whoami_subject JSON")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn two_users_sign_in_on_the_web_and_act_upstream_as_themselves() {
    let peers = peers_or_skip!();
    let (mcpo, browser_launches) = start(&peers, &[SERVER], &[]);
    let (alice, bob) = (user_id("alice"), user_id("bob"));
    let (alice_jwt, bob_jwt) = (jwt(&alice), jwt(&bob));

    // Before anyone signed in: the spec answers at once, without credentials, with the login
    // operation only.
    let started = Instant::now();
    let spec = get(&mcpo, &format!("/{SERVER}/openapi.json"), None).await;
    assert_eq!(spec.status, StatusCode::OK, "{}", spec.body);
    assert!(started.elapsed() < Duration::from_secs(3));
    let paths: Vec<&String> = spec.body["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/oauth/login"], "{}", spec.body);
    assert_eq!(
        spec.body["paths"]["/oauth/login"]["post"]["operationId"],
        format!("{SERVER}_login")
    );
    // The same for a user who has not signed in: never a wait for their login.
    let started = Instant::now();
    let spec = get(
        &mcpo,
        &format!("/{SERVER}/openapi.json"),
        Some(&bearer(&alice_jwt)),
    )
    .await;
    assert_eq!(spec.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Alice calls a tool: 401 with her login link; the status says she is not signed in.
    let answer = call(&mcpo, "whoami_subject", Some(&alice_jwt)).await;
    let alice_link = login_url_of(&mcpo, &answer, SERVER);
    assert!(
        !alice_link.contains(&alice_jwt),
        "the JWT is in the login link"
    );
    let status = get(
        &mcpo,
        &format!("/oauth/{SERVER}/status"),
        Some(&bearer(&alice_jwt)),
    )
    .await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        status.body,
        json!({"authenticated": false, "user_id": alice, "expires_at": null})
    );
    let anonymous = get(&mcpo, &format!("/oauth/{SERVER}/status"), None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // She follows the link: mcpo's login route, the authorization server, mcpo's callback.
    sign_in(&peers, &alice_link, "alice");
    let status = get(
        &mcpo,
        &format!("/oauth/{SERVER}/status"),
        Some(&bearer(&alice_jwt)),
    )
    .await;
    assert_eq!(status.body["authenticated"], true, "{}", status.body);
    assert!(status.body["expires_at"].as_u64().unwrap() > now());
    let alice_upstream = identity(&mcpo, &alice_jwt).await;
    assert_eq!(alice_upstream["subject"], "alice");

    // Bob is not signed in: Alice's tokens are never used for him.
    let answer = call(&mcpo, "whoami_subject", Some(&bob_jwt)).await;
    let bob_link = login_url_of(&mcpo, &answer, SERVER);
    assert_ne!(ticket_of(&bob_link), ticket_of(&alice_link));
    sign_in(&peers, &bob_link, "bob");
    let bob_upstream = identity(&mcpo, &bob_jwt).await;
    assert_eq!(bob_upstream["subject"], "bob");
    // Each user registered a client of their own.
    assert_ne!(bob_upstream["client_id"], alice_upstream["client_id"]);
    // And Alice is still herself.
    assert_eq!(identity(&mcpo, &alice_jwt).await, alice_upstream);
    // /metrics counts the users' logins (there is no server-level login in this mode).
    let metrics = get(&mcpo, "/metrics", None).await;
    let metrics = metrics.text.clone();
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("mcpo_oauth_logins_total{{server=\"{SERVER}\"}} 2")),
        "{metrics}"
    );

    // At the authorization server: two registrations for mcpo's own callback, and PKCE S256
    // authorizations with state.
    let callback = mcpo.url(&format!("/oauth/{SERVER}/callback"));
    let registrations = peers.as_events_named("registration");
    assert_eq!(registrations.len(), 2, "{registrations:?}");
    for r in &registrations {
        assert_eq!(r["redirect_uris"], json!([callback]), "{r}");
    }
    let authorizations = peers.as_events_named("authorization");
    assert_eq!(authorizations.len(), 2, "{authorizations:?}");
    for a in &authorizations {
        assert_eq!(a["code_challenge_method"], "S256");
        assert_eq!(a["has_state"], true);
        assert_eq!(a["redirect_uri"], callback.as_str());
        assert_eq!(a["resource"], peers.mcp_url.as_str());
    }

    // Specs: Alice's lists her tools and the login operation; without credentials, the last
    // known tools; the combined document has both too.
    for jwt in [Some(alice_jwt.as_str()), None] {
        let spec = get(
            &mcpo,
            &format!("/{SERVER}/openapi.json"),
            jwt.map(bearer).as_deref(),
        )
        .await;
        let paths = &spec.body["paths"];
        assert!(
            paths["/whoami_subject"]["post"].is_object(),
            "{}",
            spec.body
        );
        assert!(paths["/oauth/login"]["post"].is_object(), "{}", spec.body);
    }
    let combined = get(&mcpo, "/openapi.json", None).await;
    let paths = &combined.body["paths"];
    assert_eq!(
        paths[format!("/{SERVER}/oauth/login")]["post"]["operationId"],
        format!("{SERVER}_login"),
        "{}",
        combined.body
    );
    assert!(paths[format!("/{SERVER}/whoami_subject")]["post"].is_object());

    // The login operation, for a model to hand the link over.
    let op = send(
        client()
            .post(mcpo.url(&format!("/{SERVER}/oauth/login")))
            .bearer_auth(&alice_jwt)
            .json(&json!({})),
    )
    .await;
    assert_eq!(op.status, StatusCode::OK, "{}", op.body);
    assert_eq!(op.body["authenticated"], true);
    assert!(
        op.body["login_url"]
            .as_str()
            .unwrap()
            .starts_with(&mcpo.url(&format!("/oauth/{SERVER}/login?ticket=")))
    );
    let carol_jwt = jwt(&user_id("carol"));
    let op = send(
        client()
            .post(mcpo.url(&format!("/{SERVER}/oauth/login")))
            .bearer_auth(&carol_jwt)
            .json(&json!({})),
    )
    .await;
    assert_eq!(op.body["authenticated"], false, "{}", op.body);
    let no_caller = send(client().post(mcpo.url(&format!("/{SERVER}/oauth/login")))).await;
    assert_eq!(no_caller.status, StatusCode::UNAUTHORIZED);

    // Token files: <dir>/<server>/<hash>_tokens.json and _client.json per user, private, and
    // named without the user id.
    let dir = peers.token_dir().join(SERVER);
    let files = files_under(&dir);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.ends_with("_tokens.json")).count(),
        2
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with("_client.json")).count(),
        2
    );
    for name in &names {
        assert!(!name.contains("alice") && !name.contains("bob"), "{name}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    // Nothing else in the token directory: no shared (single-user) login happened.
    let top = files_under(&peers.token_dir());
    assert_eq!(top, std::slice::from_ref(&dir), "{top:?}");

    assert!(
        !browser_launches.exists(),
        "mcpo launched a browser: {}",
        std::fs::read_to_string(&browser_launches).unwrap_or_default()
    );

    // No token, code, ticket or JWT in anything mcpo wrote.
    let mut secrets: Vec<String> = vec![
        alice_jwt.clone(),
        bob_jwt.clone(),
        ticket_of(&alice_link),
        ticket_of(&bob_link),
    ];
    for f in files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with("_tokens.json"))
    {
        let stored = crate::peers::read_tokens(f);
        for key in ["access_token", "refresh_token"] {
            if let Some(t) = stored["token_response"][key].as_str() {
                secrets.push(t.to_owned());
            }
        }
    }
    secrets.extend(
        peers
            .browser_log_text()
            .lines()
            .filter_map(|l| l.split("code=").nth(1))
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
    );
    assert!(secrets.len() >= 8, "{}", secrets.len());
    let log = format!("{}\n{}", mcpo.stderr.text(), mcpo.stdout.text());
    for secret in &secrets {
        assert!(secret.len() >= 8);
        assert!(
            !log.contains(secret.as_str()),
            "a secret appears in mcpo's output"
        );
    }

    // After a restart: the tools are known before anyone calls (the tool cache), and both
    // users' tokens are still theirs, without signing in again.
    drop(mcpo);
    let (mcpo, _) = start(&peers, &[SERVER], &[]);
    let spec = get(&mcpo, &format!("/{SERVER}/openapi.json"), None).await;
    assert!(
        spec.body["paths"]["/whoami_subject"]["post"].is_object(),
        "{}",
        spec.body
    );
    assert!(spec.body["paths"]["/oauth/login"]["post"].is_object());
    assert_eq!(identity(&mcpo, &bob_jwt).await, bob_upstream);
    assert_eq!(identity(&mcpo, &alice_jwt).await, alice_upstream);
    assert_eq!(peers.as_events_named("registration").len(), 2);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn login_links_work_once_for_their_own_server_and_user() {
    let peers = peers_or_skip!();
    let (mcpo, _) = start(&peers, &[SERVER, "other"], &[]);
    let alice_jwt = jwt(&user_id("alice"));
    let answer = call(&mcpo, "whoami_subject", Some(&alice_jwt)).await;
    let link = login_url_of(&mcpo, &answer, SERVER);
    let ticket = ticket_of(&link);
    // The ticket is not the JWT, nor anything signed with the Open WebUI secret.
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    assert!(
        jsonwebtoken::decode::<Value>(
            &ticket,
            &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            &validation
        )
        .is_err()
    );

    let no_redirects = no_redirects();
    let open = |url: String| {
        let c = no_redirects.clone();
        async move {
            let r = c.get(url).send().await.expect("GET");
            let status = r.status();
            let location = r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, location, r.text().await.unwrap_or_default())
        }
    };

    // Used for another server, it is refused (each server signs its own tickets), and stays
    // unused for its own.
    let elsewhere = link.replace(&format!("/oauth/{SERVER}/"), "/oauth/other/");
    let (status, _, page) = open(elsewhere).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not valid"), "{page}");

    // Opening the link shows the confirmation page and starts nothing.
    let (status, location, page) = open(link.clone()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(location, None);
    assert!(page.contains("Continue"), "{page}");

    // Confirmed (the form's POST): a 303 to the authorization server, PKCE S256 with state,
    // and the callback on mcpo itself; the browser gets a cookie that ties the login to it.
    let first = confirm(&no_redirects, &link, &ticket, &[]).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let set_cookie = first
        .headers()
        .get("set-cookie")
        .expect("a login cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let location = first
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        &format!("Path=/oauth/{SERVER}/"),
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(!cookie.contains(&ticket));
    let authorize_url = url::Url::parse(&location.expect("Location")).unwrap();
    assert!(
        authorize_url.as_str().starts_with(&peers.issuer),
        "{authorize_url}"
    );
    let query: std::collections::HashMap<String, String> =
        authorize_url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(!query["state"].is_empty());
    assert_eq!(
        query["redirect_uri"],
        mcpo.url(&format!("/oauth/{SERVER}/callback"))
    );

    // Second use: refused, whether the page is opened again or the form is sent again.
    let (status, location, page) = open(link.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{location:?}");
    assert!(page.contains("already used"), "{page}");
    assert!(page.contains("call the tool again"), "{page}");
    let again = confirm(&no_redirects, &link, &ticket, &[]).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.headers().get("set-cookie").is_none());
    assert!(again.headers().get("location").is_none());
    assert!(again.text().await.unwrap().contains("already used"));

    // A tampered ticket, none, and a callback for a login that is not in progress.
    let mut tampered = ticket.clone();
    tampered.pop();
    tampered.push(if ticket.ends_with('A') { 'B' } else { 'A' });
    let (status, _, page) =
        open(mcpo.url(&format!("/oauth/{SERVER}/login?ticket={tampered}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not valid"), "{page}");
    let (status, _, _) = open(mcpo.url(&format!("/oauth/{SERVER}/login"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, page) = open(mcpo.url(&format!(
        "/oauth/{SERVER}/callback?code=made-up&state=made-up"
    )))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("does not belong"), "{page}");
    assert!(
        !page.contains("made-up"),
        "the page echoes the request: {page}"
    );

    // A server without web login has none of these routes.
    let (status, _, _) = open(mcpo.url("/oauth/nope/login?ticket=x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The authorization URL handed to someone else: their browser signs in at the
    // authorization server, but mcpo's callback does not take the answer without the cookie
    // of the browser that opened the link (RFC 6749 §10.12), nor with a wrong one; the login
    // stays open for the right browser.
    let callback_url = peers.browse_to_callback(authorize_url.as_str());
    assert!(callback_url.contains("code="), "{callback_url}");
    let (name, _) = cookie.split_once('=').unwrap();
    for sent in [None, Some(format!("{name}=0123"))] {
        let mut request = no_redirects.get(callback_url.trim());
        if let Some(c) = &sent {
            request = request.header("cookie", c);
        }
        let r = request.send().await.expect("callback");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{sent:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains("same browser"), "{page}");
    }
    assert_eq!(
        call(&mcpo, "whoami_subject", Some(&alice_jwt)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Back in the browser that opened the link, the same answer signs Alice in.
    let r = no_redirects
        .get(callback_url.trim())
        .header("cookie", format!("other=1; {cookie}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // Delivered again (a reload, a replay): no login is waiting for it any more.
    let again = no_redirects
        .get(callback_url.trim())
        .header("cookie", &cookie)
        .send()
        .await
        .expect("callback");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("does not belong"));
    let me = identity(&mcpo, &alice_jwt).await;
    assert_eq!(me["subject"], "alice");
    // Signed in to one server is not signed in to the other.
    let answer = send(
        client()
            .post(mcpo.url("/other/whoami_subject"))
            .bearer_auth(&alice_jwt)
            .json(&json!({})),
    )
    .await;
    login_url_of(&mcpo, &answer, "other");
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn a_login_link_asks_before_it_signs_anyone_in() {
    let peers = peers_or_skip!();
    let (mcpo, _) = start(&peers, &[SERVER], &[]);
    // An Open WebUI user id with markup in it: the page shows it, escaped.
    let user = format!("<b>{}</b>&\"'", user_id("alice"));
    let alice_jwt = jwt(&user);
    let answer = call(&mcpo, "whoami_subject", Some(&alice_jwt)).await;
    let link = login_url_of(&mcpo, &answer, SERVER);
    let ticket = ticket_of(&link);
    let c = no_redirects();
    let escaped = user
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");

    // A chat's link preview, a mail scanner, the user looking twice: the page, every time,
    // and nothing started or used up.
    for _ in 0..3 {
        let r = c.get(&link).send().await.expect("GET");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("set-cookie").is_none());
        assert!(r.headers().get("location").is_none());
        assert!(header(&r, "content-type").starts_with("text/html"));
        // Never cached, never framed (clickjacking), no Referer carrying the link along, no
        // scripts or assets from anywhere.
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer");
        assert_eq!(header(&r, "x-frame-options"), "DENY");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let csp = header(&r, "content-security-policy");
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        let page = r.text().await.unwrap();
        // It says which server and which Open WebUI user the sign-in is for, and warns.
        assert!(
            page.contains(&format!("<strong>{SERVER}</strong>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("Open WebUI user {escaped}")),
            "{page}"
        );
        assert!(!page.contains("<b>"), "{page}");
        assert!(
            page.contains("Only continue if this is your account and you asked for this link"),
            "{page}"
        );
        for outside in ["<script", "src=", "href=", "http://", "https://"] {
            assert!(!page.contains(outside), "{outside} in {page}");
        }
        // "Continue" posts the ticket back to the link's own path.
        assert!(
            page.contains(r#"<form method="post" action="login">"#),
            "{page}"
        );
        assert!(
            page.contains(&format!(
                r#"<input type="hidden" name="ticket" value="{ticket}">"#
            )),
            "{page}"
        );
    }
    let head = c.head(&link).send().await.expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert!(
        peers.as_events_named("authorization").is_empty(),
        "opening the link went to the authorization server"
    );
    assert!(!mcpo.stderr.text().contains("web login started"));

    // A form on another site posting the ticket from the victim's browser: refused (with a
    // page that says where to press Continue), and the link still works.
    let evil = [
        [
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        [("sec-fetch-site", "same-site"), ("origin", "null")],
        [("sec-fetch-site", ""), ("origin", "https://evil.example")],
    ];
    for extra in &evil {
        let r = confirm(&c, &link, &ticket, extra).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{extra:?}");
        assert!(r.headers().get("location").is_none());
        assert_eq!(header(&r, "x-frame-options"), "DENY");
        let page = r.text().await.unwrap();
        assert!(page.contains("press Continue there"), "{page}");
    }
    assert_eq!(c.get(&link).send().await.unwrap().status(), StatusCode::OK);

    // The user: the fake browser opens the link, submits the page's form (with its cookie
    // jar, and the headers of a form on mcpo's own page) and signs in at the end.
    sign_in(&peers, &link, "alice");
    assert_eq!(identity(&mcpo, &alice_jwt).await["subject"], "alice");
    assert_eq!(peers.as_events_named("authorization").len(), 1);

    // The same confirmation sent again (a replay): refused, nothing started; the link's page
    // now says to call the tool again.
    let r = confirm(&c, &link, &ticket, &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("already used"));
    let r = c.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(header(&r, "x-frame-options"), "DENY");
    let page = r.text().await.unwrap();
    assert!(page.contains("already used"), "{page}");
    assert!(page.contains("call the tool again"), "{page}");
    assert!(!page.contains(&ticket));
    assert_eq!(peers.as_events_named("authorization").len(), 1);

    // Now that mcpo knows where this server's logins go, a new link's page lets the form's
    // redirect go there and nowhere else (Chrome and Safari hold a form's redirects to the
    // page's `form-action`; the fake browser does too).
    let op = send(
        client()
            .post(mcpo.url(&format!("/{SERVER}/oauth/login")))
            .bearer_auth(&alice_jwt)
            .json(&json!({})),
    )
    .await;
    let relink = op.body["login_url"].as_str().unwrap().to_owned();
    let r = c.get(&relink).send().await.unwrap();
    let issuer = url::Url::parse(&peers.issuer).unwrap();
    let csp = header(&r, "content-security-policy");
    assert!(
        csp.contains(&format!(
            "form-action 'self' {};",
            issuer.origin().ascii_serialization()
        )),
        "{csp}"
    );
    sign_in(&peers, &relink, "alice");
    assert_eq!(identity(&mcpo, &alice_jwt).await["subject"], "alice");
    let log = format!("{}\n{}", mcpo.stderr.text(), mcpo.stdout.text());
    assert!(!log.contains(&ticket) && !log.contains(&ticket_of(&relink)));
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn public_url_builds_the_links() {
    let peers = peers_or_skip!();
    let (mcpo, _) = start(
        &peers,
        &[SERVER],
        &["--public-url", "https://mcpo.example.com/tools/"],
    );
    let answer = call(&mcpo, "whoami_subject", Some(&jwt(&user_id("u")))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let link = answer.body["detail"]["login_url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!(
            "https://mcpo.example.com/tools/oauth/{SERVER}/login?ticket="
        )),
        "{link}"
    );
    // What a caller says about the address it used changes nothing (#19 item 10).
    let answer = send(
        client()
            .post(mcpo.url(&format!("/{SERVER}/whoami_subject")))
            .bearer_auth(jwt(&user_id("u")))
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "owui.example.org")
            .json(&json!({})),
    )
    .await;
    let link = answer.body["detail"]["login_url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!(
            "https://mcpo.example.com/tools/oauth/{SERVER}/login?ticket="
        )),
        "{link}"
    );
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn each_user_refreshes_their_own_tokens() {
    // Access tokens live 20 s, less than the 30 s before expiry at which they are refreshed:
    // every use refreshes.
    let peers = peers_or_skip!(PeerOptions {
        access_ttl: 20,
        ..Default::default()
    });
    let (mcpo, _) = start(&peers, &[SERVER], &[]);
    let mut clients = Vec::new();
    for account in ["alice", "bob"] {
        let token = jwt(&user_id(account));
        let answer = call(&mcpo, "whoami_subject", Some(&token)).await;
        sign_in(&peers, &login_url_of(&mcpo, &answer, SERVER), account);
        let me = identity(&mcpo, &token).await;
        assert_eq!(me["subject"], account);
        // Still served once the first access token was refreshed.
        let client_id = me["client_id"].as_str().unwrap().to_owned();
        let refreshed = poll(Duration::from_secs(10), || async {
            peers
                .as_events_named("grant")
                .iter()
                .any(|g| g["grant_type"] == "refresh_token" && g["client_id"] == client_id.as_str())
                .then_some(())
        })
        .await;
        assert!(
            refreshed.is_some(),
            "no refresh by {client_id}: {:?}",
            peers.as_events()
        );
        assert_eq!(identity(&mcpo, &token).await, me);
        let status = get(
            &mcpo,
            &format!("/oauth/{SERVER}/status"),
            Some(&bearer(&token)),
        )
        .await;
        assert_eq!(status.body["authenticated"], true, "{}", status.body);
        clients.push(me["client_id"].as_str().unwrap().to_owned());
    }
    // Each user's refresh went out with their own client.
    let refreshes = peers.as_events_named("grant");
    for client in &clients {
        assert!(
            refreshes
                .iter()
                .any(|g| g["grant_type"] == "refresh_token" && g["client_id"] == client.as_str()),
            "no refresh by {client}: {refreshes:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn a_login_that_cannot_start_does_not_use_up_its_link() {
    let peers = peers_or_skip!();
    // Nothing listens there: discovery fails when the login starts.
    let dead = format!("http://127.0.0.1:{}/mcp", free_port());
    let (mcpo, _) = start_at(&peers, vec![("down".to_owned(), dead)], &[]);
    let alice_jwt = jwt(&user_id("alice"));
    let op = send(
        client()
            .post(mcpo.url("/down/oauth/login"))
            .bearer_auth(&alice_jwt)
            .json(&json!({})),
    )
    .await;
    assert_eq!(op.status, StatusCode::OK, "{}", op.body);
    let link = op.body["login_url"].as_str().unwrap().to_owned();
    let ticket = ticket_of(&link);
    let no_redirects = no_redirects();
    // The confirmation page needs no discovery: it shows although the server is down.
    let page = no_redirects.get(&link).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    // Confirmed twice: the first failure did not use the ticket up, so the user is told the
    // same thing again (retry), not that the link was already used.
    let origin = mcpo.url("");
    for attempt in 0..2 {
        // The second time as a browser without `Sec-Fetch-Site` that tells its origin.
        let older = [("sec-fetch-site", ""), ("origin", origin.as_str())];
        let extra: &[(&str, &str)] = if attempt == 0 { &[] } else { &older };
        let r = confirm(&no_redirects, &link, &ticket, extra).await;
        let status = r.status();
        assert!(r.headers().get("set-cookie").is_none());
        let page = r.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "attempt {attempt}: {page}");
        assert!(page.contains("not used up"), "attempt {attempt}: {page}");
        assert!(!page.contains("already used"), "attempt {attempt}: {page}");
        assert!(!page.contains(&ticket));
    }
    let page = no_redirects.get(&link).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK, "the link was used up");
    assert!(!mcpo.stderr.text().contains(&ticket));
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn a_refused_login_says_how_to_retry_and_escapes_what_it_shows() {
    let peers = peers_or_skip!();
    let (mcpo, _) = start(&peers, &[SERVER], &[]);
    let alice_jwt = jwt(&user_id("alice"));
    let link = login_url_of(
        &mcpo,
        &call(&mcpo, "whoami_subject", Some(&alice_jwt)).await,
        SERVER,
    );
    let no_redirects = no_redirects();
    let r = confirm(&no_redirects, &link, &ticket_of(&link), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let authorize = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    // The authorization server's refusal, with markup in its description.
    let mut refusal = url::Url::parse(&mcpo.url(&format!("/oauth/{SERVER}/callback"))).unwrap();
    refusal
        .query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("error", "access_denied")
        .append_pair("error_description", "<script>alert(1)</script>");
    let page = |cookie: String| {
        let (c, url) = (no_redirects.clone(), refusal.clone());
        async move {
            let r = c.get(url).header("cookie", cookie).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, text) = page(cookie.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("access_denied"), "{text}");
    assert!(!text.contains("<script>"), "{text}");
    assert!(text.contains("&lt;script&gt;"), "{text}");
    assert!(text.contains("call the tool again"), "{text}");
    assert!(!text.contains(&state), "{text}");
    // That login is over; a new link signs her in.
    let (status, text) = page(cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("does not belong"), "{text}");
    let link = login_url_of(
        &mcpo,
        &call(&mcpo, "whoami_subject", Some(&alice_jwt)).await,
        SERVER,
    );
    sign_in(&peers, &link, "alice");
    assert_eq!(identity(&mcpo, &alice_jwt).await["subject"], "alice");
}

/// Issue #17, encrypted at rest: each user's record is sealed for that user. Alice's files
/// copied over Bob's do not open as Bob's: Bob gets a 503 saying why (never Alice's upstream
/// identity, never a login over the files), Alice is still served, and nothing is changed.
#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn a_users_record_copied_over_another_users_does_not_open() {
    use mcpo::oauth::sealed::Envelope;
    let peers = peers_or_skip!();
    let (mut mcpo, _) = start(&peers, &[SERVER], &[]);
    let (alice, bob) = (user_id("alice"), user_id("bob"));
    let (alice_jwt, bob_jwt) = (jwt(&alice), jwt(&bob));
    for (token, account) in [(&alice_jwt, "alice"), (&bob_jwt, "bob")] {
        let answer = call(&mcpo, "whoami_subject", Some(token)).await;
        sign_in(&peers, &login_url_of(&mcpo, &answer, SERVER), account);
        assert_eq!(identity(&mcpo, token).await["subject"], account);
    }
    mcpo.stop();

    // Each file's header names its user; Alice's two files go over Bob's.
    let dir = peers.token_dir().join(SERVER);
    let owner_of = |f: &Path| {
        let bytes = std::fs::read(f).unwrap();
        Envelope::parse(&bytes).expect("sealed").owner.user.unwrap()
    };
    let files = files_under(&dir);
    assert_eq!(files.len(), 4, "{files:?}");
    let mut bobs = Vec::new();
    for suffix in ["_tokens.json", "_client.json"] {
        let of = |user: &str| {
            files
                .iter()
                .find(|f| f.to_string_lossy().ends_with(suffix) && owner_of(f) == user)
                .unwrap_or_else(|| panic!("no {suffix} of {user}"))
                .clone()
        };
        let (from, to) = (of(&alice), of(&bob));
        std::fs::copy(from, &to).unwrap();
        bobs.push(to);
    }
    // Bob's files, which must stay as they are (Alice's may be refreshed).
    let before: Vec<Vec<u8>> = bobs.iter().map(|f| std::fs::read(f).unwrap()).collect();

    let (mcpo, _) = start(&peers, &[SERVER], &[]);
    let answer = call(&mcpo, "whoami_subject", Some(&bob_jwt)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    let message = answer.message().to_owned();
    assert!(
        message.contains(&format!("user '{alice}'")) && message.contains(&format!("user '{bob}'")),
        "{message}"
    );
    assert!(message.contains("_tokens.json"), "{message}");
    assert_eq!(identity(&mcpo, &alice_jwt).await["subject"], "alice");
    let again = call(&mcpo, "whoami_subject", Some(&bob_jwt)).await;
    assert_eq!(
        again.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        again.body
    );
    drop(mcpo);
    let after: Vec<Vec<u8>> = bobs.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(after == before, "Bob's files changed");
}
