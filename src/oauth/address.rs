//! Which addresses mcpo's own OAuth requests may reach: the policy rmcp applies to the
//! requests its `AuthorizationManager` makes (code exchange, refresh), applied to those mcpo
//! makes itself (discovery probes, registration, the client-credentials grant with a signed
//! assertion, revocation), so a discovered endpoint cannot point them anywhere rmcp would
//! refuse to go.
//!
//! The rule, relative to the server's MCP endpoint (the "base"), as rmcp's
//! `new_allowing_private_addresses` has it:
//! - public addresses: allowed;
//! - private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): allowed, since mcpo
//!   bridges internal servers whose authorization server is on the same network;
//! - loopback (127/8, ::1, `localhost`): only when the base itself is loopback;
//! - everything else (unspecified `0.0.0.0`/`::`, 0/8, link-local 169.254/16 with the cloud
//!   instance-metadata address, fe80::/10, broadcast, multicast, 198.18/15, Teredo and the
//!   IPv4-in-IPv6 forms of all these) and the cloud-metadata host names: never.
//!
//! A name is resolved once and only its allowed addresses are connected to (no rebinding
//! between check and connect); the base's own IP literal is always allowed; the hosts of
//! configured proxies (`HTTP(S)_PROXY`, `ALL_PROXY`) are not filtered, as the proxy resolves
//! the target.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

const CLOUD_METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.azure.internal",
];

const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    Loopback,
    Private,
    Blocked,
}

/// The address policy for one server's OAuth requests.
#[derive(Debug, Clone)]
pub(crate) struct AddressPolicy {
    base_ip: Option<IpAddr>,
    loopback: bool,
    unfiltered_hosts: Arc<[String]>,
}

impl AddressPolicy {
    /// The policy for requests on behalf of the MCP endpoint `base`.
    pub fn for_base(base: &Url) -> AddressPolicy {
        let loopback = match base.host() {
            Some(Host::Domain(name)) => is_localhost_name(name),
            Some(Host::Ipv4(ip)) => class(IpAddr::V4(ip)) == Class::Loopback,
            Some(Host::Ipv6(ip)) => class(IpAddr::V6(ip)) == Class::Loopback,
            None => false,
        };
        let unfiltered_hosts = PROXY_VARIABLES
            .iter()
            .filter_map(|var| std::env::var(var).ok())
            .filter_map(|proxy| {
                let proxy = if proxy.contains("://") {
                    proxy
                } else {
                    format!("http://{proxy}")
                };
                Url::parse(&proxy).ok()?.host_str().map(normalize)
            })
            .collect();
        AddressPolicy {
            base_ip: literal_ip(base),
            loopback,
            unfiltered_hosts,
        }
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        match class(ip) {
            Class::Public | Class::Private => true,
            Class::Loopback => self.loopback,
            Class::Blocked => false,
        }
    }

    /// Checks what can be checked before connecting: the scheme, a cloud-metadata host name,
    /// an IP literal (which is connected to without resolving). `Err` says why not.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("'{}:' is not an HTTP URL", url.scheme()));
        }
        match url.host() {
            None => Err("the URL has no host".to_owned()),
            Some(Host::Domain(name)) => {
                let name = normalize(name);
                if CLOUD_METADATA_HOSTS.contains(&name.as_str()) {
                    Err(format!("'{name}' is a cloud instance-metadata host"))
                } else if is_localhost_name(&name) && !self.loopback {
                    Err(format!("'{name}' is loopback and the MCP endpoint is not"))
                } else {
                    Ok(())
                }
            }
            Some(_) => match literal_ip(url) {
                Some(ip) if self.base_ip == Some(ip) || self.allows_ip(ip) => Ok(()),
                Some(ip) => Err(refused_ip(ip, self.loopback)),
                None => Ok(()),
            },
        }
    }
}

fn refused_ip(ip: IpAddr, loopback_allowed: bool) -> String {
    match class(ip) {
        Class::Loopback if !loopback_allowed => {
            format!("{ip} is loopback and the MCP endpoint is not")
        }
        _ => format!(
            "{ip} is not a public, private or (for a loopback MCP endpoint) loopback address"
        ),
    }
}

/// The resolver mcpo's OAuth client connects through: a name's refused addresses are
/// dropped, and a name with none left fails to resolve.
impl Resolve for AddressPolicy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = normalize(name.as_str());
            let lookup = host.clone();
            let resolved: Vec<SocketAddr> = tokio::task::spawn_blocking(move || {
                (lookup.as_str(), 0)
                    .to_socket_addrs()
                    .map(Iterator::collect)
            })
            .await??;
            if policy.unfiltered_hosts.contains(&host) {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| policy.allows_ip(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "no address of '{host}' is allowed for OAuth requests (link-local, \
                     cloud-metadata, unspecified and other reserved addresses never are; \
                     loopback only for a loopback MCP endpoint)"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_localhost_name(name: &str) -> bool {
    let name = normalize(name);
    name == "localhost" || name.ends_with(".localhost")
}

/// rmcp's classification (`metadata_resolver::AddressClass`), IPv4 embedded in IPv6 included.
fn class(ip: IpAddr) -> Class {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let octets = v4.octets();
            if !is_special_ipv4(v4) {
                Class::Public
            } else if v4.is_loopback() {
                Class::Loopback
            } else if v4.is_private() || (octets[0] == 100 && (64..=127).contains(&octets[1])) {
                Class::Private
            } else {
                Class::Blocked
            }
        }
        IpAddr::V6(v6) => {
            if !is_special_ipv6(v6) {
                Class::Public
            } else if v6.is_loopback() {
                Class::Loopback
            } else if (v6.segments()[0] & 0xfe00) == 0xfc00 {
                Class::Private
            } else {
                Class::Blocked
            }
        }
    }
}

