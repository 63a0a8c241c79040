//! The last known tool list of each multi-user server, kept on disk so that a restarted mcpo
//! can answer an anonymous spec fetch with real tools before any user has connected (Open WebUI
//! fetches admin-registered specs without credentials and gives up after 10 s).
//!
//! One JSON file per server under `$MCPO_CACHE_DIR/tools/` (default `~/.mcpo/cache/tools/`),
//! named `<server>-<hash>.json`, where the hash covers how the server is reached (URL, or
//! command, arguments and working directory): a server whose config changed starts with no
//! cached tools rather than stale ones. Writes go to a temporary file that is renamed over the
//! old one, so a crash never leaves half a file; a file that does not parse, or is larger than
//! [`MAX_FILE_BYTES`], is ignored with a warning. Nothing from the server's `env` or `headers`
//! (which can hold credentials) goes into the file or its name. The files are the owner's only
//! (0600, in a 0700 folder; existing ones are tightened when read or kept): a tool list says
//! what a user's session can do, and a server's tools can name private things
//! (`private_tool_of_alice…`).
//!
//! The I/O is small and blocking; callers on the async runtime may run it in `spawn_blocking`.
//!
//! With a shared store (`--store redis://…`, several replicas behind one address) the lists
//! are kept there too ([`SharedTools`]): one record per server and identity,
//! `tools/<server folder>/<the same hash>`, holding the file's JSON sealed for the owner
//! {`tools`, server} (tool lists are not secret; the seal keeps them whole and the server's
//! own), under the same size cap and the same `per_user_tools` rule. So the anonymous spec
//! of a multi-user server is the same on every replica: one that starts later, or whose
//! users never called, shows the list another replica's session saw. A store that does not
//! answer costs nothing but that: the file cache (or nothing) is used, start-up never fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rmcp::model::Tool;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ServerConfig, TransportConfig};
use crate::store::folder::folder_name;
use crate::store::redis::RedisStore;
use crate::support::atomic_file::{self, Access};
use crate::support::private_dir;
use crate::support::sealed::{self, Owner, StoreKey};

/// Overrides the cache root (`~/.mcpo/cache`); tool lists go in its `tools/` folder.
pub const CACHE_DIR_ENV: &str = "MCPO_CACHE_DIR";

/// Larger files are neither written nor read: a tool list is normally a few hundred KiB at most.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// Bumped when the file layout changes; files of another version are ignored.
const FORMAT_VERSION: u32 = 1;

/// Tool lists on disk, one file per server. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct ToolCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// SHA-256 of the tool list last written to (or read from) each file, so an unchanged list
    /// (every per-user session of a server lists the same tools) is not rewritten.
    known: Mutex<HashMap<PathBuf, [u8; 32]>>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    server: String,
    /// Unix seconds; for people reading the file.
    saved_at: u64,
    tools: Vec<Tool>,
}

