//! The per-user secrets of one multi-user server (`user_secrets`): which users have supplied
//! them (in the [`SecretStore`]), the one-time links to the page where they do, and which
//! users' secrets the upstream refused since (asked again on their next call, never retried
//! in a loop). What a user's session is started with: [`user_values`].

use std::collections::{BTreeMap, HashMap};
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
    /// Users whose secrets the upstream refused (HTTP 401/403), with a digest of the secrets
    /// refused when known: secrets stored since (through another replica) differ from it and
    /// are used, the refused ones are not tried again.
    refused: Mutex<HashMap<Caller, Option<Digest>>>,
    /// A digest of the secrets each user's current session was started with, so a refusal
    /// knows which secrets it was.
    started: Mutex<HashMap<Caller, Digest>>,
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
            refused: Mutex::new(HashMap::new()),
            started: Mutex::new(HashMap::new()),
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
        let refused = self.refused().get(user).copied();
        if refused == Some(None) {
            return Ok(None);
        }
        let stored = self.load(user).await?.unwrap_or_default();
        if let Some(Some(refused)) = refused {
            if digest(&stored) == refused {
                return Ok(None);
            }
            // Replaced since, through another replica: these are new.
            self.refused().remove(user);
        }
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
        self.refused().contains_key(user)
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

    /// `user`'s session is being started with `secrets` (see [`Self::mark_refused`]).
    pub fn started_with(&self, user: &Caller, secrets: &Secrets) {
        let mut started = lock(&self.started);
        if started.len() >= MAX_REFUSED {
            started.clear();
        }
        started.insert(user.clone(), digest(secrets));
    }

    /// The upstream refused `user`'s secrets (those their session was started with): ask
    /// them again instead of retrying, until other secrets are stored.
    pub fn mark_refused(&self, user: &Caller) {
        let which = lock(&self.started).remove(user);
        let mut refused = self.refused();
        if refused.len() >= MAX_REFUSED {
            refused.clear();
        }
        refused.insert(user.clone(), which);
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<Caller, Option<Digest>>> {
        lock(&self.refused)
    }
}

/// SHA-256 of a user's secrets: which ones were refused, never the values.
type Digest = [u8; 32];

fn digest(secrets: &Secrets) -> Digest {
    use sha2::Digest as _;
    let json = serde_json::to_vec(&secrets.0).unwrap_or_default();
    sha2::Sha256::digest(&json).into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordSecrets;

    /// `gh` with one required secret, its secrets in `root` (the records every replica reads).
    fn replica(root: &std::path::Path) -> Credentials {
        let text = r#"{"mcpServers": {"gh": {"type": "streamable-http",
            "url": "http://127.0.0.1:9/mcp", "multi_user": true,
            "webui_secret_key": "q8Vn3xR7tLm2Wp9Kc4Hs6Jd1",
            "headers": {"Authorization": "Bearer {{USER_SECRET:token}}"},
            "user_secrets": {"token": {"title": "Token"}}}}}"#;
        let (config, _) = crate::config::from_str_with_env(text, "t", &|_| None).unwrap();
        let store = Arc::new(RecordSecrets::new(Some(root.to_path_buf())));
        Credentials::new(&config.servers[0], store).unwrap()
    }

    fn token(value: &str) -> Secrets {
        Secrets([("token".to_owned(), value.to_owned())].into())
    }

    #[tokio::test]
    async fn refused_secrets_are_not_tried_again_but_new_ones_from_another_replica_are() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tokens");
        let (a, b) = (replica(&root), replica(&root));
        let alice = Caller::User("alice".into());
        assert_eq!(a.usable(&alice).await.unwrap(), None);
        assert!(a.needed(&alice).await.unwrap());
        // Stored through B, usable on A at once.
        b.save(&alice, &token("old")).await.unwrap();
        assert_eq!(a.usable(&alice).await.unwrap(), Some(token("old")));
        // A's session with them is refused: A asks for new ones rather than retrying.
        a.started_with(&alice, &token("old"));
        a.mark_refused(&alice);
        assert_eq!(a.usable(&alice).await.unwrap(), None);
        assert!(a.was_refused(&alice));
        // New ones entered through B are used on A, without asking again.
        b.save(&alice, &token("new")).await.unwrap();
        assert_eq!(a.usable(&alice).await.unwrap(), Some(token("new")));
        assert!(!a.was_refused(&alice));
        // A refusal whose secrets are unknown asks until the user enters some on this replica.
        a.mark_refused(&alice);
        assert_eq!(a.usable(&alice).await.unwrap(), None);
        a.save(&alice, &token("newer")).await.unwrap();
        assert_eq!(a.usable(&alice).await.unwrap(), Some(token("newer")));
    }
}
