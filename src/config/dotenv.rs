//! A small reader for the `--env-path` dotenv file, following python-dotenv (what Python mcpo
//! uses): `KEY=VALUE`, optional `export `, `#` comments, single quotes (literal), double quotes
//! (`\n`, `\t`, `\"`, `\\` escapes; may span lines), `${VAR}` / `${VAR:-default}` in unquoted and
//! double-quoted values (an unset variable is empty). A line with a bare `KEY` is ignored.

use std::collections::HashMap;

use super::expand::{self, Dialect};

/// A line that is not `KEY=VALUE`; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DotenvError {
    pub line: usize,
    pub message: String,
}

/// Every assignment in file order. `lookup` sees the environment; values defined earlier in the
/// file are consulted after it, as python-dotenv does when it does not override.
pub(crate) fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, DotenvError> {
    let mut reader = Reader {
        rest: text,
        line: 1,
    };
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    while let Some((line, key, raw)) = reader.next_entry()? {
        let Some(raw) = raw else { continue };
        let value = match raw {
            RawValue::Literal(v) => v,
            RawValue::Expandable(v) => {
                let known = |name: &str| lookup(name).or_else(|| seen.get(name).cloned());
                expand::expand(&v, &known, Dialect::Dotenv).map_err(|err| DotenvError {
                    line,
                    message: format!("value of {key} {}", err.completion()),
                })?
            }
        };
        if value.contains('\0') {
            return Err(DotenvError {
                line,
                message: format!("value of {key} contains a NUL byte"),
            });
        }
        seen.insert(key.clone(), value.clone());
        entries.push((key, value));
    }
    Ok(entries)
}

enum RawValue {
    /// Single-quoted: taken as written.
    Literal(String),
    /// Unquoted or double-quoted: `${VAR}` is expanded.
    Expandable(String),
}

struct Reader<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Reader<'a> {
    /// The next `(line, key, value)`; `value` is `None` for a bare `KEY` line.
    #[allow(clippy::type_complexity)]
    fn next_entry(&mut self) -> Result<Option<(usize, String, Option<RawValue>)>, DotenvError> {
        loop {
            self.skip(|c| c.is_whitespace());
            if self.rest.is_empty() {
                return Ok(None);
            }
            if self.rest.starts_with('#') {
                self.take_line();
                continue;
            }
            break;
        }
        let line = self.line;
        let error = |message: String| DotenvError { line, message };
        if let Some(after) = self.rest.strip_prefix("export")
            && after.starts_with([' ', '\t'])
        {
            self.rest = after;
            self.skip(|c| c == ' ' || c == '\t');
        }
        let key_len = self
            .rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(self.rest.len());
        let key = self.rest[..key_len].to_owned();
        self.rest = &self.rest[key_len..];
        if key.is_empty() || key.contains('\0') || key.starts_with('#') {
            return Err(error("expected KEY=VALUE".to_owned()));
        }
        self.skip(|c| c == ' ' || c == '\t');
        match self.rest.chars().next() {
            Some('=') => self.rest = &self.rest[1..],
            None | Some('\n' | '\r' | '#') => {
                self.take_line();
                return Ok(Some((line, key, None)));
            }
            Some(_) => {
                return Err(error(format!(
                    "expected '=' after {key} (write KEY=VALUE; quote values with spaces)"
                )));
            }
        }
        self.skip(|c| c == ' ' || c == '\t');
        let value = match self.rest.chars().next() {
            Some(quote @ ('\'' | '"')) => {
                let value = self.quoted(quote).ok_or_else(|| {
                    error(format!(
                        "the {quote} quote opened for {key} is never closed"
                    ))
                })?;
                let tail = self.take_line().trim();
                if !(tail.is_empty() || tail.starts_with('#')) {
                    return Err(error(format!(
                        "unexpected text after the quoted value of {key}: {tail}"
                    )));
                }
                value
            }
            _ => {
                let text = self.take_line();
                let cut = inline_comment_start(text).unwrap_or(text.len());
                RawValue::Expandable(text[..cut].trim().to_owned())
            }
        };
        Ok(Some((line, key, Some(value))))
    }

    /// Read a value in `quote`s starting at the opening quote; `None` if it never closes.
    fn quoted(&mut self, quote: char) -> Option<RawValue> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.rest = &self.rest[i + 1..];
                    return Some(if quote == '\'' {
                        RawValue::Literal(out)
                    } else {
                        RawValue::Expandable(out)
                    });
                }
                '\\' if quote == '"' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, e @ ('"' | '\\' | '\''))) => out.push(e),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                        if other == '\n' {
                            self.line += 1;
                        }
                    }
                    None => return None,
                },
                '\n' => {
                    self.line += 1;
                    out.push('\n');
                }
                c => out.push(c),
            }
        }
        None
    }

    fn skip(&mut self, pred: impl Fn(char) -> bool) {
        let len = self
            .rest
            .find(|c: char| !pred(c))
            .unwrap_or(self.rest.len());
        self.line += self.rest[..len].matches('\n').count();
        self.rest = &self.rest[len..];
    }

    /// The rest of the current line (without its newline); moves to the next line.
    fn take_line(&mut self) -> &'a str {
        let rest: &'a str = self.rest;
        let (line, rest) = match rest.find('\n') {
            Some(i) => {
                self.line += 1;
                (&rest[..i], &rest[i + 1..])
            }
            None => (rest, ""),
        };
        self.rest = rest;
        line.strip_suffix('\r').unwrap_or(line)
    }
}

