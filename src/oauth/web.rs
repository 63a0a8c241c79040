//! Multi-user web login: how a user of a multi-user OAuth server signs in when the daemon
//! cannot open a browser on their machine.
//!
//! A call from a user without usable tokens is answered with a login link carrying a
//! **ticket**: an HS256 token signed with a key this process drew at random when it started
//! (a restart invalidates every link), naming the user
//! and the server, valid for ten minutes and accepted once. It is never the caller's Open WebUI
//! JWT, so the link can be shown in a chat without handing anyone the user's session. Opening
//! the link redeems the ticket and starts a PKCE S256 authorization whose `redirect_uri` is
//! mcpo's own `/oauth/{server}/callback`; the callback finds the login by `state` (bounded,
//! expiring), exchanges the code with that user's authorizer and stores that user's tokens.
//!
//! Every user has their own [`Authorizer`] (own store, own client registration); the map of
//! them is bounded and forgets idle users whose authorizer nobody holds (their tokens stay on
//! disk or in memory, and come back with the next authorizer).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rmcp::transport::auth::{AuthError, StateStore, StoredAuthorizationState};
use serde::{Deserialize, Serialize};

use super::authorizer::WebOutcome;
use super::settings::Settings;
use super::{AuthOptions, Authorizer, OAuthError};
use crate::config::ServerConfig;

/// How long a login link works.
pub const TICKET_TTL: Duration = Duration::from_secs(10 * 60);
/// How long an authorization may take between the link and the callback.
const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Logins in progress per server (oldest dropped beyond it).
const MAX_PENDING: usize = 1024;
/// Redeemed tickets remembered (until they expire) so none is used twice.
const MAX_REDEEMED: usize = 100_000;
/// PKCE states kept per user (oldest dropped beyond it).
const MAX_STATES_PER_USER: usize = 8;

/// Why a login link was refused. Messages never carry the ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("this login link is not valid; ask for a new one")]
    Invalid,
    #[error("this login link has expired; ask for a new one")]
    Expired,
    #[error("this login link is for another server")]
    WrongServer,
    #[error("this login link was already used; ask for a new one")]
    Used,
    #[error("too many logins right now; try again in a few minutes")]
    Busy,
}

/// Why a callback did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(
        "this sign-in response does not belong to a login in progress (unknown or expired \
         state); start again from the login link"
    )]
    UnknownState,
    /// Not usable for the login (wrong issuer…); the login stays open for the genuine one.
    #[error("{0}")]
    Ignored(String),
    #[error("{0}")]
    Failed(OAuthError),
}

#[derive(Serialize, Deserialize)]
struct TicketClaims {
    /// The caller's session key.
    sub: String,
    /// The server.
    srv: String,
    exp: u64,
    jti: String,
}

struct UserEntry {
    authorizer: Authorizer,
    last_used: Instant,
}

struct PendingLogin {
    user: String,
    authorizer: Authorizer,
    started: Instant,
}

/// Web logins and per-user authorizers of one multi-user OAuth server.
pub struct WebLogins {
    server: ServerConfig,
    token_dir: Option<PathBuf>,
    users: Mutex<HashMap<String, UserEntry>>,
    max_users: usize,
    pending: Mutex<HashMap<String, PendingLogin>>,
    key: [u8; 32],
    next_ticket: AtomicU64,
    redeemed: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for WebLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLogins")
            .field("server", &self.server.name)
            .finish_non_exhaustive()
    }
}

