//! One-time, short-lived links bound to a user and a server: the **ticket** in a link mcpo
//! hands a user in a 401 (the OAuth web login's `login_url`, the credentials page's
//! `credentials_url`). An HS256 token signed with a key drawn at random for this
//! [`Tickets`] (a restart or a reload that rebuilds it voids every link), naming the caller,
//! the server and what it is for, expiring, accepted once. Never the caller's own credential,
//! so a link can be shown in a chat. [`Tickets::check`] reads a ticket without using it (a link
//! previewer's GET); [`Tickets::reserve`] marks it used, and the mark is taken back if the
//! reservation is dropped without [`Reservation::keep`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::caller::Caller;

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
    next: AtomicU64,
    /// Ticket ids used (or being used) until their expiry.
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
    pub fn new(server: &str, purpose: &'static str, ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the operating system's random number generator");
        Self {
            server: server.to_owned(),
            purpose,
            ttl,
            key,
            next: AtomicU64::new(1),
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
            jti: self.next.fetch_add(1, Ordering::Relaxed).to_string(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.key),
        )
        .unwrap_or_default()
    }

    /// Whom a ticket is for and how long it still works, without using it up.
    pub fn check(&self, ticket: &str) -> Result<(Caller, Duration), TicketError> {
        let claims = self.verify(ticket)?;
        if self.redeemed().contains_key(&claims.jti) {
            return Err(TicketError::Used);
        }
        let left = Duration::from_secs(claims.exp.saturating_sub(unix_now()));
        Ok((claims.usr, left))
    }

    /// Marks a ticket used and returns its user; dropping the reservation without
    /// [`Reservation::keep`] makes the ticket usable again.
    pub fn reserve(&self, ticket: &str) -> Result<(Caller, Reservation<'_>), TicketError> {
        let claims = self.verify(ticket)?;
        let now = unix_now();
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
                jti: Some(claims.jti),
            },
        ))
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
    jti: Option<String>,
}

impl Reservation<'_> {
    /// The ticket stays used.
    pub fn keep(mut self) {
        self.jti = None;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(jti) = self.jti.take() {
            self.tickets.redeemed().remove(&jti);
        }
    }
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

    #[test]
    fn tickets_are_one_time_and_bound_to_server_and_purpose() {
        let alice = Caller::User("alice".into());
        let t = Tickets::new("gh", "credentials", Duration::from_secs(60));
        let ticket = t.issue(&alice);
        assert_eq!(t.check(&ticket).unwrap().0, alice);
        {
            let (_, reservation) = t.reserve(&ticket).unwrap();
            assert_eq!(t.check(&ticket).unwrap_err(), TicketError::Used);
            drop(reservation);
        }
        let (_, reservation) = t.reserve(&ticket).unwrap();
        reservation.keep();
        assert_eq!(t.reserve(&ticket).unwrap_err(), TicketError::Used);
        let other = Tickets::new("gh", "credentials", Duration::from_secs(60));
        assert_eq!(other.check(&ticket).unwrap_err(), TicketError::Invalid);
        assert_eq!(t.check("nope").unwrap_err(), TicketError::Invalid);
        // Under the same key: another server's, another purpose's, an expired one.
        let mut login = Tickets::new("gh", "login", Duration::from_secs(60));
        login.key = t.key;
        assert_eq!(
            t.check(&login.issue(&alice)).unwrap_err(),
            TicketError::Invalid
        );
        let mut b = Tickets::new("other", "credentials", Duration::from_secs(60));
        b.key = t.key;
        assert_eq!(
            t.check(&b.issue(&alice)).unwrap_err(),
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
        assert_eq!(t.check(&expired).unwrap_err(), TicketError::Expired);
        // The form cookie is the ticket's own, and this instance's.
        let cookie = t.form_cookie(&ticket);
        assert!(t.form_cookie_matches(&ticket, &cookie));
        assert!(!t.form_cookie_matches(&t.issue(&alice), &cookie));
        assert!(!other.form_cookie_matches(&ticket, &cookie));
    }
}
