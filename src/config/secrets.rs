//! mcpo's own secrets: the API key callers must send (`MCPO_API_KEY`), Open WebUI's
//! `WEBUI_SECRET_KEY` (whoever holds it can mint an Open WebUI admin session) and its
//! `FORWARD_USER_INFO_HEADER_JWT_SECRET`.
//!
//! Each comes from its flag, its variable, or a file named by `--…-file` / `…_FILE` (Docker
//! and Kubernetes secrets are files; a value on the command line is readable by every local
//! user in `/proc/PID/cmdline`). Once read, the variables are removed from mcpo's environment
//! and their bytes overwritten where the kernel shows them (`/proc/PID/environ` is the
//! environment mcpo was started with, not what is left of it): a stdio server, even one
//! started with `inherit_env`, or anything else that can read mcpo's process, finds none of
//! them. The values are kept here for the config loader (`${WEBUI_SECRET_KEY}`, the global
//! secret of multi-user servers), at start-up and on every reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::error::{COMMAND_LINE, ConfigError, Problem};
use crate::cli::Cli;

/// Where one secret may come from.
struct Source {
    flag: &'static str,
    var: &'static str,
    file_flag: &'static str,
    file_var: &'static str,
}

const API_KEY: Source = Source {
    flag: "--api-key",
    var: "MCPO_API_KEY",
    file_flag: "--api-key-file",
    file_var: "MCPO_API_KEY_FILE",
};

const WEBUI_SECRET_KEY: Source = Source {
    flag: "--webui-secret-key",
    var: "WEBUI_SECRET_KEY",
    file_flag: "--webui-secret-key-file",
    file_var: "WEBUI_SECRET_KEY_FILE",
};

const USER_JWT_SECRET: Source = Source {
    flag: "--webui-user-jwt-secret",
    var: "FORWARD_USER_INFO_HEADER_JWT_SECRET",
    file_flag: "--webui-user-jwt-secret-file",
    file_var: "FORWARD_USER_INFO_HEADER_JWT_SECRET_FILE",
};

/// Every variable that holds one of mcpo's secrets or names its file: removed from mcpo's
/// environment once read, and never given to a stdio server. `MCPO_STORE` among them: a
/// Redis URL may carry the Redis password (clap has read it into `--store` by then).
pub const VARIABLES: [&str; 7] = [
    API_KEY.var,
    API_KEY.file_var,
    WEBUI_SECRET_KEY.var,
    WEBUI_SECRET_KEY.file_var,
    USER_JWT_SECRET.var,
    USER_JWT_SECRET.file_var,
    crate::store::location::STORE_ENV,
];

/// A secret shorter than this is easy to guess (or brute-force offline from one signed JWT).
pub const MIN_SECRET_BYTES: usize = 16;

/// The secrets' values by variable name, once [`resolve`] has read them.
static KEPT: OnceLock<BTreeMap<&'static str, String>> = OnceLock::new();

/// Reads the three secrets into `cli` (`api_key`, `webui_secret_key`, `webui_user_jwt_secret`)
/// from, in order: the flag or variable clap saw, the variable as `--env`/`--env-path` left it
/// (`env`), and the file named by `--…-file` or `…_FILE`. A secret given both as a value and as
/// a file is an error, as is a file that cannot be read or is empty. Keeps the values for
/// [`lookup`]. Call once, before [`remove_from_env`].
pub fn resolve(cli: &mut Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    let mut read = |source: &Source, value: Option<String>, file: Option<PathBuf>| {
        read_secret(source, value, file, env).unwrap_or_else(|problem| {
            problems.push(problem);
            None
        })
    };
    // The file names stay: sandboxed servers must not see those files (`from_cli`).
    cli.api_key = read(&API_KEY, cli.api_key.take(), cli.api_key_file.clone());
    cli.webui_secret_key = read(
        &WEBUI_SECRET_KEY,
        cli.webui_secret_key.take(),
        cli.webui_secret_key_file.clone(),
    );
    cli.webui_user_jwt_secret = read(
        &USER_JWT_SECRET,
        cli.webui_user_jwt_secret.take(),
        cli.webui_user_jwt_secret_file.clone(),
    );
    if !problems.is_empty() {
        return Err(ConfigError::Invalid { problems });
    }
    let kept = [
        (API_KEY.var, &cli.api_key),
        (WEBUI_SECRET_KEY.var, &cli.webui_secret_key),
        (USER_JWT_SECRET.var, &cli.webui_user_jwt_secret),
    ]
    .into_iter()
    .filter_map(|(var, value)| Some((var, value.clone()?)))
    .collect();
    let _ = KEPT.set(kept);
    Ok(())
}

fn read_secret(
    source: &Source,
    value: Option<String>,
    file: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Problem> {
    let value = value.or_else(|| env(source.var));
    let file = file.or_else(|| {
        env(source.file_var)
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
    });
    let problem =
        |message: String| Problem::new(COMMAND_LINE, None, Some(source.file_flag), message);
    match (value, file) {
        (Some(_), Some(_)) => Err(problem(format!(
            "and {} / {} both give the secret: keep one (the file, so the value stays off the \
             command line and out of the environment)",
            source.flag, source.var
        ))),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => read_file(&path).map(Some).map_err(problem),
        (None, None) => Ok(None),
    }
}

/// The file's text without its final line break (files written by `echo` or an editor end
/// with one; a secret never does).
fn read_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let secret = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret.to_owned())
}