impl WebLogins {
    /// Checks the server's `oauth` block; no I/O. `max_users` bounds the authorizers kept for
    /// idle users (those in use are always kept).
    pub fn new(server: &ServerConfig, max_users: usize) -> Result<WebLogins, OAuthError> {
        Settings::from_server(server)?;
        Ok(WebLogins {
            server: server.clone(),
            token_dir: None,
            users: Mutex::new(HashMap::new()),
            max_users: max_users.max(1),
            pending: Mutex::new(HashMap::new()),
            key: *PROCESS_KEY,
            next_ticket: AtomicU64::new(1),
            redeemed: Mutex::new(HashMap::new()),
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

    /// The authorizer of `user` (a caller's session key), created on first use.
    pub fn authorizer(&self, user: &str) -> Result<Authorizer, OAuthError> {
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = users.get_mut(user) {
            entry.last_used = now;
            return Ok(entry.authorizer.clone());
        }
        while users.len() >= self.max_users {
            let Some(oldest) = users
                .iter()
                .filter(|(_, e)| !e.authorizer.is_shared())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            users.remove(&oldest);
        }
        let mut options = AuthOptions::default().for_user(user);
        if let Some(dir) = &self.token_dir {
            options = options.token_dir(dir);
        }
        let authorizer = Authorizer::new(&self.server, options)?;
        users.insert(
            user.to_owned(),
            UserEntry {
                authorizer: authorizer.clone(),
                last_used: now,
            },
        );
        Ok(authorizer)
    }

    /// A one-time login ticket for `user` on this server.
    pub fn ticket(&self, user: &str) -> String {
        let claims = TicketClaims {
            sub: user.to_owned(),
            srv: self.server.name.clone(),
            exp: unix_now() + TICKET_TTL.as_secs(),
            jti: self.next_ticket.fetch_add(1, Ordering::Relaxed).to_string(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.key),
        )
        .unwrap_or_default()
    }

    /// Checks a ticket and uses it up; returns the user it was issued to.
    pub fn redeem(&self, ticket: &str) -> Result<String, TicketError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<TicketClaims>(
            ticket,
            &DecodingKey::from_secret(&self.key),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TicketError::Expired,
            _ => TicketError::Invalid,
        })?
        .claims;
        if claims.srv != self.server.name {
            return Err(TicketError::WrongServer);
        }
        let now = unix_now();
        let mut redeemed = self.redeemed.lock().unwrap_or_else(|e| e.into_inner());
        if redeemed.contains_key(&claims.jti) {
            return Err(TicketError::Used);
        }
        if redeemed.len() >= MAX_REDEEMED {
            redeemed.retain(|_, exp| *exp >= now);
            if redeemed.len() >= MAX_REDEEMED {
                return Err(TicketError::Busy);
            }
        }
        redeemed.insert(claims.jti, claims.exp);
        Ok(claims.sub)
    }

    /// Starts `user`'s login with mcpo's callback at `redirect_uri`; returns the
    /// authorization server URL to send the browser to.
    pub async fn begin(&self, user: &str, redirect_uri: &str) -> Result<String, OAuthError> {
        let authorizer = self.authorizer(user)?;
        let (url, state) = authorizer.begin_web_login(redirect_uri).await?;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        while pending.len() >= MAX_PENDING {
            let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            pending.remove(&oldest);
        }
        pending.insert(
            state,
            PendingLogin {
                user: user.to_owned(),
                authorizer,
                started: Instant::now(),
            },
        );
        Ok(url)
    }

    /// Completes the login the authorization response `params` (`code`, `state`, `iss`,
    /// or `error`) belongs to; returns the user now signed in.
    pub async fn complete(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<String, CallbackError> {
        let state = params.get("state").ok_or(CallbackError::UnknownState)?;
        let (user, authorizer) = {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get(state) {
                Some(p) if p.started.elapsed() < PENDING_TTL => {
                    (p.user.clone(), p.authorizer.clone())
                }
                _ => return Err(CallbackError::UnknownState),
            }
        };
        let outcome = authorizer.finish_web_login(params, state).await;
        if !matches!(outcome, WebOutcome::Ignored(_)) {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(state);
        }
        match outcome {
            WebOutcome::SignedIn => Ok(user),
            WebOutcome::Ignored(why) => Err(CallbackError::Ignored(why)),
            WebOutcome::Failed(e) => Err(CallbackError::Failed(e)),
        }
    }
}

/// The ticket key of this process: drawn at start, so a restart invalidates every link.
static PROCESS_KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(random_key);

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 32 random bytes for the ticket key: the OS's generator, else (no `/dev/urandom`) the
/// random SipHash keys the standard library draws from the OS for `HashMap`.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    #[cfg(unix)]
    {
        use std::io::Read;
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .is_ok()
        {
            return key;
        }
    }
    use std::hash::{BuildHasher, Hasher};
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    key
}

/// rmcp's PKCE state store, bounded: a user who starts many logins keeps only the latest
/// few, and states older than the login window are dropped.
#[derive(Default)]
pub(crate) struct BoundedStates {
    states: Mutex<HashMap<String, StoredAuthorizationState>>,
}

#[async_trait::async_trait]
impl StateStore for BoundedStates {
    async fn save(&self, csrf: &str, state: StoredAuthorizationState) -> Result<(), AuthError> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let oldest_kept = unix_now().saturating_sub(PENDING_TTL.as_secs());
        states.retain(|_, s| s.created_at >= oldest_kept);
        while states.len() >= MAX_STATES_PER_USER {
            let Some(oldest) = states
                .iter()
                .min_by_key(|(_, s)| s.created_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            states.remove(&oldest);
        }
        states.insert(csrf.to_owned(), state);
        Ok(())
    }

