//! `GET /metrics` in the Prometheus text format: calls by server/tool/status, a latency
//! histogram per server, calls in flight, upstream state and reconnects, live per-user
//! sessions, and with a shared store (`--store redis://…`) its operations, failures, latency
//! and lock waits. Hand-written (a few counters do not justify a metrics framework), behind the
//! API key when one is set.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One server's counters: calls by tool and status, and its latency histogram.
#[derive(Default)]
struct ServerCounters {
    /// Per tool, (status, count) pairs: a tool sees a handful of statuses, so a short list
    /// beats a map.
    calls: HashMap<String, Vec<(u16, u64)>>,
    latency: Histogram,
}

/// Counters shared by every request, under one short-held lock. Keyed so that recording a call
/// looks up borrowed names and allocates only the first time a server/tool/status shows up.
#[derive(Default)]
pub struct Metrics {
    servers: Mutex<HashMap<String, ServerCounters>>,
    in_flight: AtomicI64,
}

/// Decrements the in-flight gauge when the call ends, however it ends.
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn start_call(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    pub fn record(&self, server: &str, tool: &str, status: u16, seconds: f64) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let counters = match servers.get_mut(server) {
            Some(c) => c,
            None => servers.entry(server.to_owned()).or_default(),
        };
        let statuses = match counters.calls.get_mut(tool) {
            Some(s) => s,
            None => counters.calls.entry(tool.to_owned()).or_default(),
        };
        match statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => statuses.push((status, 1)),
        }
        let h = &mut counters.latency;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }
}

