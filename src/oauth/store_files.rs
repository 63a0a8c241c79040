//! `mcpo store list` and `mcpo store rekey`: the store's records as a whole, without a config
//! (a sealed record names its owner in its header). `rekey` works on the token folder only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::Records;
use crate::store::folder::{default_token_dir, record_files};
use crate::store::key as store_key;
use crate::store::migrate::record_names;
use crate::support::atomic_file::{self, Access};
use crate::support::sealed::{self, Envelope, Format, StoreKey};

/// The variable `mcpo store rekey` reads the new key from (base64 of 32 random bytes), when
/// `--new-key-file` is not given.
pub const NEW_STORE_KEY_ENV: &str = "MCPO_NEW_STORE_KEY";

/// One stored record, as `mcpo store list` shows it: no values.
#[derive(Debug)]
pub struct Entry {
    /// Its file, or its key in the shared store.
    pub place: String,
    /// `server`, `user`, `kind`; `None` for a plaintext file (its owner is only known to a
    /// config: the file name is a hash).
    pub owner: Option<sealed::Owner>,
    /// How it stands: sealed and opening with the store key, or why not.
    pub state: String,
}

/// The token folder the daemon would use.
pub fn token_folder() -> Result<PathBuf, String> {
    default_token_dir()
}

/// The records of `records` (the token folder, or a shared store), and how each stands with
/// the store key.
pub async fn list(records: &Records) -> Result<Vec<Entry>, String> {
    let key = records.key(false);
    let mut entries = Vec::new();
    let names = record_names(records).await.map_err(|e| e.to_string())?;
    for name in names {
        // Gone since it was listed: not a record any more.
        let Some(bytes) = records.get(&name).await.map_err(|e| e.to_string())? else {
            continue;
        };
        let (owner, state) = match Envelope::parse(&bytes) {
            Ok(envelope) => {
                let state = match &key {
                    Ok(Some(key)) => match envelope.open(&key.key, &envelope.owner) {
                        Ok(_) => format!("sealed (key id {})", envelope.key_id_hex()),
                        Err(e) => format!("does not open: {e}"),
                    },
                    Ok(None) => format!(
                        "sealed (key id {}); no store key: {} does not exist",
                        envelope.key_id_hex(),
                        records.describe_key()
                    ),
                    Err(e) => format!("sealed (key id {}); {e}", envelope.key_id_hex()),
                };
                (Some(envelope.owner), state)
            }
            Err(_) if sealed::format(&bytes) == Format::Plain => (
                None,
                "plaintext (of an earlier mcpo): sealed when mcpo next reads it".to_owned(),
            ),
            Err(e) => (None, format!("does not open: {e}")),
        };
        entries.push(Entry {
            place: records.describe_record(&name),
            owner,
            state,
        });
    }
    Ok(entries)
}

/// What `rekey` did to one file.
#[derive(Debug)]
pub enum Rekeyed {
    Done,
    /// Already sealed with the new key (a rekey run again after an interruption).
    Already,
    /// A plaintext file: its owner is not known here; mcpo seals it when it next reads it.
    Plaintext,
    Failed(String),
}

/// The new key of `rekey`.
pub enum NewKey {
    /// `--new-key-file` or [`NEW_STORE_KEY_ENV`]: the operator starts mcpo with it afterwards.
    Given(Arc<StoreKey>),
    /// Neither, and the store key is the default key file: a new key is made in `pending`
    /// (`store.key.new`, kept and reused if a run stops half-way) and renamed over `path`
    /// once every record is re-sealed with it.
    Rotate {
        key: Arc<StoreKey>,
        pending: PathBuf,
        path: PathBuf,
    },
}

impl NewKey {
    pub fn key(&self) -> &StoreKey {
        match self {
            NewKey::Given(key) | NewKey::Rotate { key, .. } => key,
        }
    }
}

/// The new key: `--new-key-file`, else [`NEW_STORE_KEY_ENV`], else (with the default key file
/// in use) a new default key file.
pub fn new_key(file: Option<&Path>, root: &Path) -> Result<NewKey, String> {
    if let Some(path) = file {
        return store_key::read_key_file(path).map(|r| NewKey::Given(r.key));
    }
    if let Ok(text) = std::env::var(NEW_STORE_KEY_ENV) {
        return StoreKey::from_base64(&text)
            .map(|key| NewKey::Given(Arc::new(key)))
            .map_err(|e| format!("{NEW_STORE_KEY_ENV}: {e}"));
    }
    if !store_key::is_default() {
        return Err(format!(
            "give the new store key: --new-key-file FILE or {NEW_STORE_KEY_ENV} (a new key is \
             made only when the store key is the default key file)"
        ));
    }
    let path = store_key::default_key_file(root)?;
    if !path.exists() {
        return Err(format!(
            "there is no store key file {} to replace, and no new key was given \
             (--new-key-file FILE or {NEW_STORE_KEY_ENV})",
            path.display()
        ));
    }
    let pending = path.with_file_name(format!("{}.new", store_key::KEY_FILE_NAME));
    let key = if pending.exists() {
        store_key::read_key_file(&pending)?.key
    } else {
        store_key::new_key_file(&pending)?
    };
    Ok(NewKey::Rotate { key, pending, path })
}

/// After a rekey without failures: the new default key file takes the old one's place.
pub fn finish(new: &NewKey) -> Result<Option<PathBuf>, String> {
    let NewKey::Rotate { pending, path, .. } = new else {
        return Ok(None);
    };
    std::fs::rename(pending, path)
        .and_then(|()| match path.parent() {
            Some(dir) => std::fs::File::open(dir)?.sync_all(),
            None => Ok(()),
        })
        .map_err(|e| {
            format!(
                "cannot move {} to {}: {e}",
                pending.display(),
                path.display()
            )
        })?;
    Ok(Some(path.clone()))
}

/// Re-seals every record in `root` with `new`, each file replaced atomically. The old key is
/// the store key (same flags and environment as the daemon).
pub fn rekey(root: &Path, new: &StoreKey) -> Result<Vec<(PathBuf, Rekeyed)>, String> {
    let old = store_key::for_store(root, false)?;
    let mut done = Vec::new();
    for path in record_files(root)? {
        let outcome = rekey_file(&path, old.as_ref().map(|o| &*o.key), new);
        done.push((path, outcome));
    }
    Ok(done)
}

fn rekey_file(path: &Path, old: Option<&StoreKey>, new: &StoreKey) -> Rekeyed {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return Rekeyed::Failed(e.to_string()),
    };
    let envelope = match Envelope::parse(&bytes) {
        Ok(envelope) => envelope,
        Err(_) if sealed::format(&bytes) == Format::Plain => return Rekeyed::Plaintext,
        Err(e) => return Rekeyed::Failed(e.to_string()),
    };
    if envelope.sealed_with(new) && envelope.open(new, &envelope.owner).is_ok() {
        return Rekeyed::Already;
    }
    let Some(old) = old else {
        return Rekeyed::Failed("no store key to open it with".to_owned());
    };
    let plain = match envelope.open(old, &envelope.owner) {
        Ok(plain) => plain,
        Err(e) => return Rekeyed::Failed(e.to_string()),
    };
    match sealed::seal(new, &envelope.owner, &plain).and_then(|bytes| {
        atomic_file::replace(path, &bytes, Access::Owner).map_err(|e| e.to_string())
    }) {
        Ok(()) => Rekeyed::Done,
        Err(e) => Rekeyed::Failed(e),
    }
}
