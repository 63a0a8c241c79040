//! #19 item 10: the web login of multi-user OAuth servers builds its links and its OAuth
//! callback (`redirect_uri`) on `--public-url` alone. It used the request's `Host` /
//! `X-Forwarded-Host`, so a user could have a client registered with an attacker's callback,
//! and a code sent there (another user's, through a link the attacker handed out) could be
//! redeemed with the user's own cookie. Without `--public-url` such a server does not start.

use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

const SECRET: &str = "owui-secret-web-login-hardening";

fn oauth_multi_user(url: &str) -> serde_json::Value {
    json!({"type": "streamable-http", "url": url,
           "oauth": {"multi_user": true, "webui_secret_key": SECRET}})
}

fn jwt(user: &str) -> String {
    let t = now();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"id": user, "exp": t + 3600, "iat": t, "typ": "session"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode JWT")
}

#[test]
fn a_multi_user_oauth_server_without_public_url_does_not_start() {
    let url = format!("http://127.0.0.1:{}/mcp", free_port());
    let config =
        write_config(&json!({"mcpServers": {"team-drive": oauth_multi_user(&url)}}).to_string());
    let (status, stderr) = run_refused(&["--config", config.path().to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    for needle in ["team-drive", "--public-url", "MCPO_PUBLIC_URL"] {
        assert!(stderr.contains(needle), "no `{needle}` in:\n{stderr}");
    }
    // A URL users could not be sent to is refused too.
    for bad in [
        "mcpo.example.com",
        "ftp://mcpo.example.com",
        "https://u:p@h.example",
        "https://h.example/?x=1",
    ] {
        let (status, stderr) = run_refused(&[
            "--config",
            config.path().to_str().unwrap(),
            "--public-url",
            bad,
        ]);
        assert_eq!(status.code(), Some(2), "{bad}: stderr:\n{stderr}");
        assert!(stderr.contains("--public-url"), "{bad}: {stderr}");
        assert!(!stderr.contains("u:p@"), "{bad}: {stderr}");
    }
}

/// A caller that names another host (`Host`, `X-Forwarded-Host`, `X-Forwarded-Proto`) gets a
/// login link and, once it confirms, an authorization request whose `redirect_uri` are both on
/// `--public-url`, even with `--trust-forwarded-headers`.
#[tokio::test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
async fn the_login_link_and_callback_ignore_the_hosts_a_caller_names() {
    let peers = crate::peers::peers_or_skip!();
    let config = write_config(
        &json!({"mcpServers": {"secure": oauth_multi_user(&peers.mcp_url)}}).to_string(),
    );
    let port = free_port().to_string();
    let public = format!("http://127.0.0.1:{port}");
    let token_dir = peers.token_dir().display().to_string();
    let mcpo = Mcpo::start_with_env(
        &[
            "--config",
            config.path().to_str().unwrap(),
            "--port",
            &port,
            "--public-url",
            &public,
            "--trust-forwarded-headers",
            // The host check (item 7) would refuse the forged Host before the web login saw it.
            "--allowed-hosts",
            "*",
        ],
        &[("MCPO_TOKEN_DIR", token_dir.as_str()), ("BROWSER", "false")],
    );
    let evil = [
        ("x-forwarded-host", "attacker.example"),
        ("x-forwarded-proto", "https"),
    ];
    let mut request = client()
        .post(mcpo.url("/secure/oauth/login"))
        .bearer_auth(jwt("user-web-login"))
        .json(&json!({}));
    for (k, v) in evil {
        request = request.header(k, v);
    }
    let op = send(request).await;
    assert_eq!(op.status, StatusCode::OK, "{op:?}");
    let link = op.body["login_url"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("{public}/oauth/secure/login?ticket=")),
        "the login link follows the caller's headers: {link}"
    );
    let ticket = url::Url::parse(&link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
        .unwrap();

    // "Continue", sent with a forged Host as well.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let mut confirm = no_redirects
        .post(mcpo.url("/oauth/secure/login"))
        .header("host", "attacker.example")
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("ticket={ticket}"));
    for (k, v) in evil {
        confirm = confirm.header(k, v);
    }
    let r = confirm.send().await.expect("POST");
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{:?}\nmcpo stderr:\n{}",
        r.text().await,
        mcpo.stderr.text()
    );
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let redirect_uri = location
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("redirect_uri in the authorization URL");
    assert_eq!(redirect_uri, format!("{public}/oauth/secure/callback"));
}
