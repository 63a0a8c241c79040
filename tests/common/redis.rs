//! A test Redis: the real `redis-server` (Debian package `redis-server`, installed by
//! scripts/install-test-peers.sh) on a free loopback port, in a temporary directory of its own,
//! with no persistence, stopped through its own process handle.
//!
//! Without `redis-server` in `PATH`, [`Redis::start`] prints a loud skip and returns `None`, or
//! panics when the Redis tests are required (`MCPO_REQUIRE_REDIS`, as scripts/test.sh sets, or
//! `CI`), as the sandbox tests do for a missing `bwrap`.
//!
//! The assertion helpers talk to the server with the `redis` crate's blocking client, each over a
//! connection of its own. Their own commands (PING, SCAN, TYPE, GET, INFO...) count in
//! `INFO commandstats` like anyone's: compare [`Redis::command_calls`] before and after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How long a starting server has to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped, between [`Redis::stop`] and [`Redis::restart`]) `redis-server`.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// A new server with no password, or `None` after a loud skip when `redis-server` is not
    /// installed (a panic when the Redis tests are required).
    pub fn start() -> Option<Redis> {
        Self::start_inner(None)
    }

    /// A new server that requires `password` (`--requirepass`, the `default` user's password):
    /// [`Redis::url`] carries it, as an operator's `redis://:pass@host:port/db` would.
    pub fn start_with_password(password: &str) -> Option<Redis> {
        Self::start_inner(Some(password.to_owned()))
    }

    fn start_inner(password: Option<String>) -> Option<Redis> {
        if !installed() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("redis-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir for redis-server");
        let mut redis = Redis {
            child: None,
            port: free_port(),
            password,
            dir,
        };
        // The port was free a moment ago; if someone else took it before the server bound it,
        // try another one.
        for attempt in 1..=3 {
            match redis.spawn_and_wait() {
                Ok(()) => return Some(redis),
                Err(failure) if failure.port_taken && attempt < 3 => redis.port = free_port(),
                Err(failure) => panic!("{}", failure.message),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `redis://127.0.0.1:PORT/0`, with `:password@` when the server has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (its log is `redis.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server logged so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server through its own handle (SIGKILL: Redis going away without a word, as a
    /// crashed or partitioned one does) and reaps it. With no persistence, its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP to its pid, from our own handle): its port still accepts
    /// connections and nothing answers, as a hung or overloaded Redis does, for tests that
    /// mcpo's Redis calls time out rather than hang. [`Redis::thaw`] resumes it; [`Redis::stop`]
    /// and `Drop` work on a frozen server too.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a server [`Redis::freeze`] froze (SIGCONT); it answers what queued meanwhile.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("redis-server is not running");
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill {signal} {pid} (our redis-server) failed");
    }

    /// Starts the server again on the same port and in the same directory (stopping it first if
    /// it runs), and waits until it answers PING. It starts empty: nothing was saved.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn_and_wait() {
            panic!("{}", failure.message);
        }
    }

    /// A blocking connection to the server.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to the test Redis at {}: {e}", self.safe_url()))
    }

    /// Every key matching the glob `pattern`, sorted, through SCAN (never KEYS).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut con = self.connection();
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)
                .expect("SCAN");
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every key with its raw bytes, for "nothing in plain text" checks. A string is its GET
    /// value; any other type is reported by name, `<hash>` (`<list>`, `<set>`, `<zset>`,
    /// `<stream>`...), followed for hashes, lists, sets and sorted sets by each field, value
    /// or member on a line of its own, so a scan of the bytes still sees all they hold.
    pub fn raw_values(&self) -> Vec<(String, Vec<u8>)> {
        let mut con = self.connection();
        let mut values = Vec::new();
        for key in self.keys("*") {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).expect("TYPE");
            let parts: Option<Vec<Vec<u8>>> = match kind.as_str() {
                "string" => {
                    let value: Option<Vec<u8>> =
                        redis::cmd("GET").arg(&key).query(&mut con).expect("GET");
                    // Gone (expired) between SCAN and GET: nothing to report.
                    if let Some(value) = value {
                        values.push((key, value));
                    }
                    continue;
                }
                "none" => continue,
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut con).ok(),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut con)
                    .ok(),
                "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut con).ok(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut con)
                    .ok(),
                _ => None,
            };
            let mut bytes = format!("<{kind}>").into_bytes();
            for part in parts.unwrap_or_default() {
                bytes.push(b'\n');
                bytes.extend(part);
            }
            values.push((key, bytes));
        }
        values
    }

    /// How many times the server ran `command` (`get`, `set`, `eval`... any case; a
    /// subcommand as `client|setinfo`) since it started or [`Redis::reset_command_stats`],
    /// from `INFO commandstats`; 0 if never.
    pub fn command_calls(&self, command: &str) -> u64 {
        self.command_stats()
            .get(&command.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Every command the server ran, with its count, from `INFO commandstats`
    /// (`cmdstat_get:calls=12,usec=...` → `"get" → 12`).
    pub fn command_stats(&self) -> BTreeMap<String, u64> {
        let mut con = self.connection();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut con)
            .expect("INFO commandstats");
        parse_commandstats(&info)
    }

    /// `CONFIG RESETSTAT`: the command counts start again from 0.
    pub fn reset_command_stats(&self) {
        let mut con = self.connection();
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut con)
            .expect("CONFIG RESETSTAT");
    }

    /// Removes every key of every database.
    pub fn flushall(&self) {
        let mut con = self.connection();
        let () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
    }

    /// Whether the server answers PING now (within a second).
    pub fn ping(&self) -> bool {
        self.try_connection(Duration::from_secs(1))
            .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con))
            .is_ok_and(|pong| pong == "PONG")
    }

    /// Whether the server on our port answers and is the process `pid`: the port was free a
    /// moment ago, and another test's server that took it meanwhile must not pass for ours.
    fn answers_as(&self, pid: u32) -> bool {
        let Ok(mut con) = self.try_connection(Duration::from_secs(1)) else {
            return false;
        };
        let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut con) else {
            return false;
        };
        info.lines()
            .find_map(|line| line.trim().strip_prefix("process_id:"))
            .is_some_and(|id| id == pid.to_string())
    }

    fn try_connection(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let con = redis::Client::open(self.url())?.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        Ok(con)
    }

    /// The URL without its password, for messages.
    fn safe_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts `redis-server` on `self.port` in `self.dir` and waits for PING.
    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        assert!(self.child.is_none(), "redis-server is already running");
        let port = self.port.to_string();
        let dir = self.dir.path().to_str().expect("utf-8 temp dir").to_owned();
        let mut args: Vec<&str> = vec![
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ];
        if let Some(password) = &self.password {
            args.extend(["--requirepass", password]);
        }
        // Its log and whatever it says before it has one (a refused argument) in one file,
        // appended to across restarts.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("redis-server's log file");
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run redis-server: {e}"));
        let pid = child.id();
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.answers_as(pid) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let log = self.log();
                return Err(StartFailure {
                    port_taken: log.contains("Address already in use"),
                    message: format!(
                        "redis-server on 127.0.0.1:{port} (dir {dir}) exited ({status}) \
                         before answering PING; its log:\n{log}"
                    ),
                });
            }
            if started.elapsed() > START_TIMEOUT {
                self.stop();
                return Err(StartFailure {
                    port_taken: false,
                    message: format!(
                        "redis-server on 127.0.0.1:{port} (dir {dir}) did not answer PING \
                         within {START_TIMEOUT:?}; its log:\n{}",
                        self.log()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

struct StartFailure {
    port_taken: bool,
    message: String,
}

/// Whether `redis-server` runs here; a loud skip otherwise, or a panic when the Redis tests
/// are required (`MCPO_REQUIRE_REDIS`, as scripts/test.sh sets, or `CI`).
fn installed() -> bool {
    let runs = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        return true;
    }
    let message = "redis-server is missing; run scripts/install-test-peers.sh as root \
                   (it installs the Debian package redis-server with apt-get)";
    if std::env::var_os("MCPO_REQUIRE_REDIS").is_some() || std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    // Straight to the terminal: libtest captures `eprintln!` of a passing test, which would
    // hide the skip.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n{0}\n!!! SKIPPED: {message}\n{0}\n",
        "!".repeat(78)
    );
    false
}

/// `cmdstat_get:calls=12,usec=...` lines → `"get" → 12`.
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}
