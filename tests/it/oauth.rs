//! The OAuth client (`mcpo::oauth`) against real peers on loopback: oidc-provider as the
//! authorization server, the MCP Python SDK as the protected MCP server, and a headless
//! fake browser that signs in and consents. Each test starts its own peers (see
//! `tests/oauth/peers.rs`) and stops them through their handles. Install the peers with
//! `scripts/install-oauth-peers.sh`. The tests that need them are `#[ignore]`d (a plain
//! `cargo test` counts them as ignored; scripts/test.sh includes them); included without the
//! peers they skip loudly, or fail when `MCPO_REQUIRE_OAUTH_PEERS` is set.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::common::free_port;
use crate::peers::{self, PeerOptions, Peers, peers_or_skip, read_tokens};
use mcpo::config::ServerConfig;
use mcpo::oauth::{AuthOptions, Authorizer, LoginState, OAuthError};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};
use serde_json::{Value, json};

/// Everything every test logs, at every level, to check that no secret is ever in it.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("global subscriber");
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

fn assert_not_logged(secret: &str, what: &str) {
    assert!(secret.len() >= 8, "{what} is suspiciously short");
    assert!(!logs().contains(secret), "the {what} appears in the logs");
}

/// A streamable-HTTP server entry, parsed by mcpo's own config code.
fn server(name: &str, url: &str, oauth: Value) -> ServerConfig {
    let text =
        json!({"mcpServers": {name: {"type": "streamable-http", "url": url, "oauth": oauth}}});
    let (config, _warnings) =
        mcpo::config::from_str(&text.to_string(), "test.json").expect("valid config");
    config.servers.into_iter().next().expect("one server")
}

/// A server entry for the peers' MCP server: mcpo registers its client (RFC 7591) and signs
/// in through the browser, on a free callback port.
fn registering(peers: &Peers, name: &str) -> ServerConfig {
    server(
        name,
        &peers.mcp_url,
        json!({"callback_port": free_port(), "login_timeout": 30}),
    )
}

fn options(peers: &Peers, browser_flags: &[&str]) -> AuthOptions {
    let (program, args) = peers.browser(browser_flags);
    AuthOptions::default()
        .browser_command(program, args)
        .token_dir(peers.token_dir())
}

async fn ensure(auth: &Authorizer) -> Result<(), OAuthError> {
    tokio::time::timeout(Duration::from_secs(60), auth.ensure_authorized())
        .await
        .expect("ensure_authorized did not return within 60 s")
}

/// An authorizer for `config` that has signed in (the fake browser consents when asked).
async fn signed_in(peers: &Peers, config: &ServerConfig) -> Authorizer {
    let auth = Authorizer::new(config, options(peers, &[])).unwrap();
    ensure(&auth).await.unwrap();
    auth
}

async fn session(auth: &Authorizer, url: &str) -> RunningService<RoleClient, ()> {
    let transport = StreamableHttpClientTransport::with_client(
        auth.http_client(reqwest::Client::new()),
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    tokio::time::timeout(Duration::from_secs(60), ().serve(transport))
        .await
        .expect("initialize within 60 s")
        .expect("MCP initialize through OAuth")
}

/// Calls `tool` and returns the text of its first content item.
async fn call(service: &RunningService<RoleClient, ()>, tool: &'static str, args: Value) -> String {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        service.call_tool(CallToolRequestParams::new(tool).with_arguments(args)),
    )
    .await
    .expect("tools/call within 60 s")
    .expect("tools/call");
    let value = serde_json::to_value(&result).expect("result as JSON");
    value["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {value}"))
        .to_owned()
}

