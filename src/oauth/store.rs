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
use std::sync::{Arc, LazyLock, Mutex};

use rmcp::transport::auth::{
    AuthError, CredentialRefreshGuard, CredentialStore, StoredCredentials,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::TokenStorage;
use crate::store::folder::{
    CLIENT_SUFFIX, TOKENS_SUFFIX, check_private_dir, default_token_dir, ensure_private_dirs,
    folder_name,
};
use crate::store::key as store_key;
use crate::support::atomic_file::{self, Access};
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

/// The token store of one server. Clones share the same backing files or memory entry.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    backend: Arc<Backend>,
    /// Token sets saved (each login and each refresh saves one), for `/metrics`.
    saves: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug)]
enum Backend {
    File {
        /// The token folder; `dir` itself, or its parent for a multi-user server's folder.
        root: PathBuf,
        dir: PathBuf,
        tokens: PathBuf,
        client: PathBuf,
        /// The server and user every record is sealed for.
        server: String,
        user: Option<String>,
    },
    Memory {
        key: String,
    },
}

impl Backend {
    /// `<key>_tokens.json` and `<key>_client.json` in `dir`, under the token folder `root`.
    /// Folders that exist already are checked now, so a bad one is reported at start-up.
    fn files(
        root: PathBuf,
        dir: PathBuf,
        key: &str,
        server: &str,
        user: Option<&str>,
    ) -> Result<Backend, String> {
        for folder in [&root, &dir] {
            check_private_dir(folder).map_err(|e| e.to_string())?;
        }
        Ok(Backend::File {
            tokens: dir.join(format!("{key}{TOKENS_SUFFIX}")),
            client: dir.join(format!("{key}{CLIENT_SUFFIX}")),
            root,
            dir,
            server: server.to_owned(),
            user: user.map(str::to_owned),
        })
    }
}

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
            TokenStorage::File => {
                let root = token_dir(dir)?;
                Backend::files(root.clone(), root, &key, name, None)?
            }
        };
        Ok(Store::with(backend))
    }

    /// The store of one multi-user caller (`user`, the caller's session key) of server `name`:
    /// files under `<dir>/<server>/`, or a memory entry of their own.
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
            TokenStorage::File => {
                let root = token_dir(dir)?;
                let folder = root.join(folder_name(name));
                Backend::files(root, folder, &key, name, Some(user))?
            }
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
        self.saves.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The token file, for messages (`None` with memory storage).
    pub fn tokens_path(&self) -> Option<&Path> {
        match &*self.backend {
            Backend::File { tokens, .. } => Some(tokens),
            Backend::Memory { .. } => None,
        }
    }

    /// The registration file (`None` with memory storage).
    #[cfg(test)]
    pub fn client_path(&self) -> Option<&Path> {
        match &*self.backend {
            Backend::File { client, .. } => Some(client),
            Backend::Memory { .. } => None,
        }
    }

    pub fn load_tokens(&self) -> Option<StoredCredentials> {
        match &*self.backend {
            Backend::File { tokens, .. } => self.read_quietly(tokens, Kind::Tokens),
            Backend::Memory { key } => memory(key, |e| e.tokens.clone()),
        }
    }

    pub fn save_tokens(&self, credentials: &StoredCredentials) -> std::io::Result<()> {
        match &*self.backend {
            Backend::File { tokens, .. } => self.write(tokens, Kind::Tokens, credentials),
            Backend::Memory { key } => {
                memory(key, |e| e.tokens = Some(credentials.clone()));
                Ok(())
            }
        }
    }

    pub fn clear_tokens(&self) -> std::io::Result<bool> {
        match &*self.backend {
            Backend::File { tokens, .. } => self.remove(tokens, Kind::Tokens),
            Backend::Memory { key } => Ok(memory(key, |e| e.tokens.take().is_some())),
        }
    }

    pub fn load_registration(&self) -> Option<Registration> {
        match &*self.backend {
            Backend::File { client, .. } => self.read_quietly(client, Kind::Client),
            Backend::Memory { key } => memory(key, |e| e.registration.clone()),
        }
    }

    pub fn save_registration(&self, registration: &Registration) -> std::io::Result<()> {
        match &*self.backend {
            Backend::File { client, .. } => self.write(client, Kind::Client, registration),
            Backend::Memory { key } => {
                memory(key, |e| e.registration = Some(registration.clone()));
                Ok(())
            }
        }
    }

    pub fn clear_registration(&self) -> std::io::Result<bool> {
        match &*self.backend {
            Backend::File { client, .. } => self.remove(client, Kind::Client),
            Backend::Memory { key } => Ok(memory(key, |e| e.registration.take().is_some())),
        }
    }

    /// Whether every stored file can be read with the store key: a plaintext file of an
    /// earlier mcpo is sealed now; a sealed one that does not open is an error naming the
    /// store and the file (the server cannot be served until the right key is given).
    pub fn check(&self) -> Result<(), String> {
        let Backend::File { tokens, client, .. } = &*self.backend else {
            return Ok(());
        };
        self.read::<StoredCredentials>(tokens, Kind::Tokens)?;
        self.read::<Registration>(client, Kind::Client)?;
        Ok(())
    }

    /// The owner a record of `kind` is sealed for.
    fn owner(&self, kind: Kind) -> Owner {
        let (server, user) = match &*self.backend {
            Backend::File { server, user, .. } => (server.clone(), user.clone()),
            Backend::Memory { .. } => (String::new(), None),
        };
        Owner {
            kind: kind.name().to_owned(),
            server,
            user,
        }
    }

    fn root(&self) -> &Path {
        match &*self.backend {
            Backend::File { root, .. } => root,
            Backend::Memory { .. } => Path::new("."),
        }
    }

    /// [`Self::read`], a file that does not open read as absent (logged at debug: the
    /// authorizer reports it through [`Self::check`] before it loads anything).
    fn read_quietly<T: Serialize + for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
        kind: Kind,
    ) -> Option<T> {
        self.read(path, kind)
            .inspect_err(|e| tracing::debug!("{e}"))
            .ok()
            .flatten()
    }

    /// Reads the record at `path`: `None` when there is none (or it is not valid JSON,
    /// reported once: a login replaces it); an error when it is sealed and does not open.
    fn read<T: Serialize + for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
        kind: Kind,
    ) -> Result<Option<T>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; a new OAuth login will replace it",
                    path.display()
                );
                return Ok(None);
            }
        };
        let owner = self.owner(kind);
        let plain = match sealed::format(&bytes) {
            Format::Plain => {
                let value: Option<T> = parse_json(path, &bytes);
                if let Some(value) = &value {
                    self.migrate(path, kind, value)?;
                }
                return Ok(value);
            }
            Format::Sealed | Format::Version(_) => {
                let key = store_key::for_store(self.root(), false)
                    .map_err(|e| self.unreadable(path, &e))?
                    .ok_or_else(|| {
                        self.unreadable(
                            path,
                            &format!(
                                "it is sealed and there is no store key: {} does not exist",
                                store_key::describe(self.root())
                            ),
                        )
                    })?;
                sealed::open(&key.key, &owner, &bytes).map_err(|e| {
                    self.unreadable(path, &format!("{e} (store key from {})", key.source))
                })?
            }
        };
        Ok(parse_json(path, &plain))
    }

    /// The message for a file that does not open: the store, the file, why.
    fn unreadable(&self, path: &Path, why: &str) -> String {
        format!(
            "token store {}: cannot read {}: {why}; nothing was changed",
            self.root().display(),
            path.display()
        )
    }

    /// Rewrites a plaintext file of an earlier mcpo sealed.
    fn migrate<T: Serialize>(&self, path: &Path, kind: Kind, value: &T) -> Result<(), String> {
        self.write(path, kind, value).map_err(|e| {
            self.unreadable(path, &format!("sealing the plaintext file failed: {e}"))
        })?;
        tracing::info!(
            "{}: plaintext OAuth credentials of an earlier mcpo rewritten encrypted",
            path.display()
        );
        Ok(())
    }

    /// Seals `value` for its owner and replaces the file; refused when the file there is
    /// sealed and does not open (another key's, another owner's): it is never overwritten.
    fn write<T: Serialize>(&self, path: &Path, kind: Kind, value: &T) -> std::io::Result<()> {
        let Backend::File { root, dir, .. } = &*self.backend else {
            return Ok(());
        };
        ensure_private_dirs(root, dir)?;
        self.refuse_unreadable(path, kind)?;
        let key = store_key::for_store(root, true)
            .map_err(std::io::Error::other)?
            .ok_or_else(|| std::io::Error::other("no store key"))?;
        let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        let bytes =
            sealed::seal(&key.key, &self.owner(kind), &json).map_err(std::io::Error::other)?;
        atomic_file::replace(path, &bytes, Access::Owner)
    }

    /// Deletes the file, unless it is sealed and does not open.
    fn remove(&self, path: &Path, kind: Kind) -> std::io::Result<bool> {
        self.refuse_unreadable(path, kind)?;
        remove(path)
    }

    /// An error when `path` holds a sealed record that does not open with the store key.
    fn refuse_unreadable(&self, path: &Path, kind: Kind) -> std::io::Result<()> {
        let Ok(bytes) = std::fs::read(path) else {
            return Ok(());
        };
        if sealed::format(&bytes) == Format::Plain {
            return Ok(());
        }
        self.read::<Value>(path, kind)
            .map(|_| ())
            .map_err(std::io::Error::other)
    }
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

