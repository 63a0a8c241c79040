//! Waiting on a condition with a deadline, never for a fixed time.

use std::time::{Duration, Instant};

use super::Mcpo;

/// Calls `f` until it returns `Some`, every 25 ms, for at most `timeout`.
pub async fn poll<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Lines of `text` that contain every needle.
pub fn count_lines(text: &str, needles: &[&str]) -> usize {
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Waits (without blocking the runtime) until mcpo's stderr has at least `n` lines
/// containing every needle.
pub async fn wait_log(mcpo: &Mcpo, needles: &[&str], n: usize, timeout: Duration) {
    let seen = poll(timeout, || async {
        (count_lines(&mcpo.stderr.text(), needles) >= n).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "mcpo never logged {n} line(s) with {needles:?} within {timeout:?}; stderr:\n{}",
        mcpo.stderr.text()
    );
}

/// The last `lines` lines of a (long) log, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `server`'s `/status` entry once its last error contains `needle` (any error for `""`),
/// within `timeout`; panics with mcpo's log otherwise.
pub async fn wait_failure(
    mcpo: &Mcpo,
    server: &str,
    needle: &str,
    timeout: Duration,
) -> serde_json::Value {
    poll(timeout, || async {
        let status = super::fetch_server_status(mcpo, server).await;
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(needle))
            .then_some(status)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "server {server} never failed with {needle:?}; mcpo stderr:\n{}",
            tail(&mcpo.stderr.text(), 40)
        )
    })
}

/// The text of `server`'s last error once it contains `needle` (see [`wait_failure`]).
pub async fn wait_last_error(mcpo: &Mcpo, server: &str, needle: &str, timeout: Duration) -> String {
    let status = wait_failure(mcpo, server, needle, timeout).await;
    status["last_error"].as_str().unwrap_or_default().to_owned()
}