    async fn load(&self, csrf: &str) -> Result<Option<StoredAuthorizationState>, AuthError> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        Ok(states.get(csrf).cloned())
    }

    async fn delete(&self, csrf: &str) -> Result<(), AuthError> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(csrf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::settings::tests_support::server;

    fn logins(name: &str) -> WebLogins {
        let mut config = server(serde_json::json!({}));
        config.name = name.to_owned();
        WebLogins::new(&config, 4).unwrap()
    }

    #[test]
    fn tickets_are_one_time_and_bound_to_the_server() {
        let a = logins("a");
        let t = a.ticket("alice");
        assert!(
            !t.contains("alice"),
            "the user id is not in the ticket in clear"
        );
        assert_eq!(a.redeem(&t), Ok("alice".to_owned()));
        assert_eq!(a.redeem(&t), Err(TicketError::Used));
        // Another server's ticket, and one signed by another process, are refused.
        let b = logins("b");
        assert_eq!(a.redeem(&b.ticket("alice")), Err(TicketError::WrongServer));
        let mut other_process = logins("a");
        other_process.key = random_key();
        assert_eq!(
            a.redeem(&other_process.ticket("alice")),
            Err(TicketError::Invalid)
        );
        assert_eq!(a.redeem("not-a-ticket"), Err(TicketError::Invalid));
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &TicketClaims {
                sub: "alice".into(),
                srv: "a".into(),
                exp: unix_now() - 5,
                jti: "x".into(),
            },
            &EncodingKey::from_secret(&a.key),
        )
        .unwrap();
        assert_eq!(a.redeem(&expired), Err(TicketError::Expired));
        assert_ne!(random_key(), random_key());
    }

    #[test]
    fn user_authorizers_are_bounded_but_kept_while_held() {
        let w = logins("srv");
        let held = w.authorizer("u0").unwrap();
        for i in 1..10 {
            w.authorizer(&format!("u{i}")).unwrap();
        }
        assert!(w.users.lock().unwrap().len() <= 4);
        // The held one is still the same authorizer.
        let again = w.authorizer("u0").unwrap();
        assert!(held.is_shared() && again.is_shared());
    }

    #[tokio::test]
    async fn unknown_states_are_refused() {
        let w = logins("srv");
        let params: HashMap<String, String> = [
            ("state".to_owned(), "nope".to_owned()),
            ("code".to_owned(), "c".to_owned()),
        ]
        .into();
        assert!(matches!(
            w.complete(&params).await,
            Err(CallbackError::UnknownState)
        ));
    }
}
