//! URLs made safe to show: the parts of a URL that carry secrets — userinfo (`user:pass@`), the
//! query string (`?api_key=…`, an authorization request's `state`) and the fragment — replaced
//! by `[redacted]` wherever a URL is written into an error text or a log line.
//!
//! The scan is textual on purpose: error texts come from reqwest, rmcp, child processes'
//! stderr and our own `format!`s, and a URL inside them is not a value we could have typed.
//! Everything outside a URL's userinfo, query and fragment is kept byte for byte, so a message
//! still says which host and path failed.

use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a hidden value (see [`Hidden`]).
pub(crate) const HIDDEN: &str = "[secret]";

/// Values no text may show, whatever carries them: the secrets one user's session was started
/// with. A server can echo them back — a stdio server printing its environment or "invalid key
/// sk-…" to stderr, an HTTP upstream quoting the header in an error body — and those texts go
/// to the log, `/status` and the credentials page. `Debug` shows how many, never which.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Hidden(Arc<[String]>);

impl Hidden {
    /// The non-empty `values`, longest first, so a value that contains another is hidden
    /// whole rather than leaving its rest in view.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self(values.into())
    }

    /// `text` with every hidden value replaced by `[secret]`; borrowed when none occurs.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for value in self.0.iter() {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), HIDDEN));
            }
        }
        out
    }
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hidden({} values)", self.0.len())
    }
}

/// What replaces a redacted part.
pub(crate) const REDACTED: &str = "[redacted]";

/// `text` with every `scheme://…` URL in it redacted (see the module doc); borrowed when there
/// is nothing to redact, which is the common case.
pub fn urls_in(text: &str) -> Cow<'_, str> {
    let Some(mut at) = text.find("://") else {
        return Cow::Borrowed(text);
    };
    let mut out = String::new();
    let mut copied = 0;
    loop {
        let scheme_start = scheme_start(text, at);
        let end = url_end(text, at + 3);
        if scheme_start < at
            && let Some(redacted) = redact_after_scheme(&text[at + 3..end])
        {
            out.push_str(&text[copied..at + 3]);
            out.push_str(&redacted);
            copied = end;
        }
        match text[end..].find("://") {
            Some(next) => at = end + next,
            None => break,
        }
    }
    if copied == 0 && out.is_empty() {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// One URL, redacted; the same as [`urls_in`] on a text that is only that URL.
pub(crate) fn url(url: &str) -> Cow<'_, str> {
    urls_in(url)
}

/// Where the scheme before the `://` at `at` starts (`at` itself when there is none): letters,
/// digits, `+`, `-`, `.`, starting with a letter (RFC 3986).
fn scheme_start(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let mut start = at;
    while start > 0 {
        let b = bytes[start - 1];
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') {
            start -= 1;
        } else {
            break;
        }
    }
    while start < at && !bytes[start].is_ascii_alphabetic() {
        start += 1;
    }
    start
}

/// Where a URL starting at `from` (just past `://`) ends: at whitespace, a quote, `<`, `>`, a
/// backslash (an escaped quote in Debug output), `)` (reqwest writes `for url (…)`) or the end
/// of the text. Of these only `)` is valid unescaped in a URL: a query holding one (rare) keeps
/// what follows it unredacted.
fn url_end(text: &str, from: usize) -> usize {
    text[from..]
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\' | ')'))
        .map_or(text.len(), |end| from + end)
}

/// The part of a URL after `://` with its userinfo, query and fragment redacted; `None` when it
/// has none of them.
fn redact_after_scheme(rest: &str) -> Option<String> {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rfind('@').map(|at| &authority[at + 1..]);
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after) = tail.split_at(path_end);
    if host.is_none() && after.len() <= 1 {
        // Nothing secret, or only a bare trailing `?`/`#`.
        return None;
    }
    let mut out = String::with_capacity(rest.len());
    if let Some(host) = host {
        out.push_str(REDACTED);
        out.push('@');
        out.push_str(host);
    } else {
        out.push_str(authority);
    }
    out.push_str(path);
    if after.len() > 1 {
        // One marker for query and fragment together: both may hold secrets, and their
        // shape (which keys) can itself say too much.
        out.push_str(&after[..1]);
        out.push_str(REDACTED);
    } else {
        out.push_str(after);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_userinfo_and_fragment_are_redacted_everything_else_kept() {
        let cases = [
            (
                "https://h.example/mcp?api_key=s3cret",
                "https://h.example/mcp?[redacted]",
            ),
            (
                "http://user:pw@127.0.0.1:5432/db",
                "http://[redacted]@127.0.0.1:5432/db",
            ),
            (
                "postgres://app:hunter2@db/x?sslmode=require",
                "postgres://[redacted]@db/x?[redacted]",
            ),
            (
                "https://as.example/authorize?response_type=code&state=abc#x",
                "https://as.example/authorize?[redacted]",
            ),
            (
                "https://h.example/cb#access_token=t",
                "https://h.example/cb#[redacted]",
            ),
            ("https://h.example/mcp", "https://h.example/mcp"),
            ("https://h.example/mcp?", "https://h.example/mcp?"),
            ("no url here", "no url here"),
            ("://odd", "://odd"),
        ];
        for (input, want) in cases {
            assert_eq!(urls_in(input), want, "{input}");
        }
    }

    #[test]
    fn urls_inside_messages_are_found_and_the_message_kept() {
        let text = "error sending request for url (http://127.0.0.1:9/mcp?token=abc): \
                    connection refused; DATABASE_URL=\"postgres://u:p@db:5432/app\" then 'https://x.y/?a=b'";
        assert_eq!(
            urls_in(text),
            "error sending request for url (http://127.0.0.1:9/mcp?[redacted]): \
             connection refused; DATABASE_URL=\"postgres://[redacted]@db:5432/app\" then 'https://x.y/?[redacted]'"
        );
        assert!(matches!(urls_in("plain text: nothing"), Cow::Borrowed(_)));
        assert!(matches!(
            urls_in("see https://h.example/docs"),
            Cow::Borrowed(_)
        ));
        // An escaped quote in Debug output ends the URL.
        assert_eq!(
            urls_in(r#"Url { "http://h/?k=v\" }"#),
            r#"Url { "http://h/?[redacted]\" }"#
        );
    }

    #[test]
    fn several_urls_and_multibyte_text_around_them() {
        let text = "é https://a/?x=1 ü http://b:c@d/ ß";
        assert_eq!(
            urls_in(text),
            "é https://a/?[redacted] ü http://[redacted]@d/ ß"
        );
        assert_eq!(
            url("wss://k:v@h:1/p?q#f"),
            "wss://[redacted]@h:1/p?[redacted]"
        );
    }

    #[test]
    fn hidden_values_are_scrubbed_whole_wherever_they_occur() {
        let hidden = Hidden::new(["sk-abc".to_owned(), "sk-abcdef".to_owned(), String::new()]);
        assert_eq!(
            hidden.scrub("key sk-abcdef refused; sk-abc too"),
            "key [secret] refused; [secret] too"
        );
        assert!(matches!(hidden.scrub("nothing here"), Cow::Borrowed(_)));
        assert_eq!(format!("{hidden:?}"), "Hidden(2 values)");
        assert_eq!(Hidden::default().scrub("sk-abc"), "sk-abc");
    }
}
