//! Running a stdio server under bubblewrap (`bwrap`), for `"sandbox"` on a multi-user server.
//!
//! Every user's server runs as mcpo's own uid, so without this a tool that runs code reads
//! every user's token files and writes a `tools/call` into another user's server through
//! `/proc/<pid>/fd/0`. Under bwrap the server gets its own pid namespace (it sees and signals
//! only its own processes), a private `/tmp`, `/proc` and `/dev`, the rest of the file system
//! read-only (but the configured `writable` paths), and mcpo's own files covered: `~/.mcpo`,
//! the token folder and [`UpstreamOptions::private_paths`](super::UpstreamOptions) (the config
//! file, secret files, the tool cache folder). With `network: false` it has no network either.
//!
//! There is no fallback: if `bwrap` is not in `PATH`, or cannot create namespaces here (tried
//! once, with `true`, before the first sandboxed server starts), the server does not start and
//! its status says why.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::Sandbox;

/// The `bwrap` that worked once; found and tried again while it has not.
static WORKING: OnceLock<PathBuf> = OnceLock::new();

/// How long the trial run may take.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The namespaces and mounts every sandboxed server gets (and the trial run uses).
const BASE: &[&str] = &[
    // Dies with mcpo (or with the `bwrap` mcpo started): nothing outlives a crash.
    "--die-with-parent",
    // A session of its own: no TIOCSTI keystrokes into mcpo's terminal. The server then leaves
    // the process group mcpo signals, but when `bwrap` (the group leader) dies, the pid
    // namespace's first process dies with it (`--die-with-parent`), and the kernel kills every
    // other process of the namespace.
    "--new-session",
    // Run by root (a container's default), bwrap would otherwise keep root's capabilities, and
    // with them the power to unmount what covers mcpo's files or remount `/` writable.
    "--cap-drop",
    "ALL",
    "--unshare-pid",
    "--unshare-ipc",
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
];

/// The `bwrap` command line that runs `command args` in `sandbox`: its arguments, up to and
/// including `--`, before `command`. `private` are mcpo's files to cover, besides `~/.mcpo`
/// and the token folder.
pub async fn wrap(
    sandbox: &Sandbox,
    private: &[PathBuf],
    cwd: Option<&Path>,
    (command, command_args): (&str, &[String]),
) -> Result<(PathBuf, Vec<String>), String> {
    let bwrap = working_bwrap().await?;
    let mut args: Vec<String> = BASE.iter().map(|s| (*s).to_owned()).collect();
    if !sandbox.network {
        args.push("--unshare-net".to_owned());
    }
    // The private `/tmp` hides the real one, and with it a working directory, a program or a
    // script that lives there (a checkout in /tmp): those are bound back, read-only like the
    // rest of the file system, before the writable paths (which may lie inside them).
    for path in under_tmp(cwd, command, command_args) {
        let path = path.to_string_lossy().into_owned();
        args.extend(["--ro-bind".to_owned(), path.clone(), path]);
    }
    for path in &sandbox.writable {
        let real = std::fs::canonicalize(path).map_err(|e| {
            format!(
                "the writable path {} cannot be used ({e}); create it, or remove it from \"sandbox\".\"writable\"",
                path.display()
            )
        })?;
        let real = real.to_string_lossy().into_owned();
        args.extend(["--bind".to_owned(), real.clone(), real]);
    }
    // After the writable binds, so that mcpo's files stay covered even under a writable path.
    for path in hidden(private) {
        if path.is_dir() {
            args.extend(["--tmpfs".to_owned(), path.to_string_lossy().into_owned()]);
        } else {
            args.extend([
                "--ro-bind".to_owned(),
                "/dev/null".to_owned(),
                path.to_string_lossy().into_owned(),
            ]);
        }
    }
    if let Some(dir) = cwd {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        args.extend(["--chdir".to_owned(), dir.to_string_lossy().into_owned()]);
    }
    args.push("--".to_owned());
    Ok((bwrap, args))
}

