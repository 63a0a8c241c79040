//! `mcpo store migrate`: every record of one store copied into another, byte for byte, so a
//! single-machine mcpo can grow to replicas sharing Redis (or come back) without anyone
//! signing in again.
//!
//! No record is opened or re-sealed: a record is sealed under the store key for its owner
//! (server, user, kind, in its header), not for where it lies, and its name (its path in the
//! token folder) is its key in Redis after the prefix. Only sealed records move
//! (`*_tokens.json`, `*_client.json`, `*_secrets.json`): not lock files, not the store key,
//! not tickets or logins in progress, and not the plaintext files of an earlier mcpo. A record that exists at the destination with other bytes is never
//! replaced unless asked (`--overwrite`): it may be newer than the one being copied.

use std::path::Path;

use super::error::StoreError;
use super::folder::{is_record_name, record_files};
use super::records::Records;
use crate::support::sealed::{self, Format};

/// What a migration did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Records written to the destination (new ones and, with `--overwrite`, replaced ones).
    pub copied: usize,
    /// Of those, records that replaced different bytes (`--overwrite`).
    pub overwritten: usize,
    /// Records the destination already held with the same bytes.
    pub unchanged: usize,
    /// Plaintext records of an earlier mcpo, not copied: Redis never gets a token in the
    /// clear, and mcpo seals such a file in the token folder when it next reads it.
    pub plaintext: Vec<String>,
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Records the destination holds with other bytes; nothing was copied.
    #[error(
        "{} record(s) exist in {to} with different contents: {}; nothing was copied (run again \
         with --overwrite to replace them)",
        names.len(),
        names.join(", ")
    )]
    Conflicts { to: String, names: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The names of every record in `records`, sorted: the token folder's record files, or the
/// Redis keys under the prefix that are record names (anything else there, such as locks,
/// tickets and logins in progress, is not a record).
pub async fn record_names(records: &Records) -> Result<Vec<String>, StoreError> {
    if let Some(root) = records.root() {
        return file_names(root);
    }
    let Some(store) = records.shared() else {
        return Ok(Vec::new());
    };
    let mut names = store.names("").await?;
    names.retain(|name| is_record_name(name));
    Ok(names)
}

fn file_names(root: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    for path in record_files(root).map_err(StoreError::Io)? {
        let name = path
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .map(|name| name.replace(std::path::MAIN_SEPARATOR, "/"))
            .filter(|name| is_record_name(name));
        match name {
            Some(name) => names.push(name),
            None => tracing::warn!("{}: not a record name; left out", path.display()),
        }
    }
    Ok(names)
}

/// Copies every record of `from` into `to`. Checks the whole destination first: with a
/// record there that differs and no `overwrite`, nothing is written.
pub async fn migrate(
    from: &Records,
    to: &Records,
    overwrite: bool,
) -> Result<Migrated, MigrateError> {
    let mut pending = Vec::new();
    let mut conflicts = Vec::new();
    let mut done = Migrated::default();
    for name in record_names(from).await? {
        // Gone since it was listed (mcpo deleted it meanwhile): nothing to copy.
        let Some(bytes) = from.get(&name).await? else {
            continue;
        };
        if sealed::format(&bytes) == Format::Plain {
            done.plaintext.push(name);
            continue;
        }
        match to.get(&name).await? {
            Some(there) if there == bytes => done.unchanged += 1,
            Some(_) => {
                conflicts.push(name.clone());
                pending.push((name, bytes));
            }
            None => pending.push((name, bytes)),
        }
    }
    if !conflicts.is_empty() && !overwrite {
        return Err(MigrateError::Conflicts {
            to: to.describe(),
            names: conflicts,
        });
    }
    for (name, bytes) in &pending {
        to.put(name, bytes).await?;
        done.copied += 1;
    }
    done.overwritten = conflicts.len();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed record holding `text`.
    fn sealed(text: &str) -> Vec<u8> {
        let key = crate::support::sealed::StoreKey::from_base64(
            &crate::support::sealed::StoreKey::generate_base64().unwrap(),
        )
        .unwrap();
        let owner = crate::support::sealed::Owner {
            kind: "tokens".to_owned(),
            server: "s".to_owned(),
            user: None,
        };
        sealed::seal(&key, &owner, text.as_bytes()).unwrap()
    }

    fn write(root: &Path, name: &str, bytes: &[u8]) {
        let path = root.join(name);
        crate::support::private_dir::create(root).unwrap();
        if let Some(dir) = path.parent() {
            crate::support::private_dir::create(dir).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[tokio::test]
    async fn records_move_between_token_folders_and_differences_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let (t, c, s, n) = (sealed("t"), sealed("c"), sealed("s"), sealed("n"));
        write(&a, "abc_tokens.json", &t);
        write(&a, "abc_client.json", &c);
        write(&a, "gh/def_secrets.json", &s);
        write(&a, "abc_tokens.lock", b"");
        write(&a, ".abc_tokens.json.tmp", b"x");
        write(&a, "old_tokens.json", br#"{"access_token": "plain"}"#);
        let (from, to) = (Records::file(a.clone()), Records::file(b.clone()));
        assert_eq!(
            record_names(&from).await.unwrap(),
            [
                "abc_client.json",
                "abc_tokens.json",
                "gh/def_secrets.json",
                "old_tokens.json"
            ]
        );
        let done = migrate(&from, &to, false).await.unwrap();
        assert_eq!((done.copied, done.unchanged), (3, 0));
        assert_eq!(done.plaintext, ["old_tokens.json"]);
        assert_eq!(std::fs::read(b.join("gh/def_secrets.json")).unwrap(), s);
        assert!(!b.join("abc_tokens.lock").exists());
        assert!(!b.join("old_tokens.json").exists());
        // Again: nothing to do. A record changed at the destination is kept, unless asked.
        assert_eq!(migrate(&from, &to, false).await.unwrap().unchanged, 3);
        std::fs::write(b.join("abc_tokens.json"), sealed("newer")).unwrap();
        write(&a, "new_tokens.json", &n);
        let err = migrate(&from, &to, false).await.unwrap_err();
        assert!(err.to_string().contains("abc_tokens.json"), "{err}");
        assert!(
            !b.join("new_tokens.json").exists(),
            "copied despite a conflict"
        );
        let done = migrate(&from, &to, true).await.unwrap();
        assert_eq!((done.copied, done.overwritten, done.unchanged), (2, 1, 2));
        assert_eq!(std::fs::read(b.join("abc_tokens.json")).unwrap(), t);
    }

    #[test]
    fn only_record_names_inside_the_folder() {
        for good in ["h_tokens.json", "gh/h_secrets.json", "a-b.c/h_client.json"] {
            assert!(is_record_name(good), "{good}");
        }
        for bad in [
            "../h_tokens.json",
            "gh/../../h_tokens.json",
            "/etc/h_tokens.json",
            "a/b/h_tokens.json",
            "lock:h_tokens.json",
            "gh/h_tokens.lock",
            "_tokens.json",
            ".h_tokens.json",
            "g h/h_tokens.json",
            "",
        ] {
            assert!(!is_record_name(bad), "{bad}");
        }
    }
}
