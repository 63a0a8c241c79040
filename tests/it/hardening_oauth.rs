//! #19 items 4, 5 and 6: what an upstream's OAuth metadata may make mcpo do. A protected MCP
//! endpoint (401 + RFC 9728 metadata) and a fake authorization server, both in-process on
//! 127.0.0.1, publish hostile metadata; every request they get is recorded, and the real
//! `mcpo` binary runs against them.
//! - item 6: an `authorization_endpoint` that is not https: (or http: on loopback) is refused
//!   at discovery and never reaches the browser launcher (`$BROWSER` records its calls);
//! - item 5: a configured client secret is only sent to the configured authorization server;
//! - item 4: mcpo's own OAuth requests refuse the addresses rmcp refuses (`0.0.0.0`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::hardening_fake_http::{FakeHttp, Hit, json_reply, reply};

/// An MCP endpoint at `/mcp` that wants a token: 401 with a Bearer challenge naming its
/// protected-resource metadata, which names `authorization_server` (its own origin when
/// `None`).
async fn protected_mcp(authorization_server: Option<String>) -> FakeHttp {
    FakeHttp::start(move |hit, addr| {
        let base = format!("http://{addr}");
        let issuer = authorization_server.clone().unwrap_or_else(|| base.clone());
        match hit.path() {
            "/mcp" => reply(
                401,
                &[(
                    "www-authenticate",
                    &format!(
                        "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
                    ),
                )],
                "",
            ),
            p if p.starts_with("/.well-known/oauth-protected-resource") => json_reply(
                200,
                &json!({"resource": format!("{base}/mcp"), "authorization_servers": [issuer]}),
            ),
            // Its own authorization server, when it is one.
            _ => fake_as_answer(hit, addr, &Overrides::default()),
        }
    })
    .await
}

/// Fields of the authorization server metadata to replace (`null` removes one).
#[derive(Clone, Default)]
struct Overrides(serde_json::Map<String, Value>);

impl Overrides {
    fn with(pairs: Value) -> Overrides {
        Overrides(pairs.as_object().cloned().unwrap_or_default())
    }
}

/// An authorization server at its origin's root: RFC 8414 metadata (with `overrides`),
/// registration, and a token endpoint that refuses every grant.
fn fake_as_answer(hit: &Hit, addr: SocketAddr, overrides: &Overrides) -> axum::response::Response {
    let base = format!("http://{addr}");
    match hit.path() {
        "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => {
            let mut metadata = json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "registration_endpoint": format!("{base}/register"),
                "revocation_endpoint": format!("{base}/revoke"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
            });
            for (k, v) in &overrides.0 {
                if v.is_null() {
                    metadata.as_object_mut().unwrap().remove(k);
                } else {
                    metadata[k] = v.clone();
                }
            }
            json_reply(200, &metadata)
        }
        "/register" => json_reply(
            201,
            &json!({"client_id": "fake-client", "redirect_uris": ["http://localhost/callback"],
                    "token_endpoint_auth_method": "none"}),
        ),
        "/token" => json_reply(400, &json!({"error": "invalid_grant"})),
        _ => reply(404, &[], ""),
    }
}

async fn fake_as(overrides: Overrides) -> FakeHttp {
    FakeHttp::start(move |hit, addr| fake_as_answer(hit, addr, &overrides)).await
}

/// A `$BROWSER` that appends each URL it is given to a file: the file exists once mcpo has
/// launched it.
fn recording_browser(dir: &Path) -> (PathBuf, PathBuf) {
    let record = dir.join("browser-calls.txt");
    let script = dir.join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (script, record)
}

/// `mcpo` on `servers` with `$BROWSER` set to `browser`; the config file lives in `dir`.
fn start_mcpo(dir: &Path, servers: Value, browser: &Path) -> Mcpo {
    let config = dir.join("config.json");
    std::fs::write(&config, json!({"mcpServers": servers}).to_string()).unwrap();
    Mcpo::start_with_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--connect-timeout",
            "5",
        ],
        &[
            ("BROWSER", browser.to_str().unwrap()),
            ("MCPO_TOKEN_DIR", dir.join("tokens").to_str().unwrap()),
        ],
    )
}

