//! The text log format without colours (stderr is a pipe or a file), written directly.
//!
//! The daemon logs a line for every tool call. tracing-subscriber's stock `Full` formatter
//! takes about 1.2 µs for that line (styling wrappers even with colours off, one `write!` with
//! three arguments per field, the date formatted from scratch each time); this one writes the
//! same bytes in about a quarter of that, which at tens of thousands of calls per second is a
//! few per cent of the daemon's CPU. The output is the stock format (the tests compare the
//! two) except for one deliberate difference: control characters are escaped in every field
//! value, not only in the message, and line breaks too. A tool name, a user id or an upstream's
//! error text holding `\n` would otherwise write a line of its own that reads like one of
//! mcpo's (issue #19, item 13). [`PlainFields`] is also the field format under the stock event
//! format on a terminal (colours), so both text formats escape alike.

use std::cell::Cell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// `2026-11-22T15:30:01.123456Z INFO target: message field=value ...`, as tracing-subscriber's
/// `Full` format writes it without ANSI colours.
pub struct PlainFormat;

/// Fields as `name=value`, the message bare and first, as tracing-subscriber's `DefaultFields`,
/// with control characters escaped in every value (see the module doc).
pub struct PlainFields;

/// UTC with microseconds (`2026-11-22T15:30:01.123456Z`), as tracing-subscriber's `SystemTime`
/// timer writes it; the part up to the second is kept per thread and reused while it holds.
#[derive(Clone, Copy, Default)]
pub struct Timestamp;

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = {
            use tracing_log::NormalizeEvent as _;
            event.normalized_metadata()
        };
        let meta = meta.as_ref().unwrap_or_else(|| event.metadata());
        if Timestamp.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Writes the separator and `name=` (nothing for the message); `None` when the field is
    /// not written at all (an earlier write failed, or it is `log` metadata already shown).
    fn start(&mut self, field: &Field) -> Option<&mut Self> {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return None;
        }
        if !std::mem::take(&mut self.empty) {
            self.result = self.writer.write_char(' ');
        }
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(name))
                .and_then(|()| self.writer.write_char('='));
        }
        self.result.is_ok().then_some(self)
    }

    /// An integer as `Debug` writes it, without `core::fmt`.
    fn integer(&mut self, field: &Field, value: impl itoa::Integer + fmt::Display) {
        if let Some(v) = self.start(field) {
            if field.name() == "message" {
                v.message(format_args!("{value}"));
            } else {
                v.result = v.writer.write_str(itoa::Buffer::new().format(value));
            }
        }
    }

    fn message(&mut self, value: fmt::Arguments<'_>) {
        self.result = Escaping(&mut self.writer).write_fmt(value);
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(v) = self.start(field) {
            if field.name() == "message" {
                v.result = Escaping(&mut v.writer).write_str(value);
            } else {
                // `Debug` quotes and escapes a string already; escaping again is a scan.
                v.result = write!(Escaping(&mut v.writer), "{value:?}");
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if let Some(v) = self.start(field) {
            // The error escaped like a message, then `name.sources=[..]` when it has any
            // (the name as declared, `r#` and all, as tracing-subscriber writes it).
            v.result = write!(Escaping(&mut v.writer), "{value}");
            if let Some(source) = value.source() {
                let name = field.name();
                v.result = v
                    .result
                    .and_then(|()| write!(v.writer, " {name}.sources={}", Sources(source)));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(v) = self.start(field) {
            if field.name() == "message" {
                v.message(format_args!("{value:?}"));
            } else {
                // `%display` values arrive here too, unescaped.
                v.result = write!(Escaping(&mut v.writer), "{value:?}");
            }
        }
    }
}

/// An error's chain as a list, each entry escaped (tracing-subscriber's `ErrorSourceList`).
struct Sources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entry<'a>(&'a (dyn std::error::Error + 'static));
        impl fmt::Debug for Entry<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(Escaping(f), "{}", self.0)
            }
        }
        let mut list = f.debug_list();
        let mut next = Some(self.0);
        while let Some(error) = next {
            list.entry(&Entry(error));
            next = error.source();
        }
        list.finish()
    }
}

