//! A cross-process lock around a token refresh. Several mcpo processes may share a token file
//! (a daemon and `mcpo tools`, two daemons on one config); with refresh-token rotation each
//! refresh spends the refresh token it uses, so two processes refreshing at once would have
//! the second present a spent token (`invalid_grant`, and servers that detect the replay
//! revoke the whole grant). rmcp takes the store's refresh guard before it loads the tokens
//! and keeps it through the token request and the save, so under this lock the second
//! refresher reads the tokens the first one saved.
//!
//! An advisory lock (`flock` on Unix, through std's `File::lock`) on `<key>_tokens.lock` next
//! to the token file: the token file itself is replaced by rename on every save, so it cannot
//! carry the lock. The lock file stays empty.
//!
//! `File::lock` is std since Rust 1.89, the crate's `rust-version`.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest wait for another process's refresh: a token request is bounded well below this.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(25);

/// Held while a refresh runs; dropping it lets the next process in.
pub struct RefreshLock {
    file: File,
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes the lock at `path` (created empty, mode 0600), waiting for another holder at most
/// [`WAIT`]. Polls instead of blocking so no runtime thread is tied up meanwhile.
pub(crate) async fn acquire(path: &Path) -> std::io::Result<RefreshLock> {
    let file = open(path)?;
    let deadline = Instant::now() + WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RefreshLock { file }),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "{} is still locked by another process after {} s",
                        path.display(),
                        WAIT.as_secs()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_even_within_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k_tokens.lock");
        let first = acquire(&path).await.unwrap();
        // Another open file description, as another process would have.
        let waiting = tokio::spawn({
            let path = path.clone();
            async move {
                let began = Instant::now();
                let _second = acquire(&path).await.unwrap();
                began.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the second holder did not wait");
        drop(first);
        let waited = waiting.await.unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
