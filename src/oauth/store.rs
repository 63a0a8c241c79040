//! Where tokens and client registrations live: files under `~/.mcpo/tokens/` (or
//! `$MCPO_TOKEN_DIR`), or process memory.
//!
//! One pair of files per server, named by a hash of the server's name and URL:
//! `<hash>_tokens.json` (rmcp's [`StoredCredentials`]) and `<hash>_client.json` (the full
//! client registration, which rmcp does not keep: it stores only the client id). In
//! multi-user mode each user has their own pair in a folder per server,
//! `<server>/<hash of user, name and URL>_…`, so users never share tokens or a registration
//! and one user's files can be found (and removed) without reading anybody else's. The
//! directory is 0700, the files 0600, and every write goes to a temporary file that is then
//! renamed over the old one, so a crash never leaves half a file. A file that cannot be read
//! or parsed is reported once as a warning and treated as absent: the next login replaces it.
//!
//! Every file is a sealed record (`crate::support::sealed`) under the store key
//! (`super::store_key`), its owner the server's name and, in multi-user mode, the user. A
//! plaintext file of an earlier mcpo is read once and rewritten sealed. A sealed file that
//! does not open (another key, no key, another owner, altered, a newer format) is never
//! treated as absent: [`Store::check`] reports it, naming the store and the file, and it is
//! neither overwritten nor deleted.
//!
//! The token folder must be mcpo's own: a real folder (not a symbolic link), owned by mcpo's
//! user and writable by nobody else, checked when the store is made and before every write.
//! Without a home directory there is no default: a shared temporary folder such as
//! `/tmp/.mcpo` would let another local user plant or swap token files, so `MCPO_TOKEN_DIR`
//! must then name one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rmcp::transport::auth::{
    AuthError, CredentialRefreshGuard, CredentialStore, StoredCredentials,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::TokenStorage;
use crate::store::folder::{
    CLIENT_SUFFIX, TOKENS_SUFFIX, check_private_dir, ensure_private_dirs, folder_name,
};
use crate::store::records::RecordLock;
use crate::store::{Records, StoreError};
use crate::support::sealed::{self, Format, Owner};

/// A client identity obtained by registration (RFC 7591 or a metadata-document URL), kept
/// whole so a restart can use the same client: rmcp remembers only the client id.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Registration {
    /// The authorization server that issued it; a registration is only used with the same one.
    pub issuer: Option<String>,
    /// The redirect URI it was registered with.
    pub redirect_uri: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The registration response as the server sent it.
    #[serde(default)]
    pub response: serde_json::Map<String, Value>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub registered_at: u64,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("issuer", &self.issuer)
            .field("redirect_uri", &self.redirect_uri)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Default, Clone)]
struct MemoryEntry {
    tokens: Option<StoredCredentials>,
    registration: Option<Registration>,
}

/// `storage_type: memory` entries, shared by every authorizer of the process.
static MEMORY: LazyLock<Mutex<HashMap<String, MemoryEntry>>> = LazyLock::new(Default::default);

/// The token store of one server. Clones share the same records (and, with a shared store,
/// the same copy of the tokens in memory).
#[derive(Clone, Debug)]
pub(crate) struct Store {
    backend: Arc<Backend>,
    /// Token sets saved (each login and each refresh saves one), for `/metrics`.
    saves: Arc<AtomicU64>,
}

// Behind an `Arc` in `Store`, so the variants' sizes cost nothing per clone.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Backend {
    Records {
        records: Records,
        /// The two records' names (their paths in the token folder).
        tokens: String,
        client: String,
        /// The server and user every record is sealed for.
        server: String,
        user: Option<String>,
        /// With a shared store, this replica's copy of the tokens: calls read it, never
        /// Redis, and it keeps serving while Redis is away. Read again from the store when
        /// absent and under the refresh lock.
        cached: Mutex<Option<StoredCredentials>>,
        /// A refresh is saving (its tokens are in memory whatever the store says).
        refreshing: AtomicBool,
        /// In the token folder, the tokens last read and the file they came from: a call
        /// whose file is unchanged (same inode, size and modification time) takes them
        /// without opening, reading and unsealing it again; any write replaces the file
        /// (a new inode), so another process's login, refresh or logout is seen at once.
        read: Mutex<Option<(FileStamp, StoredCredentials)>>,
    },
    Memory {
        key: String,
    },
}

/// Why a record could not be read.
enum ReadError {
    /// The shared store did not answer.
    Unavailable(StoreError),
    /// It is sealed and does not open (or the key cannot be had): the message says why.
    Unreadable(String),
}

