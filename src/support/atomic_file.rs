//! Files replaced whole: the new bytes go to a temporary file in the same folder, which is
//! synced and then renamed over the old file, so a reader (or a restart after a crash) sees
//! the old file or the new one, never half of one. The folder is synced after the rename too:
//! until then the rename lives only in the page cache, and a crash right after a login could
//! bring back the old token file (or none) although the login had succeeded. The token store
//! and the tool cache write through here.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Who may read a file once it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Its owner only (mode 0600 on Unix): tokens and client secrets.
    Owner,
    /// Whoever the umask lets: nothing secret in it. (No caller since the tool cache became
    /// owner-only; kept for the next file that is not private.)
    #[allow(dead_code)]
    Umask,
}

/// Makes temporary names unique within the process (the pid covers other processes).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces the file at `path` with `bytes`; its folder must exist. When writing or renaming
/// fails, the old file is left as it was and the temporary file is removed. An error from the
/// last step, syncing the folder, means the new file is in place but may not survive a crash.
pub(crate) fn replace(path: &Path, bytes: &[u8], access: Access) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if access == Access::Owner {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_folder(path)
}

/// Flushes the folder entry of `path` (the rename) to disk. Unix only: on Windows a folder
/// cannot be opened with `File::open`, so there is nothing to sync through.
#[cfg(unix)]
fn sync_folder(path: &Path) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)?.sync_all()
}

#[cfg(not(unix))]
fn sync_folder(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        // Larger than any single write the kernel is likely to take at once.
        let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        replace(&path, &big, Access::Umask).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), big);
        replace(&path, b"second", Access::Umask).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["f.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        replace(&path, b"old", Access::Owner).unwrap();
        // A folder in the file's place: the rename fails.
        let blocked = dir.path().join("d");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(replace(&blocked, b"new", Access::Owner).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        // The temporary file of the failed write is gone.
        assert_eq!(names(dir.path()), ["d", "f.json"]);
        assert_eq!(names(&blocked), ["inside"]);
    }

    #[test]
    fn a_missing_folder_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("f.json");
        let err = replace(&path, b"x", Access::Owner).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(names(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn owner_files_are_0600_even_over_a_readable_one() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.json");
        replace(&path, b"{}", Access::Owner).unwrap();
        assert_eq!(mode(&path), 0o600);
        // An old token file others could read is replaced by an owner-only one.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace(&path, b"{\"new\":1}", Access::Owner).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"new\":1}");
    }

    #[cfg(unix)]
    #[test]
    fn the_folder_of_a_bare_file_name_is_the_current_one() {
        // `Path::parent` of "f.json" is "", which cannot be opened; the sync uses ".".
        sync_folder(Path::new("f.json")).unwrap();
        assert!(sync_folder(Path::new("/nonexistent-mcpo-folder/f.json")).is_err());
    }
}
