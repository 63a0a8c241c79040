//! Which upstream session serves a caller in multi-user mode: one per (user, server), created
//! on first use, closed after an idle timeout, and at most `max` alive (the least recently used
//! goes first), so memory and child processes stay bounded however many users come.
//!
//! The pool is generic over what it keeps (a multi-user server keeps an endpoint, with its own
//! catalog, per user) and never closes anything itself: it hands back what it evicted, and
//! the owner shuts those down outside the lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Per-user values with LRU bound and idle expiry.
pub struct UserPool<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
    max: usize,
    idle: Duration,
}

struct Slot<T> {
    value: Arc<T>,
    last_used: Instant,
}

impl<T> Slot<T> {
    /// Someone besides the pool holds the value: a call (or spec fetch) is using it.
    fn busy(&self) -> bool {
        Arc::strong_count(&self.value) > 1
    }
}

impl<T> UserPool<T> {
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            max: max.max(1),
            idle,
        }
    }

    /// The value for `user` (created with `make` if absent, which counts as use), plus whatever
    /// had to be evicted to stay within the bound.
    pub fn get_or_create(&self, user: &str, make: impl FnOnce() -> T) -> (Arc<T>, Vec<Arc<T>>) {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(user) {
            slot.last_used = now;
            return (slot.value.clone(), Vec::new());
        }
        let mut evicted = Vec::new();
        while slots.len() >= self.max {
            // Only idle values can go: one a caller still holds is serving a call (or starting
            // its session). When every value is busy the pool runs over its bound briefly
            // rather than break calls in flight.
            let Some(oldest) = slots
                .iter()
                .filter(|(_, s)| !s.busy())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(slot) = slots.remove(&oldest) {
                evicted.push(slot.value);
            }
        }
        let value = Arc::new(make());
        slots.insert(
            user.to_owned(),
            Slot {
                value: value.clone(),
                last_used: now,
            },
        );
        (value, evicted)
    }

    /// Marks `user` active (a spec fetch counts as activity) if they have a value.
    pub fn touch(&self, user: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(user) {
            slot.last_used = Instant::now();
        }
    }

    /// Removes and returns values idle for longer than the timeout.
    pub fn take_idle(&self) -> Vec<Arc<T>> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<String> = slots
            .iter()
            .filter(|(_, s)| !s.busy() && now.duration_since(s.last_used) > self.idle)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .iter()
            .filter_map(|k| slots.remove(k).map(|s| s.value))
            .collect()
    }

    /// Removes and returns everything (shutdown).
    pub fn drain(&self) -> Vec<Arc<T>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.drain().map(|(_, s)| s.value).collect()
    }

    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How often the owner should call [`UserPool::take_idle`].
    pub fn sweep_interval(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_evicts_least_recently_used() {
        let pool = UserPool::new(2, Duration::from_secs(60));
        pool.get_or_create("a", || 1);
        std::thread::sleep(Duration::from_millis(2));
        pool.get_or_create("b", || 2);
        std::thread::sleep(Duration::from_millis(2));
        pool.touch("a");
        let (_, evicted) = pool.get_or_create("c", || 3);
        assert_eq!(evicted.iter().map(|v| **v).collect::<Vec<_>>(), vec![2]);
        assert_eq!(pool.len(), 2);
        // Reuse does not create.
        let (v, evicted) = pool.get_or_create("a", || 99);
        assert_eq!((*v, evicted.len()), (1, 0));
    }

    #[test]
    fn values_in_use_are_never_evicted_or_expired() {
        let pool = UserPool::new(1, Duration::from_millis(10));
        let (held, _) = pool.get_or_create("a", || 1);
        let (_, evicted) = pool.get_or_create("b", || 2);
        assert!(evicted.is_empty(), "a busy value was evicted");
        assert_eq!(pool.len(), 2);
        std::thread::sleep(Duration::from_millis(30));
        let idle: Vec<i32> = pool.take_idle().iter().map(|v| **v).collect();
        assert_eq!(idle, vec![2]);
        drop(held);
        assert_eq!(pool.take_idle().len(), 1);
    }

    #[test]
    fn idle_values_expire() {
        let pool = UserPool::new(10, Duration::from_millis(20));
        pool.get_or_create("a", || 1);
        assert!(pool.take_idle().is_empty());
        std::thread::sleep(Duration::from_millis(40));
        pool.get_or_create("b", || 2);
        let idle = pool.take_idle();
        assert_eq!(idle.iter().map(|v| **v).collect::<Vec<_>>(), vec![1]);
        assert_eq!(pool.len(), 1);
    }
}
