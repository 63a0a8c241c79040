//! The per-user secrets of one multi-user server (`user_secrets`): which users have supplied
//! them (in the [`SecretStore`]), the one-time links to the page where they do, and which
//! users' secrets the upstream refused since (asked again on their next call, never retried
//! in a loop). What a user's session is started with: [`user_values`].

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{ServerConfig, UserSecret, UserValues};
use crate::store::ticket::Tickets;
use crate::store::{SecretStore, Secrets, StoreError};
use crate::support::caller::{Caller, Profile};

/// How long a credentials link works.
pub const CREDENTIALS_TICKET_TTL: Duration = Duration::from_secs(10 * 60);
/// Longest secret value accepted (a header or environment value).
pub const MAX_SECRET_BYTES: usize = 8 * 1024;
/// Users whose refused secrets are remembered at most (beyond it, the set starts over: the
/// worst case is one more attempt with a refused secret).
const MAX_REFUSED: usize = 100_000;

/// The user-secrets side of a multi-user server.
#[derive(Debug)]
pub struct Credentials {
    server: String,
    /// `user_secrets` as configured.
    pub declared: BTreeMap<String, UserSecret>,
    store: Arc<dyn SecretStore>,
    /// Links to the credentials page.
    pub tickets: Tickets,
    /// Users whose stored secrets the upstream refused (HTTP 401/403) since they stored them.
    refused: Mutex<HashSet<Caller>>,
}

/// Why a submission is not usable as it is (the page says so; nothing is stored).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("'{0}' is required")]
    Missing(String),
    #[error("'{0}' is longer than {MAX_SECRET_BYTES} bytes")]
    TooLong(String),
    #[error("'{0}' has a line break or control character, which no header or variable can carry")]
    Control(String),
}

impl Credentials {
    /// `None` for a server that declares no `user_secrets`.
    pub fn new(config: &ServerConfig, store: Arc<dyn SecretStore>) -> Option<Self> {
        let declared = config.multi_user.as_ref()?.user_secrets.clone();
        if declared.is_empty() {
            return None;
        }
        Some(Self {
            server: config.name.clone(),
            tickets: Tickets::new(&config.name, "credentials", CREDENTIALS_TICKET_TTL),
            declared,
            store,
            refused: Mutex::new(HashSet::new()),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// `user`'s stored secrets (`None`: none stored); an error when the record does not open
    /// or the shared store does not answer. Reads the store every time (another replica may
    /// have stored them just now).
    pub async fn load(&self, user: &Caller) -> Result<Option<Secrets>, StoreError> {
        self.store.load(&self.server, user).await
    }

    /// What `user`'s session can be started with: their stored secrets when every required one
    /// is there (and the upstream has not refused them), `None` when they have to supply
    /// secrets first.
    pub async fn usable(&self, user: &Caller) -> Result<Option<Secrets>, StoreError> {
        if self.refused().contains(user) {
            return Ok(None);
        }
        let stored = self.load(user).await?.unwrap_or_default();
        let complete = self
            .declared
            .iter()
            .all(|(name, s)| s.optional || stored.0.get(name).is_some_and(|v| !v.is_empty()));
        Ok(complete.then_some(stored))
    }

    /// Whether `user` has to supply secrets before being served: a required one is not
    /// stored, or the upstream refused what is.
    pub async fn needed(&self, user: &Caller) -> Result<bool, StoreError> {
        Ok(self.usable(user).await?.is_none())
    }

    /// Whether `user` has stored secrets (for the status route; never their values).
    pub async fn stored(&self, user: &Caller) -> Result<bool, StoreError> {
        Ok(self.load(user).await?.is_some())
    }

    /// Whether the upstream refused `user`'s stored secrets since they were stored.
    pub fn was_refused(&self, user: &Caller) -> bool {
        self.refused().contains(user)
    }

    /// The form's values checked: every declared name, required ones non-empty, each a
    /// single line within [`MAX_SECRET_BYTES`]; names not declared are dropped.
    pub fn validate(&self, form: &BTreeMap<String, String>) -> Result<Secrets, SecretsError> {
        let mut secrets = BTreeMap::new();
        for (name, spec) in &self.declared {
            let value = form.get(name).map(|v| v.trim()).unwrap_or_default();
            if value.is_empty() {
                if !spec.optional {
                    return Err(SecretsError::Missing(spec.title.clone()));
                }
                continue;
            }
            if value.len() > MAX_SECRET_BYTES {
                return Err(SecretsError::TooLong(spec.title.clone()));
            }
            if value.chars().any(char::is_control) {
                return Err(SecretsError::Control(spec.title.clone()));
            }
            secrets.insert(name.clone(), value.to_owned());
        }
        Ok(Secrets(secrets))
    }

    /// Stores `user`'s secrets (replacing any) and forgets that earlier ones were refused.
    pub async fn save(&self, user: &Caller, secrets: &Secrets) -> Result<(), StoreError> {
        self.store.save(&self.server, user, secrets).await?;
        self.refused().remove(user);
        Ok(())
    }

    /// Deletes `user`'s secrets; `true` when there were some.
    pub async fn forget(&self, user: &Caller) -> Result<bool, StoreError> {
        let had = self.store.forget(&self.server, user).await?;
        self.refused().remove(user);
        Ok(had)
    }

    /// The upstream refused `user`'s secrets: ask them again instead of retrying.
    pub fn mark_refused(&self, user: &Caller) {
        let mut refused = self.refused();
        if refused.len() >= MAX_REFUSED {
            refused.clear();
        }
        refused.insert(user.clone());
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashSet<Caller>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What `user`'s session's templates are filled in with.
pub fn user_values(user: &Caller, profile: &Profile, secrets: Option<Secrets>) -> UserValues {
    let id = match user {
        Caller::User(id) => id.clone(),
        Caller::Service | Caller::Anonymous => String::new(),
    };
    UserValues {
        id,
        email: profile.email.clone().unwrap_or_default(),
        name: profile.name.clone().unwrap_or_default(),
        role: profile.role.clone().unwrap_or_default(),
        secrets: secrets.map(|s| s.0).unwrap_or_default(),
    }
}