/// The fake browser's log once it contains `needle` (it writes after mcpo has answered).
async fn browser_log_with(peers: &Peers, needle: &str) -> String {
    for _ in 0..250 {
        let log = peers.browser_log_text();
        if log.contains(needle) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the browser log never showed {needle:?}:\n{}",
        peers.browser_log_text()
    );
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn dynamic_registration_login_then_stored_tokens_are_reused() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let port = free_port();
    let config = server(
        "dcr",
        &peers.mcp_url,
        json!({"callback_port": port, "login_timeout": 30}),
    );

    let auth = Authorizer::new(&config, options(&peers, &[])).unwrap();
    assert_eq!(auth.state(), LoginState::Unknown);
    ensure(&auth).await.unwrap();
    assert_eq!(auth.state(), LoginState::Authorized);
    assert_eq!(peers.browser_invocations(), 1);

    // RFC 7591 registration of a public native client with our loopback redirect URI.
    let registrations = peers.as_events_named("registration");
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    let client_id = registrations[0]["client_id"].as_str().unwrap().to_owned();
    assert_eq!(registrations[0]["token_endpoint_auth_method"], "none");
    // The loopback callback has a path of its own per registration (#19 item 9).
    let redirect_uris = registrations[0]["redirect_uris"].as_array().unwrap();
    assert_eq!(redirect_uris.len(), 1, "{redirect_uris:?}");
    let own_path = redirect_uris[0]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("http://localhost:{port}/callback/"))
        .unwrap_or_else(|| panic!("{redirect_uris:?}"));
    assert_eq!(own_path.len(), 32, "{redirect_uris:?}");
    // PKCE S256, state, the PRM's scope, and the MCP endpoint as the RFC 8707 resource.
    let authorizations = peers.as_events_named("authorization");
    assert_eq!(authorizations.len(), 1);
    assert_eq!(authorizations[0]["code_challenge_method"], "S256");
    assert_eq!(authorizations[0]["has_state"], true);
    assert_eq!(authorizations[0]["scope"], "mcp:tools");
    assert_eq!(authorizations[0]["resource"], peers.mcp_url.as_str());
    let grants = peers.as_events_named("grant");
    assert_eq!(grants[0]["grant_type"], "authorization_code");
    assert_eq!(grants[0]["resource"], peers.mcp_url.as_str());

    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 2, "b": 3})).await, "5");
    assert_eq!(call(&service, "whoami", json!({})).await, client_id);
    service.cancel().await.ok();

    // Token files: a private directory, private files, nothing else left behind.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = peers.token_dir();
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        let client_file = files
            .iter()
            .find(|f| f.to_string_lossy().ends_with("_client.json"))
            .expect("client registration file");
        let registration = read_tokens(client_file);
        assert_eq!(registration["client_id"], client_id.as_str());
        assert_eq!(registration["issuer"], peers.issuer.as_str());
        assert_eq!(registration["response"]["client_id"], client_id.as_str());
    }
    let tokens = read_tokens(&auth.token_file().expect("file storage"));
    drop(auth);

    // A second run: the stored tokens and registration are enough, no browser.
    let again = signed_in(&peers, &config).await;
    assert_eq!(peers.browser_invocations(), 1, "no new login expected");
    assert_eq!(peers.as_events_named("registration").len(), 1);
    let service = session(&again, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 1, "b": 1})).await, "2");
    service.cancel().await.ok();

    // A corrupt token file: a warning and a new login with the same registration.
    std::fs::write(again.token_file().unwrap(), b"{ not json").unwrap();
    signed_in(&peers, &config).await;
    assert_eq!(peers.browser_invocations(), 2);
    assert_eq!(peers.as_events_named("registration").len(), 1);
    assert!(
        logs().contains("is not valid"),
        "no warning about the corrupt file"
    );

    // Nothing secret in any log line, at any level.
    let access = tokens["token_response"]["access_token"].as_str().unwrap();
    let refresh = tokens["token_response"]["refresh_token"].as_str().unwrap();
    assert_not_logged(access, "access token");
    assert_not_logged(refresh, "refresh token");
    let codes = peers.codes_seen();
    assert_eq!(codes.len(), 2, "{}", peers.browser_log_text());
    for code in &codes {
        assert_not_logged(code, "authorization code");
    }
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn preregistered_client_uses_its_secret_and_no_registration() {
    let port = free_port();
    capture_logs();
    let peers = peers_or_skip!(PeerOptions {
        static_callback_port: Some(port),
        ..Default::default()
    });
    let config = server(
        "static",
        &peers.mcp_url,
        json!({
            "callback_port": port,
            "client_id": "mcpo-static-client",
            "client_secret": "mcpo-static-secret",
            "server_url": peers.issuer,
            "storage_type": "memory",
            "login_timeout": 30,
        }),
    );
    let auth = signed_in(&peers, &config).await;
    assert!(peers.as_events_named("registration").is_empty());
    let grants = peers.as_events_named("grant");
    assert_eq!(grants[0]["client_id"], "mcpo-static-client");
    assert_eq!(grants[0]["client_auth"], "client_secret_basic");
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(
        call(&service, "whoami", json!({})).await,
        "mcpo-static-client"
    );
    service.cancel().await.ok();
    assert_not_logged("mcpo-static-secret", "client secret");
}

