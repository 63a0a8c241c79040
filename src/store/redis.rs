//! The Redis store several replicas share (`--store redis://…`): records by name under the
//! prefix, expiring records (web logins in progress), one-time marks (tickets) and locks
//! (one token refresh at a time across replicas).
//!
//! One multiplexed connection per process through the `redis` crate's `ConnectionManager`,
//! created lazily so mcpo starts while Redis is down. Every operation is bounded (connect and
//! response timeouts of [`TIMEOUT`]), so a Redis that hangs costs a request [`TIMEOUT`], never
//! forever. An operation that fails on the connection marks the store unavailable
//! (`/status`, `/readyz`) and becomes [`StoreError::Unavailable`] (a 503 naming the store);
//! the manager reconnects on the next operation, and a probe (a `PING` every second while
//! unavailable, every five while available) notices Redis is back without any traffic, so
//! serving resumes within seconds of it, without a restart.
//!
//! Values are the sealed records of the file store, byte for byte; Redis never sees a token
//! or a secret in plain text. Keys are the prefix and the record's name (a token record's
//! path in the token folder), so `mcpo store migrate` copies files to keys unchanged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::StoreError;
use super::location::RedisLocation;

/// The longest one Redis operation (or connection attempt) may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a lock is held at most: a token request is bounded well below it, and a replica
/// that dies holding it blocks the others no longer than this.
pub const LOCK_TTL: Duration = Duration::from_secs(30);
/// Longest wait for another holder of a lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Deletes a lock only if it is still ours (another replica may hold it after ours expired).
const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
else
  return 0
end"#;

/// Upper bounds of the operation latency buckets of `/metrics`, in seconds (an operation
/// gives up after twice [`TIMEOUT`]).
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RedisStats {
    pub operations: AtomicU64,
    pub failures: AtomicU64,
    /// Sum of operation times, in microseconds.
    pub micros: AtomicU64,
    /// Operations by the first [`LATENCY_BUCKETS`] bound they took no longer than (not
    /// cumulative); slower ones are only in `operations`.
    pub latency: [AtomicU64; LATENCY_BUCKETS.len()],
    pub lock_waits: AtomicU64,
    /// Sum of time spent waiting for locks held by others, in microseconds.
    pub lock_wait_micros: AtomicU64,
}

/// The shared store.
pub struct RedisStore {
    location: RedisLocation,
    manager: ConnectionManager,
    available: AtomicBool,
    /// Why it is unavailable (the last failure), for `/status`.
    last_error: Mutex<Option<String>>,
    pub stats: RedisStats,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({:?})", self.location)
    }
}