impl ReadError {
    fn message(self) -> String {
        match self {
            ReadError::Unavailable(e) => e.to_string(),
            ReadError::Unreadable(m) => m,
        }
    }
}

/// Returned by the refresh guard when, once it held the lock, the stored tokens turned out
/// to be fresh: another process or replica refreshed them meanwhile, and refreshing again
/// would spend their new refresh token for nothing. The caller retries with the tokens now
/// in memory (`super::client`, `super::authorizer`).
pub(crate) const REFRESHED_ELSEWHERE: &str = "the tokens were just refreshed by another mcpo";

/// rmcp refreshes when less than 30 s are left of an access token (its
/// `REFRESH_BUFFER_SECS`); tokens with more than this left need no refresh now.
const FRESH_SECS: u64 = 30 + 1;

/// Attempts at writing new tokens to a shared store before the save reports failure.
const WRITE_ATTEMPTS: u32 = 3;

impl Store {
    /// The store for server `name` at `url`; `dir` overrides the default token directory.
    /// Fails when file storage has no usable token folder (see the module doc).
    pub fn new(
        storage: TokenStorage,
        name: &str,
        url: &str,
        dir: Option<&Path>,
    ) -> Result<Store, String> {
        let key = file_key(name, url);
        let backend = match storage {
            TokenStorage::Memory => Backend::Memory { key },
            TokenStorage::File => records(Records::installed(dir)?, None, &key, name, None)?,
        };
        Ok(Store::with(backend))
    }

    /// The store of one multi-user caller (`user`, the caller's session key) of server `name`:
    /// records under `<server>/`, or a memory entry of their own.
    pub fn for_user(
        storage: TokenStorage,
        name: &str,
        url: &str,
        user: &str,
        dir: Option<&Path>,
    ) -> Result<Store, String> {
        let key = user_key(user, name, url);
        let backend = match storage {
            TokenStorage::Memory => Backend::Memory {
                key: format!("{name}/{key}"),
            },
            TokenStorage::File => records(
                Records::installed(dir)?,
                Some(&folder_name(name)),
                &key,
                name,
                Some(user),
            )?,
        };
        Ok(Store::with(backend))
    }

    fn with(backend: Backend) -> Store {
        Store {
            backend: Arc::new(backend),
            saves: Arc::default(),
        }
    }

