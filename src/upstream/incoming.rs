//! Reading a stdio server's messages: bounded lines, and tool results decoded directly.
//!
//! rmcp decodes every incoming line as an untagged `JsonRpcMessage` whose result is the untagged
//! `ServerResult`: the whole message is buffered into serde's generic `Content` (twice, through
//! two `flatten`s), then each message kind and each of the 15 result types listed before
//! `CallToolResult` is tried in turn, and every failed try formats a serde error message. In
//! `perf` at 64 clients that was about an eighth of mcpo's own CPU per tool call. The transport
//! knows which request ids are `tools/call` requests, because it sent them, so a plain response
//! to one of those is decoded straight into `CallToolResult` with rmcp's own `Deserialize`.
//! Everything else (and a result `CallToolResult` refuses, such as a non-`complete`
//! `resultType`) goes through rmcp's codec unchanged, so the two paths agree wherever rmcp would
//! have produced a `CallToolResult`.

use std::collections::HashSet;

use bytes::BytesMut;
use rmcp::RoleClient;
use rmcp::model::{
    CallToolResult, ClientNotification, ClientRequest, JsonRpcMessage, JsonRpcResponse,
    JsonRpcVersion2_0, RequestId, ServerResult,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::async_rw::{JsonRpcMessageCodec, JsonRpcMessageCodecError};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio_util::codec::Decoder;

/// Ids of the `tools/call` requests sent and not yet answered or cancelled.
#[derive(Debug, Default)]
pub struct ToolCalls {
    ids: HashSet<RequestId>,
}

impl ToolCalls {
    /// Notes an outgoing message: a `tools/call` request starts waiting for its result; a
    /// cancellation ends the wait (the server may never answer it).
    pub fn on_send(&mut self, message: &TxJsonRpcMessage<RoleClient>) {
        match message {
            JsonRpcMessage::Request(r)
                if matches!(r.request, ClientRequest::CallToolRequest(_)) =>
            {
                self.ids.insert(r.id.clone());
            }
            JsonRpcMessage::Notification(n) => {
                if let ClientNotification::CancelledNotification(c) = &n.notification
                    && let Some(id) = &c.params.request_id
                {
                    self.ids.remove(id);
                }
            }
            _ => {}
        }
    }

    /// Decodes one line (without its `\n`). `Ok(None)`: a message rmcp ignores on purpose.
    pub fn decode(
        &mut self,
        line: &[u8],
    ) -> Result<Option<RxJsonRpcMessage<RoleClient>>, JsonRpcMessageCodecError> {
        if let Some(message) = self.tool_result(line) {
            return Ok(Some(message));
        }
        let mut buf = BytesMut::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.extend_from_slice(b"\n");
        let message =
            JsonRpcMessageCodec::<RxJsonRpcMessage<RoleClient>>::new().decode(&mut buf)?;
        // An answer of any shape (an error, say) ends the wait too.
        match &message {
            Some(JsonRpcMessage::Response(r)) => {
                self.ids.remove(&r.id);
            }
            Some(JsonRpcMessage::Error(e)) => {
                if let Some(id) = &e.id {
                    self.ids.remove(id);
                }
            }
            _ => {}
        }
        Ok(message)
    }

    /// The direct path: exactly `{"jsonrpc":"2.0","id":…,"result":…}` answering a pending
    /// `tools/call`, with a result `CallToolResult` accepts.
    fn tool_result(&mut self, line: &[u8]) -> Option<RxJsonRpcMessage<RoleClient>> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Response<'a> {
            #[allow(dead_code)] // checked by deserializing: it must be "2.0"
            jsonrpc: JsonRpcVersion2_0,
            id: RequestId,
            #[serde(borrow)]
            result: &'a RawValue,
        }
        if self.ids.is_empty() {
            return None;
        }
        let response: Response = serde_json::from_slice(line).ok()?;
        if !self.ids.contains(&response.id) {
            return None;
        }
        let result: CallToolResult = serde_json::from_str(response.result.get()).ok()?;
        self.ids.remove(&response.id);
        Some(JsonRpcMessage::Response(JsonRpcResponse {
            jsonrpc: JsonRpcVersion2_0,
            id: response.id,
            result: ServerResult::CallToolResult(result),
        }))
    }
}

/// How [`read_line`] or [`read_cut_line`] ended.
pub enum LineRead {
    /// A whole line (with its `\n`) is in the buffer.
    Line,
    /// A line longer than the limit: dropped by [`read_line`], cut to its first bytes by
    /// [`read_cut_line`].
    Oversized,
    /// End of input; a last line without `\n` may be left in the buffer.
    Eof,
    Io(std::io::Error),
}