impl ToolCache {
    /// The cache under `$MCPO_CACHE_DIR/tools`, else `~/.mcpo/cache/tools`; `None` (no disk
    /// cache) without either: a shared temporary folder would let another local user plant the
    /// tool lists mcpo publishes, or read them.
    pub fn from_env() -> Option<Self> {
        let root = match std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => match dirs::home_dir() {
                Some(home) => home.join(".mcpo").join("cache"),
                None => {
                    tracing::info!(
                        "no home directory: multi-user servers' last known tool lists are kept                          in memory only (set {CACHE_DIR_ENV} to keep them across restarts)"
                    );
                    return None;
                }
            },
        };
        Some(Self::in_dir(root.join("tools")))
    }

    /// A cache whose files live directly in `dir` (created on the first save).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                known: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The tools last saved for this server (with this same identity), if any could be read.
    pub fn load(&self, server: &ServerConfig) -> Option<Vec<Tool>> {
        if let Err(why) = private_dir::check(&self.inner.dir) {
            tracing::warn!(
                "server '{}': not using the tool cache: the folder {} {why}",
                server.name,
                self.inner.dir.display()
            );
            return None;
        }
        let path = self.path_of(server);
        let bytes = match read_bounded(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(
                    "server '{}': ignoring the tool cache {}: {why}",
                    server.name,
                    path.display()
                );
                return None;
            }
        };
        let file: CacheFile = match serde_json::from_slice(&bytes) {
            Ok(file) => file,
            Err(e) => {
                // Only the position: serde's message could quote the file.
                tracing::warn!(
                    "server '{}': ignoring the tool cache {}: not valid ({:?} error at line {} \
                     column {})",
                    server.name,
                    path.display(),
                    e.classify(),
                    e.line(),
                    e.column()
                );
                return None;
            }
        };
        if file.version != FORMAT_VERSION || file.server != server.name {
            tracing::debug!(
                "server '{}': ignoring the tool cache {} (version {}, server '{}')",
                server.name,
                path.display(),
                file.version,
                file.server
            );
            return None;
        }
        tighten(&path, 0o600);
        if let Ok(digest) = tools_digest(&file.tools) {
            self.known().insert(path, digest);
        }
        Some(file.tools)
    }

    /// Remembers `tools` as this server's last known list. Best effort: a failure is logged
    /// (the cache only speeds up the first spec fetch after a restart) and never returned.
    /// Files left by earlier configurations of the same server are removed.
    pub fn save(&self, server: &ServerConfig, tools: &[Tool]) {
        let path = self.path_of(server);
        if let Err(why) = self.write(server, &path, tools) {
            tracing::warn!(
                "server '{}': cannot save its tool list to {}: {why}",
                server.name,
                path.display()
            );
        }
    }

    fn write(&self, server: &ServerConfig, path: &Path, tools: &[Tool]) -> Result<(), String> {
        let digest = tools_digest(tools).map_err(|e| e.to_string())?;
        if self.known().get(path) == Some(&digest) && path.exists() {
            tighten(path, 0o600);
            return Ok(());
        }
        let bytes = list_json(server, tools)?;
        private_dir::create(&self.inner.dir).map_err(|e| e.to_string())?;
        private_dir::check(&self.inner.dir)
            .map_err(|why| format!("the folder {} {why}", self.inner.dir.display()))?;
        atomic_file::replace(path, &bytes, Access::Owner).map_err(|e| e.to_string())?;
        self.known().insert(path.to_owned(), digest);
        self.remove_stale(server, path);
        Ok(())
    }

    /// Deletes this server's files for other identities (its config changed since).
    fn remove_stale(&self, server: &ServerConfig, current: &Path) {
        let prefix = format!("{}-", file_stem(&server.name));
        let Ok(entries) = std::fs::read_dir(&self.inner.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let other = entry.path();
            // `<stem>-<16 hex>.json` only: another server's stem may start with ours.
            let is_ours = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".json"))
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if is_ours && other != current && owner_of(&other).as_deref() == Some(&server.name) {
                let _ = std::fs::remove_file(&other);
                self.known().remove(&other);
            }
        }
    }

    fn path_of(&self, server: &ServerConfig) -> PathBuf {
        self.inner.dir.join(format!(
            "{}-{}.json",
            file_stem(&server.name),
            identity_hash(server)
        ))
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, [u8; 32]>> {
        self.inner.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The owner kind tool list records are sealed as.
const SHARED_KIND: &str = "tools";

/// Tool lists in the shared store, for every replica (see the module doc). Best effort, like
/// the files: failures are logged, never returned.
#[derive(Debug)]
pub struct SharedTools {
    store: Arc<RedisStore>,
    key: Arc<StoreKey>,
    /// SHA-256 of the tool list last written (or read) under each record name, so an
    /// unchanged list (every user's session of a server shows the same) is not rewritten.
    known: Mutex<HashMap<String, [u8; 32]>>,
}

impl SharedTools {
    /// The process's, when a shared store is installed with its key.
    pub fn installed() -> Option<&'static SharedTools> {
        // Made once there is a store to make it for (never "none" for good: a caller before
        // the store is installed at start-up must not turn sharing off).
        static SHARED: std::sync::OnceLock<SharedTools> = std::sync::OnceLock::new();
        if let Some(shared) = SHARED.get() {
            return Some(shared);
        }
        let store = crate::store::shared::shared()?.clone();
        let key = crate::store::key::given()?.key;
        Some(SHARED.get_or_init(|| SharedTools {
            store,
            key,
            known: Mutex::new(HashMap::new()),
        }))
    }

    /// The tools another replica (or this one) last saved for this server with this same
    /// identity; `None` when there are none, or they cannot be had now.
    pub async fn load(&self, server: &ServerConfig) -> Option<Vec<Tool>> {
        let name = record_name(server);
        let bytes = match self.store.get(&name).await {
            Ok(bytes) => bytes?,
            Err(e) => {
                tracing::debug!(server = %server.name, "no shared tool list: {e}");
                return None;
            }
        };
        match open_list(&self.key, server, &bytes) {
            Ok(tools) => {
                if let Ok(digest) = tools_digest(&tools) {
                    self.known().insert(name, digest);
                }
                Some(tools)
            }
            Err(why) => {
                tracing::warn!(
                    "server '{}': ignoring the shared tool list {}{name}: {why}",
                    server.name,
                    self.store.prefix()
                );
                None
            }
        }
    }

    /// Remembers `tools` as this server's last known list for every replica; records of the
    /// server's earlier configurations are removed.
    pub async fn save(&self, server: &ServerConfig, tools: &[Tool]) {
        let name = record_name(server);
        let Ok(digest) = tools_digest(tools) else {
            return;
        };
        if self.known().get(&name) == Some(&digest) {
            return;
        }
        let bytes = match seal_list(&self.key, server, tools) {
            Ok(bytes) => bytes,
            Err(why) => {
                tracing::warn!("server '{}': not sharing its tool list: {why}", server.name);
                return;
            }
        };
        if let Err(e) = self.store.put(&name, &bytes).await {
            tracing::warn!("server '{}': cannot share its tool list: {e}", server.name);
            return;
        }
        self.known().insert(name.clone(), digest);
        let folder = format!("tools/{}/", folder_name(&server.name));
        if let Ok(names) = self.store.names(&folder).await {
            for stale in names.iter().filter(|n| **n != name) {
                let _ = self.store.delete(stale).await;
                self.known().remove(stale);
            }
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u8; 32]>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A server's tool list record in the shared store.
fn record_name(server: &ServerConfig) -> String {
    format!(
        "tools/{}/{}",
        folder_name(&server.name),
        identity_hash(server)
    )
}

fn shared_owner(server: &ServerConfig) -> Owner {
    Owner {
        kind: SHARED_KIND.to_owned(),
        server: server.name.clone(),
        user: None,
    }
}

/// `tools` as the cache file's JSON (the file's and the shared record's), refused over
/// [`MAX_FILE_BYTES`].
fn list_json(server: &ServerConfig, tools: &[Tool]) -> Result<Vec<u8>, String> {
    let file = CacheFile {
        version: FORMAT_VERSION,
        server: server.name.clone(),
        saved_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        tools: tools.to_vec(),
    };
    let json = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
    if json.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the list is {} bytes, over the limit of {MAX_FILE_BYTES}",
            json.len()
        ));
    }
    Ok(json)
}

