//! Sealed records by name, in the token folder or in Redis: the one place that knows which.
//!
//! A record's name is its path relative to the token folder (`<hash>_tokens.json`,
//! `<server>/<hash>_secrets.json`); in Redis the key is the prefix and that name, and the
//! value the same sealed bytes, so a record moves between the two unchanged. What a record
//! holds and how it is sealed is its owner's business (`oauth::store`, `user_secrets`); this
//! module moves bytes, keeps the token folder mcpo's own, and says where a record is in
//! messages.
//!
//! The store is process-wide, like the store key: `--store` is installed once at start-up
//! ([`install`]), and [`Records::installed`] is what every store of the process uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::StoreError;
use super::folder::{self, default_token_dir};
use super::key as store_key;
use super::redis::{RedisLock, RedisStore};
use super::shared::shared;
use crate::support::atomic_file::{self, Access};

/// Where records are kept.
#[derive(Clone, Debug)]
pub struct Records {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    /// The token folder.
    File(PathBuf),
    Redis(Arc<RedisStore>),
}

/// A held lock (see [`Records::lock`]); dropping it releases it.
pub enum RecordLock {
    File(super::file_lock::RefreshLock),
    Redis(RedisLock),
}

impl Records {
    /// Records in the token folder `root`.
    pub fn file(root: PathBuf) -> Records {
        Records {
            backend: Backend::File(root),
        }
    }

    /// Records in a Redis store.
    pub fn redis(store: Arc<RedisStore>) -> Records {
        Records {
            backend: Backend::Redis(store),
        }
    }

    /// The process's store: the shared one when installed, else the token folder `dir`, or
    /// the default token folder.
    pub fn installed(dir: Option<&Path>) -> Result<Records, String> {
        if let Some(store) = shared() {
            return Ok(Records::redis(store.clone()));
        }
        match dir {
            Some(dir) => Ok(Records::file(dir.to_path_buf())),
            None => default_token_dir().map(Records::file),
        }
    }

    /// The token folder, for the file store.
    pub fn root(&self) -> Option<&Path> {
        match &self.backend {
            Backend::File(root) => Some(root),
            Backend::Redis(_) => None,
        }
    }

    /// The shared store, when this is one.
    pub fn shared(&self) -> Option<&Arc<RedisStore>> {
        match &self.backend {
            Backend::File(_) => None,
            Backend::Redis(store) => Some(store),
        }
    }

    /// The store, for messages: the token folder, or the Redis URL without its password.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::File(root) => root.display().to_string(),
            Backend::Redis(store) => store.shown(),
        }
    }

    /// One record, for messages: its file, or its key.
    pub fn describe_record(&self, name: &str) -> String {
        match &self.backend {
            Backend::File(root) => root.join(name).display().to_string(),
            Backend::Redis(store) => format!("key {}{name}", store.prefix()),
        }
    }

    /// The file of a record, for the file store.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.root().map(|root| root.join(name))
    }

    /// The key that seals this store's records. In the file store, `create` makes the
    /// default key file when there is none yet. A shared store has no default: every replica
    /// must seal with the same key, so it must be given (`MCPO_STORE_KEY`,
    /// `--store-key-file`).
    pub fn key(&self, create: bool) -> Result<Option<store_key::Resolved>, String> {
        match &self.backend {
            Backend::File(root) => store_key::for_store(root, create),
            Backend::Redis(store) => store_key::given().map(Some).ok_or_else(|| {
                format!(
                    "the store {} needs {} or --store-key-file: every replica seals and opens \
                     the same records, so they share one key",
                    store.shown(),
                    store_key::STORE_KEY_ENV
                )
            }),
        }
    }

    /// Where the key is looked for, for "no key" messages.
    pub fn describe_key(&self) -> String {
        match &self.backend {
            Backend::File(root) => store_key::describe(root),
            Backend::Redis(_) => format!("{} or --store-key-file", store_key::STORE_KEY_ENV),
        }
    }

    /// The record `name`, `None` when there is none.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::File(root) => match std::fs::read(root.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::Io(format!(
                    "cannot read {}: {e}",
                    root.join(name).display()
                ))),
            },
            Backend::Redis(store) => store.get(name).await,
        }
    }

    /// Replaces the record `name` whole. In the token folder: owner-only, through a
    /// temporary file and a rename, in folders checked to be mcpo's own first.
    pub async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::File(root) => {
                let path = root.join(name);
                let dir = path.parent().unwrap_or(root);
                folder::ensure_private_dirs(root, dir)
                    .and_then(|()| atomic_file::replace(&path, bytes, Access::Owner))
                    .map_err(|e| StoreError::Io(e.to_string()))
            }
            Backend::Redis(store) => store.put(name, bytes).await,
        }
    }

    /// Deletes the record; `true` when there was one.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::File(root) => match std::fs::remove_file(root.join(name)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(StoreError::Io(format!(
                    "cannot delete {}: {e}",
                    root.join(name).display()
                ))),
            },
            Backend::Redis(store) => store.delete(name).await,
        }
    }

    /// Takes the lock of record `name`, waiting for another holder (another mcpo process on
    /// the same token folder, or another replica): an advisory file lock next to the record,
    /// or a Redis lock under the prefix.
    pub async fn lock(&self, name: &str) -> Result<RecordLock, StoreError> {
        match &self.backend {
            Backend::File(root) => {
                let path = root.join(name).with_extension("lock");
                let dir = path.parent().unwrap_or(root);
                folder::ensure_private_dirs(root, dir)
                    .map_err(|e| StoreError::Io(e.to_string()))?;
                super::file_lock::acquire(&path)
                    .await
                    .map(RecordLock::File)
                    .map_err(|e| StoreError::Io(e.to_string()))
            }
            Backend::Redis(store) => store.lock(name).await.map(RecordLock::Redis),
        }
    }
}
