//! The web login of multi-user OAuth servers (a daemon cannot open a browser on its users'
//! machines, so they sign in through mcpo itself):
//!
//! - `GET /oauth/{server}/login?ticket=…`: the link a user gets (in a tool call's 401, or from
//!   the `{server}_login` operation). Only checks the one-time ticket and shows a
//!   confirmation page ([`page::confirmation`]) naming the server and the Open WebUI user the
//!   sign-in is for. Fetching it changes nothing, so a chat's link preview or a mail scanner
//!   does not use the link up, and a link someone else sent says whose it is first.
//! - `POST /oauth/{server}/login` (form field `ticket`): the page's "Continue" button. Only
//!   from mcpo's own page ([`from_our_page`]); redeems the ticket and redirects the browser
//!   to the authorization server (PKCE S256, `state`, `redirect_uri` = the callback below),
//!   with a cookie that ties the login to that browser. A login that cannot start leaves the
//!   ticket unused.
//! - `GET /oauth/{server}/callback?code&state[&iss]`: in the browser holding the login's
//!   cookie only, stores that user's tokens and shows a page.
//! - `GET /oauth/{server}/status`: the caller's sign-in state, `{"authenticated", "user_id",
//!   "expires_at"}`.
//! - `POST {prefix}{server}/oauth/login`: the `{server}_login` operation of the server's
//!   document, `{"login_url", "authenticated", "message"}` for the calling user.
//!
//! Links and the callback (`redirect_uri`) are built on `--public-url` alone, which mcpo
//! requires at start-up for multi-user OAuth servers. Never on the request's `Host` or
//! `X-Forwarded-*`: a user who sent `X-Forwarded-Host: attacker.example` got a client
//! registered with the attacker's callback, and any code sent there (another user's too,
//! through a link the attacker handed out) could be redeemed with the user's own cookie.
//! Tickets, codes and tokens never appear in a body or a log line; the one page that holds a
//! ticket is the confirmation page (its form), which is never cached.

pub(super) mod page;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::caller::{Caller, identify};
use super::error::ApiError;
use crate::oauth::{CallbackError, StartError, Started, TicketError, WebLogins, html_page};
use crate::servers::{Refusal, Server};

/// The route of the login link's page and its "Continue" form. Its POST checks where it came
/// from itself ([`from_our_page`]) and answers with a page, so the generic cross-origin refusal
/// (`super::browsers`) leaves it alone.
pub const CONFIRM_ROUTE: &str = "/oauth/{server}/login";

/// `POST {prefix}{server}/oauth/login`.
pub async fn link(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (web, caller) = verified_caller(&state, &server, &headers).await?;
    let user = &caller;
    let authenticated = !authorizer_of(&web, user)?
        .needs_login()
        .await
        .map_err(|e| ApiError::store_unreadable(e.to_string()))?;
    let login_url = login_url(&state, &web, user)?;
    let message = if authenticated {
        format!(
            "You are signed in to '{server}' already. To sign in again (another account), \
             open {login_url}"
        )
    } else {
        format!(
            "Open {login_url} to sign in to '{server}' (the link is personal, works once and \
             expires in 10 minutes); then call the tool again."
        )
    };
    Ok(Json(json!({
        "login_url": login_url,
        "authenticated": authenticated,
        "message": message,
    })))
}

/// `GET /oauth/{server}/status`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (web, caller) = verified_caller(&state, &server, &headers).await?;
    let authorizer = authorizer_of(&web, &caller)?;
    let tokens = authorizer
        .token_status()
        .await
        .map_err(|e| ApiError::store_unreadable(e.to_string()))?;
    let user_id = match &caller {
        Caller::User(id) => Value::String(id.clone()),
        Caller::Service => Value::String("service".to_owned()),
        Caller::Anonymous => Value::Null,
    };
    Ok(Json(json!({
        "authenticated": !authorizer
            .needs_login()
            .await
            .map_err(|e| ApiError::store_unreadable(e.to_string()))?,
        "user_id": user_id,
        "expires_at": tokens.expires_at,
    })))
}

/// `GET /oauth/{server}/login?ticket=…`: the confirmation page (uses nothing up).
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let web = match web_server(&state, &server) {
        Ok((_, web)) => web,
        Err(e) => return page_error(StatusCode::NOT_FOUND, e),
    };
    let Some(ticket) = query.get("ticket") else {
        return failure(
            StatusCode::BAD_REQUEST,
            "This login link is incomplete (no ticket). Call the tool again for a new one."
                .to_owned(),
        );
    };
    match web.check(ticket).await {
        Ok((user, left)) => {
            page::confirmation(&server, &user, ticket, left, &web.authorization_origins())
        }
        Err(e) => refused_ticket(&server, &e),
    }
}

