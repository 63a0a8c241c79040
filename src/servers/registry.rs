//! The live set of served servers, swapped whole on hot reload.
//!
//! Handlers take a snapshot (`Arc<Servers>`) and use it for the whole request, so a reload never
//! changes the ground under an in-flight call; an unchanged server keeps its [`Server`] (and so
//! its sessions and in-flight calls) across reloads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::catalog::{CombinedCache, SpecContext};
use super::server::Server;
use crate::config::{Config, ServerConfig};
use crate::upstream::UpstreamOptions;

/// Servers by name, plus their config order for listings.
#[derive(Default)]
pub struct Servers {
    map: HashMap<String, Arc<Server>>,
    order: Vec<String>,
}

impl Servers {
    pub fn get(&self, name: &str) -> Option<&Arc<Server>> {
        self.map.get(name)
    }

    /// In config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Server>> {
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
    /// What every spec needs from the serve options.
    pub spec: Arc<SpecContext>,
    /// The combined root document of the current set.
    pub combined: CombinedCache,
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
            combined: CombinedCache::default(),
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
        let removed: Vec<Arc<Server>> = old
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
    old: &HashMap<String, Arc<Server>>,
    options: &UpstreamOptions,
    spec: &Arc<SpecContext>,
) -> (Servers, ReloadSummary) {
    let mut servers = Servers::default();
    let mut summary = ReloadSummary::default();
    for config in configs {
        let name = config.name.clone();
        let entry = match old.get(&name) {
            Some(existing) if existing.config == config => {
                summary.unchanged.push(name.clone());
                existing.clone()
            }
            previous => {
                if previous.is_some() {
                    summary.changed.push(name.clone());
                } else {
                    summary.added.push(name.clone());
                }
                Arc::new(Server::start(config, options, spec))
            }
        };
        servers.order.push(name.clone());
        servers.map.insert(name, entry);
    }
    (servers, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransportConfig;

    /// A server that never connects (nothing listens on the discard port), so the test needs no
    /// upstream and starts no process.
    fn unreachable(name: &str, path: &str) -> ServerConfig {
        ServerConfig {
            name: name.to_owned(),
            transport: TransportConfig::StreamableHttp {
                url: format!("http://127.0.0.1:9/{path}").parse().unwrap(),
                headers: Default::default(),
            },
            disabled_tools: Default::default(),
            expose: Default::default(),
            timeout: None,
            oauth: None,
            multi_user: None,
            max_result: None,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn reload_keeps_unchanged_restarts_changed_and_stops_removed() {
        let spec = Arc::new(SpecContext {
            base: String::new(),
            root_path: String::new(),
            api_key_security: false,
            single_server: false,
            tool_cache: None,
        });
        let first = Config {
            servers: vec![
                unreachable("a", "mcp"),
                unreachable("b", "mcp"),
                unreachable("c", "mcp"),
            ],
        };
        let registry = Registry::start(first, UpstreamOptions::default(), spec);
        let before = registry.snapshot();
        let second = Config {
            servers: vec![
                unreachable("d", "mcp"),
                unreachable("b", "other"),
                unreachable("a", "mcp"),
            ],
        };
        let summary = registry.reload(second).await;
        assert_eq!(
            summary,
            ReloadSummary {
                added: names(&["d"]),
                removed: names(&["c"]),
                changed: names(&["b"]),
                unchanged: names(&["a"]),
            }
        );
        let after = registry.snapshot();
        let order: Vec<&str> = after.iter().map(|s| s.name()).collect();
        assert_eq!(order, ["d", "b", "a"], "the new config's order");
        assert!(Arc::ptr_eq(
            before.get("a").unwrap(),
            after.get("a").unwrap()
        ));
        assert!(!Arc::ptr_eq(
            before.get("b").unwrap(),
            after.get("b").unwrap()
        ));
        assert!(after.get("c").is_none());
        // The replaced and the removed servers were stopped before reload returned; the kept
        // one still runs.
        assert_eq!(before.get("b").unwrap().state().word(), "stopped");
        assert_eq!(before.get("c").unwrap().state().word(), "stopped");
        assert_ne!(after.get("a").unwrap().state().word(), "stopped");
        registry.shutdown().await;
        assert!(after.iter().all(|s| s.state().word() == "stopped"));
    }
}