/// Reads one `\n`-terminated line into `line`, never letting it grow past `max` bytes; as
/// rmcp's reader does, and for the same reasons: `read_until` cannot be bounded, and this is
/// cancel-safe (`fill_buf` consumes nothing if dropped, and the copy and the `consume` happen
/// with no await between them, so a cancelled read leaves a partial line for the next call).
/// `discarding` carries "skip to the end of an oversized line" between calls. A line over
/// `max` is dropped: half a JSON-RPC message is of no use. The server's stdout, for messages.
pub fn read_line<R: AsyncBufRead + Unpin>(
    read: &mut R,
    line: &mut Vec<u8>,
    discarding: &mut bool,
    max: usize,
) -> impl Future<Output = LineRead> {
    // The future itself, not an `async fn` around it: the message path stays one state machine.
    read_bounded::<false, R>(read, line, discarding, max)
}

/// As [`read_line`], but a line over `max` is cut: on [`LineRead::Oversized`] `line` holds
/// its first `max` bytes, and the rest is skipped by the calls after. The server's stderr,
/// where the start of a long message still explains something.
pub fn read_cut_line<R: AsyncBufRead + Unpin>(
    read: &mut R,
    line: &mut Vec<u8>,
    discarding: &mut bool,
    max: usize,
) -> impl Future<Output = LineRead> {
    read_bounded::<true, R>(read, line, discarding, max)
}