fn store_error(e: std::io::Error) -> AuthError {
    AuthError::CredentialStoreError(e.to_string())
}

#[async_trait::async_trait]
impl CredentialStore for Store {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        Ok(self.load_tokens())
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        self.saves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.save_tokens(&credentials).map_err(store_error)
    }

    /// Refreshes by several mcpo processes sharing the token file take turns (see
    /// `super::lock`); rmcp loads the tokens again once it holds the guard.
    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let Backend::File {
            root, dir, tokens, ..
        } = &*self.backend
        else {
            return Ok(None);
        };
        ensure_private_dirs(root, dir).map_err(store_error)?;
        let lock = crate::store::file_lock::acquire(&tokens.with_extension("lock"))
            .await
            .map_err(store_error)?;
        Ok(Some(CredentialRefreshGuard::new(lock)))
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.clear_tokens().map(|_| ()).map_err(store_error)
    }

    /// A refresh token the server refused is useless; forget it so the next check asks for
    /// a new login instead of retrying it. The registration stays.
    async fn on_refresh_token_rejected(
        &self,
        credentials: &StoredCredentials,
    ) -> Result<(), AuthError> {
        let current = self.load_tokens();
        let same = current.as_ref().is_some_and(|c| {
            c.client_id == credentials.client_id
                && c.token_received_at == credentials.token_received_at
        });
        if same {
            self.clear_tokens().map_err(store_error)?;
        }
        Ok(())
    }
}

