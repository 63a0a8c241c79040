//! #19 item 3: an upstream that redirects to another origin gets neither the configured
//! headers nor the request body there. A streamable-HTTP and a legacy-SSE upstream both answer
//! 307 to a second loopback listener, which records whatever reaches it; mcpo must refuse the
//! redirect with an error naming the server, and the second listener must see nothing.

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::hardening_fake_http::{FakeHttp, reply};

const SECRET: &str = "hardening-item3-secret-value";

#[tokio::test]
async fn cross_origin_redirects_are_refused_and_nothing_reaches_the_target() {
    // Whatever reaches it is recorded; it would answer like a server would.
    let target = FakeHttp::start(|_, _| reply(200, &[], "")).await;
    let target_base = target.url("");
    let redirector = FakeHttp::start(move |hit, _| {
        let location = format!("{target_base}{}", hit.target);
        reply(307, &[("location", location.as_str())], "")
    })
    .await;
    let headers = json!({"X-Api-Key": SECRET});
    let b = start_config(
        json!({
            "redir-http": {"type": "streamable-http", "url": redirector.url("/mcp"), "headers": headers},
            "redir-sse": {"type": "sse", "url": redirector.url("/sse"), "headers": headers},
        }),
        &["--connect-timeout", "5"],
    );
    // Whatever happened, both attempts are over once both servers have an error.
    for server in ["redir-http", "redir-sse"] {
        wait_failure(&b.mcpo, server, "", Duration::from_secs(30)).await;
    }
    // Both transports asked the redirector (with the header: it is the configured host)...
    let asked = redirector.hits();
    assert!(asked.iter().any(|h| h.path() == "/mcp"), "{asked:?}");
    assert!(asked.iter().any(|h| h.path() == "/sse"), "{asked:?}");
    // ... and nothing at all reached the other origin: no header, no initialize body.
    let leaked = target.hits();
    assert!(
        leaked.is_empty(),
        "the redirect target received {} request(s), {} of them with the configured secret: \
         {leaked:?}",
        leaked.len(),
        leaked.iter().filter(|h| h.carries(SECRET)).count()
    );
    for server in ["redir-http", "redir-sse"] {
        let status = wait_failure(&b.mcpo, server, "another origin", Duration::from_secs(30)).await;
        let error = status["last_error"].as_str().unwrap();
        assert!(error.contains(&target.url("")), "{error}");
        assert!(!error.contains(SECRET), "{error}");
    }
    // The log names the server.
    let log = b.mcpo.stderr.text();
    assert!(
        log.lines()
            .any(|l| l.contains("redir-http") && l.contains("another origin")),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");
}
