//! Multi-user web login: how a user of a multi-user OAuth server signs in when the daemon
//! cannot open a browser on their machine.
//!
//! A call from a user without usable tokens is answered with a login link carrying a
//! **ticket** (`crate::store::ticket`): an HS256 token signed with a key this server's
//! [`WebLogins`] drew at random (a restart, or a reload that changes the server, invalidates
//! every link, so no reload forgets which tickets were used while they still verify) or,
//! with a shared store, derived from the store key (every replica takes every other's links,
//! and the used ones are marked in the store), naming the user and the server, valid for ten
//! minutes and accepted once. It is never the caller's Open WebUI JWT, so the
//! link can be shown in a chat without handing anyone the user's session. Opening the link
//! only [checks](WebLogins::check) the ticket, so the page can ask the user to confirm: a link
//! previewer or scanner that fetches it uses nothing up, and someone sent another user's link
//! sees whose sign-in it is before anything happens. Confirming [starts](WebLogins::start) a
//! PKCE S256 authorization whose `redirect_uri` is mcpo's own `/oauth/{server}/callback`; a
//! ticket is used up only once that redirect exists, so a user whose login could not start
//! (the authorization server was down) can simply try again.
//! The browser that confirmed gets a cookie naming the login, and the callback must
//! come back with it: an authorization URL handed to someone else cannot sign *them* in for
//! this user (RFC 6749 §10.12). The callback finds the login by `state` (bounded per user and
//! per server, expiring), exchanges the code with that user's authorizer and stores that
//! user's tokens.
//!
//! Every user has their own [`Authorizer`] (own store, own client registration); the map of
//! them is bounded and forgets idle users whose authorizer nobody holds (their tokens stay on
//! disk or in memory, and come back with the next authorizer).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::authorizer::{Authorizer, OAuthCounters, WEB_LOGIN_TTL, WebOutcome};
use super::error::OAuthError;
use super::options::AuthOptions;
use super::settings::Settings;
use super::shared_logins::{SharedLogin, SharedLogins};
use crate::config::ServerConfig;
pub use crate::store::ticket::TicketError;
use crate::store::ticket::Tickets;
use crate::support::bounded_map::BoundedMap;
use crate::support::caller::Caller;

/// How long a login link works.
pub const TICKET_TTL: Duration = Duration::from_secs(10 * 60);
/// How long an authorization may take between the link and the callback.
const PENDING_TTL: Duration = WEB_LOGIN_TTL;
/// Logins in progress per server (oldest dropped beyond it).
const MAX_PENDING: usize = 1024;
/// Logins in progress per user and server: one user opening link after link only drops their
/// own oldest login, never other users'. Below the PKCE
/// states an authorizer keeps (`MAX_STATES_PER_USER`, 8), so every login kept here still
/// has its PKCE verifier.
const MAX_PENDING_PER_USER: usize = 4;
/// Authorization server origins remembered for the confirmation page's `form-action`.
const MAX_AUTHORIZATION_ORIGINS: usize = 4;

/// Why opening a login link did not lead to the authorization server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Ticket(TicketError),
    /// The login could not start; the ticket was not used up.
    #[error("{0}")]
    Failed(OAuthError),
}

/// A login started from a link: where to send the browser, and the cookie that binds the
/// login to that browser.
#[derive(Debug)]
pub struct Started {
    pub user: Caller,
    /// The authorization server URL (PKCE S256, `state`).
    pub url: String,
    /// The cookie's name (derived from `state`, so several logins in one browser coexist).
    pub cookie_name: String,
    /// The cookie's value: a random secret only that browser holds.
    pub cookie_value: String,
    /// How long the login (and so the cookie) lasts.
    pub cookie_max_age: Duration,
}

/// Why a callback did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(
        "this sign-in response does not belong to a login in progress (unknown or expired \
         state, or mcpo restarted since); call the tool again for a new login link"
    )]
    UnknownState,
    /// Not usable for the login (wrong issuer…); the login stays open for the genuine one.
    #[error("{0}")]
    Ignored(String),
    /// The response came to a browser without the login's cookie: not the one that opened
    /// the link. The login stays open for the browser that did.
    #[error(
        "this sign-in response did not come back to the browser that opened the login link, \
         so it was not used; open the login link and sign in in the same browser"
    )]
    OtherBrowser,
    #[error("{0}")]
    Failed(OAuthError),
}

