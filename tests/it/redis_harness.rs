//! Issue #18's test Redis (tests/common/redis.rs) checked on its own: the Redis store tests rely
//! on it starting a real `redis-server` on a loopback port, stopping it through its handle, and
//! bringing it back on the same port ("Redis stopped mid-run, then back"), and on its assertion
//! helpers reading what is really stored.

use crate::common::*;

/// A value written with the `redis` crate, as mcpo's store would.
fn set(redis: &Redis, key: &str, value: &[u8]) {
    let mut con = redis.connection();
    let () = ::redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut con)
        .expect("SET");
}

#[test]
fn stops_by_its_handle_and_restarts_on_the_same_port() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/0"));
    assert!(redis.ping());
    set(&redis, "mcpo:test:one", b"\x00sealed\xff");
    assert_eq!(redis.keys("mcpo:*"), vec!["mcpo:test:one".to_owned()]);
    assert_eq!(
        redis.raw_values(),
        vec![("mcpo:test:one".to_owned(), b"\x00sealed\xff".to_vec())]
    );

    let first = redis.pid().expect("running");
    redis.stop();
    assert!(!redis.is_running());
    assert!(!redis.ping(), "PING answered after stop");
    assert!(
        proc_stat(first).is_none(),
        "redis-server {first} was not reaped by stop"
    );
    // Nothing listens on the port any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    redis.restart();
    assert_eq!(redis.port(), port, "restart must reuse the port");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/0"));
    assert!(redis.ping(), "PING after restart");
    assert_ne!(redis.pid(), Some(first), "a new process");
    // `--save ""`: it comes back empty.
    assert!(redis.keys("*").is_empty(), "{:?}", redis.keys("*"));
    assert!(
        redis.log().contains("Ready to accept connections"),
        "the log survives restarts: {}",
        redis.log()
    );

    let pid = redis.pid().expect("running");
    drop(redis);
    assert!(proc_stat(pid).is_none(), "Drop did not stop redis-server");
}

#[test]
fn counts_commands_and_reports_every_type() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let before = redis.command_calls("SET");
    for i in 0..3 {
        set(&redis, &format!("k{i}"), b"v");
    }
    assert_eq!(redis.command_calls("set") - before, 3);
    assert_eq!(redis.command_calls("never-run"), 0);
    redis.reset_command_stats();
    assert_eq!(redis.command_calls("set"), 0);

    let mut con = redis.connection();
    let () = ::redis::cmd("HSET")
        .arg("h")
        .arg("field")
        .arg("plain-secret")
        .query(&mut con)
        .expect("HSET");
    let values = redis.raw_values();
    let (_, hash) = values.iter().find(|(k, _)| k == "h").expect("the hash");
    assert_eq!(hash.as_slice(), b"<hash>\nfield\nplain-secret");
    assert_eq!(values.len(), 4, "{values:?}");

    redis.flushall();
    assert!(redis.keys("*").is_empty());
}

#[test]
fn a_frozen_server_accepts_and_does_not_answer_until_thawed() {
    let Some(redis) = Redis::start() else {
        return;
    };
    set(&redis, "k", b"v");
    redis.freeze();
    // The kernel still accepts connections on its port; nothing answers on them.
    assert!(std::net::TcpStream::connect(("127.0.0.1", redis.port())).is_ok());
    let started = std::time::Instant::now();
    assert!(!redis.ping(), "a frozen server answered PING");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    redis.thaw();
    assert!(redis.ping(), "PING after thaw");
    assert_eq!(
        redis.keys("*"),
        vec!["k".to_owned()],
        "thawed with its data"
    );
}

#[test]
fn a_password_is_in_the_url_and_required() {
    let Some(redis) = Redis::start_with_password("harness-pass-5e1") else {
        return;
    };
    let port = redis.port();
    assert_eq!(
        redis.url(),
        format!("redis://:harness-pass-5e1@127.0.0.1:{port}/0")
    );
    assert!(redis.ping());
    let mut anonymous = ::redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_connection()
        .unwrap();
    let refused = ::redis::cmd("GET")
        .arg("k")
        .query::<Option<String>>(&mut anonymous)
        .expect_err("a GET without the password");
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
}
