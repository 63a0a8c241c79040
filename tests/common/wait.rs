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
