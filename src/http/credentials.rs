//! Where users of a multi-user server with `user_secrets` enter their own secrets (an API key,
//! a personal access token):
//!
//! - a tool call from a user without them (or whose secrets the upstream refused) gets
//!   **401** `{"detail": {"message", "credentials_url"}}`; the link carries a one-time ticket
//!   bound to that user and server (`store::ticket`), never the caller's JWT;
//! - `POST {prefix}{server}/credentials/link`: the `{server}_credentials` operation of the
//!   server's document, `{"credentials_url", "stored", "message"}` for the calling user;
//! - `GET /credentials/{server}?ticket=…`: the page ([`page::form`]). Only checks the ticket
//!   (a link previewer's GET uses nothing up) and sets the form's cookie;
//! - `POST /credentials/{server}` (form: `ticket`, `action` = `save` | `forget`, `s_<name>`):
//!   only from mcpo's own page (`Sec-Fetch-Site`/`Origin`) with the form's cookie; uses the
//!   ticket up. `save` tries the secrets first (starts the user's session with them) and
//!   stores them only when the upstream accepts them; a refusal stores nothing and leaves the
//!   link usable. `forget` deletes them and closes the user's session;
//! - `GET /credentials/{server}/status`: `{"user_id", "stored", "missing", "refused"}` for
//!   the calling user: names, never values.
//!
//! Links are built on `--public-url` alone (required at start-up for these servers), for the
//! reason `super::login` gives. Secrets never appear in a page, a body or a log line.

mod page;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::caller::{Caller, identify};
use super::error::ApiError;
use super::login::{cookie_of, from_our_page, page::hardened, public_base, sentence};
use crate::oauth::html_page;
use crate::servers::credentials::Credentials;
use crate::servers::{PerUser, Refusal, SecretsNotTaken, Server};
use crate::store::StoreError;
use crate::store::ticket::TicketError;
use crate::support::caller::Profile;

/// The page's route. Its POST checks where it came from itself and answers with a page, so
/// the generic cross-origin refusal (`super::browsers`) leaves it alone.
pub const PAGE_ROUTE: &str = "/credentials/{server}";
/// Whether this caller has stored secrets (never their values).
pub const STATUS_ROUTE: &str = "/credentials/{server}/status";

/// The answer to a caller who gets no session: for missing or refused secrets the 401 with a
/// credentials link, for every other refusal what `super::login::refused` says.
pub fn refused(state: &AppState, server: &Server, user: &Caller, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Credentials(credentials) => required(state, &credentials, user),
        other => super::login::refused(state, server, user, other),
    }
}

/// The 401 of a call whose upstream refused `user`'s secrets just now.
pub fn refused_secrets(state: &AppState, server: &Server, user: &Caller) -> ApiError {
    match server.per_user().and_then(|p| p.credentials()) {
        Some(credentials) => required(state, credentials, user),
        None => ApiError::no_session(format!(
            "server '{}' refused the credentials mcpo sent it",
            server.name()
        )),
    }
}

/// The 401 for `user`, with a fresh link.
pub fn required(state: &AppState, credentials: &Credentials, user: &Caller) -> ApiError {
    match credentials_url(state, credentials, user) {
        Ok(url) => {
            ApiError::credentials_required(credentials.server(), url, credentials.was_refused(user))
        }
        Err(e) => e,
    }
}

/// A fresh credentials link for `user`.
fn credentials_url(
    state: &AppState,
    credentials: &Credentials,
    user: &Caller,
) -> Result<String, ApiError> {
    let base = public_base(state, credentials.server())?;
    let mut url = format!("{base}/credentials/{}?ticket=", {
        url::form_urlencoded::byte_serialize(credentials.server().as_bytes()).collect::<String>()
    });
    url.extend(url::form_urlencoded::byte_serialize(
        credentials.tickets.issue(user).as_bytes(),
    ));
    Ok(url)
}

/// A server whose users supply secrets: the entry, its multi-user side, its credentials.
type SecretsServer = (Arc<Server>, Arc<PerUser>, Arc<Credentials>);

/// The server `name` if its users supply secrets.
fn secrets_server(state: &AppState, name: &str) -> Result<SecretsServer, ApiError> {
    let entry = state
        .server(name)
        .ok_or_else(|| ApiError::NotFound(format!("no server named '{name}' is configured")))?;
    let not_here = || {
        ApiError::NotFound(format!(
            "server '{name}' takes no user credentials (only multi-user servers with \
             \"user_secrets\" do)"
        ))
    };
    let per_user = entry.per_user().cloned().ok_or_else(not_here)?;
    let credentials = per_user.credentials().cloned().ok_or_else(not_here)?;
    Ok((entry, per_user, credentials))
}

