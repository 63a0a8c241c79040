//! Log lines leave the request path through a bounded buffer to one writer thread.
//!
//! Writing every `tool call` line to stderr from the task that served the call cost about a
//! fifth of the throughput (one `write(2)` per line, under stderr's lock, on the runtime's
//! worker threads). Here a request only formats its line and appends the bytes to a shared
//! buffer; the writer thread swaps the buffer out and writes it with one syscall per batch. A
//! line costs a short lock and a copy: no allocation per line, which would be freed on the
//! writer thread (mimalloc's slower cross-thread free) and used to cost a channel slot. When the
//! buffer is full (stderr blocked: a stalled pipe reader, a paused terminal) lines are dropped and
//! counted rather than stalling the daemon, and the writer says how many it lost once it can
//! write again.

mod plain;

pub use plain::{PlainFields, PlainFormat, Timestamp};

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long the writer gathers lines while they keep coming: the most a line waits.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Bytes that may wait for the writer (a line is ~100-300 bytes): with the writer draining it
/// every `BATCH_PAUSE`, 1 MiB absorbs hundreds of thousands of lines per second.
const MAX_PENDING: usize = 1024 * 1024;

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    dropped: u64,
    /// The writer is waiting on the condvar (not writing, not pausing): the next line wakes it.
    idle: bool,
    /// Exit: write everything, then answer here.
    flush: Option<std::sync::mpsc::SyncSender<()>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned buffer is still a valid buffer.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side, cloned into the tracing subscriber (`MakeWriter`).
#[derive(Clone)]
pub struct NonBlocking {
    shared: Arc<Shared>,
}

/// Flushes the buffer when dropped: keep it alive until the daemon returns.
pub struct FlushGuard {
    shared: Arc<Shared>,
}

/// Starts the writer thread for stderr. Returns `None` if the thread cannot be started (the
/// caller then logs synchronously).
pub fn stderr() -> Option<(NonBlocking, FlushGuard)> {
    let shared = Arc::new(Shared::default());
    let theirs = shared.clone();
    std::thread::Builder::new()
        .name("mcpo-log".into())
        .spawn(move || write_loop(&theirs))
        .ok()?;
    Some((
        NonBlocking {
            shared: shared.clone(),
        },
        FlushGuard { shared },
    ))
}

fn write_loop(shared: &Shared) {
    // Not `stderr().lock()`: held for good, it would block every `eprintln!`.
    let mut out = std::io::stderr();
    let mut batch = Vec::new();
    loop {
        let (lost, flush) = {
            let mut state = shared.lock();
            while state.pending.is_empty() && state.flush.is_none() {
                state.idle = true;
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            state.idle = false;
            // Swap rather than copy: the emptied buffer keeps its capacity for the next turn.
            std::mem::swap(&mut state.pending, &mut batch);
            (std::mem::take(&mut state.dropped), state.flush.take())
        };
        // Failures (stderr closed) are ignored: losing log lines beats losing the daemon.
        let _ = out.write_all(&batch);
        if lost > 0 {
            let _ = writeln!(
                out,
                "mcpo: {lost} log line(s) dropped: stderr could not keep up"
            );
        }
        let _ = out.flush();
        batch.clear();
        // A burst can leave a large buffer behind; keep at most a typical batch's worth.
        batch.shrink_to(64 * 1024);
        if let Some(done) = flush {
            let _ = done.send(());
            continue;
        }
        // Busy: collect for a moment instead of waiting on the condvar, so that the lines of
        // the next few milliseconds find no one to wake (a futex wake per line cost more than
        // the write).
        std::thread::sleep(BATCH_PAUSE);
    }
}

/// One formatted event; tracing-subscriber writes each event with a single `write_all`.
pub struct Line<'a>(&'a NonBlocking);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shared = &self.0.shared;
        let wake = {
            let mut state = shared.lock();
            if state.pending.len() + buf.len() > MAX_PENDING {
                state.dropped += 1;
                false
            } else {
                state.pending.extend_from_slice(buf);
                // Only the first line after a quiet spell wakes the writer.
                std::mem::replace(&mut state.idle, false)
            }
        };
        if wake {
            shared.wake.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NonBlocking {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.shared.lock().flush = Some(done);
        self.shared.wake.notify_one();
        // Bounded: a blocked stderr must not keep the daemon from exiting.
        let _ = wait.recv_timeout(Duration::from_secs(2));
    }
}
