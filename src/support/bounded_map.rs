//! A map with at most `capacity` entries, each with its own expiry time: the `sk-` key cache
//! (entries that live for different times) and the per-user session pool (entries that expire
//! when idle and are never evicted while in use).
//!
//! For caches whose entries live for different times (a valid API key for a minute, a refused
//! one for ten seconds) and whose size must stay bounded whatever callers send. When a new key
//! finds the map full, the entries that have expired go first, then the one that would have
//! expired soonest. Entries are indexed by expiry, so that costs O(log n), not a scan.
//!
//! Why not a crate: `moka` has per-entry expiry, and `quick_cache` has bounded eviction, but the
//! API-key cache's single flight is the part that needs care (a lookup outlives its callers and
//! the number of different keys being looked up is bounded), and neither crate's coalescing
//! does that; with the single flight ours either way, what is left is this map (the commit that
//! added it has the measured cost of both crates).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// A bounded map whose entries expire; see the module doc.
pub(crate) struct BoundedMap<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Keys by (expiry, insertion number): the first is the next to go.
    by_expiry: BTreeMap<(Instant, u64), K>,
    capacity: usize,
    inserted: u64,
}

struct Entry<V> {
    value: V,
    expires: Instant,
    number: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map that will hold at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
            capacity: capacity.max(1),
            inserted: 0,
        }
    }

    /// The value of `key` if it has not expired by `now`; an expired one is removed.
    pub(crate) fn get(&mut self, key: &K, now: Instant) -> Option<&V> {
        let expired = self.entries.get(key)?.expires <= now;
        if expired {
            self.remove(key);
            return None;
        }
        self.entries.get(key).map(|e| &e.value)
    }

    /// Sets `key` to `value` until `expires`, making room first when the map is full.
    pub(crate) fn insert(&mut self, key: K, value: V, expires: Instant, now: Instant) {
        if self.remove(&key).is_none() && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        self.push(key, value, expires);
    }

    /// Removes `key`, returning its value (expired or not).
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.by_expiry.remove(&(entry.expires, entry.number));
        Some(entry.value)
    }

    /// Entries held, expired ones included until they are evicted or looked up.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every value, expired ones included until they are evicted or looked up.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|e| &e.value)
    }

    /// `key`'s value with its expiry moved to `expires` (a value that expires when idle was
    /// used), whether or not it had expired.
    pub(crate) fn extend(&mut self, key: &K, expires: Instant) -> Option<&V> {
        let entry = self.entries.get_mut(key)?;
        self.by_expiry.remove(&(entry.expires, entry.number));
        self.inserted += 1;
        entry.number = self.inserted;
        entry.expires = expires;
        self.by_expiry.insert((expires, entry.number), key.clone());
        Some(&entry.value)
    }

    /// Inserts `key`, first evicting, soonest expiry first, as many entries as it takes to
    /// stay within the capacity, but only those `evictable` lets go (a value still in use is
    /// kept, and the map runs over its capacity for a while rather than break it). Returns the
    /// evicted values, for their owner to close.
    pub(crate) fn insert_evicting(
        &mut self,
        key: K,
        value: V,
        expires: Instant,
        evictable: impl Fn(&V) -> bool,
    ) -> Vec<V> {
        let mut evicted = Vec::new();
        if self.remove(&key).is_none() {
            let over = (self.entries.len() + 1).saturating_sub(self.capacity);
            let victims: Vec<K> = self
                .by_expiry
                .values()
                .filter(|k| self.entries.get(*k).is_some_and(|e| evictable(&e.value)))
                .take(over)
                .cloned()
                .collect();
            evicted.extend(victims.iter().filter_map(|k| self.remove(k)));
        }
        self.push(key, value, expires);
        evicted
    }

    /// Adds an entry the map has room for.
    fn push(&mut self, key: K, value: V, expires: Instant) {
        self.inserted += 1;
        let number = self.inserted;
        self.by_expiry.insert((expires, number), key.clone());
        self.entries.insert(
            key,
            Entry {
                value,
                expires,
                number,
            },
        );
    }

    /// Removes and returns the entries expired by `now` that `evictable` lets go.
    pub(crate) fn take_expired(&mut self, now: Instant, evictable: impl Fn(&V) -> bool) -> Vec<V> {
        let expired: Vec<K> = self
            .by_expiry
            .range(..=(now, u64::MAX))
            .map(|(_, k)| k)
            .filter(|k| self.entries.get(*k).is_some_and(|e| evictable(&e.value)))
            .cloned()
            .collect();
        expired.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// Removes and returns every value.
    pub(crate) fn drain(&mut self) -> Vec<V> {
        self.by_expiry.clear();
        self.entries.drain().map(|(_, e)| e.value).collect()
    }

    /// Whether `key` is held, expired or not.
    #[cfg(test)]
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Drops every entry expired by `now`, or else the one expiring soonest.
    fn make_room(&mut self, now: Instant) {
        let mut dropped = false;
        while let Some(entry) = self.by_expiry.first_entry() {
            if dropped && entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
            dropped = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn values_are_there_until_they_expire() {
        let now = Instant::now();
        let mut map = BoundedMap::new(4);
        map.insert("a", 1, now + secs(10), now);
        assert_eq!(map.get(&"a", now + secs(9)), Some(&1));
        assert_eq!(map.get(&"a", now + secs(10)), None);
        assert_eq!(map.len(), 0, "an expired entry is removed when looked up");
        assert_eq!(map.by_expiry.len(), 0);
    }

    #[test]
    fn eviction_and_expiry_skip_what_is_in_use() {
        let now = Instant::now();
        let mut map = BoundedMap::new(2);
        // (value, in use)
        map.insert("busy", ("busy", true), now + secs(1), now);
        map.insert("idle", ("idle", false), now + secs(2), now);
        let free = |v: &(&str, bool)| !v.1;
        let evicted = map.insert_evicting("new", ("new", false), now + secs(3), free);
        assert_eq!(
            evicted,
            [("idle", false)],
            "the soonest idle one, not the busy one"
        );
        // Nothing idle left to evict: the map runs over its capacity instead.
        map.insert_evicting("x", ("x", true), now + secs(4), |v| v.0 == "nothing");
        assert_eq!(map.len(), 3);
        // A use moves an entry's expiry: "busy" now outlives "new".
        assert!(map.extend(&"busy", now + secs(10)).is_some());
        let expired = map.take_expired(now + secs(5), |_| true);
        let mut names: Vec<&str> = expired.iter().map(|v| v.0).collect();
        names.sort();
        assert_eq!(names, ["new", "x"]);
        assert!(
            map.take_expired(now + secs(20), free).is_empty(),
            "busy stays"
        );
        assert_eq!(map.drain(), [("busy", true)]);
        assert_eq!((map.len(), map.by_expiry.len()), (0, 0));
    }

    #[test]
    fn a_full_map_drops_the_soonest_to_expire() {
        let now = Instant::now();
        let mut map = BoundedMap::new(3);
        map.insert(1, "later", now + secs(30), now);
        map.insert(2, "soonest", now + secs(10), now);
        map.insert(3, "middle", now + secs(20), now);
        map.insert(4, "new", now + secs(5), now);
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&2, now), None);
        for key in [1, 3, 4] {
            assert!(map.get(&key, now).is_some(), "{key}");
        }
    }

    #[test]
    fn a_full_map_drops_every_expired_entry_first() {
        let now = Instant::now();
        let mut map = BoundedMap::new(4);
        map.insert(1, (), now + secs(1), now);
        map.insert(2, (), now + secs(2), now);
        map.insert(3, (), now + secs(60), now);
        map.insert(4, (), now + secs(50), now);
        map.insert(5, (), now + secs(70), now + secs(3));
        assert_eq!(map.len(), 3, "both expired entries went, no live one");
        assert_eq!(map.by_expiry.len(), 3);
        let later = now + secs(3);
        assert!([3, 4, 5].iter().all(|k| map.get(k, later).is_some()));
    }

    #[test]
    fn replacing_a_key_moves_its_expiry_and_takes_no_room() {
        let now = Instant::now();
        let mut map = BoundedMap::new(2);
        map.insert("a", 1, now + secs(10), now);
        map.insert("b", 2, now + secs(20), now);
        map.insert("a", 3, now + secs(30), now);
        assert_eq!(map.len(), 2);
        assert_eq!(map.by_expiry.len(), 2);
        // "b" now expires first, so a new key pushes it out rather than "a".
        map.insert("c", 4, now + secs(40), now);
        assert_eq!(map.get(&"a", now), Some(&3));
        assert_eq!(map.get(&"b", now), None);
        assert_eq!(map.remove(&"c"), Some(4));
        assert_eq!(map.by_expiry.len(), 1);
    }

    #[test]
    fn it_stays_bounded_under_many_keys() {
        let now = Instant::now();
        let mut map = BoundedMap::new(100);
        for i in 0..10_000u64 {
            map.insert(i, i, now + secs(i % 97 + 1), now);
            assert!(map.len() <= 100);
        }
        assert_eq!(map.len(), 100);
        assert_eq!(map.by_expiry.len(), 100);
    }
}
