//! Per-server bounds and counters: how many calls one upstream sees at once, and what an
//! operator wants counted. Owned by whoever serves the server (shared or per user), so the
//! bound holds for the server as a whole, whichever session a call goes to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters an operator wants to see for one server.
#[derive(Debug, Default)]
pub struct Stats {
    /// Successful connections after the first one.
    pub reconnects: AtomicU64,
    /// Calls answered by the upstream (any outcome) and calls refused because the queue was full.
    pub calls: AtomicU64,
    pub rejected: AtomicU64,
}

/// Bounds the calls one upstream sees at once; beyond the queue limit callers get "busy" at
/// once instead of piling up memory and latency.
#[derive(Debug)]
pub struct CallLimiter {
    slots: Arc<tokio::sync::Semaphore>,
    queued: AtomicU64,
    max_queued: u64,
}

/// The queue of calls waiting for this upstream is full.
#[derive(Debug, thiserror::Error)]
#[error("too many calls waiting for this server ({0} queued)")]
pub struct Busy(pub u64);

impl CallLimiter {
    pub fn new(max_concurrent: usize, max_queued: usize) -> Self {
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(max_concurrent.max(1))),
            queued: AtomicU64::new(0),
            max_queued: max_queued as u64,
        }
    }

    /// A slot for one call, waiting in the bounded queue if all are taken.
    pub async fn acquire(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queued = self.queued.fetch_add(1, Ordering::AcqRel);
        if queued >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy(queued));
        }
        let permit = self.slots.clone().acquire_owned().await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| Busy(queued))
    }

    /// Calls currently waiting for a slot.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
}
