//! JSON with comments (`//`, `/* */`) and trailing commas, as people write config files.
//!
//! Comments and trailing commas are overwritten with spaces (newlines kept), so the JSON handed
//! to serde_json has the same bytes at the same offsets as the original text and its error
//! positions point at the user's file unchanged.

use serde_json::Value;

/// Where and why the text is not JSON; `line` and `column` are 1-based, the column in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parse JSON-with-comments into a value.
pub(crate) fn parse(text: &str) -> Result<Value, SyntaxError> {
    let json = to_json(text)?;
    serde_json::from_str(&json).map_err(|err| from_serde(text, &err))
}

/// Blank out comments and trailing commas; the result has the same length and line breaks.
pub(crate) fn to_json(text: &str) -> Result<String, SyntaxError> {
    let mut bytes = text.as_bytes().to_vec();
    // serde_json rejects a byte-order mark; editors on Windows like to write one.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes[..3].fill(b' ');
    }
    blank_comments(&mut bytes, text)?;
    blank_trailing_commas(&mut bytes);
    // Only ASCII bytes were written over whole characters, so the text is still UTF-8.
    String::from_utf8(bytes).map_err(|_| SyntaxError {
        line: 1,
        column: 1,
        message: "the file is not valid UTF-8".to_owned(),
    })
}

fn blank_comments(bytes: &mut [u8], original: &str) -> Result<(), SyntaxError> {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    bytes[i] = b' ';
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                let Some(len) = find(&bytes[i + 2..], b"*/") else {
                    let (line, column) = line_col(original, start);
                    return Err(SyntaxError {
                        line,
                        column,
                        message: "this /* comment is never closed with */".to_owned(),
                    });
                };
                let end = i + 2 + len + 2;
                for b in &mut bytes[start..end] {
                    if *b != b'\n' {
                        *b = b' ';
                    }
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// A `,` whose next significant byte closes an object or array becomes a space.
fn blank_trailing_commas(bytes: &mut [u8]) {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i),
            b',' => {
                let next = bytes[i + 1..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .copied();
                // `[,]` and `[1,,]` stay errors: only a comma after a value is forgiven.
                let previous = bytes[..i]
                    .iter()
                    .rev()
                    .find(|b| !b.is_ascii_whitespace())
                    .copied();
                let after_value = !matches!(previous, None | Some(b'[' | b'{' | b','));
                if after_value && matches!(next, Some(b'}' | b']')) {
                    bytes[i] = b' ';
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// Index just past the string that opens at `start` (or the end of the text if it never closes;
/// serde_json then reports it).
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            // JSON strings cannot span lines; stop so a stray quote does not swallow the file.
            b'\n' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, char_column(text, line_start, offset - line_start))
}

/// The 1-based character column of the `byte_column`-th byte of the line starting at `line_start`.
fn char_column(text: &str, line_start: usize, byte_column: usize) -> usize {
    let line = &text[line_start..];
    let mut end = byte_column.min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].chars().count() + 1
}

fn from_serde(original: &str, err: &serde_json::Error) -> SyntaxError {
    let line = err.line().max(1);
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let raw = text.strip_suffix(&suffix).unwrap_or(&text);
    let message = match err.classify() {
        serde_json::error::Category::Eof if original.trim().is_empty() => {
            "the file is empty; it should hold {\"mcpServers\": {...}}".to_owned()
        }
        serde_json::error::Category::Eof => {
            format!("{raw}: the file ends too early (a closing '}}', ']' or '\"' is missing)")
        }
        _ => raw.to_owned(),
    };
    // serde_json counts bytes from 1 (0 right after a newline); report characters from 1.
    let line_start = nth_line_start(original, line);
    let column = match err.column() {
        0 => 1,
        c => char_column(original, line_start, c - 1),
    };
    SyntaxError {
        line,
        column,
        message,
    }
}

fn nth_line_start(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comments_and_trailing_commas_are_accepted() {
        let text = r#"
// leading comment
{
  /* block
     comment */ "a": 1, // trailing comment
  "b": [1, 2, 3,],
  "c": {"d": true,},
}
"#;
        assert_eq!(
            parse(text).unwrap(),
            json!({"a": 1, "b": [1, 2, 3], "c": {"d": true}})
        );
        assert_eq!(to_json(text).unwrap().len(), text.len());
    }

    #[test]
    fn comment_markers_inside_strings_are_kept() {
        let text =
            r#"{"url": "http://x/y", "glob": "/* not a comment */", "q": "a\"//b", "c": ",]"}"#;
        assert_eq!(
            parse(text).unwrap(),
            json!({"url": "http://x/y", "glob": "/* not a comment */", "q": "a\"//b", "c": ",]"})
        );
    }

    #[test]
    fn trailing_comma_before_comment_then_bracket() {
        let text = "[1, // one\n 2, /* two */\n]";
        assert_eq!(parse(text).unwrap(), json!([1, 2]));
    }

    #[test]
    fn only_a_comma_after_a_value_is_forgiven() {
        assert!(parse("[,]").is_err());
        assert!(parse("{,}").is_err());
        assert!(parse("[1,,]").is_err());
        assert!(parse("[1, /* c */ , ]").is_err());
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(parse("\u{feff}{\"a\": 1}").unwrap(), json!({"a": 1}));
    }

    #[test]
    fn syntax_error_points_at_original_line_and_column() {
        // The missing comma is on line 4; comments before it must not shift the position.
        let text = "{\n  // comment with ünïcode\n  \"a\": 1 /* x */\n  \"b\": 2\n}";
        let err = parse(text).unwrap_err();
        assert_eq!((err.line, err.column), (4, 3), "{err:?}");
        assert!(err.message.contains("expected"), "{err:?}");
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        let text = "{\"ä\": 1 \"b\": 2}";
        let err = parse(text).unwrap_err();
        assert_eq!((err.line, err.column), (1, 9), "{err:?}");
    }

    #[test]
    fn unterminated_block_comment_is_reported_where_it_starts() {
        let err = parse("{\n  \"a\": 1 /* open\n}").unwrap_err();
        assert_eq!((err.line, err.column), (2, 10));
        assert!(err.message.contains("never closed"));
    }

    #[test]
    fn empty_and_truncated_files_say_so() {
        assert!(parse("  \n").unwrap_err().message.contains("empty"));
        let err = parse("{\"a\": [1,").unwrap_err();
        assert!(err.message.contains("ends too early"), "{err:?}");
    }
}
