//! The credentials page a user's link opens: one password field per declared secret (its
//! title, description and help link), "Save", and "Forget" when they have stored some. Locked
//! down like the login pages (`super::super::login::page`): no scripts, never framed, never
//! cached, no `Referer`, every value escaped; its form may post only to mcpo itself.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::config::UserSecret;
use crate::http::login::page::{STYLE, account_name, harden};
use crate::support::caller::Caller;
use crate::support::html::escape;

/// What the page says about the user's stored secrets.
pub struct Stored {
    pub any: bool,
    pub refused: bool,
}

/// The form for `user`'s secrets on `server`, holding `ticket`.
pub fn form(
    server: &str,
    user: &Caller,
    declared: &BTreeMap<String, UserSecret>,
    stored: Stored,
    ticket: &str,
    left: Duration,
) -> Response {
    let minutes = left.as_secs().div_ceil(60).max(1);
    let mut fields = String::new();
    for (name, secret) in declared {
        let help = secret
            .help_url
            .as_deref()
            .map(|url| {
                format!(
                    " <a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">Where do I get \
                     one?</a>",
                    escape(url)
                )
            })
            .unwrap_or_default();
        let description = secret
            .description
            .as_deref()
            .map(|d| format!("<br><span class=\"small\">{}</span>", escape(d)))
            .unwrap_or_default();
        fields.push_str(&format!(
            "<p><label for=\"s_{name}\"><strong>{title}</strong>{optional}</label>{description}\
             {help}<br><input type=\"password\" id=\"s_{name}\" name=\"s_{name}\" \
             autocomplete=\"off\" size=\"50\"{required}></p>",
            name = escape(name),
            title = escape(&secret.title),
            optional = if secret.optional { " (optional)" } else { "" },
            required = if secret.optional { "" } else { " required" },
        ));
    }
    let state = match (stored.any, stored.refused) {
        (true, true) => {
            "<p class=\"warn\">The server refused the credentials you stored: enter new ones.</p>"
        }
        (true, false) => {
            "<p>You have stored credentials for this server. Saving replaces them.</p>"
        }
        (false, _) => "",
    };
    let forget = if stored.any {
        format!(
            "<form method=\"post\" action=\"{server}\">\
             <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
             <input type=\"hidden\" name=\"action\" value=\"forget\">\
             <button type=\"submit\">Forget my credentials</button></form>",
            server = escape(server),
            ticket = escape(ticket),
        )
    } else {
        String::new()
    };
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mcpo: your credentials for {server}</title>{STYLE}</head><body>\
         <h1>Your credentials for {server}</h1>\
         <p>These are used for <strong>{who}</strong> on the MCP server \
         <strong>{server}</strong>, through mcpo, and only for them.</p>\
         <p class=\"warn\">Only continue if this is your account and you asked for this link \
         (a tool or your assistant just gave it to you). Whatever you enter here is used for \
         that account.</p>{state}\
         <form method=\"post\" action=\"{server}\">\
         <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <input type=\"hidden\" name=\"action\" value=\"save\">{fields}\
         <button type=\"submit\">Save</button></form>{forget}\
         <p class=\"small\">mcpo tries them with the server before keeping them, and keeps \
         them encrypted. The link works once and expires in {minutes} minute{s}.</p>\
         </body></html>",
        server = escape(server),
        who = escape(&account_name(user)),
        ticket = escape(ticket),
        s = if minutes == 1 { "" } else { "s" },
    );
    let mut response = (StatusCode::OK, Html(body)).into_response();
    harden(response.headers_mut(), "form-action 'self'; ");
    response
}
