//! The supervisor's knobs that do not come from a server's own config entry.

use std::time::Duration;

/// Knobs of the supervisor that do not come from the server's own config entry.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Time allowed for spawning/connecting plus the MCP `initialize` handshake and `tools/list`.
    pub connect_timeout: Duration,
    /// First retry delay after a failed connect; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Per-call timeout used when the server entry sets none.
    pub default_call_timeout: Duration,
    /// Idle time between MCP pings; zero disables them.
    pub keepalive_interval: Duration,
    /// Calls in flight at once, and calls allowed to wait for a slot.
    pub max_concurrent_calls: usize,
    pub max_queued_calls: usize,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            default_call_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(30),
            max_concurrent_calls: 256,
            max_queued_calls: 1024,
        }
    }
}