/// `POST /oauth/{server}/login`, form field `ticket`: "Continue" on the confirmation page.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let web = match web_server(&state, &server) {
        Ok((_, web)) => web,
        Err(e) => return page_error(StatusCode::NOT_FOUND, e),
    };
    let Ok(base) = public_base(&state, &server) else {
        return failure(StatusCode::BAD_GATEWAY, no_public_url(&server));
    };
    if !from_our_page(base, &headers) {
        tracing::warn!(server = %server, "refused a login confirmation sent from another site");
        return failure(
            StatusCode::FORBIDDEN,
            "This sign-in was not confirmed on mcpo's own page. Open your login link and press \
             Continue there."
                .to_owned(),
        );
    }
    let ticket = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned());
    let Some(ticket) = ticket else {
        return failure(
            StatusCode::BAD_REQUEST,
            "This sign-in request carries no login link ticket. Open your login link and press \
             Continue there."
                .to_owned(),
        );
    };
    let callback = format!("{base}/oauth/{server}/callback");
    match web.start(&ticket, &callback).await {
        Ok(started) => {
            tracing::info!(server = %server, user = %started.user.log_id(), "web login started");
            let Ok(location) = HeaderValue::from_str(&started.url) else {
                return failure(
                    StatusCode::BAD_GATEWAY,
                    "The authorization server's address cannot be used.".to_owned(),
                );
            };
            // 303: the browser follows a POST's answer with a GET.
            let mut response = StatusCode::SEE_OTHER.into_response();
            let h = response.headers_mut();
            h.insert(header::LOCATION, location);
            if let Ok(cookie) = HeaderValue::from_str(&login_cookie(&callback, &started)) {
                h.insert(header::SET_COOKIE, cookie);
            }
            page::redirect_headers(h);
            response
        }
        Err(StartError::Ticket(e)) => refused_ticket(&server, &e),
        Err(StartError::Failed(e)) => {
            tracing::warn!(server = %server, "cannot start a web login: {e}");
            failure(
                StatusCode::BAD_GATEWAY,
                format!(
                    "{} Your login link was not used up: open it again (or go back and press \
                     Continue) in a moment, or call the tool again for a new link.",
                    sentence(&e.to_string())
                ),
            )
        }
    }
}

/// Whether a confirmation comes from mcpo's own page rather than a form on another site
/// (which could post its owner's ticket from a victim's browser and skip the page).
/// Browsers say where a request comes from in `Sec-Fetch-Site` (all current ones do); older
/// ones only in `Origin`, which is `null` for a form on a page with `Referrer-Policy:
/// no-referrer` like ours, so `null` passes there and only another origin is refused. A
/// request with neither (a program, or a browser too old to tell) passes: this check is a
/// cheap extra, the confirmation page itself is the safeguard. `base` is `--public-url`.
pub(super) fn from_our_page(base: &str, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin.as_bytes() == b"null" {
        return true;
    }
    url::Url::parse(base)
        .is_ok_and(|ours| origin.as_bytes() == ours.origin().ascii_serialization().as_bytes())
}

/// The page for a ticket that cannot be used (invalid, expired, already used…).
fn refused_ticket(server: &str, e: &TicketError) -> Response {
    tracing::warn!(server = %server, "refused a login link: {e}");
    // A store that does not answer is mcpo's trouble, not the link's: 503.
    let status = if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    failure(status, sentence(&e.to_string()))
}

/// The cookie that ties a login to the browser that confirmed its link: only sent back to the
/// callback (its path), not readable by scripts, sent on the authorization server's
/// top-level redirect (`SameSite=Lax`), gone when the login window closes.
fn login_cookie(callback: &str, started: &Started) -> String {
    let path = url::Url::parse(callback)
        .map(|u| u.path().trim_end_matches("callback").to_owned())
        .unwrap_or_else(|_| "/".to_owned());
    let secure = if callback.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        started.cookie_name,
        started.cookie_value,
        started.cookie_max_age.as_secs()
    )
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// `GET /oauth/{server}/callback?code&state[&iss]` (or `error`).
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (entry, web) = match web_server(&state, &server) {
        Ok(found) => found,
        Err(e) => return page_error(StatusCode::NOT_FOUND, e),
    };
    match web
        .complete(&params, |name| cookie_of(&headers, name))
        .await
    {
        Ok(user) => {
            tracing::info!(server = %server, user = %user.log_id(), "web login complete");
            // Start the user's session now, so their next call finds it up.
            if let Some(per_user) = entry.per_user() {
                let _ = per_user.endpoint(&user).await;
            }
            // The login cookie is of no use now and expires with the login window.
            page::hardened(html_page(
                StatusCode::OK,
                "Signed in",
                format!(
                    "You are signed in to '{server}'. You can close this page and go back to \
                     your chat."
                ),
            ))
        }
        Err(e @ (CallbackError::UnknownState | CallbackError::OtherBrowser)) => {
            tracing::warn!(server = %server, "ignored a login callback: {e}");
            failure(StatusCode::BAD_REQUEST, capitalized(&e.to_string()))
        }
        Err(CallbackError::Ignored(why)) => failure(
            StatusCode::BAD_REQUEST,
            format!("{why} It was ignored; the login is still open."),
        ),
        Err(CallbackError::Failed(e)) => failure(
            StatusCode::BAD_REQUEST,
            format!(
                "{} To try again, call the tool again (or ask for a new login link).",
                sentence(&e.to_string())
            ),
        ),
    }
}

