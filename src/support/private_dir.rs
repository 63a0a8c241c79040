//! Folders that must be mcpo's own: the OAuth token folder and the tool cache. Whoever can
//! write to such a folder, or point it elsewhere, can plant a file mcpo then trusts (a token, a
//! tool list it publishes) or swap one for a link, so an existing folder is checked before use.

use std::path::Path;

/// Checks an existing `dir`: a real folder (a symbolic link is refused, never followed), owned
/// by mcpo's effective user, writable by nobody else. One that others may only read is made
/// owner-only (0700). A folder that does not exist yet passes: callers create it 0700. The
/// error says what is wrong, without the folder's name (callers add it with their advice).
#[cfg(unix)]
pub(crate) fn check(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if meta.file_type().is_symlink() {
        return Err("is a symbolic link, which mcpo does not follow".to_owned());
    }
    if !meta.is_dir() {
        return Err("is not a folder".to_owned());
    }
    // SAFETY: geteuid takes no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "belongs to uid {}, not to mcpo's user (uid {me})",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "is writable by other users (mode {mode:o}); make it owner-only (chmod 700) after \
             checking what is in it"
        ));
    }
    if mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make it owner-only: {e}"))?;
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// Creates `dir` and its missing parents owner-only (0700); an existing folder is left as it is
/// (callers [`check`] it).
#[cfg(unix)]
pub(crate) fn create(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
pub(crate) fn create(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_a_real_owner_only_folder_passes() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing");
        assert_eq!(check(&missing), Ok(()));

        let readable = root.path().join("readable");
        std::fs::create_dir(&readable).unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check(&readable), Ok(()));
        let mode = std::fs::metadata(&readable).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "a folder others may read is tightened");

        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            check(&shared)
                .unwrap_err()
                .contains("writable by other users")
        );

        let link = root.path().join("link");
        std::os::unix::fs::symlink(&readable, &link).unwrap();
        assert!(check(&link).unwrap_err().contains("symbolic link"));

        let file = root.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(check(&file).unwrap_err().contains("not a folder"));
    }
}
