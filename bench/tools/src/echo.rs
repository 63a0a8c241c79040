//! A minimal MCP server over stdio, JSON-RPC written by hand with serde_json, built to never be
//! the bottleneck: one thread, 64 KiB buffers on the raw file descriptors (std's `Stdout` would
//! flush every line), and a flush only when no further request is already buffered, so a burst
//! of pipelined requests is answered with one `write`.
//!
//! Tools: `echo {message}` → the message as text; `add {a, b}` → the sum as text. With
//! `BENCH_ECHO_TOOLS=FILE` it lists the tools in FILE (a `{"tools": [...]}` object, the catalog
//! bench's realistic list) instead; calls still answer as above.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::fd::FromRawFd;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct InitParams<'a> {
    #[serde(borrow, rename = "protocolVersion", default)]
    protocol_version: Option<Cow<'a, str>>,
}

const TOOLS: &str = r#"{"tools":[{"name":"echo","description":"Echo the given message.","inputSchema":{"type":"object","properties":{"message":{"type":"string","description":"Text to send back."}},"required":["message"]}},{"name":"add","description":"Add two numbers.","inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}}]}"#;

/// What `tools/list` answers: [`TOOLS`], or the file `BENCH_ECHO_TOOLS` names.
static LISTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn run() -> io::Result<()> {
    let listed = match std::env::var_os("BENCH_ECHO_TOOLS") {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            // One line on the wire.
            let value: Value = serde_json::from_str(&text).map_err(io::Error::other)?;
            value.to_string()
        }
        None => TOOLS.to_owned(),
    };
    let _ = LISTED.set(listed);
    // SAFETY: fds 0 and 1 are open for the life of the process and used only here.
    let stdin = unsafe { File::from_raw_fd(0) };
    let stdout = unsafe { File::from_raw_fd(1) };
    let mut reader = BufReader::with_capacity(64 * 1024, stdin);
    let mut out = BufWriter::with_capacity(64 * 1024, stdout);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            out.flush()?;
            return Ok(());
        }
        handle(&line, &mut out)?;
        if reader.buffer().is_empty() {
            out.flush()?;
        }
    }
}

/// Answers one JSON-RPC message into `out` (a line ending in `\n`), or writes nothing for a
/// notification.
pub fn handle(line: &[u8], out: &mut impl Write) -> io::Result<()> {
    let line = trim(line);
    if line.is_empty() {
        return Ok(());
    }
    let msg: Message = match serde_json::from_slice(line) {
        Ok(m) => m,
        Err(_) => {
            return out.write_all(
                br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}
"#,
            );
        }
    };
    // Notifications (no id) and responses to our (never sent) requests need no answer.
    let (Some(id), Some(method)) = (msg.id, msg.method) else {
        return Ok(());
    };
    let id = id.get();
    match &*method {
        "tools/call" => {
            let params: Option<CallParams> = msg.params.and_then(|p| serde_json::from_str(p.get()).ok());
            let Some(params) = params else {
                return error(out, id, -32602, "invalid tools/call params");
            };
            let args = params.arguments.unwrap_or_default();
            let (text, is_error) = match &*params.name {
                "echo" => match args.get("message") {
                    Some(Value::String(s)) => (Cow::Borrowed(s.as_str()), false),
                    _ => (Cow::Borrowed("missing string argument 'message'"), true),
                },
                "add" => match (args.get("a").and_then(Value::as_f64), args.get("b").and_then(Value::as_f64)) {
                    (Some(a), Some(b)) => {
                        let sum = a + b;
                        if sum.fract() == 0.0 && sum.abs() < 9e15 {
                            (Cow::Owned(format!("{}", sum as i64)), false)
                        } else {
                            (Cow::Owned(format!("{sum}")), false)
                        }
                    }
                    _ => (Cow::Borrowed("missing number arguments 'a' and 'b'"), true),
                },
                other => {
                    return error(out, id, -32602, &format!("unknown tool: {other}"));
                }
            };
            write!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"#)?;
            serde_json::to_writer(&mut *out, &*text)?;
            writeln!(out, r#"}}],"isError":{is_error}}}}}"#)
        }
        "initialize" => {
            let version = msg
                .params
                .and_then(|p| serde_json::from_str::<InitParams>(p.get()).ok())
                .and_then(|p| p.protocol_version.map(|v| v.into_owned()))
                .unwrap_or_else(|| "2025-06-18".into());
            write!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"#)?;
            serde_json::to_writer(&mut *out, &version)?;
            writeln!(
                out,
                r#","capabilities":{{"tools":{{"listChanged":false}}}},"serverInfo":{{"name":"bench-echo","version":"0.1.0"}}}}}}"#
            )
        }
        "tools/list" => {
            let tools = LISTED.get().map_or(TOOLS, String::as_str);
            writeln!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{tools}}}"#)
        }
        "ping" => writeln!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
        "resources/list" => writeln!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{{"resources":[]}}}}"#),
        "resources/templates/list" => writeln!(
            out,
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"resourceTemplates":[]}}}}"#
        ),
        "prompts/list" => writeln!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{{"prompts":[]}}}}"#),
        other => error(out, id, -32601, &format!("method not found: {other}")),
    }
}

fn error(out: &mut impl Write, id: &str, code: i32, message: &str) -> io::Result<()> {
    write!(out, r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"#)?;
    serde_json::to_writer(&mut *out, message)?;
    writeln!(out, "}}}}")
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}
