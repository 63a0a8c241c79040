//! The store key: where it comes from, read once per process.
//!
//! In order: `MCPO_STORE_KEY` (base64 of 32 random bytes; read and removed from mcpo's own
//! environment at start-up, so no stdio server inherits it), else `--store-key-file`, else
//! the default key file `store.key` next to the token folder: `~/.mcpo/store.key` beside
//! `~/.mcpo/tokens`, and with `MCPO_TOKEN_DIR=/data/tokens` it is `/data/store.key` (the
//! token folder's parent, never inside the token folder: a copy of that folder alone must
//! not carry its key). That parent must be a folder of mcpo's own user that nobody else can
//! write to, else there is no default and mcpo asks for `MCPO_STORE_KEY` or
//! `--store-key-file`. The default key file is created (0600, OS-random) when a record is
//! first sealed, and the log says so; a key file named by `--store-key-file` is never
//! created. The setting is process-wide, like the token folder: one key seals every store.
//!
//! Neither the key nor the variable's value appears in a message; only the key's source
//! (`MCPO_STORE_KEY`, a file's path) and its id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use crate::support::private_dir;
use crate::support::sealed::StoreKey;

/// The store key itself, base64 of 32 random bytes.
pub const STORE_KEY_ENV: &str = "MCPO_STORE_KEY";
/// The default key file's name, next to the token folder.
pub const KEY_FILE_NAME: &str = "store.key";

/// How the process was told its store key.
#[derive(Debug)]
enum Setting {
    /// `MCPO_STORE_KEY`, parsed (or why it could not be).
    Env(Result<Arc<StoreKey>, String>),
    /// `--store-key-file`.
    File(PathBuf),
    /// The default key file next to the token folder.
    Default,
}

static SETTING: OnceLock<Setting> = OnceLock::new();
/// Key files read so far, by path.
static FILES: LazyLock<Mutex<HashMap<PathBuf, Arc<StoreKey>>>> = LazyLock::new(Default::default);

/// A store key and where it came from (for messages).
#[derive(Clone, Debug)]
pub struct Resolved {
    pub key: Arc<StoreKey>,
    pub source: String,
}

/// Reads `MCPO_STORE_KEY` and removes it from the environment.
///
/// # Safety
/// The process must still be single-threaded (`remove_var`).
pub unsafe fn take_env() -> Option<String> {
    let value = std::env::var_os(STORE_KEY_ENV)?;
    // SAFETY: the caller guarantees the process is single-threaded.
    unsafe { std::env::remove_var(STORE_KEY_ENV) };
    Some(value.to_string_lossy().into_owned())
}

/// Sets the process's store key: `env` (the value of `MCPO_STORE_KEY`) wins over `file`
/// (`--store-key-file`); with neither, the default key file. Once, at start-up; later calls
/// change nothing. An `env` that is not a key is an error (it never quotes the value); a key
/// file is read when first needed, so a missing one stops only the servers that need it.
pub fn install(env: Option<String>, file: Option<PathBuf>) -> Result<(), String> {
    let setting = match (env.filter(|v| !v.trim().is_empty()), file) {
        (Some(text), _) => Setting::Env(
            StoreKey::from_base64(&text)
                .map(Arc::new)
                .map_err(|e| format!("{STORE_KEY_ENV}: {e}")),
        ),
        (None, Some(path)) => Setting::File(path),
        (None, None) => Setting::Default,
    };
    let result = match &setting {
        Setting::Env(Err(e)) => Err(e.clone()),
        _ => Ok(()),
    };
    let _ = SETTING.set(setting);
    result
}

fn setting() -> &'static Setting {
    SETTING.get_or_init(|| Setting::Default)
}

/// The key that seals the store at token folder `root`. `None` when only the default key
/// file would do and it does not exist and `create` is false (nothing was sealed yet).
pub(crate) fn for_store(root: &Path, create: bool) -> Result<Option<Resolved>, String> {
    match setting() {
        Setting::Env(key) => key.clone().map(|key| {
            Some(Resolved {
                key,
                source: STORE_KEY_ENV.to_owned(),
            })
        }),
        Setting::File(path) => read_key_file(path).map(Some),
        Setting::Default => {
            let path = default_key_file(root)?;
            match read_key_file(&path) {
                Ok(key) => Ok(Some(key)),
                Err(_) if !path.exists() && !create => Ok(None),
                Err(_) if !path.exists() => create_key_file(&path).map(Some),
                Err(e) => Err(e),
            }
        }
    }
}

/// The key given explicitly (`MCPO_STORE_KEY` or `--store-key-file`), for a shared store,
/// which has no default key file; `None` when neither is set or the file does not read.
pub(crate) fn given() -> Option<Resolved> {
    match setting() {
        Setting::Env(Ok(key)) => Some(Resolved {
            key: key.clone(),
            source: STORE_KEY_ENV.to_owned(),
        }),
        Setting::File(path) => read_key_file(path).ok(),
        _ => None,
    }
}