/// Why `secret` is weak (shorter than [`MIN_SECRET_BYTES`], or only whitespace), if it is.
pub fn weakness(secret: &str) -> Option<String> {
    if secret.trim().is_empty() {
        Some("is only whitespace".to_owned())
    } else if secret.len() < MIN_SECRET_BYTES {
        Some(format!(
            "is {} bytes long: at least {MIN_SECRET_BYTES} random bytes are needed (for \
             example `openssl rand -hex 32`)",
            secret.len()
        ))
    } else {
        None
    }
}

/// `name` from the process environment, or, for a secret's variable that [`resolve`] read
/// and [`remove_from_env`] removed, its kept value: the config file may still say
/// `${WEBUI_SECRET_KEY}`, and the global secret of multi-user servers is looked up this way.
pub fn lookup(name: &str) -> Option<String> {
    KEPT.get()
        .and_then(|kept| kept.get(name).cloned())
        .or_else(|| std::env::var(name).ok())
}

/// Removes [`VARIABLES`] from mcpo's environment and overwrites their bytes, so neither a
/// child nor `/proc/PID/environ` shows them (see the module doc).
///
/// # Safety
///
/// Changes the environment and writes to its strings: no other thread may exist (call it from
/// `main`, right after [`resolve`], before the runtime starts).
pub unsafe fn remove_from_env() {
    for name in VARIABLES {
        #[cfg(target_os = "linux")]
        // SAFETY: single-threaded, as the caller guarantees.
        let entries = unsafe { entries_of(name) };
        // SAFETY: single-threaded, as the caller guarantees.
        unsafe { std::env::remove_var(name) };
        #[cfg(target_os = "linux")]
        for (entry, len) in entries {
            // SAFETY: `entry` is a `NAME=value` string of the environment that glibc no longer
            // points to (it never frees environment strings); `len` is its length.
            unsafe { std::ptr::write_bytes(entry, 0, len) };
        }
    }
}

/// The `NAME=value` strings of `name` in the C environment, with their lengths.
///
/// # Safety
///
/// Reads `environ`: no other thread may change the environment meanwhile.
#[cfg(target_os = "linux")]
unsafe fn entries_of(name: &str) -> Vec<(*mut u8, usize)> {
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let mut found = Vec::new();
    // SAFETY: `environ` is a null-terminated array of C strings (or null), per POSIX.
    let mut entry = unsafe { *std::ptr::addr_of!(environ) };
    if entry.is_null() {
        return found;
    }
    loop {
        // SAFETY: within the array, up to and including its terminating null.
        let text = unsafe { *entry };
        if text.is_null() {
            return found;
        }
        // SAFETY: every entry is a NUL-terminated string.
        let bytes = unsafe { std::ffi::CStr::from_ptr(text) }.to_bytes();
        if bytes.len() > name.len()
            && bytes.starts_with(name.as_bytes())
            && bytes[name.len()] == b'='
        {
            found.push((text.cast::<u8>(), bytes.len()));
        }
        // SAFETY: not past the terminating null, which ended the loop above.
        entry = unsafe { entry.add(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_comes_from_one_place_and_files_lose_their_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-the-file-0123456789\n").unwrap();
        let none = |_: &str| None;
        assert_eq!(
            read_secret(&API_KEY, None, Some(file.clone()), &none).unwrap(),
            Some("from-the-file-0123456789".to_owned())
        );
        let file_var =
            |name: &str| (name == "MCPO_API_KEY_FILE").then(|| file.display().to_string());
        assert_eq!(
            read_secret(&API_KEY, None, None, &file_var)
                .unwrap()
                .as_deref(),
            Some("from-the-file-0123456789")
        );
        let both = read_secret(&API_KEY, Some("v".into()), Some(file.clone()), &none).unwrap_err();
        assert_eq!(both.field.as_deref(), Some("--api-key-file"));
        assert!(
            both.message.contains("--api-key / MCPO_API_KEY"),
            "{}",
            both.message
        );
        std::fs::write(&file, "\r\n").unwrap();
        let empty = read_secret(&API_KEY, None, Some(file), &none).unwrap_err();
        assert!(empty.message.ends_with("is empty"), "{}", empty.message);
        let missing =
            read_secret(&API_KEY, None, Some(dir.path().join("nope")), &none).unwrap_err();
        assert!(
            missing.message.contains("cannot read"),
            "{}",
            missing.message
        );
        let var = |name: &str| (name == "MCPO_API_KEY").then(|| "from-env".to_owned());
        assert_eq!(
            read_secret(&API_KEY, None, None, &var).unwrap().as_deref(),
            Some("from-env")
        );
    }

    #[test]
    fn short_or_blank_secrets_are_weak() {
        assert!(weakness("0123456789abcdef").is_none());
        assert!(weakness("short").unwrap().contains("5 bytes"));
        assert!(
            weakness("                    ")
                .unwrap()
                .contains("whitespace")
        );
    }
}
