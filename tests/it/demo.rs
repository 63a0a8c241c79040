//! `scripts/demo.sh` run as a newcomer runs it, with the test suite's fake browser in place of
//! the person (`--non-interactive`), so the demo cannot rot: every step it prints must still
//! happen, and everything it started must be stopped when it ends.
//!
//! It needs the OAuth peers (`tests/oauth/peers.rs`); the script is given this build's mcpo
//! (`MCPO_BIN`, so it builds nothing) and the peers' folder (`MCPO_TEST_PEERS`, so its install
//! step finds them in place).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::{mcpo_bin, peers_dir, proc_stat, stop_child};

/// The demos run one at a time: each checks whether mcpo's default callback port is free
/// before using it, which two demos at once could both believe.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `scripts/demo.sh args…` to its end and returns what it printed (stdout and stderr);
/// panics unless it exits 0 within three minutes, stopped every process it started, and
/// removed its folder.
fn run_demo(args: &[&str]) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("temp dir");
    let transcript_path = tmp.path().join("transcript.txt");
    let scratch = tmp.path().join("tmp");
    std::fs::create_dir(&scratch).expect("scratch dir");
    let transcript = std::fs::File::create(&transcript_path).expect("transcript file");
    let mut child = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
        .args(args)
        .env("MCPO_BIN", mcpo_bin())
        .env("MCPO_TEST_PEERS", peers_dir())
        // The demo's folder goes here, so the test sees that it is removed.
        .env("TMPDIR", &scratch)
        .env_remove("BROWSER")
        .env_remove("WEBUI_SECRET_KEY")
        .env_remove("MCPO_API_KEY")
        // A demo that waits for a person reads end-of-file and fails.
        .stdin(Stdio::null())
        .stdout(transcript.try_clone().expect("transcript file"))
        .stderr(transcript)
        .spawn()
        .expect("run scripts/demo.sh");
    let read = || std::fs::read_to_string(&transcript_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            break status;
        }
        if Instant::now() > deadline {
            // SIGTERM: the script's trap stops what it started.
            stop_child(&mut child, Duration::from_secs(30));
            panic!(
                "scripts/demo.sh {args:?} did not finish in 3 minutes:\n{}",
                read()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = read();
    assert!(
        status.success(),
        "scripts/demo.sh {args:?}: {status}\n{text}"
    );

    let started = pids_after(&text, "started ");
    assert!(
        // The OAuth demos start three (authorization server, MCP server, mcpo); `secrets` two.
        started.len() >= 2,
        "no processes listed as started:\n{text}"
    );
    let stopped = pids_after(&text, "stopped ");
    for (name, pid) in &started {
        assert!(
            stopped.contains(&(name.clone(), *pid)),
            "{name} (pid {pid}) was not stopped:\n{text}"
        );
        assert!(
            proc_stat(*pid).is_none_or(|s| s.state == 'Z'),
            "{name} (pid {pid}) still runs:\n{text}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .expect("scratch dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
    text
}

/// `(name, pid)` of every line `<prefix><name> (pid <pid>)`.
fn pids_after(text: &str, prefix: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix(prefix)?.split_once(" (pid ")?;
            let pid = rest.strip_suffix(')')?.parse().ok()?;
            Some((name.to_owned(), pid))
        })
        .collect()
}

fn assert_shows(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.contains(line),
            "the demo no longer shows {line:?}:\n{text}"
        );
    }
}

#[test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
fn oauth_demo_signs_in_calls_a_tool_and_restarts_without_a_login() {
    if crate::peers::installed().is_none() {
        return;
    }
    let text = run_demo(&["oauth", "--non-interactive"]);
    assert_shows(
        &text,
        &[
            // The minimal block: no client id, dynamic registration.
            r#""oauth": { "server_url": "http://127.0.0.1:"#,
            "the first connection needs a login",
            "/auth?response_type=code&client_id=",
            "OAuth login complete",
            r#"HTTP 200 {"result":5}"#,
            r#"\"subject\": \"alice\""#,
            "_tokens.json",
            "_client.json",
            "is sealed (ChaCha20-Poly1305",
            "store.key",
            "Restarting mcpo: no new login",
            r#"HTTP 200 {"result":42}"#,
        ],
    );
}

#[test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
fn oauth_demo_paste_flow_reads_the_pasted_address() {
    if crate::peers::installed().is_none() {
        return;
    }
    let text = run_demo(&["oauth", "--paste", "--non-interactive"]);
    assert_shows(
        &text,
        &[
            r#""use_loopback": false"#,
            "The paste flow",
            "OAuth login complete",
            r#"HTTP 200 {"result":5}"#,
            r#"HTTP 200 {"result":42}"#,
        ],
    );
}

#[test]
#[ignore = "needs the OAuth peers: scripts/test.sh runs it"]
fn multi_user_demo_signs_two_users_in_as_themselves() {
    if crate::peers::installed().is_none() {
        return;
    }
    let text = run_demo(&["multi-user", "--non-interactive"]);
    assert_shows(
        &text,
        &[
            r#""multi_user": true"#,
            "--public-url http://127.0.0.1:",
            "alice's login link",
            "bob's login link",
            r#"\"subject\": \"alice\""#,
            r#"\"subject\": \"bob\""#,
            r#"auth type "Session""#,
            "--cors-allow-origins",
        ],
    );
    assert_eq!(
        text.matches("HTTP 401 ").count(),
        2,
        "one 401 with a login link per user:\n{text}"
    );
}

#[test]
#[ignore = "needs the OAuth peers (the demo's Python): scripts/test.sh runs it"]
fn secrets_demo_has_each_user_enter_their_own_key() {
    if crate::peers::installed().is_none() {
        return;
    }
    let text = run_demo(&["secrets", "--non-interactive"]);
    assert_shows(
        &text,
        &[
            r#""user_secrets""#,
            "Bearer {{USER_SECRET:token}}",
            "alice's credentials link",
            "bob's credentials link",
            "did not accept these credentials, so nothing was stored",
            "accepted your credentials; they are stored (encrypted)",
            r#"{"authorization":"Bearer alice-"#,
            r#"{"authorization":"Bearer bob-"#,
            "_secrets.json",
            "Neither key is in any file there",
        ],
    );
    assert_eq!(
        text.matches("HTTP 401 ").count(),
        2,
        "one 401 with a credentials link per user:\n{text}"
    );
}