/// What the server was told to use that lives under `/tmp`, which the sandbox's private `/tmp`
/// would hide: its working directory, its program's folder (found in `PATH` for a bare name)
/// and every argument that names an existing file (its folder: a script's siblings) or folder
/// there, as real paths.
fn under_tmp(cwd: Option<&Path>, command: &str, args: &[String]) -> Vec<PathBuf> {
    let program = if command.contains('/') {
        Some(PathBuf::from(command))
    } else {
        std::env::var_os("PATH").and_then(|dirs| {
            std::env::split_paths(&dirs)
                .map(|dir| dir.join(command))
                .find(|candidate| candidate.is_file())
        })
    };
    let named = program
        .into_iter()
        .chain(
            args.iter()
                .filter(|a| a.starts_with('/'))
                .map(PathBuf::from),
        )
        .filter_map(|p| {
            let p = std::path::absolute(&p).ok()?;
            if p.is_dir() {
                Some(p)
            } else if p.is_file() {
                p.parent().map(Path::to_path_buf)
            } else {
                None
            }
        });
    cwd.map(Path::to_path_buf)
        .into_iter()
        .chain(named)
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| p.starts_with("/tmp"))
        .collect()
}

/// What a sandboxed server must not see, as real (symlink-free) paths, each covered once: a
/// path inside another is left out. The folders are created (owner-only) when missing: bwrap
/// can only cover what exists, and a folder mcpo creates later would show through.
fn hidden(private: &[PathBuf]) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = Vec::new();
    if let Some(home) = dirs::home_dir() {
        folders.push(home.join(".mcpo"));
    }
    if let Ok(tokens) = crate::oauth::default_token_dir() {
        folders.push(tokens);
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    for path in folders.iter().chain(private) {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        if !path.exists() {
            // A missing private path is a folder (every file it names was read at start-up).
            let created = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path);
            if let Err(e) = created {
                // Nothing is there to hide, and mcpo cannot put anything there either.
                tracing::debug!(path = %path.display(), error = %e, "not covering a missing folder in the sandbox");
                continue;
            }
        }
        if let Ok(real) = std::fs::canonicalize(&path) {
            paths.push(real);
        }
    }
    paths.sort();
    let mut covered: Vec<PathBuf> = Vec::new();
    for path in paths {
        if !covered.iter().any(|c| path.starts_with(c)) {
            covered.push(path);
        }
    }
    covered
}

/// `bwrap` from `PATH`, once it has run a sandbox here; otherwise why not.
async fn working_bwrap() -> Result<PathBuf, String> {
    if let Some(path) = WORKING.get() {
        return Ok(path.clone());
    }
    let path = find_in_path("bwrap").ok_or_else(|| {
        "bwrap (bubblewrap) is not in PATH; install it (Debian/Ubuntu: apt-get install \
         bubblewrap) or remove \"sandbox\" from this server"
            .to_owned()
    })?;
    let trial = tokio::process::Command::new(&path)
        .args(BASE)
        .args(["--", "true"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(TRIAL_TIMEOUT, trial).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("cannot run {}: {e}", path.display())),
        Err(_) => {
            return Err(format!(
                "{} did not finish a trial sandbox within {TRIAL_TIMEOUT:?}",
                path.display()
            ));
        }
    };
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said.trim();
        return Err(format!(
            "{} cannot create namespaces here ({}{}); allow unprivileged user namespaces \
             (kernel.unprivileged_userns_clone=1, or on Ubuntu \
             kernel.apparmor_restrict_unprivileged_userns=0), or run mcpo where they are \
             allowed; the server is not started without its sandbox",
            path.display(),
            output.status,
            if said.is_empty() {
                String::new()
            } else {
                format!(": {}", said.chars().take(300).collect::<String>())
            }
        ));
    }
    let _ = WORKING.set(path.clone());
    Ok(path)
}

/// The first executable file named `name` in mcpo's `PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_private_paths_are_covered_once() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("store");
        let inner = top.join("tokens");
        let file = root.path().join("config.json");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(&file, "{}").unwrap();
        let missing = root.path().join("cache");
        let got = hidden(&[inner.clone(), top.clone(), file.clone(), missing.clone()]);
        let real = |p: &Path| std::fs::canonicalize(p).unwrap();
        assert!(got.contains(&real(&top)), "{got:?}");
        assert!(!got.contains(&real(&inner)), "{got:?}");
        assert!(got.contains(&real(&file)), "{got:?}");
        // A missing folder is created owner-only, so that it can be covered.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&missing).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(got.contains(&real(&missing)), "{got:?}");
    }
}
