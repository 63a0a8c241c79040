//! Issue #19, item 15: nothing a stdio server started is left behind. A server started as
//! `sh -c "sleep 120 & exec <server>"` leaves a `sleep` in its process group; once the server
//! itself exits (stdin closed at mcpo's shutdown, or a crash before a reconnect), mcpo ends the
//! rest of the group.
//!
//! The `sleep`'s pid comes from a file the wrapper writes; a guard kills it (by that pid) if a
//! test fails, so no process outlives the test either way.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A stdio entry for the fixture behind a wrapper that leaves `sleep 120` running in the
/// server's process group and writes its pid to `pid_file`. `quiet` detaches the sleep from
/// the server's pipes (otherwise it holds stdout open and a crash is only noticed by a ping).
fn wrapped_entry(pid_file: &Path, quiet: bool) -> Value {
    let redirect = if quiet {
        " </dev/null >/dev/null 2>&1"
    } else {
        ""
    };
    let script = format!(
        "sleep 120{redirect} & echo $! > '{}'; exec '{}' stdio",
        pid_file.display(),
        fixture_bin().display()
    );
    json!({"command": "sh", "args": ["-c", script]})
}

/// Kills the background `sleep` (by the pid it wrote) if it still runs when the test ends.
struct Leftover(Vec<u32>);

impl Drop for Leftover {
    fn drop(&mut self) {
        for pid in &self.0 {
            if alive(*pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Whether `pid` runs (a zombie runs no code and does not count).
fn alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some(s) if s.state != 'Z' && s.state != 'X')
}

/// The pid in `file` once the wrapper wrote one different from `not`.
async fn read_pid(file: &Path, not: Option<u32>) -> u32 {
    poll(Duration::from_secs(20), || async {
        let text = std::fs::read_to_string(file).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        (Some(pid) != not).then_some(pid)
    })
    .await
    .unwrap_or_else(|| panic!("the wrapper never wrote a (new) pid to {}", file.display()))
}

async fn whoami(mcpo: &Mcpo, server: &str) -> u32 {
    let r = post(mcpo, &format!("/{server}/whoami"), None, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{server}/whoami: {r:?}");
    r.body["pid"].as_u64().expect("pid") as u32
}

async fn assert_gone(pid: u32, what: &str, mcpo: &Mcpo) {
    let gone = poll(Duration::from_secs(10), || async {
        (!alive(pid)).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "{what} (pid {pid}) still runs: {:?}\nmcpo stderr:\n{}",
        proc_stat(pid),
        tail(&mcpo.stderr.text(), 30)
    );
}

#[tokio::test]
async fn graceful_stop_ends_the_servers_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("sleep.pid");
    let b = start_config(json!({"fx": wrapped_entry(&pid_file, false)}), &[]);
    let mut mcpo = b.mcpo;
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(20))
        .await;
    let sleep = read_pid(&pid_file, None).await;
    let _guard = Leftover(vec![sleep]);
    let server = whoami(&mcpo, "fx").await;
    let stat = proc_stat(sleep).expect("the sleep runs");
    assert_eq!(
        stat.pgrp, server,
        "the sleep is in the server's process group"
    );

    // SIGTERM through our own handle, then wait for mcpo to exit.
    let _ = Command::new("kill")
        .args(["-TERM", &mcpo.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = mcpo.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "mcpo did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", mcpo.stderr.text());
    assert!(!alive(server), "the server itself was stopped");
    assert_gone(
        sleep,
        "the server's background sleep, after mcpo exited",
        &mcpo,
    )
    .await;
}

#[tokio::test]
async fn a_crashed_servers_process_group_ends_before_the_reconnect() {
    crash_and_reconnect(true).await;
}

/// The sleep keeps the server's stdout open: the crash is noticed by the server's exit, not
/// by the end of its output (nor, half a minute later, by a failed ping).
#[tokio::test]
async fn a_crash_is_noticed_while_a_leftover_process_holds_the_pipes() {
    crash_and_reconnect(false).await;
}

async fn crash_and_reconnect(quiet: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("sleep.pid");
    let b = start_config(
        json!({"fx": wrapped_entry(&pid_file, quiet)}),
        &["--reconnect-min-delay", "0.2", "--reconnect-max-delay", "1"],
    );
    let mcpo = &b.mcpo;
    mcpo.wait_ok("/fx/openapi.json", Duration::from_secs(20))
        .await;
    let first_sleep = read_pid(&pid_file, None).await;
    let mut guard = Leftover(vec![first_sleep]);
    let server = whoami(mcpo, "fx").await;
    assert_eq!(proc_stat(first_sleep).expect("sleep runs").pgrp, server);

    // Only the server dies (not its group), as a crash would.
    let killed = Command::new("kill")
        .args(["-KILL", &server.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let second_sleep = read_pid(&pid_file, Some(first_sleep)).await;
    guard.0.push(second_sleep);
    assert_gone(first_sleep, "the crashed server's background sleep", mcpo).await;
    let restarted = poll(Duration::from_secs(20), || async {
        let r = post(mcpo, "/fx/whoami", None, json!({})).await;
        (r.status == StatusCode::OK && r.body["pid"].as_u64() != Some(u64::from(server)))
            .then_some(())
    })
    .await;
    assert!(restarted.is_some(), "{}", mcpo.stderr.text());
    assert!(alive(second_sleep), "the new session's group is left alone");
}