/// `mcpo auth logout` revokes (RFC 7009) before it deletes: a confidential client with
/// HTTP Basic, a private_key_jwt client, and nothing stored.
#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn revocation_at_logout_makes_the_authorization_server_forget_the_tokens() {
    let port = free_port();
    capture_logs();
    let peers = peers_or_skip!(PeerOptions {
        static_callback_port: Some(port),
        ..Default::default()
    });
    let config = server(
        "revoke-static",
        &peers.mcp_url,
        json!({
            "callback_port": port,
            "client_id": "mcpo-static-client",
            "client_secret": "mcpo-static-secret",
            "server_url": peers.issuer,
            "login_timeout": 30,
        }),
    );
    let auth = signed_in(&peers, &config).await;
    let tokens = read_tokens(&auth.token_file().expect("file storage"));
    let access = tokens["token_response"]["access_token"].as_str().unwrap();
    let refresh = tokens["token_response"]["refresh_token"].as_str().unwrap();
    assert!(peers.is_active(access).await && peers.is_active(refresh).await);
    let revoked = mcpo::oauth::revoke(&config, options(&peers, &[]))
        .await
        .unwrap();
    assert_eq!(revoked, mcpo::oauth::Revocation::Revoked(2));
    assert!(
        !peers.is_active(access).await,
        "the access token is still active"
    );
    assert!(
        !peers.is_active(refresh).await,
        "the refresh token is still active"
    );
    assert!(
        mcpo::oauth::logout(&config, options(&peers, &[]))
            .await
            .unwrap()
    );
    assert_eq!(
        mcpo::oauth::revoke(&config, options(&peers, &[]))
            .await
            .unwrap(),
        mcpo::oauth::Revocation::NothingStored
    );
    assert_not_logged("mcpo-static-secret", "client secret");
    assert_not_logged(refresh, "refresh token");

    // private_key_jwt: the revocation request carries an assertion.
    let config = server(
        "revoke-jwt",
        &peers.mcp_url,
        json!({
            "grant_type": "client_credentials",
            "client_id": "mcpo-jwt-client",
            "signing_key_file": peers::jwt_client_key(),
            "server_url": peers.issuer,
        }),
    );
    let auth = signed_in(&peers, &config).await;
    let access =
        read_tokens(&auth.token_file().expect("file storage"))["token_response"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(peers.is_active(&access).await);
    let revoked = mcpo::oauth::revoke(&config, options(&peers, &[]))
        .await
        .unwrap();
    assert_eq!(revoked, mcpo::oauth::Revocation::Revoked(1));
    assert!(
        !peers.is_active(&access).await,
        "the access token is still active"
    );
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn insufficient_scope_leads_to_a_step_up_login() {
    let port = free_port();
    capture_logs();
    let peers = peers_or_skip!(PeerOptions {
        static_callback_port: Some(port),
        ..Default::default()
    });
    let config = server(
        "stepup",
        &peers.mcp_url,
        json!({
            "callback_port": port,
            "client_id": "mcpo-static-client",
            "client_secret": "mcpo-static-secret",
            "server_url": peers.issuer,
            "storage_type": "memory",
            "login_timeout": 30,
        }),
    );
    let auth = signed_in(&peers, &config).await;
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 1, "b": 2})).await, "3");
    // 403 insufficient_scope, a login for the union of the scopes, the call again.
    assert_eq!(
        call(&service, "admin_echo", json!({"text": "hello"})).await,
        "hello"
    );
    service.cancel().await.ok();
    assert_eq!(peers.browser_invocations(), 2);
    let scopes: Vec<String> = peers
        .as_events_named("authorization")
        .iter()
        .map(|e| e["scope"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(scopes.len(), 2, "{scopes:?}");
    assert_eq!(scopes[0], "mcp:tools");
    let stepped: std::collections::BTreeSet<&str> = scopes[1].split(' ').collect();
    assert_eq!(stepped, ["mcp:admin", "mcp:tools"].into_iter().collect());
    let refused = peers
        .rs_events()
        .iter()
        .filter(|e| e["event"] == "insufficient_scope")
        .count();
    assert_eq!(refused, 1);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn client_credentials_grant_needs_no_browser() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let config = server(
        "machine",
        &peers.mcp_url,
        json!({
            "grant_type": "client_credentials",
            "client_id": "mcpo-cc-client",
            "client_secret": "mcpo-cc-secret",
            "server_url": peers.issuer,
            "storage_type": "memory",
        }),
    );
    let auth = signed_in(&peers, &config).await;
    assert_eq!(peers.browser_invocations(), 0);
    let grants = peers.as_events_named("grant");
    assert_eq!(grants[0]["grant_type"], "client_credentials");
    assert_eq!(grants[0]["resource"], peers.mcp_url.as_str());
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "whoami", json!({})).await, "mcpo-cc-client");
    service.cancel().await.ok();
    assert_not_logged("mcpo-cc-secret", "client secret");
}