/// `tools` as the cache file's JSON, sealed for the server; refused over [`MAX_FILE_BYTES`].
fn seal_list(key: &StoreKey, server: &ServerConfig, tools: &[Tool]) -> Result<Vec<u8>, String> {
    let json = list_json(server, tools)?;
    sealed::seal(key, &shared_owner(server), &json)
}

/// The tools of a record [`seal_list`] made for this server.
fn open_list(key: &StoreKey, server: &ServerConfig, bytes: &[u8]) -> Result<Vec<Tool>, String> {
    // The seal adds a header and a tag: a few hundred bytes at most.
    if bytes.len() > MAX_FILE_BYTES + 4096 {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    let json = sealed::open(key, &shared_owner(server), bytes).map_err(|e| e.to_string())?;
    let file: CacheFile = serde_json::from_slice(&json)
        .map_err(|e| format!("not a tool list ({:?} error)", e.classify()))?;
    if file.version != FORMAT_VERSION || file.server != server.name {
        return Err(format!(
            "version {}, server '{}'",
            file.version, file.server
        ));
    }
    Ok(file.tools)
}

/// The server name as a safe file name part: `[A-Za-z0-9._-]` (what config names allow anyway),
/// at most 64 characters; the hash that follows keeps names with the same stem apart.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if stem.is_empty() {
        "_".to_owned()
    } else {
        stem
    }
}

