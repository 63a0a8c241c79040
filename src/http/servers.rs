//! The set of routed servers, swapped whole on hot reload.
//!
//! Handlers take a snapshot (`Arc<Servers>`) and use it for the whole request, so a reload never
//! changes the ground under an in-flight call; an unchanged server keeps its `ServerEntry` (and
//! so its session and in-flight calls) across reloads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::catalog::{ServerEntry, SpecContext};
use crate::config::{Config, ServerConfig};
use crate::upstream::{Upstream, UpstreamOptions};

/// Servers by name, plus their config order for listings.
#[derive(Default)]
pub struct Servers {
    map: HashMap<String, Arc<ServerEntry>>,
    order: Vec<String>,
}

impl Servers {
    pub fn get(&self, name: &str) -> Option<&Arc<ServerEntry>> {
        self.map.get(name)
    }

    /// In config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ServerEntry>> {
        self.order.iter().filter_map(|n| self.map.get(n))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What a reload changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Owns the live set and the options new upstreams are started with.
pub struct Registry {
    current: RwLock<Arc<Servers>>,
    options: UpstreamOptions,
    spec: Arc<SpecContext>,
    /// Serialises reloads (file watcher and SIGHUP may race).
    reload_lock: tokio::sync::Mutex<()>,
}

impl Registry {
    /// Starts every configured server (each connects in the background).
    pub fn start(config: Config, options: UpstreamOptions, spec: Arc<SpecContext>) -> Self {
        let servers = build(config.servers, &HashMap::new(), &options, &spec).0;
        Self {
            current: RwLock::new(Arc::new(servers)),
            options,
            spec,
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn snapshot(&self) -> Arc<Servers> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies a new, already validated config: added servers start, removed ones stop (their
    /// routes answer 404 at once), changed ones restart, unchanged ones are kept as they are.
    pub async fn reload(&self, config: Config) -> ReloadSummary {
        let _guard = self.reload_lock.lock().await;
        let old = self.snapshot();
        let (servers, mut summary) = build(config.servers, &old.map, &self.options, &self.spec);
        let removed: Vec<Arc<ServerEntry>> = old
            .iter()
            .filter(|e| match servers.map.get(e.name()) {
                Some(new) => !Arc::ptr_eq(new, e),
                None => true,
            })
            .cloned()
            .collect();
        summary.removed = old
            .iter()
            .filter(|e| !servers.map.contains_key(e.name()))
            .map(|e| e.name().to_owned())
            .collect();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(servers);
        // Stop replaced servers after the swap, so new requests already see the new set.
        futures::future::join_all(removed.iter().map(|e| e.shutdown())).await;
        summary
    }

    /// Stops every upstream (sessions and child processes) in parallel.
    pub async fn shutdown(&self) {
        let servers = self.snapshot();
        futures::future::join_all(servers.iter().map(|e| e.shutdown())).await;
    }
}

/// The new set: entries whose config did not change are reused from `old`.
fn build(
    configs: Vec<ServerConfig>,
    old: &HashMap<String, Arc<ServerEntry>>,
    options: &UpstreamOptions,
    spec: &Arc<SpecContext>,
) -> (Servers, ReloadSummary) {
    let mut servers = Servers::default();
    let mut summary = ReloadSummary::default();
    for config in configs {
        let name = config.name.clone();
        let entry = match old.get(&name) {
            Some(existing) if existing.upstream.config == config => {
                summary.unchanged.push(name.clone());
                existing.clone()
            }
            previous => {
                if previous.is_some() {
                    summary.changed.push(name.clone());
                } else {
                    summary.added.push(name.clone());
                }
                let upstream = Upstream::start(config.clone(), options.clone());
                match config.multi_user.clone() {
                    Some(multi) => {
                        if config.oauth.is_some() {
                            never_connect(&upstream);
                        }
                        ServerEntry::new_multi(upstream, multi, options.clone(), spec.clone())
                    }
                    None => Arc::new(ServerEntry::new(upstream)),
                }
            }
        };
        servers.order.push(name.clone());
        servers.map.insert(name, entry);
    }
    (servers, summary)
}

/// A multi-user OAuth server has no shared session (every user connects with their own
/// tokens), so its server-level upstream must never try: that would be a login on the
/// daemon's side (a browser window, a loopback callback port) or a session on whatever
/// shared token file lies around. Asking it to stop before its supervisor first runs does
/// that: the request is remembered, and the supervisor looks at it (biased) before it
/// authorizes or connects.
fn never_connect(upstream: &Upstream) {
    use futures::FutureExt;
    // The first poll makes the request; the wait for `Stopped` that follows is not needed.
    let _ = upstream.shutdown().now_or_never();
}