/// `private_key_jwt` (RFC 7523): oidc-provider verifies the assertion against the public
/// half of the key mcpo signs with; no secret, no browser, and a new assertion (never a
/// refresh) once the access token runs out.
#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn client_credentials_with_a_private_key_jwt() {
    // rmcp renews a token with less than 30 s left: 35 s lasts for one call, and 6 s later
    // it is due again.
    capture_logs();
    let peers = peers_or_skip!(PeerOptions {
        access_ttl: 35,
        ..Default::default()
    });
    let config = server(
        "machine-jwt",
        &peers.mcp_url,
        json!({
            "grant_type": "client_credentials",
            "client_id": "mcpo-jwt-client",
            "signing_key_file": peers::jwt_client_key(),
            "server_url": peers.issuer,
            "storage_type": "memory",
        }),
    );
    let auth = signed_in(&peers, &config).await;
    assert_eq!(peers.browser_invocations(), 0);
    let grants = peers.as_events_named("grant");
    assert_eq!(grants.len(), 1, "{:?}", peers.as_events());
    assert_eq!(grants[0]["grant_type"], "client_credentials");
    assert_eq!(grants[0]["client_id"], "mcpo-jwt-client");
    assert_eq!(grants[0]["client_auth"], "private_key_jwt");
    assert_eq!(grants[0]["resource"], peers.mcp_url.as_str());
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "whoami", json!({})).await, "mcpo-jwt-client");
    // The access token is due for renewal: a new assertion, in the same session.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(call(&service, "add", json!({"a": 1, "b": 2})).await, "3");
    service.cancel().await.ok();
    let grants = peers.as_events_named("grant");
    assert!(
        grants.len() >= 2,
        "no second grant: {:?}",
        peers.as_events()
    );
    assert!(
        grants
            .iter()
            .all(|g| g["grant_type"] == "client_credentials")
    );
    assert!(
        peers.as_events_named("grant.error").is_empty(),
        "{:?}",
        peers.as_events()
    );
    let key = std::fs::read_to_string(peers::jwt_client_key()).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert_not_logged(key_body, "private key");
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn memory_storage_lives_as_long_as_the_process() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let config = server(
        "memory",
        &peers.mcp_url,
        json!({"callback_port": free_port(), "storage_type": "memory", "login_timeout": 30}),
    );
    let auth = Authorizer::new(&config, options(&peers, &[])).unwrap();
    assert!(auth.token_file().is_none());
    ensure(&auth).await.unwrap();
    assert!(!peers.token_dir().exists(), "memory storage wrote files");

    // Another authorizer in the same process (a reconnect, a reload) needs no login...
    let again = signed_in(&peers, &config).await;
    assert_eq!(peers.browser_invocations(), 1);
    let service = session(&again, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 20, "b": 22})).await, "42");
    service.cancel().await.ok();

    // ...until logout forgets the tokens.
    assert!(
        mcpo::oauth::logout(&config, options(&peers, &[]))
            .await
            .unwrap()
    );
    signed_in(&peers, &config).await;
    assert_eq!(peers.browser_invocations(), 2);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn short_lived_access_tokens_are_refreshed() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions {
        access_ttl: 5,
        ..Default::default()
    });
    let config = registering(&peers, "refresh");
    let auth = signed_in(&peers, &config).await;
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 1, "b": 2})).await, "3");
    // Past the first access token's lifetime. A fixed wait after the call: timed from the
    // grant instead (~0.5 s shorter), the refresh failed with "Request failed" in 2 of 6 runs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(call(&service, "add", json!({"a": 3, "b": 4})).await, "7");
    service.cancel().await.ok();

    let refreshes = peers
        .as_events_named("grant")
        .into_iter()
        .filter(|g| g["grant_type"] == "refresh_token")
        .count();
    assert!(
        refreshes >= 1,
        "no refresh_token grant: {:?}",
        peers.as_events()
    );
    assert!(peers.as_events_named("grant.error").is_empty());
    let tokens: std::collections::HashSet<String> = peers
        .rs_events()
        .iter()
        .filter(|e| e["active"] == true)
        .map(|e| e["token"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        tokens.len() >= 2,
        "the MCP server saw one access token only"
    );
    assert_eq!(
        peers.browser_invocations(),
        1,
        "a refresh must not need a login"
    );
}

