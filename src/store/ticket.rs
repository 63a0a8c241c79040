//! One-time, short-lived links bound to a user and a server: the **ticket** in a link mcpo
//! hands a user in a 401 (the OAuth web login's `login_url`, the credentials page's
//! `credentials_url`). An HS256 token naming the caller, the server and what it is for,
//! expiring, accepted once. Never the caller's own credential, so a link can be shown in a
//! chat. [`Tickets::check`] reads a ticket without using it (a link previewer's GET);
//! [`Tickets::reserve`] marks it used, and the mark is taken back if the reservation is
//! dropped without [`Reservation::keep`].
//!
//! Where the key and the used marks live depends on the store:
//!
//! - **File store** (one process): the key is drawn at random for this [`Tickets`] (a restart
//!   or a reload that rebuilds it voids every link) and used tickets are remembered in
//!   memory until they expire.
//! - **Shared store** (several replicas behind one address): the key is derived from the
//!   store key (HKDF-SHA256, its info naming the purpose and the server), so every replica
//!   verifies every other's links, and a login link opens no credentials page; a ticket is
//!   marked used with one atomic set-if-absent in the store (`ticket/<purpose>/<id>`, until
//!   it expires), so it is used up once across all of them. A store that does not answer
//!   is [`TicketError::Unavailable`] (a 503 naming it), never a link accepted twice.
//!
//! The per-form cookie ([`Tickets::form_cookie`]) is derived from the key, so it holds on
//! whichever replica the form is posted to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::redis::RedisStore;
use crate::support::caller::Caller;
use crate::support::sealed::StoreKey;

/// Used tickets remembered (until they expire) so none is used twice.
const MAX_REDEEMED: usize = 100_000;

/// Why a link was refused. Messages never carry the ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error(
        "this link is not valid (or mcpo restarted since it was made); call the tool again \
         for a new one"
    )]
    Invalid,
    #[error("this link has expired; call the tool again for a new one")]
    Expired,
    #[error("this link is for another server; call the tool again for a new one")]
    WrongServer,
    #[error("this link was already used; call the tool again for a new one")]
    Used,
    #[error("too many links in use right now; try again in a few minutes")]
    Busy,
    /// The shared store that keeps used tickets did not answer: nothing was used up.
    #[error(
        "mcpo's store {0} is unavailable, so this link cannot be used right now; try again \
         in a moment (the link still works until it expires)"
    )]
    Unavailable(String),
}

impl TicketError {
    /// Whether the link itself is fine and only the store is away (a 503, not a 400).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TicketError::Unavailable(_))
    }
}

impl From<StoreError> for TicketError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable { store, .. } => TicketError::Unavailable(store),
            StoreError::Io(why) => TicketError::Unavailable(why),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    usr: Caller,
    srv: String,
    /// What the link is for (`credentials`…): a ticket of one purpose opens no other page.
    pur: String,
    exp: u64,
    jti: String,
}

/// The tickets of one server and purpose.
pub struct Tickets {
    server: String,
    purpose: &'static str,
    ttl: Duration,
    key: [u8; 32],
    /// With a shared store: where used tickets are marked, for every replica.
    shared: Option<Arc<RedisStore>>,
    /// Without one: ticket ids used (or being used) until their expiry.
    redeemed: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets")
            .field("server", &self.server)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl Tickets {
    /// The tickets of `server` for `purpose`: shared by every replica when a shared store is
    /// installed with its key, else this instance's own (see the module doc).
    pub fn new(server: &str, purpose: &'static str, ttl: Duration) -> Self {
        let shared = super::shared::shared()
            .cloned()
            .zip(super::key::given())
            .map(|(store, key)| (store, shared_key(&key.key, server, purpose)));
        match shared {
            Some((store, key)) => Self::with(server, purpose, ttl, key, Some(store)),
            None => Self::with(server, purpose, ttl, random_bytes(), None),
        }
    }

    fn with(
        server: &str,
        purpose: &'static str,
        ttl: Duration,
        key: [u8; 32],
        shared: Option<Arc<RedisStore>>,
    ) -> Self {
        Self {
            server: server.to_owned(),
            purpose,
            ttl,
            key,
            shared,
            redeemed: Mutex::new(HashMap::new()),
        }
    }

    /// A new ticket for `user`.
    pub fn issue(&self, user: &Caller) -> String {
        let claims = Claims {
            usr: user.clone(),
            srv: self.server.clone(),
            pur: self.purpose.to_owned(),
            exp: unix_now() + self.ttl.as_secs(),
            // Random: replicas issue under one key, and a counter would repeat across them.
            jti: base16ct::lower::encode_string(&random_bytes()[..16]),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.key),
        )
        .unwrap_or_default()
    }