fn oauth_block(extra: Value) -> Value {
    let mut block =
        json!({"callback_port": free_port(), "storage_type": "memory", "login_timeout": 5});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        block[k] = v;
    }
    block
}

/// Item 6: `file:` and custom-scheme authorization endpoints never reach the browser.
#[tokio::test]
async fn authorization_urls_other_than_https_are_refused_at_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let (browser, record) = recording_browser(dir.path());
    let file_as = fake_as(Overrides::with(
        json!({"authorization_endpoint": "file:///etc/passwd"}),
    ))
    .await;
    let custom_as = fake_as(Overrides::with(
        json!({"authorization_endpoint": "x-evil-handler://run?cmd=calc"}),
    ))
    .await;
    let file_mcp = protected_mcp(Some(file_as.url(""))).await;
    let custom_mcp = protected_mcp(Some(custom_as.url(""))).await;
    let mcpo = start_mcpo(
        dir.path(),
        json!({
            "file-scheme": {"type": "streamable-http", "url": file_mcp.url("/mcp"), "oauth": oauth_block(json!({}))},
            "custom-scheme": {"type": "streamable-http", "url": custom_mcp.url("/mcp"), "oauth": oauth_block(json!({}))},
        }),
        &browser,
    );
    // Both servers have got as far as their authorization server's metadata.
    for fake in [&file_as, &custom_as] {
        poll(Duration::from_secs(30), || async {
            fake.hits()
                .iter()
                .any(|h| h.path().starts_with("/.well-known/"))
                .then_some(())
        })
        .await
        .expect("mcpo never fetched the authorization server metadata");
    }
    // Give a wrongly started login the time to reach the launcher.
    let errors = [
        wait_last_error(&mcpo, "file-scheme", "", Duration::from_secs(30)).await,
        wait_last_error(&mcpo, "custom-scheme", "", Duration::from_secs(30)).await,
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let launched = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(
        launched.is_empty(),
        "the browser launcher was given: {launched}"
    );
    for (server, scheme) in [
        ("file-scheme", "'file:'"),
        ("custom-scheme", "'x-evil-handler:'"),
    ] {
        let error = wait_last_error(
            &mcpo,
            server,
            "authorization_endpoint",
            Duration::from_secs(30),
        )
        .await;
        assert!(error.contains(scheme), "{error}");
        assert!(error.contains(&format!("server '{server}'")), "{error}");
    }
    // Refused at discovery: no client was registered for it either.
    for fake in [&file_as, &custom_as] {
        assert!(
            !fake.hits().iter().any(|h| h.path() == "/register"),
            "{errors:?}"
        );
    }
    assert!(!mcpo.stderr.text().contains("x-evil-handler://run?cmd"));
}

const CLIENT_SECRET: &str = "hardening-item5-client-secret";

/// Whether any request `fake` received carries the configured client's credentials: the
/// secret (in a form body or, base64-encoded, in HTTP Basic) or a client assertion.
fn credentials_sent_to(fake: &FakeHttp) -> Vec<Hit> {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("hardening-client:{CLIENT_SECRET}"));
    fake.hits()
        .into_iter()
        .filter(|h| h.carries(CLIENT_SECRET) || h.carries(&basic) || h.carries("client_assertion"))
        .collect()
}