struct PendingLogin {
    user: Caller,
    authorizer: Authorizer,
    started: Instant,
    /// The secret of the cookie the starting browser got.
    browser: String,
}

/// How long after its last use a user's authorizer counts as idle: only the order matters
/// (the least recently used goes first when the bound is reached); nothing expires by time.
const USER_IDLE: Duration = Duration::from_secs(24 * 3600);

/// Web logins and per-user authorizers of one multi-user OAuth server.
pub struct WebLogins {
    server: ServerConfig,
    token_dir: Option<PathBuf>,
    /// Users' authorizers, least recently used first out (an entry expires [`USER_IDLE`]
    /// after its last use, so expiry order is use order), never one still held.
    users: Mutex<BoundedMap<Caller, Authorizer>>,
    pending: Mutex<HashMap<String, PendingLogin>>,
    /// This instance's login tickets (a reload that rebuilds it voids them).
    tickets: Tickets,
    /// Counters of the authorizers already forgotten, so `/metrics` totals never go down.
    retired: Mutex<OAuthCounters>,
    /// Origins of the authorization URLs logins went to, latest last.
    authorization_origins: Mutex<Vec<String>>,
    /// With a shared store, the logins in progress every replica can finish.
    shared: Option<SharedLogins>,
}

impl std::fmt::Debug for WebLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLogins")
            .field("server", &self.server.name)
            .finish_non_exhaustive()
    }
}

impl WebLogins {
    /// The web logins of `server`, whose `oauth` block the config loader checked; no I/O.
    /// `max_users` bounds the authorizers kept for idle users (those in use are always kept).
    /// Fails for a server that is not streamable HTTP or has no `oauth` block.
    pub fn new(server: &ServerConfig, max_users: usize) -> Result<WebLogins, OAuthError> {
        Settings::from_server(server)?;
        Ok(WebLogins {
            server: server.clone(),
            token_dir: None,
            users: Mutex::new(BoundedMap::new(max_users)),
            pending: Mutex::new(HashMap::new()),
            tickets: Tickets::new(&server.name, "login", TICKET_TTL),
            retired: Mutex::new(OAuthCounters::default()),
            authorization_origins: Mutex::new(Vec::new()),
            shared: SharedLogins::of(&server.name),
        })
    }