    /// Whom a ticket is for and how long it still works, without using it up.
    pub async fn check(&self, ticket: &str) -> Result<(Caller, Duration), TicketError> {
        let claims = self.verify(ticket)?;
        let used = match &self.shared {
            Some(store) => store.get(&self.mark(&claims.jti)).await?.is_some(),
            None => self.redeemed().contains_key(&claims.jti),
        };
        if used {
            return Err(TicketError::Used);
        }
        let left = Duration::from_secs(claims.exp.saturating_sub(unix_now()));
        Ok((claims.usr, left))
    }

    /// Marks a ticket used and returns its user; dropping the reservation without
    /// [`Reservation::keep`] makes the ticket usable again. With a shared store the mark is
    /// one set-if-absent there: of several replicas reserving the same ticket at once, one
    /// gets it.
    pub async fn reserve(&self, ticket: &str) -> Result<(Caller, Reservation<'_>), TicketError> {
        let claims = self.verify(ticket)?;
        let now = unix_now();
        if let Some(store) = &self.shared {
            let mark = self.mark(&claims.jti);
            let until = Duration::from_secs(claims.exp.saturating_sub(now).max(1));
            if !store.claim(&mark, until).await? {
                return Err(TicketError::Used);
            }
            return Ok((
                claims.usr,
                Reservation {
                    tickets: self,
                    held: Some(Held::Shared(store.clone(), mark)),
                },
            ));
        }
        let mut redeemed = self.redeemed();
        if redeemed.contains_key(&claims.jti) {
            return Err(TicketError::Used);
        }
        if redeemed.len() >= MAX_REDEEMED {
            redeemed.retain(|_, exp| *exp >= now);
            if redeemed.len() >= MAX_REDEEMED {
                return Err(TicketError::Busy);
            }
        }
        redeemed.insert(claims.jti.clone(), claims.exp);
        Ok((
            claims.usr,
            Reservation {
                tickets: self,
                held: Some(Held::Local(claims.jti)),
            },
        ))
    }

    /// The shared store's name of a ticket's used mark.
    fn mark(&self, jti: &str) -> String {
        format!("ticket/{}/{jti}", self.purpose)
    }

    /// The value of the cookie a page holding `ticket`'s form sets, which its POST must bring
    /// back: a form posted from another site (or another browser) does not have it. Derived
    /// from the ticket with this instance's key, so nothing is stored per form.
    pub fn form_cookie(&self, ticket: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"mcpo form cookie\0");
        hash.update(self.key);
        hash.update(ticket.as_bytes());
        base16ct::lower::encode_string(&hash.finalize()[..16])
    }

    /// Whether `presented` is [`Self::form_cookie`] of `ticket` (compared in constant time).
    pub fn form_cookie_matches(&self, ticket: &str, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(
            self.form_cookie(ticket)
                .as_bytes()
                .ct_eq(presented.as_bytes()),
        )
    }

    /// The name of the cookie of `ticket`'s form (several forms in one browser coexist).
    pub fn form_cookie_name(&self, ticket: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(ticket.as_bytes());
        format!("mcpo_form_{}", base16ct::lower::encode_string(&digest[..8]))
    }

    fn redeemed(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.redeemed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn verify(&self, ticket: &str) -> Result<Claims, TicketError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<Claims>(
            ticket,
            &DecodingKey::from_secret(&self.key),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TicketError::Expired,
            _ => TicketError::Invalid,
        })?
        .claims;
        if claims.srv != self.server {
            return Err(TicketError::WrongServer);
        }
        if claims.pur != self.purpose {
            return Err(TicketError::Invalid);
        }
        Ok(claims)
    }
}

/// A ticket marked used until dropped, unless kept.
#[derive(Debug)]
pub struct Reservation<'a> {
    tickets: &'a Tickets,
    held: Option<Held>,
}

/// Where a reservation's mark is.
#[derive(Debug)]
enum Held {
    /// In this instance's memory, by ticket id.
    Local(String),
    /// In the shared store, by name.
    Shared(Arc<RedisStore>, String),
}

impl Reservation<'_> {
    /// The ticket stays used.
    pub fn keep(mut self) {
        self.held = None;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        match self.held.take() {
            None => {}
            Some(Held::Local(jti)) => {
                self.tickets.redeemed().remove(&jti);
            }
            Some(Held::Shared(store, mark)) => {
                // Best effort: a mark that cannot be deleted leaves the link used, never
                // usable twice.
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        if let Err(e) = store.delete(&mark).await {
                            tracing::debug!("an unused link stays marked used: {e}");
                        }
                    });
                }
            }
        }
    }
}

