//! #19 item 7: what a web page can make the user's browser do with mcpo. By default no other
//! site may call tools (no CORS, cross-origin calls refused, `Origin: null` never allowed), tool
//! calls must say they are JSON, HTTP Basic (which browsers cache and send with every request)
//! is taken on documentation pages only, and a loopback mcpo answers only the host names it is
//! known by (DNS rebinding). Each test sends what a browser would, with the headers a page
//! cannot choose (`Origin`, `Host`) set by hand.

use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

const KEY: &str = "browser-hardening-key-7c1";

struct Running {
    mcpo: Mcpo,
    _config: tempfile::NamedTempFile,
}

/// mcpo (on 127.0.0.1) with the stdio fixture as server `fx`, connected.
async fn start(args: &[&str]) -> Running {
    let running = start_only(args);
    let ready = poll(Duration::from_secs(30), || async {
        let r = post(&running.mcpo, "/fx/whoami", Some(&bearer(KEY)), json!({})).await;
        (r.status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "fx did not connect:\n{}",
        running.mcpo.stderr.text()
    );
    running
}

/// mcpo with the fixture as `fx`, not waiting for it.
fn start_only(args: &[&str]) -> Running {
    let config =
        write_config(&json!({ "mcpServers": { "fx": fixture_stdio_entry() } }).to_string());
    let mut all = vec!["--config", config.path().to_str().unwrap()];
    all.extend_from_slice(args);
    Running {
        mcpo: Mcpo::start(&all),
        _config: config,
    }
}

/// `POST /fx/echo` as a page's `fetch` or form would send it: `origin` (if any), the body as
/// `content_type`.
async fn echo_from(mcpo: &Mcpo, origin: Option<&str>, content_type: &str) -> Reply {
    let mut request = client()
        .post(mcpo.url("/fx/echo"))
        .header("content-type", content_type)
        .body(json!({"text": "ran"}).to_string());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    send(request).await
}

async fn preflight(mcpo: &Mcpo, origin: &str) -> Reply {
    send(
        client()
            .request(reqwest::Method::OPTIONS, mcpo.url("/fx/echo"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            ),
    )
    .await
}

fn assert_refused(r: &Reply, status: StatusCode, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert!(
        !r.message().is_empty(),
        "{what}: no readable JSON body: {r:?}"
    );
    assert!(!r.text.contains("ran"), "{what}: the tool ran: {r:?}");
}

#[tokio::test]
async fn by_default_no_other_site_can_call_tools_or_read_answers() {
    let running = start(&[]).await;
    let mcpo = &running.mcpo;
    // A page on another site, and a sandboxed frame or local file (`null`), posting without a
    // preflight (`text/plain` needs none) or with one.
    for origin in ["http://evil.example", "null"] {
        for content_type in ["text/plain", "application/json"] {
            let r = echo_from(mcpo, Some(origin), content_type).await;
            assert_refused(
                &r,
                StatusCode::FORBIDDEN,
                &format!("{origin} {content_type}"),
            );
            assert!(r.message().contains("--cors-allow-origins"), "{r:?}");
        }
        let r = preflight(mcpo, origin).await;
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "preflight from {origin} allowed: {r:?}"
        );
        assert_eq!(r.header("access-control-allow-credentials"), None, "{r:?}");
    }
    // Reading a spec from another site: served (GET changes nothing) but without CORS headers,
    // so the browser keeps the answer from the page.
    let r = send(
        client()
            .get(mcpo.url("/fx/openapi.json"))
            .header("origin", "http://evil.example"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
    // mcpo's own pages (the docs' "Try it out"), and programs that send no Origin, still call.
    let own = mcpo.base.clone();
    let r = echo_from(mcpo, Some(&own), "application/json").await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::OK, json!("ran")),
        "{r:?}"
    );
    let r = send(
        client()
            .post(mcpo.url("/fx/echo"))
            .header("origin", "http://evil.example")
            .header("sec-fetch-site", "same-origin")
            .json(&json!({"text": "ran"})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "browser-declared same-origin: {r:?}"
    );
    let r = echo_from(mcpo, None, "application/json").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

#[tokio::test]
async fn tool_call_bodies_must_be_sent_as_json() {
    let running = start(&[]).await;
    let mcpo = &running.mcpo;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = echo_from(mcpo, None, content_type).await;
        assert_refused(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, content_type);
        assert!(r.message().contains("application/json"), "{r:?}");
    }
    let r = send(
        client()
            .post(mcpo.url("/fx/echo"))
            .body(json!({"text": "ran"}).to_string()),
    )
    .await;
    assert_refused(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no Content-Type");
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.mcpo+json",
    ] {
        let r = echo_from(mcpo, None, content_type).await;
        assert_eq!(r.status, StatusCode::OK, "{content_type}: {r:?}");
    }
    // No body at all: no arguments, whatever the type says.
    let r = send(client().post(mcpo.url("/fx/whoami"))).await;
    assert_eq!(r.status, StatusCode::OK, "empty body: {r:?}");
}

#[tokio::test]
async fn http_basic_opens_documentation_pages_but_never_runs_tools() {
    let running = start(&["--api-key", KEY, "--strict-auth"]).await;
    let mcpo = &running.mcpo;
    let basic = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("me:{KEY}"))
        )
    };
    for path in ["/fx/openapi.json", "/docs", "/status"] {
        let r = get(mcpo, path, Some(&basic)).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path} with Basic: {r:?}");
    }
    let r = post(mcpo, "/fx/echo", Some(&basic), json!({"text": "ran"})).await;
    assert_refused(&r, StatusCode::UNAUTHORIZED, "tool call with Basic");
    let r = post(mcpo, "/fx/echo", Some(&bearer(KEY)), json!({"text": "ran"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

#[tokio::test]
async fn listed_origins_get_cors_and_star_never_gets_credentials() {
    let webui = "https://webui.example";
    let public = "https://mcpo.example:8443";
    let running = start(&["--cors-allow-origins", webui, "--public-url", public]).await;
    let mcpo = &running.mcpo;
    for origin in [webui, public] {
        let r = preflight(mcpo, origin).await;
        assert!(r.status.is_success(), "{origin}: {r:?}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        let r = echo_from(mcpo, Some(origin), "application/json").await;
        assert_eq!(r.status, StatusCode::OK, "{origin}: {r:?}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }
    let r = echo_from(mcpo, Some("https://other.example"), "application/json").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "unlisted origin");
    drop(running);

    let running = start(&["--cors-allow-origins", "*"]).await;
    let mcpo = &running.mcpo;
    let r = preflight(mcpo, "https://any.example").await;
    assert!(r.status.is_success(), "{r:?}");
    assert!(
        matches!(
            r.header("access-control-allow-origin"),
            Some("*" | "https://any.example")
        ),
        "{r:?}"
    );
    assert_eq!(
        r.header("access-control-allow-credentials"),
        None,
        "'*' must not allow credentials: {r:?}"
    );
    let r = echo_from(mcpo, Some("https://any.example"), "application/json").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let r = echo_from(mcpo, Some("null"), "application/json").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "null with '*'");
}

#[tokio::test]
async fn a_loopback_mcpo_answers_only_its_own_host_names() {
    let running = start(&[]).await;
    let mcpo = &running.mcpo;
    let port = mcpo.base.rsplit(':').next().unwrap().to_owned();
    let with_host =
        |host: String, path: &str| send(client().get(mcpo.url(path)).header("host", host));
    // A page on a domain that resolves to 127.0.0.1 (DNS rebinding) names its own domain.
    for path in ["/fx/openapi.json", "/healthz"] {
        let r = with_host(format!("rebind.evil.example:{port}"), path).await;
        assert_refused(&r, StatusCode::MISDIRECTED_REQUEST, path);
        assert!(r.message().contains("--allowed-hosts"), "{r:?}");
    }
    let r = send(
        client()
            .post(mcpo.url("/fx/echo"))
            .header("host", format!("rebind.evil.example:{port}"))
            .json(&json!({"text": "ran"})),
    )
    .await;
    assert_refused(&r, StatusCode::MISDIRECTED_REQUEST, "tool call");
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let r = with_host(host.clone(), "/fx/openapi.json").await;
        assert_eq!(r.status, StatusCode::OK, "{host}: {r:?}");
    }
    drop(running);

    // Names given with --allowed-hosts (and the --public-url host) are answered; '*' turns the
    // check off.
    let running = start_only(&[
        "--allowed-hosts",
        "mcpo.lan",
        "--public-url",
        "https://mcpo.example.com",
    ]);
    let mcpo = &running.mcpo;
    for host in ["mcpo.lan", "mcpo.example.com"] {
        let r = send(client().get(mcpo.url("/healthz")).header("host", host)).await;
        assert_eq!(r.status, StatusCode::OK, "{host}: {r:?}");
    }
    let r = send(
        client()
            .get(mcpo.url("/healthz"))
            .header("host", "localhost"),
    )
    .await;
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{r:?}");
    drop(running);
    let running = start_only(&["--allowed-hosts", "*"]);
    let r = send(
        client()
            .get(running.mcpo.url("/healthz"))
            .header("host", "rebind.evil.example"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

/// Behind a reverse proxy, mcpo's own pages come with the proxy's public origin while `Host`
/// is what the proxy connects to. `X-Forwarded-Host`/`-Proto` say which origin that is, but only
/// with `--trust-forwarded-headers`: otherwise any client could claim to be same-origin.
#[tokio::test]
async fn forwarded_headers_count_only_when_trusted() {
    let from_proxy = |mcpo: &Mcpo| {
        send(
            client()
                .post(mcpo.url("/fx/echo"))
                .header("origin", "https://mcpo.example.com")
                .header("x-forwarded-host", "mcpo.example.com")
                .header("x-forwarded-proto", "https")
                .json(&json!({"text": "ran"})),
        )
    };
    let running = start(&[]).await;
    let r = from_proxy(&running.mcpo).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "untrusted X-Forwarded-Host");
    drop(running);
    let running = start(&["--trust-forwarded-headers"]).await;
    let r = from_proxy(&running.mcpo).await;
    assert_eq!(r.status, StatusCode::OK, "trusted X-Forwarded-Host: {r:?}");
}
