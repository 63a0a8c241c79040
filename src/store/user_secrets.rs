//! The secrets each user supplies for a multi-user server (`user_secrets`): one sealed record
//! per server and user, `<token folder>/<server>/<hash of user and server>_secrets.json`,
//! sealed for the owner {`secrets`, server, user} under the store key, so a file copied to
//! another user's name does not open. Written whole (temporary file, rename), owner-only;
//! the folders must be mcpo's own, as for the token files.
//!
//! [`SecretStore`] is the interface the servers use: the file backend here, a shared one
//! (several replicas) later behind the same three calls, with the same sealed bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::folder::{SECRETS_SUFFIX, default_token_dir, folder_name};
use crate::store::key as store_key;
use crate::support::atomic_file::{self, Access};
use crate::support::caller::Caller;
use crate::support::private_dir;
use crate::support::sealed::{self, Owner};

/// The kind a secrets record is sealed as.
pub const KIND: &str = "secrets";

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

/// Where users' secrets are kept. Errors name the store and the record, never a value.
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// `user`'s secrets for `server`, `None` when they have stored none.
    fn load(&self, server: &str, user: &Caller) -> Result<Option<Secrets>, String>;
    /// Replaces `user`'s secrets for `server`.
    fn save(&self, server: &str, user: &Caller, secrets: &Secrets) -> Result<(), String>;
    /// Deletes them; `true` when there were some.
    fn forget(&self, server: &str, user: &Caller) -> Result<bool, String>;
}

/// Secrets in the token folder (`MCPO_TOKEN_DIR`, else `~/.mcpo/tokens`), next to the tokens.
#[derive(Debug, Default)]
pub struct FileSecrets {
    /// The token folder; `None`: the one the daemon uses, looked up when needed.
    root: Option<PathBuf>,
}

impl FileSecrets {
    pub fn new(root: Option<PathBuf>) -> Self {
        Self { root }
    }

    fn root(&self) -> Result<PathBuf, String> {
        match &self.root {
            Some(root) => Ok(root.clone()),
            None => default_token_dir(),
        }
    }

    /// The record's path in `root`.
    fn path(root: &Path, server: &str, user: &Caller) -> PathBuf {
        let digest = Sha256::digest(format!("secrets\n{}\n{server}", user.owner_key()).as_bytes());
        let key: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        root.join(folder_name(server))
            .join(format!("{key}{SECRETS_SUFFIX}"))
    }

    fn owner(server: &str, user: &Caller) -> Owner {
        Owner {
            kind: KIND.to_owned(),
            server: server.to_owned(),
            user: Some(user.owner_key()),
        }
    }

    /// The record at `path` opened, `None` when absent.
    fn read(root: &Path, path: &Path, owner: &Owner) -> Result<Option<Secrets>, String> {
        let unreadable = |why: String| {
            format!(
                "secret store {}: cannot read {}: {why}; nothing was changed",
                root.display(),
                path.display()
            )
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(e.to_string())),
        };
        let key = store_key::for_store(root, false)
            .map_err(&unreadable)?
            .ok_or_else(|| {
                unreadable(format!(
                    "it is sealed and there is no store key: {} does not exist",
                    store_key::describe(root)
                ))
            })?;
        let plain = sealed::open(&key.key, owner, &bytes)
            .map_err(|e| unreadable(format!("{e} (store key from {})", key.source)))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| unreadable(format!("not a secrets record ({:?} error)", e.classify())))
    }

    fn private_dirs(root: &Path, path: &Path) -> Result<(), String> {
        for folder in [Some(root), path.parent()].into_iter().flatten() {
            private_dir::create(folder)
                .map_err(|e| format!("secret store {}: {e}", folder.display()))?;
            private_dir::check(folder).map_err(|why| {
                format!(
                    "secret store {}: {why}; set {} to a folder of mcpo's own user",
                    folder.display(),
                    super::folder::TOKEN_DIR_ENV
                )
            })?;
        }
        Ok(())
    }
}

impl SecretStore for FileSecrets {
    fn load(&self, server: &str, user: &Caller) -> Result<Option<Secrets>, String> {
        let root = self.root()?;
        let path = Self::path(&root, server, user);
        Self::read(&root, &path, &Self::owner(server, user))
    }

    fn save(&self, server: &str, user: &Caller, secrets: &Secrets) -> Result<(), String> {
        let root = self.root()?;
        let path = Self::path(&root, server, user);
        let owner = Self::owner(server, user);
        Self::private_dirs(&root, &path)?;
        // A record that does not open (another key's) is never overwritten.
        Self::read(&root, &path, &owner)?;
        let key = store_key::for_store(&root, true)?
            .ok_or_else(|| format!("secret store {}: no store key", root.display()))?;
        let json = serde_json::to_vec(secrets).map_err(|e| e.to_string())?;
        let bytes = sealed::seal(&key.key, &owner, &json)?;
        atomic_file::replace(&path, &bytes, Access::Owner)
            .map_err(|e| format!("secret store: cannot write {}: {e}", path.display()))
    }

    fn forget(&self, server: &str, user: &Caller) -> Result<bool, String> {
        let root = self.root()?;
        let path = Self::path(&root, server, user);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!(
                "secret store: cannot delete {}: {e}",
                path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_sealed_per_user_and_server() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tokens");
        let store = FileSecrets::new(Some(root.clone()));
        let alice = Caller::User("alice".into());
        let bob = Caller::User("bob".into());
        let secrets = Secrets([("token".to_owned(), "sk-very-secret-1".to_owned())].into());
        assert_eq!(store.load("gh", &alice).unwrap(), None);
        store.save("gh", &alice, &secrets).unwrap();
        assert_eq!(store.load("gh", &alice).unwrap(), Some(secrets.clone()));
        assert_eq!(store.load("gh", &bob).unwrap(), None);
        assert_eq!(store.load("other", &alice).unwrap(), None);
        let path = FileSecrets::path(&root, "gh", &alice);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(sealed::MAGIC));
        assert!(!bytes.windows(16).any(|w| w == b"sk-very-secret-1"));
        // Copied to bob's name, it does not open, and it is not overwritten.
        std::fs::copy(&path, FileSecrets::path(&root, "gh", &bob)).unwrap();
        assert!(store.load("gh", &bob).is_err());
        assert!(store.save("gh", &bob, &secrets).is_err());
        assert!(store.forget("gh", &alice).unwrap());
        assert!(!store.forget("gh", &alice).unwrap());
        assert_eq!(format!("{secrets:?}"), "Secrets([\"token\"])");
    }
}