/// An unquoted value ends at a `#` that follows whitespace.
fn inline_comment_start(text: &str) -> Option<usize> {
    if text.starts_with('#') {
        return Some(0);
    }
    text.match_indices('#')
        .map(|(i, _)| i)
        .find(|&i| text[..i].ends_with([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text, &no_env).unwrap()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn plain_assignments_comments_and_export() {
        let text = "# a comment\n\nA=1\nexport B=two words # trailing\n  C = spaced  \nD=\nE=x#not-a-comment\n";
        assert_eq!(
            pairs(text),
            [
                kv("A", "1"),
                kv("B", "two words"),
                kv("C", "spaced"),
                kv("D", ""),
                kv("E", "x#not-a-comment")
            ]
        );
    }

    #[test]
    fn quoted_values() {
        let text = concat!(
            "S='single $HOME ${X} \\n'\n",
            "D=\"double\\n\\t\\\"q\\\" \\\\ # kept\" # comment\n",
            "M=\"line one\nline two\"\n",
            "AFTER=yes\r\n",
        );
        assert_eq!(
            pairs(text),
            [
                kv("S", "single $HOME ${X} \\n"),
                kv("D", "double\n\t\"q\" \\ # kept"),
                kv("M", "line one\nline two"),
                kv("AFTER", "yes"),
            ]
        );
    }

    #[test]
    fn interpolation_uses_environment_then_earlier_lines() {
        let env = |name: &str| (name == "HOME").then(|| "/home/me".to_owned());
        let text =
            "BASE=${HOME}/x\nFULL=\"${BASE}/y\"\nLIT='${BASE}'\nGONE=a${NOPE}b\nDEF=${NOPE:-d}\n";
        assert_eq!(
            parse(text, &env).unwrap(),
            [
                kv("BASE", "/home/me/x"),
                kv("FULL", "/home/me/x/y"),
                kv("LIT", "${BASE}"),
                kv("GONE", "ab"),
                kv("DEF", "d"),
            ]
        );
    }

    #[test]
    fn bare_keys_are_ignored() {
        assert_eq!(pairs("BARE\nA=1\n"), [kv("A", "1")]);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("A=1\n\nB C=2\n", &no_env).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("expected '='"), "{err:?}");

        let err = parse("A=1\nB=\"open\nstill open\n", &no_env).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("never closed"), "{err:?}");

        let err = parse("A='x' junk\n", &no_env).unwrap_err();
        assert!(err.message.contains("unexpected text"), "{err:?}");

        let err = parse("=1\n", &no_env).unwrap_err();
        assert!(err.message.contains("KEY=VALUE"), "{err:?}");
    }

    #[test]
    fn line_numbers_count_multiline_values() {
        let err = parse("M=\"a\nb\"\nX Y\n", &no_env).unwrap_err();
        assert_eq!(err.line, 3);
    }
}
