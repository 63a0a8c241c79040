//! `--hot-reload` and SIGHUP: re-read the config file and apply the difference.
//!
//! The watcher polls the file's metadata once a second instead of using inotify: polling sees
//! atomic-rename saves (editors) and symlink swaps (Kubernetes ConfigMaps replace a `..data`
//! symlink) the same way, with no platform-specific code. A change is applied only after the
//! file has been stable for a short debounce and its content really differs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::servers::Registry;

const POLL: Duration = Duration::from_millis(1000);
const DEBOUNCE: Duration = Duration::from_millis(300);

/// What identifies a version of the file without reading it (following symlinks).
#[derive(Debug, PartialEq, Eq, Clone)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// An operator's SIGHUP: reload even if the file looks unchanged.
    Sighup,
    /// The watcher saw the file change.
    FileChange,
}

impl Cause {
    /// How the log line names it.
    fn as_str(self) -> &'static str {
        match self {
            Cause::Sighup => "SIGHUP",
            Cause::FileChange => "file change",
        }
    }
}

/// Watches `path` (when `watch`) and listens for SIGHUP, reloading on either, until the
/// process ends.
pub fn spawn(registry: Arc<Registry>, path: PathBuf, watch: bool) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Cause>(4);
    #[cfg(unix)]
    {
        // Registered here, before the caller goes on, so a SIGHUP right after start-up is
        // never left to the default action (which would end the process).
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        let _ = tx.send(Cause::Sighup).await;
                    }
                });
            }
            Err(e) => tracing::warn!("cannot listen for SIGHUP: {e}"),
        }
    }
    if watch {
        let path = path.clone();
        tokio::spawn(async move {
            let mut last = stamp(&path);
            loop {
                tokio::time::sleep(POLL).await;
                let now = stamp(&path);
                if now == last || now.is_none() {
                    // A missing file is usually mid-rename; keep the running config.
                    continue;
                }
                tokio::time::sleep(DEBOUNCE).await;
                let settled = stamp(&path);
                if settled != now {
                    continue; // still being written; look again next tick
                }
                last = settled;
                if tx.send(Cause::FileChange).await.is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut applied: Option<String> = std::fs::read_to_string(&path).ok();
        while let Some(cause) = rx.recv().await {
            let text = std::fs::read_to_string(&path).ok();
            if cause == Cause::FileChange && text.is_some() && text == applied {
                continue; // touched but not changed
            }
            match crate::config::load_file(&path) {
                Ok((config, warnings)) => {
                    for w in &warnings {
                        tracing::warn!("{w}");
                    }
                    let summary = registry.reload(config).await;
                    tracing::info!(
                        cause = cause.as_str(),
                        added = ?summary.added,
                        removed = ?summary.removed,
                        changed = ?summary.changed,
                        unchanged = summary.unchanged.len(),
                        "configuration reloaded"
                    );
                    applied = text;
                }
                Err(e) => {
                    tracing::error!(
                        cause = cause.as_str(),
                        "the new configuration is invalid; keeping the running one:\n{e}"
                    );
                }
            }
        }
    });
}

/// Without a config file there is nothing to reload: SIGHUP is logged and ignored instead of
/// ending the process (its default action).
pub fn ignore_sighup() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP ignored: there is no config file to reload");
                }
            });
        }
    }
}