    /// Keeps `file` tokens under `dir` instead of `$MCPO_TOKEN_DIR` / `~/.mcpo/tokens`.
    pub fn with_token_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.token_dir = Some(dir.into());
        self
    }

    pub fn server(&self) -> &str {
        &self.server.name
    }

    /// The authorizer of `user`, created on first use.
    pub fn authorizer(&self, user: &Caller) -> Result<Authorizer, OAuthError> {
        let expires = Instant::now() + USER_IDLE;
        let key = user.clone();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(authorizer) = users.extend(&key, expires) {
            return Ok(authorizer.clone());
        }
        let mut options = AuthOptions::default().for_user(token_owner(user));
        if let Some(dir) = &self.token_dir {
            options = options.token_dir(dir);
        }
        let authorizer = Authorizer::new(&self.server, options)?;
        // An authorizer a session or a login still holds is never forgotten.
        let gone = users.insert_evicting(key, authorizer.clone(), expires, |a| !a.is_shared());
        for forgotten in gone {
            self.retire(forgotten.counters());
        }
        Ok(authorizer)
    }

    /// A one-time login ticket for `user` on this server.
    pub fn ticket(&self, user: &Caller) -> String {
        self.tickets.issue(user)
    }

    /// Logins, refreshes and failures of every user of this server so far (those whose
    /// authorizer was since forgotten included).
    pub fn counters(&self) -> OAuthCounters {
        let mut total = *self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        for authorizer in users.values() {
            add(&mut total, authorizer.counters());
        }
        total
    }

    fn retire(&self, counters: OAuthCounters) {
        add(
            &mut self.retired.lock().unwrap_or_else(|e| e.into_inner()),
            counters,
        );
    }

    /// Checks a login link without using it up: whom it signs in,
    /// and for how much longer it works. Anyone may fetch a link (a chat's link preview, a
    /// mail scanner), so this stores nothing.
    pub async fn check(&self, ticket: &str) -> Result<(Caller, Duration), TicketError> {
        self.tickets.check(ticket).await
    }

    /// Where this server's logins sent browsers (scheme, host and port), latest last: a form
    /// whose answer redirects there must be allowed to (Chrome and Safari hold a form's
    /// redirects to its page's CSP `form-action`). Empty until a login started.
    pub fn authorization_origins(&self) -> Vec<String> {
        self.authorization_origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Redeems a confirmed login link: checks the ticket and starts its user's login with
    /// mcpo's callback at `redirect_uri`. The ticket is used up only when this succeeds;
    /// until then (the authorization server is down…) the same link can be confirmed again.
    pub async fn start(&self, ticket: &str, redirect_uri: &str) -> Result<Started, StartError> {
        let (user, reservation) = self
            .tickets
            .reserve(ticket)
            .await
            .map_err(StartError::Ticket)?;
        let started = self
            .begin(&user, redirect_uri)
            .await
            .map_err(StartError::Failed)?;
        reservation.keep();
        Ok(started)
    }

    /// Starts `user`'s login with mcpo's callback at `redirect_uri`.
    async fn begin(&self, user: &Caller, redirect_uri: &str) -> Result<Started, OAuthError> {
        let authorizer = self.authorizer(user)?;
        let (url, state) = authorizer.begin_web_login(redirect_uri).await?;
        self.remember_origin(&url);
        let browser = hex(&random_key());
        if let Some(shared) = &self.shared {
            // Another replica may get the callback: it needs the login, PKCE verifier
            // included. Not saved, the login does not start (the ticket stays unused).
            let pkce = authorizer
                .web_login_state(&state)
                .ok_or_else(|| OAuthError::Login {
                    server: self.server.name.clone(),
                    message: "the login's PKCE state is gone".to_owned(),
                })?;
            let login = SharedLogin {
                user: user.clone(),
                browser: browser.clone(),
                redirect_uri: redirect_uri.to_owned(),
                pkce,
            };
            shared
                .put(&state, &login, PENDING_TTL)
                .await
                .map_err(|e| OAuthError::Storage {
                    server: self.server.name.clone(),
                    message: format!("the sign-in could not be saved: {e}"),
                })?;
        }
        self.add_pending(
            state.clone(),
            PendingLogin {
                user: user.clone(),
                authorizer,
                started: Instant::now(),
                browser: browser.clone(),
            },
        );
        Ok(Started {
            user: user.clone(),
            url,
            cookie_name: cookie_name(&state),
            cookie_value: browser,
            cookie_max_age: PENDING_TTL,
        })
    }

    fn remember_origin(&self, authorization_url: &str) {
        let Ok(url) = url::Url::parse(authorization_url) else {
            return;
        };
        let origin = url.origin();
        if !origin.is_tuple() {
            return;
        }
        let origin = origin.ascii_serialization();
        let mut origins = self
            .authorization_origins
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        origins.retain(|o| *o != origin);
        if origins.len() >= MAX_AUTHORIZATION_ORIGINS {
            origins.remove(0);
        }
        origins.push(origin);
    }

    /// Keeps a login in progress: expired ones go first, then this user's oldest beyond
    /// [`MAX_PENDING_PER_USER`], then the server's oldest beyond [`MAX_PENDING`].
    fn add_pending(&self, state: String, login: PendingLogin) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        let oldest = |pending: &HashMap<String, PendingLogin>, user: Option<&Caller>| {
            pending
                .iter()
                .filter(|(_, p)| user.is_none_or(|u| p.user == *u))
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
        };
        while pending.values().filter(|p| p.user == login.user).count() >= MAX_PENDING_PER_USER {
            let Some(k) = oldest(&pending, Some(&login.user)) else {
                break;
            };
            pending.remove(&k);
        }
        while pending.len() >= MAX_PENDING {
            let Some(k) = oldest(&pending, None) else {
                break;
            };
            pending.remove(&k);
        }
        pending.insert(state, login);
    }

    /// Completes the login the authorization response `params` (`code`, `state`, `iss`,
    /// or `error`) belongs to, if it came back to the browser that started it (`cookie` looks
    /// up that browser's cookies by name); returns the user now signed in.
    pub async fn complete(
        &self,
        params: &HashMap<String, String>,
        cookie: impl Fn(&str) -> Option<String>,
    ) -> Result<Caller, CallbackError> {
        let state = params.get("state").ok_or(CallbackError::UnknownState)?;
        // Taken out while its code is exchanged, so a second delivery of the same response
        // (a reload, a replay) finds no login instead of a second exchange of the code.
        let local = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get(state) {
                Some(p) if p.started.elapsed() < PENDING_TTL => {
                    // Before anything else, the code included, is looked at.
                    let same_browser = cookie(&cookie_name(state))
                        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(p.browser.as_bytes())));
                    if !same_browser {
                        return Err(CallbackError::OtherBrowser);
                    }
                    pending.remove(state)
                }
                _ => None,
            }
        };
        let login = match local {
            Some(login) => {
                // Begun here: unless another replica finished it already (the shared record
                // is gone), or the shared store is away (this replica has all it needs).
                if let Some(shared) = &self.shared
                    && let Ok(false) = shared.take(state).await
                {
                    return Err(CallbackError::UnknownState);
                }
                login
            }
            None => self.adopt(state, &cookie).await?,
        };
        match login.authorizer.finish_web_login(params, state).await {
            WebOutcome::SignedIn => Ok(login.user),
            WebOutcome::Ignored(why) => {
                // Not this login's answer (wrong issuer…): it stays open for the genuine one.
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(state.clone(), login);
                Err(CallbackError::Ignored(why))
            }
            WebOutcome::Failed(e) => Err(CallbackError::Failed(e)),
        }
    }

    /// A login begun on another replica, from the shared store: checked against the
    /// browser's cookie, taken (so no other replica exchanges the same code) and handed to
    /// the user's authorizer here.
    async fn adopt(
        &self,
        state: &str,
        cookie: &impl Fn(&str) -> Option<String>,
    ) -> Result<PendingLogin, CallbackError> {
        let Some(shared) = &self.shared else {
            return Err(CallbackError::UnknownState);
        };
        let unavailable = |e: crate::store::StoreError| {
            CallbackError::Failed(OAuthError::Storage {
                server: self.server.name.clone(),
                message: e.to_string(),
            })
        };
        let record = shared
            .get(state)
            .await
            .map_err(unavailable)?
            .ok_or(CallbackError::UnknownState)?;
        let same_browser = cookie(&cookie_name(state))
            .is_some_and(|c| bool::from(c.as_bytes().ct_eq(record.browser.as_bytes())));
        if !same_browser {
            return Err(CallbackError::OtherBrowser);
        }
        if !shared.take(state).await.map_err(unavailable)? {
            return Err(CallbackError::UnknownState);
        }
        let authorizer = self
            .authorizer(&record.user)
            .map_err(CallbackError::Failed)?;
        authorizer.adopt_web_login(state, record.pkce, &record.redirect_uri);
        Ok(PendingLogin {
            user: record.user,
            authorizer,
            started: Instant::now(),
            browser: record.browser,
        })
    }
}