/// First 16 hex digits of SHA-256 over the server's name and how it is reached. `env` and
/// `headers` are left out: they may hold secrets, and rarely change which tools there are;
/// so are arguments filled in per user.
fn identity_hash(server: &ServerConfig) -> String {
    let mut hasher = Sha256::new();
    let mut field = |part: &str| {
        // Length-prefixed, so ("a b", "c") and ("a", "b c") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    };
    field(&server.name);
    match &server.transport {
        TransportConfig::Stdio {
            command, args, cwd, ..
        } => {
            field("stdio");
            field(command);
            // An argument filled in per user (`{{USER_…}}`) counts as its slot: every user's
            // session shares the server's file, and no user's secret goes into the hash.
            let templated = |i: usize| {
                server.multi_user.as_ref().is_some_and(|m| {
                    m.templates
                        .slots
                        .iter()
                        .any(|(slot, _)| *slot == crate::config::Slot::Arg(i))
                })
            };
            for (i, a) in args.iter().enumerate() {
                field(if templated(i) { "\0per-user" } else { a });
            }
            field(
                &cwd.as_ref()
                    .map(|c| c.display().to_string())
                    .unwrap_or_default(),
            );
        }
        TransportConfig::Sse { url, .. } => {
            field("sse");
            field(url.as_str());
        }
        TransportConfig::StreamableHttp { url, .. } => {
            field("streamable-http");
            field(url.as_str());
        }
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tools_digest(tools: &[Tool]) -> serde_json::Result<[u8; 32]> {
    let bytes = serde_json::to_vec(tools)?;
    Ok(Sha256::digest(&bytes).into())
}

/// The server a cache file belongs to, if it can be read.
fn owner_of(path: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Owner {
        server: String,
    }
    let bytes = read_bounded(path).ok()??;
    serde_json::from_slice::<Owner>(&bytes)
        .ok()
        .map(|o| o.server)
}

/// Sets `path`'s permission bits to `mode` when they differ (files and folders of earlier
/// versions were created with the umask's, often 0644/0755). Best effort: a cache we cannot
/// tighten (not our file) is still used, with a warning.
fn tighten(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.permissions().mode() & 0o777 == mode {
            return;
        }
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(
                "cannot restrict {} to mode {mode:o}: {e}; other local users may read the cached tool lists",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// The file's bytes; `None` when it does not exist; an error when unreadable or too large.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::{BTreeMap, BTreeSet};

    fn stdio(name: &str, args: &[&str]) -> ServerConfig {
        ServerConfig {
            name: name.to_owned(),
            transport: TransportConfig::Stdio {
                command: "fixture".to_owned(),
                args: args.iter().map(|a| a.to_string()).collect(),
                env: BTreeMap::new(),
                cwd: None,
                inherit_env: false,
            },
            disabled_tools: BTreeSet::new(),
            expose: Default::default(),
            timeout: None,
            oauth: None,
            multi_user: None,
            max_result: None,
        }
    }

    fn remote(name: &str, url: &str) -> ServerConfig {
        ServerConfig {
            transport: TransportConfig::StreamableHttp {
                url: url.parse().unwrap(),
                headers: BTreeMap::new(),
            },
            ..stdio(name, &[])
        }
    }

    fn tool(name: &str) -> Tool {
        serde_json::from_value(json!({
            "name": name,
            "description": format!("the {name} tool"),
            "inputSchema": {"type": "object", "properties": {"x": {"type": "string", "const": "y"}},
                            "$defs": {"D": {"type": "integer"}}},
        }))
        .unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn arguments_filled_in_per_user_share_the_servers_file() {
        let text = r#"{"mcpServers": {"s": {"command": "x", "args": ["--key", "{{USER_SECRET:k}}"],
            "multi_user": true, "webui_secret_key": "q8Vn3xR7tLm2Wp9Kc4Hs6Jd1",
            "user_secrets": {"k": {"title": "K"}}}}}"#;
        let (config, _) = crate::config::from_str_with_env(text, "t", &|_| None).unwrap();
        let base = &config.servers[0];
        let user = |secret: &str| {
            base.for_user(&crate::config::UserValues {
                id: "u".into(),
                secrets: [("k".to_owned(), secret.to_owned())].into(),
                ..Default::default()
            })
        };
        assert_ne!(user("s1"), user("s2"));
        assert_eq!(identity_hash(base), identity_hash(&user("s1")));
        assert_eq!(identity_hash(&user("s1")), identity_hash(&user("s2")));
    }

    #[test]
    fn shared_records_are_sealed_for_their_server_and_capped() {
        let key = StoreKey::from_bytes(&[3; 32]).unwrap();
        let server = stdio("memory", &["stdio"]);
        let tools = vec![tool("a"), tool("b")];
        let bytes = seal_list(&key, &server, &tools).unwrap();
        assert!(bytes.starts_with(sealed::MAGIC));
        assert!(!bytes.windows(11).any(|w| w == b"the a tool\""));
        assert_eq!(open_list(&key, &server, &bytes).unwrap(), tools);
        // Another server's record, another key's, or one altered, does not open.
        assert!(open_list(&key, &stdio("other", &["stdio"]), &bytes).is_err());
        let other_key = StoreKey::from_bytes(&[4; 32]).unwrap();
        assert!(open_list(&other_key, &server, &bytes).is_err());
        let mut altered = bytes.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(open_list(&key, &server, &altered).is_err());
        // The same name on every replica: the server's folder and its identity hash.
        assert_eq!(
            record_name(&server),
            format!("tools/memory/{}", identity_hash(&server))
        );
        assert_ne!(record_name(&server), record_name(&stdio("memory", &["v2"])));
        // The file cache's size cap.
        let huge = vec![tool(&"x".repeat(MAX_FILE_BYTES))];
        assert!(seal_list(&key, &server, &huge).is_err());
    }

    #[test]
    fn saved_tools_come_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let server = stdio("memory", &["stdio"]);
        let tools = vec![tool("a"), tool("b")];
        ToolCache::in_dir(dir.path()).save(&server, &tools);
        // A new cache over the same folder stands for a restarted mcpo.
        let again = ToolCache::in_dir(dir.path());
        assert_eq!(again.load(&server), Some(tools));
        assert_eq!(again.load(&stdio("other", &["stdio"])), None);
        let names = files(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("memory-") && names[0].ends_with(".json"));
    }

    #[test]
    fn a_changed_config_does_not_see_the_old_tools() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ToolCache::in_dir(dir.path());
        cache.save(&stdio("s", &["v1"]), &[tool("old")]);
        assert_eq!(cache.load(&stdio("s", &["v2"])), None);
        cache.save(&remote("r", "http://127.0.0.1:1/mcp"), &[tool("x")]);
        assert_eq!(cache.load(&remote("r", "http://127.0.0.1:2/mcp")), None);
        // Saving under the new identity replaces the old file instead of piling up.
        cache.save(&stdio("s", &["v2"]), &[tool("new")]);
        assert_eq!(cache.load(&stdio("s", &["v1"])), None);
        assert_eq!(cache.load(&stdio("s", &["v2"])), Some(vec![tool("new")]));
        assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn files_are_the_owners_only_and_old_ones_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache").join("tools");
        let server = stdio("s", &["x"]);
        ToolCache::in_dir(&dir).save(&server, &[tool("a")]);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("cache")), 0o700);
        let file = dir.join(&files(&dir)[0]);
        assert_eq!(mode(&file), 0o600);
        // As an earlier version left them: world-readable.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(ToolCache::in_dir(&dir).load(&server), Some(vec![tool("a")]));
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
    }

    #[test]
    fn argument_boundaries_matter() {
        assert_ne!(
            identity_hash(&stdio("s", &["a b", "c"])),
            identity_hash(&stdio("s", &["a", "b c"]))
        );
    }

    #[test]
    fn corrupt_oversized_and_foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ToolCache::in_dir(dir.path());
        let server = stdio("s", &[]);
        cache.save(&server, &[tool("a")]);
        let path = cache.path_of(&server);

        std::fs::write(&path, b"{\"version\": 1, \"server\": \"s\", \"tools\": [").unwrap();
        assert_eq!(ToolCache::in_dir(dir.path()).load(&server), None);

        std::fs::write(&path, vec![b' '; MAX_FILE_BYTES + 1]).unwrap();
        assert_eq!(ToolCache::in_dir(dir.path()).load(&server), None);

        let foreign = json!({"version": 1, "server": "t", "saved_at": 0, "tools": []});
        std::fs::write(&path, foreign.to_string()).unwrap();
        assert_eq!(ToolCache::in_dir(dir.path()).load(&server), None);

        let future = json!({"version": 99, "server": "s", "saved_at": 0, "tools": []});
        std::fs::write(&path, future.to_string()).unwrap();
        assert_eq!(ToolCache::in_dir(dir.path()).load(&server), None);

        // A good save repairs the file.
        ToolCache::in_dir(dir.path()).save(&server, &[tool("a")]);
        assert_eq!(cache.load(&server), Some(vec![tool("a")]));
    }

    #[test]
    fn oversized_lists_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ToolCache::in_dir(dir.path());
        let server = stdio("big", &[]);
        let mut big = tool("big");
        big.description = Some("x".repeat(MAX_FILE_BYTES).into());
        cache.save(&server, &[big]);
        assert_eq!(cache.load(&server), None);
    }

    #[test]
    fn unchanged_lists_are_not_rewritten_and_no_temp_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ToolCache::in_dir(dir.path());
        let server = stdio("s", &[]);
        cache.save(&server, &[tool("a")]);
        let path = cache.path_of(&server);
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.save(&server, &[tool("a")]);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        cache.save(&server, &[tool("a"), tool("b")]);
        assert_eq!(cache.load(&server).map(|t| t.len()), Some(2));
        assert_eq!(files(dir.path()).len(), 1, "{:?}", files(dir.path()));
    }

    #[test]
    fn unusual_server_names_make_safe_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ToolCache::in_dir(dir.path());
        let server = stdio("../../etc/passwd", &[]);
        cache.save(&server, &[tool("a")]);
        assert_eq!(cache.load(&server), Some(vec![tool("a")]));
        let names = files(dir.path());
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(".._.._etc_passwd-"), "{names:?}");
    }

    #[test]
    fn an_unwritable_folder_is_logged_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"not a folder").unwrap();
        let cache = ToolCache::in_dir(blocker.join("tools"));
        cache.save(&stdio("s", &[]), &[tool("a")]);
        assert_eq!(cache.load(&stdio("s", &[])), None);
    }
}
