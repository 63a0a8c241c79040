//! `max_result_bytes` (per server, off by default): a tool result larger than the limit is not
//! passed on whole. Refused (413 naming its size and the limit), or, in `truncate` mode, its
//! text is cut to fit and ends with a marker saying how much was left out. A result too large
//! for a model's context helps nobody, and mapping it to JSON costs a copy or two of it.
//!
//! What counts is what the answer would carry (`reply::tool_result`): the structured content
//! (as JSON) when the result has one, else every content item's text, base64 data, resource
//! text or blob, summed. The result itself is bounded on its way in (16 MiB per message,
//! `upstream/connect.rs`), so this is about what is passed on, not about mcpo's memory.

use std::io::Write;

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

use super::error::ApiError;
use crate::config::{ResultLimit, ResultLimitMode};

/// `result` as it may be passed on under `limit`, or why it may not.
pub fn apply(
    server: &str,
    limit: ResultLimit,
    result: CallToolResult,
) -> Result<CallToolResult, ApiError> {
    let size = size(&result);
    if size <= limit.bytes {
        return Ok(result);
    }
    let too_large = || ApiError::ResultTooLarge {
        message: format!(
            "the result of this call to '{server}' is {size} bytes, over the server's \
             max_result_bytes of {} bytes",
            limit.bytes
        ),
        size,
        limit: limit.bytes,
    };
    if limit.mode == ResultLimitMode::Refuse || result.structured_content.is_some() {
        return Err(too_large());
    }
    let text: usize = result.content.iter().map(text_len).sum();
    let Some(allowed) = limit.bytes.checked_sub(size - text) else {
        // What is not text is over the limit alone: nothing to cut.
        return Err(too_large());
    };
    let (mut result, mut budget, mut last_text) = (result, allowed, None);
    for (i, item) in result.content.iter_mut().enumerate() {
        if let ContentBlock::Text(t) = item {
            let keep = floor_char_boundary(&t.text, budget);
            t.text.truncate(keep);
            budget -= keep;
            last_text = Some(i);
        }
    }
    // Items emptied by the cut say nothing; the last text item carries the marker.
    let marker = format!(
        "\n[mcpo: result truncated to max_result_bytes ({} bytes): {} of {text} bytes of text shown]",
        limit.bytes,
        allowed - budget,
    );
    if let Some(ContentBlock::Text(t)) = last_text.map(|i| &mut result.content[i]) {
        t.text.push_str(&marker);
    }
    let mut index = 0;
    result.content.retain(|item| {
        let keep =
            Some(index) == last_text || !matches!(item, ContentBlock::Text(t) if t.text.is_empty());
        index += 1;
        keep
    });
    Ok(result)
}

/// Bytes of one item's text (0 for what is not text).
fn text_len(item: &ContentBlock) -> usize {
    match item {
        ContentBlock::Text(t) => t.text.len(),
        _ => 0,
    }
}

/// Bytes the answer would carry for `result` (see the module doc).
fn size(result: &CallToolResult) -> usize {
    if let Some(structured) = &result.structured_content {
        let mut counter = Counter(0);
        let _ = serde_json::to_writer(&mut counter, structured);
        return counter.0;
    }
    result.content.iter().map(item_len).sum()
}

fn item_len(item: &ContentBlock) -> usize {
    match item {
        ContentBlock::Text(t) => t.text.len(),
        ContentBlock::Image(i) => i.data.len(),
        ContentBlock::Audio(a) => a.data.len(),
        ContentBlock::Resource(r) => match &r.resource {
            ResourceContents::TextResourceContents { text, .. } => text.len(),
            ResourceContents::BlobResourceContents { blob, .. } => blob.len(),
            #[allow(unreachable_patterns)]
            _ => 0,
        },
        ContentBlock::ResourceLink(link) => link.uri.len() + link.name.len(),
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

/// The largest index ≤ `at` that is a char boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// Counts the bytes written to it (the size of a JSON value without building its text).
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
