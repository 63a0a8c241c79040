//! Which upstream session serves a caller in multi-user mode: one per (user, server), created
//! on first use, closed after an idle timeout, and at most `max` alive (the least recently used
//! goes first), so memory and child processes stay bounded however many users come.
//!
//! The pool is generic over what it keeps (a multi-user server keeps an endpoint, with its own
//! catalog, per user) and never closes anything itself: it hands back what it evicted, and
//! the owner shuts those down outside the lock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::bounded_map::BoundedMap;
use crate::support::caller::Caller;

/// Per-user values with LRU bound and idle expiry: a [`BoundedMap`] whose entries expire
/// `idle` after their last use, so the least recently used is also the soonest to expire.
/// Keyed by the typed [`Caller`], so no user id can name the API-key holder's value.
pub struct UserPool<T> {
    slots: Mutex<BoundedMap<Caller, Arc<T>>>,
    idle: Duration,
}

/// Someone besides the pool holds the value: a call (or spec fetch) is using it, so it is
/// neither evicted nor expired.
fn idle<T>(value: &Arc<T>) -> bool {
    Arc::strong_count(value) == 1
}

impl<T> UserPool<T> {
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            slots: Mutex::new(BoundedMap::new(max.max(1))),
            idle,
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BoundedMap<Caller, Arc<T>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value for `user` (created with `make` if absent, which counts as use), plus whatever
    /// had to be evicted to stay within the bound. Only idle values can go: one a caller still
    /// holds is serving a call (or starting its session); when every value is busy the pool
    /// runs over its bound briefly rather than break calls in flight.
    pub fn get_or_create(&self, user: &Caller, make: impl FnOnce() -> T) -> (Arc<T>, Vec<Arc<T>>) {
        let expires = Instant::now() + self.idle;
        let mut slots = self.slots();
        let key = user.clone();
        if let Some(value) = slots.extend(&key, expires) {
            return (value.clone(), Vec::new());
        }
        let value = Arc::new(make());
        let evicted = slots.insert_evicting(key, value.clone(), expires, idle);
        (value, evicted)
    }

    /// `user`'s value if there is one (which counts as use).
    pub fn get(&self, user: &Caller) -> Option<Arc<T>> {
        self.slots()
            .extend(user, Instant::now() + self.idle)
            .cloned()
    }

    /// Takes `user`'s value out (their secrets changed or were refused); the caller closes it.
    pub fn remove(&self, user: &Caller) -> Option<Arc<T>> {
        self.slots().remove(user)
    }

    /// Marks `user` active (a spec fetch counts as activity) if they have a value.
    pub fn touch(&self, user: &Caller) {
        self.slots().extend(user, Instant::now() + self.idle);
    }

    /// Removes and returns values idle for longer than the timeout.
    pub fn take_idle(&self) -> Vec<Arc<T>> {
        self.slots().take_expired(Instant::now(), idle)
    }

    /// Removes and returns everything (shutdown).
    pub fn drain(&self) -> Vec<Arc<T>> {
        self.slots().drain()
    }

    pub fn len(&self) -> usize {
        self.slots().len()
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

    fn user(id: &str) -> Caller {
        Caller::User(id.to_owned())
    }

    #[test]
    fn bound_evicts_least_recently_used() {
        let pool = UserPool::new(2, Duration::from_secs(60));
        pool.get_or_create(&user("a"), || 1);
        std::thread::sleep(Duration::from_millis(2));
        pool.get_or_create(&user("b"), || 2);
        std::thread::sleep(Duration::from_millis(2));
        pool.touch(&user("a"));
        let (_, evicted) = pool.get_or_create(&user("c"), || 3);
        assert_eq!(evicted.iter().map(|v| **v).collect::<Vec<_>>(), vec![2]);
        assert_eq!(pool.len(), 2);
        // Reuse does not create.
        let (v, evicted) = pool.get_or_create(&user("a"), || 99);
        assert_eq!((*v, evicted.len()), (1, 0));
    }

    #[test]
    fn values_in_use_are_never_evicted_or_expired() {
        let pool = UserPool::new(1, Duration::from_millis(10));
        let (held, _) = pool.get_or_create(&user("a"), || 1);
        let (_, evicted) = pool.get_or_create(&user("b"), || 2);
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
        pool.get_or_create(&user("a"), || 1);
        assert!(pool.take_idle().is_empty());
        std::thread::sleep(Duration::from_millis(40));
        pool.get_or_create(&user("b"), || 2);
        let idle = pool.take_idle();
        assert_eq!(idle.iter().map(|v| **v).collect::<Vec<_>>(), vec![1]);
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn no_user_id_shares_the_api_key_holders_value() {
        let pool = UserPool::new(10, Duration::from_secs(60));
        pool.get_or_create(&Caller::Service, || 1);
        for id in ["\u{0}service", "service"] {
            let (v, _) = pool.get_or_create(&user(id), || 2);
            assert_eq!(*v, 2, "user {id:?} got the API-key holder's value");
        }
        let (v, _) = pool.get_or_create(&Caller::Service, || 3);
        assert_eq!(*v, 1);
    }
}