/// Label values are quoted strings: escape backslash, quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP mcpo_tool_calls_total Tool calls answered, by server, tool and HTTP status.\n# TYPE mcpo_tool_calls_total counter\n");
    // Copy out under the lock, format outside it: a scrape never holds up tool calls.
    let (mut calls, mut latency) = {
        let servers = m.servers.lock().unwrap_or_else(|p| p.into_inner());
        let mut calls = Vec::new();
        let mut latency = Vec::new();
        for (server, c) in servers.iter() {
            for (tool, statuses) in &c.calls {
                for (status, n) in statuses {
                    calls.push((server.clone(), tool.clone(), *status, *n));
                }
            }
            latency.push((
                server.clone(),
                c.latency.counts,
                c.latency.count,
                c.latency.sum,
            ));
        }
        (calls, latency)
    };
    calls.sort();
    for (server, tool, status, n) in calls {
        let _ = writeln!(
            out,
            "mcpo_tool_calls_total{{server=\"{}\",tool=\"{}\",status=\"{status}\"}} {n}",
            label(&server),
            label(&tool)
        );
    }
    out.push_str("# HELP mcpo_tool_call_duration_seconds Tool call latency through mcpo, by server.\n# TYPE mcpo_tool_call_duration_seconds histogram\n");
    latency.sort_by(|a, b| a.0.cmp(&b.0));
    for (server, counts, count, sum) in latency {
        let s = label(&server);
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "mcpo_tool_call_duration_seconds_bucket{{server=\"{s}\",le=\"{bound}\"}} {}",
                counts[i]
            );
        }
        let _ = writeln!(
            out,
            "mcpo_tool_call_duration_seconds_bucket{{server=\"{s}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "mcpo_tool_call_duration_seconds_sum{{server=\"{s}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "mcpo_tool_call_duration_seconds_count{{server=\"{s}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP mcpo_tool_calls_in_flight Tool calls being served now.\n# TYPE mcpo_tool_calls_in_flight gauge\nmcpo_tool_calls_in_flight {}",
        m.in_flight.load(Ordering::Relaxed)
    );
    let servers = state.registry.snapshot();
    out.push_str("# HELP mcpo_upstream_connected 1 when the server's shared session is connected.\n# TYPE mcpo_upstream_connected gauge\n");
    for e in servers.iter() {
        let up = e.state().is_ready() as u8;
        let _ = writeln!(
            out,
            "mcpo_upstream_connected{{server=\"{}\"}} {up}",
            label(e.name())
        );
    }
    out.push_str("# HELP mcpo_upstream_reconnects_total Successful reconnections after a lost session.\n# TYPE mcpo_upstream_reconnects_total counter\n");
    for e in servers.iter() {
        let n = e.stats.reconnects.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "mcpo_upstream_reconnects_total{{server=\"{}\"}} {n}",
            label(e.name())
        );
    }
    out.push_str("# HELP mcpo_upstream_rejected_calls_total Calls refused because the server's queue was full.\n# TYPE mcpo_upstream_rejected_calls_total counter\n");
    for e in servers.iter() {
        let n = e.stats.rejected.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "mcpo_upstream_rejected_calls_total{{server=\"{}\"}} {n}",
            label(e.name())
        );
    }
    let oauth: Vec<_> = servers
        .iter()
        .filter_map(|e| e.oauth_counters().map(|c| (e.name(), c)))
        .collect();
    for (family, help, pick) in [
        ("mcpo_oauth_logins_total", "Successful OAuth logins.", 0),
        ("mcpo_oauth_refreshes_total", "OAuth token refreshes.", 1),
        (
            "mcpo_oauth_failures_total",
            "Failed OAuth authorization attempts.",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} counter");
        for (name, c) in &oauth {
            let n = [c.logins, c.refreshes, c.failures][pick];
            let _ = writeln!(out, "{family}{{server=\"{}\"}} {n}", label(name));
        }
    }
    out.push_str("# HELP mcpo_user_sessions Live per-user sessions of multi-user servers.\n# TYPE mcpo_user_sessions gauge\n");
    for e in servers.iter() {
        if let Some(per_user) = e.per_user() {
            let _ = writeln!(
                out,
                "mcpo_user_sessions{{server=\"{}\"}} {}",
                label(e.name()),
                per_user.sessions()
            );
        }
    }
    if let Some(store) = crate::store::shared::shared() {
        store_metrics(&mut out, store);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// The shared store's rows (`--store redis://…`), without labels: there is one store, and its
/// URL is not a label (it may name internal hosts; it never carries the password anyway).
fn store_metrics(out: &mut String, store: &crate::store::redis::RedisStore) {
    use crate::store::redis::LATENCY_BUCKETS;
    let stats = &store.stats;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let seconds = |n: &std::sync::atomic::AtomicU64| load(n) as f64 / 1e6;
    let _ = writeln!(
        out,
        "# HELP mcpo_store_available 1 while the shared store (--store) answers.\n\
         # TYPE mcpo_store_available gauge\nmcpo_store_available {}",
        store.available() as u8
    );
    let _ = writeln!(
        out,
        "# HELP mcpo_store_operations_total Operations on the shared store, its availability \
         probe included.\n# TYPE mcpo_store_operations_total counter\n\
         mcpo_store_operations_total {}",
        load(&stats.operations)
    );
    let _ = writeln!(
        out,
        "# HELP mcpo_store_failures_total Operations on the shared store that failed (no \
         answer, connection lost, error).\n# TYPE mcpo_store_failures_total counter\n\
         mcpo_store_failures_total {}",
        load(&stats.failures)
    );
    let family = "mcpo_store_operation_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {family} Time operations on the shared store took.\n# TYPE {family} histogram"
    );
    let mut below = 0;
    for (bound, n) in LATENCY_BUCKETS.iter().zip(&stats.latency) {
        below += load(n);
        let _ = writeln!(out, "{family}_bucket{{le=\"{bound}\"}} {below}");
    }
    // Read once: the +Inf bucket and the count must agree.
    let operations = load(&stats.operations).max(below);
    let _ = writeln!(
        out,
        "{family}_bucket{{le=\"+Inf\"}} {operations}\n{family}_sum {}\n{family}_count {operations}",
        seconds(&stats.micros)
    );
    let _ = writeln!(
        out,
        "# HELP mcpo_store_lock_waits_total Locks (one token refresh at a time across \
         replicas) taken after waiting for another holder.\n\
         # TYPE mcpo_store_lock_waits_total counter\nmcpo_store_lock_waits_total {}",
        load(&stats.lock_waits)
    );
    let _ = writeln!(
        out,
        "# HELP mcpo_store_lock_wait_seconds_total Time spent waiting for locks held by other \
         holders.\n# TYPE mcpo_store_lock_wait_seconds_total counter\n\
         mcpo_store_lock_wait_seconds_total {}",
        seconds(&stats.lock_wait_micros)
    );
}
