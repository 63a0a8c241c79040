//! What web pages may make a browser do with mcpo. Any page the user visits can send requests
//! to mcpo through the user's browser (with the HTTP Basic password it cached, or to a mcpo
//! without an API key), so:
//!
//! - **Host check** (`--allowed-hosts`, on by default when listening on loopback): a page on a
//!   domain that resolves to 127.0.0.1 (DNS rebinding) reaches a loopback mcpo as its own
//!   origin, with its own name as `Host`; requests naming a host mcpo is not known by get 421.
//! - **Cross-origin refusal**: a request whose `Origin` is neither mcpo's own nor allowed
//!   (`--cors-allow-origins`, the origins of `--public-url` and `--webui-url`) is refused with
//!   403 when it could change something (any method but GET, HEAD and OPTIONS): a tool call
//!   sent as a "simple" request (a `text/plain` POST) needs no preflight, so the browser's CORS
//!   check alone would not stop it from running. `Origin: null` is never allowed.
//! - **CORS headers** only for allowed origins: credentials for those listed, none for `*`
//!   (never an arbitrary origin mirrored with credentials); no CORS at all by default.
//!
//! The web login's "Continue" form checks its origin itself and answers with a page
//! ([`super::login::CONFIRM_ROUTE`]), and so does the credentials page's form
//! ([`super::credentials::PAGE_ROUTE`]).
//!
//! `X-Forwarded-Host`/`-Proto` are read (to tell mcpo's own origin) only with
//! `--trust-forwarded-headers`.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use super::error::ApiError;
use crate::config::{AllowedHosts, ServeOptions};

/// The browser rules of one mcpo, built once from its options.
pub struct Policy {
    hosts: AllowedHosts,
    /// Origins given explicitly (and those of `--public-url`, `--webui-url`): credentials
    /// allowed.
    origins: Vec<String>,
    /// `*` was given: any other origin but `null`, without credentials.
    any_origin: bool,
    trust_forwarded: bool,
    tls: bool,
}

impl Policy {
    pub fn new(options: &ServeOptions) -> Arc<Self> {
        let (any, listed): (Vec<&String>, Vec<&String>) = options
            .cors_allow_origins
            .iter()
            .partition(|o| o.as_str() == "*");
        Arc::new(Self {
            hosts: options.allowed_hosts.clone(),
            origins: listed.into_iter().cloned().collect(),
            any_origin: !any.is_empty(),
            trust_forwarded: options.trust_forwarded_headers,
            tls: options.tls.is_some(),
        })
    }

    /// Whether `host` (a `Host` header: `name[:port]`) is one mcpo answers to.
    fn host_allowed(&self, host: &str) -> bool {
        let AllowedHosts::Only(allowed) = &self.hosts else {
            return true;
        };
        // Compared without a lower-cased copy: this runs on every request of a loopback mcpo.
        let (name, port) = split_port(host.trim());
        // `localhost.` is `localhost` to DNS.
        let name = name.strip_suffix('.').unwrap_or(name);
        allowed.iter().any(|entry| {
            let (entry_name, entry_port) = split_port(entry);
            entry_name.eq_ignore_ascii_case(name) && entry_port.is_none_or(|p| Some(p) == port)
        })
    }

    /// `origin` (an `Origin` header) is allowed to call and read answers.
    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        match normalized_origin(origin) {
            Some(origin) => self.any_origin || self.origins.contains(&origin),
            None => false,
        }
    }

    /// `origin` was listed explicitly: its pages may send cookies and `Authorization`.
    fn credentials_allowed(&self, origin: &HeaderValue) -> bool {
        normalized_origin(origin).is_some_and(|o| self.origins.contains(&o))
    }

    /// The request comes from a page of mcpo itself: the browser says so (`Sec-Fetch-Site`,
    /// which pages cannot set), or `Origin` is the origin the request was sent to.
    fn same_origin(&self, headers: &HeaderMap, uri: &Uri, origin: &HeaderValue) -> bool {
        if headers
            .get("sec-fetch-site")
            .is_some_and(|s| s.as_bytes() == b"same-origin")
        {
            return true;
        }
        let forwarded = |name: &str| {
            self.trust_forwarded
                .then(|| first_value(headers, name))
                .flatten()
        };
        let scheme = forwarded("x-forwarded-proto")
            .filter(|p| matches!(*p, "http" | "https"))
            .unwrap_or(if self.tls { "https" } else { "http" });
        let Some(host) = forwarded("x-forwarded-host").or_else(|| request_host(headers, uri))
        else {
            return false;
        };
        let ours = url::Url::parse(&format!("{scheme}://{host}"))
            .map(|u| u.origin().ascii_serialization());
        matches!((ours, normalized_origin(origin)), (Ok(ours), Some(theirs)) if ours == theirs)
    }

    fn refusal_for_host(&self, host: &str) -> ApiError {
        let known = match &self.hosts {
            AllowedHosts::Only(hosts) => hosts.join(", "),
            AllowedHosts::Any => String::new(),
        };
        ApiError::MisdirectedRequest(format!(
            "this mcpo does not answer requests addressed to '{}' (it answers {known}); if that \
             is a name of this machine, add it with --allowed-hosts (MCPO_ALLOWED_HOSTS)",
            host.escape_debug()
        ))
    }
}