/// Item 5: the upstream's protected-resource metadata names an authorization server the
/// operator did not configure; the configured client's secret (or signed assertion) never
/// goes there. The MCP server that is its own authorization server still gets it.
#[tokio::test]
async fn configured_client_credentials_go_only_to_the_configured_authorization_server() {
    let dir = tempfile::tempdir().unwrap();
    let (browser, record) = recording_browser(dir.path());
    let elsewhere = fake_as(Overrides::default()).await;
    let configured = fake_as(Overrides::default()).await;
    let pointing_elsewhere = protected_mcp(Some(elsewhere.url(""))).await;
    let own_server = protected_mcp(None).await;
    let client = |extra: Value| {
        let mut block = json!({"client_id": "hardening-client", "client_secret": CLIENT_SECRET});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            block[k] = v;
        }
        oauth_block(block)
    };
    let key = crate::peers::jwt_client_key();
    let mcpo = start_mcpo(
        dir.path(),
        json!({
            "cc-unnamed": {"type": "streamable-http", "url": pointing_elsewhere.url("/mcp"),
                "oauth": client(json!({"grant_type": "client_credentials"}))},
            "cc-named": {"type": "streamable-http", "url": pointing_elsewhere.url("/mcp"),
                "oauth": client(json!({"grant_type": "client_credentials", "server_url": configured.url("")}))},
            "code-named": {"type": "streamable-http", "url": pointing_elsewhere.url("/mcp"),
                "oauth": client(json!({"server_url": configured.url("")}))},
            "jwt-unnamed": {"type": "streamable-http", "url": pointing_elsewhere.url("/mcp"),
                "oauth": oauth_block(json!({"grant_type": "client_credentials",
                    "client_id": "hardening-client", "signing_key_file": key}))},
            "cc-own": {"type": "streamable-http", "url": own_server.url("/mcp"),
                "oauth": client(json!({"grant_type": "client_credentials"}))},
        }),
        &browser,
    );
    // The control: an MCP server that is its own authorization server gets the grant (and
    // refuses it).
    poll(Duration::from_secs(30), || async {
        own_server
            .hits()
            .iter()
            .any(|h| h.path() == "/token")
            .then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no token request reached the MCP server's own AS:\n{}",
            mcpo.stderr.text()
        )
    });
    assert!(!credentials_sent_to(&own_server).is_empty());
    for server in ["cc-unnamed", "cc-named", "code-named", "jwt-unnamed"] {
        wait_last_error(&mcpo, server, "", Duration::from_secs(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leaked = credentials_sent_to(&elsewhere);
    assert!(
        leaked.is_empty(),
        "the authorization server the upstream named received the client's credentials: \
         {leaked:?}"
    );
    assert!(
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .is_empty(),
        "a browser was opened for a login at an authorization server nobody configured"
    );
    for (server, needle) in [
        ("cc-unnamed", "set oauth.server_url"),
        ("cc-named", "not to oauth.server_url"),
        ("code-named", "not to oauth.server_url"),
        ("jwt-unnamed", "set oauth.server_url"),
    ] {
        let error = wait_last_error(&mcpo, server, needle, Duration::from_secs(30)).await;
        assert!(error.contains(&elsewhere.url("")), "{error}");
    }
    assert!(configured.hits().iter().all(|h| h.method == "GET"));
    assert!(!mcpo.stderr.text().contains(CLIENT_SECRET));
}

/// Item 4: endpoints at `0.0.0.0` (which Linux connects to this machine) are refused for
/// mcpo's own OAuth requests, as rmcp refuses them for its own: dynamic registration and a
/// `private_key_jwt` token request never reach the listener behind that address.
#[tokio::test]
async fn own_oauth_requests_refuse_the_addresses_rmcp_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (browser, _record) = recording_browser(dir.path());
    // Whatever reaches it through 0.0.0.0 is recorded.
    let behind_zero = FakeHttp::start(|_, _| json_reply(201, &json!({"client_id": "zero"}))).await;
    let zero = format!("http://0.0.0.0:{}", behind_zero.addr.port());
    let hostile = fake_as(Overrides::with(json!({
        "registration_endpoint": format!("{zero}/register"),
        "token_endpoint": format!("{zero}/token"),
    })))
    .await;
    let mcp = protected_mcp(Some(hostile.url(""))).await;
    let mcpo = start_mcpo(
        dir.path(),
        json!({
            "dcr-zero": {"type": "streamable-http", "url": mcp.url("/mcp"), "oauth": oauth_block(json!({}))},
            "jwt-zero": {"type": "streamable-http", "url": mcp.url("/mcp"),
                "oauth": oauth_block(json!({"grant_type": "client_credentials",
                    "client_id": "hardening-client", "server_url": hostile.url(""),
                    "signing_key_file": crate::peers::jwt_client_key()}))},
        }),
        &browser,
    );
    for server in ["dcr-zero", "jwt-zero"] {
        wait_last_error(&mcpo, server, "", Duration::from_secs(30)).await;
    }
    let reached = behind_zero.hits();
    assert!(
        reached.is_empty(),
        "requests reached the listener behind 0.0.0.0: {reached:?}"
    );
    for server in ["dcr-zero", "jwt-zero"] {
        let error = wait_last_error(&mcpo, server, "address rule", Duration::from_secs(30)).await;
        assert!(error.contains(&zero), "{error}");
    }
    // Loopback stays usable for a loopback MCP endpoint: the metadata came from 127.0.0.1.
    assert!(!hostile.hits().is_empty());
}

/// Item 9: the loopback login listens on a callback path of its own. A code delivered to the
/// documented `/callback` (by a page the user visits, or a local process) with the login's
/// `state` (as if it had leaked) is not exchanged; the same request to the path the
/// authorization URL names is.
#[tokio::test]
async fn a_code_sent_to_the_documented_callback_signs_nothing_in() {
    let dir = tempfile::tempdir().unwrap();
    let (browser, record) = recording_browser(dir.path());
    let mcp = protected_mcp(None).await;
    let port = free_port();
    let _mcpo = start_mcpo(
        dir.path(),
        json!({"login": {"type": "streamable-http", "url": mcp.url("/mcp"),
            "oauth": oauth_block(json!({"callback_port": port, "login_timeout": 60}))}}),
        &browser,
    );
    let opened = poll(Duration::from_secs(30), || async {
        std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
    })
    .await
    .expect("mcpo never opened the browser");
    let opened = url::Url::parse(opened.trim()).unwrap();
    let param = |name: &str| {
        opened
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {opened}"))
    };
    let (state, redirect) = (param("state"), param("redirect_uri"));
    let registered: Value = mcp
        .hits()
        .iter()
        .find(|h| h.path() == "/register")
        .map(|h| serde_json::from_str(&h.body).unwrap())
        .expect("mcpo registered a client");
    assert_eq!(registered["redirect_uris"], json!([redirect]));

    let client = crate::common::client();
    let exchanged = |code: &'static str| {
        mcp.hits()
            .iter()
            .any(|h| h.path() == "/token" && h.carries(code))
    };
    // The attacker's code, with the leaked state, at the documented callback.
    let forged = client
        .get(format!(
            "http://127.0.0.1:{port}/callback?code=attacker-code&state={state}"
        ))
        .header("Origin", "https://attacker.example")
        .send()
        .await
        .expect("the callback listener answers");
    let forged_status = forged.status();
    assert!(
        !exchanged("attacker-code"),
        "mcpo exchanged a code delivered to /callback (answered {forged_status}); the \
         registered redirect URI was {redirect}"
    );
    assert_eq!(forged_status, 404);
    let own_path = redirect
        .strip_prefix(&format!("http://localhost:{port}/callback/"))
        .unwrap_or_else(|| panic!("{redirect} is not a per-registration callback"));
    assert_eq!(own_path.len(), 32, "{redirect}");
    // The same request where the authorization server sends the browser is this login's.
    let real = client
        .get(format!(
            "http://127.0.0.1:{port}/callback/{own_path}?code=browser-code&state={state}"
        ))
        .send()
        .await
        .expect("the callback listener answers");
    assert!(exchanged("browser-code"), "answered {}", real.status());
}