/// The key of `server`'s tickets for `purpose` on every replica sharing `store_key`.
fn shared_key(store_key: &StoreKey, server: &str, purpose: &str) -> [u8; 32] {
    store_key.derive(&[
        b"mcpo ticket key\0",
        purpose.as_bytes(),
        b"\0",
        server.as_bytes(),
    ])
}

/// 32 random bytes from the OS's generator (a ticket key, a ticket id). Without one (never
/// seen on Linux after boot) there is nothing safe to sign tickets with: fail loudly.
fn random_bytes() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the operating system's random number generator");
    key
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tickets_are_one_time_and_bound_to_server_and_purpose() {
        let alice = Caller::User("alice".into());
        let t = Tickets::new("gh", "credentials", Duration::from_secs(60));
        let ticket = t.issue(&alice);
        assert_eq!(t.check(&ticket).await.unwrap().0, alice);
        {
            let (_, reservation) = t.reserve(&ticket).await.unwrap();
            assert_eq!(t.check(&ticket).await.unwrap_err(), TicketError::Used);
            drop(reservation);
        }
        let (_, reservation) = t.reserve(&ticket).await.unwrap();
        reservation.keep();
        assert_eq!(t.reserve(&ticket).await.unwrap_err(), TicketError::Used);
        let other = Tickets::new("gh", "credentials", Duration::from_secs(60));
        assert_eq!(
            other.check(&ticket).await.unwrap_err(),
            TicketError::Invalid
        );
        assert_eq!(t.check("nope").await.unwrap_err(), TicketError::Invalid);
        // Under the same key: another server's, another purpose's, an expired one.
        let login = Tickets::with("gh", "login", Duration::from_secs(60), t.key, None);
        assert_eq!(
            t.check(&login.issue(&alice)).await.unwrap_err(),
            TicketError::Invalid
        );
        let b = Tickets::with("other", "credentials", Duration::from_secs(60), t.key, None);
        assert_eq!(
            t.check(&b.issue(&alice)).await.unwrap_err(),
            TicketError::WrongServer
        );
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                usr: alice.clone(),
                srv: "gh".into(),
                pur: "credentials".into(),
                exp: unix_now() - 5,
                jti: "x".into(),
            },
            &EncodingKey::from_secret(&t.key),
        )
        .unwrap();
        assert_eq!(t.check(&expired).await.unwrap_err(), TicketError::Expired);
        // The form cookie is the ticket's own, and this instance's.
        let cookie = t.form_cookie(&ticket);
        assert!(t.form_cookie_matches(&ticket, &cookie));
        assert!(!t.form_cookie_matches(&t.issue(&alice), &cookie));
        assert!(!other.form_cookie_matches(&ticket, &cookie));
        // Two tickets of one user never share an id.
        assert_ne!(
            t.verify(&t.issue(&alice)).unwrap().jti,
            t.verify(&t.issue(&alice)).unwrap().jti
        );
    }

    #[tokio::test]
    async fn replicas_sharing_a_store_key_verify_each_others_links_and_no_other_purpose() {
        let store_key = StoreKey::from_bytes(&[7; 32]).unwrap();
        let ttl = Duration::from_secs(60);
        let replica = |server: &str, purpose: &'static str| {
            let key = shared_key(&store_key, server, purpose);
            Tickets::with(server, purpose, ttl, key, None)
        };
        let (a, b) = (replica("gh", "credentials"), replica("gh", "credentials"));
        let alice = Caller::User("alice".into());
        let ticket = a.issue(&alice);
        assert_eq!(b.check(&ticket).await.unwrap().0, alice);
        assert_eq!(b.form_cookie(&ticket), a.form_cookie(&ticket));
        // A login link is no credentials link, and another server's key is another key.
        let login = replica("gh", "login").issue(&alice);
        assert_eq!(b.check(&login).await.unwrap_err(), TicketError::Invalid);
        let other = replica("gl", "credentials").issue(&alice);
        assert_eq!(b.check(&other).await.unwrap_err(), TicketError::Invalid);
        // Another store key, another key.
        let stranger = Tickets::with(
            "gh",
            "credentials",
            ttl,
            shared_key(
                &StoreKey::from_bytes(&[8; 32]).unwrap(),
                "gh",
                "credentials",
            ),
            None,
        );
        assert_eq!(
            stranger.check(&ticket).await.unwrap_err(),
            TicketError::Invalid
        );
    }
}
