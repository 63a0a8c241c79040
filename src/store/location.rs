//! `--store` (`MCPO_STORE`): where mcpo keeps what outlives a request. `file` (the default)
//! is the token folder of one machine; `redis://[user:pass@]host:port/db` or `rediss://…`
//! (TLS) is a Redis that several replicas share. The URL may carry a password, so it is
//! shown everywhere (logs, `/status`, errors) through [`Location::shown`], with the userinfo
//! hidden, and `MCPO_STORE` is removed from mcpo's environment once read.

use std::fmt;

/// The variable `--store` is read from; removed from mcpo's environment once read (it may
/// hold the Redis password), so no stdio server inherits it.
pub const STORE_ENV: &str = "MCPO_STORE";

/// The default `--store-prefix`.
pub const DEFAULT_PREFIX: &str = "mcpo:";

/// Where the store is.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// The token folder (`~/.mcpo/tokens`, `MCPO_TOKEN_DIR`).
    File,
    Redis(RedisLocation),
}

/// A Redis store: its URL, and the prefix of every key mcpo writes there.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisLocation {
    /// The URL as given (it may hold a password: never shown).
    pub url: String,
    /// Every key (records, tickets, locks) starts with it, so one Redis can serve several
    /// deployments.
    pub prefix: String,
}

impl Location {
    /// Reads `--store` and `--store-prefix`. Errors never quote a password.
    pub fn parse(store: Option<&str>, prefix: Option<&str>) -> Result<Location, String> {
        let prefix = prefix.unwrap_or(DEFAULT_PREFIX);
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "--store-prefix must be a non-empty key prefix without spaces (default \
                 `mcpo:`)"
                    .to_owned(),
            );
        }
        let Some(text) = store.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Location::File);
        };
        if text == "file" {
            return Ok(Location::File);
        }
        let shown = crate::support::redact::url(text).into_owned();
        let url = url::Url::parse(text)
            .map_err(|e| format!("--store {shown}: not a URL ({e}); expected `file`, `redis://host:port/db` or `rediss://…`"))?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(format!(
                "--store {shown}: expected `file`, `redis://[user:pass@]host:port/db` or \
                 `rediss://…` (TLS)"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("--store {shown}: the URL names no host"));
        }
        redis::IntoConnectionInfo::into_connection_info(text)
            .map_err(|_| format!("--store {shown}: not a valid Redis URL"))?;
        Ok(Location::Redis(RedisLocation {
            url: text.to_owned(),
            prefix: prefix.to_owned(),
        }))
    }
}

/// Whether `text` (a `--store` value) is a URL with a password in it.
pub fn has_password(text: &str) -> bool {
    url::Url::parse(text.trim()).is_ok_and(|u| u.password().is_some_and(|p| !p.is_empty()))
}

impl RedisLocation {
    /// The URL without its userinfo, query or fragment: for logs, `/status` and errors.
    pub fn shown(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return "redis".to_owned();
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        url.to_string()
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("File"),
            Location::Redis(r) => f
                .debug_struct("Redis")
                .field("url", &r.shown())
                .field("prefix", &r.prefix)
                .finish(),
        }
    }
}

impl fmt::Debug for RedisLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (prefix {})", self.shown(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_redis_and_mistakes() {
        assert_eq!(Location::parse(None, None).unwrap(), Location::File);
        assert_eq!(Location::parse(Some("file"), None).unwrap(), Location::File);
        let Location::Redis(r) =
            Location::parse(Some("redis://u:hunter2@127.0.0.1:6380/2"), Some("a:")).unwrap()
        else {
            panic!("not redis");
        };
        assert_eq!(r.prefix, "a:");
        assert_eq!(r.shown(), "redis://127.0.0.1:6380/2");
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(Location::parse(Some("rediss://h:6379"), None).is_ok());
        for bad in ["postgres://u:hunter2@h/db", "redis://", "nonsense"] {
            let err = Location::parse(Some(bad), None).unwrap_err();
            assert!(err.contains("--store"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(Location::parse(None, Some("")).is_err());
        assert!(Location::parse(None, Some("a b")).is_err());
    }
}