    /// How many token sets were saved so far.
    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::Relaxed)
    }

    /// The token file, for messages (`None` with memory storage or a shared store).
    pub fn tokens_path(&self) -> Option<PathBuf> {
        match &*self.backend {
            Backend::Records {
                records, tokens, ..
            } => records.path(tokens),
            Backend::Memory { .. } => None,
        }
    }

    /// The registration file (`None` with memory storage or a shared store).
    #[cfg(test)]
    pub fn client_path(&self) -> Option<PathBuf> {
        match &*self.backend {
            Backend::Records {
                records, client, ..
            } => records.path(client),
            Backend::Memory { .. } => None,
        }
    }

    /// The tokens: with a shared store this replica's copy when it has one (no round trip),
    /// else the record. A record that does not open reads as absent here (logged at debug:
    /// the authorizer reports it through [`Self::check`] before it loads anything); a shared
    /// store that does not answer is an error.
    pub async fn load_tokens(&self) -> Result<Option<StoredCredentials>, StoreError> {
        match &*self.backend {
            Backend::Records {
                records,
                tokens,
                cached,
                read,
                ..
            } => {
                if records.shared().is_some()
                    && let Some(copy) = lock(cached).clone()
                {
                    return Ok(Some(copy));
                }
                let Some(path) = records.path(tokens) else {
                    return self.read_tokens(records, tokens).await;
                };
                let stamp = match std::fs::metadata(&path) {
                    Ok(meta) => FileStamp::of(&meta),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        *lock(read) = None;
                        return Ok(None);
                    }
                    Err(_) => return self.read_tokens(records, tokens).await,
                };
                if let Some((seen, copy)) = &*lock(read)
                    && *seen == stamp
                {
                    return Ok(Some(copy.clone()));
                }
                let found = self.read_tokens(records, tokens).await?;
                *lock(read) = found.clone().map(|c| (stamp, c));
                Ok(found)
            }
            Backend::Memory { key } => Ok(memory(key, |e| e.tokens.clone())),
        }
    }

    /// The tokens as stored now (the record, never the copy), kept as this replica's copy.
    async fn read_tokens(
        &self,
        records: &Records,
        name: &str,
    ) -> Result<Option<StoredCredentials>, StoreError> {
        let found = match self.read::<StoredCredentials>(name, Kind::Tokens).await {
            Ok(found) => found,
            Err(ReadError::Unavailable(e)) => return Err(e),
            Err(ReadError::Unreadable(why)) => {
                tracing::debug!("{why}");
                None
            }
        };
        if records.shared().is_some()
            && let Backend::Records { cached, .. } = &*self.backend
        {
            *lock(cached) = found.clone();
        }
        Ok(found)
    }

    /// With a shared store: reads the tokens again (another replica may have stored new ones:
    /// a login finished there) and says whether they differ from this replica's copy.
    pub async fn reload_tokens(&self) -> Result<bool, StoreError> {
        let Backend::Records {
            records,
            tokens,
            cached,
            ..
        } = &*self.backend
        else {
            return Ok(false);
        };
        if records.shared().is_none() {
            return Ok(false);
        }
        let before = lock(cached)
            .as_ref()
            .map(|c| (c.client_id.clone(), c.token_received_at));
        let now = self.read_tokens(records, tokens).await?;
        Ok(now.map(|c| (c.client_id, c.token_received_at)) != before)
    }

    pub async fn save_tokens(&self, credentials: &StoredCredentials) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Records {
                records,
                tokens,
                cached,
                refreshing,
                ..
            } => {
                let shared = records.shared().is_some();
                let previous = shared.then(|| lock(cached).replace(credentials.clone()));
                let written = self.write(tokens, Kind::Tokens, credentials).await;
                // A login whose tokens could not be saved did not happen (the user is told
                // and signs in again); a refresh's tokens stay, see `CredentialStore::save`.
                if written.is_err()
                    && let Some(previous) = previous
                    && !refreshing.load(Ordering::Relaxed)
                {
                    *lock(cached) = previous;
                }
                written
            }
            Backend::Memory { key } => {
                memory(key, |e| e.tokens = Some(credentials.clone()));
                Ok(())
            }
        }
    }

    pub async fn clear_tokens(&self) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Records { tokens, cached, .. } => {
                *lock(cached) = None;
                self.remove(tokens, Kind::Tokens).await
            }
            Backend::Memory { key } => Ok(memory(key, |e| e.tokens.take().is_some())),
        }
    }

    /// The client registration (read from the store each time: it is needed only when a
    /// client is set up, never per call). A record that does not open reads as absent.
    pub async fn load_registration(&self) -> Result<Option<Registration>, StoreError> {
        match &*self.backend {
            Backend::Records { client, .. } => match self.read(client, Kind::Client).await {
                Ok(found) => Ok(found),
                Err(ReadError::Unavailable(e)) => Err(e),
                Err(ReadError::Unreadable(why)) => {
                    tracing::debug!("{why}");
                    Ok(None)
                }
            },
            Backend::Memory { key } => Ok(memory(key, |e| e.registration.clone())),
        }
    }

    pub async fn save_registration(&self, registration: &Registration) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Records { client, .. } => self.write(client, Kind::Client, registration).await,
            Backend::Memory { key } => {
                memory(key, |e| e.registration = Some(registration.clone()));
                Ok(())
            }
        }
    }

    pub async fn clear_registration(&self) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Records { client, .. } => self.remove(client, Kind::Client).await,
            Backend::Memory { key } => Ok(memory(key, |e| e.registration.take().is_some())),
        }
    }

    /// Whether every stored record can be read with the store key: a plaintext file of an
    /// earlier mcpo is sealed now; a sealed one that does not open is an error naming the
    /// store and the record (the server cannot be served until the right key is given), as
    /// is a shared store that does not answer. With a shared store and tokens in memory it
    /// asks nothing: those tokens opened already.
    pub async fn check(&self) -> Result<(), String> {
        let Backend::Records {
            records,
            tokens,
            client,
            cached,
            ..
        } = &*self.backend
        else {
            return Ok(());
        };
        if records.shared().is_some() && lock(cached).is_some() {
            return Ok(());
        }
        self.read::<StoredCredentials>(tokens, Kind::Tokens)
            .await
            .map_err(ReadError::message)?;
        self.read::<Registration>(client, Kind::Client)
            .await
            .map_err(ReadError::message)?;
        Ok(())
    }

    fn records(&self) -> Option<&Records> {
        match &*self.backend {
            Backend::Records { records, .. } => Some(records),
            Backend::Memory { .. } => None,
        }
    }

    /// The owner a record of `kind` is sealed for.
    fn owner(&self, kind: Kind) -> Owner {
        let (server, user) = match &*self.backend {
            Backend::Records { server, user, .. } => (server.clone(), user.clone()),
            Backend::Memory { .. } => (String::new(), None),
        };
        Owner {
            kind: kind.name().to_owned(),
            server,
            user,
        }
    }

    /// Reads the record `name`: `None` when there is none (or it is not valid JSON,
    /// reported once: a login replaces it, or a file that cannot be read, likewise); an
    /// error when it is sealed and does not open, or the shared store does not answer.
    async fn read<T: Serialize + for<'de> Deserialize<'de>>(
        &self,
        name: &str,
        kind: Kind,
    ) -> Result<Option<T>, ReadError> {
        let Some(records) = self.records() else {
            return Ok(None);
        };
        let where_ = records.describe_record(name);
        let bytes = match records.get(name).await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) if e.is_unavailable() => return Err(ReadError::Unavailable(e)),
            Err(e) => {
                tracing::warn!("{e}; a new OAuth login will replace it");
                return Ok(None);
            }
        };
        let owner = self.owner(kind);
        let plain = match sealed::format(&bytes) {
            Format::Plain => {
                let value: Option<T> = parse_json(&where_, &bytes);
                if let Some(value) = &value {
                    self.migrate(name, kind, value).await?;
                }
                return Ok(value);
            }
            Format::Sealed | Format::Version(_) => {
                let key = records
                    .key(false)
                    .map_err(|e| self.unreadable(name, &e))?
                    .ok_or_else(|| {
                        self.unreadable(
                            name,
                            &format!(
                                "it is sealed and there is no store key: {} does not exist",
                                records.describe_key()
                            ),
                        )
                    })?;
                sealed::open(&key.key, &owner, &bytes).map_err(|e| {
                    self.unreadable(name, &format!("{e} (store key from {})", key.source))
                })?
            }
        };
        Ok(parse_json(&where_, &plain))
    }

    /// The error for a record that does not open: the store, the record, why.
    fn unreadable(&self, name: &str, why: &str) -> ReadError {
        let (store, record) = match self.records() {
            Some(records) => (records.describe(), records.describe_record(name)),
            None => (String::new(), name.to_owned()),
        };
        ReadError::Unreadable(format!(
            "token store {store}: cannot read {record}: {why}; nothing was changed"
        ))
    }

    /// Rewrites a plaintext file of an earlier mcpo sealed.
    async fn migrate<T: Serialize>(
        &self,
        name: &str,
        kind: Kind,
        value: &T,
    ) -> Result<(), ReadError> {
        let sealed = self.seal(kind, value).map_err(|e| {
            self.unreadable(name, &format!("sealing the plaintext file failed: {e}"))
        })?;
        if let Some(records) = self.records() {
            records.put(name, &sealed).await.map_err(|e| {
                self.unreadable(name, &format!("sealing the plaintext file failed: {e}"))
            })?;
            tracing::info!(
                "{}: plaintext OAuth credentials of an earlier mcpo rewritten encrypted",
                records.describe_record(name)
            );
        }
        Ok(())
    }

    /// `value` sealed for its owner under the store key (created if it is the default key
    /// file and there is none yet).
    fn seal<T: Serialize>(&self, kind: Kind, value: &T) -> Result<Vec<u8>, StoreError> {
        let records = self
            .records()
            .ok_or_else(|| StoreError::Io("memory storage seals nothing".to_owned()))?;
        let key = records
            .key(true)
            .map_err(StoreError::Io)?
            .ok_or_else(|| StoreError::Io("no store key".to_owned()))?;
        let json = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Io(e.to_string()))?;
        sealed::seal(&key.key, &self.owner(kind), &json).map_err(|e| StoreError::Io(e.to_string()))
    }

    /// Seals `value` for its owner and replaces the record; refused when the record there is
    /// sealed and does not open (another key's, another owner's): it is never overwritten.
    /// A shared store is tried [`WRITE_ATTEMPTS`] times before the failure is reported.
    async fn write<T: Serialize>(
        &self,
        name: &str,
        kind: Kind,
        value: &T,
    ) -> Result<(), StoreError> {
        let Some(records) = self.records() else {
            return Ok(());
        };
        if let Some(root) = records.root() {
            let dir = root.join(name);
            ensure_private_dirs(root, dir.parent().unwrap_or(root))
                .map_err(|e| StoreError::Io(e.to_string()))?;
        }
        self.refuse_unreadable(name, kind).await?;
        let bytes = self.seal(kind, value)?;
        let mut attempt = 1;
        loop {
            match records.put(name, &bytes).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_unavailable() && attempt < WRITE_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes the record, unless it is sealed and does not open.
    async fn remove(&self, name: &str, kind: Kind) -> Result<bool, StoreError> {
        let Some(records) = self.records() else {
            return Ok(false);
        };
        self.refuse_unreadable(name, kind).await?;
        records.delete(name).await
    }

    /// An error when `name` holds a sealed record that does not open with the store key.
    async fn refuse_unreadable(&self, name: &str, kind: Kind) -> Result<(), StoreError> {
        let Some(records) = self.records() else {
            return Ok(());
        };
        let bytes = match records.get(name).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(()),
            Err(e) if e.is_unavailable() => return Err(e),
            Err(_) => return Ok(()),
        };
        if sealed::format(&bytes) == Format::Plain {
            return Ok(());
        }
        match self.read::<Value>(name, kind).await {
            Ok(_) => Ok(()),
            Err(ReadError::Unavailable(e)) => Err(e),
            Err(ReadError::Unreadable(m)) => Err(StoreError::Io(m)),
        }
    }

    /// Keeps writing `credentials` in the background until the shared store takes them (or
    /// newer tokens replace them): a refresh whose save failed must not be forgotten, since
    /// its refresh token is the only one that still works.
    fn save_later(&self, credentials: StoredCredentials) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            loop {
                tokio::time::sleep(pause).await;
                let Backend::Records { tokens, cached, .. } = &*store.backend else {
                    return;
                };
                let current = lock(cached).clone();
                let superseded = current.as_ref().is_none_or(|c| {
                    c.token_received_at != credentials.token_received_at
                        || c.client_id != credentials.client_id
                });
                if superseded {
                    return;
                }
                match store.write(tokens, Kind::Tokens, &credentials).await {
                    Ok(()) => {
                        tracing::info!(
                            server = %store.owner(Kind::Tokens).server,
                            "refreshed OAuth tokens saved to the store after it came back"
                        );
                        return;
                    }
                    Err(e) if e.is_unavailable() => {
                        pause = (pause * 2).min(Duration::from_secs(15))
                    }
                    Err(e) => {
                        tracing::warn!("saving refreshed OAuth tokens failed: {e}");
                        return;
                    }
                }
            }
        });
    }
}