/// Both readers; `KEEP_START` is a constant so that [`read_line`]'s code has no trace of it.
async fn read_bounded<const KEEP_START: bool, R: AsyncBufRead + Unpin>(
    read: &mut R,
    line: &mut Vec<u8>,
    discarding: &mut bool,
    max: usize,
) -> LineRead {
    loop {
        let (consumed, outcome) = {
            let available = match read.fill_buf().await {
                Ok(available) => available,
                Err(e) => return LineRead::Io(e),
            };
            if available.is_empty() {
                return LineRead::Eof;
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            if *discarding {
                if newline.is_some() {
                    *discarding = false;
                }
                (take, None)
            } else if line.len().saturating_add(take) > max {
                if KEEP_START {
                    // Fewer than `take` bytes: the line is full at `max`.
                    let room = max.saturating_sub(line.len());
                    line.extend_from_slice(&available[..room]);
                } else {
                    line.clear();
                }
                *discarding = newline.is_none();
                (take, Some(LineRead::Oversized))
            } else {
                line.extend_from_slice(&available[..take]);
                (take, newline.map(|_| LineRead::Line))
            }
        };
        read.consume(consumed);
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolRequestParams, CancelledNotificationParam, Request};

    fn call(id: i64) -> TxJsonRpcMessage<RoleClient> {
        JsonRpcMessage::request(
            ClientRequest::CallToolRequest(Request::new(CallToolRequestParams::new("echo"))),
            RequestId::Number(id),
        )
    }

    /// rmcp's own decoding of the same line: what the direct path must agree with.
    fn rmcp_decode(line: &str) -> Option<RxJsonRpcMessage<RoleClient>> {
        let mut buf = BytesMut::from(format!("{line}\n").as_bytes());
        JsonRpcMessageCodec::<RxJsonRpcMessage<RoleClient>>::new()
            .decode(&mut buf)
            .unwrap()
    }

    /// rmcp's messages have no `PartialEq` (requests may not); compare what they serialise to.
    fn json(m: &Option<RxJsonRpcMessage<RoleClient>>) -> serde_json::Value {
        serde_json::to_value(m).unwrap()
    }

    fn is_tool_result(m: &Option<RxJsonRpcMessage<RoleClient>>) -> bool {
        matches!(
            m,
            Some(JsonRpcMessage::Response(JsonRpcResponse {
                result: ServerResult::CallToolResult(_),
                ..
            }))
        )
    }

    #[test]
    fn tool_results_decode_directly_and_agree_with_rmcp() {
        let lines = [
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"a":[1,2]},"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"structuredContent":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"no"}],"isError":true,"_meta":{"k":"v"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[]}}"#,
        ];
        for line in lines {
            let mut calls = ToolCalls::default();
            calls.on_send(&call(1));
            assert!(calls.tool_result(line.as_bytes()).is_some(), "{line}");
            let mut calls = ToolCalls::default();
            calls.on_send(&call(1));
            let direct = calls.decode(line.as_bytes()).unwrap();
            assert!(calls.ids.is_empty(), "answered: no longer pending");
            let theirs = rmcp_decode(line);
            assert!(is_tool_result(&direct) && is_tool_result(&theirs), "{line}");
            assert_eq!(json(&direct), json(&theirs), "{line}");
        }
    }

    #[test]
    fn everything_else_takes_rmcps_path_with_rmcps_result() {
        let lines = [
            // Not a pending tools/call id.
            r#"{"jsonrpc":"2.0","id":2,"result":{"content":[]}}"#,
            // A result CallToolResult refuses: rmcp's union decides what it is.
            r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            // Extra members, a BOM, and the other message kinds.
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]},"extra":true}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}",
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            r#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#,
        ];
        for line in lines {
            let mut calls = ToolCalls::default();
            calls.on_send(&call(1));
            assert!(calls.tool_result(line.as_bytes()).is_none(), "{line}");
            let (ours, theirs) = (calls.decode(line.as_bytes()).unwrap(), rmcp_decode(line));
            assert_eq!(is_tool_result(&ours), is_tool_result(&theirs), "{line}");
            assert_eq!(json(&ours), json(&theirs), "{line}");
        }
        // A wrong version is refused by both paths alike.
        let mut calls = ToolCalls::default();
        calls.on_send(&call(1));
        let bad = br#"{"jsonrpc":"1.0","id":1,"result":{"content":[]}}"#;
        assert!(calls.tool_result(bad).is_none());
        assert!(calls.decode(bad).is_err());
    }

    #[test]
    fn answers_and_cancellations_end_the_wait() {
        let mut calls = ToolCalls::default();
        calls.on_send(&call(1));
        calls.on_send(&call(2));
        calls.on_send(&call(3));
        calls
            .decode(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#)
            .unwrap();
        calls
            .decode(br#"{"jsonrpc":"2.0","id":2,"result":{}}"#)
            .unwrap();
        let param = CancelledNotificationParam::new(Some(RequestId::Number(3)), None);
        calls.on_send(&JsonRpcMessage::notification(
            ClientNotification::CancelledNotification(rmcp::model::Notification::new(param)),
        ));
        assert!(calls.ids.is_empty(), "{:?}", calls.ids);
    }

    /// Every outcome until end of input, lines as text; a cut line is shown as `<cut:…>`,
    /// and what is left in the buffer at the end as `<eof:…>`.
    async fn outcomes<R: AsyncBufRead + Unpin>(
        read: &mut R,
        line: &mut Vec<u8>,
        discarding: &mut bool,
        cut: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let text = |line: &mut Vec<u8>| String::from_utf8(std::mem::take(line)).unwrap();
        loop {
            let outcome = if cut {
                read_cut_line(read, line, discarding, 16).await
            } else {
                read_line(read, line, discarding, 16).await
            };
            match outcome {
                LineRead::Line => out.push(text(line)),
                LineRead::Oversized if cut => out.push(format!("<cut:{}>", text(line))),
                LineRead::Oversized => {
                    assert!(line.is_empty());
                    out.push("<oversized>".into())
                }
                LineRead::Eof if line.is_empty() => return out,
                LineRead::Eof => {
                    out.push(format!("<eof:{}>", text(line)));
                    return out;
                }
                LineRead::Io(e) => panic!("{e}"),
            }
        }
    }

    #[tokio::test]
    async fn lines_are_bounded_and_survive_a_cancelled_read() {
        use tokio::io::AsyncWriteExt;
        let (mut tx, rx) = tokio::io::duplex(64);
        // A small buffer: long lines arrive over several reads, as large ones do from a pipe.
        let mut read = tokio::io::BufReader::with_capacity(8, rx);
        let (mut line, mut discarding) = (Vec::new(), false);
        tx.write_all(b"{\"a\":").await.unwrap();
        // Nothing more arrives yet: the read is cancelled with half a line in the buffer.
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            read_line(&mut read, &mut line, &mut discarding, 16),
        )
        .await;
        assert!(cancelled.is_err());
        // 20 bytes (over several reads), exactly 16, and 17.
        let rest = b"1}\n0123456789abcdefXYZ\n0123456789abcde\n0123456789abcdef\n{}\r\n";
        tx.write_all(rest).await.unwrap();
        drop(tx);
        assert_eq!(
            outcomes(&mut read, &mut line, &mut discarding, false).await,
            [
                "{\"a\":1}\n",
                "<oversized>",
                "0123456789abcde\n",
                "<oversized>",
                "{}\r\n"
            ]
        );
    }

    #[tokio::test]
    async fn cut_lines_keep_their_start_and_the_last_line_needs_no_newline() {
        // The same lines as above, as a child's stderr: oversized ones keep 16 bytes, and one
        // over several reads is cut when it fills up, not when it ends.
        let input: &[u8] = b"{\"a\":1}\n0123456789abcdefXYZ\n0123456789abcde\n0123456789abcdef\n\
            {}\r\n0123456789abcdefghijklmnopqrstuvwxyz\nlast words";
        let mut read = tokio::io::BufReader::with_capacity(8, input);
        let (mut line, mut discarding) = (Vec::new(), false);
        assert_eq!(
            outcomes(&mut read, &mut line, &mut discarding, true).await,
            [
                "{\"a\":1}\n",
                "<cut:0123456789abcdef>",
                "0123456789abcde\n",
                "<cut:0123456789abcdef>",
                "{}\r\n",
                "<cut:0123456789abcdef>",
                "<eof:last words>"
            ]
        );
        // Dropping keeps no trace of an oversized line, and leaves an unfinished one too.
        let mut read = tokio::io::BufReader::with_capacity(8, input);
        assert_eq!(
            outcomes(&mut read, &mut line, &mut discarding, false).await,
            [
                "{\"a\":1}\n",
                "<oversized>",
                "0123456789abcde\n",
                "<oversized>",
                "{}\r\n",
                "<oversized>",
                "<eof:last words>"
            ]
        );
    }
}