/// `dir` when given, else [`default_token_dir`].
fn token_dir(dir: Option<&Path>) -> Result<PathBuf, String> {
    match dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => default_token_dir(),
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
fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            // Only the position: serde's message can quote values from the file.
            tracing::warn!(
                "{} is not valid ({:?} error at line {} column {}); a new OAuth login will \
                 replace it",
                path.display(),
                e.classify(),
                e.line(),
                e.column()
            );
            None
        }
    }
}

fn remove(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
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

    #[test]
    fn key_depends_on_name_and_url() {
        let a = file_key("a", "http://h/mcp");
        assert_eq!(a.len(), 16);
        assert_ne!(a, file_key("b", "http://h/mcp"));
        assert_ne!(a, file_key("a", "http://h/other"));
        assert_eq!(a, file_key("a", "http://h/mcp"));
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tokens");
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        assert!(store.load_tokens().is_none());
        store.save_tokens(&tokens("cid")).unwrap();
        store.save_registration(&registration()).unwrap();
        assert_eq!(store.load_tokens().unwrap().client_id, "cid");
        let reg = store.load_registration().unwrap();
        assert_eq!(reg.client_secret.as_deref(), Some("topsecret"));
        assert!(!format!("{reg:?}").contains("topsecret"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(store.tokens_path().unwrap()), 0o600);
        assert_eq!(mode(store.client_path().unwrap()), 0o600);
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        assert!(store.clear_tokens().unwrap());
        assert!(!store.clear_tokens().unwrap());
        assert!(store.load_tokens().is_none());
        assert!(store.load_registration().is_some());
    }

    #[test]
    fn corrupt_files_read_as_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tokens");
        std::fs::create_dir(&dir).unwrap();
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        std::fs::write(store.tokens_path().unwrap(), b"{not json").unwrap();
        std::fs::write(store.client_path().unwrap(), b"[]").unwrap();
        assert!(store.load_tokens().is_none());
        assert!(store.load_registration().is_none());
        // The next save replaces the broken file.
        store.save_tokens(&tokens("cid")).unwrap();
        assert!(store.load_tokens().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn users_have_their_own_private_files() {
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
        a.save_tokens(&tokens("a-client")).unwrap();
        assert!(b.load_tokens().is_none());
        b.save_tokens(&tokens("b-client")).unwrap();
        assert_eq!(a.load_tokens().unwrap().client_id, "a-client");
        let path = a.tokens_path().unwrap();
        assert_eq!(path.parent().unwrap(), tmp.path().join("srv"));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!file.contains("alice"), "{file}");
        assert_eq!(file.len(), 32 + "_tokens.json".len());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path), 0o600);
        assert_eq!(mode(&tmp.path().join("srv")), 0o700);
        // Neither is the single-user store of the same server.
        let shared =
            Store::new(TokenStorage::File, "srv", "http://h/mcp", Some(tmp.path())).unwrap();
        assert!(shared.load_tokens().is_none());
        let ma =
            Store::for_user(TokenStorage::Memory, "srv", "http://h/mcp", "alice", None).unwrap();
        let mb = Store::for_user(TokenStorage::Memory, "srv", "http://h/mcp", "bob", None).unwrap();
        ma.save_tokens(&tokens("m")).unwrap();
        assert!(mb.load_tokens().is_none());
        assert_eq!(folder_name("../x"), "_.._x");
        assert_eq!(folder_name("a/b"), "a_b");
    }

    /// A token folder others could write to, or a link to one, is refused: when the store is
    /// made and again before writing (it may be swapped meanwhile).
    #[cfg(unix)]
    #[test]
    fn a_token_folder_others_control_is_refused() {
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
        let err = store.save_tokens(&tokens("cid")).unwrap_err().to_string();
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
    #[test]
    fn files_are_sealed_and_the_key_file_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, dir) = folder();
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        store.save_registration(&registration()).unwrap();
        store.save_tokens(&tokens("the-client-id")).unwrap();
        for path in [store.tokens_path().unwrap(), store.client_path().unwrap()] {
            let raw = std::fs::read(path).unwrap();
            assert_eq!(sealed::format(&raw), Format::Sealed);
            for plain in [&b"topsecret"[..], b"the-client-id"] {
                assert!(!raw.windows(plain.len()).any(|w| w == plain));
            }
        }
        let key = tmp.path().join(store_key::KEY_FILE_NAME);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.load_tokens().unwrap().client_id, "the-client-id");
        store.check().unwrap();
    }

    #[test]
    fn plaintext_files_are_read_once_and_rewritten_sealed() {
        let (_tmp, dir) = folder();
        std::fs::create_dir(&dir).unwrap();
        let store = Store::new(TokenStorage::File, "s", "http://h/mcp", Some(&dir)).unwrap();
        let path = store.client_path().unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(&registration()).unwrap()).unwrap();
        assert_eq!(
            store.load_registration().unwrap().client_secret.as_deref(),
            Some("topsecret")
        );
        let raw = std::fs::read(path).unwrap();
        assert_eq!(sealed::format(&raw), Format::Sealed);
        assert_eq!(
            store.load_registration().unwrap().client_secret.as_deref(),
            Some("topsecret")
        );
    }

    /// Another key's file (another folder's default key file), or another user's file copied
    /// over this user's name: an error naming the store and the file, never absent, and
    /// neither overwritten nor deleted.
    #[test]
    fn records_that_do_not_open_are_errors_and_stay_untouched() {
        let (_a, dir_a) = folder();
        let (_b, dir_b) = folder();
        let alice = user_store(&dir_a, "alice");
        let bob = user_store(&dir_a, "bob");
        alice.save_tokens(&tokens("alice-client")).unwrap();
        bob.save_tokens(&tokens("bob-client")).unwrap();

        // Alice's record copied to Bob's file name.
        std::fs::copy(alice.tokens_path().unwrap(), bob.tokens_path().unwrap()).unwrap();
        let before = std::fs::read(bob.tokens_path().unwrap()).unwrap();
        let err = bob.check().unwrap_err();
        assert!(
            err.contains("user 'alice'")
                && err.contains(&bob.tokens_path().unwrap().display().to_string())
                && err.contains(&dir_a.display().to_string()),
            "{err}"
        );
        assert!(bob.load_tokens().is_none());
        assert!(bob.save_tokens(&tokens("new")).is_err());
        assert!(bob.clear_tokens().is_err());
        assert_eq!(std::fs::read(bob.tokens_path().unwrap()).unwrap(), before);

        // The same record in a store with another key.
        let elsewhere = user_store(&dir_b, "alice");
        elsewhere.save_registration(&registration()).unwrap();
        std::fs::copy(
            alice.tokens_path().unwrap(),
            elsewhere.tokens_path().unwrap(),
        )
        .unwrap();
        let err = elsewhere.check().unwrap_err();
        assert!(err.contains("another store key"), "{err}");
        assert!(elsewhere.save_tokens(&tokens("new")).is_err());
        assert!(alice.check().is_ok());
    }

    #[test]
    fn memory_is_shared_within_the_process() {
        let a = Store::new(TokenStorage::Memory, "mem-test", "http://h/mcp", None).unwrap();
        let b = Store::new(TokenStorage::Memory, "mem-test", "http://h/mcp", None).unwrap();
        a.save_tokens(&tokens("cid")).unwrap();
        assert_eq!(b.load_tokens().unwrap().client_id, "cid");
        assert!(a.tokens_path().is_none());
        b.clear_tokens().unwrap();
        assert!(a.load_tokens().is_none());
    }
}