/// Writes control characters as escapes: those that could drive a terminal (ESC, BEL, BS, FF,
/// DEL, C1) as tracing-subscriber writes them in messages (`\x1b`, `\u{85}`), and, unlike it,
/// line breaks and the other C0 controls too (`\n`, `\r`, `\t`, `\x00`...), and the Unicode
/// line and paragraph separators: one event is always one line, whatever a value holds.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // C1 controls are U+0080..U+009F (UTF-8 0xC2 0x80..0x9F); U+2028/U+2029 start with 0xE2.
        let clean = !s
            .bytes()
            .any(|b| b < 0x20 || matches!(b, 0x7f | 0xc2 | 0xe2));
        if clean {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            match ch {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c @ ('\x00'..='\x1f' | '\x7f') => write!(self.0, "\\x{:02x}", c as u32)?,
                c @ ('\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}') => {
                    write!(self.0, "\\u{{{:x}}}", c as u32)?
                }
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

thread_local! {
    /// The whole seconds last formatted on this thread, and `YYYY-MM-DDTHH:MM:SS.` for them.
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// Seconds since the epoch of 10000-01-01: past it the year takes more than four digits.
const YEAR_10000: u64 = 253_402_300_800;

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now();
        let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
            // Before 1970: leave the rare case to the stock timer.
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = since.as_secs();
        if secs >= YEAR_10000 {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        }
        let (cached, mut prefix) = SECOND.get();
        if cached != secs {
            prefix = date_prefix(secs);
            SECOND.set((secs, prefix));
        }
        let mut out = [0u8; 27];
        out[..20].copy_from_slice(&prefix);
        let mut micros = since.subsec_micros();
        for slot in out[20..26].iter_mut().rev() {
            *slot = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out[26] = b'Z';
        // Only ASCII digits and punctuation were written.
        w.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since the epoch (before year 10000).
fn date_prefix(secs: u64) -> [u8; 20] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, hour);
    put(14, 2, minute);
    put(17, 2, second);
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// Every shape of event and field the daemon (and its dependencies) can log.
    fn events() {
        let server = String::from("echo");
        tracing::info!(
            server = %server,
            tool = %"echo",
            caller = %"anonymous",
            status = 200u16,
            elapsed_ms = 0.447,
            "tool call"
        );
        tracing::info!(elapsed_ms = 12.0, big = 1e300, tiny = 1e-7, "floats");
        tracing::warn!("message only");
        tracing::error!(
            count = -3i64,
            n = 7u64,
            wide = 1u128 << 100,
            ok = true,
            "numbers"
        );
        tracing::debug!(quoted = "a \"b\" \n c", dbg = ?Some("x"), "str and debug");
        tracing::trace!(
            r#type = "raw",
            log.target = "hidden",
            "raw names and log metadata"
        );
        tracing::info!("control \x1b[31mred\x07 bell \x08\x0c\x7f c1 \u{85} nbsp \u{a0} é");
        tracing::info!(field = %"\x1b[2J", "fields are escaped too (the stock format does not)");
        tracing::info!(n = 1, "message {} with arguments {:?}", "formatted", 2);
        let chain = Failure("outer \x1b", Some(Box::new(Failure("inner", None))));
        tracing::warn!(
            error = &chain as &(dyn std::error::Error + 'static),
            "failed"
        );
        tracing::warn!(
            error = &Failure("alone", None) as &(dyn std::error::Error + 'static),
            "failed"
        );
        tracing::warn!(message = &chain as &(dyn std::error::Error + 'static));
        tracing::info!(empty = "", "");
        let outer = tracing::info_span!("session", server = "fx", n = 3);
        let _outer = outer.enter();
        let bare = tracing::info_span!("bare");
        let _bare = bare.enter();
        let late = tracing::info_span!("late", user = tracing::field::Empty);
        late.record("user", "u-1");
        late.record("user", "u-2");
        let _late = late.enter();
        tracing::info!(inside = 1, "in spans");
    }

    fn stock() -> String {
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_max_level(Level::TRACE)
            .with_writer(out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        out.text()
    }

    fn plain() -> String {
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .fmt_fields(PlainFields)
            .event_format(PlainFormat)
            .with_writer(out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        out.text()
    }

    #[test]
    fn lines_are_the_stock_format_byte_for_byte() {
        let (stock, plain) = (stock(), plain());
        let stock: Vec<&str> = stock.lines().collect();
        let plain: Vec<&str> = plain.lines().collect();
        assert_eq!(stock.len(), 14, "{stock:#?}");
        assert_eq!(plain.len(), stock.len(), "{plain:#?}");
        for (i, (ours, theirs)) in plain.iter().zip(&stock).enumerate() {
            // The stock lines were written without the time, ours with it (and its space).
            let (time, rest) = ours.split_at(28);
            assert!(time.ends_with("Z "), "{ours}");
            if i == 7 {
                // The one deliberate difference: a field's control characters are escaped.
                assert_eq!(rest, theirs.replace('\x1b', "\\x1b"));
                assert!(theirs.contains('\x1b') && !rest.contains('\x1b'), "{rest}");
            } else {
                assert_eq!(rest, *theirs);
            }
        }
        // What the comparison covers, seen from the stock side.
        assert!(stock[0].starts_with(" INFO mcpo::logging::plain::tests: tool call server=echo"));
        assert!(stock[6].contains("\\x1b[31mred\\x07 bell \\x08\\x0c\\x7f c1 \\u{85}"));
        assert!(
            stock[13].contains("session{server=\"fx\" n=3}:bare:late{user=\"u-1\" user=\"u-2\"}:")
        );
        assert!(stock[9].contains("error.sources=[inner]"), "{}", stock[9]);
    }

    /// A value holding a line break cannot start a line of its own that reads like mcpo's
    /// (issue #19, item 13): every field and the message are escaped, spans' fields too.
    #[test]
    fn line_breaks_and_controls_in_any_value_stay_on_one_line() {
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .fmt_fields(PlainFields)
            .event_format(PlainFormat)
            .with_writer(out.clone())
            .finish();
        let forged = "x\n2026-01-01T00:00:00.000000Z  INFO mcpo::app: forged\r\t\0\u{2028}\u{9b}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("call", user = %forged);
            let _span = span.enter();
            tracing::info!(
                tool = %forged,
                caller = forged,
                dbg = ?Some(forged),
                error = &Failure("bad\nline", None) as &(dyn std::error::Error + 'static),
                "tool call {forged}"
            );
        });
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        let line = text.trim_end_matches('\n');
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{line:?}"
        );
        assert!(
            line.contains("tool=x\\n2026-01-01T00:00:00.000000Z  INFO mcpo::app: forged\\r\\t\\x00\\u{2028}\\u{9b}"),
            "{line}"
        );
        assert!(line.contains("call{user=x\\n2026"), "{line}");
        assert!(line.contains("error=bad\\nline"), "{line}");
    }

    #[test]
    fn dates_are_utc_in_the_proleptic_gregorian_calendar() {
        for (secs, date) in [
            (0, "1970-01-01T00:00:00."),
            (951_782_400, "2000-02-29T00:00:00."),
            (951_868_799, "2000-02-29T23:59:59."),
            (1_795_000_000, "2026-11-18T11:06:40."),
            (4_107_542_399, "2100-02-28T23:59:59."),
            (4_107_542_400, "2100-03-01T00:00:00."),
            (YEAR_10000 - 1, "9999-12-31T23:59:59."),
        ] {
            assert_eq!(std::str::from_utf8(&date_prefix(secs)).unwrap(), date);
        }
    }

    #[test]
    fn timestamps_match_the_stock_timer() {
        let format = |timer: &dyn FormatTime| {
            let mut s = String::new();
            timer.format_time(&mut Writer::new(&mut s)).unwrap();
            s
        };
        // Twice, so that the second one comes from this thread's cached second.
        for _ in 0..2 {
            let (theirs, ours) = loop {
                let theirs = format(&tracing_subscriber::fmt::time::SystemTime);
                let ours = format(&Timestamp);
                // Retry if a second boundary fell between the two.
                if theirs[..19] == ours[..19] {
                    break (theirs, ours);
                }
            };
            assert_eq!(ours.len(), theirs.len(), "{ours} vs {theirs}");
            assert_eq!(ours.len(), 27);
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            assert!(ours[20..26].bytes().all(|b| b.is_ascii_digit()), "{ours}");
        }
    }
}
