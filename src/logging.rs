//! Log lines leave the request path through a bounded queue to one writer thread.
//!
//! Writing every `tool call` line to stderr from the task that served the call cost about a
//! fifth of the throughput (one `write(2)` per line, under stderr's lock, on the runtime's
//! worker threads). Here a request only formats its line and hands the bytes over; the writer
//! thread drains whatever is queued and writes it with one syscall per batch. When the queue is
//! full (stderr blocked: a stalled pipe reader, a paused terminal) lines are dropped and counted
//! rather than stalling the daemon, and the writer says how many it lost once it can write again.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// How long the writer gathers lines while they keep coming: the most a line waits.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Lines that may wait for the writer (~100-300 bytes each). The queue's slots are allocated
/// and touched up front (32 bytes each), so it is kept small: with the writer draining it every
/// `BATCH_PAUSE`, 2048 lines still absorb ~400k lines/s.
const QUEUE_LINES: usize = 2048;

enum Message {
    Line(Vec<u8>),
    /// Write everything queued before this, then answer (used at exit).
    Flush(SyncSender<()>),
}

/// The sending side, cloned into the tracing subscriber (`MakeWriter`).
#[derive(Clone)]
pub struct NonBlocking {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Flushes the queue when dropped: keep it alive until the daemon returns.
pub struct FlushGuard {
    tx: SyncSender<Message>,
}

/// Starts the writer thread for stderr. Returns `None` if the thread cannot be started (the
/// caller then logs synchronously).
pub fn stderr() -> Option<(NonBlocking, FlushGuard)> {
    let (tx, rx) = sync_channel(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = dropped.clone();
    std::thread::Builder::new()
        .name("mcpo-log".into())
        .spawn(move || write_loop(rx, &counter))
        .ok()?;
    Some((
        NonBlocking {
            tx: tx.clone(),
            dropped,
        },
        FlushGuard { tx },
    ))
}

fn write_loop(rx: Receiver<Message>, dropped: &AtomicU64) {
    // Large enough that a batch becomes a handful of writes; flushed whenever the queue is
    // drained. Not `stderr().lock()`: held for good, it would block every `eprintln!`.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let handle = |message: Message, out: &mut std::io::BufWriter<_>| match message {
        Message::Line(bytes) => {
            // Failures (stderr closed) are ignored: losing log lines beats losing the daemon.
            let _ = out.write_all(&bytes);
        }
        Message::Flush(done) => {
            let _ = out.flush();
            let _ = done.send(());
        }
    };
    loop {
        let mut drained = 0usize;
        while let Ok(m) = rx.try_recv() {
            handle(m, &mut out);
            drained += 1;
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "mcpo: {lost} log line(s) dropped: stderr could not keep up"
            );
        }
        let _ = out.flush();
        if drained > 0 {
            // Busy: collect for a moment instead of parking on the queue, so that senders
            // find no one to wake (a futex wake per line cost more than the write).
            std::thread::sleep(BATCH_PAUSE);
            continue;
        }
        // Idle: park until the next line.
        match rx.recv() {
            Ok(m) => handle(m, &mut out),
            Err(_) => break,
        }
    }
    let _ = out.flush();
}

/// One formatted event; tracing-subscriber writes each event with a single `write_all`.
pub struct Line<'a>(&'a NonBlocking);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.tx.try_send(Message::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is gone (only at exit): nothing left to write to.
            Err(TrySendError::Disconnected(_)) => {}
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
        let (done, wait) = sync_channel(1);
        // Blocking send: the queue may be full, and this line must come after all of it.
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(2));
        }
    }
}