fn is_special_ipv4(addr: Ipv4Addr) -> bool {
    let octets = addr.octets();
    addr.is_private()
        || addr.is_loopback()
        || addr.is_link_local()
        || addr.is_broadcast()
        || addr.is_unspecified()
        || addr.is_multicast()
        || octets[0] == 0
        || (octets[0] == 100 && (64..=127).contains(&octets[1]))
        || (octets[0] == 198 && matches!(octets[1], 18 | 19))
}

/// The IPv4 address inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 addresses.
fn embedded_ipv4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let [a, b, c, d, e, f, g, h] = addr.segments();
    let low = Ipv4Addr::from((u32::from(g) << 16) | u32::from(h));
    match [a, b, c, d, e, f] {
        [0, 0, 0, 0, 0, 0xffff] | [0x64, 0xff9b, 0, 0, 0, 0] => Some(low),
        [0, 0, 0, 0, 0, 0] if !addr.is_loopback() && !addr.is_unspecified() => Some(low),
        [0x2002, ..] => Some(Ipv4Addr::from((u32::from(b) << 16) | u32::from(c))),
        _ => None,
    }
}

fn is_special_ipv6(addr: Ipv6Addr) -> bool {
    if let Some(embedded) = embedded_ipv4(addr) {
        return is_special_ipv4(embedded);
    }
    let segments = addr.segments();
    addr.is_loopback()
        || addr.is_unspecified()
        || addr.is_multicast()
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xfe00) == 0xfc00
        || segments[..2] == [0x2001, 0]
        || segments[..3] == [0x64, 0xff9b, 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(base: &str, url: &str) -> bool {
        AddressPolicy::for_base(&Url::parse(base).unwrap())
            .check_url(&Url::parse(url).unwrap())
            .is_ok()
    }

    #[test]
    fn classes_match_rmcp() {
        let c = |ip: &str| class(ip.parse().unwrap());
        assert_eq!(c("93.184.216.34"), Class::Public);
        assert_eq!(c("127.0.0.1"), Class::Loopback);
        assert_eq!(c("::ffff:127.0.0.1"), Class::Loopback);
        assert_eq!(c("10.0.0.9"), Class::Private);
        assert_eq!(c("100.64.0.1"), Class::Private);
        assert_eq!(c("fd00::1"), Class::Private);
        assert_eq!(c("169.254.169.254"), Class::Blocked);
        assert_eq!(c("::ffff:169.254.169.254"), Class::Blocked);
        assert_eq!(c("fe80::1"), Class::Blocked);
        assert_eq!(c("0.0.0.0"), Class::Blocked);
        assert_eq!(c("::"), Class::Blocked);
        assert_eq!(c("2001:0:4136:e378::1"), Class::Blocked);
    }

    #[test]
    fn literals_and_names_follow_the_policy() {
        let public = "https://mcp.example.com/mcp";
        let local = "http://127.0.0.1:9/mcp";
        assert!(allowed(public, "https://auth.example.com/token"));
        assert!(allowed(public, "https://10.0.0.9/token"));
        assert!(!allowed(public, "http://127.0.0.1:9/token"));
        assert!(!allowed(public, "http://localhost:9/token"));
        assert!(!allowed(public, "http://169.254.169.254/latest/meta-data/"));
        assert!(!allowed(public, "http://metadata.google.internal/"));
        assert!(!allowed(public, "file:///etc/passwd"));
        assert!(allowed(local, "http://127.0.0.1:10/register"));
        assert!(allowed(local, "http://localhost:10/register"));
        assert!(!allowed(local, "http://0.0.0.0:10/register"));
        assert!(!allowed(local, "http://[::]:10/register"));
        assert!(!allowed(local, "http://[fe80::1]:10/register"));
        // The base's own literal, whatever its class.
        assert!(allowed("http://0.0.0.0:9/mcp", "http://0.0.0.0:9/register"));
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let public = AddressPolicy::for_base(&Url::parse("https://mcp.example.com/").unwrap());
        let err = public.resolve("localhost".parse().unwrap()).await;
        assert!(err.is_err());
        let local = AddressPolicy::for_base(&Url::parse("http://localhost:9/").unwrap());
        let addrs: Vec<_> = local
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