/// `POST {prefix}{server}/credentials/link`.
pub async fn link(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (entry, _, credentials) = secrets_server(&state, &server)?;
    let caller = identify(&state, entry.multi_user(), &headers, true).await?;
    let stored = credentials
        .stored(&caller)
        .await
        .map_err(|e| ApiError::store_unreadable(e.to_string()))?;
    let url = credentials_url(&state, &credentials, &caller)?;
    let message = if stored {
        format!(
            "You have stored credentials for '{server}'. To replace or forget them, open {url} \
             (the link is personal, works once and expires in 10 minutes)."
        )
    } else {
        format!(
            "Open {url} to enter your credentials for '{server}' (the link is personal, works \
             once and expires in 10 minutes; never paste a secret into the chat); then call the \
             tool again."
        )
    };
    Ok(Json(json!({
        "credentials_url": url,
        "stored": stored,
        "message": message,
    })))
}

/// `GET /credentials/{server}/status`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (entry, _, credentials) = secrets_server(&state, &server)?;
    let caller = identify(&state, entry.multi_user(), &headers, true).await?;
    let stored = credentials
        .load(&caller)
        .await
        .map_err(|e| ApiError::store_unreadable(e.to_string()))?;
    let missing: Vec<&str> = credentials
        .declared
        .iter()
        .filter(|(name, s)| {
            !s.optional
                && stored
                    .as_ref()
                    .is_none_or(|st| st.0.get(*name).is_none_or(String::is_empty))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let user_id = match &caller {
        Caller::User(id) => Value::String(id.clone()),
        Caller::Service => Value::String("service".to_owned()),
        Caller::Anonymous => Value::Null,
    };
    Ok(Json(json!({
        "user_id": user_id,
        "stored": stored.is_some(),
        "missing": missing,
        "refused": credentials.was_refused(&caller),
    })))
}

/// `GET /credentials/{server}?ticket=…`: the form (uses nothing up).
pub async fn page(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (_, _, credentials) = match secrets_server(&state, &server) {
        Ok(found) => found,
        Err(e) => return refused_page(StatusCode::NOT_FOUND, sentence(&e.message())),
    };
    let Some(ticket) = query.get("ticket") else {
        return refused_page(
            StatusCode::BAD_REQUEST,
            "This link is incomplete (no ticket). Call the tool again for a new one.".to_owned(),
        );
    };
    let (user, left) = match credentials.tickets.check(ticket).await {
        Ok(found) => found,
        Err(e) => return refused_ticket(&server, &e),
    };
    let any = match credentials.stored(&user).await {
        Ok(any) => any,
        Err(e) => return store_trouble(&server, &e),
    };
    let stored = page::Stored {
        any,
        refused: credentials.was_refused(&user),
    };
    let mut response = page::form(&server, &user, &credentials.declared, stored, ticket, left);
    if let Ok(base) = public_base(&state, &server)
        && let Ok(cookie) = HeaderValue::from_str(&form_cookie(base, &server, &credentials, ticket))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The form's cookie: only sent back to this page's path, by this site's own requests
/// (`SameSite=Strict`: a form on another site posts without it), unreadable by scripts,
/// gone when the link expires.
fn form_cookie(base: &str, server: &str, credentials: &Credentials, ticket: &str) -> String {
    let path = url::Url::parse(base)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let secure = if base.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={}; Path={path}/credentials/{server}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        credentials.tickets.form_cookie_name(ticket),
        credentials.tickets.form_cookie(ticket),
        crate::servers::credentials::CREDENTIALS_TICKET_TTL.as_secs(),
    )
}

/// `POST /credentials/{server}`: save or forget.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, per_user, credentials) = match secrets_server(&state, &server) {
        Ok(found) => found,
        Err(e) => return refused_page(StatusCode::NOT_FOUND, sentence(&e.message())),
    };
    let Ok(base) = public_base(&state, &server) else {
        return refused_page(
            StatusCode::BAD_GATEWAY,
            "mcpo does not know the URL it is reached at (--public-url).".to_owned(),
        );
    };
    if !from_our_page(base, &headers) {
        tracing::warn!(server = %server, "refused a credentials form sent from another site");
        return refused_page(
            StatusCode::FORBIDDEN,
            "This form was not sent from mcpo's own page. Open your credentials link and \
             submit the form there."
                .to_owned(),
        );
    }
    let mut form: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        form.insert(key.into_owned(), value.into_owned());
    }
    let Some(ticket) = form.get("ticket").cloned() else {
        return refused_page(
            StatusCode::BAD_REQUEST,
            "This form carries no link ticket. Open your credentials link and submit the form \
             there."
                .to_owned(),
        );
    };
    let cookie_ok = cookie_of(&headers, &credentials.tickets.form_cookie_name(&ticket))
        .is_some_and(|c| credentials.tickets.form_cookie_matches(&ticket, &c));
    if !cookie_ok {
        tracing::warn!(server = %server, "refused a credentials form without its page's cookie");
        return refused_page(
            StatusCode::FORBIDDEN,
            "This form did not come from the page your link opened in this browser (or the \
             browser refuses cookies). Open your credentials link again and submit the form \
             there."
                .to_owned(),
        );
    }
    let (user, reservation) = match credentials.tickets.reserve(&ticket).await {
        Ok(found) => found,
        Err(e) => return refused_ticket(&server, &e),
    };
    match form.get("action").map(String::as_str) {
        Some("forget") => match per_user.forget_secrets(&user).await {
            Ok(had) => {
                reservation.keep();
                tracing::info!(server = %server, user = %user.log_id(), "user forgot their secrets");
                let message = if had {
                    format!(
                        "Your credentials for '{server}' are deleted, and your session with it \
                         is closed. You can close this page."
                    )
                } else {
                    format!("You had no credentials stored for '{server}'.")
                };
                done_page("Credentials deleted", message)
            }
            Err(e) => {
                tracing::warn!(server = %server, "cannot delete a user's secrets: {e}");
                let why = match &e {
                    StoreError::Unavailable { store, .. } => {
                        format!("the store {store} is unavailable")
                    }
                    StoreError::Io(_) => "mcpo's store cannot be written".to_owned(),
                };
                refused_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Your credentials could not be deleted ({why}); try again later."),
                )
            }
        },
        Some("save") => {
            let fields: BTreeMap<String, String> = form
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("s_").map(|n| (n.to_owned(), v.clone())))
                .collect();
            let secrets = match credentials.validate(&fields) {
                Ok(secrets) => secrets,
                Err(e) => {
                    return refused_page(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "{} Nothing was stored; go back and correct it.",
                            sentence(&e.to_string())
                        ),
                    );
                }
            };
            match per_user
                .try_secrets(&user, &Profile::default(), secrets)
                .await
            {
                Ok(()) => {
                    reservation.keep();
                    tracing::info!(server = %server, user = %user.log_id(), "user stored their secrets");
                    done_page(
                        "Credentials saved",
                        format!(
                            "'{server}' accepted your credentials; they are stored (encrypted) \
                             and used for your calls from now on. You can close this page and \
                             go back to your chat."
                        ),
                    )
                }
                Err(SecretsNotTaken::NotSaved(e)) => {
                    // Logged where it happened; the page says so rather than "saved".
                    refused_page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "'{server}' accepted your credentials, but they could not be saved,                              so they are not used and nothing was stored: {} Try again later                              (the link still works).",
                            sentence(&crate::support::redact::urls_in(&e.to_string()))
                        ),
                    )
                }
                Err(SecretsNotTaken::Refused(why)) => {
                    tracing::info!(server = %server, user = %user.log_id(), "the upstream did not accept a user's secrets; nothing stored");
                    refused_page(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "'{server}' did not accept these credentials, so nothing was \
                             stored: {} Go back to try again (the link still works).",
                            sentence(&crate::support::redact::urls_in(&why))
                        ),
                    )
                }
            }
        }
        _ => refused_page(
            StatusCode::BAD_REQUEST,
            "This form does not say what to do (save or forget).".to_owned(),
        ),
    }
}

fn refused_ticket(server: &str, e: &TicketError) -> Response {
    tracing::warn!(server = %server, "refused a credentials link: {e}");
    // A store that does not answer is mcpo's trouble, not the link's: 503.
    let status = if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    refused_page(status, sentence(&e.to_string()))
}

/// The page when the store cannot be read: a 503 naming it (never "nothing stored").
fn store_trouble(server: &str, e: &StoreError) -> Response {
    tracing::warn!(server = %server, "{e}");
    refused_page(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "{} Try again later.",
            sentence(&crate::support::redact::urls_in(&e.to_string()))
        ),
    )
}

fn refused_page(status: StatusCode, message: String) -> Response {
    hardened(html_page(status, "Credentials not saved", message))
}

fn done_page(title: &'static str, message: String) -> Response {
    hardened(html_page(StatusCode::OK, title, message))
}