/// Two token stores on one token file, as two mcpo processes sharing `~/.mcpo/tokens`
/// (the lock is per open file, so this is the cross-process case): they refresh at the same
/// moment. oidc-provider rotates a public client's refresh token and treats the reuse of a
/// spent one as a replay (grant revoked); under the refresh lock the second refresher uses
/// the token the first one saved, so neither needs a new login.
#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn two_processes_sharing_the_token_file_refresh_in_turn() {
    // rmcp refreshes a token with less than 30 s left: after 5 s, this one is due.
    capture_logs();
    let peers = peers_or_skip!(PeerOptions {
        access_ttl: 34,
        ..Default::default()
    });
    let config = registering(&peers, "shared-file");
    let first = signed_in(&peers, &config).await;
    assert_eq!(peers.browser_invocations(), 1);
    drop(first);
    // Both "processes" start (discovery, stored tokens still fresh)...
    let (a, b) = (
        Authorizer::new(&config, options(&peers, &[])).unwrap(),
        Authorizer::new(&config, options(&peers, &[])).unwrap(),
    );
    ensure(&a).await.unwrap();
    ensure(&b).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // ...and find the token due at the same moment.
    let (ra, rb) = tokio::join!(ensure(&a), ensure(&b));
    ra.unwrap();
    rb.unwrap();
    let refreshes = peers
        .as_events_named("grant")
        .into_iter()
        .filter(|g| g["grant_type"] == "refresh_token")
        .count();
    assert!(
        peers.as_events_named("grant.error").is_empty(),
        "a refresh was refused: {:?}",
        peers.as_events()
    );
    assert!(peers.as_events_named("grant.revoked").is_empty());
    // The second found the tokens the first had just refreshed, under the lock: one refresh,
    // not two (with rotation a second would spend the new refresh token for nothing).
    assert_eq!(refreshes, 1, "{:?}", peers.as_events());
    assert_eq!(peers.browser_invocations(), 1, "a new login was needed");
    let service = session(&b, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 1, "b": 1})).await, "2");
    service.cancel().await.ok();
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn revoked_refresh_token_leads_to_a_new_login_in_the_same_session() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions {
        access_ttl: 5,
        ..Default::default()
    });
    let config = registering(&peers, "revoked");
    let auth = signed_in(&peers, &config).await;
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 1, "b": 1})).await, "2");

    let tokens = read_tokens(&auth.token_file().expect("file storage"));
    let client_id = tokens["client_id"].as_str().unwrap();
    let refresh = tokens["token_response"]["refresh_token"].as_str().unwrap();
    peers.revoke(client_id, refresh).await;

    // The refresh fails with invalid_grant, the request gets a 401, mcpo logs in again and
    // retries: the call succeeds on the same MCP session.
    assert_eq!(call(&service, "add", json!({"a": 2, "b": 2})).await, "4");
    assert_eq!(peers.browser_invocations(), 2);
    let rejected = peers
        .as_events_named("grant.error")
        .into_iter()
        .any(|e| e["error"] == "invalid_grant");
    assert!(rejected, "{:?}", peers.as_events());
    service.cancel().await.ok();
    assert_eq!(auth.state(), LoginState::Authorized);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn denied_consent_is_a_clear_error_and_no_browser_storm() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let config = registering(&peers, "denied");
    let auth = Authorizer::new(&config, options(&peers, &["--deny"])).unwrap();
    let err = ensure(&auth).await.unwrap_err();
    assert!(
        matches!(&err, OAuthError::Denied { error, .. } if error == "access_denied"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("'denied'") && message.contains("access_denied"),
        "{message}"
    );
    assert!(message.contains("mcpo auth login"), "{message}");
    match auth.state() {
        LoginState::Failed {
            reason,
            retry_after: Some(wait),
        } => {
            assert!(reason.contains("access_denied"), "{reason}");
            assert!(wait > Duration::from_secs(30));
        }
        other => panic!("unexpected state {other:?}"),
    }
    // The browser page said so too.
    browser_log_with(&peers, "callback answered 400").await;

    // A reconnect right away does not open another browser.
    let again = ensure(&auth).await.unwrap_err();
    assert!(again.retry_after().is_some(), "{again:?}");
    assert_eq!(peers.browser_invocations(), 1);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn unfinished_login_times_out_then_auth_login_overrides_the_cool_down() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let config = server(
        "slow",
        &peers.mcp_url,
        json!({"callback_port": free_port(), "login_timeout": 1}),
    );
    // A "browser" that never signs in.
    let idle = AuthOptions::default()
        .browser_command("true", vec![])
        .token_dir(peers.token_dir());
    let auth = Authorizer::new(&config, idle).unwrap();
    let started = std::time::Instant::now();
    let err = ensure(&auth).await.unwrap_err();
    assert!(matches!(err, OAuthError::TimedOut { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(err.to_string().contains("within 1 s"), "{err}");
    assert!(matches!(
        auth.state(),
        LoginState::Failed {
            retry_after: Some(_),
            ..
        }
    ));
    assert!(matches!(
        ensure(&auth).await,
        Err(OAuthError::CoolingDown { .. })
    ));

    // `mcpo auth login` signs in now, cool-down or not; the daemon's authorizer then finds
    // the tokens on its next check.
    mcpo::oauth::login(&config, options(&peers, &[]))
        .await
        .unwrap();
    assert_eq!(peers.browser_invocations(), 1);
    ensure(&auth).await.unwrap();
    assert_eq!(auth.state(), LoginState::Authorized);
    assert_eq!(peers.browser_invocations(), 1);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn callback_with_a_wrong_state_is_ignored() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let config = registering(&peers, "state");
    let auth = Authorizer::new(&config, options(&peers, &["--wrong-state-first"])).unwrap();
    ensure(&auth).await.unwrap();
    let log = browser_log_with(&peers, "callback answered 200").await;
    let forged = log
        .find("callback answered 400")
        .expect("forged callback refused");
    let genuine = log
        .find("callback answered 200")
        .expect("genuine callback accepted");
    assert!(forged < genuine, "{log}");
    assert!(log.contains("does not belong to the login"), "{log}");
    assert_eq!(peers.as_events_named("grant").len(), 1);
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn manual_flow_reads_the_pasted_callback_url() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let config = server(
        "manual",
        &peers.mcp_url,
        json!({"callback_port": free_port(), "use_loopback": false, "login_timeout": 30}),
    );
    let (paste, lines) = tokio::sync::mpsc::unbounded_channel();
    let options = options(&peers, &[])
        .pasted_lines(lines)
        .cool_down(Duration::ZERO);
    let auth = Authorizer::new(&config, options).unwrap();

    async fn login_url(auth: &Authorizer, not: Option<&str>) -> String {
        for _ in 0..1500 {
            if let LoginState::Pending { url: Some(url) } = auth.state()
                && Some(url.as_str()) != not
            {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no login URL; state {:?}", auth.state());
    }

    // A pasted URL without a code is a clear error.
    let task = tokio::spawn({
        let auth = auth.clone();
        async move { ensure(&auth).await }
    });
    let first = login_url(&auth, None).await;
    paste
        .send("http://localhost/callback?state=whatever".to_owned())
        .unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("no `code`"), "{err}");

    // Then a real one (after some noise) completes the login.
    let task = tokio::spawn({
        let auth = auth.clone();
        async move { ensure(&auth).await }
    });
    let url = login_url(&auth, Some(&first)).await;
    let callback = tokio::task::spawn_blocking({
        let peers_url = url.clone();
        let (program, args) = peers.browser(&[]);
        let out = peers.dir.path().join("pasted");
        move || {
            let status = std::process::Command::new(program)
                .args(args)
                .arg("--print-callback")
                .arg(&out)
                .arg(peers_url)
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::read_to_string(out).unwrap()
        }
    })
    .await
    .unwrap();
    paste.send("   ".to_owned()).unwrap();
    paste.send("not a url".to_owned()).unwrap();
    paste.send(callback).unwrap();
    task.await.unwrap().unwrap();
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "add", json!({"a": 5, "b": 5})).await, "10");
    service.cancel().await.ok();
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn forgotten_client_is_registered_again() {
    capture_logs();
    let mut peers = peers_or_skip!(PeerOptions {
        access_ttl: 5,
        ..Default::default()
    });
    let config = registering(&peers, "forgotten");
    let auth = signed_in(&peers, &config).await;
    let first = read_tokens(&auth.token_file().expect("file storage"))["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The authorization server loses its state: the refresh answers invalid_client.
    peers.restart_auth_server();
    ensure(&auth).await.unwrap();
    let second = read_tokens(&auth.token_file().expect("file storage"))["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second, "a new registration was expected");
    assert_eq!(peers.as_events_named("registration").len(), 2);
    assert_eq!(peers.browser_invocations(), 2);
    let service = session(&auth, &peers.mcp_url).await;
    assert_eq!(call(&service, "whoami", json!({})).await, second);
    service.cancel().await.ok();
}

#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn logins_sharing_a_callback_port_take_turns() {
    capture_logs();
    let peers = peers_or_skip!(PeerOptions::default());
    let port = free_port();
    let a = Authorizer::new(
        &server(
            "first",
            &peers.mcp_url,
            json!({"callback_port": port, "login_timeout": 30}),
        ),
        options(&peers, &[]),
    )
    .unwrap();
    let b = Authorizer::new(
        &server(
            "second",
            &peers.mcp_url,
            json!({"callback_port": port, "login_timeout": 30}),
        ),
        options(&peers, &[]),
    )
    .unwrap();
    let (ra, rb) = tokio::join!(ensure(&a), ensure(&b));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(peers.browser_invocations(), 2);
    assert_eq!(peers.as_events_named("registration").len(), 2);
}

/// Protected-resource metadata naming another resource: mcpo must not authorize. A small
/// local server plays the MCP server; no peers needed.
#[tokio::test]
async fn metadata_for_another_resource_is_refused() {
    capture_logs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let prm = json!({
        "resource": "https://elsewhere.example/mcp",
        "authorization_servers": [base.clone()],
    });
    let challenge = format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
    );
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::any(move || {
                let challenge = challenge.clone();
                async move {
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        [(axum::http::header::WWW_AUTHENTICATE, challenge)],
                    )
                }
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            axum::routing::get(move || {
                let prm = prm.clone();
                async move { axum::Json(prm) }
            }),
        );
    let server_task = tokio::spawn(async move { axum::serve(listener, app).await });

    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("browser-ran");
    let config = server(
        "mismatch",
        &format!("{base}/mcp"),
        json!({"callback_port": free_port(), "login_timeout": 5}),
    );
    let options = AuthOptions::default()
        .token_dir(tmp.path().join("tokens"))
        .browser_command("touch", vec![marker.display().to_string()]);
    let auth = Authorizer::new(&config, options).unwrap();
    let err = ensure(&auth).await.unwrap_err();
    assert!(
        matches!(err, OAuthError::ResourceMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("elsewhere.example"), "{err}");
    assert!(!marker.exists(), "the browser was opened");
    assert!(matches!(auth.state(), LoginState::Failed { .. }));
    server_task.abort();
}