/// The name `user`'s tokens and registration are stored under. Users keep their own id, so
/// tokens stored before callers were typed stay theirs; the API-key holder and anonymous
/// callers keep their NUL-prefixed names, and a user id that itself starts with NUL gets one
/// more prefix, so no user id maps onto another caller's store (the mapping is one-to-one).
fn token_owner(user: &Caller) -> String {
    user.owner_key()
}

/// The name of the cookie that binds the login with `state` to its browser: a digest of the
/// state (not the state itself), short, and valid as a cookie name.
fn cookie_name(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    format!("mcpo_login_{}", hex(&digest[..8]))
}

fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

fn add(total: &mut OAuthCounters, c: OAuthCounters) {
    total.logins += c.logins;
    total.refreshes += c.refreshes;
    total.failures += c.failures;
}

/// 32 random bytes from the OS's generator (the ticket key, a browser's login id). Without one
/// (never seen on Linux after boot) there is nothing safe to sign tickets with: fail loudly.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the operating system's random number generator");
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::settings::tests_support::server;

    fn user(id: &str) -> Caller {
        Caller::User(id.to_owned())
    }

    fn logins(name: &str) -> WebLogins {
        let mut config = server(serde_json::json!({}));
        config.name = name.to_owned();
        WebLogins::new(&config, 4).unwrap()
    }

    /// What opening a link does with the ticket when the login starts.
    async fn redeem(w: &WebLogins, ticket: &str) -> Result<Caller, TicketError> {
        let (user, reservation) = w.tickets.reserve(ticket).await?;
        reservation.keep();
        Ok(user)
    }

    #[tokio::test]
    async fn tickets_are_one_time_and_bound_to_the_server() {
        let a = logins("a");
        let t = a.ticket(&user("alice"));
        assert!(
            !t.contains("alice"),
            "the user id is not in the ticket in clear"
        );
        assert_eq!(redeem(&a, &t).await, Ok(user("alice")));
        assert_eq!(redeem(&a, &t).await, Err(TicketError::Used));
        // Another instance's ticket (another server, or this one rebuilt) is refused.
        assert_eq!(
            redeem(&a, &logins("b").ticket(&user("alice"))).await,
            Err(TicketError::Invalid)
        );
        assert_eq!(redeem(&a, "not-a-ticket").await, Err(TicketError::Invalid));
        assert_ne!(random_key(), random_key());
    }

    #[tokio::test]
    async fn checking_a_ticket_does_not_use_it_up() {
        let a = logins("a");
        let t = a.ticket(&user("alice"));
        for _ in 0..3 {
            let (who, left) = a.check(&t).await.unwrap();
            assert_eq!(who, user("alice"));
            assert!(left <= TICKET_TTL && left > TICKET_TTL - Duration::from_secs(5));
        }
        assert_eq!(redeem(&a, &t).await, Ok(user("alice")));
        assert_eq!(a.check(&t).await, Err(TicketError::Used));
        assert_eq!(a.check("not-a-ticket").await, Err(TicketError::Invalid));
        assert_eq!(
            logins("a").check(&a.ticket(&user("bob"))).await,
            Err(TicketError::Invalid)
        );
    }

    #[test]
    fn authorization_origins_are_remembered_once_each_and_bounded() {
        let a = logins("a");
        assert!(a.authorization_origins().is_empty());
        a.remember_origin("https://as.example/authorize?state=s&code_challenge=c");
        a.remember_origin("https://as.example/authorize?state=t");
        a.remember_origin("not a url");
        assert_eq!(a.authorization_origins(), ["https://as.example"]);
        for port in 1..=MAX_AUTHORIZATION_ORIGINS + 1 {
            a.remember_origin(&format!("http://127.0.0.1:{port}/auth"));
        }
        let origins = a.authorization_origins();
        assert_eq!(origins.len(), MAX_AUTHORIZATION_ORIGINS);
        assert_eq!(
            origins.last().map(String::as_str),
            Some(format!("http://127.0.0.1:{}", MAX_AUTHORIZATION_ORIGINS + 1).as_str())
        );
        assert!(!origins.iter().any(|o| o.contains("state")));
    }

    #[tokio::test]
    async fn a_rebuilt_server_does_not_take_the_tickets_of_the_old_one() {
        // A reload that changes the server builds a new `WebLogins`, which has not seen the
        // old one's used tickets: it must not accept them at all.
        let old = logins("a");
        let t = old.ticket(&user("alice"));
        assert_eq!(redeem(&old, &t).await, Ok(user("alice")));
        let rebuilt = logins("a");
        assert_eq!(redeem(&rebuilt, &t).await, Err(TicketError::Invalid));
    }

    #[tokio::test]
    async fn a_ticket_whose_login_did_not_start_stays_usable() {
        let a = logins("a");
        let t = a.ticket(&user("alice"));
        {
            let _in_use = a.tickets.reserve(&t).await.unwrap();
            // Opened twice at once: only one of them may go on.
            assert_eq!(a.tickets.reserve(&t).await.err(), Some(TicketError::Used));
        } // dropped without `keep`: the login did not start
        assert_eq!(redeem(&a, &t).await, Ok(user("alice")));
        assert_eq!(redeem(&a, &t).await, Err(TicketError::Used));
    }

    fn pending(w: &WebLogins, id: &str, state: &str) {
        w.add_pending(
            state.to_owned(),
            PendingLogin {
                user: user(id),
                authorizer: w.authorizer(&user(id)).unwrap(),
                started: Instant::now(),
                browser: "b".to_owned(),
            },
        );
    }

    #[test]
    fn one_user_cannot_push_out_other_users_logins() {
        let w = logins("srv");
        pending(&w, "alice", "alice-1");
        for i in 0..(MAX_PENDING + 10) {
            pending(&w, "mallory", &format!("mallory-{i}"));
        }
        let kept = w.pending.lock().unwrap();
        assert!(kept.contains_key("alice-1"), "alice's login was dropped");
        let mallory: Vec<&String> = kept
            .iter()
            .filter(|(_, p)| p.user == user("mallory"))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(mallory.len(), MAX_PENDING_PER_USER);
        // Mallory's latest logins are the ones kept.
        let last = format!("mallory-{}", MAX_PENDING + 9);
        assert!(kept.contains_key(&last), "{mallory:?}");
        drop(kept);
        // Many users: the server-wide bound holds, oldest first.
        for i in 0..(MAX_PENDING + 5) {
            pending(&w, &format!("u{i}"), &format!("u{i}"));
        }
        let kept = w.pending.lock().unwrap();
        assert_eq!(kept.len(), MAX_PENDING);
        assert!(!kept.contains_key("alice-1"));
        assert!(kept.contains_key(&format!("u{}", MAX_PENDING + 4)));
    }

    #[test]
    fn user_authorizers_are_bounded_but_kept_while_held() {
        let w = logins("srv");
        let held = w.authorizer(&user("u0")).unwrap();
        for i in 1..10 {
            w.authorizer(&user(&format!("u{i}"))).unwrap();
        }
        assert!(w.users.lock().unwrap().len() <= 4);
        // The held one is still the same authorizer.
        let again = w.authorizer(&user("u0")).unwrap();
        assert!(held.is_shared() && again.is_shared());
        assert_eq!(w.counters(), OAuthCounters::default());
    }

    #[test]
    fn cookie_names_do_not_carry_the_state() {
        let name = cookie_name("some-state");
        assert!(name.starts_with("mcpo_login_") && !name.contains("some-state"));
        assert_eq!(name, cookie_name("some-state"));
        assert_ne!(name, cookie_name("other-state"));
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }

    #[tokio::test]
    async fn unknown_states_and_other_browsers_are_refused() {
        let w = logins("srv");
        let params: HashMap<String, String> = [
            ("state".to_owned(), "nope".to_owned()),
            ("code".to_owned(), "c".to_owned()),
        ]
        .into();
        assert!(matches!(
            w.complete(&params, |_| None).await,
            Err(CallbackError::UnknownState)
        ));
        // A login in progress, answered in a browser without (or with a wrong) cookie: the
        // code is not looked at and the login stays open.
        pending(&w, "alice", "s1");
        let params: HashMap<String, String> = [
            ("state".to_owned(), "s1".to_owned()),
            ("code".to_owned(), "c".to_owned()),
        ]
        .into();
        for cookie in [None, Some("a")] {
            assert!(matches!(
                w.complete(&params, |_| cookie.map(str::to_owned)).await,
                Err(CallbackError::OtherBrowser)
            ));
        }
        assert!(w.pending.lock().unwrap().contains_key("s1"));
    }

    #[tokio::test]
    async fn no_user_id_names_another_callers_tokens() {
        let owners = [
            token_owner(&Caller::Service),
            token_owner(&Caller::Anonymous),
            token_owner(&user("\u{0}service")),
            token_owner(&user("\u{0}anonymous")),
            token_owner(&user("\u{0}user:\u{0}service")),
            token_owner(&user("service")),
        ];
        let distinct: std::collections::HashSet<_> = owners.iter().collect();
        assert_eq!(distinct.len(), owners.len(), "{owners:?}");
        // Ordinary users keep the name their stored tokens were saved under.
        assert_eq!(token_owner(&user("alice")), "alice");
        // A ticket names its caller by kind, not by a string a user id could spell.
        let w = logins("srv");
        let t = w.ticket(&user("\u{0}service"));
        assert_eq!(w.check(&t).await.map(|c| c.0), Ok(user("\u{0}service")));
        assert_eq!(
            w.check(&w.ticket(&Caller::Service)).await.map(|c| c.0),
            Ok(Caller::Service)
        );
    }
}