/// The records backend of one server's (or user's) token pair in `folder` (a subfolder of
/// the token folder, or the folder itself). A token folder that exists is checked now, so a
/// bad one is reported at start-up.
fn records(
    records: Records,
    folder: Option<&str>,
    key: &str,
    server: &str,
    user: Option<&str>,
) -> Result<Backend, String> {
    if let Some(root) = records.root() {
        let dir = folder.map_or_else(|| root.to_path_buf(), |f| root.join(f));
        for dir in [root, dir.as_path()] {
            check_private_dir(dir).map_err(|e| e.to_string())?;
        }
    }
    let name = |suffix: &str| match folder {
        Some(folder) => format!("{folder}/{key}{suffix}"),
        None => format!("{key}{suffix}"),
    };
    Ok(Backend::Records {
        tokens: name(TOKENS_SUFFIX),
        client: name(CLIENT_SUFFIX),
        records,
        server: server.to_owned(),
        user: user.map(str::to_owned),
        cached: Mutex::new(None),
        refreshing: AtomicBool::new(false),
        read: Mutex::new(None),
    })
}

/// Which file a record was read from: its inode, size and modification time. Every write
/// renames a new file into place, so a changed record has another stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            inode,
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a record holds; its name is part of the owner it is sealed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// rmcp's `StoredCredentials`.
    Tokens,
    /// The client [`Registration`].
    Client,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Tokens => "tokens",
            Kind::Client => "client",
        }
    }
}