impl RedisStore {
    /// The store at `location`, not yet connected (the first operation connects), with its
    /// probe running. Must be called inside the tokio runtime.
    pub fn open(location: RedisLocation) -> Result<Arc<RedisStore>, String> {
        let shown = location.shown();
        let client = redis::Client::open(location.url.as_str())
            .map_err(|_| format!("--store {shown}: not a valid Redis URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("--store {shown}: {}", clean(&e)))?;
        let store = Arc::new(RedisStore {
            location,
            manager,
            available: AtomicBool::new(false),
            last_error: Mutex::new(Some("not connected yet".to_owned())),
            stats: RedisStats::default(),
        });
        tokio::spawn(probe(Arc::downgrade(&store)));
        Ok(store)
    }

    /// The URL without its password, for messages.
    pub fn shown(&self) -> String {
        self.location.shown()
    }

    pub fn prefix(&self) -> &str {
        &self.location.prefix
    }

    /// Whether the last operation reached Redis.
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Why it is unavailable, when it is.
    pub fn last_error(&self) -> Option<String> {
        if self.available() {
            return None;
        }
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.location.prefix)
    }

    /// Runs one command, timing it and keeping the availability state.
    /// A command that finds the connection broken (Redis restarted since the last one) is
    /// sent once more on the connection the manager opens in its place.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let started = Instant::now();
        let mut conn = self.manager.clone();
        let mut result = tokio::time::timeout(TIMEOUT * 2, cmd.query_async::<T>(&mut conn)).await;
        if let Ok(Err(e)) = &result
            && (e.is_connection_dropped() || e.is_io_error())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut conn = self.manager.clone();
            result = tokio::time::timeout(TIMEOUT * 2, cmd.query_async::<T>(&mut conn)).await;
        }
        self.finish(started, result)
    }

    fn finish<T>(
        &self,
        started: Instant,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        let stats = &self.stats;
        let took = started.elapsed();
        stats.operations.fetch_add(1, Ordering::Relaxed);
        stats
            .micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            stats.latency[bucket].fetch_add(1, Ordering::Relaxed);
        }
        let error = match result {
            Ok(Ok(value)) => {
                self.mark_available();
                return Ok(value);
            }
            // Redis answered, about one key (a value of another type under the prefix, a
            // key that is not UTF-8): that operation fails, the store is not down.
            Ok(Err(e))
                if e.code() == Some("WRONGTYPE")
                    || e.kind() == redis::ErrorKind::UnexpectedReturnType =>
            {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                self.mark_available();
                return Err(StoreError::Io(format!(
                    "store {}: {}",
                    self.shown(),
                    clean(&e)
                )));
            }
            Ok(Err(e)) => clean(&e),
            Err(_) => format!("no answer within {}s", (TIMEOUT * 2).as_secs()),
        };
        stats.failures.fetch_add(1, Ordering::Relaxed);
        self.mark_unavailable(&error);
        Err(StoreError::Unavailable {
            store: self.shown(),
            why: error,
        })
    }

    fn mark_available(&self) {
        if !self.available.swap(true, Ordering::Relaxed) {
            tracing::info!("store {} is available", self.shown());
        }
    }

    fn mark_unavailable(&self, why: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_owned());
        if self.available.swap(false, Ordering::Relaxed) {
            tracing::warn!("store {} is unavailable: {why}; reconnecting", self.shown());
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(redis::cmd("GET").arg(self.key(name))).await
    }

    pub async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.run(redis::cmd("SET").arg(self.key(name)).arg(bytes))
            .await
    }

    /// A record that expires by itself after `ttl` (web logins in progress).
    pub async fn put_for(&self, name: &str, bytes: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.run(
            redis::cmd("SET")
                .arg(self.key(name))
                .arg(bytes)
                .arg("PX")
                .arg(millis(ttl)),
        )
        .await
    }

    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let n: u64 = self.run(redis::cmd("DEL").arg(self.key(name))).await?;
        Ok(n > 0)
    }

    /// Reads and deletes in one step: of several replicas asking at once, one gets it.
    pub async fn take(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(redis::cmd("GETDEL").arg(self.key(name))).await
    }

    /// Marks `name` for `ttl` if nobody has: `true` for the one replica that did (a one-time
    /// ticket used up across all of them).
    pub async fn claim(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(self.key(name))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }

    /// The names of every record under the prefix starting with `start` (`SCAN`, never
    /// `KEYS`: a large Redis is not blocked), without the prefix.
    pub async fn names(&self, start: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}*", escape_glob(&self.key(start)));
        let mut cursor: u64 = 0;
        let mut names = Vec::new();
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500),
                )
                .await?;
            let prefix = self.prefix().len();
            // A key that is not UTF-8 is no record of mcpo's: left out.
            names.extend(
                keys.into_iter()
                    .filter_map(|k| String::from_utf8(k).ok())
                    .filter_map(|k| k.get(prefix..).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Takes the lock `name` (set-if-absent with [`LOCK_TTL`], a random owner token),
    /// waiting for another holder up to [`LOCK_WAIT`]. Dropping the guard releases it, only
    /// if it is still ours.
    pub async fn lock(self: &Arc<Self>, name: &str) -> Result<RedisLock, StoreError> {
        let key = self.key(&format!("lock:{name}"));
        let mut token = [0u8; 16];
        getrandom::getrandom(&mut token).map_err(|e| StoreError::Io(e.to_string()))?;
        let token = base16ct::lower::encode_string(&token);
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        let mut waited = false;
        loop {
            let set: Option<String> = self
                .run(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(LOCK_TTL)),
                )
                .await?;
            if set.is_some() {
                if waited {
                    self.stats.lock_waits.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .lock_wait_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                return Ok(RedisLock {
                    store: Arc::downgrade(self),
                    key,
                    token,
                });
            }
            if started.elapsed() >= LOCK_WAIT {
                return Err(StoreError::Io(format!(
                    "another replica has held the lock {key} in {} for over {}s",
                    self.shown(),
                    LOCK_WAIT.as_secs()
                )));
            }
            waited = true;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// `PING`, for the probe.
    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(())
    }
}

/// A held lock; released (if still ours) when dropped.
pub struct RedisLock {
    store: Weak<RedisStore>,
    key: String,
    token: String,
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        let Some(store) = self.store.upgrade() else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        let release = async move {
            let mut conn = store.manager.clone();
            let script = redis::Script::new(RELEASE);
            let result = tokio::time::timeout(
                TIMEOUT,
                script.key(&key).arg(&token).invoke_async::<i64>(&mut conn),
            )
            .await;
            if !matches!(result, Ok(Ok(_))) {
                tracing::debug!("releasing the lock {key} failed; it expires by itself");
            }
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(release);
        }
    }
}

/// Checks the connection while nothing else does: every second while unavailable, so
/// `/readyz` turns ready within seconds of Redis coming back, every five while available.
async fn probe(store: Weak<RedisStore>) {
    loop {
        let pause = {
            let Some(store) = store.upgrade() else { return };
            let _ = store.ping().await;
            if store.available() {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

/// A Redis error as text, with any URL in it redacted.
fn clean(e: &redis::RedisError) -> String {
    crate::support::redact::urls_in(&e.to_string()).into_owned()
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