/// The answer to a caller who gets no session: a multi-user OAuth server's caller without
/// usable tokens gets a 401 with their personal login link; one whose OAuth client cannot be
/// had, a 502 with the reason; one whose stored credentials do not open, a 503 with it.
pub fn refused(state: &AppState, server: &Server, user: &Caller, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::SignIn(web) => match login_url(state, &web, user) {
            Ok(url) => ApiError::login_required(server.name(), url),
            Err(e) => e,
        },
        Refusal::NoSession(reason) => ApiError::no_session(reason),
        Refusal::StoreUnreadable(reason) => ApiError::store_unreadable(reason),
        Refusal::StoreUnavailable(reason) => ApiError::store_unavailable(reason),
        // Answered by `super::credentials::refused`, which hands every other refusal here.
        Refusal::Credentials(credentials) => ApiError::no_session(format!(
            "server '{}' needs the caller's own credentials",
            credentials.server()
        )),
    }
}

/// A fresh login link for `user`.
fn login_url(state: &AppState, web: &WebLogins, user: &Caller) -> Result<String, ApiError> {
    let base = public_base(state, web.server())?;
    let mut url = format!("{base}/oauth/{}/login?ticket=", {
        url::form_urlencoded::byte_serialize(web.server().as_bytes()).collect::<String>()
    });
    url.extend(url::form_urlencoded::byte_serialize(
        web.ticket(user).as_bytes(),
    ));
    Ok(url)
}

/// Where users reach mcpo (`--public-url`, checked at start-up), without a trailing `/`.
/// Never the request's `Host` or `X-Forwarded-*` (see the module's documentation). Start-up
/// refuses a multi-user OAuth server without it; one added by a reload gets this error.
pub(super) fn public_base<'a>(state: &'a AppState, server: &str) -> Result<&'a str, ApiError> {
    match &state.options.public_url {
        Some(url) => Ok(url.trim_end_matches('/')),
        None => {
            tracing::error!(server = %server, "{}", no_public_url(server));
            Err(ApiError::no_session(no_public_url(server)))
        }
    }
}

fn no_public_url(server: &str) -> String {
    format!(
        "server '{server}' signs its users in through mcpo, which needs to know the URL users          reach it at: restart mcpo with --public-url (MCPO_PUBLIC_URL)"
    )
}

/// The server `name` if it is a multi-user OAuth server.
fn web_server(state: &AppState, name: &str) -> Result<(Arc<Server>, Arc<WebLogins>), ApiError> {
    let entry = state
        .server(name)
        .ok_or_else(|| ApiError::NotFound(format!("no server named '{name}' is configured")))?;
    let web = entry.logins().cloned().ok_or_else(|| {
        ApiError::NotFound(format!(
            "server '{name}' has no web login (only multi-user servers with an \"oauth\" block do)"
        ))
    })?;
    Ok((entry, web))
}

/// The server's web logins and the verified caller asking about them (credentials required).
async fn verified_caller(
    state: &AppState,
    server: &str,
    headers: &HeaderMap,
) -> Result<(Arc<WebLogins>, Caller), ApiError> {
    let (entry, web) = web_server(state, server)?;
    let caller = identify(state, entry.multi_user(), headers, true).await?;
    Ok((web, caller))
}

fn authorizer_of(web: &WebLogins, user: &Caller) -> Result<crate::oauth::Authorizer, ApiError> {
    web.authorizer(user).map_err(|e| ApiError::BadGateway {
        message: e.to_string(),
        data: None,
    })
}

/// A page for a login route that found no web login to use (`web_server` only fails with
/// 404s); never a Rust `Debug` text.
pub(super) fn page_error(status: StatusCode, e: ApiError) -> Response {
    failure(status, sentence(&e.message()))
}

pub(super) fn failure(status: StatusCode, message: String) -> Response {
    page::hardened(html_page(status, "Sign-in failed", message))
}

/// `text` as a sentence: capitalized, with a final full stop.
pub(super) fn sentence(text: &str) -> String {
    let text = capitalized(text.trim_end());
    if text.ends_with(['.', '!', '?']) {
        text
    } else {
        format!("{text}.")
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