fn store_error(e: StoreError) -> AuthError {
    AuthError::CredentialStoreError(e.to_string())
}

/// Whether an access token has more than [`FRESH_SECS`] left.
fn fresh(credentials: &StoredCredentials) -> bool {
    let (Some(response), Some(received)) = (
        credentials.token_response.as_ref(),
        credentials.token_received_at,
    ) else {
        return false;
    };
    // The expiry as the token response carried it (read through serde: rmcp does not
    // re-export the `oauth2` trait that reads it, and this runs once per refresh).
    let Some(expires_in) = serde_json::to_value(response)
        .ok()
        .and_then(|v| v.get("expires_in").and_then(Value::as_u64))
    else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    expires_in.saturating_sub(now.saturating_sub(received)) > FRESH_SECS
}

/// Clears the refresh flag when the guard goes.
struct Refreshing {
    store: Store,
    _lock: RecordLock,
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        if let Backend::Records { refreshing, .. } = &*self.store.backend {
            refreshing.store(false, Ordering::Relaxed);
        }
    }
}

#[async_trait::async_trait]
impl CredentialStore for Store {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        self.load_tokens().await.map_err(store_error)
    }

    /// A refresh's new tokens that the shared store does not take stay in this replica's
    /// memory (they serve on) and are written once it is back; a login's are reported.
    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        self.saves.fetch_add(1, Ordering::Relaxed);
        match self.save_tokens(&credentials).await {
            Ok(()) => Ok(()),
            Err(e)
                if e.is_unavailable()
                    && matches!(&*self.backend, Backend::Records { refreshing, .. }
                        if refreshing.load(Ordering::Relaxed)) =>
            {
                tracing::warn!(
                    server = %self.owner(Kind::Tokens).server,
                    "{e}: the refreshed tokens serve from memory and are saved once it is back"
                );
                self.save_later(credentials);
                Ok(())
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// Refreshes by several mcpo processes sharing the tokens (a token folder, or replicas
    /// sharing Redis) take turns under the record's lock; rmcp loads the tokens again once
    /// it holds the guard. Tokens found fresh under the lock were refreshed by another
    /// process meanwhile: [`REFRESHED_ELSEWHERE`], so this one uses them instead of
    /// spending their refresh token again (with rotation the authorization server would see
    /// two refreshes, and some revoke the grant on a replay).
    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let Backend::Records {
            records,
            tokens,
            refreshing,
            ..
        } = &*self.backend
        else {
            return Ok(None);
        };
        let lock = records.lock(tokens).await.map_err(store_error)?;
        let now = self
            .read_tokens(records, tokens)
            .await
            .map_err(store_error)?;
        if now.as_ref().is_some_and(fresh) {
            drop(lock);
            return Err(AuthError::CredentialStoreError(
                REFRESHED_ELSEWHERE.to_owned(),
            ));
        }
        refreshing.store(true, Ordering::Relaxed);
        Ok(Some(CredentialRefreshGuard::new(Refreshing {
            store: self.clone(),
            _lock: lock,
        })))
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.clear_tokens().await.map(|_| ()).map_err(store_error)
    }

    /// A refresh token the server refused is useless; forget it so the next check asks for
    /// a new login instead of retrying it. The registration stays.
    async fn on_refresh_token_rejected(
        &self,
        credentials: &StoredCredentials,
    ) -> Result<(), AuthError> {
        let current = self.load_tokens().await.map_err(store_error)?;
        let same = current.as_ref().is_some_and(|c| {
            c.client_id == credentials.client_id
                && c.token_received_at == credentials.token_received_at
        });
        if same {
            self.clear_tokens().await.map_err(store_error)?;
        }
        Ok(())
    }
}