/// Refuses requests addressed to an unknown host, and cross-origin requests that could change
/// something; see the module's documentation.
pub async fn guard(State(policy): State<Arc<Policy>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(host) = request_host(headers, request.uri())
        && !policy.host_allowed(host)
    {
        tracing::warn!(host = %host.escape_debug(), "refused a request for an unknown host");
        return policy.refusal_for_host(host).into_response();
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || request.extensions().get::<MatchedPath>().is_some_and(|p| {
        p.as_str() == super::login::CONFIRM_ROUTE || p.as_str() == super::credentials::PAGE_ROUTE
    });
    if let Some(origin) = headers.get(header::ORIGIN)
        && !safe
        && !policy.origin_allowed(origin)
        && !policy.same_origin(headers, request.uri(), origin)
    {
        let shown = String::from_utf8_lossy(origin.as_bytes())
            .escape_debug()
            .to_string();
        tracing::warn!(origin = %shown, path = %request.uri().path(), "refused a cross-origin request");
        return ApiError::Forbidden(format!(
            "cross-origin request from '{shown}' refused: browsers may call mcpo only from its \
             own pages and the origins given with --cors-allow-origins (MCPO_CORS_ALLOW_ORIGINS)"
        ))
        .into_response();
    }
    next.run(request).await
}

/// The CORS layer for the allowed origins; `None` (no CORS headers at all) when there are none.
pub fn cors(policy: &Arc<Policy>) -> Option<CorsLayer> {
    if policy.origins.is_empty() && !policy.any_origin {
        return None;
    }
    let allowed = policy.clone();
    let credentials = policy.clone();
    let allow_headers = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        HeaderName::from_static("x-session-id"),
        HeaderName::from_static("x-openwebui-user-jwt"),
    ];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                allowed.origin_allowed(origin)
            }))
            .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                credentials.credentials_allowed(origin)
            }))
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers(allow_headers)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// `Origin` as `scheme://host[:port]` (lowercase, default port left out), the way
/// `--cors-allow-origins` entries are kept; `None` for `null` and anything unparsable.
fn normalized_origin(origin: &HeaderValue) -> Option<String> {
    let text = origin.to_str().ok()?;
    let url = url::Url::parse(text).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The host a request is addressed to: `Host` (HTTP/1.1), else the URI's authority (HTTP/2).
fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `name[:port]` split; an IPv6 address keeps its brackets.
fn split_port(host: &str) -> (&str, Option<&str>) {
    let after_name = if host.starts_with('[') {
        host.find(']').map_or(host.len(), |i| i + 1)
    } else {
        host.find(':').unwrap_or(host.len())
    };
    let (name, rest) = host.split_at(after_name);
    (name, rest.strip_prefix(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], origins: &[&str]) -> Policy {
        Policy {
            hosts: AllowedHosts::Only(hosts.iter().map(|h| h.to_string()).collect()),
            origins: origins.iter().map(|o| o.to_string()).collect(),
            any_origin: false,
            trust_forwarded: false,
            tls: false,
        }
    }

    #[test]
    fn hosts_match_by_name_and_port_when_given() {
        let p = policy(
            &["localhost", "127.0.0.1", "[::1]", "mcpo.example:8443"],
            &[],
        );
        for ok in [
            "localhost:8000",
            "LOCALHOST",
            "localhost.:1",
            "127.0.0.1:9",
            "[::1]:8000",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "localhost.evil.example",
            "mcpo.example",
            "[::2]:8000",
        ] {
            assert!(!p.host_allowed(refused), "{refused}");
        }
        assert!(p.host_allowed("mcpo.example:8443"));
        assert!(!p.host_allowed("mcpo.example:8444"));
    }

    #[test]
    fn null_and_unlisted_origins_are_not_allowed() {
        let p = policy(&[], &["https://webui.example"]);
        let o = |s: &'static str| HeaderValue::from_static(s);
        assert!(p.origin_allowed(&o("https://webui.example")));
        assert!(p.origin_allowed(&o("https://WEBUI.example:443")));
        assert!(!p.origin_allowed(&o("https://webui.example:8443")));
        assert!(!p.origin_allowed(&o("null")));
        let any = Policy {
            any_origin: true,
            ..policy(&[], &["https://webui.example"])
        };
        assert!(any.origin_allowed(&o("https://other.example")));
        assert!(!any.credentials_allowed(&o("https://other.example")));
        assert!(any.credentials_allowed(&o("https://webui.example")));
        assert!(!any.origin_allowed(&o("null")));
    }
}