/// Whether the store key is the default key file (neither `MCPO_STORE_KEY` nor
/// `--store-key-file`).
pub(crate) fn is_default() -> bool {
    matches!(setting(), Setting::Default)
}

/// A new OS-random key in a new file at `path` (0600, never replacing one), for
/// `mcpo store rekey` to move to; not cached, not logged.
pub(crate) fn new_key_file(path: &Path) -> Result<Arc<StoreKey>, String> {
    use std::io::Write;
    let text = StoreKey::generate_base64()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| {
            file.write_all(format!("{text}\n").as_bytes())?;
            file.sync_all()
        })
        .map_err(|e| {
            format!(
                "cannot write the new store key file {}: {e}",
                path.display()
            )
        })?;
    StoreKey::from_base64(&text).map(Arc::new)
}

/// Describes where the key is looked for, for "no key" messages.
pub(crate) fn describe(root: &Path) -> String {
    match setting() {
        Setting::Env(_) => STORE_KEY_ENV.to_owned(),
        Setting::File(path) => format!("key file {}", path.display()),
        Setting::Default => match default_key_file(root) {
            Ok(path) => format!(
                "key file {} (neither {STORE_KEY_ENV} nor --store-key-file is set)",
                path.display()
            ),
            Err(e) => e,
        },
    }
}

/// `store.key` in the token folder's parent, which must be mcpo's own (see the module doc).
pub fn default_key_file(root: &Path) -> Result<PathBuf, String> {
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => {
            return Err(format!(
                "the token folder {} has no parent folder for the store key file; set \
                 {STORE_KEY_ENV} or --store-key-file",
                root.display()
            ));
        }
    };
    check_key_folder(&parent)?;
    Ok(parent.join(KEY_FILE_NAME))
}

#[cfg(unix)]
fn check_key_folder(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: &str| {
        Err(format!(
            "no default place for the store key: {} {why}; set {STORE_KEY_ENV} or \
             --store-key-file (or choose an MCPO_TOKEN_DIR whose parent folder is mcpo's own)",
            dir.display()
        ))
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    if !meta.is_dir() {
        return refuse("is not a folder (or is a symbolic link)");
    }
    // SAFETY: geteuid takes no arguments and cannot fail.
    if meta.uid() != unsafe { libc::geteuid() } {
        return refuse("does not belong to mcpo's user");
    }
    if meta.mode() & 0o022 != 0 {
        return refuse("is writable by other users");
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_folder(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// Reads a key file (base64 of 32 bytes), once per path.
pub(crate) fn read_key_file(path: &Path) -> Result<Resolved, String> {
    let source = format!("key file {}", path.display());
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(key) = files.get(path) {
        return Ok(Resolved {
            key: key.clone(),
            source,
        });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the store {source}: {e}"))?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the store {source} may be read by other users (mode {mode:o}); make it \
                 owner-only (chmod 600)"
            );
        }
    }
    let key = Arc::new(StoreKey::from_base64(&text).map_err(|e| format!("{source}: {e}"))?);
    files.insert(path.to_path_buf(), key.clone());
    Ok(Resolved { key, source })
}

/// Creates the default key file: OS-random, 0600, never replacing one that appeared
/// meanwhile (another mcpo process); its folder is made 0700 when missing.
fn create_key_file(path: &Path) -> Result<Resolved, String> {
    use std::io::Write;
    let text = StoreKey::generate_base64()?;
    if let Some(dir) = path.parent() {
        private_dir::create(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write the store key file {}: {e}", path.display()))?;
            tracing::warn!(
                "created the store key file {} (mode 0600): stored OAuth credentials are \
                 encrypted with it. Keep it: without it they cannot be read. Set {STORE_KEY_ENV} \
                 or --store-key-file to keep the key apart from the token folder",
                path.display()
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "cannot create the store key file {}: {e}",
                path.display()
            ));
        }
    }
    read_key_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Next to the token folder, in its parent, and only in a parent that is mcpo's own:
    /// never a shared temporary folder.
    #[cfg(unix)]
    #[test]
    fn the_default_key_file_is_next_to_the_token_folder_and_never_in_a_shared_folder() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tokens");
        assert_eq!(
            default_key_file(&root).unwrap(),
            tmp.path().join(KEY_FILE_NAME)
        );
        let err = default_key_file(Path::new("/tmp/tokens")).unwrap_err();
        assert!(
            err.contains("writable by other users") && err.contains(STORE_KEY_ENV),
            "{err}"
        );
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(default_key_file(&root).is_err());
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // Created once, 0600; then read, not replaced.
        let path = tmp.path().join(KEY_FILE_NAME);
        let made = create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(StoreKey::from_base64(&text).is_ok());
        let again = create_key_file(&path).unwrap();
        assert_eq!(made.key.id_hex(), again.key.id_hex());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert!(!format!("{made:?}").contains(text.trim()));
    }
}
