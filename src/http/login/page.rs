//! What a browser sees on mcpo's web-login routes: the confirmation page a login link opens,
//! and the headers every page of these routes carries.
//!
//! These pages are the only HTML mcpo serves outside Swagger UI, and they hold secrets (the
//! login link's ticket in the confirmation form) or decide whose account gets attached to
//! whom, so they are locked down: no scripts or external assets at all (`default-src
//! 'none'`), never framed (a page that could be framed could be clicked through by a hidden
//! overlay), never cached, never sending a `Referer` (the link carries its ticket), and every
//! value shown escaped.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::support::caller::Caller;
use crate::support::html::escape;

/// The confirmation page of a login link for `user` on `server`.
///
/// The page names whose sign-in the link starts and asks the user to continue only if that
/// is them: a link an attacker sends would otherwise attach the victim's upstream account to
/// the attacker's Open WebUI user. "Continue" posts the ticket back to `login` (this path
/// without its query) from a hidden field. `form_origins` are the authorization servers the
/// answer may redirect to: Chrome and Safari check a form's redirects against the page's
/// `form-action`, so while none is known (no login of this server started yet) the directive
/// is left out rather than breaking the sign-in.
pub fn confirmation(
    server: &str,
    user: &Caller,
    ticket: &str,
    left: Duration,
    form_origins: &[String],
) -> Response {
    let minutes = left.as_secs().div_ceil(60).max(1);
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mcpo: sign in to {server}?</title>{STYLE}</head><body>\
         <h1>Sign in to {server}?</h1>\
         <p>This link signs <strong>{who}</strong> in to the MCP server \
         <strong>{server}</strong>, through mcpo.</p>\
         <p class=\"warn\">Only continue if this is your account and you asked for this link \
         (a tool or your assistant just gave it to you). If someone sent it to you, close this \
         page: whatever account you sign in with next would be used for their Open WebUI \
         user.</p>\
         <form method=\"post\" action=\"login\">\
         <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <button type=\"submit\">Continue</button></form>\
         <p class=\"small\">The link works once and expires in {minutes} minute{s}. \
         Continuing takes you to the server's sign-in page.</p></body></html>",
        server = escape(server),
        who = escape(&account_name(user)),
        ticket = escape(ticket),
        s = if minutes == 1 { "" } else { "s" },
    );
    let mut response = (StatusCode::OK, Html(body)).into_response();
    let form_action = if form_origins.is_empty() {
        String::new()
    } else {
        format!("form-action 'self' {}; ", form_origins.join(" "))
    };
    harden(response.headers_mut(), &form_action);
    response
}

/// Adds the headers every page of the login routes carries (see the module doc); pages
/// without a form get `form-action 'none'`.
pub fn hardened(mut response: Response) -> Response {
    harden(response.headers_mut(), "form-action 'none'; ");
    response
}

/// The headers of a redirect to the authorization server: not cached, no `Referer` carrying
/// mcpo's URL (and so the link) along.
pub fn redirect_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

pub(in crate::http) fn harden(headers: &mut HeaderMap, form_action: &str) {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; {form_action}base-uri 'none'; \
         frame-ancestors 'none'"
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    redirect_headers(headers);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// How the page names the account: the Open WebUI user id (the only thing a ticket carries
/// about the user), or the shared caller of mcpo's API key.
pub(in crate::http) fn account_name(user: &Caller) -> String {
    match user {
        Caller::Service => "mcpo's shared service caller (its API key)".to_owned(),
        Caller::User(id) => format!("Open WebUI user {id}"),
        Caller::Anonymous => "an anonymous caller".to_owned(),
    }
}

pub(in crate::http) const STYLE: &str = "<style>body{font-family:sans-serif;max-width:40em;margin:3em auto;\
    padding:0 1em;line-height:1.4}.warn{border-left:4px solid #c60;padding:.5em 1em;\
    background:#fff4e5}button{font-size:1.1em;padding:.5em 1.5em}.small{color:#555;\
    font-size:.9em}</style>";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_escapes_what_it_shows_and_locks_itself_down() {
        let r = confirmation(
            "s<x>",
            &Caller::User("<b>\"mallory\"</b>&'".to_owned()),
            "t\"><script>",
            Duration::from_secs(61),
            &["https://as.example".to_owned()],
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.contains("form-action 'self' https://as.example;"),
            "{csp}"
        );
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::REFERRER_POLICY], "no-referrer");
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("<x>") && !body.contains("<script>") && !body.contains("<b>"));
        assert!(body.contains("Open WebUI user &lt;b&gt;&quot;mallory&quot;&lt;/b&gt;&amp;&#39;"));
        assert!(
            body.contains("value=\"t&quot;&gt;&lt;script&gt;\""),
            "{body}"
        );
        assert!(body.contains("expires in 2 minutes"), "{body}");
        // No origin known yet: no form-action rather than a redirect Chrome would block.
        let r = confirmation(
            "s",
            &Caller::User("u".to_owned()),
            "t",
            Duration::from_secs(1),
            &[],
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(!csp.contains("form-action"), "{csp}");
        assert_eq!(
            account_name(&Caller::Service),
            "mcpo's shared service caller (its API key)"
        );
        assert_eq!(
            escape("<a href='x'>\"&"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;"
        );
    }
}
