//! The secrets each user supplies for a multi-user server (`user_secrets`): one sealed record
//! per server and user, named `<server>/<hash of user and server>_secrets.json` (its path in
//! the token folder), sealed for the owner {`secrets`, server, user} under the store key, so
//! a record copied to another user's name does not open. The record goes wherever the
//! process keeps its records ([`Records::installed`]): the token folder (written whole,
//! owner-only, in folders that must be mcpo's own, covered by `mcpo store list|rekey`), or
//! the shared store several replicas use, with the same sealed bytes under the same name.
//!
//! Nothing is cached here: a secret entered through one replica must be usable through
//! another at once, so every load reads the store. The servers read only while a user has no
//! live session (`servers::server::Server::route_as`), never per call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::StoreError;
use super::folder::{SECRETS_SUFFIX, folder_name};
use super::records::Records;
use crate::support::caller::Caller;
use crate::support::sealed::{self, Owner};

/// The kind a secrets record is sealed as.
pub const KIND: &str = "secrets";

/// Attempts at writing a user's secrets to a shared store that does not answer before the
/// save reports failure.
const WRITE_ATTEMPTS: u32 = 3;

/// One user's secrets for one server, by the names `user_secrets` declares. `Debug` shows
/// the names only.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secrets(pub BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({:?})", self.0.keys().collect::<Vec<_>>())
    }
}

/// Where users' secrets are kept. Errors name the store and the record, never a value; a
/// shared store that does not answer is [`StoreError::Unavailable`], never "none stored".
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// `user`'s secrets for `server`, `None` when they have stored none.
    async fn load(&self, server: &str, user: &Caller) -> Result<Option<Secrets>, StoreError>;
    /// Replaces `user`'s secrets for `server`.
    async fn save(&self, server: &str, user: &Caller, secrets: &Secrets) -> Result<(), StoreError>;
    /// Deletes them; `true` when there were some.
    async fn forget(&self, server: &str, user: &Caller) -> Result<bool, StoreError>;
}

/// Secrets as records of the process's store: the shared store when one is installed, else
/// the token folder (`MCPO_TOKEN_DIR`, else `~/.mcpo/tokens`), next to the tokens.
#[derive(Debug, Default)]
pub struct RecordSecrets {
    /// The token folder; `None`: the one the daemon uses, looked up when needed.
    root: Option<PathBuf>,
}

impl RecordSecrets {
    pub fn new(root: Option<PathBuf>) -> Self {
        Self { root }
    }

    fn records(&self) -> Result<Records, StoreError> {
        Records::installed(self.root.as_deref())
            .map_err(|e| StoreError::Io(format!("secret store: {e}")))
    }

    /// The record's name (its path in the token folder).
    fn name(server: &str, user: &Caller) -> String {
        let digest = Sha256::digest(format!("secrets\n{}\n{server}", user.owner_key()).as_bytes());
        let key: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}/{key}{SECRETS_SUFFIX}", folder_name(server))
    }

    fn owner(server: &str, user: &Caller) -> Owner {
        Owner {
            kind: KIND.to_owned(),
            server: server.to_owned(),
            user: Some(user.owner_key()),
        }
    }

    /// The record `name` opened, `None` when absent.
    async fn read(
        records: &Records,
        name: &str,
        owner: &Owner,
    ) -> Result<Option<Secrets>, StoreError> {
        let unreadable = |why: String| {
            StoreError::Io(format!(
                "secret store {}: cannot read {}: {why}; nothing was changed",
                records.describe(),
                records.describe_record(name)
            ))
        };
        let bytes = match records.get(name).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e @ StoreError::Unavailable { .. }) => return Err(e),
            Err(StoreError::Io(why)) => return Err(unreadable(why)),
        };
        let key = records.key(false).map_err(&unreadable)?.ok_or_else(|| {
            unreadable(format!(
                "it is sealed and there is no store key: {} does not exist",
                records.describe_key()
            ))
        })?;
        let plain = sealed::open(&key.key, owner, &bytes)
            .map_err(|e| unreadable(format!("{e} (store key from {})", key.source)))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| unreadable(format!("not a secrets record ({:?} error)", e.classify())))
    }
}

#[async_trait::async_trait]
impl SecretStore for RecordSecrets {
    async fn load(&self, server: &str, user: &Caller) -> Result<Option<Secrets>, StoreError> {
        let records = self.records()?;
        Self::read(
            &records,
            &Self::name(server, user),
            &Self::owner(server, user),
        )
        .await
    }

    async fn save(&self, server: &str, user: &Caller, secrets: &Secrets) -> Result<(), StoreError> {
        let records = self.records()?;
        let name = Self::name(server, user);
        let owner = Self::owner(server, user);
        // A record that does not open (another key's) is never overwritten.
        Self::read(&records, &name, &owner).await?;
        let key = records
            .key(true)
            .map_err(|e| StoreError::Io(format!("secret store {}: {e}", records.describe())))?
            .ok_or_else(|| {
                StoreError::Io(format!("secret store {}: no store key", records.describe()))
            })?;
        let json = serde_json::to_vec(secrets).map_err(|e| StoreError::Io(e.to_string()))?;
        let bytes = sealed::seal(&key.key, &owner, &json).map_err(StoreError::Io)?;
        let mut attempt = 1;
        loop {
            match records.put(&name, &bytes).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_unavailable() && attempt < WRITE_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                Err(StoreError::Io(why)) => {
                    return Err(StoreError::Io(format!(
                        "secret store: cannot write {}: {why}",
                        records.describe_record(&name)
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn forget(&self, server: &str, user: &Caller) -> Result<bool, StoreError> {
        let records = self.records()?;
        records.delete(&Self::name(server, user)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_sealed_per_user_and_server() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tokens");
        let store = RecordSecrets::new(Some(root.clone()));
        let alice = Caller::User("alice".into());
        let bob = Caller::User("bob".into());
        let secrets = Secrets([("token".to_owned(), "sk-very-secret-1".to_owned())].into());
        assert_eq!(store.load("gh", &alice).await.unwrap(), None);
        store.save("gh", &alice, &secrets).await.unwrap();
        assert_eq!(
            store.load("gh", &alice).await.unwrap(),
            Some(secrets.clone())
        );
        assert_eq!(store.load("gh", &bob).await.unwrap(), None);
        assert_eq!(store.load("other", &alice).await.unwrap(), None);
        // The file store's name and place of earlier versions.
        let path = root.join(RecordSecrets::name("gh", &alice));
        assert!(path.starts_with(root.join("gh")));
        assert!(path.to_string_lossy().ends_with(SECRETS_SUFFIX));
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(sealed::MAGIC));
        assert!(!bytes.windows(16).any(|w| w == b"sk-very-secret-1"));
        // Copied to bob's name, it does not open, and it is not overwritten.
        std::fs::copy(&path, root.join(RecordSecrets::name("gh", &bob))).unwrap();
        let refused = store.load("gh", &bob).await.unwrap_err();
        assert!(!refused.is_unavailable());
        assert!(refused.to_string().contains("secret store"), "{refused}");
        assert!(store.save("gh", &bob, &secrets).await.is_err());
        assert!(store.forget("gh", &alice).await.unwrap());
        assert!(!store.forget("gh", &alice).await.unwrap());
        assert_eq!(format!("{secrets:?}"), "Secrets([\"token\"])");
    }
}
