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
//!
//! Every line, in every format, passes [`clean_line`] on its way out: the userinfo, query and
//! fragment of every URL in it are redacted (a `${VAR}` secret in an upstream URL, an
//! authorization request's `state`, in our lines and in rmcp's alike), and raw C1 controls are
//! escaped. Line breaks and other controls inside values are escaped by the formats themselves
//! (`plain`'s fields; JSON strings). [`PayloadFilter`] keeps rmcp's lines that carry whole MCP
//! messages (tool arguments and results) out unless `--log-payloads` asks for them.

mod plain;

pub use plain::{PlainFields, PlainFormat, Timestamp};

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

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
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let written = line.len();
        let cleaned = clean_line(line);
        let buf = &*cleaned;
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
        Ok(written)
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

/// Writes each line straight to stderr, cleaned like the daemon's (the subcommands, and the
/// daemon when its writer thread cannot start).
pub struct DirectStderr;

impl Write for DirectStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(&clean_line(line))?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DirectStderr {
    type Writer = DirectStderr;

    fn make_writer(&'a self) -> Self::Writer {
        DirectStderr
    }
}

/// One formatted log line as it may leave the process: every URL's userinfo, query and
/// fragment redacted (`support::redact`), and raw DEL and C1 controls (which JSON strings may
/// hold) written as `\u00XX`. Borrowed when there is nothing to change, the common case. ANSI
/// styling (ESC sequences, only ever the formatter's own: values are escaped) ends a URL.
pub fn clean_line(line: &[u8]) -> Cow<'_, [u8]> {
    let has_url = line.windows(3).any(|w| w == b"://");
    let has_c1 = line.iter().any(|&b| b == 0x7f || b == 0xc2);
    if !has_url && !has_c1 {
        return Cow::Borrowed(line);
    }
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len() + 32);
    for (i, piece) in text.split('\x1b').enumerate() {
        if i > 0 {
            out.push('\x1b');
        }
        if has_url {
            out.push_str(&mcpo::redact_urls(piece));
        } else {
            out.push_str(piece);
        }
    }
    if has_c1 {
        out = out
            .chars()
            .map(|c| match c {
                '\x7f' | '\u{80}'..='\u{9f}' => format!("\\u{:04x}", c as u32),
                c => c.to_string(),
            })
            .collect();
    }
    Cow::Owned(out.into_bytes())
}

/// Keeps rmcp's payload logging off unless `--log-payloads`: its debug and trace lines print
/// whole JSON-RPC messages (`received request` with the tool's arguments, `response message`
/// with its result, every `new event`), raw lines it could not parse, and OAuth authorization
/// codes; its `received notification` line (at info) prints the notification's content. The
/// docs promise that tool arguments and results are never logged; these lines would break that
/// promise at `--log-level debug`/`trace` or with `RUST_LOG`, which would otherwise enable them.
pub struct PayloadFilter {
    /// `--log-payloads`: let them through.
    pub payloads: bool,
}

/// Fields of rmcp's events that hold a whole message.
const PAYLOAD_FIELDS: [&str; 4] = ["request", "result", "notification", "evt"];

impl PayloadFilter {
    fn blocks(&self, meta: &Metadata<'_>) -> bool {
        if self.payloads || !meta.is_event() {
            return false;
        }
        let target = meta.target();
        if target != "rmcp" && !target.starts_with("rmcp::") {
            return false;
        }
        matches!(*meta.level(), Level::DEBUG | Level::TRACE)
            || meta
                .fields()
                .iter()
                .any(|f| PAYLOAD_FIELDS.contains(&f.name()))
    }
}

impl<S: Subscriber> Layer<S> for PayloadFilter {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.blocks(meta) {
            Interest::never()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        !self.blocks(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_leave_with_urls_redacted_and_c1_escaped() {
        let plain = b"2026 INFO mcpo: tool call server=fx\n";
        assert!(matches!(clean_line(plain), Cow::Borrowed(_)));
        let text = "ERROR rmcp::transport::worker: worker quit with fatal: error sending request \
                    for url (http://u:p@127.0.0.1:9/mcp?token=s3cret)\n";
        let cleaned = String::from_utf8(clean_line(text.as_bytes()).into_owned()).unwrap();
        assert!(
            !cleaned.contains("s3cret") && !cleaned.contains("u:p"),
            "{cleaned}"
        );
        assert!(
            cleaned.contains("(http://[redacted]@127.0.0.1:9/mcp?[redacted])"),
            "{cleaned}"
        );
        // JSON: the string ends the URL; C1 and DEL become JSON escapes.
        let json = "{\"url\":\"https://h/x?k=v\",\"m\":\"a\u{9b}b\u{7f}\"}\n";
        let cleaned = String::from_utf8(clean_line(json.as_bytes()).into_owned()).unwrap();
        assert_eq!(
            cleaned,
            "{\"url\":\"https://h/x?[redacted]\",\"m\":\"a\\u009bb\\u007f\"}\n"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&cleaned).is_ok());
        // ANSI styling right after a URL survives.
        let ansi = "\x1b[2mhttp://h/?a=b\x1b[0m end\n";
        let cleaned = String::from_utf8(clean_line(ansi.as_bytes()).into_owned()).unwrap();
        assert_eq!(cleaned, "\x1b[2mhttp://h/?[redacted]\x1b[0m end\n");
    }
}
