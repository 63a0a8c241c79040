//! The environment a stdio server starts with: its own `env` from the config, over an
//! allow-list of mcpo's environment, not all of it. mcpo's environment holds the `${VAR}`
//! secrets of every other server (a GitHub token, a database URL); a server that runs
//! arbitrary code, or just logs its environment, would hand them all out. The MCP SDKs' stdio
//! clients do the same (Python's `get_default_environment`, TypeScript's
//! `getDefaultEnvironment`: HOME, LOGNAME, PATH, SHELL, TERM, USER); the list here adds what
//! `npx`, `uvx`, Node and Python need to find their caches, locale, time zone, temporary folder,
//! proxy and CA certificates. `inherit_env: true` on a server gives it everything instead
//! (mcpo's own secrets excepted: `config::secrets` removed them from the environment).

use std::ffi::OsString;
use std::sync::OnceLock;

/// Variables passed through by name.
pub const PASSED: &[&str] = &[
    // The MCP SDKs' list.
    "HOME",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "USER",
    // Locale and time zone (`LC_*` too, below).
    "LANG",
    "LANGUAGE",
    "TZ",
    // Temporary files.
    "TMPDIR",
    "TMP",
    "TEMP",
    // Where tools keep caches and settings (npm, uv, pip follow these).
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    // Outbound proxies, both spellings.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    // Extra CA certificates (OpenSSL, Node, Python requests, curl).
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
];

/// Variables passed through by prefix.
pub const PASSED_PREFIXES: &[&str] = &["LC_"];

/// Names `--env` / `--env-path` set: meant for every server, so passed through too.
static FROM_FLAGS: OnceLock<Vec<String>> = OnceLock::new();

/// Records the variables `--env` / `--env-path` set (once, at start-up).
pub fn pass_also(names: Vec<String>) {
    let _ = FROM_FLAGS.set(names);
}

/// Whether mcpo's variable `name` (with `value`) goes to a server without `inherit_env`.
fn passed(name: &str, value: &OsString) -> bool {
    // A shell function exported by bash (`() { …`), as the Python SDK skips: Shellshock.
    if value.as_encoded_bytes().starts_with(b"()") {
        return false;
    }
    PASSED.contains(&name)
        || PASSED_PREFIXES.iter().any(|p| name.starts_with(p))
        || FROM_FLAGS
            .get()
            .is_some_and(|names| names.iter().any(|n| n == name))
}

/// The allow-listed part of mcpo's environment, for a server without `inherit_env`.
pub fn allowed() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, value)| name.to_str().is_some_and(|name| passed(name, value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_names_pass() {
        let v = |s: &str| OsString::from(s);
        assert!(passed("PATH", &v("/usr/bin")));
        assert!(passed("LC_ALL", &v("C.UTF-8")));
        assert!(passed("https_proxy", &v("http://proxy:3128")));
        assert!(!passed("GITHUB_TOKEN", &v("ghp_x")));
        assert!(!passed("DATABASE_URL", &v("postgres://u:p@db/x")));
        assert!(!passed("WEBUI_SECRET_KEY", &v("k")));
        assert!(!passed("HOME", &v("() { :; }; echo pwned")));
    }
}
