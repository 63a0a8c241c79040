//! The token folder: where the file store keeps its records (`~/.mcpo/tokens`, or
//! `$MCPO_TOKEN_DIR`), how records are named in it, and the rule that it must be mcpo's own.

use std::path::{Path, PathBuf};

use crate::support::private_dir;

/// Overrides the token directory (tests use it).
pub const TOKEN_DIR_ENV: &str = "MCPO_TOKEN_DIR";

/// The file name endings of the two records.
pub const TOKENS_SUFFIX: &str = "_tokens.json";
pub const CLIENT_SUFFIX: &str = "_client.json";
/// The file name ending of a user's secrets for a multi-user server (`crate::store`), kept in
/// the same per-server folders, so `mcpo store list|rekey` covers them too.
pub const SECRETS_SUFFIX: &str = "_secrets.json";

/// Whether a file name is one of a record's (`*_tokens.json`, `*_client.json`,
/// `*_secrets.json`; not hidden, so not a temporary file of an atomic write).
pub fn is_record_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && [TOKENS_SUFFIX, CLIENT_SUFFIX, SECRETS_SUFFIX]
            .iter()
            .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
}

/// Whether `name` is a record's name as the token folder holds it: a record file name, in the
/// folder itself or in one per-server folder (`gh/<hash>_secrets.json`), every part made of
/// the characters [`folder_name`] keeps. A name read from Redis must be one before it
/// becomes a path: `../x_tokens.json` must not leave the token folder.
pub fn is_record_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let safe =
        |part: &&str| !part.is_empty() && folder_name(part) == **part && !part.starts_with('.');
    match parts.as_slice() {
        [file] | [_, file] => parts.iter().all(safe) && is_record_file_name(file),
        _ => false,
    }
}

/// Every record file in `root` and its per-server folders, sorted by path (`mcpo store
/// list|rekey|migrate`): not the lock files, not the store key.
pub fn record_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    let mut depth = 0;
    while depth < 2 {
        let mut next = Vec::new();
        for folder in &folders {
            let entries = match std::fs::read_dir(folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth == 0 => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(format!("{}: {e}", folder.display())),
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let name = entry.file_name().to_string_lossy().into_owned();
                if kind.is_dir() && !kind.is_symlink() {
                    next.push(path);
                } else if kind.is_file() && is_record_file_name(&name) {
                    files.push(path);
                }
            }
        }
        folders = next;
        depth += 1;
    }
    files.sort();
    Ok(files)
}

/// `$MCPO_TOKEN_DIR`, else `~/.mcpo/tokens`; without a home directory (`HOME` unset and no
/// passwd entry, as for an arbitrary container uid) an error that says to set
/// `MCPO_TOKEN_DIR`, never a shared temporary folder that other users can write to.
pub fn default_token_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(TOKEN_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match dirs::home_dir() {
        Some(home) => Ok(home.join(".mcpo").join("tokens")),
        None => Err(format!(
            "no home directory to keep OAuth tokens in (HOME is unset and the user has no \
             passwd entry), and mcpo does not keep them in a shared temporary folder: set \
             {TOKEN_DIR_ENV} to a folder of mcpo's own user, or set \"storage_type\": \"memory\""
        )),
    }
}

/// A server name as one folder name: path separators and dots at the start cannot escape
/// the token directory.
pub fn folder_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    }
}

/// Creates the token folder `root` and the store's folder `dir` in it (mode 0700) as needed,
/// and checks both: each time before writing, as a folder can be swapped while mcpo runs.
pub(crate) fn ensure_private_dirs(root: &Path, dir: &Path) -> std::io::Result<()> {
    for folder in [root, dir] {
        private_dir::create(folder)?;
        check_private_dir(folder)?;
    }
    Ok(())
}

/// A token folder that exists must be mcpo's own ([`private_dir::check`]): whoever could write
/// to it or point it elsewhere could plant a token file or redirect the tokens.
pub(crate) fn check_private_dir(dir: &Path) -> std::io::Result<()> {
    private_dir::check(dir).map_err(|why| {
        std::io::Error::other(format!(
            "token folder {}: {why}; set {TOKEN_DIR_ENV} to a folder of mcpo's own user",
            dir.display()
        ))
    })
}
