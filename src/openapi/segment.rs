//! Names that become one segment of a URL path: tool names today, prompt names later. An MCP
//! server chooses them, so they may hold `/`, `..`, `?`, `#` or spaces, which clients resolve
//! or cut before the request reaches us (a tool named `../fx/envdump` published as
//! `/evil/../fx/envdump` is a call to `fx`'s `envdump`). Such a name is published under a safe
//! one instead, stable across restarts and replicas (it is derived from the name alone), and
//! the original stays what is called upstream.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// Longest name published as it is: the MCP spec's recommended tool-name length.
pub const MAX_SEGMENT_CHARS: usize = 128;

/// Hex digits of the name's SHA-256 appended to a replaced name: what keeps `a?b` and `a#b`
/// (both `a_b` once replaced) apart.
const HASH_HEX_DIGITS: usize = 8;

/// Whether `name` can be published as a path segment as it is: 1–128 characters of
/// `[A-Za-z0-9_.-]` (the MCP spec's recommended tool-name set), and not `.` or `..`.
pub fn is_safe_segment(name: &str) -> bool {
    (1..=MAX_SEGMENT_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name != "."
        && name != ".."
}

/// The path segment `name` is published under: `name` itself when [`is_safe_segment`], else
/// `name` with every other character replaced by `_`, cut to leave room, then `_` and the first
/// eight hex digits of SHA-256 of the original name (`../fx/envdump` →
/// `.._fx_envdump_1a2b3c4d`). Never empty, never a dot segment, at most 128 characters.
pub fn path_segment(name: &str) -> Cow<'_, str> {
    if is_safe_segment(name) {
        return Cow::Borrowed(name);
    }
    let keep = MAX_SEGMENT_CHARS - 1 - HASH_HEX_DIGITS;
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(keep)
        .collect();
    out.push('_');
    let digest = Sha256::digest(name.as_bytes());
    for b in digest.iter().take(HASH_HEX_DIGITS / 2) {
        out.push_str(&format!("{b:02x}"));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_kept() {
        for name in ["get_weather", "a.b-c", "...", "x", &"n".repeat(128)] {
            assert_eq!(path_segment(name), name);
        }
    }

    #[test]
    fn unsafe_names_get_a_stable_safe_name() {
        let long = "n".repeat(200);
        let names = [
            "../fx/envdump",
            "a?b",
            "a#b",
            "a_b",
            "with space",
            "..",
            ".",
            "",
            "é",
            "a/b",
            "a\nb",
            &long,
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let seg = path_segment(name);
            assert!(is_safe_segment(&seg), "{name:?} → {seg:?}");
            assert!(!seg.contains('/') && !seg.contains('?') && !seg.contains('#'));
            assert_eq!(seg, path_segment(name), "stable");
            assert!(seen.insert(seg.into_owned()), "{name:?} collides");
        }
        let evil = path_segment("../fx/envdump");
        assert!(evil.starts_with(".._fx_envdump_"), "{evil}");
        assert_eq!(evil.len(), ".._fx_envdump_".len() + 8);
        assert_eq!(path_segment(&long).len(), 128);
        assert!(path_segment(&long).starts_with(&"n".repeat(119)));
    }
}