/// First 16 hex digits of SHA-256 over the server's name and URL.
fn file_key(name: &str, url: &str) -> String {
    let digest = Sha256::digest(format!("{name}\n{url}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// First 32 hex digits of SHA-256 over a user's id and the server's name and URL: user ids
/// (Open WebUI UUIDs) do not appear in file names. Two users with the same key would share
/// tokens, so it is 128 bits (no collision among any realistic number of users), not 64.
fn user_key(user: &str, name: &str, url: &str) -> String {
    let digest = Sha256::digest(format!("user\n{user}\n{name}\n{url}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn memory<T>(key: &str, f: impl FnOnce(&mut MemoryEntry) -> T) -> T {
    let mut map = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    f(map.entry(key.to_owned()).or_default())
}

/// `bytes` as JSON; `None` (reported once) when they are not valid.
fn parse_json<T: for<'de> Deserialize<'de>>(where_: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            // Only the position: serde's message can quote values from the file.
            tracing::warn!(
                "{where_} is not valid ({:?} error at line {} column {}); a new OAuth login \
                 will replace it",
                e.classify(),
                e.line(),
                e.column()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::folder::TOKEN_DIR_ENV;

    fn tokens(client_id: &str) -> StoredCredentials {
        StoredCredentials::new(client_id.to_owned(), None, vec!["s".to_owned()], Some(1))
    }

    fn registration() -> Registration {
        Registration {
            issuer: Some("http://as".to_owned()),
            redirect_uri: "http://localhost:3030/callback".to_owned(),
            client_id: "cid".to_owned(),
            client_secret: Some("topsecret".to_owned()),
            token_endpoint_auth_method: Some("client_secret_basic".to_owned()),
            response: Default::default(),
            registered_at: 0,
        }
    }

    #[tokio::test]
    async fn key_depends_on_name_and_url() {
        let a = file_key("a", "http://h/mcp");
        assert_eq!(a.len(), 16);
        assert_ne!(a, file_key("b", "http://h/mcp"));
        assert_ne!(a, file_key("a", "http://h/other"));
        assert_eq!(a, file_key("a", "http://h/mcp"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private_and_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tokens");
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        assert!(store.load_tokens().await.unwrap().is_none());
        store.save_tokens(&tokens("cid")).await.unwrap();
        store.save_registration(&registration()).await.unwrap();
        assert_eq!(store.load_tokens().await.unwrap().unwrap().client_id, "cid");
        let reg = store.load_registration().await.unwrap().unwrap();
        assert_eq!(reg.client_secret.as_deref(), Some("topsecret"));
        assert!(!format!("{reg:?}").contains("topsecret"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&store.tokens_path().unwrap()), 0o600);
        assert_eq!(mode(&store.client_path().unwrap()), 0o600);
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        assert!(store.clear_tokens().await.unwrap());
        assert!(!store.clear_tokens().await.unwrap());
        assert!(store.load_tokens().await.unwrap().is_none());
        assert!(store.load_registration().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn corrupt_files_read_as_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tokens");
        std::fs::create_dir(&dir).unwrap();
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        std::fs::write(store.tokens_path().unwrap(), b"{not json").unwrap();
        std::fs::write(store.client_path().unwrap(), b"[]").unwrap();
        assert!(store.load_tokens().await.unwrap().is_none());
        assert!(store.load_registration().await.unwrap().is_none());
        // The next save replaces the broken file.
        store.save_tokens(&tokens("cid")).await.unwrap();
        assert!(store.load_tokens().await.unwrap().is_some());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn users_have_their_own_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir_in(top.path()).unwrap();
        let a = Store::for_user(
            TokenStorage::File,
            "srv",
            "http://h/mcp",
            "alice",
            Some(tmp.path()),
        )
        .unwrap();
        let b = Store::for_user(
            TokenStorage::File,
            "srv",
            "http://h/mcp",
            "bob",
            Some(tmp.path()),
        )
        .unwrap();
        a.save_tokens(&tokens("a-client")).await.unwrap();
        assert!(b.load_tokens().await.unwrap().is_none());
        b.save_tokens(&tokens("b-client")).await.unwrap();
        assert_eq!(
            a.load_tokens().await.unwrap().unwrap().client_id,
            "a-client"
        );
        let path = a.tokens_path().unwrap();
        assert_eq!(path.parent().unwrap(), tmp.path().join("srv"));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!file.contains("alice"), "{file}");
        assert_eq!(file.len(), 32 + "_tokens.json".len());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("srv")), 0o700);
        // Neither is the single-user store of the same server.
        let shared =
            Store::new(TokenStorage::File, "srv", "http://h/mcp", Some(tmp.path())).unwrap();
        assert!(shared.load_tokens().await.unwrap().is_none());
        let ma =
            Store::for_user(TokenStorage::Memory, "srv", "http://h/mcp", "alice", None).unwrap();
        let mb = Store::for_user(TokenStorage::Memory, "srv", "http://h/mcp", "bob", None).unwrap();
        ma.save_tokens(&tokens("m")).await.unwrap();
        assert!(mb.load_tokens().await.unwrap().is_none());
        assert_eq!(folder_name("../x"), "_.._x");
        assert_eq!(folder_name("a/b"), "a_b");
    }

    /// A token folder others could write to, or a link to one, is refused: when the store is
    /// made and again before writing (it may be swapped meanwhile).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_token_folder_others_control_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&link)).unwrap_err();
        assert!(
            err.contains("symbolic link") && err.contains(TOKEN_DIR_ENV),
            "{err}"
        );
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&real)).unwrap_err();
        assert!(err.contains("writable by other users"), "{err}");
        // Only readable by others: tightened, not refused.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&real)).unwrap();
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Swapped for a link after the store was made: the write is refused.
        std::fs::rename(&real, tmp.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("moved"), &real).unwrap();
        let err = store
            .save_tokens(&tokens("cid"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!tmp.path().join("moved").read_dir().unwrap().any(|_| true));
    }

    /// A token folder `tokens` in a fresh private folder: the default key file goes next to it.
    fn folder() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tokens");
        (tmp, dir)
    }

    fn user_store(dir: &Path, user: &str) -> Store {
        Store::for_user(TokenStorage::File, "srv", "http://h/mcp", user, Some(dir)).unwrap()
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_sealed_and_the_key_file_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, dir) = folder();
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        store.save_registration(&registration()).await.unwrap();
        store.save_tokens(&tokens("the-client-id")).await.unwrap();
        for path in [&store.tokens_path().unwrap(), &store.client_path().unwrap()] {
            let raw = std::fs::read(path).unwrap();
            assert_eq!(sealed::format(&raw), Format::Sealed);
            for plain in [&b"topsecret"[..], b"the-client-id"] {
                assert!(!raw.windows(plain.len()).any(|w| w == plain));
            }
        }
        let key = tmp.path().join(crate::store::key::KEY_FILE_NAME);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            store.load_tokens().await.unwrap().unwrap().client_id,
            "the-client-id"
        );
        store.check().await.unwrap();
    }

    #[tokio::test]
    async fn plaintext_files_are_read_once_and_rewritten_sealed() {
        let (_tmp, dir) = folder();
        std::fs::create_dir(&dir).unwrap();
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        let path = &store.client_path().unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(&registration()).unwrap()).unwrap();
        let secret = || async {
            let reg = store.load_registration().await.unwrap().unwrap();
            reg.client_secret
        };
        assert_eq!(secret().await.as_deref(), Some("topsecret"));
        let raw = std::fs::read(path).unwrap();
        assert_eq!(sealed::format(&raw), Format::Sealed);
        assert_eq!(secret().await.as_deref(), Some("topsecret"));
    }

    /// Another key's file (another folder's default key file), or another user's file copied
    /// over this user's name: an error naming the store and the file, never absent, and
    /// neither overwritten nor deleted.
    #[tokio::test]
    async fn records_that_do_not_open_are_errors_and_stay_untouched() {
        let (_a, dir_a) = folder();
        let (_b, dir_b) = folder();
        let alice = user_store(&dir_a, "alice");
        let bob = user_store(&dir_a, "bob");
        alice.save_tokens(&tokens("alice-client")).await.unwrap();
        bob.save_tokens(&tokens("bob-client")).await.unwrap();

        // Alice's record copied to Bob's file name.
        std::fs::copy(alice.tokens_path().unwrap(), bob.tokens_path().unwrap()).unwrap();
        let before = std::fs::read(bob.tokens_path().unwrap()).unwrap();
        let err = bob.check().await.unwrap_err();
        assert!(
            err.contains("user 'alice'")
                && err.contains(&bob.tokens_path().unwrap().display().to_string())
                && err.contains(&dir_a.display().to_string()),
            "{err}"
        );
        assert!(bob.load_tokens().await.unwrap().is_none());
        assert!(bob.save_tokens(&tokens("new")).await.is_err());
        assert!(bob.clear_tokens().await.is_err());
        assert_eq!(std::fs::read(bob.tokens_path().unwrap()).unwrap(), before);

        // The same record in a store with another key.
        let elsewhere = user_store(&dir_b, "alice");
        elsewhere.save_registration(&registration()).await.unwrap();
        std::fs::copy(
            alice.tokens_path().unwrap(),
            elsewhere.tokens_path().unwrap(),
        )
        .unwrap();
        let err = elsewhere.check().await.unwrap_err();
        assert!(err.contains("another store key"), "{err}");
        assert!(elsewhere.save_tokens(&tokens("new")).await.is_err());
        assert!(alice.check().await.is_ok());
    }

    /// Tokens read once are taken again without reading while their file is unchanged; a
    /// login, refresh or logout by another process (another `Store` on the same folder) is
    /// seen at the next load.
    #[tokio::test]
    async fn a_token_file_another_process_changes_is_read_again() {
        let (_tmp, dir) = folder();
        let a = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        let b = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        let client = |store: &Store| {
            let store = store.clone();
            async move { store.load_tokens().await.unwrap().map(|c| c.client_id) }
        };
        a.save_tokens(&tokens("one")).await.unwrap();
        assert_eq!(client(&a).await.as_deref(), Some("one"));
        assert_eq!(client(&a).await.as_deref(), Some("one"));
        b.save_tokens(&tokens("two")).await.unwrap();
        assert_eq!(client(&a).await.as_deref(), Some("two"));
        b.clear_tokens().await.unwrap();
        assert_eq!(client(&a).await, None);
        b.save_tokens(&tokens("three")).await.unwrap();
        assert_eq!(client(&a).await.as_deref(), Some("three"));
    }

    #[tokio::test]
    async fn memory_is_shared_within_the_process() {
        let a = Store::new(TokenStorage::Memory, "mem-test", "http://h/mcp", None).unwrap();
        let b = Store::new(TokenStorage::Memory, "mem-test", "http://h/mcp", None).unwrap();
        a.save_tokens(&tokens("cid")).await.unwrap();
        assert_eq!(b.load_tokens().await.unwrap().unwrap().client_id, "cid");
        assert!(a.tokens_path().is_none());
        b.clear_tokens().await.unwrap();
        assert!(a.load_tokens().await.unwrap().is_none());
    }
}
